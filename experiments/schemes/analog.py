"""Analog schemes: the features themselves as complex symbols.

:class:`AnalogScheme` (``analog``, ``analog-zf``, ``analog-mmse``, ``analog-svd``) maps pairs of reals to one
symbol through :class:`phy.link.analog.AnalogLink`; :class:`AnalogKLTScheme` (``analog-klt``) is the optimal
*linear* analog scheme: KLT, MSE-optimal power allocation, LMMSE receiver.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from experiments.schemes.protocol import Plan, Received, Scheme, _fill, _FittedScheme
from experiments.schemes.resources import _ofdm_grid, _streams, _symbol_budget

__all__ = ["AnalogScheme", "AnalogKLTScheme"]


class AnalogScheme(Scheme):
    """Features as complex symbols through :class:`phy.link.analog.AnalogLink` (``ceil(d/2)`` uses).

    Examples
    --------
    >>> from experiments.core.sources import load_source
    >>> from experiments.comparison import CompareConfig, run_comparison
    >>> src = load_source("gaussian", n_items=64, dim=16)              # 16 i.i.d. N(0, 1) features per item
    >>> cfg = CompareConfig(schemes=("analog",), channels=("awgn",), snr_db=[10.0], budget=8, realizations=1)
    >>> row = run_comparison(src, cfg, progress=False, log=lambda msg: None)[0]
    >>> row["channel_uses"], abs(row["nmse"] - 1 / 11) < 0.03     # 1:1 mapping, MMSE: 1 / (1 + SNR)
    (8, True)
    """

    kind = "analog"
    supports_mimo = True

    def __init__(self, equalizer: Optional[str] = None, precoding: Optional[str] = None):
        self.fixed_equalizer = "mmse" if precoding else equalizer
        self.precoding = precoding
        self.name = f"analog-{precoding}" if precoding else "analog" if equalizer is None else f"analog-{equalizer}"

    @property
    def supports_grid(self) -> bool:
        """Over an OFDM grid without precoding only: SVD precoding needs CSIT, which the grid's receiver-side
        estimation does not give."""
        return not self.precoding

    def equalizer(self, ctx) -> str:
        return self.fixed_equalizer or ctx.equalizer

    def plan(self, ctx, snr_db, channel):
        d = ctx.dim
        grid = _ofdm_grid(channel)
        if grid is not None:  # OFDM: symbols -> resource elements (data + pilots) of whole slots
            return self._grid_plan(ctx, grid)
        k = _streams(channel, self.precoding)   # complex symbols per channel use
        full = math.ceil(math.ceil(d / 2) / k)
        csit = "; needs CSIT (SVD precoding: the transmitter knows H)" if self.precoding else ""
        if not ctx.matched or ctx.budget >= full:
            note = "" if (not ctx.matched or ctx.budget == full) else f"uses {full} of the {ctx.budget} budget"
            return Plan(full, True, dims_sent=d, note=(note + csit).lstrip("; "))
        dims = min(d, 2 * k * ctx.budget)
        return Plan(math.ceil(math.ceil(dims / 2) / k), False, dims_sent=dims,
                    note=f"truncated: first {dims} of {d} features sent (fallback for the rest)" + csit)

    def _grid_plan(self, ctx, grid) -> Plan:
        """The plan over an OFDM grid: ``ceil(d/2)`` symbols on the data REs of whole slots, charged their REs."""
        d = ctx.dim
        full = math.ceil(d / 2)
        symbols = _symbol_budget(ctx.budget, grid)
        if not ctx.matched or symbols >= full:
            uses = grid.ledger(full).channel_uses
            note = "" if (not ctx.matched or ctx.budget == uses) else f"uses {uses} of the {ctx.budget} budget"
            return Plan(uses, True, dims_sent=d, note=note)
        dims = min(d, 2 * symbols)
        if dims == 0:
            why = f"skipped: a budget of {ctx.budget} uses holds no OFDM slot ({grid.ledger(1).channel_uses} uses)"
            return Plan(0, False, dims_sent=0, note=why, status=why)
        return Plan(grid.ledger(math.ceil(dims / 2)).channel_uses, False, dims_sent=dims,
                    note=f"truncated: first {dims} of {d} features sent (fallback for the rest)")

    def transmit(self, ctx, plan, channel, snr_db):
        from phy.link.analog import AnalogLink

        link = AnalogLink(channel, equalizer=self.equalizer(ctx), precoding=self.precoding)
        f = ctx.test[:, :plan.dims_sent]
        out = link(f, snr_db=float(snr_db))
        if out.channel_uses != plan.channel_uses:  # the ledger must agree with the plan
            raise RuntimeError(f"analog link used {out.channel_uses} channel uses, planned {plan.channel_uses}")
        return Received(_fill(ctx, out.x_hat, plan.dims_sent), ctx.test_index)


class AnalogKLTScheme(_FittedScheme):
    """The optimal *linear* analog scheme: KLT on the training split, the ``min(d, 2U)`` strongest
    components (2 real dimensions per complex use), MSE-optimal power allocation across them
    (:func:`phy.theory.ratedistortion.linear_power_allocation`, designed for AWGN at the nominal SNR; on
    fading channels the same allocation is used), per-example power normalisation and ZF through
    :class:`phy.link.analog.AnalogLink`, then the per-component LMMSE estimate with the realised noise
    (``scale^2 N0 / (2 |h|^2)`` per real dimension; the scale is side information, as for ``analog``).
    A budget above ``d/2`` leaves the extra uses empty, so the per-use power of the sent ones grows
    (the energy per example stays ``U Es``). Over an OFDM grid the components fill the data symbols of the
    budget's whole slots (the allocation is designed for them, at the nominal SNR), charged the slots' REs,
    and the LMMSE uses each symbol's effective noise after the grid's ZF equaliser (``scale^2 no_eff / 2``,
    ``no_eff`` from Sionna's equaliser: the channel estimate's error included).

    Examples
    --------
    >>> from experiments.core.sources import load_source
    >>> from experiments.comparison import CompareConfig, run_comparison
    >>> src = load_source("gaussian", n_items=64, dim=16)              # 16 i.i.d. N(0, 1) features per item
    >>> cfg = CompareConfig(schemes=("analog-klt",), channels=("awgn",), snr_db=[10.0], budget=8, realizations=1)
    >>> row = run_comparison(src, cfg, progress=False, log=lambda msg: None)[0]
    >>> row["scheme"], row["channel_uses"], 0 < row["nmse"] < 0.2
    ('analog-klt', 8, True)
    """

    kind = "analog"
    supports_grid = True
    name = "analog-klt"

    def fitted_plan(self, ctx, snr_db, channel):
        grid = _ofdm_grid(channel)
        # complex symbols sent per example: the budget's uses, or over a grid the data symbols of its whole slots
        symbols = _symbol_budget(ctx.budget, grid) if ctx.matched else math.ceil(ctx.dim / 2)
        if symbols == 0:
            why = f"a budget of {ctx.budget} uses holds no OFDM slot ({grid.ledger(1).channel_uses} uses)"
            return Plan(0, False, dims_sent=0, note=why, status=f"skipped: {why}")
        uses = grid.ledger(symbols).channel_uses if grid is not None else symbols
        dims = min(ctx.dim, 2 * symbols, ctx.klt.rank)
        note = f"{dims} strongest KLT components of {ctx.dim}"
        if grid is not None:
            note += f"; {symbols} data symbols on the grid ({uses} resource elements with the pilots)"
        return Plan(uses, dims == min(ctx.dim, ctx.klt.rank), dims_sent=dims, note=note,
                    extra={"symbols": symbols})

    def transmit(self, ctx, plan, channel, snr_db):
        from phy.link.analog import AnalogLink
        from phy.theory.ratedistortion import linear_power_allocation

        klt = ctx.klt
        lam = klt.eigenvalues
        uses = plan.extra.get("symbols", plan.channel_uses)   # complex symbols (over a grid: its data symbols)
        m = ctx.n_test
        if plan.dims_sent == 0:  # constant features: the mean is exact, nothing to send
            return Received(klt.mean.expand(m, ctx.dim).to(ctx.features.dtype).clone(), ctx.test_index)
        no = 10.0 ** (-float(snr_db) / 10.0)
        alloc = linear_power_allocation(lam.numpy(), total_power=float(uses), noise_var=no / 2,
                                        num_dims=2 * uses)
        p = torch.as_tensor(alloc.power[:plan.dims_sent])
        k = int((p > 0).sum())
        if k == 0:
            return Received(klt.mean.expand(m, ctx.dim).to(ctx.features.dtype).clone(), ctx.test_index)
        lam_k = lam[:k]
        g = (p[:k] / lam_k).sqrt()
        z = klt.forward(ctx.test, k)
        s = torch.zeros(m, 2 * uses, dtype=torch.float64)
        s[:, :k] = z * g
        out = AnalogLink(channel, equalizer="zf")(s.to(ctx.features.dtype), snr_db=float(snr_db))
        if out.channel_uses != plan.channel_uses:
            raise RuntimeError(f"analog-klt link used {out.channel_uses} channel uses, planned {plan.channel_uses}")
        r = out.x_hat.double().cpu()[:, :k]
        # the per-symbol noise after ZF ([m, uses] over a grid: Sionna's no_eff with the LS estimation error)
        no_eff = torch.as_tensor(out.info["no_eff"]).double().cpu().expand(m, uses)
        scale = out.info["scale"].double().cpu().reshape(m, 1)
        sigma2 = (scale.square() * no_eff / 2).repeat_interleave(2, dim=1)[:, :k]
        z_hat = g * lam_k * r / (g.square() * lam_k + sigma2)
        return Received(klt.inverse(z_hat).to(ctx.features.dtype).to(ctx.device), ctx.test_index)
