"""Channel estimation on an OFDM resource grid: the LS error variance of every resource element, and the
channel covariances of the LMMSE estimator.

LS with interpolation (``ofdm(..., estimator=ls)``)
    At the pilots ``h_ls[p] = y[p] / x[p] = h[p] + e[p]`` with independent ``e[p] ~ CN(0, N0 / |x[p]|^2)``.
    An interpolator (nearest neighbour, or linear: across the subcarriers of each pilot symbol, then across
    the OFDM symbols, extrapolating at the edges) is linear in the pilots: ``h_hat[r] = sum_p W[r, p] h_ls[p]``
    on every resource element ``r``, so the noise part of its error has the variance
    ``sum_p |W[r, p]|^2 N0 / |x[p]|^2`` (:func:`interpolation_weights`, :func:`ls_grid_error_variance`). It is
    below ``N0`` between two pilots (averaging) and above it where the interpolation extrapolates (weights
    ``1 + a`` and ``-a``); Sionna's interpolators interpolate the variances themselves, which gives ``N0``
    everywhere. The interpolation error of a channel that varies between the pilots is not included.

LMMSE (``ofdm(..., estimator=lmmse)``, the default; :class:`GridLMMSE`)
    The joint time-frequency LMMSE estimate of every resource element from all the pilots of its slot, for a
    zero-mean channel with the separable covariance ``R = R_t (x) R_f`` of the model (:func:`grid_covariances`):
    ``h_hat = R_rp (R_pp + s2 I)^{-1} h_ls`` and the error variance ``R_rr - R_rp (R_pp + s2 I)^{-1} R_pr`` on
    every RE (the channel's uncertainty included). The pilots of a stream form a product set (pilot symbols x
    subcarriers, Sionna's Kronecker pattern), so ``R_pp`` is a Kronecker product and the inverse is two small
    eigendecompositions: exact, not the sequential one-dimensional approximation of Sionna's
    ``LMMSEChannelEstimator``, and fast for one noise level per example. Receive antennas are estimated one by
    one. It is the default because a receiver that knows its channel's statistics smooths: over a flat grid the
    estimate averages all the pilots of a slot instead of one or two.

Example
-------
>>> import torch
>>> from sionna.phy.ofdm import ResourceGrid, LinearInterpolator
>>> rg = ResourceGrid(num_ofdm_symbols=14, fft_size=12, subcarrier_spacing=30e3, pilot_pattern="kronecker",
...                   pilot_ofdm_symbol_indices=[2, 11])
>>> pilots = rg.pilot_pattern.pilots
>>> W = interpolation_weights(LinearInterpolator(rg.pilot_pattern), pilots)
>>> W.shape                                    # [num_tx, streams, OFDM symbols, subcarriers, pilots]
torch.Size([1, 1, 14, 12, 24])
>>> err = ls_grid_error_variance(W, pilots, torch.tensor([1.0]))       # N0 = 1
>>> [round(float(err[0, 0, 0, 0, 0, t, 0]), 3) for t in (0, 2, 6)]    # extrapolated, at a pilot, between
[1.543, 1.0, 0.506]
"""
from __future__ import annotations

import math
from typing import Tuple

import torch

__all__ = ["OFDM_ESTIMATORS", "interpolation_weights", "ls_grid_error_variance", "grid_covariances", "GridLMMSE"]

#: Channel estimators of an ``ofdm(...)`` grid with ``csi=ls`` pilots: LMMSE smoothing (default) or per-RE LS.
OFDM_ESTIMATORS = ("lmmse", "ls")


def interpolation_weights(interpolator, pilots: torch.Tensor) -> torch.Tensor:
    """The weights ``W [num_tx, streams, T, F, P]`` of a linear Sionna interpolator: ``h_hat[..., t, f] =
    sum_p W[..., t, f, p] h_ls[..., p]``.

    Found by interpolating the ``P`` unit vectors (the interpolators are linear). ``pilots [num_tx, streams, P]``
    is the pilot pattern's pilot tensor; a stream's zero pilots (the other streams' positions of a Kronecker
    pattern) get zero weight.

    Examples
    --------
    >>> from sionna.phy.ofdm import ResourceGrid, LinearInterpolator
    >>> rg = ResourceGrid(num_ofdm_symbols=4, fft_size=4, subcarrier_spacing=30e3, pilot_pattern="kronecker",
    ...                   pilot_ofdm_symbol_indices=[0, 3])
    >>> W = interpolation_weights(LinearInterpolator(rg.pilot_pattern), rg.pilot_pattern.pilots)
    >>> [round(w, 4) for w in W[0, 0, 1, 0, [0, 4]].real.tolist()]   # symbol 1: 2/3 of symbol 0, 1/3 of symbol 3
    [0.6667, 0.3333]
    """
    nt, ns, P = pilots.shape
    eye = torch.eye(P, dtype=pilots.dtype, device=pilots.device)
    unit = eye.reshape(P, 1, 1, 1, 1, P).expand(P, 1, 1, nt, ns, P).contiguous()
    zero = torch.zeros(unit.shape, dtype=pilots.real.dtype, device=pilots.device)
    out, _ = interpolator(unit, zero)                         # [P, 1, 1, nt, ns, T, F]
    W = out[:, 0, 0].permute(1, 2, 3, 4, 0)                    # [nt, ns, T, F, P]
    return W * (pilots.abs() > 0).to(W.real.dtype)[:, :, None, None, :]


def ls_grid_error_variance(weights: torch.Tensor, pilots: torch.Tensor, no: torch.Tensor) -> torch.Tensor:
    """``sum_p |W[..., r, p]|^2 N0 / |x[p]|^2``: the error variance of interpolated LS estimates on every RE.

    Parameters
    ----------
    weights : Tensor ``[num_tx, streams, T, F, P]`` (:func:`interpolation_weights`).
    pilots : Tensor ``[num_tx, streams, P]`` complex, the pilot symbols.
    no : Tensor ``[B]`` real, N0 per batch element.

    Returns
    -------
    Tensor ``[B, 1, 1, num_tx, streams, T, F]`` real (the shape of Sionna's ``err_var``, one receive antenna
    axis broadcast).

    Examples
    --------
    >>> W = torch.tensor([0.5, 0.5, 1.5, -0.5]).reshape(1, 1, 1, 2, 2)    # between two pilots; extrapolated
    >>> ls_grid_error_variance(W, torch.ones(1, 1, 2, dtype=torch.complex64), torch.tensor([1.0])).flatten()
    tensor([0.5000, 2.5000])
    """
    p2 = pilots.abs().square()
    inv = torch.where(p2 > 0, 1.0 / p2.clamp_min(torch.finfo(p2.dtype).tiny), torch.zeros_like(p2))   # [nt, ns, P]
    per = (weights.abs().square() * inv[:, :, None, None, :]).sum(-1)                               # [nt, ns, T, F]
    return no.reshape(-1, 1, 1, 1, 1, 1, 1) * per.to(no.dtype)


def grid_covariances(channel, device=None, precision: str = "single", draws: int = 256
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Time ``[T, T]`` and frequency ``[F, F]`` covariances of a grid's channel coefficient, unit power.

    ``awgn`` and ``rayleigh`` (flat, constant over a slot; an AWGN grid is estimated as if its phase were
    unknown): all-ones matrices. ``tdl-*``: Sionna's :func:`~sionna.phy.ofdm.tdl_freq_cov_mat` and
    :func:`~sionna.phy.ofdm.tdl_time_cov_mat` (power delay profile, Jakes Doppler at the spec's speed; OFDM
    symbols of ``(fft_size + cyclic_prefix) / (fft_size * subcarrier_spacing)``). ``cdl-*``: sample
    covariances of ``draws`` slots of the model drawn from a fixed seed (the channel's own random stream is
    not touched), each normalised to a unit mean diagonal.

    With an oscillator impairment (:attr:`~phy.ofdm.channel.OFDMChannel.impairment`) the receiver knows its
    oscillator's statistics, not its realisation: the time covariance is multiplied by ``E exp(j (theta_t -
    theta_s))`` over ``D = fft_size + cyclic_prefix`` samples per OFDM symbol: ``exp(-pi linewidth D |t - s| /
    fs)`` for Wiener phase noise (``fs = fft_size * subcarrier_spacing``) and ``sinc(2 cfo D (t - s) / fs)`` for a
    CFO taken as uniform within ``+-|cfo|`` (a drift the estimate may follow between the pilot symbols). A
    constant phase (``phase_offset``, ``random_phase``) changes nothing.

    Examples
    --------
    >>> from phy.ofdm.channel import OFDMChannel
    >>> ct, cf = grid_covariances(OFDMChannel(model="tdl-A", fft_size=12, num_ofdm_symbols=14, speed=30.0))
    >>> ct.shape, cf.shape, round(float(cf[0, 0].real), 6), bool(ct[0, 13].real < 1)
    (torch.Size([14, 14]), torch.Size([12, 12]), 1.0, True)
    """
    ct, cf = _model_covariances(channel, device, precision, draws)
    imp = getattr(channel, "impairment", None)
    if imp is not None and imp.active:
        p = channel.params
        d = torch.arange(channel.num_ofdm_symbols, dtype=torch.float64)
        d = (d[:, None] - d[None, :]).abs()
        samples = (channel.grid_size + p["cyclic_prefix"]) / (channel.grid_size * p["subcarrier_spacing"])  # [s]
        osc = torch.exp(-math.pi * imp.phase_noise_linewidth * samples * d) * torch.sinc(2.0 * imp.cfo * samples * d)
        ct = ct * osc.to(ct.dtype).to(ct.device)
    return ct, cf


def _model_covariances(channel, device, precision, draws):
    from sionna.phy.ofdm import tdl_freq_cov_mat, tdl_time_cov_mat

    p = channel.params
    T, F = channel.num_ofdm_symbols, channel.grid_size
    cdt = torch.complex128 if precision == "double" else torch.complex64
    kind, _, profile = channel.model.partition("-")
    dev = str(device or "cpu")
    if kind in ("awgn", "rayleigh"):
        return torch.ones(T, T, dtype=cdt, device=dev), torch.ones(F, F, dtype=cdt, device=dev)
    if kind == "tdl":
        duration = (F + p["cyclic_prefix"]) / (F * p["subcarrier_spacing"])
        cf = tdl_freq_cov_mat(profile, p["subcarrier_spacing"], F, p["delay_spread"], precision=precision, device=dev)
        ct = tdl_time_cov_mat(profile, p["speed"], p["carrier_frequency"], duration, T, precision=precision,
                              device=dev)
        return ct.to(cdt), cf.to(cdt)
    from phy.channel.base import _sionna_rng

    blocks = channel._sionna(torch.device(dev), precision)
    with _sionna_rng(torch.Generator(device=dev).manual_seed(_COV_SEED)):
        h = blocks["gen"](int(draws))[:, 0, :, 0].to(torch.complex128)      # [draws, nr, nt, T, F]
    h = h.reshape(-1, T, F)
    cf = torch.einsum("btf,btg->fg", h, h.conj()) / (h.shape[0] * T)
    ct = torch.einsum("btf,bsf->ts", h, h.conj()) / (h.shape[0] * F)
    cf = cf / cf.diagonal().real.mean()
    ct = ct / ct.diagonal().real.mean()
    return ct.to(cdt), cf.to(cdt)


_COV_SEED = 20240618   # the fixed draws of a CDL grid's sample covariances


class GridLMMSE:
    """Joint time-frequency LMMSE channel estimation on a resource grid (the module docstring).

    Parameters
    ----------
    pilot_grid : Tensor ``[S, T, F]`` complex
        The pilot symbol of each stream on each resource element (0 where the stream sends no pilot); a stream's
        pilots must form a product set (OFDM symbols x subcarriers) and have one modulus.
    cov_t, cov_f : Tensor ``[T, T]``, ``[F, F]`` complex
        Time and frequency covariances of a channel coefficient (:func:`grid_covariances`).
    power : float
        ``E|h|^2`` of a coefficient (``R = power R_t (x) R_f``; ``1 / num_tx`` for the stream channels).

    Notes
    -----
    Calling it on ``y [B, R, T, F]`` (complex, the received grid of ``R`` receive antennas) and ``no [B]`` (N0)
    returns ``h_hat [B, R, S, T, F]`` and ``err_var [B, 1, S, T, F]`` (the same for every receive antenna).

    Examples
    --------
    >>> T, F = 4, 6
    >>> pilots = torch.zeros(1, T, F, dtype=torch.complex64); pilots[0, 1] = 1
    >>> est = GridLMMSE(pilots, torch.ones(T, T), torch.ones(F, F))      # a flat, constant channel
    >>> y = 0.5 * pilots[None]                                           # h = 0.5, noiseless pilots
    >>> h_hat, err = est(y, torch.tensor([0.6]))                         # 6 pilots average: s2 / 6 = 0.1
    >>> round(float(h_hat[0, 0, 0, 3, 5].real), 4), round(float(err[0, 0, 0, 0, 0]), 4)   # 0.5 / 1.1, 0.1 / 1.1
    (0.4545, 0.0909)
    """

    def __init__(self, pilot_grid: torch.Tensor, cov_t: torch.Tensor, cov_f: torch.Tensor, power: float = 1.0):
        if not isinstance(pilot_grid, torch.Tensor) or not pilot_grid.is_complex() or pilot_grid.dim() != 3:
            raise ValueError(f"pilot_grid must be a complex tensor [S, T, F], got "
                             f"{getattr(pilot_grid, 'dtype', type(pilot_grid).__name__)} "
                             f"{tuple(getattr(pilot_grid, 'shape', ()))}")
        S, T, F = pilot_grid.shape
        if tuple(cov_t.shape) != (T, T) or tuple(cov_f.shape) != (F, F):
            raise ValueError(f"cov_t must be [T, T] = [{T}, {T}] and cov_f [F, F] = [{F}, {F}], got "
                             f"{tuple(cov_t.shape)} and {tuple(cov_f.shape)}")
        if not 0 < float(power) < float("inf"):
            raise ValueError(f"power must be a positive finite number, got {power!r}")
        dev = pilot_grid.device
        on = pilot_grid != 0
        pt = torch.nonzero(on.any(-1).any(0)).flatten()                        # pilot OFDM symbols
        pf = []
        for s in range(S):
            cols = torch.nonzero(on[s].any(0)).flatten()
            if not bool(on[s][pt][:, cols].all()) or int(on[s].sum()) != pt.numel() * cols.numel():
                raise ValueError(f"stream {s}'s pilots are not a product set of OFDM symbols x subcarriers")
            pf.append(cols)
        if len({c.numel() for c in pf}) != 1:
            raise ValueError("every stream must have the same number of pilot subcarriers")
        pf = torch.stack(pf)                                                    # [S, Pf]
        x = torch.stack([pilot_grid[s][pt][:, pf[s]] for s in range(S)])       # [S, Pt, Pf]
        x2 = x.abs().square().to(torch.float64)
        if not torch.allclose(x2, x2.flatten()[:1].expand_as(x2), rtol=1e-4):
            raise ValueError("the pilots must have one modulus (white LS errors)")
        c64 = torch.complex128
        ct = cov_t.to(c64).to(dev) * float(power)
        cf = cov_f.to(c64).to(dev)
        lt, ut = torch.linalg.eigh(ct[pt][:, pt])
        rf_pp = torch.stack([cf[pf[s]][:, pf[s]] for s in range(S)])            # [S, Pf, Pf]
        lf, uf = torch.linalg.eigh(rf_pp)
        self.pt, self.pf, self.x, self.x2 = pt, pf, x, float(x2.flatten()[0])
        self.ut, self.uf = ut, uf                                               # [Pt, Pt], [S, Pf, Pf]
        self.lam = lt.clamp_min(0)[None, :, None] * lf.clamp_min(0)[:, None, :]  # [S, Pt, Pf]
        self.at = ct[:, pt] @ ut                                                # [T, Pt]
        self.af = torch.stack([cf[:, pf[s]] @ uf[s] for s in range(S)])         # [S, F, Pf]
        self.diag = (ct.diagonal().real[:, None] * cf.diagonal().real[None, :])  # [T, F]

    def __call__(self, y: torch.Tensor, no: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        S = self.pf.shape[0]
        B, R, T, F = y.shape
        yp = y[:, :, self.pt]                                                   # [B, R, Pt, F]
        h_ls = torch.stack([yp[..., self.pf[s]] for s in range(S)], 2).to(torch.complex128) / self.x.to(
            torch.complex128)                                                   # [B, R, S, Pt, Pf]
        s2 = no.to(torch.float64).reshape(B, 1, 1, 1) / self.x2                 # [B, 1, 1, 1]
        # noiseless (N0 = 0): a floor far below every eigenvalue that matters keeps 1 / (lam + s2) finite
        s2 = s2.clamp_min(1e-12 * float(self.lam.max()))
        g = 1.0 / (self.lam[None] + s2)                                         # [B, S, Pt, Pf]
        z = torch.einsum("ip,brspq,sqj->brsij", self.ut.conj().T, h_ls, self.uf.conj())
        h_hat = torch.einsum("ti,brsij,sfj->brstf", self.at, z * g[:, None].to(z.dtype), self.af)
        red = torch.einsum("ti,bsij,sfj->bstf", self.at.abs().square(), g, self.af.abs().square())
        err = (self.diag[None, None] - red).clamp_min(0)[:, None]                # [B, 1, S, T, F]
        return h_hat.to(y.dtype), err.to(y.real.dtype)
