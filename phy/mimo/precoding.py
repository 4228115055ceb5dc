"""SVD precoding (eigen-beamforming) of analog MIMO links with transmitter CSI (CSIT).

**Needs CSIT**: the transmitter knows the channel matrix ``H`` of every channel use before sending
(a genie / perfect feedback; the receiver knows it too). Per channel use, ``H = U diag(sigma) V^H``
with ``K = min(num_tx, num_rx)`` eigenmodes (``sigma_1 >= ... >= sigma_K``); ``K`` unit-variance
streams ``u`` (the link's symbols ``s = sqrt(P) u``) are sent as ``x = V_K diag(sqrt(p)) u`` with
``sum_i p_i = P`` (the total energy per channel use, all antennas together, the package's Es). The
receiver rotates ``r = U_K^H y``: ``r_i = sigma_i sqrt(p_i) u_i + n_i``, ``n_i ~ CN(0, N0)``
independent, and applies a scalar LMMSE per eigenmode, whose error is (unit-variance streams)::

    mse_i = 1 / (1 + p_i g_i),     g_i = sigma_i^2 / N0

MSE-optimal power allocation (:func:`mmse_power_allocation`): minimise ``sum_i mse_i`` subject to
``sum_i p_i = P``, ``p_i >= 0``. KKT: ``g_i / (1 + p_i g_i)^2 = mu`` on the active modes, ``g_i <= mu``
on the others, so ``p_i = (1 / sqrt(mu g_i) - 1 / g_i)^+`` -- the water-filling of the MMSE problem
(stronger modes first; weak ones get nothing at low SNR). Equal power ``p_i = P / K`` is feasible, so
the optimum is never worse than spatial multiplexing with LMMSE when ``num_tx <= num_rx`` (whose total
MSE is ``sum_i 1 / (1 + (P / num_tx) sigma_i^2 / N0)``). With one mode (``1 x 1``, ``1 x N``, ``N x 1``)
``p_1 = P`` and ``mse = 1 / (1 + P ||h||^2 / N0)``, the SISO / MRC MMSE result.

A link spends ``ceil(symbols / K)`` channel uses (K streams per resource element).

Example
-------
>>> import torch
>>> p = mmse_power_allocation(torch.tensor([[9.0, 1.0]]), 1.0)      # gains sigma^2 / N0
>>> [round(v, 4) for v in p[0].tolist()]                          # the weaker mode gets more here
[0.4167, 0.5833]
>>> mmse_power_allocation(torch.tensor([[100.0, 0.001]]), 1.0)[0].tolist()   # a weak mode is switched off
[1.0, 0.0]
"""
from __future__ import annotations

import math
import numbers
from typing import Tuple

import torch

__all__ = ["mmse_power_allocation", "eigenmode_mse", "svd_eigenmodes", "svd_transmit", "PRECODINGS"]

#: ``AnalogLink(precoding=...)`` values: ``None`` (spatial multiplexing, no CSIT) or ``"svd"`` (eigen-beamforming)
PRECODINGS = (None, "svd")


def _check_power(total_power):
    if isinstance(total_power, bool) or not isinstance(total_power, numbers.Real) or \
            not (total_power > 0 and math.isfinite(total_power)):
        raise ValueError(f"total_power must be a positive finite number, got {total_power!r}")
    return float(total_power)


def mmse_power_allocation(gains: torch.Tensor, total_power: float) -> torch.Tensor:
    """Powers ``p [..., K]`` minimising ``sum_i 1 / (1 + p_i g_i)`` with ``sum_i p_i = total_power``.

    Parameters
    ----------
    gains : Tensor ``[..., K]``, real, >= 0
        Eigenmode gains ``g_i = sigma_i^2 / N0`` (any order; a zero gain gets no power).
    total_power : float
        ``P`` (> 0).

    Returns
    -------
    Tensor ``[..., K]`` (dtype of ``gains``), in the order of ``gains``. Where every gain is zero the power
    is split equally (the MSE does not depend on it).

    Examples
    --------
    >>> p = mmse_power_allocation(torch.tensor([[9.0, 1.0]]), 1.0)
    >>> round(float(p.sum()), 6), bool(p[0, 1] > p[0, 0])     # all the power; the weaker mode gets more
    (1.0, True)
    >>> mmse_power_allocation(torch.tensor([[100.0, 0.001]]), 1.0)[0].tolist()   # a weak mode is switched off
    [1.0, 0.0]
    """
    if not isinstance(gains, torch.Tensor) or gains.is_complex() or gains.dim() < 1:
        raise ValueError(f"gains must be a real tensor [..., K], got {type(gains).__name__} "
                         f"{getattr(gains, 'dtype', '')}")
    if gains.numel() and (torch.isnan(gains).any() or (gains < 0).any()):
        raise ValueError("gains must be >= 0 (sigma_i^2 / N0), got negative or NaN values")
    P = _check_power(total_power)
    g = gains.double()
    gs, order = torch.sort(g, dim=-1, descending=True)
    pos = gs > 0
    inv = torch.where(pos, 1.0 / gs.clamp_min(1e-300), torch.zeros_like(gs))
    inv_sqrt = torch.where(pos, 1.0 / gs.clamp_min(1e-300).sqrt(), torch.zeros_like(gs))
    a = (P + inv.cumsum(-1)) / inv_sqrt.cumsum(-1).clamp_min(1e-300)     # 1/sqrt(mu) with the k strongest active
    ok = pos & (a * gs.sqrt() > 1.0)                                     # the k-th (weakest) one gets power
    k = (ok.long() * torch.arange(1, gs.shape[-1] + 1, device=g.device)).amax(-1, keepdim=True)   # active count
    a_k = torch.gather(a, -1, (k - 1).clamp_min(0))
    idx = torch.arange(gs.shape[-1], device=g.device)
    ps = torch.where(idx < k, a_k * inv_sqrt - inv, torch.zeros_like(gs)).clamp_min(0)
    ps = torch.where(k == 0, torch.full_like(gs, P / gs.shape[-1]), ps)
    p = torch.empty_like(ps).scatter_(-1, order, ps)
    return p.to(gains.dtype)


def eigenmode_mse(gains: torch.Tensor, power: torch.Tensor) -> torch.Tensor:
    """Per-mode LMMSE error of unit-variance streams: ``1 / (1 + p_i g_i)``.

    Parameters
    ----------
    gains, power : Tensor ``[..., K]``, real
        Eigenmode gains ``sigma_i^2 / N0`` and the powers given to the modes.

    Returns
    -------
    Tensor ``[..., K]``: the mean-square error of each mode's LMMSE estimate.

    Examples
    --------
    >>> eigenmode_mse(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 1.0])).tolist()
    [0.5, 0.25]
    """
    return 1.0 / (1.0 + power * gains)


def svd_eigenmodes(h: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``h [..., M, N, n]`` (num_rx, num_tx, channel uses) -> ``U_K [..., n, M, K]``, ``sigma [..., n, K]``
    (descending), ``V_K [..., n, N, K]`` with ``K = min(M, N)`` and ``H = U_K diag(sigma) V_K^H`` per use.

    Examples
    --------
    >>> h = torch.tensor([[3.0, 0.0], [0.0, 1.0]], dtype=torch.complex64).reshape(2, 2, 1)   # one use
    >>> u, sigma, v = svd_eigenmodes(h)
    >>> u.shape, sigma.tolist(), torch.allclose(u @ torch.diag_embed(sigma).to(u.dtype) @ v.mH, h.movedim(-1, -3))
    (torch.Size([1, 2, 2]), [[3.0, 1.0]], True)
    """
    ht = h.movedim(-1, -3)                                  # [..., n, M, N]
    u, s, vh = torch.linalg.svd(ht, full_matrices=False)    # u [..., M, K], s [..., K], vh [..., K, N]
    return u, s, vh.conj().transpose(-1, -2)


def svd_transmit(channel, s: torch.Tensor, no_t: torch.Tensor, power: float = 1.0):
    """Send symbols ``s [*batch, m]`` (mean energy ``power``) over a MIMO ``channel`` with SVD precoding.

    The transmitter learns ``H`` (CSIT) by replaying the channel's random stream: the channel is run
    once to read ``h``, its generator state restored, and the precoded symbols sent through it (the
    channel draws ``h`` before the noise, so the second pass sees the same ``h`` -- checked).
    Symbol ``j`` goes on eigenmode ``j % K`` of channel use ``j // K`` (zero padding to whole uses).

    Returns ``(s_hat [*batch, m], error variance [*batch, m], N0, antenna symbols [*batch, num_tx, uses],
    powers p [*batch, K, uses])``: the LMMSE estimates and their error variances ``power / (1 + p_i g_i)``.

    Examples
    --------
    >>> from phy.channel.flat import Rayleigh
    >>> ch = Rayleigh(num_tx=2, num_rx=2, seed=0)
    >>> s = torch.randn(3, 8, dtype=torch.complex64)                    # 8 symbols -> 4 uses of 2 eigenmodes
    >>> s_hat, err, no, x, p = svd_transmit(ch, s, torch.full((3, 1), 1e-3))
    >>> s_hat.shape, x.shape, torch.allclose(p.sum(-2), torch.ones(3, 4, dtype=p.dtype))   # total power 1 per use
    (torch.Size([3, 8]), torch.Size([3, 2, 4]), True)
    """
    from phy.mimo.zf_mmse import equalize

    P = _check_power(power)
    nt, nr = int(channel.num_tx), int(channel.num_rx)
    K = min(nt, nr)
    m = s.shape[-1]
    batch = s.shape[:-1]
    pad = (-m) % K
    sp = torch.nn.functional.pad(s, (0, pad)) if pad else s
    u = sp.reshape(*batch, -1, K)                            # [*batch, uses, K], energy P each
    uses = u.shape[-2]
    no_ch = no_t.unsqueeze(-1)                               # [*batch, 1, 1] per receive antenna
    gen = channel.generator(s.device)
    state = gen.get_state()
    probe = torch.zeros(*batch, nt, uses, dtype=s.dtype, device=s.device)
    h = channel(probe, no_ch).h                              # [*batch, nr, nt, uses]: the CSIT
    gen.set_state(state)
    U, sigma, V = svd_eigenmodes(h)                          # [*batch, uses, ...]
    no_sym = no_ch.to(sigma.dtype)                           # [*batch, 1, 1] -> broadcast over uses, K
    gains = sigma.square() / no_sym.clamp_min(torch.finfo(sigma.dtype).tiny)
    p = mmse_power_allocation(gains, P)                      # [*batch, uses, K]
    amp = (p / P).sqrt()
    x = (V @ (amp * u).unsqueeze(-1).to(V.dtype))[..., 0]    # [*batch, uses, nt]
    x = x.transpose(-1, -2)                                  # [*batch, nt, uses]
    out = channel(x, no_ch)
    if not torch.equal(out.h, h):
        raise RuntimeError("SVD precoding needs a channel whose h does not depend on x and is drawn before the "
                           "noise (replaying its random stream gave a different h)")
    r = (U.conj().transpose(-1, -2) @ out.y.transpose(-1, -2).unsqueeze(-1))[..., 0]   # [*batch, uses, K]
    a = (sigma * amp).to(r.dtype)                            # r_i = a_i s_i + n_i
    s_hat, var = equalize(r, a, no_sym.expand(r.shape), "mmse", P)
    s_hat = s_hat.reshape(*batch, -1)[..., :m]
    var = var.expand(r.shape).reshape(*batch, -1)[..., :m]
    return s_hat, var, out.no, x, p.transpose(-1, -2)
