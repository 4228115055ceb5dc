"""Channel models behind one protocol, shared by analog and digital links.

A channel takes complex symbols ``x`` of shape ``[..., n]`` (batch dimensions first, channel uses
last) and a noise power ``no`` (N0, broadcastable to ``x``) and returns a :class:`ChannelOutput`
holding the received symbols ``y``, the channel coefficients ``h`` the receiver may know (``None``
means ``h = 1``, as for AWGN) and the noise power. The physics is ``y = h * x + n`` with
``n ~ CN(0, N0)``: ``N0/2`` per real dimension.

Every channel owns an explicit, seedable random stream (one ``torch.Generator`` per device), so
a seed gives bit-identical outputs and one channel object shared by every link gives every scheme
the same fading statistics and SNR definition.

Backends: on CPU with complex64 symbols the noise, the i.i.d. flat fading and (through
:meth:`Channel.forward_equalized`, which the links call) the perfect-CSI equaliser run as one
compiled pass over memory (:mod:`phy.channel_kernels`, numba, a counter-based generator keyed from
the channel's ``torch.Generator``); elsewhere (GPU, complex128, per-symbol ``N0``) torch ops with
``torch.randn``. ``backend="torch"`` forces the torch path, e.g. to compare the two.

Example
-------
>>> import torch
>>> from phy.channels import Rayleigh
>>> ch = Rayleigh(seed=1)
>>> x = torch.ones(2, 4, dtype=torch.complex64)
>>> out = ch(x, no=0.1)
>>> out.y.shape, out.h.shape
(torch.Size([2, 4]), torch.Size([2, 4]))
"""
from __future__ import annotations

import contextlib
import math
import numbers
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple, Type, Union

import torch
from torch import nn

from . import channel_kernels as _ck
from .channel_spec import Param, check_spec_kwargs, format_spec, parse_spec, split_channel_list
from .conventions import check_complex, check_device, check_finite, check_no, check_no_type
from .impairments import (IMPAIRMENT_PARAMS, PhaseImpairment, attach_impairment, resolve_symbol_rate,
                          split_impairment_kwargs)

__all__ = [
    "ChannelOutput",
    "Channel",
    "AWGN",
    "FlatFading",
    "Rayleigh",
    "Rician",
    "SionnaTDL",
    "CallableChannel",
    "CHANNELS",
    "register_channel",
    "make_channel",
    "parse_channel_spec",
    "canonical_channel_spec",
    "canonical_channel_list",
    "split_channel_list",
    "exponential_correlation",
    "complex_normal",
    "BACKENDS",
]

#: ``auto``: the compiled one-pass kernels (:mod:`phy.channel_kernels`) for complex64 CPU tensors when
#: numba is installed, torch otherwise; ``torch``: always torch; ``numba``: always the kernels (CPU).
BACKENDS = ("auto", "torch", "numba")

_REAL = {torch.complex64: torch.float32, torch.complex128: torch.float64}


@dataclass
class ChannelOutput:
    """What a channel hands to the receiver.

    Attributes
    ----------
    y : Tensor, ``[..., n]``, complex
        Received symbols.
    h : Tensor or None, ``[..., n]``, complex
        Channel coefficients (the perfect CSI); ``None`` means ``h = 1`` (AWGN).
    no : Tensor, broadcastable to ``y``, real
        Noise power N0 of ``n ~ CN(0, N0)``.

    Examples
    --------
    >>> out = AWGN(seed=0)(torch.ones(2, 8, dtype=torch.complex64), no=0.0)
    >>> out.y.shape, out.h is None, out.no.item()
    (torch.Size([2, 8]), True, 0.0)
    """

    y: torch.Tensor
    h: Optional[torch.Tensor]
    no: torch.Tensor


def complex_normal(shape, generator: torch.Generator, dtype=torch.complex64, device=None, variance=1.0):
    """Draw ``CN(0, variance)`` samples with one fused real draw (``variance/2`` per real dimension).

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> z = complex_normal((100, 1000), g, variance=2.0)
    >>> z.shape, z.dtype, round(z.abs().pow(2).mean().item(), 1)
    (torch.Size([100, 1000]), torch.complex64, 2.0)
    """
    real = _REAL[dtype]
    z = torch.randn(*shape, 2, generator=generator, dtype=real, device=device)
    z.mul_(math.sqrt(variance / 2.0))
    return torch.view_as_complex(z)


def _broadcasts_to(small: torch.Size, big: torch.Size) -> bool:
    """Whether a tensor of shape ``small`` broadcasts to ``big`` without growing it (the check
    ``torch.broadcast_shapes(big, small) == big``, without going through ``torch._refs``)."""
    return len(small) <= len(big) and all(a in (1, b) for a, b in zip(reversed(small), reversed(big)))


class Channel(nn.Module):
    """Base class of every channel: validation, the random stream and the noise.

    Subclasses implement :meth:`fading` (return ``h`` or ``None``); the additive noise and all
    input checks are done here once.

    Parameters
    ----------
    seed : int, optional
        Seed of the channel's random stream. ``None`` draws a random seed (non-reproducible).
    device : str or torch.device, optional
        Only used as the default device for generated tensors; inputs decide the device.
    backend : ``"auto"`` (default), ``"torch"`` or ``"numba"``
        Where the noise (and the i.i.d. flat fading, and with :meth:`forward_equalized` the
        equaliser) is computed: ``numba`` = one fused pass over memory with a counter-based
        generator (:mod:`phy.channel_kernels`; complex64 CPU tensors with a scalar or per-example
        ``N0``); ``torch`` = ``torch.randn`` with the channel's generator; ``auto`` = numba where it
        applies, torch elsewhere (GPU, complex128, per-symbol ``N0``, a differentiable ``N0``). The
        two backends draw the same distributions but different random numbers for one seed.

    Examples
    --------
    >>> class Flip(Channel):               # h = -1 on every symbol
    ...     name = "flip"
    ...     def fading(self, x, generator):
    ...         return -torch.ones_like(x)
    >>> out = Flip(seed=0)(torch.ones(1, 3, dtype=torch.complex64), no=0.0)
    >>> out.y
    tensor([[-1.+0.j, -1.+0.j, -1.+0.j]])
    """

    name = "channel"
    #: the keys a channel spec ``name(key=value, ...)`` may set (:mod:`phy.channel_spec`); ``None``:
    #: the class declares none, so only the bare name is accepted as a spec
    spec_params: Optional[Tuple[Param, ...]] = None

    def __init__(self, seed: Optional[int] = None, device: Optional[Union[str, torch.device]] = None,
                 backend: str = "auto"):
        super().__init__()
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__}: {seed!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "numba" and not _ck.available():
            raise RuntimeError("backend='numba' needs the optional package numba (pip install numba); "
                               "use backend='auto' or 'torch'")
        self.backend = backend
        self._seed = int(seed) if seed is not None else int(torch.randint(0, 2**62, (1,)).item())
        self._generators: Dict[str, torch.Generator] = {}
        self.device = check_device(device) if device is not None else None
        #: receiver phase noise / CFO (:mod:`phy.impairments`, applied by a forward hook); None: off
        self.impairment = None

    # -- random stream -------------------------------------------------------------------
    @property
    def seed(self) -> int:
        return self._seed

    def reset(self, seed: Optional[int] = None) -> None:
        """Restart the random stream (from ``seed`` if given, else from the channel's own seed)."""
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
                raise TypeError(f"seed must be an int or None, got {type(seed).__name__}: {seed!r}")
            self._seed = int(seed)
        self._generators.clear()

    def generator(self, device: Union[str, torch.device]) -> torch.Generator:
        """The channel's ``torch.Generator`` on ``device`` (created on first use)."""
        key = str(torch.device(device))
        gen = self._generators.get(key)
        if gen is None:
            gen = torch.Generator(device=torch.device(device))
            gen.manual_seed(self._seed)
            self._generators[key] = gen
        return gen

    # -- physics -------------------------------------------------------------------------
    def fading(self, x: torch.Tensor, generator: torch.Generator) -> Optional[torch.Tensor]:
        """Channel coefficients ``h`` for symbols ``x`` (``[..., n]``); ``None`` means ``h = 1``."""
        return None

    def kernel_fading(self) -> Union[None, str, Tuple[float, complex]]:
        """How the compiled kernels draw ``h``: ``None`` (no fading, ``h = 1``), ``(scale, los)`` for
        i.i.d. per-symbol ``h = scale * CN(0, 1) + los`` drawn inside the kernel, or ``"fading"``
        (call :meth:`fading` and apply it). Subclasses with their own ``fading`` return ``"fading"``."""
        return None if type(self).fading is Channel.fading else "fading"

    def _check_inputs(self, x, no, finite: bool = True) -> torch.Tensor:
        check_complex(x, "x")
        if finite:
            check_finite(x, "x")
        check_no_type(no, "no")
        no_t = check_no(torch.as_tensor(no, dtype=_REAL[x.dtype], device=x.device), "no", finite=True)
        if not _broadcasts_to(no_t.shape, x.shape):
            raise ValueError(
                f"no (noise power) of shape {tuple(no_t.shape)} must broadcast to x of shape {tuple(x.shape)} "
                "(use [..., 1] for one N0 per example)"
            )
        return no_t

    def _kernel_rows(self, x: torch.Tensor, no_t: torch.Tensor):
        """``N0`` rows for the compiled kernels, or ``None`` when the torch path must run."""
        if self.backend == "torch" or not _ck.available():
            return None
        ok = x.device.type == "cpu" and x.dtype == torch.complex64 and not no_t.requires_grad
        rows = _ck.noise_rows(no_t, x.shape) if ok else None
        if rows is None and self.backend == "numba":
            raise ValueError(
                f"backend='numba' needs complex64 CPU symbols and a scalar or per-example ([..., 1]) N0 without "
                f"gradient; got x {x.dtype} on {x.device}, no of shape {tuple(no_t.shape)}; use backend='auto'")
        return rows

    def forward(self, x: torch.Tensor, no) -> ChannelOutput:
        """Apply ``y = h * x + n``.

        Parameters
        ----------
        x : Tensor, ``[..., n]``, complex64 or complex128
        no : float or Tensor broadcastable to ``x``
            Noise power N0 (>= 0). With unit-energy symbols, ``no = 10**(-snr_db/10)``.

        Returns
        -------
        ChannelOutput
        """
        no_t = self._check_inputs(x, no, finite=False)
        rows = self._kernel_rows(x, no_t)
        if rows is not None:
            return self._forward_kernel(x, no_t, rows)
        check_finite(x, "x")
        gen = self.generator(x.device)
        h = self.fading(x, gen)
        # The same draw as complex_normal (one fused real draw, same stream), scaled by sqrt(N0/2)
        # in one pass; AWGN adds x in the same pass (addcmul into the noise buffer).
        z = torch.randn(*x.shape, 2, generator=gen, dtype=_REAL[x.dtype], device=x.device)
        std = torch.sqrt(no_t * 0.5).unsqueeze(-1)
        if h is None and not (torch.is_grad_enabled() and (x.requires_grad or std.requires_grad)):
            y = torch.view_as_complex(torch.addcmul(torch.view_as_real(x.resolve_conj()), z, std, out=z))
        elif h is None:  # differentiable path (out= does not support autograd)
            y = torch.view_as_complex(z.mul_(std)).add_(x)
        else:
            y = torch.view_as_complex(z.mul_(std)).addcmul_(h, x)
        return ChannelOutput(y=y, h=h, no=no_t)

    def _forward_kernel(self, x: torch.Tensor, no_t: torch.Tensor, rows) -> ChannelOutput:
        """The compiled path: one key from the channel's generator, then one pass over ``x``.

        Differentiable inputs get the same random numbers, drawn by the kernels, and the physics
        in torch ops (so autograd sees ``y = h x + n``)."""
        gen = self.generator(x.device)
        key = _ck.draw_key(gen)
        spec = self.kernel_fading()
        differentiable = torch.is_grad_enabled() and x.requires_grad
        if spec == "fading":
            check_finite(x, "x")
            h = self.fading(x, gen)
            noise = _ck.complex_normal(x.shape, _ck.split_key(key, 0), self._std_rows(rows, x))
            if h is None:  # a subclass's fading may return h = 1
                y = noise + x if differentiable else noise.add_(x)
            else:
                y = noise + h * x if differentiable or h.requires_grad else noise.addcmul_(h, x)
            return ChannelOutput(y=y, h=h, no=no_t)
        if differentiable:
            check_finite(x, "x")
            noise = _ck.complex_normal(x.shape, _ck.split_key(key, 0), self._std_rows(rows, x))
            if spec is None:
                return ChannelOutput(y=x + noise, h=None, no=no_t)
            scale, los = spec
            h = _ck.complex_normal(x.shape, _ck.split_key(key, 1), scale) + los
            return ChannelOutput(y=h * x + noise, h=h, no=no_t)
        if spec is None:
            y, finite = _ck.awgn(x, rows[0].reshape(self._row_shape(rows, x)), key)
            h = None
        else:
            y, h, finite = _ck.flat_fading(x, rows[0].reshape(self._row_shape(rows, x)), key, *spec)
        if not finite:
            check_finite(x, "x")  # raises with the count of bad values
        return ChannelOutput(y=y, h=h, no=no_t)

    @staticmethod
    def _row_shape(rows, x):
        return (*x.shape[:-1], 1) if rows[0].numel() > 1 else ()

    def _std_rows(self, rows, x):
        return torch.sqrt(rows[0]).reshape(self._row_shape(rows, x))  # n = sqrt(N0) CN(0, 1)

    def forward_equalized(self, x: torch.Tensor, no, method: str = "zf", power: float = 1.0
                          ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The channel followed by perfect-CSI equalisation (:func:`phy.equalization.equalize`).

        With the numba backend and i.i.d. per-symbol fading this is one fused pass (``h`` is never
        written to memory); the values equal ``equalize(*self(x, no))`` for the same seed up to
        float rounding.

        Returns
        -------
        x_hat : Tensor ``[..., n]`` complex
        no_eff : Tensor broadcastable to ``x`` (ZF noise variance / MMSE error variance)
        no : Tensor, the ``N0`` used (as :attr:`ChannelOutput.no`)
        """
        from .zf_mmse import EQUALIZERS, equalize

        if method not in EQUALIZERS:
            raise ValueError(f"equalizer must be one of {EQUALIZERS}, got {method!r}")
        check_complex(x, "x")
        spec = self.kernel_fading()
        if isinstance(spec, tuple) and self.impairment is None and not (torch.is_grad_enabled() and x.requires_grad):
            no_t = self._check_inputs(x, no, finite=False)
            rows = self._kernel_rows(x, no_t)
            if rows is not None:
                key = _ck.draw_key(self.generator(x.device))
                x_hat, no_eff, finite = _ck.flat_fading_equalized(
                    x, rows[0].reshape(self._row_shape(rows, x)), key, method, power, *spec)
                if not finite:
                    check_finite(x, "x")
                return x_hat, no_eff, no_t
        out = self(x, no)
        x_hat, no_eff = equalize(out.y, out.h, out.no, method, power)
        return x_hat, no_eff, out.no

    def extra_repr(self) -> str:
        return f"seed={self._seed}"


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
_FLAT_PARAMS = (
    Param("block_length", int, 1, low=1),
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
        if isinstance(block_length, bool) or not isinstance(block_length, numbers.Integral) or block_length < 1:
            raise ValueError(f"block_length must be a positive int, got {block_length!r}")
        if isinstance(los_phase, bool) or not isinstance(los_phase, numbers.Real) or not math.isfinite(los_phase):
            raise ValueError(f"los_phase must be a finite number (radians), got {los_phase!r}")
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
                             "needs a MIMO receiver (phy.mimo, e.g. DigitalLink(..., detector=...))")
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
        Param("los_phase", float, 0.0, unit="rad"),
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


@contextlib.contextmanager
def _sionna_rng(generator: torch.Generator):
    """Route Sionna's global torch RNG for ``generator.device`` through ``generator``."""
    from sionna.phy import config

    key = str(generator.device)
    rngs = config._torch_rngs  # Sionna 2.x keeps one generator per device name here
    old = rngs.get(key)
    rngs[key] = generator
    try:
        yield
    finally:
        if old is None:
            rngs.pop(key, None)
        else:
            rngs[key] = old


TDL_MODELS = ("A", "B", "C", "D", "E", "A30", "B100", "C300")


class SionnaTDL(Channel):
    """3GPP TR 38.901 TDL channel (Sionna's ``TDL`` model) seen through an OFDM grid.

    The ``n`` symbols of each example fill ``n / fft_size`` OFDM symbols of ``fft_size``
    subcarriers (cyclic prefix longer than the delay spread, so no ISI); each symbol sees the
    frequency response of its subcarrier at its OFDM symbol time: ``y = h x + n`` with ``h``
    correlated across subcarriers (delay spread) and over time (Doppler). ``E|h|^2 = 1``
    (``normalize=True`` in Sionna's ``cir_to_ofdm_channel``), so the SNR convention is unchanged.

    Parameters
    ----------
    model : str
        TDL profile ``"A"``..``"E"`` (Sionna names).
    delay_spread : float
        RMS delay spread [s].
    carrier_frequency : float
        [Hz].
    fft_size : int
        Subcarriers per OFDM symbol; must divide ``n``.
    subcarrier_spacing : float
        [Hz]; OFDM symbols are ``1 / subcarrier_spacing`` apart.
    max_speed : float
        Largest terminal speed [m/s] (Doppler); each example's speed is drawn uniformly in
        ``[0, max_speed]`` (Sionna's ``min_speed=0``).
    speed : float, optional
        A fixed terminal speed [m/s] (``min_speed = max_speed = speed``); replaces ``max_speed``.
        This is the spec's key: ``tdl(model=C,delay_spread=100e-9,speed=30)``.

    Examples
    --------
    >>> ch = SionnaTDL(model="A", fft_size=64, seed=0)
    >>> out = ch(torch.ones(2, 128, dtype=torch.complex64), no=0.01)   # 2 OFDM symbols per example
    >>> out.y.shape, out.h.shape
    (torch.Size([2, 128]), torch.Size([2, 128]))
    """

    name = "tdl"
    spec_params = (
        Param("model", str, "A", choices=TDL_MODELS),
        Param("delay_spread", float, 300e-9, low=0.0, low_open=True, unit="s"),
        Param("carrier_frequency", float, 3.5e9, low=0.0, low_open=True, unit="Hz"),
        Param("fft_size", int, 64, low=1),
        Param("subcarrier_spacing", float, 30e3, low=0.0, low_open=True, unit="Hz"),
        Param("speed", float, 0.0, low=0.0, unit="m/s"),
    )

    def __init__(self, model: str = "A", delay_spread: float = 300e-9, carrier_frequency: float = 3.5e9,
                 fft_size: int = 64, subcarrier_spacing: float = 30e3, max_speed: float = 0.0,
                 seed: Optional[int] = None, device=None, backend: str = "auto", speed: Optional[float] = None):
        super().__init__(seed=seed, device=device, backend=backend)
        if speed is not None:
            if max_speed:
                raise ValueError(f"give speed (fixed) or max_speed (uniform in [0, max_speed]), not both; got "
                                 f"speed={speed!r}, max_speed={max_speed!r}")
            max_speed = speed
        if isinstance(fft_size, bool) or not isinstance(fft_size, numbers.Integral) or fft_size < 1:
            raise ValueError(f"fft_size must be a positive int, got {fft_size!r}")
        if model not in TDL_MODELS:
            raise ValueError(f"model must be one of {TDL_MODELS} (Sionna's TDL profiles), got {model!r}")
        for name, value, low in (("delay_spread", delay_spread, "> 0"), ("carrier_frequency", carrier_frequency, "> 0"),
                                 ("subcarrier_spacing", subcarrier_spacing, "> 0"), ("max_speed", max_speed, ">= 0")):
            ok = (not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
                  and (value > 0 if low == "> 0" else value >= 0))
            if not ok:
                raise ValueError(f"{name} must be a finite number {low}, got {value!r}")
        self.model = model
        self.delay_spread = float(delay_spread)
        self.carrier_frequency = float(carrier_frequency)
        self.fft_size = int(fft_size)
        self.subcarrier_spacing = float(subcarrier_spacing)
        self.max_speed = float(max_speed)
        self.min_speed = self.max_speed if speed is not None else 0.0
        self._tdl: Dict[Tuple[str, str], object] = {}

    def _model(self, device, precision):
        key = (str(device), precision)
        if key not in self._tdl:
            from sionna.phy.channel.tr38901 import TDL

            self._tdl[key] = TDL(self.model, delay_spread=self.delay_spread,
                                 carrier_frequency=self.carrier_frequency, min_speed=self.min_speed,
                                 max_speed=self.max_speed, precision=precision, device=str(device))
        return self._tdl[key]

    def fading(self, x, generator):
        from sionna.phy.channel import cir_to_ofdm_channel, subcarrier_frequencies

        n = x.shape[-1]
        if n % self.fft_size:
            raise ValueError(
                f"fft_size={self.fft_size} must divide the number of channel uses; x has n={n} symbols"
            )
        precision = "double" if x.dtype == torch.complex128 else "single"
        batch = math.prod(x.shape[:-1]) if x.dim() > 1 else 1
        num_ofdm = n // self.fft_size
        tdl = self._model(x.device, precision)
        with _sionna_rng(generator):
            a, tau = tdl(batch, num_ofdm, self.subcarrier_spacing)
        freqs = subcarrier_frequencies(self.fft_size, self.subcarrier_spacing, precision=precision,
                                       device=str(x.device))
        h = cir_to_ofdm_channel(freqs, a, tau, normalize=True)  # [B,1,1,1,1,T,F]
        return h.reshape(x.shape).to(x.dtype)

    def extra_repr(self) -> str:
        return (f"model={self.model!r}, delay_spread={self.delay_spread}, fft_size={self.fft_size}, "
                f"max_speed={self.max_speed}, seed={self._seed}")


class CallableChannel(Channel):
    """Turn a user callable into a :class:`Channel`.

    ``fn(x, no, generator)`` (or ``fn(x, no)``) must return ``y`` or ``(y, h)`` with ``y`` complex
    of ``x``'s shape and ``h`` broadcastable to it (or ``None``). The noise is the callable's job.

    Examples
    --------
    >>> ch = CallableChannel(lambda x, no: 2 * x, name="gain2")
    >>> ch(torch.ones(1, 2, dtype=torch.complex64), no=0.0).y
    tensor([[2.+0.j, 2.+0.j]])
    """

    name = "callable"

    def __init__(self, fn: Callable, name: str = "callable", pass_generator: bool = False,
                 seed: Optional[int] = None, device=None):
        super().__init__(seed=seed, device=device)
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.name = name
        self.pass_generator = pass_generator

    def forward(self, x, no) -> ChannelOutput:
        no_t = self._check_inputs(x, no)
        args = (x, no_t, self.generator(x.device)) if self.pass_generator else (x, no_t)
        out = self.fn(*args)
        y, h = (out if isinstance(out, tuple) else (out, None))
        if not isinstance(y, torch.Tensor) or not y.is_complex() or y.shape != x.shape:
            raise ValueError(
                f"channel callable {self.name!r} must return complex y of shape {tuple(x.shape)}, got "
                f"{type(y).__name__} {getattr(y, 'dtype', '')} {tuple(getattr(y, 'shape', ()))}"
            )
        if h is not None:
            try:  # broadcast_shapes raises RuntimeError on incompatible shapes
                ok = isinstance(h, torch.Tensor) and torch.broadcast_shapes(h.shape, x.shape) == x.shape
            except RuntimeError:
                ok = False
            if not ok:
                raise ValueError(f"channel callable {self.name!r} returned h that does not broadcast to "
                                 f"{tuple(x.shape)}: {tuple(getattr(h, 'shape', ()))}")
            h = h.to(device=x.device, dtype=x.dtype)
        return ChannelOutput(y=y.to(device=x.device, dtype=x.dtype), h=h, no=no_t)


#: Channel registry: spec name -> :class:`Channel` subclass (:func:`register_channel` adds to it).
CHANNELS: Dict[str, Type[Channel]] = {}


def register_channel(name: str):
    """Class decorator: make ``make_channel(name, ...)`` build this class.

    Examples
    --------
    >>> @register_channel("doc-awgn")
    ... class DocAWGN(AWGN):
    ...     name = "doc-awgn"
    >>> type(make_channel("doc-awgn", seed=0)).__name__
    'DocAWGN'
    >>> del CHANNELS["doc-awgn"]
    """

    def deco(cls):
        CHANNELS[name] = cls
        return cls

    return deco


for _cls in (AWGN, Rayleigh, Rician, SionnaTDL):
    register_channel(_cls.name)(_cls)


def parse_channel_spec(spec: str) -> Tuple[str, Dict[str, object]]:
    """A channel spec ``name(key=value, ...)`` -> ``(name, canonical kwargs)``: every parameter of the
    registered class (its ``spec_params``), defaults filled in, values checked and converted.

    Raises ``ValueError`` for an unknown name, an unknown key or a bad value, listing the valid keys
    with their types, ranges and defaults. The impairment keys of :mod:`phy.impairments`
    (``phase_noise_linewidth``, ``cfo``, ``symbol_rate``, ``phase_offset``) are valid on every channel
    and appear in the kwargs only when the impairment is on (so the canonical spec of an unimpaired
    channel is unchanged).

    Example
    -------
    >>> parse_channel_spec("rayleigh(block_length=64)")[1]["block_length"]
    64
    """
    name, raw = parse_spec(spec)
    if name not in CHANNELS:
        raise ValueError(f"unknown channel {name!r} in spec {spec!r}; expected one of {sorted(CHANNELS)}")
    raw, raw_imp = split_impairment_kwargs(raw)
    params = CHANNELS[name].spec_params
    own = {}
    if params is None:
        if raw:
            raise ValueError(f"channel {name!r} declares no spec parameters (spec_params); give the bare name, "
                             f"got {spec!r}")
    else:
        try:
            own = check_spec_kwargs(name, raw, params, spec)
        except ValueError as e:
            extra = "; ".join(p.describe() for p in IMPAIRMENT_PARAMS)
            raise ValueError(f"{e}; every channel also takes the impairment keys (phy.impairments): {extra}") \
                from None
    imp = {}
    if raw_imp:
        imp_kw = check_spec_kwargs(name, raw_imp, IMPAIRMENT_PARAMS, spec)
        rate_of = getattr(CHANNELS[name], "symbol_rate_of", None)  # a channel with its own time base (a grid)
        try:
            if rate_of is not None:
                imp_kw = resolve_symbol_rate(imp_kw, rate_of(own))
            imp = PhaseImpairment(**imp_kw).spec_kwargs()
        except ValueError as e:
            raise ValueError(f"channel spec {spec!r}: {e}") from None
    return name, {**own, **imp}


def canonical_channel_spec(spec: str) -> str:
    """The canonical text of a channel spec: every parameter, defaults filled in, keys sorted, numbers
    in shortest round-trip form. It is the CSV ``channel`` key and the manifest entry.

    Examples
    --------
    >>> canonical_channel_spec("RICIAN(k_db=10)")
    'rician(block_length=1,corr_rx=0.0,corr_tx=0.0,k_db=10.0,los_phase=0.0,num_rx=1,num_tx=1)'
    >>> canonical_channel_spec("awgn")
    'awgn'
    """
    return format_spec(*parse_channel_spec(spec))


def canonical_channel_list(channels) -> List[str]:
    """Canonical specs of a comma list (a string, or a list whose items may have been split at commas
    inside parentheses: they are rejoined, :func:`phy.channel_spec.split_channel_list`).

    Raises ``ValueError`` for an empty list, a bad spec or two specs with the same canonical text.

    Examples
    --------
    >>> canonical_channel_list("awgn,rayleigh(block_length=4)")
    ['awgn', 'rayleigh(block_length=4,corr_rx=0.0,corr_tx=0.0,num_rx=1,num_tx=1)']
    """
    specs = split_channel_list(channels)
    if not specs:
        raise ValueError(f"no channel given: {channels!r}; expected one or more of {sorted(CHANNELS)} "
                         "(with parameters, e.g. rician(k_db=10))")
    out = [canonical_channel_spec(s) for s in specs]
    dup = sorted({c for c in out if out.count(c) > 1})
    if dup:
        raise ValueError(f"the channel list {channels!r} names {dup[0]!r} twice")
    return out


def make_channel(name: Union[str, Channel], **kwargs) -> Channel:
    """Build a registered channel from a name or a spec (``awgn``, ``rayleigh(block_length=64)``,
    ``rician(k_db=10)``, ``tdl(model=C,delay_spread=100e-9,speed=30)``, ``rayleigh(num_tx=2,num_rx=2)``,
    ``rayleigh(phase_noise_linewidth=100e3,cfo=500,symbol_rate=1e6)``: impairments of
    :mod:`phy.impairments` on any channel, also as keyword arguments).

    A spec with parentheses is checked by :func:`parse_channel_spec`; ``kwargs`` (``seed``, ``device``,
    ``backend``, or constructor arguments with a bare name) are passed on and must not repeat a key
    of the spec. A :class:`Channel` instance is returned unchanged.

    Example
    -------
    >>> make_channel("rayleigh", block_length=4, seed=0).block_length
    4
    >>> make_channel("rician(k_db=10)", seed=0).k_factor
    10.0
    """
    if isinstance(name, Channel):
        return name
    if not isinstance(name, str):
        raise TypeError(f"channel must be a name or a Channel, got {type(name).__name__}")
    kwargs, imp = split_impairment_kwargs(kwargs)
    if "(" not in name:
        key = name.strip().lower()
        if key not in CHANNELS:
            raise ValueError(f"unknown channel {name!r}; expected one of {sorted(CHANNELS)}")
        return attach_impairment(CHANNELS[key](**kwargs), **imp)
    key, spec_kwargs = parse_channel_spec(name)
    spec_kwargs, spec_imp = split_impairment_kwargs(spec_kwargs)
    both = sorted(set(spec_kwargs) & set(kwargs)) + sorted(set(spec_imp) & set(imp))
    if both:
        raise ValueError(f"channel spec {name!r} and the keyword arguments both set {both}")
    return attach_impairment(CHANNELS[key](**spec_kwargs, **kwargs), **spec_imp, **imp)
