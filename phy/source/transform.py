"""Transform coding of real feature vectors: KLT, bit allocation, per-component Lloyd-Max quantisers.

::

    x [M, d] --(x - mean) U--> z [M, d] (KLT coefficients, variances lambda_1 >= ... >= lambda_d)
      --component i: b_i-bit Lloyd-Max quantiser of N(0, lambda_i)--> indices --natural binary--> bits
      [M, sum b_i]  ...  bits --> levels --> z_hat --U^T + mean--> x_hat

Everything is fitted on a *training* split (:meth:`KLT.fit`, :meth:`TransformCoder.fit`) and then
applied to held-out vectors. The bits ``b_i`` come from :func:`phy.theory.ratedistortion.greedy_bit_allocation`
on ``lambda_i d_LM(b)``, with ``d_LM`` the Lloyd-Max MSE of ``N(0, 1)``: the integer counterpart of
reverse water-filling. The quantisers are fixed-rate Lloyd-Max quantisers designed for a Gaussian
of the component's training variance (at high rate they sit 4.35 dB above ``D(R)``, the price of
fixed-rate scalar quantisation; entropy-constrained quantisation would narrow it to 1.53 dB but
needs variable-length codes, which a fixed-size channel codeword does not carry).

The linear algebra runs in float64 on one thread (:func:`single_thread`), so the results do not
depend on the thread count.

Example
-------
>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> x = torch.randn(2000, 8, generator=g) * torch.tensor([3., 2., 1., .5, .3, .2, .1, .05])
>>> coder = TransformCoder(total_bits=16).fit(x[:1600])
>>> coder.used_bits, coder.bits_per_component.tolist()[:2]     # the strongest components get most
(16, [5, 5])
>>> bits = coder.encode(x[1600:])            # [400, 16]
>>> float(((coder.decode(bits) - x[1600:]) ** 2).sum(1).mean()) < 0.5
True
"""
from __future__ import annotations

import contextlib
import numbers
from typing import Iterator, Optional

import numpy as np
import torch

from phy.theory.ratedistortion import greedy_bit_allocation, lloyd_max_gaussian

__all__ = ["single_thread", "KLT", "TransformCoder", "MAX_BITS_PER_COMPONENT"]

#: The most bits a component gets (Lloyd-Max tables go to 12).
MAX_BITS_PER_COMPONENT = 12


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch's CPU kernels on one thread inside the block (restored after), so reductions and
    BLAS calls sum in one order whatever the process's thread count.

    Examples
    --------
    >>> before = torch.get_num_threads()
    >>> with single_thread():
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    n = torch.get_num_threads()
    try:
        if n != 1:
            torch.set_num_threads(1)
        yield
    finally:
        if n != 1:
            torch.set_num_threads(n)


def _check_matrix(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2 or x.is_complex() or not x.is_floating_point():
        raise ValueError(f"{name} must be a real floating-point [M, d] tensor, got shape {tuple(x.shape)}, "
                         f"dtype {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return x


class KLT:
    """Karhunen-Loeve transform fitted on training vectors.

    Attributes (after :meth:`fit`)
    ------------------------------
    mean : Tensor ``[d]`` float64
    eigenvalues : Tensor ``[d]`` float64, decreasing, >= 0 (covariance with ``1/M`` normalisation)
    basis : Tensor ``[d, d]`` float64, orthonormal columns (column ``i`` = component ``i``)
    energy : float, ``E||x||^2`` on the training split (``trace + ||mean||^2``), the NMSE denominator

    Examples
    --------
    >>> x = torch.randn(1000, 3, dtype=torch.float64) * torch.tensor([3.0, 1.0, 0.1], dtype=torch.float64)
    >>> klt = KLT().fit(x)
    >>> klt.eigenvalues.round(decimals=0)                    # the variances 9, 1, 0.01
    tensor([9., 1., 0.], dtype=torch.float64)
    >>> z = klt.forward(x)
    >>> z.shape, torch.allclose(klt.inverse(z), x)
    (torch.Size([1000, 3]), True)
    """

    def __init__(self):
        self.mean: Optional[torch.Tensor] = None
        self.eigenvalues: Optional[torch.Tensor] = None
        self.basis: Optional[torch.Tensor] = None
        self.energy: float = float("nan")
        self.n_train = 0

    def fit(self, x: torch.Tensor) -> "KLT":
        """Fit on ``x [M, d]`` (``M >= 2``). A rank-deficient covariance (``M <= d``, constant
        features) is allowed: its zero eigenvalues describe components with nothing to send."""
        _check_matrix(x)
        if x.shape[0] < 2:
            raise ValueError(f"the training split needs at least 2 vectors, got {x.shape[0]}")
        with single_thread():
            xd = x.detach().to("cpu", torch.float64)
            mean = xd.mean(0)
            xc = xd - mean
            cov = (xc.T @ xc) / xd.shape[0]
            cov = 0.5 * (cov + cov.T)
            lam, vec = torch.linalg.eigh(cov)
        order = torch.argsort(lam, descending=True, stable=True)
        self.eigenvalues = lam[order].clamp_min(0.0)
        self.basis = vec[:, order]
        self.mean = mean
        self.energy = float(self.eigenvalues.sum() + mean.square().sum())
        self.n_train = int(x.shape[0])
        return self

    def _ready(self):
        if self.basis is None:
            raise RuntimeError("KLT is not fitted: call fit(train) first")

    @property
    def dim(self) -> int:
        self._ready()
        return int(self.basis.shape[0])

    @property
    def rank(self) -> int:
        """Number of eigenvalues above ``1e-12`` times the largest."""
        self._ready()
        top = float(self.eigenvalues[0]) if self.eigenvalues.numel() else 0.0
        return int((self.eigenvalues > 1e-12 * top).sum()) if top > 0 else 0

    def forward(self, x: torch.Tensor, components: Optional[int] = None) -> torch.Tensor:
        """Coefficients ``z = (x - mean) U[:, :components]``, ``[M, components]`` float64."""
        self._ready()
        _check_matrix(x)
        if x.shape[1] != self.dim:
            raise ValueError(f"x must have {self.dim} columns (the fitted dimension), got {x.shape[1]}")
        k = self.dim if components is None else int(components)
        with single_thread():
            return (x.detach().to("cpu", torch.float64) - self.mean) @ self.basis[:, :k]

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """``x_hat = mean + z U[:, :k]^T`` for ``z [M, k]`` (missing components are 0, i.e. their
        mean), float64 ``[M, d]``."""
        self._ready()
        k = z.shape[1]
        if k > self.dim:
            raise ValueError(f"z has {k} components, more than the dimension {self.dim}")
        with single_thread():
            return self.mean + z.to("cpu", torch.float64) @ self.basis[:, :k].T


class TransformCoder:
    """KLT + integer bit allocation + per-component Lloyd-Max quantisers, for ``total_bits`` per vector.

    Parameters
    ----------
    total_bits : int
        Bits per vector (>= 0); the coder uses ``sum(bits_per_component) <= total_bits``.
    max_bits_per_component : int
        Upper limit per component (1..12, default 12).
    klt : KLT, optional
        A fitted KLT to reuse (otherwise :meth:`fit` fits one).

    Examples
    --------
    >>> x = torch.randn(2000, 4, dtype=torch.float64) * torch.tensor([4.0, 2.0, 1.0, 0.5], dtype=torch.float64)
    >>> coder = TransformCoder(total_bits=8).fit(x)
    >>> bits = coder.encode(x[:5])
    >>> bits.shape, coder.used_bits, coder.decode(bits).shape
    (torch.Size([5, 8]), 8, torch.Size([5, 4]))
    """

    def __init__(self, total_bits: int, max_bits_per_component: int = MAX_BITS_PER_COMPONENT,
                 klt: Optional[KLT] = None):
        if isinstance(total_bits, bool) or not isinstance(total_bits, numbers.Integral) or total_bits < 0:
            raise ValueError(f"total_bits must be an int >= 0, got {total_bits!r}")
        if isinstance(max_bits_per_component, bool) or not isinstance(max_bits_per_component, numbers.Integral) \
                or not 1 <= max_bits_per_component <= MAX_BITS_PER_COMPONENT:
            raise ValueError(f"max_bits_per_component must be an int in [1, {MAX_BITS_PER_COMPONENT}], "
                             f"got {max_bits_per_component!r}")
        self.total_bits = int(total_bits)
        self.max_bits = int(max_bits_per_component)
        self.klt = klt
        self.bits_per_component: Optional[torch.Tensor] = None

    def fit(self, train: Optional[torch.Tensor] = None) -> "TransformCoder":
        """Fit the KLT on ``train`` (unless one was given) and allocate the bits."""
        if self.klt is None:
            if train is None:
                raise ValueError("fit needs the training vectors (or a fitted KLT passed as klt=)")
            self.klt = KLT().fit(train)
        self.klt._ready()
        table = [1.0] + [lloyd_max_gaussian(b).mse for b in range(1, self.max_bits + 1)]
        lam = self.klt.eigenvalues.numpy()
        w = np.where(lam > 1e-12 * max(float(lam[0]), 1e-300), lam, 0.0)
        self.bits_per_component = torch.as_tensor(greedy_bit_allocation(w, self.total_bits, table))
        return self

    @property
    def used_bits(self) -> int:
        """Bits per vector actually produced by :meth:`encode`."""
        self._ready()
        return int(self.bits_per_component.sum())

    @property
    def components(self) -> int:
        """Number of components that get at least one bit (they are the strongest ones)."""
        self._ready()
        return int((self.bits_per_component > 0).sum())

    def _ready(self):
        if self.bits_per_component is None:
            raise RuntimeError("TransformCoder is not fitted: call fit(train) first")

    def expected_distortion(self) -> float:
        """``sum_i lambda_i d_LM(b_i)``: the MSE per vector the allocation was made for."""
        self._ready()
        lam = self.klt.eigenvalues.numpy()
        d = [1.0 if b == 0 else lloyd_max_gaussian(int(b)).mse for b in self.bits_per_component.tolist()]
        return float(np.sum(lam * np.asarray(d)))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Vectors ``[M, d]`` -> bits ``[M, used_bits]`` float32 (components in order, MSB first)."""
        self._ready()
        k = self.components
        m = x.shape[0]
        if k == 0:
            return torch.zeros(m, 0)
        z = self.klt.forward(x, k).numpy()
        std = np.sqrt(self.klt.eigenvalues[:k].numpy())
        cols = []
        for i, b in enumerate(self.bits_per_component[:k].tolist()):
            lm = lloyd_max_gaussian(int(b))
            q = np.searchsorted(lm.thresholds * std[i], z[:, i], side="right")
            shifts = np.arange(b - 1, -1, -1)
            cols.append((q[:, None] >> shifts[None, :]) & 1)
        return torch.from_numpy(np.concatenate(cols, axis=1).astype(np.float32))

    def decode(self, bits: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Bits ``[M, used_bits]`` -> reconstructed vectors ``[M, d]``."""
        self._ready()
        if bits.dim() != 2 or bits.shape[1] != self.used_bits:
            raise ValueError(f"bits must be [M, {self.used_bits}], got shape {tuple(bits.shape)}")
        k = self.components
        m = bits.shape[0]
        if k == 0:
            return self.klt.mean.expand(m, self.klt.dim).to(dtype).clone()
        b_np = bits.detach().to("cpu").numpy().round().astype(np.int64)
        std = np.sqrt(self.klt.eigenvalues[:k].numpy())
        z = np.zeros((m, k))
        pos = 0
        for i, b in enumerate(self.bits_per_component[:k].tolist()):
            weights = 1 << np.arange(b - 1, -1, -1)
            q = b_np[:, pos:pos + b] @ weights
            z[:, i] = lloyd_max_gaussian(int(b)).levels[q] * std[i]
            pos += b
        return self.klt.inverse(torch.from_numpy(z)).to(dtype)
