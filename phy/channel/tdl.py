"""3GPP TDL channels (Sionna's ``TDL`` model) seen through an OFDM grid, for symbol streams.

Each example's symbols fill OFDM symbols of ``fft_size`` subcarriers; the frequency response of the
channel impulse response is applied per resource element. For pilots, LS estimation and a resource grid
with its ledger, use the ``ofdm(...)`` channel of :mod:`phy.ofdm.channel`.
"""
from __future__ import annotations

import math
import numbers
from typing import Dict, Optional, Tuple

import torch

from phy.channel.spec import Param, check_values
from phy.channel.base import Channel, _sionna_rng

__all__ = ["SionnaTDL"]


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
        TDL profile ``"A"``..``"E"`` (Sionna names); ``"tdl-C"`` is accepted too, the spelling of
        ``ofdm(model=tdl-C)``, so one spelling works in every spec (the canonical spec stores ``C``).
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
        This is the spec's key: ``tdl(model=tdl-C,delay_spread=100e-9,speed=30)``.

    Examples
    --------
    >>> ch = SionnaTDL(model="A", fft_size=64, seed=0)
    >>> out = ch(torch.ones(2, 128, dtype=torch.complex64), no=0.01)   # 2 OFDM symbols per example
    >>> out.y.shape, out.h.shape
    (torch.Size([2, 128]), torch.Size([2, 128]))
    """

    name = "tdl"
    spec_params = (
        # tdl-C is also how ofdm(model=tdl-C) spells it: one spelling in every spec, stored as C
        Param("model", str, "A", choices=TDL_MODELS, aliases=tuple((f"tdl-{m}", m) for m in TDL_MODELS)),
        Param("delay_spread", float, 300e-9, low=0.0, low_open=True, high=1e-3, unit="s"),
        Param("carrier_frequency", float, 3.5e9, low=0.0, low_open=True, high=100e9, unit="Hz"),
        Param("fft_size", int, 64, low=1, high=4096),
        Param("subcarrier_spacing", float, 30e3, low=0.0, low_open=True, high=10e6, unit="Hz"),
        Param("speed", float, 0.0, low=0.0, high=1000.0, unit="m/s"),
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
        if isinstance(model, str) and model.lower().startswith("tdl-"):
            model = model[4:].upper()
        if model not in TDL_MODELS:
            raise ValueError(f"model must be one of {TDL_MODELS} (Sionna's TDL profiles), got {model!r}")
        for name, value, low in (("delay_spread", delay_spread, "> 0"), ("carrier_frequency", carrier_frequency, "> 0"),
                                 ("subcarrier_spacing", subcarrier_spacing, "> 0"), ("max_speed", max_speed, ">= 0")):
            ok = (not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
                  and (value > 0 if low == "> 0" else value >= 0))
            if not ok:
                raise ValueError(f"{name} must be a finite number {low}, got {value!r}")
        # the physical ranges of the spec (a channel built in Python takes what its spec takes)
        check_values(SionnaTDL.spec_params, "SionnaTDL", delay_spread=delay_spread, fft_size=fft_size,
                     carrier_frequency=carrier_frequency, subcarrier_spacing=subcarrier_spacing, speed=max_speed)
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
