"""References beside which every scheme is drawn (no channel is simulated): the Gaussian OPTA, as a scheme
(:class:`OptaScheme`, ``opta``) whose reconstructions sample the optimal forward test channel, and as the
analytic NMSE of every row (:func:`opta_reference`), both from the training covariance at the scheme's budget.
"""
from __future__ import annotations

from typing import Optional

import torch

from experiments.schemes.protocol import Plan, Received, SchemeContext, _FittedScheme

__all__ = ["OptaScheme", "opta_reference"]


class OptaScheme(_FittedScheme):
    """The **Gaussian OPTA**: what any scheme could reach for a Gaussian source with the training
    covariance over this channel and budget (no channel is simulated).

    Reverse water-filling over the training eigenvalues at ``R = U C`` bits (AWGN: ``C = log2(1 +
    snr)``; i.i.d. fading: the ergodic capacity; a fade held over the block: one ``R`` per example,
    its mutual information over the channel's own fade draw). The reconstructions sample the optimal
    forward test channel per KLT component, ``z_hat = a z + w`` with ``a = 1 - theta / lambda``,
    ``Var w = a theta`` (zero for ``lambda <= theta``), so cosine and retrieval are reported too. For
    non-Gaussian features it is a reference, not a bound.

    Examples
    --------
    >>> from experiments.core.sources import load_source
    >>> from experiments.comparison import CompareConfig, run_comparison
    >>> src = load_source("gaussian", n_items=64, dim=16)              # 16 i.i.d. N(0, 1) features per item
    >>> cfg = CompareConfig(schemes=("opta",), channels=("awgn",), snr_db=[10.0], budget=8, realizations=1)
    >>> row = run_comparison(src, cfg, progress=False, log=lambda msg: None)[0]
    >>> row["channel_uses"], row["nmse"] < 0.1       # below the analog scheme's 1/11 at this budget
    (8, True)
    """

    kind = "reference"
    supports_grid = True
    name = "opta"
    supports_mimo = True   # MIMO: the log-det (Telatar) ergodic / block rates, phy.theory.mimo_capacity

    def fitted_plan(self, ctx, snr_db, channel):
        return Plan(ctx.budget, True, dims_sent=ctx.dim,
                    note="Gaussian OPTA (reverse water-filling on the training covariance at R = uses x "
                         "capacity); a reference, not a bound, for non-Gaussian features")

    def transmit(self, ctx, plan, channel, snr_db):
        from phy.theory.capacity import channel_rate_bits
        from phy.theory.ratedistortion import reverse_water_filling

        klt = ctx.klt
        lam = klt.eigenvalues
        m = ctx.n_test
        mode, rates = channel_rate_bits(channel, ctx.budget, float(snr_db), draws=m)
        theta = torch.as_tensor(reverse_water_filling(lam.numpy(), rates).theta, dtype=torch.float64)
        theta = theta.reshape(-1, 1) if mode == "block" else theta.reshape(1, 1)
        a = torch.where(lam > theta, 1.0 - theta / lam.clamp_min(1e-300), torch.zeros(()))
        z = klt.forward(ctx.test)
        w = torch.randn(z.shape, generator=channel.generator("cpu"), dtype=torch.float64)
        z_hat = a * z + (a * theta).sqrt() * w
        return Received(klt.inverse(z_hat).to(ctx.features.dtype).to(ctx.device), ctx.test_index)


def opta_reference(ctx: SchemeContext, channel, ch_name: str, snr_db: float) -> Optional[float]:
    """The Gaussian OPTA NMSE for the training covariance at this channel, SNR and budget
    (``E[D(R)] / E||f||^2``; ``None`` when the covariance is not estimable). Cached per point;
    fading draws (block fading) come from the channel reseeded for this purpose.

    Examples
    --------
    Eight i.i.d. N(0, 1) features in 4 uses at 10 dB: ``R = 4 log2(11)`` bits, so about ``2^(-2R/8) = 1/11``:

    >>> from experiments.core.sources import load_source
    >>> from phy.channel.registry import make_channel
    >>> ctx = SchemeContext(load_source("gaussian", n_items=400, dim=8), budget=4, matched=True, equalizer="mmse",
    ...                     device="cpu", bits=None, max_bits=8, ldpc_rate=0.5, ideal_outage=0.1, text_max_items=None)
    >>> round(opta_reference(ctx, make_channel("awgn", seed=0), "awgn", 10.0), 2)
    0.09
    """
    from phy.theory.capacity import channel_rate_bits
    from phy.sim.points import point_seed
    from phy.theory.ratedistortion import gaussian_opta_distortion

    cache = ctx.__dict__.setdefault("_opta", {})
    key = (ch_name, float(snr_db), ctx.budget)
    if key not in cache:
        if ctx.covariance_problem():
            cache[key] = None
        else:
            channel.reset(point_seed(ctx.seed, "opta-reference", ch_name, float(snr_db)))
            _, rates = channel_rate_bits(channel, ctx.budget, float(snr_db), draws=4000)
            d = gaussian_opta_distortion(ctx.klt.eigenvalues.numpy(), rates)
            cache[key] = d / ctx.klt.energy if ctx.klt.energy > 0 else 0.0
    return cache[key]
