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
compiled pass over memory (:mod:`phy.channel.kernels`, numba, a counter-based generator keyed from
the channel's ``torch.Generator``); elsewhere (GPU, complex128, per-symbol ``N0``) torch ops with
``torch.randn``. ``backend="torch"`` forces the torch path, e.g. to compare the two.

Example
-------
>>> import torch
>>> from phy.channel.flat import Rayleigh
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
from typing import Dict, Optional, Tuple, Union

import torch
from torch import nn

from phy.channel import kernels as _ck
from phy.channel.spec import Param
from phy.utils.conventions import check_complex, check_device, check_finite, check_no, check_no_type

__all__ = ["ChannelOutput", "Channel", "complex_normal", "BACKENDS"]


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
    >>> from phy.channel import AWGN
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
        generator (:mod:`phy.channel.kernels`; complex64 CPU tensors with a scalar or per-example
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
    #: the keys a channel spec ``name(key=value, ...)`` may set (:mod:`phy.channel.spec`); ``None``:
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
        #: receiver phase noise / CFO (:mod:`phy.channel.impairments`, applied by a forward hook); None: off
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

    def output_transformed(self) -> bool:
        """Whether calling the channel returns something other than what :meth:`forward` computes: an active
        impairment (:mod:`phy.channel.impairments`), a forward hook or pre-hook of this module, or a global
        module hook. A fast path that reproduces the channel from its noise and fading alone (the compiled
        kernels of :meth:`forward_equalized`, the fused chains of :mod:`phy.fec.scrambled_chain`, a closed
        form) is taken only when this is ``False``: a fast path implements the whole channel or is not taken.

        Examples
        --------
        >>> from phy.channel.registry import make_channel
        >>> make_channel("awgn").output_transformed(), make_channel("awgn(phase_offset=0.5)").output_transformed()
        (False, True)
        """
        imp = getattr(self, "impairment", None)
        if imp is not None and getattr(imp, "active", True):
            return True
        if self._forward_hooks or self._forward_pre_hooks:
            return True
        from torch.nn.modules import module as _module

        return bool(getattr(_module, "_global_forward_hooks", None) or
                    getattr(_module, "_global_forward_pre_hooks", None))

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
        """The channel followed by perfect-CSI equalisation (:func:`phy.mimo.equalization.equalize`).

        With the numba backend and i.i.d. per-symbol fading this is one fused pass (``h`` is never
        written to memory); the values equal ``equalize(*self(x, no))`` for the same seed up to
        float rounding.

        Returns
        -------
        x_hat : Tensor ``[..., n]`` complex
        no_eff : Tensor broadcastable to ``x`` (ZF noise variance / MMSE error variance)
        no : Tensor, the ``N0`` used (as :attr:`ChannelOutput.no`)
        """
        from phy.mimo.zf_mmse import EQUALIZERS, equalize

        if method not in EQUALIZERS:
            raise ValueError(f"equalizer must be one of {EQUALIZERS}, got {method!r}")
        check_complex(x, "x")
        spec = self.kernel_fading()
        if isinstance(spec, tuple) and not self.output_transformed() and not (
                torch.is_grad_enabled() and x.requires_grad):
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
