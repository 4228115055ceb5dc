"""Uniform scalar quantisation of real features to bits (for digital transmission of features).

:class:`UniformQuantizer` with ``b`` bits splits the clipping range ``[lo, hi]`` into ``2**b``
equal cells of width ``step = (hi - lo) / 2**b``; level ``q`` covers
``[lo + q step, lo + (q + 1) step)`` and is reconstructed at its midpoint ``lo + (q + 1/2) step``.
Values outside the range are clipped to the first / last cell. For data uniform inside the range
the mean-square error is ``step**2 / 12`` (:meth:`UniformQuantizer.theoretical_mse`).

The range is either given (``clip=(lo, hi)``) or fitted on data with :meth:`UniformQuantizer.fit`:
``fit_mode="minmax"`` uses the tensor's min and max, ``fit_mode="percentile"`` the
``(100 - p)``-th and ``p``-th percentiles (``percentile=p``, default 99.9) over all elements. The
range is one pair per quantiser (per tensor), treated as side information known to the receiver
(it is not counted in the bit budget).

Levels become ``b`` bits each, most significant first, in natural binary or, with ``gray=True``,
in a Gray code (adjacent levels differ in one bit).

Example
-------
>>> import torch
>>> q = UniformQuantizer(4, clip=(-1.0, 1.0))
>>> x = torch.tensor([[-1.0, 0.0, 0.3, 2.0]])
>>> q.quantize(x)
tensor([[ 0,  8, 10, 15]])
>>> bits = q.encode(x)                 # [1, 16]
>>> q.decode(bits)
tensor([[-0.9375,  0.0625,  0.3125,  0.9375]])
"""
from __future__ import annotations

import math
import numbers
from typing import Optional, Tuple

import torch
from torch import nn

__all__ = ["UniformQuantizer"]


class UniformQuantizer(nn.Module):
    """Uniform midpoint quantiser with ``bits`` bits per element (see the module docstring).

    Shapes: :meth:`quantize` maps real ``x [...]`` to integer indices of the same shape, :meth:`forward` to the
    dequantised values of the same shape, :meth:`encode` real ``[..., N]`` to bits ``[..., N * bits]`` and
    :meth:`decode` back.

    Parameters
    ----------
    bits : int
        Bits per element (1..24).
    clip : (lo, hi), optional
        Fixed range; if ``None`` call :meth:`fit` first.
    fit_mode : ``"minmax"`` or ``"percentile"``
    percentile : float
        Upper percentile for ``fit_mode="percentile"`` (50 < p <= 100).
    gray : bool
        Gray-code the levels in :meth:`to_bits` / :meth:`from_bits`.

    Examples
    --------
    >>> q = UniformQuantizer(bits=2, clip=(0.0, 4.0))         # step 1, levels 0.5, 1.5, 2.5, 3.5
    >>> x = torch.tensor([[0.2, 1.9, 3.99, 9.0]])
    >>> q.quantize(x), q(x)
    (tensor([[0, 1, 3, 3]]), tensor([[0.5000, 1.5000, 3.5000, 3.5000]]))
    >>> q.encode(x).shape                                     # 2 bits per element
    torch.Size([1, 8])
    """

    def __init__(self, bits: int, clip: Optional[Tuple[float, float]] = None, fit_mode: str = "minmax",
                 percentile: float = 99.9, gray: bool = False):
        super().__init__()
        if isinstance(bits, bool) or not isinstance(bits, numbers.Integral) or not 1 <= bits <= 24:
            raise ValueError(f"bits must be an int in [1, 24], got {bits!r}")
        if fit_mode not in ("minmax", "percentile"):
            raise ValueError(f"fit_mode must be 'minmax' or 'percentile', got {fit_mode!r}")
        if isinstance(percentile, bool) or not isinstance(percentile, numbers.Real) or not 50 < percentile <= 100:
            raise ValueError(f"percentile must be a number in (50, 100], got {percentile!r}")
        self.bits = int(bits)
        self.levels = 2 ** self.bits
        self.fit_mode = fit_mode
        self.percentile = float(percentile)
        self.gray = bool(gray)
        self.lo: Optional[float] = None
        self.hi: Optional[float] = None
        if clip is not None:
            self.set_range(*self._check_clip(clip))

    @staticmethod
    def _check_clip(clip):
        if not isinstance(clip, (tuple, list)) or len(clip) != 2 or \
                not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in clip):
            raise ValueError(f"clip must be a pair of numbers (lo, hi), got {clip!r}")
        lo, hi = float(clip[0]), float(clip[1])
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"clip must be finite with lo < hi, got {clip!r}")
        return lo, hi

    def set_range(self, lo: float, hi: float) -> "UniformQuantizer":
        """Set the clipping range ``[lo, hi]`` (``lo < hi``)."""
        self.lo, self.hi = self._check_clip((lo, hi))
        return self

    def fit(self, x: torch.Tensor) -> "UniformQuantizer":
        """Fit the range on ``x`` (all elements; see ``fit_mode``). A constant tensor gets a range
        of width 1e-6 around its value. Returns ``self``."""
        x = self._check_x(x)
        if x.numel() == 0:
            raise ValueError("cannot fit a quantiser on an empty tensor")
        flat = x.detach().reshape(-1).double()
        if self.fit_mode == "minmax":
            lo, hi = flat.min().item(), flat.max().item()
        else:
            import numpy as np

            lo, hi = (float(v) for v in np.percentile(flat.cpu().numpy(),
                                                      [100.0 - self.percentile, self.percentile]))
        if not hi > lo:
            lo, hi = lo - 5e-7, hi + 5e-7
        return self.set_range(lo, hi)

    @property
    def step(self) -> float:
        self._require_range()
        return (self.hi - self.lo) / self.levels

    def theoretical_mse(self) -> float:
        """``step**2 / 12``: the MSE for data uniform over the range (no clipping)."""
        return self.step ** 2 / 12.0

    def _require_range(self):
        if self.lo is None:
            raise RuntimeError("the quantiser has no range: pass clip=(lo, hi) or call fit(x) first")

    @staticmethod
    def _check_x(x):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"x must be a real floating-point torch.Tensor, got "
                            f"{getattr(x, 'dtype', type(x).__name__)}")
        if x.numel() and not torch.isfinite(x).all():
            raise ValueError("x must be finite (no NaN/Inf)")
        return x

    # -- levels -------------------------------------------------------------------------------
    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Real ``[...]`` -> integer levels ``[...]`` (int64 in ``[0, 2**bits)``)."""
        self._check_x(x)
        self._require_range()
        q = torch.floor((x.double() - self.lo) / self.step)
        return q.clamp(0, self.levels - 1).to(torch.int64)

    def dequantize(self, q: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Levels ``[...]`` -> cell midpoints ``lo + (q + 1/2) step`` of ``dtype``."""
        self._require_range()
        if not isinstance(q, torch.Tensor) or q.is_floating_point() or q.is_complex():
            raise TypeError(f"q must be an integer tensor of levels, got {getattr(q, 'dtype', type(q).__name__)}")
        q = q.clamp(0, self.levels - 1).double()
        return (self.lo + (q + 0.5) * self.step).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Quantise and reconstruct (``dequantize(quantize(x))``), same dtype as ``x``."""
        return self.dequantize(self.quantize(x), dtype=x.dtype)

    # -- bits ---------------------------------------------------------------------------------
    def to_bits(self, q: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Levels ``[..., N]`` -> bits ``[..., N * bits]`` (MSB first; Gray if ``gray``)."""
        if not isinstance(q, torch.Tensor) or q.is_floating_point() or q.is_complex() or q.dim() == 0:
            raise TypeError("q must be an integer tensor of levels with at least one dimension")
        q = q.to(torch.int64)
        if q.numel() and ((q < 0) | (q >= self.levels)).any():
            raise ValueError(f"levels must be in [0, {self.levels}), got range [{q.min().item()}, {q.max().item()}]")
        if self.gray:
            q = q ^ (q >> 1)
        shifts = torch.arange(self.bits - 1, -1, -1, device=q.device)
        b = (q.unsqueeze(-1) >> shifts) & 1
        return b.reshape(*q.shape[:-1], q.shape[-1] * self.bits).to(dtype)

    def from_bits(self, bits: torch.Tensor) -> torch.Tensor:
        """Bits ``[..., N * bits]`` (values >= 0.5 read as 1) -> levels ``[..., N]`` int64."""
        if not isinstance(bits, torch.Tensor) or bits.is_complex() or bits.dim() == 0:
            raise TypeError("bits must be a real tensor with at least one dimension")
        if bits.shape[-1] % self.bits:
            raise ValueError(f"the last dimension of bits ({bits.shape[-1]}) must be a multiple of "
                             f"bits={self.bits}")
        b = (bits >= 0.5).to(torch.int64).reshape(*bits.shape[:-1], bits.shape[-1] // self.bits, self.bits)
        if self.gray:  # binary_i = xor of gray bits 0..i
            b = torch.cumsum(b, dim=-1) % 2
        weights = 2 ** torch.arange(self.bits - 1, -1, -1, device=bits.device)
        return (b * weights).sum(-1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Real ``[..., N]`` -> bits ``[..., N * bits]`` float32."""
        return self.to_bits(self.quantize(x))

    def decode(self, bits: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Bits ``[..., N * bits]`` -> reconstructed reals ``[..., N]``."""
        return self.dequantize(self.from_bits(bits), dtype=dtype)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, range=({self.lo}, {self.hi}), fit_mode={self.fit_mode!r}, gray={self.gray}"
