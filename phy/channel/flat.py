"""Flat channels: AWGN, and Rayleigh/Rician fading per symbol or per block, with several antennas.

``y = h x + n``, ``n ~ CN(0, N0)``; ``E|h|^2 = 1``. With ``num_tx``/``num_rx`` antennas the channel matrix of a
channel use has i.i.d. ``CN(0, 1)`` entries (Rayleigh) plus a line of sight (Rician), with optional Kronecker
exponential correlation at either end.

Example
-------
>>> import torch
>>> from phy.channel.flat import Rayleigh
>>> out = Rayleigh(block_length=2, seed=0)(torch.ones(1, 4, dtype=torch.complex64), no=0.0)
>>> out.y.shape, bool(out.h[0, 0] == out.h[0, 1])
(torch.Size([1, 4]), True)
"""
from __future__ import annotations

import math
import numbers
from typing import Optional

import torch

from phy.channel.spec import TWO_PI, Param
from phy.utils.conventions import check_complex, check_finite, check_no, check_no_type
from phy.channel.base import Channel, ChannelOutput, _REAL, _broadcasts_to, complex_normal

__all__ = ["AWGN", "FlatFading", "Rayleigh", "Rician", "exponential_correlation"]


class AWGN(Channel):
    """Additive white Gaussian noise: ``y = x + n``, ``n ~ CN(0, N0)``; ``h`` is ``None`` (= 1).

    Examples
    --------
    >>> ch = AWGN(seed=0)
    >>> y = ch(torch.zeros(4, 10000, dtype=torch.complex64), no=0.5).y
    >>> round(y.abs().pow(2).mean().item(), 2)          # E|n|^2 = N0
    0.5
    """

    name = "awgn"
    spec_params = ()


def exponential_correlation(num: int, rho: float, dtype=torch.float64, device=None) -> torch.Tensor:
    """Exponential correlation matrix ``R[i, j] = rho**|i - j|`` of ``num`` antennas (``0 <= rho < 1``).

    Examples
    --------
    >>> exponential_correlation(3, 0.5).tolist()
    [[1.0, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 1.0]]
    """
    idx = torch.arange(num, dtype=dtype, device=device)
    return torch.as_tensor(rho, dtype=dtype, device=device) ** (idx[:, None] - idx[None, :]).abs()


def _sqrtm_psd(r: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a real symmetric PSD matrix (eigendecomposition)."""
    w, v = torch.linalg.eigh(r)
    return (v * w.clamp_min(0).sqrt()) @ v.transpose(-1, -2)


_ANTENNAS = dict(low=1, high=64)
#: The longest coherence block [channel uses].
MAX_BLOCK_LENGTH = 1 << 20
_FLAT_PARAMS = (
    Param("block_length", int, 1, low=1, high=MAX_BLOCK_LENGTH),
    Param("num_tx", int, 1, **_ANTENNAS),
    Param("num_rx", int, 1, **_ANTENNAS),
    Param("corr_tx", float, 0.0, low=0.0, high=1.0, high_open=True),
    Param("corr_rx", float, 0.0, low=0.0, high=1.0, high_open=True),
)


def _check_antennas(num_tx, num_rx, corr_tx, corr_rx):
    for name, v in (("num_tx", num_tx), ("num_rx", num_rx)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not 1 <= v <= 64:
            raise ValueError(f"{name} must be an int in [1, 64], got {v!r}")
    for name, v in (("corr_tx", corr_tx), ("corr_rx", corr_rx)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 <= v < 1:
            raise ValueError(f"{name} (exponential correlation coefficient) must be a number in [0, 1), got {v!r}")


class FlatFading(Channel):
    """Flat fading with a Rician factor: ``h = sqrt(K/(K+1)) e^{j phi} + sqrt(1/(K+1)) CN(0,1)``.

    ``E|h|^2 = 1`` for every ``K``. ``K = 0`` is Rayleigh fading.

    With ``num_tx`` / ``num_rx`` antennas (MIMO) the channel matrix of each channel use is
    ``H = sqrt(K/(K+1)) e^{j phi} 1 + sqrt(1/(K+1)) R_rx^{1/2} H_w R_tx^{1/2}`` (``1`` the all-ones
    matrix: the line of sight of broadside arrays; ``H_w`` i.i.d. CN(0, 1); ``R`` the exponential
    correlation matrices ``R[i, j] = corr**|i-j|``, Kronecker model), so ``E|H_ij|^2 = 1``. Shapes:
    ``x [..., num_tx, n] -> y [..., num_rx, n]``, ``h [..., num_rx, num_tx, n]``, noise ``CN(0, N0)``
    per receive antenna (``no`` broadcastable to ``y``, e.g. ``[..., 1, 1]``). The channel does not
    scale ``x``: a link that sends ``Es`` per channel use puts ``Es / num_tx`` on each antenna, so each
    receive antenna sees Es/N0 (the package convention). A 1 x 1 channel keeps the SISO shapes
    ``[..., n]`` and the SISO outputs bit for bit.

    Parameters
    ----------
    k_factor : float
        Rician K factor (linear, >= 0).
    block_length : int
        Coherence length ``L`` in symbols: ``h`` is constant over ``L`` consecutive channel uses
        of one example. ``L = 1`` is i.i.d. per-symbol fading. ``n`` must be a multiple of ``L``.
    los_phase : float
        Phase ``phi`` [rad] of the line-of-sight component.
    num_tx, num_rx : int
        Antennas (1 to 64).
    corr_tx, corr_rx : float
        Exponential correlation coefficients in ``[0, 1)`` of the transmit / receive arrays.

    Examples
    --------
    >>> ch = FlatFading(k_factor=1.0, seed=0, num_tx=2, num_rx=2)
    >>> out = ch(torch.ones(3, 2, 5, dtype=torch.complex64), no=0.1)
    >>> out.y.shape, out.h.shape                   # x [..., num_tx, n] -> y [..., num_rx, n]
    (torch.Size([3, 2, 5]), torch.Size([3, 2, 2, 5]))
    """

    name = "flat_fading"

    def __init__(self, k_factor: float = 0.0, block_length: int = 1, los_phase: float = 0.0,
                 seed: Optional[int] = None, device=None, backend: str = "auto", num_tx: int = 1,
                 num_rx: int = 1, corr_tx: float = 0.0, corr_rx: float = 0.0):
        super().__init__(seed=seed, device=device, backend=backend)
        if isinstance(k_factor, bool) or not isinstance(k_factor, numbers.Real) or not k_factor >= 0 \
                or not math.isfinite(k_factor):
            raise ValueError(f"k_factor must be a finite number >= 0, got {k_factor!r}")
        if isinstance(block_length, bool) or not isinstance(block_length, numbers.Integral) or \
                not 1 <= block_length <= MAX_BLOCK_LENGTH:
            raise ValueError(f"block_length must be an int in [1, {MAX_BLOCK_LENGTH}], got {block_length!r}")
        if isinstance(los_phase, bool) or not isinstance(los_phase, numbers.Real) or not math.isfinite(los_phase) \
                or abs(los_phase) > TWO_PI:
            raise ValueError(f"los_phase must be a finite number in [-2 pi, 2 pi] (radians), got {los_phase!r}")
        _check_antennas(num_tx, num_rx, corr_tx, corr_rx)
        self.k_factor = float(k_factor)
        self.block_length = int(block_length)
        self.los_phase = float(los_phase)
        self.num_tx, self.num_rx = int(num_tx), int(num_rx)
        self.corr_tx, self.corr_rx = float(corr_tx), float(corr_rx)

    @property
    def is_mimo(self) -> bool:
        """Whether ``x``/``y`` carry an antenna dimension (anything but 1 x 1)."""
        return self.num_tx > 1 or self.num_rx > 1

    def kernel_fading(self):
        if self.is_mimo or self.block_length > 1 or type(self).fading is not FlatFading.fading:
            return "fading"
        k = self.k_factor
        los = math.sqrt(k / (k + 1.0)) * complex(math.cos(self.los_phase), math.sin(self.los_phase)) if k > 0 else 0j
        return math.sqrt(1.0 / (k + 1.0)), los

    def _check_length(self, n: int) -> None:
        if n % self.block_length:
            raise ValueError(f"block_length={self.block_length} must divide the number of channel uses; x has "
                             f"n={n} symbols (last dim)")

    def fading(self, x, generator):
        if self.is_mimo:
            return self.mimo_fading(x.shape[:-2], x.shape[-1], generator, x.dtype, x.device)
        n = x.shape[-1]
        L = self.block_length
        self._check_length(n)
        k = self.k_factor
        h = complex_normal((*x.shape[:-1], n // L), generator, dtype=x.dtype, device=x.device,
                           variance=1.0 / (k + 1.0))
        if k > 0:
            los = math.sqrt(k / (k + 1.0))
            h = h + complex(los * math.cos(self.los_phase), los * math.sin(self.los_phase))
        if L > 1:
            h = h.unsqueeze(-1).expand(*h.shape, L).reshape(x.shape)
        return h

    def mimo_fading(self, batch_shape, n: int, generator, dtype=torch.complex64, device=None) -> torch.Tensor:
        """Channel matrices ``[*batch_shape, num_rx, num_tx, n]`` (constant over blocks of ``block_length``)."""
        self._check_length(n)
        L, k = self.block_length, self.k_factor
        nr, nt = self.num_rx, self.num_tx
        h = complex_normal((*batch_shape, nr, nt, n // L), generator, dtype=dtype, device=device,
                           variance=1.0 / (k + 1.0))
        real = _REAL[dtype]
        if self.corr_rx > 0 and nr > 1:
            r = _sqrtm_psd(exponential_correlation(nr, self.corr_rx, device=device)).to(real).to(dtype)
            h = torch.einsum("ij,...jtm->...itm", r, h)
        if self.corr_tx > 0 and nt > 1:
            r = _sqrtm_psd(exponential_correlation(nt, self.corr_tx, device=device)).to(real).to(dtype)
            h = torch.einsum("...rjm,jt->...rtm", h, r)
        if k > 0:
            los = math.sqrt(k / (k + 1.0))
            h = h + complex(los * math.cos(self.los_phase), los * math.sin(self.los_phase))
        if L > 1:
            h = h.unsqueeze(-1).expand(*h.shape, L).reshape(*h.shape[:-1], n)
        return h

    def forward(self, x: torch.Tensor, no) -> ChannelOutput:
        """``y = h x + n`` (SISO, see :meth:`Channel.forward`) or ``y = H x + n`` per channel use (MIMO:
        ``x [..., num_tx, n]``, ``no`` broadcastable to ``y [..., num_rx, n]``)."""
        if not self.is_mimo:
            return super().forward(x, no)
        check_complex(x, "x")
        if x.dim() < 2 or x.shape[-2] != self.num_tx:
            raise ValueError(f"a {self.num_rx} x {self.num_tx} MIMO channel needs x of shape "
                             f"[..., num_tx={self.num_tx}, n], got {tuple(x.shape)}")
        check_finite(x, "x")
        check_no_type(no, "no")
        no_t = check_no(torch.as_tensor(no, dtype=_REAL[x.dtype], device=x.device), "no", finite=True)
        y_shape = torch.Size((*x.shape[:-2], self.num_rx, x.shape[-1]))
        if not _broadcasts_to(no_t.shape, y_shape):
            raise ValueError(f"no (noise power) of shape {tuple(no_t.shape)} must broadcast to y of shape "
                             f"{tuple(y_shape)} (use [..., 1, 1] for one N0 per example)")
        gen = self.generator(x.device)
        h = self.fading(x, gen)
        noise = complex_normal(y_shape, gen, dtype=x.dtype, device=x.device)
        y = torch.einsum("...rtn,...tn->...rn", h, x) + noise * torch.sqrt(no_t)
        return ChannelOutput(y=y, h=h, no=no_t)

    def forward_equalized(self, x, no, method: str = "zf", power: float = 1.0):
        if self.is_mimo:
            raise ValueError(f"forward_equalized is per symbol (SISO); a {self.num_rx} x {self.num_tx} MIMO channel "
                             "needs a MIMO receiver (phy.mimo.detection, e.g. DigitalLink(..., detector=...))")
        return super().forward_equalized(x, no, method, power)

    def extra_repr(self) -> str:
        mimo = (f", num_tx={self.num_tx}, num_rx={self.num_rx}, corr_tx={self.corr_tx}, corr_rx={self.corr_rx}"
                if self.is_mimo else "")
        return f"k_factor={self.k_factor}, block_length={self.block_length}{mimo}, seed={self._seed}"


class Rayleigh(FlatFading):
    """Rayleigh fading ``y = h x + n``, ``h ~ CN(0, 1)``: i.i.d. per symbol (``block_length=1``,
    the VLF-MSC paper's eq. (1)) or constant over blocks of ``block_length`` symbols; MIMO with
    ``num_tx``/``num_rx`` (optionally Kronecker-correlated, see :class:`FlatFading`).

    Spec: ``rayleigh(block_length=64)``, ``rayleigh(num_tx=2,num_rx=2,corr_rx=0.5)``.

    Examples
    --------
    >>> ch = Rayleigh(block_length=4, seed=0)
    >>> h = ch(torch.ones(1, 8, dtype=torch.complex64), no=0.0).h
    >>> bool((h[0, :4] == h[0, 0]).all()), bool(h[0, 0] != h[0, 4])   # one fade per block of 4
    (True, True)
    """

    name = "rayleigh"
    spec_params = _FLAT_PARAMS

    def __init__(self, block_length: int = 1, seed: Optional[int] = None, device=None, backend: str = "auto",
                 num_tx: int = 1, num_rx: int = 1, corr_tx: float = 0.0, corr_rx: float = 0.0):
        super().__init__(k_factor=0.0, block_length=block_length, seed=seed, device=device, backend=backend,
                         num_tx=num_tx, num_rx=num_rx, corr_tx=corr_tx, corr_rx=corr_rx)


_RICIAN_DEFAULT_K = 3.0


class Rician(FlatFading):
    """Rician fading with factor ``k_factor`` (linear) or ``k_db`` (dB; give at most one; default
    ``K = 3``), see :class:`FlatFading`. Spec: ``rician(k_db=10, block_length=4)``.

    Examples
    --------
    >>> h = Rician(k_db=10, seed=0)(torch.ones(1, 20000, dtype=torch.complex64), no=0.0).h
    >>> round(h.abs().pow(2).mean().item(), 1)     # E|h|^2 = 1 for every K
    1.0
    """

    name = "rician"
    spec_params = _FLAT_PARAMS + (
        Param("k_db", float, 10.0 * math.log10(_RICIAN_DEFAULT_K), low=-100.0, high=100.0, unit="dB"),
        Param("los_phase", float, 0.0, low=-TWO_PI, high=TWO_PI, unit="rad"),
    )

    def __init__(self, k_factor: Optional[float] = None, block_length: int = 1, los_phase: float = 0.0,
                 seed: Optional[int] = None, device=None, backend: str = "auto", k_db: Optional[float] = None,
                 num_tx: int = 1, num_rx: int = 1, corr_tx: float = 0.0, corr_rx: float = 0.0):
        if k_factor is not None and k_db is not None:
            raise ValueError(f"give k_factor (linear) or k_db (dB), not both; got k_factor={k_factor!r}, k_db={k_db!r}")
        if k_db is not None:
            if isinstance(k_db, bool) or not isinstance(k_db, numbers.Real) or not math.isfinite(k_db):
                raise ValueError(f"k_db must be a finite number (dB), got {k_db!r}")
            k_factor = 10.0 ** (float(k_db) / 10.0)
        super().__init__(k_factor=_RICIAN_DEFAULT_K if k_factor is None else k_factor, block_length=block_length,
                         los_phase=los_phase, seed=seed, device=device, backend=backend, num_tx=num_tx,
                         num_rx=num_rx, corr_tx=corr_tx, corr_rx=corr_rx)
        self.k_db = 10.0 * math.log10(self.k_factor) if self.k_factor > 0 else -math.inf
