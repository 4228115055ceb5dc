"""The ideal capacity-achieving code: :class:`IdealQuantizedScheme` (``quant-ideal``) sends the quantised
features error-free when the payload fits the mutual information of the realised channel, else the example is
in outage; the payload is designed for an outage probability without transmitter CSI. The delivery rule is
shared with ``transform-ideal`` (:mod:`experiments.schemes.transform`).
"""
from __future__ import annotations

import math
from typing import Tuple

import torch

from experiments.schemes.protocol import Plan, Received, Scheme, _fill
from experiments.schemes.quantized import _choose_bits
from experiments.schemes.resources import _ofdm_grid, _symbol_budget

__all__ = ["IdealQuantizedScheme"]


class IdealQuantizedScheme(Scheme):
    """Quantiser + ideal capacity-achieving code (:class:`phy.link.ideal.IdealCodeLink`).

    Examples
    --------
    >>> from experiments.core.sources import load_source
    >>> from experiments.comparison import CompareConfig, run_comparison
    >>> src = load_source("gaussian", n_items=64, dim=16)              # 16 i.i.d. N(0, 1) features per item
    >>> cfg = CompareConfig(schemes=("quant-ideal",), channels=("awgn",), snr_db=[10.0], budget=8, realizations=1)
    >>> row = run_comparison(src, cfg, progress=False, log=lambda msg: None)[0]
    >>> row["scheme"], 0 < row["nmse"] < 1
    ('quant-ideal', True)
    """

    kind = "ideal"
    supports_grid = True
    name = "quant-ideal"
    code_name = "ideal"
    snr_dependent_plan = True
    design_draws = 2000

    def design_capacity(self, ctx, snr_db: float, channel, uses: int) -> int:
        """Payload bits with outage probability ~``ctx.ideal_outage`` over ``uses`` channel uses."""
        from phy.theory.capacity import channel_rate_bits, instantaneous_capacity
        from phy.utils.conventions import snr_db_to_no

        if _ofdm_grid(channel) is not None:  # an example's slots: the mutual information of their data REs
            _, mi = channel_rate_bits(channel, uses, float(snr_db), draws=self.design_draws)
            return int(math.floor(float(torch.quantile(torch.as_tensor(mi), ctx.ideal_outage)) + 1e-9))
        x = torch.ones(self.design_draws, uses, dtype=torch.complex64, device=ctx.device)
        h = channel(x, snr_db_to_no(float(snr_db))).h
        if h is None:  # AWGN: deterministic
            mi = instantaneous_capacity(None, float(snr_db), uses).reshape(1)
        else:
            mi = instantaneous_capacity(h.expand(x.shape), float(snr_db), uses)
        return int(math.floor(float(torch.quantile(mi.cpu(), ctx.ideal_outage)) + 1e-9))

    def plan(self, ctx, snr_db, channel):
        from phy.theory.capacity import awgn_capacity, rayleigh_ergodic_capacity

        d = ctx.dim
        if not ctx.matched and _ofdm_grid(channel) is not None:
            why = "not matched over an OFDM grid: the ideal code's uses are only defined for a budget of whole slots"
            return Plan(0, False, dims_sent=0, note=why, status=f"skipped: {why}")
        if not ctx.matched:
            b = ctx.bits or 4
            payload = b * d
            cap = awgn_capacity(float(snr_db)) if getattr(channel, "name", "") == "awgn" \
                else rayleigh_ergodic_capacity(float(snr_db))
            uses = int(math.ceil(payload / cap - 1e-9))
            return Plan(uses, True, dims_sent=d, bits_per_element=b, info_bits=payload,
                        note="not matched: uses = payload / nominal capacity (AWGN or ergodic Rayleigh)")
        uses, why = _ideal_uses(ctx, channel)
        if why:
            return Plan(0, False, dims_sent=0, note=why, status=f"skipped: {why}")
        cap = self.design_capacity(ctx, snr_db, channel, uses)
        b, dims = _choose_bits(cap, d, ctx.bits, ctx.max_bits)
        if dims == 0:
            return Plan(0, False, dims_sent=0, bits_per_element=b, info_bits=0,
                        note=f"skipped: design capacity {cap} bits in {ctx.budget} uses carries no element")
        note = f"design payload <= {cap} bits (outage target {ctx.ideal_outage})"
        if dims < d:
            note = f"truncated: first {dims} of {d} features sent; " + note
        return Plan(uses, dims == d, dims_sent=dims, bits_per_element=b, info_bits=b * dims, note=note)

    def transmit(self, ctx, plan, channel, snr_db):
        n_items = ctx.n_test
        index = ctx.test_index
        if plan.dims_sent == 0:
            return Received(ctx.fallback.expand(n_items, ctx.dim).clone(), index, outage_rate=1.0)
        q = ctx.quantizer(plan.bits_per_element, plan.dims_sent)
        bits = q.encode(ctx.test[:, :plan.dims_sent])
        x_hat, outage = _ideal_delivery(channel, plan.channel_uses, float(snr_db), bits)
        head = q.decode(x_hat).to(ctx.features.dtype)
        f_hat = _fill(ctx, head, plan.dims_sent)
        f_hat[outage.to(f_hat.device)] = ctx.fallback  # the receiver gets nothing: fallback estimate
        errs = (x_hat != bits).double().sum(1).cpu()
        return Received(f_hat, index, outage_rate=float(outage.float().mean()),
                        ber=float(errs.sum() / bits.numel()), bit_errors=errs,
                        bits_sent=torch.full_like(errs, float(bits.shape[1])), outage=outage.cpu())


def _ideal_uses(ctx, channel) -> Tuple[int, str]:
    """(channel uses, why not) of an ideal-code scheme: the budget; over an OFDM grid the REs of its whole slots
    (``""`` when they hold at least one slot, else the reason for the skip)."""
    grid = _ofdm_grid(channel)
    if grid is None:
        return ctx.budget, ""
    symbols = _symbol_budget(ctx.budget, grid)
    if symbols == 0:
        return 0, f"a budget of {ctx.budget} uses holds no OFDM slot ({grid.ledger(1).channel_uses} uses)"
    return grid.ledger(symbols).channel_uses, ""


def _ideal_delivery(channel, uses: int, snr_db: float, bits: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ideal code's delivery of ``bits [M, B]`` in ``uses`` channel uses per example: ``(bits_hat [M, B],
    outage [M] bool)``. An example is delivered iff ``B`` is at most the mutual information of its realised channel
    (:class:`phy.link.ideal.IdealCodeLink`, ``capacity="instantaneous"``; over an OFDM grid the data REs of its slots,
    :meth:`phy.ofdm.channel.OFDMChannel.rate_bits`: Gaussian inputs, perfect CSI at the receiver, the pilots paid for);
    an example in outage gets fair coin flips from the channel's stream."""
    from phy.theory.capacity import channel_rate_bits
    from phy.link.ideal import IdealCodeLink

    if _ofdm_grid(channel) is None:
        out = IdealCodeLink(channel, uses, capacity="instantaneous")(bits, snr_db=snr_db)
        return out.x_hat, out.info["outage"].reshape(bits.shape[0])
    _, mi = channel_rate_bits(channel, uses, snr_db, draws=bits.shape[0])   # one draw of slots per example
    outage = torch.as_tensor(mi < bits.shape[1], device=bits.device)
    fill = torch.randint(0, 2, bits.shape, generator=channel.generator(bits.device), device=bits.device)
    return torch.where(outage.unsqueeze(-1), fill.to(bits.dtype), bits), outage
