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
from typing import Optional

import torch

from phy.mimo.equalization import CSI_MODES, estimate_csi

__all__ = ["ls_pilot_uses", "ls_error_variance", "estimate_mimo_csi"]


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


__all__ += ["receiver_csi"]
