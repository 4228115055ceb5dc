"""References beside which every scheme is drawn (no channel is simulated), both from the training covariance at
the scheme's budget:

* the Gaussian OPTA (infinite block length), as a scheme (:class:`OptaScheme`, ``opta``) whose reconstructions
  sample the optimal forward test channel, and as the analytic NMSE of every row (:func:`opta_reference`);
* ideal separation at the block length actually used (:class:`FBLSeparationScheme`, ``fbl-separation``, and
  :func:`fbl_reference` per row): the normal approximation's codeword error probability at the codeword span of
  the digital schemes, the payload chosen for the least expected distortion
  (:func:`phy.theory.finite_blocklength.fbl_separation`).
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from experiments.schemes.protocol import Plan, Received, SchemeContext, _FittedScheme
from experiments.schemes.resources import _codeword_span, _ofdm_grid, _symbol_budget

__all__ = ["OptaScheme", "opta_reference", "FBLSeparationScheme", "fbl_reference"]


class OptaScheme(_FittedScheme):
    """The **Gaussian OPTA**: what any scheme could reach for a Gaussian source with the training
    covariance over this channel and budget (no channel is simulated).

    Reverse water-filling over the training eigenvalues at ``R = U C`` bits (AWGN: ``C = log2(1 +
    snr)``; i.i.d. fading: the ergodic capacity; a fade held over the block: one ``R`` per codeword of
    ``ceil(512 / U)`` examples, the mean over its examples of their mutual information over the channel's own fade
    draws -- the digital schemes code over that many examples, so the reference allows the same averaging). The reconstructions sample the optimal
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
        from phy.theory.ratedistortion import reverse_water_filling

        klt = ctx.klt
        lam = klt.eigenvalues
        m = ctx.n_test
        mode, rates = _span_rates(channel, ctx.budget, float(snr_db), m)
        rates = rates[:m] if mode == "block" else rates
        theta = torch.as_tensor(reverse_water_filling(lam.numpy(), rates).theta, dtype=torch.float64)
        theta = theta.reshape(-1, 1) if mode == "block" else theta.reshape(1, 1)
        a = torch.where(lam > theta, 1.0 - theta / lam.clamp_min(1e-300), torch.zeros(()))
        z = klt.forward(ctx.test)
        w = torch.randn(z.shape, generator=channel.generator("cpu"), dtype=torch.float64)
        z_hat = a * z + (a * theta).sqrt() * w
        return Received(klt.inverse(z_hat).to(ctx.features.dtype).to(ctx.device), ctx.test_index)


def _span_rates(channel, budget: int, snr_db: float, examples: int, min_codewords: int = 1):
    """``channel_rate_bits`` of ``budget`` uses for about ``examples`` examples (at least ``min_codewords``
    codewords), a fade held over the block averaged per codeword span: ``(mode, rates)`` with one rate per example
    (each example gets its codeword's mean mutual information; at least ``examples`` values) in the ``"block"``
    mode, else the one rate."""
    import math

    import numpy as np

    from phy.theory.capacity import channel_rate_bits

    span = _codeword_span(_symbol_budget(budget, _ofdm_grid(channel)))
    ncw = max(1, int(min_codewords), math.ceil(examples / span))
    mode, rates = channel_rate_bits(channel, budget, snr_db, draws=ncw * span)
    if mode == "block" and span > 1:
        rates = np.repeat(np.asarray(rates, dtype=np.float64).reshape(ncw, span).mean(1), span)
    return mode, rates


def opta_reference(ctx: SchemeContext, channel, ch_name: str, snr_db: float) -> Optional[float]:
    """The Gaussian OPTA NMSE for the training covariance at this channel, SNR and budget
    (``E[D(R)] / E||f||^2``; ``None`` when the covariance is not estimable). Cached per point;
    fading draws (block fading: the rate of a codeword's span of examples, as :class:`OptaScheme`) come from the
    channel reseeded for this purpose.

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
    from phy.sim.points import point_seed
    from phy.theory.ratedistortion import gaussian_opta_distortion

    cache = ctx.__dict__.setdefault("_opta", {})
    key = (ch_name, float(snr_db), ctx.budget)
    if key not in cache:
        if ctx.covariance_problem():
            cache[key] = None
        else:
            channel.reset(point_seed(ctx.seed, "opta-reference", ch_name, float(snr_db)))
            _, rates = _span_rates(channel, ctx.budget, float(snr_db), 4000, min_codewords=400)
            d = gaussian_opta_distortion(ctx.klt.eigenvalues.numpy(), rates)
            cache[key] = d / ctx.klt.energy if ctx.klt.energy > 0 else 0.0
    return cache[key]


def _fbl_fading(channel) -> Tuple[Optional[str], str]:
    """The ``fading`` argument of :func:`phy.theory.finite_blocklength.fbl_separation` for ``channel`` and ``""``,
    or ``(None, why)`` for a channel the normal approximation does not cover."""
    name = getattr(channel, "name", "")
    if _ofdm_grid(channel) is None and not getattr(channel, "is_mimo", False):
        if name == "awgn":
            return "none", ""
        if name == "rayleigh" and getattr(channel, "block_length", None) == 1 and \
                getattr(channel, "k_factor", None) == 0.0:
            return "rayleigh", ""
    return None, ("the normal approximation is implemented for AWGN and i.i.d. (per-symbol) Rayleigh fading "
                  "only: the dispersion of a fade held over several uses, of Rician fading, MIMO and OFDM grids "
                  "is not")


def fbl_reference(ctx: SchemeContext, channel, ch_name: str, snr_db: float):
    """Ideal separation at the finite block length of this channel, SNR and budget for the training covariance
    (:func:`phy.theory.finite_blocklength.fbl_separation`): ``(result, why)`` with ``result`` the
    :class:`~phy.theory.finite_blocklength.FBLSeparation` and its NMSE (``(FBLSeparation, nmse, span)``) or
    ``None`` with the reason (a channel the normal approximation does not cover, or no estimable covariance).

    The codeword spans ``ceil(512 / U)`` examples of ``U = budget`` uses (the span of the ideal code and of the
    LDPC scheme); a lost codeword costs each of its examples the training variance (the receiver's mean).
    Cached per point.

    Examples
    --------
    >>> from experiments.core.sources import load_source
    >>> from phy.channel.registry import make_channel
    >>> ctx = SchemeContext(load_source("gaussian", n_items=400, dim=8), budget=4, matched=True, equalizer="mmse",
    ...                     device="cpu", bits=None, max_bits=8, ldpc_rate=0.5, ideal_outage=None, text_max_items=None)
    >>> (res, nmse, span), why = fbl_reference(ctx, make_channel("awgn", seed=0), "awgn", 10.0)
    >>> span, round(nmse, 3), why                # 128 examples share a codeword: close to the OPTA's 0.09
    (128, 0.103, '')
    >>> fbl_reference(ctx, make_channel("rician(k_db=10)", seed=0), "rician", 10.0)[0] is None
    True
    """
    from phy.theory.finite_blocklength import fbl_separation

    cache = ctx.__dict__.setdefault("_fbl", {})
    key = (ch_name, float(snr_db), ctx.budget)
    if key not in cache:
        fading, why = _fbl_fading(channel)
        if fading is not None and ctx.covariance_problem():
            why = ctx.covariance_problem()
        if fading is None or why:
            cache[key] = (None, why)
        else:
            lam = ctx.klt.eigenvalues.numpy()
            span = _codeword_span(ctx.budget)
            res = fbl_separation(lam, ctx.budget, float(snr_db), examples_per_codeword=span, fading=fading)
            nmse = res.distortion / ctx.klt.energy if ctx.klt.energy > 0 else 0.0
            cache[key] = ((res, nmse, span), "")
    return cache[key]


class FBLSeparationScheme(_FittedScheme):
    """Ideal **separation at the block length actually used**: a Gaussian source with the training covariance,
    described with ``B`` bits per example by reverse water-filling and sent by the best code of its size, whose
    codeword (``ceil(512 / U)`` examples, the span of the digital schemes) is lost with the normal approximation's
    probability ``eps`` (Gaussian input; AWGN, or i.i.d. Rayleigh fading with receiver CSI, by
    :func:`phy.theory.finite_blocklength.normal_approx_bler`); ``B`` minimises
    ``(1 - eps(B)) D(B) + eps(B) D_erased`` (``D_erased`` the training variance). No channel is simulated:
    codeword losses are drawn with probability ``eps`` and the delivered examples are sampled from the optimal
    forward test channel at ``B`` bits, as :class:`OptaScheme` does, so cosine and retrieval are reported too.

    What a practical code could reach on this budget, beside the OPTA's infinite block length: digital schemes
    with real codes should sit above it. Analog (joint) schemes may sit below it: that is the short-block
    advantage of joint source-channel coding, not an error. The ideal-code schemes (``quant-ideal``,
    ``transform-ideal``) may too, since their code is a genie that pays no finite-length penalty. Channels the
    normal approximation does not cover (block or Rician fading, MIMO, OFDM grids) give a ``skipped`` row.

    Examples
    --------
    >>> from experiments.core.sources import load_source
    >>> from experiments.comparison import CompareConfig, run_comparison
    >>> src = load_source("gaussian", n_items=64, dim=16)              # 16 i.i.d. N(0, 1) features per item
    >>> cfg = CompareConfig(schemes=("fbl-separation", "opta"), channels=("awgn",), snr_db=[10.0], budget=8,
    ...                     realizations=1)
    >>> fbl, opta = run_comparison(src, cfg, progress=False, log=lambda msg: None)
    >>> fbl["fbl_nmse"] > fbl["opta_nmse"], fbl["codeword_span"]
    (True, 64)
    """

    kind = "reference"
    supports_grid = True
    supports_mimo = True
    name = "fbl-separation"

    def fitted_plan(self, ctx, snr_db, channel):
        ref, why = fbl_reference(ctx, channel, ctx.channel_name, float(snr_db))
        if ref is None:
            return Plan(0, False, dims_sent=0, note=why, status=f"skipped: {why}")
        res, _, span = ref
        return Plan(ctx.budget, True, dims_sent=ctx.dim, extra={"span": span},
                    note=(f"ideal separation at the finite block length: {res.bits_per_example:g} bits per example, "
                          f"a codeword of {span} examples ({span * ctx.budget} uses, {res.payload_bits} bits) lost "
                          f"with probability {res.bler:.3g} (normal approximation, Gaussian input); reverse "
                          f"water-filling on the training covariance"))

    def transmit(self, ctx, plan, channel, snr_db):
        from phy.theory.ratedistortion import reverse_water_filling

        (res, _, span), _ = fbl_reference(ctx, channel, ctx.channel_name, float(snr_db))
        klt = ctx.klt
        lam = klt.eigenvalues
        m = ctx.n_test
        gen = channel.generator("cpu")
        theta = float(reverse_water_filling(lam.numpy(), res.bits_per_example).theta)
        a = torch.where(lam > theta, 1.0 - theta / lam.clamp_min(1e-300), torch.zeros((), dtype=torch.float64))
        z = klt.forward(ctx.test)
        w = torch.randn(z.shape, generator=gen, dtype=torch.float64)
        f_hat = klt.inverse(a * z + (a * theta).sqrt() * w).to(ctx.features.dtype).to(ctx.device)
        ncw = -(-m // span)
        lost = (torch.rand(ncw, generator=gen, dtype=torch.float64) < res.bler).repeat_interleave(span)[:m]
        f_hat[lost.to(f_hat.device)] = ctx.fallback
        return Received(f_hat, ctx.test_index, outage=lost, outage_rate=float(lost.double().mean()))
