"""Shannon capacities (bits per complex channel use) and a capacity-achieving code abstraction.

All SNRs are Es/N0 per complex channel use in dB (Gaussian inputs, receiver CSI).

* :func:`awgn_capacity`: ``C = log2(1 + snr)``.
* :func:`rayleigh_ergodic_capacity`: ``E[log2(1 + |h|^2 snr)]``, ``|h|^2 ~ Exp(1)``, in closed form
  ``log2(e) * exp(1/snr) * E1(1/snr)`` (``E1`` the exponential integral, ``scipy.special.exp1``).
* :func:`rayleigh_outage_capacity`: the largest rate with ``P(log2(1 + |h|^2 snr) < R) <= eps``
  for block fading: ``log2(1 - snr * ln(1 - eps))``.
* :class:`IdealCode`: an ideal code spending ``n`` channel uses delivers a payload error-free iff
  it fits the capacity (see the class for the modes), otherwise the block is in outage.

Example
-------
>>> round(awgn_capacity(0.0), 6)
1.0
>>> round(rayleigh_ergodic_capacity(10.0), 4)
2.9065
>>> IdealCode(100, capacity="awgn").max_payload(0.0)
100
"""
from __future__ import annotations

import math
import numbers
from typing import Optional

import numpy as np
import torch

__all__ = ["awgn_capacity", "rayleigh_ergodic_capacity", "rayleigh_outage_capacity",
           "instantaneous_capacity", "channel_rate_bits", "IdealCode", "CAPACITY_MODES"]

#: The ``capacity`` modes of :class:`IdealCode`.
CAPACITY_MODES = ("awgn", "rayleigh_ergodic", "rayleigh_outage", "instantaneous")


def _snr_lin(snr_db):
    if isinstance(snr_db, torch.Tensor):
        snr_db = snr_db.detach().cpu().double().numpy()
    if isinstance(snr_db, bool) or not isinstance(snr_db, (numbers.Real, np.ndarray, list, tuple)):
        raise TypeError(f"snr_db must be a real number or array, got {type(snr_db).__name__}: {snr_db!r}")
    arr = np.asarray(snr_db, dtype=float)
    if np.isnan(arr).any():
        raise ValueError("snr_db must not be NaN")
    return arr


def _out(x, snr_db):
    if isinstance(snr_db, numbers.Real):
        return float(x)
    return np.asarray(x)


def awgn_capacity(snr_db):
    """``log2(1 + snr)`` bits per complex channel use (float, or ndarray for array input).

    Examples
    --------
    >>> awgn_capacity(0.0)
    1.0
    >>> awgn_capacity(np.array([0.0, 10.0])).round(4)
    array([1.    , 3.4594])
    """
    snr = 10.0 ** (_snr_lin(snr_db) / 10.0)
    return _out(np.log2(1.0 + snr), snr_db)


def rayleigh_ergodic_capacity(snr_db):
    """Ergodic capacity of i.i.d. Rayleigh fading with receiver CSI:
    ``E[log2(1 + g snr)] = log2(e) exp(1/snr) E1(1/snr)``, ``g ~ Exp(1)``.

    For large ``1/snr`` the scaled form ``exp(x) E1(x)`` is evaluated as ``scipy.special.exp1`` times
    ``exp`` in log space to avoid overflow.

    Examples
    --------
    >>> round(float(rayleigh_ergodic_capacity(10.0)), 4)   # below the AWGN 3.4594 (Jensen)
    2.9065
    """
    from scipy.special import exp1

    snr = 10.0 ** (_snr_lin(snr_db) / 10.0)
    x = 1.0 / snr
    with np.errstate(over="ignore", under="ignore"):
        small = x < 600
        val = np.where(small, np.exp(np.minimum(x, 600)) * exp1(np.minimum(x, 600)),
                       1.0 / x - 1.0 / x ** 2 + 2.0 / x ** 3)  # asymptotic e^x E1(x) for huge x
    return _out(math.log2(math.e) * val, snr_db)


def rayleigh_outage_capacity(snr_db, outage: float):
    """Epsilon-outage capacity of Rayleigh block fading: ``log2(1 - snr ln(1 - outage))``.

    ``P(log2(1 + g snr) < C_eps) = 1 - exp(-(2^C_eps - 1)/snr) = outage``.

    Examples
    --------
    >>> round(float(rayleigh_outage_capacity(10.0, outage=0.1)), 4)
    1.0382
    """
    if isinstance(outage, bool) or not isinstance(outage, numbers.Real) or not 0 < outage < 1:
        raise ValueError(f"outage must be a probability in (0, 1), got {outage!r}")
    snr = 10.0 ** (_snr_lin(snr_db) / 10.0)
    return _out(np.log2(1.0 - snr * math.log1p(-outage)), snr_db)


def instantaneous_capacity(h: Optional[torch.Tensor], snr_db, n: int) -> torch.Tensor:
    """Mutual information (bits) of ``n`` channel uses with realised coefficients ``h``:
    ``sum_i log2(1 + |h_i|^2 snr)`` over the last dimension (``h=None`` means ``h = 1``).

    ``snr_db`` is a number or a tensor of one SNR per example (shape ``h.shape[:-1]``).
    Returns a float64 tensor of shape ``h.shape[:-1]`` (a 0-d tensor if ``h`` is None and
    ``snr_db`` a number).

    Examples
    --------
    >>> h = torch.ones(2, 3, dtype=torch.complex64)
    >>> instantaneous_capacity(h, 0.0, n=3)                # 3 uses x log2(1 + 1)
    tensor([3., 3.], dtype=torch.float64)
    """
    snr = torch.pow(10.0, torch.as_tensor(snr_db, dtype=torch.float64) / 10.0)
    if h is None:
        return n * torch.log2(1.0 + snr)
    g = (h.real.double().square() + h.imag.double().square())
    snr = snr.to(g.device)
    if snr.dim() > 0:
        snr = snr.unsqueeze(-1)
    return torch.log2(1.0 + g * snr).sum(-1)


def channel_rate_bits(channel, uses: int, snr_db: float, draws: int = 2000):
    """Bits that ``uses`` complex uses of ``channel`` can carry at ``snr_db``, as the OPTA needs them.

    Returns ``(mode, rates)`` with ``rates`` a float64 ndarray:

    * ``"awgn"`` (no fading): ``[uses log2(1 + snr)]``;
    * ``"ergodic"`` (i.i.d. per-symbol fading, ``block_length == 1``): ``[uses E log2(1 + |h|^2 snr)]``,
      in closed form for Rayleigh, else the mean over ``draws x uses`` fading draws of the channel;
    * ``"block"`` (a fade held over several uses, or any other channel): one mutual information
      ``sum_i log2(1 + |h_i|^2 snr)`` per draw of ``uses`` symbols of the channel (``draws`` values),
      whose expectation of ``D(.)`` is the block-fading OPTA.

    A channel with a ``rate_bits(uses, snr_db, draws)`` method answers for itself (an OFDM grid,
    :meth:`phy.ofdm.channel.OFDMChannel.rate_bits`: only the data REs of whole slots carry bits).
    A MIMO channel (``num_tx``/``num_rx`` > 1) gets the same modes with ``log2 det(I + snr/num_tx H H^H)``
    per use (:func:`phy.theory.mimo_capacity.mimo_channel_rate_bits`; Telatar's integral for i.i.d. Rayleigh).

    The channel's random stream advances (reseed it afterwards if that matters).

    Examples
    --------
    >>> from phy.channel.flat import AWGN
    >>> mode, rates = channel_rate_bits(AWGN(seed=0), uses=10, snr_db=0.0)
    >>> mode, rates.tolist()
    ('awgn', [10.0])
    """
    from phy.utils.conventions import snr_db_to_no

    if isinstance(uses, bool) or not isinstance(uses, numbers.Integral) or uses < 1:
        raise ValueError(f"uses must be a positive int, got {uses!r}")
    if isinstance(draws, bool) or not isinstance(draws, numbers.Integral) or draws < 1:
        raise ValueError(f"draws must be a positive int, got {draws!r}")
    snr_db = float(snr_db)
    if callable(getattr(channel, "rate_bits", None)):  # a channel that knows its own rates (an OFDM grid)
        return channel.rate_bits(uses, snr_db, draws)
    if getattr(channel, "is_mimo", False):  # log det with equal power per antenna (phy.theory.mimo_capacity)
        from phy.theory.mimo_capacity import mimo_channel_rate_bits

        return mimo_channel_rate_bits(channel, uses, snr_db, draws)
    if getattr(channel, "name", "") == "awgn":
        return "awgn", np.array([uses * awgn_capacity(snr_db)])
    block = getattr(channel, "block_length", None)
    if block == 1 and getattr(channel, "k_factor", None) == 0.0:
        return "ergodic", np.array([uses * rayleigh_ergodic_capacity(snr_db)])
    x = torch.ones(int(draws), int(uses), dtype=torch.complex64)
    h = channel(x, snr_db_to_no(snr_db)).h
    if h is None:
        return "awgn", np.array([uses * awgn_capacity(snr_db)])
    mi = instantaneous_capacity(h.expand(x.shape), snr_db, uses).cpu().numpy()
    if block == 1:
        return "ergodic", np.array([float(mi.mean())])
    return "block", mi


class IdealCode:
    """Capacity-achieving code abstraction with a budget of ``n`` complex channel uses.

    A payload of ``B`` bits is delivered error-free iff it fits, otherwise the block is in outage
    (the receiver gets nothing). ``capacity`` says what "fits" means:

    ``"awgn"``
        ``B <= floor(n log2(1 + snr))``.
    ``"rayleigh_ergodic"``
        ``B <= floor(n C_erg(snr))`` (coding over infinitely many fades; no outage below it).
    ``"rayleigh_outage"``
        ``B <= floor(n C_eps(snr))`` with the ``outage``-capacity: a fixed-rate code that is
        itself in outage with probability ``outage`` on a block-fading channel (the caller may
        draw that event; :meth:`is_outage` alone only checks the fixed rate).
    ``"instantaneous"``
        ``B <= sum_i log2(1 + |h_i|^2 snr)`` with the realised coefficients ``h`` of the ``n`` uses
        (block fading: outage when ``n log2(1 + |h|^2 snr) < B``); ``h=None`` means AWGN.

    Parameters
    ----------
    n : int
        Channel uses per block (per example).
    capacity : str
        One of :data:`CAPACITY_MODES`.
    outage : float
        Target outage probability for ``"rayleigh_outage"`` (default 0.1, like ``semcom compare --ideal-outage``).

    Examples
    --------
    >>> code = IdealCode(n=10)
    >>> code.max_payload(0.0), code.min_channel_uses(25, 0.0)
    (10, 25)
    >>> code.is_outage(11, torch.tensor([0.0, 10.0]))
    tensor([ True, False])
    """

    def __init__(self, n: int, capacity: str = "awgn", outage: float = 0.1):
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"n (channel uses) must be a positive int, got {n!r}")
        if capacity not in CAPACITY_MODES:
            raise ValueError(f"capacity must be one of {CAPACITY_MODES}, got {capacity!r}")
        if isinstance(outage, bool) or not isinstance(outage, numbers.Real) or not 0 < outage < 1:
            raise ValueError(f"outage must be a probability in (0, 1), got {outage!r}")
        self.n = int(n)
        self.capacity = capacity
        self.outage = float(outage)

    def rate(self, snr_db):
        """Capacity in bits per channel use of the fixed-rate modes (``"instantaneous"`` uses the
        AWGN value as its nominal rate)."""
        if self.capacity == "rayleigh_ergodic":
            return rayleigh_ergodic_capacity(snr_db)
        if self.capacity == "rayleigh_outage":
            return rayleigh_outage_capacity(snr_db, self.outage)
        return awgn_capacity(snr_db)

    def max_payload(self, snr_db):
        """``floor(n * C(snr))`` bits (int for a number, int64 ndarray for an array)."""
        c = np.floor(self.n * np.asarray(self.rate(snr_db)) + 1e-9).astype(np.int64)
        return int(c) if c.ndim == 0 else c

    def min_channel_uses(self, payload_bits: int, snr_db) -> int:
        """Smallest ``n`` with ``floor(n C) >= payload_bits`` for the nominal rate (scalar SNR)."""
        c = float(self.rate(float(snr_db)))
        if c <= 0:
            raise ValueError(f"capacity is zero at snr_db={snr_db}")
        return int(math.ceil(payload_bits / c - 1e-9))

    def is_outage(self, payload_bits: int, snr_db, h: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Bool tensor: ``True`` where a payload of ``payload_bits`` does *not* fit.

        ``snr_db`` is a number or a tensor with one SNR per example; ``h`` ``[..., n]`` is used
        only by ``"instantaneous"``. The result has the shape of ``h.shape[:-1]`` (instantaneous
        with ``h``) or of ``snr_db``.
        """
        if isinstance(payload_bits, bool) or not isinstance(payload_bits, numbers.Integral) or payload_bits < 0:
            raise ValueError(f"payload_bits must be an int >= 0, got {payload_bits!r}")
        if self.capacity == "instantaneous":
            if h is not None and h.shape[-1] != self.n:
                raise ValueError(f"h must have last dimension n={self.n}, got shape {tuple(h.shape)}")
            mi = instantaneous_capacity(h, snr_db, self.n)
            return payload_bits > mi + 1e-9
        dev = snr_db.device if isinstance(snr_db, torch.Tensor) else None
        cap = torch.as_tensor(self.max_payload(snr_db), device=dev)
        return payload_bits > cap

    def __repr__(self) -> str:
        return f"IdealCode(n={self.n}, capacity={self.capacity!r}, outage={self.outage})"
