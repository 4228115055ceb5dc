"""Oscillator impairments on any channel: Wiener phase noise and carrier frequency offset (CFO).

Model (receiver oscillator, applied to the **received** signal)::

    y'[k] = exp(j theta[k]) * y[k],     k = 0 .. n-1 (the channel-use index, last dim of y)
    theta[k] = phi_0 + 2 pi cfo Ts k + sum_{i=1..k} w_i,   w_i ~ N(0, 2 pi linewidth Ts)
    phi_0 = phase_offset (+ U[0, 2 pi) per example with random_phase=1)

``Ts = 1 / symbol_rate`` is the duration of one channel use, ``linewidth`` the oscillator's 3-dB
(full) linewidth in Hz (the Lorentzian spectrum of a Wiener phase process of increment variance
``2 pi linewidth Ts``), ``cfo`` the carrier frequency offset in Hz and ``phase_offset`` the phase at
``k = 0`` in radians: the receiver is synchronised at the start of each example (the walk restarts at
every example) up to that given phase, or, with ``random_phase=1``, up to an unknown phase drawn
uniformly in ``[0, 2 pi)`` per example (no synchronisation at all). Each example (every index of the batch dimensions) has its own phase
walk, drawn from the channel's random stream after the channel's own draws, so a seed still gives
bit-identical outputs. With ``num_rx`` receive antennas (MIMO) the phase is **common to all receive
antennas** (one local oscillator): ``theta`` has shape ``[..., 1, n]`` for ``y [..., num_rx, n]``.

Rotating ``y = h x + n`` by ``theta`` rotates the noise too, which leaves ``CN(0, N0)`` unchanged
(circular symmetry), so ``E|y'|^2 = E|y|^2 = Es + N0`` and the SNR convention is untouched. The
impairment is unknown to the receiver: ``ChannelOutput.h`` (the perfect CSI) does **not** include
``exp(j theta)``. Estimated CSI (``csi="ls"``) comes from pilots that pass the same oscillator: the links send
them in the data's frame (:func:`phy.mimo.csi.send_and_estimate`: the pilot uses of each coherence block before
its data uses, all on the phase walk), so the estimate absorbs a common phase and follows a drift block by block. Along the last
dimension the phase evolves channel use by channel use, which is the time axis of the flat
channels (AWGN, Rayleigh, Rician). A channel whose last dimension is not time applies the impairment
itself (class attribute ``applies_impairment = True``; the forward hook then leaves it alone): the OFDM grid
(:class:`phy.ofdm.channel.OFDMChannel`, :mod:`phy.ofdm.impairments`) rotates the **time samples** of each OFDM
symbol (IDFT, ``exp(j theta)``, DFT, cyclic prefixes advancing the walk), which models the inter-carrier
interference exactly; its time base is fixed (``channel.impairment_symbol_rate``: the sample rate
``fft_size * subcarrier_spacing``), so ``symbol_rate`` may be omitted there and is filled in, and any other
value is refused (:func:`resolve_symbol_rate`). The capacity
references (:func:`phy.theory.capacity.channel_rate_bits`, the ``compare`` OPTA) read ``h`` and so ignore the
impairment: they are the unimpaired channel's values.

Spec keys, valid on every registered channel (:func:`phy.channel.registry.parse_channel_spec`):
``phase_noise_linewidth`` [Hz], ``cfo`` [Hz], ``symbol_rate`` [Hz] (needed when either of the two
is non-zero; on an ``ofdm(...)`` grid the sample rate, filled in when omitted), ``phase_offset`` [rad] and
``random_phase`` (0 or 1), e.g. ``rayleigh(phase_noise_linewidth=100e3,symbol_rate=1e6)``.
All default to 0 (off); a spec with every impairment off has the same canonical text as before.

Example
-------
>>> import torch
>>> from phy.channel.registry import make_channel
>>> ch = make_channel("awgn(cfo=1000,symbol_rate=1e6)", seed=0)
>>> y = ch(torch.ones(1, 3, dtype=torch.complex64), no=0.0).y
>>> [round(a, 6) for a in torch.angle(y)[0].tolist()]           # 2 pi 1e-3 k
[0.0, 0.006283, 0.012566]
"""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

import torch

from phy.channel.spec import TWO_PI, Param

__all__ = ["PhaseImpairment", "IMPAIRMENT_PARAMS", "IMPAIRMENT_KEYS", "wiener_increment_variance",
           "phase_trajectory", "apply_phase", "attach_impairment", "split_impairment_kwargs", "resolve_symbol_rate"]

#: spec keys every channel accepts (SI units)
IMPAIRMENT_PARAMS: Tuple[Param, ...] = (
    Param("phase_noise_linewidth", float, 0.0, low=0.0, high=1e12, unit="Hz"),
    Param("cfo", float, 0.0, low=-1e12, high=1e12, unit="Hz"),
    Param("symbol_rate", float, 0.0, low=0.0, high=1e12, unit="Hz"),
    Param("phase_offset", float, 0.0, low=-TWO_PI, high=TWO_PI, unit="rad"),
    Param("random_phase", int, 0, low=0, high=1),
)
#: The smallest non-zero symbol_rate [Hz].
MIN_SYMBOL_RATE = 1.0
#: the names of :data:`IMPAIRMENT_PARAMS` (what :func:`split_impairment_kwargs` takes out of a spec)
IMPAIRMENT_KEYS = tuple(p.name for p in IMPAIRMENT_PARAMS)


def wiener_increment_variance(linewidth: float, symbol_time: float) -> float:
    """Variance [rad^2] of the Wiener phase increment per channel use: ``2 pi linewidth Ts``.

    Examples
    --------
    >>> round(wiener_increment_variance(100e3, 1e-6), 6)
    0.628319
    """
    for name, v in (("linewidth", linewidth), ("symbol_time", symbol_time)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (v >= 0 and math.isfinite(v)):
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    return 2.0 * math.pi * float(linewidth) * float(symbol_time)


@dataclass(frozen=True)
class PhaseImpairment:
    """Receiver phase noise (Wiener) and carrier frequency offset (see the module docstring).

    Parameters
    ----------
    phase_noise_linewidth : float
        3-dB linewidth [Hz] (>= 0; 0: no phase noise).
    cfo : float
        Carrier frequency offset [Hz] (any sign; 0: none).
    symbol_rate : float
        Channel uses per second [Hz]; required (> 0) when ``phase_noise_linewidth`` or ``cfo`` is non-zero.
    phase_offset : float
        Phase at channel use 0 [rad].
    random_phase : int
        1: add an initial phase uniform in ``[0, 2 pi)``, drawn per example; 0 (default): none.

    Examples
    --------
    >>> imp = PhaseImpairment(phase_noise_linewidth=100e3, cfo=250.0, symbol_rate=1e6)
    >>> round(imp.increment_variance, 6), round(imp.phase_step, 6), imp.active
    (0.628319, 0.001571, True)
    >>> PhaseImpairment().active, PhaseImpairment().spec_kwargs()       # off: nothing enters the spec
    (False, {})
    """

    phase_noise_linewidth: float = 0.0
    cfo: float = 0.0
    symbol_rate: float = 0.0
    phase_offset: float = 0.0
    random_phase: int = 0

    def __post_init__(self):
        for p in IMPAIRMENT_PARAMS:
            v = getattr(self, p.name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise ValueError(f"{p.name} must be a number, got {v!r}")
            try:
                p.convert(v)
            except ValueError as e:
                raise ValueError(f"{e}") from None
        if (self.phase_noise_linewidth or self.cfo) and not self.symbol_rate > 0:
            raise ValueError(f"symbol_rate [Hz] must be > 0 to turn phase_noise_linewidth="
                             f"{self.phase_noise_linewidth!r} Hz / cfo={self.cfo!r} Hz into radians per channel "
                             f"use, got symbol_rate={self.symbol_rate!r}")
        if 0 < self.symbol_rate < MIN_SYMBOL_RATE:
            raise ValueError(f"symbol_rate must be 0 (unset) or at least {MIN_SYMBOL_RATE:g} Hz, got {self.symbol_rate!r}")
        if self.symbol_rate and abs(self.cfo) > 0.5 * self.symbol_rate:
            raise ValueError(f"cfo={self.cfo!r} Hz exceeds half the symbol_rate={self.symbol_rate!r} Hz (more than "
                             "pi per channel use: it aliases); give |cfo| <= symbol_rate / 2")
        if self.symbol_rate and self.phase_noise_linewidth > self.symbol_rate:
            raise ValueError(f"phase_noise_linewidth={self.phase_noise_linewidth!r} Hz exceeds the symbol_rate="
                             f"{self.symbol_rate!r} Hz (the phase would be uniform within a channel use); give at "
                             "most symbol_rate")

    @property
    def active(self) -> bool:
        """Whether the impairment changes anything."""
        return bool(self.phase_noise_linewidth or self.cfo or self.phase_offset or self.random_phase)

    @property
    def symbol_time(self) -> float:
        return 1.0 / self.symbol_rate if self.symbol_rate > 0 else 0.0

    @property
    def increment_variance(self) -> float:
        """``2 pi linewidth Ts`` [rad^2 per channel use]."""
        return wiener_increment_variance(self.phase_noise_linewidth, self.symbol_time)

    @property
    def phase_step(self) -> float:
        """CFO phase ramp ``2 pi cfo Ts`` [rad per channel use]."""
        return 2.0 * math.pi * self.cfo * self.symbol_time

    def spec_kwargs(self) -> Dict[str, float]:
        """The spec keys (all of them when active, none when off: the canonical spec is unchanged)."""
        return {k: (int(v) if k == "random_phase" else float(v)) for k, v in asdict(self).items()} \
            if self.active else {}

    @property
    def random(self) -> bool:
        """Whether the phases need random draws (phase noise or a random initial phase)."""
        return self.increment_variance > 0 or bool(self.random_phase)


def phase_trajectory(batch_shape, n: int, impairment: PhaseImpairment, generator: Optional[torch.Generator],
                     dtype=torch.float64, device=None) -> torch.Tensor:
    """Phases ``theta [*batch_shape, n]`` [rad] of the module docstring (one independent walk per example).

    The random initial phases (``random_phase=1``), then the Wiener increments (a non-zero linewidth) are
    drawn from ``generator``; the sum and the ramp are accumulated in float64 and cast to ``dtype``.

    Examples
    --------
    >>> th = phase_trajectory((1,), 4, PhaseImpairment(cfo=250.0, symbol_rate=1e3), None)
    >>> [round(t, 6) for t in th[0].tolist()]                   # pi/2 per channel use
    [0.0, 1.570796, 3.141593, 4.712389]
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"n (channel uses) must be an int >= 0, got {n!r}")
    shape = (*tuple(batch_shape), int(n))
    k = torch.arange(n, dtype=torch.float64, device=device)
    theta = (impairment.phase_offset + impairment.phase_step * k).expand(shape).clone()
    if impairment.random and generator is None:
        raise ValueError("phase noise / a random initial phase needs a generator (the channel's random stream), "
                         "got None")
    if impairment.random_phase:
        phi = torch.rand(tuple(batch_shape), generator=generator, dtype=torch.float64, device=device)
        theta += (2.0 * math.pi * phi).unsqueeze(-1)
    var = impairment.increment_variance
    if var > 0 and n > 1:
        w = torch.randn((*tuple(batch_shape), n - 1), generator=generator, dtype=torch.float64, device=device)
        theta[..., 1:] += torch.cumsum(w, -1) * math.sqrt(var)
    return theta.to(dtype)


def apply_phase(y: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``y * exp(j theta)``: ``y [..., n]`` complex, ``theta`` real and broadcastable to ``y``; returns ``[..., n]``.

    Examples
    --------
    >>> y = apply_phase(torch.ones(2, dtype=torch.complex64), torch.tensor([0.0, math.pi / 2]))
    >>> [(round(v.real, 6), round(v.imag, 6)) for v in y.tolist()]
    [(1.0, 0.0), (-0.0, 1.0)]
    """
    rot = torch.polar(torch.ones_like(theta), theta).to(y.dtype)
    return y * rot


def _impairment_hook(module, args, output):
    """Forward hook of a channel with an impairment: rotate ``output.y`` (``h`` and ``no`` untouched)."""
    imp = getattr(module, "impairment", None)
    if imp is None or not imp.active or getattr(module, "applies_impairment", False):
        return output  # off, or the channel applies it itself (an OFDM grid: phy.ofdm.impairments)
    y = output.y
    mimo = bool(getattr(module, "is_mimo", False)) and y.dim() >= 2
    batch = y.shape[:-2] + (1,) if mimo else y.shape[:-1]  # one oscillator for all receive antennas
    gen = module.generator(y.device) if imp.random else None
    theta = phase_trajectory(batch, y.shape[-1], imp, gen, dtype=y.real.dtype, device=y.device)
    return type(output)(y=apply_phase(y, theta), h=output.h, no=output.no)


def attach_impairment(channel, impairment: Optional[PhaseImpairment] = None, **kwargs):
    """Give ``channel`` (any :class:`phy.channel.base.Channel`) the impairment and return it.

    ``impairment`` or the keyword arguments (:data:`IMPAIRMENT_KEYS`) describe it; an inactive one
    (everything 0) leaves the channel untouched. A channel takes one impairment (attaching twice raises).

    Examples
    --------
    >>> from phy.channel.flat import AWGN
    >>> ch = attach_impairment(AWGN(seed=0), phase_offset=0.5)
    >>> ch.impairment.phase_offset
    0.5
    """
    if impairment is None:
        rate = getattr(channel, "impairment_symbol_rate", None)   # a channel with its own time base (a grid)
        impairment = PhaseImpairment(**(resolve_symbol_rate(kwargs, rate) if rate else kwargs))
    elif kwargs:
        raise ValueError(f"give an impairment or its keyword arguments, not both; got {sorted(kwargs)}")
    if not isinstance(impairment, PhaseImpairment):
        raise TypeError(f"impairment must be a PhaseImpairment, got {type(impairment).__name__}")
    if not impairment.active:
        return channel
    if getattr(channel, "impairment", None) is not None:
        raise ValueError(f"channel {getattr(channel, 'name', channel)!r} already has an impairment "
                         f"({channel.impairment})")
    channel.impairment = impairment
    channel.register_forward_hook(_impairment_hook)
    return channel


def split_impairment_kwargs(kwargs: Mapping[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``kwargs`` -> (the channel's own keys, the impairment keys).

    Examples
    --------
    >>> split_impairment_kwargs({"block_length": 8, "cfo": 500.0, "symbol_rate": 1e6})
    ({'block_length': 8}, {'cfo': 500.0, 'symbol_rate': 1000000.0})
    """
    own = {k: v for k, v in kwargs.items() if k not in IMPAIRMENT_KEYS}
    imp = {k: v for k, v in kwargs.items() if k in IMPAIRMENT_KEYS}
    return own, imp


def resolve_symbol_rate(kwargs: Mapping[str, Any], rate: float, what: str = "an OFDM grid's sample rate "
                        "fft_size * subcarrier_spacing") -> Dict[str, Any]:
    """Impairment keywords with ``symbol_rate`` set to the ``rate`` a channel imposes (an OFDM grid's).

    An omitted or zero ``symbol_rate`` is filled in; another value than ``rate`` (relative tolerance 1e-9)
    raises ``ValueError`` naming the value to give. Only called with impairment keys present.

    Examples
    --------
    >>> resolve_symbol_rate({"cfo": 600.0}, 2.16e6)["symbol_rate"]
    2160000.0
    """
    given = kwargs.get("symbol_rate", 0.0)
    if isinstance(given, bool) or not isinstance(given, numbers.Real):
        raise ValueError(f"symbol_rate must be a number [Hz], got {given!r}")
    if given and not math.isclose(float(given), float(rate), rel_tol=1e-9):
        raise ValueError(f"symbol_rate must be {what} = {float(rate)!r} Hz (or omitted: it is filled in), got "
                         f"symbol_rate={given!r}")
    return {**kwargs, "symbol_rate": float(rate)}
