"""The ideal capacity-achieving code: :class:`IdealQuantizedScheme` (``quant-ideal``) sends the quantised
features error-free when the codeword's payload fits the mutual information of its realised channel, else its
examples are lost. Without transmitter CSI the payload is a design variable, chosen per SNR and channel to
minimise the expected distortion over the channel's fading on the training split (or set by a fixed outage
target). The design and the delivery rule are shared with ``transform-ideal`` (:mod:`experiments.schemes.transform`).

A codeword spans the fewest whole examples whose channel uses (data symbols on an OFDM grid) reach 512, the uses
of a 1024-bit QPSK codeword: ``ceil(512 / U)`` examples for ``U`` uses each. The same rule sets the span of the
5G LDPC codewords of ``transform-ldpc5g-amc`` for every MCS, so the ideal code and the practical one code over
the same number of examples (an MCS below 0 sends its codeword ``r`` times, over ``r`` times as many examples).
"""
from __future__ import annotations

import math
from typing import Callable, Tuple

import numpy as np
import torch

from experiments.schemes.protocol import Plan, Received, Scheme, _fill
from experiments.schemes.quantized import _choose_bits
from experiments.schemes.resources import _codeword_span, _ofdm_grid, _symbol_budget

__all__ = ["IdealQuantizedScheme"]


class IdealQuantizedScheme(Scheme):
    """Quantiser + ideal capacity-achieving code (:class:`phy.link.ideal.IdealCodeLink`).

    A codeword carries ``s = ceil(512 / U)`` examples (``U`` uses each; data symbols on a grid) and is delivered
    iff ``s B`` bits fit the mutual information ``sum_i log2(1 + |h_i|^2 snr)`` of its ``s U`` realised uses
    (perfect receiver CSI: a genie that pays no finite-length penalty), else its examples get the training mean.
    The payload ``B`` per example is designed per SNR and channel
    (:func:`phy.link.ideal.design_payload`): it minimises ``(1 - P_out(B)) D(B) + P_out(B) D_erased`` with
    ``D(B)`` the quantiser's MSE on the training split at the bits per element and features ``B`` buys,
    ``D_erased`` that of the training mean and ``P_out`` from :attr:`design_draws` draws of a codeword's mutual
    information (the channel reseeded for the design; AWGN: one exact value, so ``B = floor(U log2(1 + snr))``).
    ``--ideal-outage`` fixes the outage target instead (``B`` its quantile of the draws).

    Examples
    --------
    >>> from experiments.core.sources import load_source
    >>> from experiments.comparison import CompareConfig, run_comparison
    >>> src = load_source("gaussian", n_items=64, dim=16)              # 16 i.i.d. N(0, 1) features per item
    >>> cfg = CompareConfig(schemes=("quant-ideal",), channels=("awgn",), snr_db=[10.0], budget=8, realizations=1)
    >>> row = run_comparison(src, cfg, progress=False, log=lambda msg: None)[0]
    >>> row["scheme"], 0 < row["nmse"] < 1, row["codeword_span"]
    ('quant-ideal', True, 64)
    """

    kind = "ideal"
    supports_grid = True
    name = "quant-ideal"
    code_name = "ideal"
    snr_dependent_plan = True
    design_draws = 20000       # draws of a codeword's mutual information behind the payload design (flat channels)
    grid_design_draws = 2000   # over an OFDM grid: draws of an example's slots, summed in random groups of the span

    def codeword_mutual_information(self, ctx, snr_db: float, channel, uses: int, span: int) -> np.ndarray:
        """Draws of the mutual information (bits) of one codeword: ``span`` examples of ``uses`` channel uses.

        Flat channels: :attr:`design_draws` draws of ``span * uses`` symbols (AWGN: the one exact value); over an
        OFDM grid, :attr:`grid_design_draws` draws of an example's slots (Gaussian inputs, perfect CSI), summed over
        random groups of ``span``. The channel is reseeded for the design (from the seed, channel and SNR, so
        every ideal scheme of a point sees the same draws) and the draws are cached per point."""
        from phy.sim.points import point_seed
        from phy.theory.capacity import channel_rate_bits, instantaneous_capacity
        from phy.utils.conventions import snr_db_to_no

        cache = ctx.__dict__.setdefault("_ideal_design", {})
        key = (ctx.channel_name, float(snr_db), int(uses), int(span))
        if key in cache:
            return cache[key]
        seed = point_seed(ctx.seed, "ideal-design", ctx.channel_name, float(snr_db))
        channel.reset(seed)
        if _ofdm_grid(channel) is not None:
            _, mi = channel_rate_bits(channel, uses, float(snr_db), draws=self.grid_design_draws)
            mi = np.asarray(mi, dtype=np.float64)
            if span > 1:
                pick = np.random.default_rng(seed).integers(0, mi.size, (self.grid_design_draws, span))
                mi = mi[pick].sum(1)
        else:
            n = int(span * uses)
            chunk = max(1, min(self.design_draws, 4_000_000 // n))
            parts, left = [], self.design_draws
            while left > 0:
                x = torch.ones(min(chunk, left), n, dtype=torch.complex64, device=ctx.device)
                h = channel(x, snr_db_to_no(float(snr_db))).h
                if h is None:  # AWGN: deterministic
                    parts = [instantaneous_capacity(None, float(snr_db), n).reshape(1).cpu().numpy()]
                    break
                parts.append(instantaneous_capacity(h.expand(x.shape), float(snr_db), n).cpu().numpy())
                left -= x.shape[0]
            mi = np.concatenate(parts).astype(np.float64)
        cache[key] = mi
        return mi

    def design(self, ctx, snr_db: float, channel, uses: int, span: int, distortion_of: Callable[[int], float],
               erased_distortion: float):
        """The payload per example (:class:`phy.link.ideal.PayloadDesign`): the minimum expected distortion over
        :meth:`codeword_mutual_information`, or the ``ctx.ideal_outage`` quantile when that is set."""
        from phy.link.ideal import design_payload

        mi = self.codeword_mutual_information(ctx, snr_db, channel, uses, span)
        return design_payload(mi, distortion_of, erased_distortion, span=span, outage=ctx.ideal_outage)

    @staticmethod
    def design_note(ctx, design, span: int, uses: int) -> str:
        how = (f"fixed outage target {ctx.ideal_outage}" if ctx.ideal_outage is not None
               else "designed for the least expected distortion on the training split")
        return (f"payload {design.payload_bits} bits per example ({how}: estimated outage {design.outage:.3g}); "
                f"a codeword spans {span} examples ({span * uses} uses)")

    def _train_distortion(self, ctx, payload: int) -> float:
        """Mean squared error per vector on the training split when ``payload`` bits per example are delivered
        (the bits per element and features :func:`_choose_bits` makes of them; the rest is the training mean)."""
        b, dims = _choose_bits(payload, ctx.dim, ctx.bits, ctx.max_bits)
        cache = ctx.__dict__.setdefault("_quant_train_dist", {})
        key = (b, dims) if dims else (0, 0)
        if key not in cache:
            x = ctx.train.double()
            x_hat = ctx.fallback.double().expand(x.shape).clone()
            if dims:
                q = ctx.quantizer(b, dims)
                x_hat[:, :dims] = q.decode(q.encode(ctx.train[:, :dims])).double()
            cache[key] = math.fsum((x_hat - x).square().sum(1).tolist()) / x.shape[0]
        return cache[key]

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
        span = _codeword_span(_symbol_budget(ctx.budget, _ofdm_grid(channel)))
        design = self.design(ctx, snr_db, channel, uses, span, lambda p: self._train_distortion(ctx, p),
                             self._train_distortion(ctx, 0))
        b, dims = _choose_bits(design.payload_bits, d, ctx.bits, ctx.max_bits)
        note = self.design_note(ctx, design, span, uses)
        if dims == 0:
            return Plan(0, False, dims_sent=0, bits_per_element=b, info_bits=0,
                        note=f"skipped: {note}; it carries no element", extra={"span": span})
        if dims < d:
            note = f"truncated: first {dims} of {d} features sent; " + note
        return Plan(uses, dims == d, dims_sent=dims, bits_per_element=b, info_bits=b * dims, note=note,
                    extra={"span": span})

    def transmit(self, ctx, plan, channel, snr_db):
        n_items = ctx.n_test
        index = ctx.test_index
        if plan.dims_sent == 0:
            return Received(ctx.fallback.expand(n_items, ctx.dim).clone(), index, outage_rate=1.0)
        q = ctx.quantizer(plan.bits_per_element, plan.dims_sent)
        bits = q.encode(ctx.test[:, :plan.dims_sent])
        x_hat, outage = _ideal_delivery(channel, plan.channel_uses, float(snr_db), bits, plan.extra.get("span", 1))
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


def _ideal_delivery(channel, uses: int, snr_db: float, bits: torch.Tensor,
                    span: int = 1) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ideal code's delivery of ``bits [M, B]`` in ``uses`` channel uses per example, ``span`` examples per
    codeword: ``(bits_hat [M, B], outage [M] bool)``. A codeword (consecutive examples; the last one padded) is
    delivered iff its ``span * B`` bits fit the mutual information of its ``span * uses`` realised uses
    (:class:`phy.link.ideal.IdealCodeLink`, ``capacity="instantaneous"``; over an OFDM grid the data REs of its
    examples' slots, :meth:`phy.ofdm.channel.OFDMChannel.rate_bits`: Gaussian inputs, perfect CSI at the receiver,
    the pilots paid for); the examples of a lost codeword get fair coin flips from the channel's stream."""
    from phy.theory.capacity import channel_rate_bits
    from phy.link.ideal import IdealCodeLink

    m, b = bits.shape
    ncw = -(-m // span)
    padded = torch.zeros(ncw * span, b, dtype=bits.dtype, device=bits.device)
    padded[:m] = bits
    words = padded.reshape(ncw, span * b)
    if _ofdm_grid(channel) is None:
        out = IdealCodeLink(channel, span * uses, capacity="instantaneous")(words, snr_db=snr_db)
        x_hat, lost = out.x_hat, out.info["outage"].reshape(ncw)
    else:
        _, mi = channel_rate_bits(channel, uses, snr_db, draws=ncw * span)   # one draw of slots per example
        mi = torch.as_tensor(mi, dtype=torch.float64).reshape(ncw, span).sum(1)
        lost = (mi < span * b - 1e-9).to(bits.device)
        fill = torch.randint(0, 2, words.shape, generator=channel.generator(bits.device), device=bits.device)
        x_hat = torch.where(lost.unsqueeze(-1), fill.to(bits.dtype), words)
    outage = lost.to(bits.device).repeat_interleave(span)[:m]
    return x_hat.reshape(ncw * span, b)[:m], outage
