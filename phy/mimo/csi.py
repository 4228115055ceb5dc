"""Estimated CSI for MIMO flat channels: least squares from orthogonal pilots, one estimate per coherence block.

Pilot scheme and error variance (``csi="ls"``)
    In every coherence block (``block_length`` channel uses of constant ``H [num_rx, num_tx]``) the
    transmitter sends an orthogonal pilot matrix ``P [num_tx, T]`` over ``T = num_pilots * num_tx``
    channel uses, with the same total energy per channel use as the SISO pilots of
    :mod:`phy.mimo.equalization` (1, all antennas together), e.g. ``P[t, k] = exp(-2 pi j t k / T) /
    sqrt(num_tx)`` (DFT rows; time-multiplexed pilots, one antenna at a time, are equivalent), so
    ``P P^H = (T / num_tx) I = num_pilots I``. The receiver sees ``Y = H P + N`` (``N`` i.i.d.
    ``CN(0, N0)``) and forms ``H_est = Y P^H (P P^H)^{-1} = H + E`` with
    ``E = N P^H / num_pilots``: the entries of ``E`` are i.i.d. ``CN(0, N0 / num_pilots)``
    (``N0 [(P P^H)^{-1}]_tt = N0 num_tx / T``), the SISO value, independent across receive and transmit
    antennas. Pilot cost: :func:`ls_pilot_uses` ``= num_pilots * num_tx`` channel uses per coherence
    block (``num_pilots`` counts pilots per transmit antenna). The links add them to their ledger.

    ``csi="noisy"`` draws ``E`` with the variance ``10**(-pilot_snr_db/10)`` per entry (no pilots counted).

Pilots and the receiver oscillator (:func:`send_and_estimate`)
    The pilots are sent in the same frame as the data: the ``T`` pilot uses of a coherence block precede
    its ``block_length`` data uses (front-loaded, as 5G's DMRS), so an oscillator impairment of the channel
    (:mod:`phy.channel.impairments`: phase offset, random phase, CFO, phase noise) runs over pilots and data
    alike, one phase per channel use of the frame. The pilot columns ``p_k`` see ``exp(j theta_k)``, so the
    LS estimate is ``H M + E`` with ``M = sum_k exp(j theta_k) p_k p_k^H / num_pilots`` (``M = exp(j theta)
    I`` for a constant phase: the estimate absorbs the common phase; a drift is tracked block by block, and
    what it leaves between the pilots and the data is an error the receiver does not know of).

The receiver (``csi="ls"``): LMMSE estimate and the error it leaves
    With the prior ``h ~ (mu, v)`` per coefficient (:func:`channel_prior`: the line of sight and ``1 / (K +
    1)`` of a Rician channel, ``(0, 1)`` for Rayleigh or when an oscillator impairment makes the phase
    unknown) the receiver uses ``h_hat = mu + v / (v + s2) (h_ls - mu)`` with ``s2 = N0 / num_pilots``
    (:func:`lmmse_from_ls`), whose error ``h - h_hat`` has the variance ``sigma_e^2 = v s2 / (v + s2)`` and is
    uncorrelated with ``h_hat``. With symbols of energy ``P`` the error term ``(h - h_hat) x`` is extra noise
    of variance ``sigma_e^2 P`` (per receive antenna, all streams together): the equaliser and the demapper
    use ``h_hat`` and ``N0 + sigma_e^2 P`` (for ZF the effective noise ``(N0 + sigma_e^2 P) / |h_hat|^2``), not
    ``h_ls`` and ``N0 / |h_ls|^2``, whose thresholds are biased for 16/64-QAM (``E[h | h_ls] = h_ls v / (v +
    s2)`` for Rayleigh). The entries are estimated one by one (antenna correlation is not used).

Example
-------
>>> import torch
>>> h = torch.ones(1, 2, 2, 8, dtype=torch.complex64)        # [batch, num_rx, num_tx, n]
>>> g = torch.Generator().manual_seed(0)
>>> est = estimate_mimo_csi(h, torch.full((1, 1, 1), 0.1), "ls", g, num_pilots=2, block_length=4)
>>> est.shape, bool((est[..., :4] == est[..., :1]).all())   # constant over each block of 4 uses
(torch.Size([1, 2, 2, 8]), True)
>>> ls_pilot_uses(8, num_tx=2, num_pilots=2, block_length=4)  # 2 blocks x 2 pilots x 2 antennas
8
"""
from __future__ import annotations

import math
import numbers
from typing import Optional, Tuple

import torch

from phy.channel.base import ChannelOutput, complex_normal
from phy.utils.conventions import db_to_lin

__all__ = ["estimate_csi", "CSI_MODES", "ls_pilot_uses", "ls_error_variance", "estimate_mimo_csi", "receiver_csi", "channel_prior", "lmmse_from_ls",
           "pilot_matrix", "send_and_estimate"]

#: The receiver's channel knowledge of :class:`phy.mimo.equalization.Equalizer` (``csi=``): perfect, least-squares pilots, or a noisy estimate.
CSI_MODES = ("perfect", "ls", "noisy")


def estimate_csi(h: Optional[torch.Tensor], no: torch.Tensor, mode: str, generator: torch.Generator,
                 num_pilots: int = 1, pilot_snr_db: Optional[float] = None, block_length: int = 1
                 ) -> Optional[torch.Tensor]:
    """The receiver's estimate of ``h`` ``[..., n]`` (see the module docstring for the modes).

    ``block_length = L > 1``: ``h`` is constant over blocks of ``L`` symbols and the estimation
    error is drawn once per block (``no`` must then be per example, ``[..., 1]`` or a scalar).

    Examples
    --------
    >>> h = torch.ones(1, 4, dtype=torch.complex64)
    >>> g = torch.Generator().manual_seed(0)
    >>> torch.equal(estimate_csi(h, torch.tensor([[0.1]]), "perfect", g), h)
    True
    >>> h_ls = estimate_csi(h, torch.tensor([[0.1]]), "ls", g, num_pilots=4)
    >>> h_ls.shape, bool((h_ls != h).all())      # LS estimate: h plus CN(0, N0 / num_pilots)
    (torch.Size([1, 4]), True)
    """
    if mode not in CSI_MODES:
        raise ValueError(f"csi must be one of {CSI_MODES}, got {mode!r}")
    if isinstance(block_length, bool) or not isinstance(block_length, numbers.Integral) or block_length < 1:
        raise ValueError(f"block_length must be a positive int, got {block_length!r}")
    if h is None or mode == "perfect":
        return h
    if mode == "ls":
        var = no / num_pilots
    else:
        var = torch.as_tensor(1.0 / db_to_lin(float(pilot_snr_db)), dtype=no.dtype, device=h.device)
    std = torch.sqrt(var).to(h.device)
    L = int(block_length)
    if L == 1:
        return h + complex_normal(h.shape, generator, dtype=h.dtype, device=h.device) * std
    n = h.shape[-1]
    if n % L:
        raise ValueError(f"block_length={L} must divide the number of channel uses n={n}")
    if std.dim() and std.shape[-1] != 1:
        raise ValueError(f"per-block CSI estimation needs one N0 per example ([..., 1]), got no of shape "
                         f"{tuple(std.shape)}")
    e = complex_normal((*h.shape[:-1], n // L), generator, dtype=h.dtype, device=h.device) * std
    return h + e.unsqueeze(-1).expand(*e.shape, L).reshape(h.shape)




def _pos_int(v, name):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")
    return int(v)


def ls_pilot_uses(n: int, num_tx: int, num_pilots: int = 1, block_length: int = 1) -> int:
    """Pilot channel uses for ``n`` data uses: ``num_pilots * num_tx`` per coherence block of ``block_length``.

    Examples
    --------
    >>> ls_pilot_uses(100, num_tx=2, num_pilots=1, block_length=32)    # 4 blocks (the last one partial) x 2
    8
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"n (data channel uses) must be an int >= 0, got {n!r}")
    return _pos_int(num_pilots, "num_pilots") * _pos_int(num_tx, "num_tx") * math.ceil(
        n / _pos_int(block_length, "block_length"))


def ls_error_variance(no, num_pilots: int = 1):
    """Variance of each entry of the LS error ``E``: ``N0 / num_pilots`` (see the module docstring).

    Examples
    --------
    >>> ls_error_variance(0.5, 4)
    0.125
    """
    _pos_int(num_pilots, "num_pilots")
    return no / num_pilots


def estimate_mimo_csi(h: torch.Tensor, no, mode: str, generator: torch.Generator, num_pilots: int = 1,
                      pilot_snr_db: Optional[float] = None, block_length: int = 1) -> torch.Tensor:
    """The receiver's estimate of ``h [..., num_rx, num_tx, n]`` (complex): ``h + E``, one ``E`` per
    coherence block of ``block_length`` uses (``"perfect"``: ``h`` itself).

    ``no`` is N0 per receive antenna as the MIMO channel returns it (a scalar or ``[..., 1, 1]``, one
    value per example, broadcastable to ``y [..., num_rx, n]``). The errors come from ``generator``
    (the channel's random stream).

    Examples
    --------
    >>> import torch
    >>> h = torch.zeros(20000, 2, 2, 4, dtype=torch.complex64)          # [batch, num_rx, num_tx, n]
    >>> e = estimate_mimo_csi(h, torch.full((20000, 1, 1), 0.5), "ls", torch.Generator().manual_seed(0),
    ...                       num_pilots=2, block_length=4)
    >>> round(float(e[..., 0].abs().pow(2).mean()), 2), bool((e == e[..., :1]).all())   # N0 / 2, one per block
    (0.25, True)
    """
    if mode not in CSI_MODES:
        raise ValueError(f"csi must be one of {CSI_MODES}, got {mode!r}")
    if not isinstance(h, torch.Tensor) or not h.is_complex() or h.dim() < 3:
        raise ValueError(f"h must be a complex tensor [..., num_rx, num_tx, n], got "
                         f"{type(h).__name__} {tuple(getattr(h, 'shape', ()))}")
    if mode == "perfect":
        return h
    no_t = torch.as_tensor(no, dtype=h.real.dtype, device=h.device)
    if no_t.dim():
        if no_t.dim() < 2 or no_t.shape[-1] != 1 or no_t.shape[-2] != 1:
            raise ValueError(f"MIMO CSI estimation needs one N0 per example (no of shape [..., 1, 1]), got "
                             f"{tuple(no_t.shape)}")
        no_t = no_t.unsqueeze(-1)  # [..., 1, 1, 1]: broadcast over num_rx, num_tx, n
    return estimate_csi(h, no_t, mode, generator, num_pilots, pilot_snr_db, block_length)


def receiver_csi(channel, out, equalizer) -> torch.Tensor:
    """The MIMO ``h`` a link's receiver uses: ``out.h`` estimated as ``equalizer`` says (its ``csi``,
    ``num_pilots``, ``pilot_snr_db``; :class:`phy.mimo.equalization.Equalizer`), one estimate per coherence
    block of ``channel.block_length``, errors from ``channel``'s generator.

    ``out.h`` has shape ``[..., num_rx, num_tx, n]``; so does the result.

    Examples
    --------
    >>> import torch
    >>> from phy.channel.flat import Rayleigh
    >>> from phy.mimo.equalization import Equalizer
    >>> ch = Rayleigh(num_tx=2, num_rx=2, block_length=4, seed=0)
    >>> out = ch(torch.ones(3, 2, 8, dtype=torch.complex64) / 2 ** 0.5, torch.full((3, 1, 1), 0.1))
    >>> h_est = receiver_csi(ch, out, Equalizer("zf", csi="ls"))
    >>> h_est.shape, bool((h_est[..., :4] == h_est[..., :1]).all()), bool((h_est != out.h).all())
    (torch.Size([3, 2, 2, 8]), True, True)
    """
    if equalizer.csi == "perfect":
        return out.h
    L = getattr(channel, "block_length", 1)
    L = int(L) if isinstance(L, numbers.Integral) and not isinstance(L, bool) and L > 1 else 1
    return estimate_mimo_csi(out.h, out.no, equalizer.csi, channel.generator(out.h.device), equalizer.num_pilots,
                             equalizer.pilot_snr_db, L)



def channel_prior(channel) -> Tuple[complex, float]:
    """Mean ``mu`` and variance ``v`` of one channel coefficient as the LMMSE receiver assumes them.

    A Rician channel (``k_factor`` K, ``los_phase``): ``mu = sqrt(K / (K + 1)) exp(j los_phase)``, ``v = 1 /
    (K + 1)``; Rayleigh and every other channel: ``(0, 1)`` (``E|h|^2 = 1``, the package convention). With an
    active oscillator impairment the phase of the line of sight is unknown to the receiver: ``(0, 1)``.

    Examples
    --------
    >>> from phy.channel.flat import Rayleigh, Rician
    >>> channel_prior(Rayleigh())
    (0j, 1.0)
    >>> mu, v = channel_prior(Rician(k_factor=3.0))
    >>> round(abs(mu) ** 2, 6), v
    (0.75, 0.25)
    """
    imp = getattr(channel, "impairment", None)
    k = getattr(channel, "k_factor", 0.0)
    if (imp is not None and imp.active) or not isinstance(k, numbers.Real) or not k > 0:
        return 0j, 1.0
    k = float(k)
    phase = float(getattr(channel, "los_phase", 0.0))
    return complex(math.sqrt(k / (k + 1.0)) * math.cos(phase), math.sqrt(k / (k + 1.0)) * math.sin(phase)), \
        1.0 / (k + 1.0)


def lmmse_from_ls(h_ls: torch.Tensor, ls_var, mean: complex = 0j, var: float = 1.0
                  ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The LMMSE estimate ``E[h | h_ls] = mu + v / (v + s2) (h_ls - mu)`` and its error variance ``v s2 / (v + s2)``.

    ``h_ls = h + e`` with ``e ~ CN(0, s2)`` independent of ``h ~ (mu, v)`` (the module docstring).

    Parameters
    ----------
    h_ls : Tensor ``[..., n]`` complex, the LS estimate.
    ls_var : float or Tensor broadcastable to ``h_ls``, real: ``s2``, its error variance.
    mean, var : the prior mean ``mu`` and variance ``v`` of ``h`` (:func:`channel_prior`).

    Returns
    -------
    h_hat : Tensor ``[..., n]`` complex
    err_var : Tensor of ``ls_var``'s shape, real: ``E|h - h_hat|^2``.

    Examples
    --------
    >>> h_hat, err = lmmse_from_ls(torch.tensor([1.0 + 1.0j]), torch.tensor(0.25))
    >>> h_hat, err                                              # shrunk by 1 / 1.25
    (tensor([0.8000+0.8000j]), tensor(0.2000))
    """
    if not isinstance(h_ls, torch.Tensor) or not h_ls.is_complex():
        raise TypeError(f"h_ls must be a complex torch.Tensor, got {getattr(h_ls, 'dtype', type(h_ls).__name__)}")
    if isinstance(var, bool) or not isinstance(var, numbers.Real) or not 0 < var < math.inf:
        raise ValueError(f"var (prior variance of h) must be a positive finite number, got {var!r}")
    s2 = torch.as_tensor(ls_var, dtype=h_ls.real.dtype, device=h_ls.device)
    if bool((s2 < 0).any()):
        raise ValueError("ls_var (LS error variance) must be >= 0")
    w = var / (var + s2)
    h_hat = h_ls * w if mean == 0 else mean + (h_ls - mean) * w
    return h_hat, w * s2


def pilot_matrix(num_tx: int, num_pilots: int = 1, dtype=torch.complex64, device=None) -> torch.Tensor:
    """The orthogonal pilots ``P [num_tx, T]``, ``T = num_pilots * num_tx``: ``P[t, k] = exp(-2 pi j t k / T) /
    sqrt(num_tx)`` (DFT rows; unit energy per channel use, ``P P^H = num_pilots I``; all ones for one antenna).

    Examples
    --------
    >>> P = pilot_matrix(2, num_pilots=2)
    >>> P.shape, torch.allclose(P @ P.conj().T, 2 * torch.eye(2, dtype=P.dtype), atol=1e-6)
    (torch.Size([2, 4]), True)
    """
    nt, npil = _pos_int(num_tx, "num_tx"), _pos_int(num_pilots, "num_pilots")
    T = nt * npil
    tk = torch.outer(torch.arange(nt, dtype=torch.float64), torch.arange(T, dtype=torch.float64))
    return (torch.polar(torch.ones_like(tk), -2.0 * math.pi * tk / T) / math.sqrt(nt)).to(dtype).to(device)


def _impairment_of(channel):
    imp = getattr(channel, "impairment", None)
    if imp is None or not imp.active or getattr(channel, "applies_impairment", False):
        return None
    return imp


def _send_pilot_frame(channel, x: torch.Tensor, no, num_pilots: int, block_length: int):
    """``channel(x, no)`` with the pilots in the frame: ``(out, h_pilot)``, ``h_pilot`` the channel the LS
    estimate converges to (``out.h`` without an oscillator impairment; else ``H M`` per coherence block, the
    module docstring), ``out.y`` rotated at the data's times of the frame."""
    from phy.channel.impairments import apply_phase, phase_trajectory

    imp = _impairment_of(channel)
    if imp is None:
        out = channel(x, no)
        return out, out.h
    out = channel.forward(x, no)       # the channel without its oscillator hook: the oscillator runs below
    y = out.y
    mimo = bool(getattr(channel, "is_mimo", False)) and y.dim() >= 2
    nt = int(getattr(channel, "num_tx", 1)) if mimo else 1
    n, L, T = y.shape[-1], int(block_length), num_pilots * nt
    if out.h is None or n % L:
        raise ValueError(f"pilots in the frame need a fading channel with block_length={L} dividing the n={n} "
                         f"channel uses; got h={'None' if out.h is None else 'given'}")
    nb = n // L
    batch = y.shape[:-2] + (1,) if mimo else y.shape[:-1]   # one oscillator for all receive antennas
    gen = channel.generator(y.device) if imp.random else None
    theta = phase_trajectory(batch, nb * (T + L), imp, gen, dtype=y.real.dtype, device=y.device)
    theta = theta.reshape(*batch, nb, T + L)
    y = apply_phase(y, theta[..., T:].reshape(*batch, n))
    rot = torch.polar(torch.ones_like(theta[..., :T]), theta[..., :T]).to(y.dtype)   # [*batch, nb, T]
    if not mimo:
        h_pilot = out.h * rot.mean(-1).repeat_interleave(L, -1)
    else:
        P = pilot_matrix(nt, num_pilots, y.dtype, y.device)                            # [nt, T]
        M = torch.einsum("...bk,ak,ck->...bac", rot[..., 0, :, :], P, P.conj()) / num_pilots   # [..., nb, nt, nt]
        hb = out.h[..., ::L]                                                           # [..., nr, nt, nb]
        h_pilot = torch.einsum("...rab,...bac->...rcb", hb, M).repeat_interleave(L, -1)
    return ChannelOutput(y=y, h=out.h, no=out.no), h_pilot


def send_and_estimate(channel, x: torch.Tensor, no, equalizer, power: float = 1.0
                      ) -> Tuple[ChannelOutput, Optional[torch.Tensor], torch.Tensor]:
    """Send ``x`` through ``channel`` with ``equalizer``'s pilots and return what its receiver works with.

    Parameters
    ----------
    channel : a flat channel (SISO ``x [..., n]`` or MIMO ``x [..., num_tx, n]``).
    x : Tensor, complex: the data symbols.
    no : N0, broadcastable to ``y`` (``[..., 1]`` SISO, ``[..., 1, 1]`` MIMO: one per example).
    equalizer : :class:`phy.mimo.equalization.Equalizer` (its ``csi``, ``num_pilots``, ``pilot_snr_db``).
    power : float
        Energy per channel use of the data (all antennas together): the weight of the estimation error.

    Returns
    -------
    out : ChannelOutput
        ``y`` (with the oscillator impairment at the data's times of the pilot frame), the true ``h``, ``N0``.
    h_hat : Tensor of ``out.h``'s shape or None
        ``"perfect"``: ``out.h``; ``"ls"``: the LMMSE estimate from pilots that passed the same oscillator
        (:func:`lmmse_from_ls`); ``"noisy"``: ``h + e`` (no pilots).
    no_rx : Tensor of ``out.no``'s shape
        The noise the receiver accounts for: ``N0``, plus ``sigma_e^2 * power`` with ``"ls"``.

    Examples
    --------
    >>> from phy.channel.registry import make_channel
    >>> from phy.mimo.equalization import Equalizer
    >>> ch = make_channel("rayleigh(block_length=8,random_phase=1)", seed=0)
    >>> x = torch.ones(2, 16, dtype=torch.complex64)
    >>> out, h_hat, no_rx = send_and_estimate(ch, x, torch.full((2, 1), 1e-4), Equalizer("zf", csi="ls", num_pilots=4))
    >>> bool(((out.y / h_hat - x).abs() < 0.05).all()), round(float(no_rx[0, 0]), 7)   # the phase is absorbed
    (True, 0.000125)
    """
    L = getattr(channel, "block_length", 1)
    L = int(L) if isinstance(L, numbers.Integral) and not isinstance(L, bool) and L > 1 else 1
    if equalizer.csi != "ls":
        out = channel(x, no)
        if equalizer.csi == "perfect" or out.h is None:
            return out, out.h, out.no
        mimo = out.h.dim() == out.y.dim() + 1
        if mimo:
            h_hat = estimate_mimo_csi(out.h, out.no, "noisy", channel.generator(x.device), equalizer.num_pilots,
                                      equalizer.pilot_snr_db, L)
        else:
            h_hat = estimate_csi(out.h, out.no, "noisy", channel.generator(x.device), equalizer.num_pilots,
                                 equalizer.pilot_snr_db, L)
        return out, h_hat, out.no
    out, h_pilot = _send_pilot_frame(channel, x, no, equalizer.num_pilots, L)
    if out.h is None:
        return out, None, out.no
    gen = channel.generator(x.device)
    mimo = out.h.dim() == out.y.dim() + 1
    if mimo:
        h_ls = estimate_mimo_csi(h_pilot, out.no, "ls", gen, equalizer.num_pilots, None, L)
    else:
        h_ls = estimate_csi(h_pilot, out.no, "ls", gen, equalizer.num_pilots, None, L)
    s2 = ls_error_variance(out.no, equalizer.num_pilots)
    mean, var = channel_prior(channel)
    h_hat, _ = lmmse_from_ls(h_ls, s2.unsqueeze(-1) if mimo and s2.dim() else s2, mean, var)
    err = var * s2 / (var + s2)
    return out, h_hat, out.no + err * float(power)

