"""OFDM with pilots and estimated CSI: a resource-grid link layer over Sionna's OFDM blocks.

:class:`OFDMChannel` (spec ``ofdm(...)``) is a :class:`~phy.channel.base.Channel` whose symbols travel on a
5G-style resource grid (Sionna's ``ResourceGrid`` with a ``KroneckerPilotPattern``), through a 3GPP TDL or
CDL channel with antenna arrays (``tr38901.TDL`` / ``tr38901.CDL`` with ``AntennaArray``), a flat Rayleigh
block-fading channel or AWGN, and back through Sionna's ``LMMSEChannelEstimator`` (the default) or
``LSChannelEstimator`` (nearest-neighbour or linear interpolation) or the perfect CSI, and its ``LMMSEEqualizer``
/ ``ZFEqualizer``::

    symbols s [*batch, m] (Es = 1) --pad to whole slots--> ResourceGridMapper (data REs + pilots)
      --> x / sqrt(num_tx) per antenna --> channel H[t, f] (GenerateOFDMChannel) + CN(0, N0) per rx antenna
      --> LMMSE or LS channel estimator (or perfect H) --> LMMSE / ZF equaliser --> s_hat [*batch, m], no_eff [*batch, m]

Channel estimation (``csi=ls``: estimated from the pilots; :mod:`phy.ofdm.estimation`)
-----------------------------------------------------------------------------------------
* ``estimator=lmmse`` (default): Sionna's LMMSE estimator, frequency then time, with the model's covariances
  (:func:`phy.ofdm.estimation.grid_covariances`), and its own error variance per resource element. The default,
  because a competent receiver smooths its pilots with what it knows of the channel: on a flat grid it
  averages all of a slot's pilots (QPSK over ``ofdm(model=awgn)`` is then within a fraction of a dB of perfect
  CSI, where per-RE LS loses about 3 dB).
* ``estimator=ls``: LS at the pilots interpolated by ``interpolation`` (``nn`` or ``lin``); the error variance
  of every resource element is computed from the interpolation weights, ``sum_p |W[r, p]|^2 N0 / |x_p|^2``
  (below N0 between two pilots, up to 1.9 dB above it where the interpolation extrapolates).

The equalisers take the estimate's error variance as extra noise (``no_eff``).

Conventions
-----------
* **One channel use = one resource element** (one subcarrier of one OFDM symbol), carrying up to
  ``num_tx`` spatial streams (one per transmit antenna, no precoding). **Es/N0 = total transmitted energy per
  resource element (all antennas together) / N0 per receive antenna**: each antenna sends ``Es / num_tx`` on a
  data RE. Sionna's Kronecker pilots are normalised to unit mean energy per stream over the pilot REs, of
  which a stream uses one in ``num_tx`` (the others carry zeros for the orthogonality): each pilot RE carries
  one pilot of energy ``num_tx`` before the ``1 / sqrt(num_tx)`` antenna scaling, i.e. ``Es`` per pilot RE
  too. Every RE, data or pilot, carries the same energy Es.
* The channel is **not normalised per slot**: ``E|H_ij|^2 = 1`` in expectation (Sionna's normalised power
  delay profiles, ``omni`` antenna elements, ``normalize_channel=False``), so slots fade as a whole too.
* Symbols fill the data REs of as many slots (``num_ofdm_symbols x fft_size`` REs) as needed; symbol ``i``
  goes to stream ``i % num_tx`` of data RE ``i // num_tx`` (Sionna's order: OFDM symbol by OFDM symbol,
  subcarrier by subcarrier); the last slot is zero-padded.
* **The ledger** (:meth:`OFDMChannel.ledger`): per example, ``data_uses = slots * data REs per slot`` (the
  padding of the last slot is charged to the scheme that sent it), ``pilot_uses = slots * pilot REs per slot``
  (a pilot OFDM symbol is reserved on every subcarrier for every stream, as in Sionna's Kronecker pattern),
  and, when ``cyclic_prefix > 0``, ``cp_uses = slots * num_ofdm_symbols * cyclic_prefix`` (time samples of the
  cyclic prefix, one complex dimension each). ``channel_uses = data + pilot + cp``. With ``csi=perfect`` the
  pilots still occupy the grid and are charged (set ``pilot_symbols=0`` for a genie receiver with no
  overhead).
* The frequency-domain model assumes a cyclic prefix longer than the channel's delay spread (no ISI, no ICI
  within an OFDM symbol; Doppler changes the channel from one OFDM symbol to the next).
* **Impairments** (the spec keys of :mod:`phy.channel.impairments`: ``phase_noise_linewidth``, ``cfo``,
  ``phase_offset``, ``random_phase``) are a receiver oscillator acting on **time samples**, with the
  inter-carrier interference it causes (:mod:`phy.ofdm.impairments`): each received OFDM symbol is taken to its
  ``fft_size`` samples by the unitary IDFT (Sionna's centred subcarrier order: ``ifftshift`` first), rotated by
  ``exp(j theta[n])`` and taken back by the unitary DFT. The time base is the grid's sample rate ``fft_size *
  subcarrier_spacing`` (:attr:`OFDMChannel.impairment_symbol_rate`): ``symbol_rate`` may be omitted (it is
  filled in, and appears in the canonical spec) and any other value is refused. The phase walk runs over every
  sample of an example's slots in time order, the ``cyclic_prefix`` samples of each OFDM symbol included (they
  advance it), restarts at every example, is common to all receive antennas and is drawn from the channel's
  random stream after the channel and the noise. The noise stays ``CN(0, N0)`` per RE (a unitary transform
  of rotated white noise) and ``E|y|^2 = Es + N0`` holds. Applied by :meth:`OFDMChannel.forward` and, before
  channel estimation, by :meth:`OFDMChannel.send_symbols`; unknown to the receiver: ``h`` (``csi=perfect``)
  excludes it, while the estimates (``csi=ls``) see the common phase error at the pilot symbols: the LMMSE
  estimator's time covariance includes the oscillator's statistics (not its realisation), LS interpolates it
  (``interpolation=lin``: linearly between them), each tracking part of it; the ICI remains.

Spec
----
``ofdm(model=tdl-C,delay_spread=100e-9,speed=30,num_tx=2,num_rx=2,fft_size=72,num_ofdm_symbols=14,
subcarrier_spacing=30e3,pilot_symbols=2,csi=ls,estimator=lmmse,interpolation=lin,cyclic_prefix=0)``; ``model`` is one of
:data:`OFDM_MODELS` (``tdl-A``..``tdl-E``, ``cdl-A``..``cdl-E`` (uplink: ``num_tx`` antennas at the terminal,
``num_rx`` at the base station, single-polarised omni ULAs at half-wavelength spacing), ``rayleigh`` (i.i.d.
``CN(0, 1)`` per antenna pair, constant over a slot) or ``awgn`` (``H = 1``, one transmit antenna));
``pilot_symbols`` OFDM symbols carry pilots, at :func:`pilot_symbol_indices` (2 of 14: symbols 2 and 11, as
in Sionna's examples).

Example
-------
>>> import torch
>>> ch = OFDMChannel(model="rayleigh", fft_size=12, num_ofdm_symbols=14, seed=0)
>>> s = torch.ones(3, 100, dtype=torch.complex64)
>>> out = ch.send_symbols(s, no=torch.full((3, 1), 0.01))
>>> out.x_hat.shape, out.ledger.data_uses, out.ledger.pilot_uses    # 100 symbols -> 1 slot of 144 REs
(torch.Size([3, 100]), 144, 24)
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch

from phy.channel.spec import Param
from phy.channel.base import _REAL, Channel, ChannelOutput, _sionna_rng, complex_normal
from phy.channel.registry import register_channel
from phy.utils.conventions import check_complex, check_finite, check_no, check_no_type
from phy.channel.impairments import PhaseImpairment, resolve_symbol_rate
from phy.ofdm.impairments import grid_sample_rate, impair_grid
from phy.ofdm.estimation import (OFDM_ESTIMATORS, GridLMMSE, grid_covariances, interpolation_weights,
                                 ls_grid_error_variance)

__all__ = ["OFDM_MODELS", "OFDM_EQUALIZERS", "pilot_symbol_indices", "OFDMLedger", "OFDMOutput", "OFDMChannel"]

#: channel models of the ``ofdm(model=...)`` spec
OFDM_MODELS = ("awgn", "rayleigh") + tuple(f"tdl-{m}" for m in "ABCDE") + tuple(f"cdl-{m}" for m in "ABCDE")
#: receivers of :meth:`OFDMChannel.send_symbols`: Sionna's unbiased LMMSE (what a QAM demapper needs), its
#: biased version (the LMMSE estimate an analog receiver wants), zero forcing
OFDM_EQUALIZERS = ("lmmse", "mmse", "zf")
_PILOT_SEED = 20240617  # the (known) QPSK pilot sequence is drawn once from this seed


def pilot_symbol_indices(num_ofdm_symbols: int, count: int) -> List[int]:
    """OFDM symbol indices of ``count`` pilot symbols in a slot of ``num_ofdm_symbols``.

    Two pilots in a slot of 14 are the symbols ``[2, 11]`` (Sionna's examples, 5G DMRS-like with one additional
    position); otherwise the pilots are spread evenly, one in the middle of each of ``count`` equal parts.

    Examples
    --------
    >>> pilot_symbol_indices(14, 2), pilot_symbol_indices(14, 1), pilot_symbol_indices(14, 4)
    ([2, 11], [7], [1, 5, 8, 12])
    """
    for name, v in (("num_ofdm_symbols", num_ofdm_symbols), ("count", count)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
            raise ValueError(f"{name} must be a non-negative int, got {v!r}")
    if count > num_ofdm_symbols:
        raise ValueError(f"count={count} pilot symbols do not fit a slot of num_ofdm_symbols={num_ofdm_symbols}")
    if count == 2 and num_ofdm_symbols == 14:
        return [2, 11]
    return [int(math.floor((i + 0.5) * num_ofdm_symbols / count)) for i in range(count)]


@dataclass(frozen=True)
class OFDMLedger:
    """Resource elements one example occupies (see the module docstring).

    Attributes
    ----------
    slots : int
        Slots used.
    data_uses, pilot_uses, cp_uses : int
        Data REs (with the padding of the last slot), pilot REs, cyclic-prefix samples.
    padding : int
        Zero symbols added to fill the last slot (over all streams).

    Examples
    --------
    >>> led = OFDMLedger(slots=2, data_uses=288, pilot_uses=48, cp_uses=0, padding=76)
    >>> led.channel_uses
    336
    """

    slots: int
    data_uses: int
    pilot_uses: int
    cp_uses: int
    padding: int

    @property
    def channel_uses(self) -> int:
        """``data_uses + pilot_uses + cp_uses``."""
        return self.data_uses + self.pilot_uses + self.cp_uses


@dataclass
class OFDMOutput:
    """What :meth:`OFDMChannel.send_symbols` returns.

    Attributes
    ----------
    x_hat : Tensor ``[*batch, m]`` complex
        Equalised symbols, in the order sent.
    no_eff : Tensor ``[*batch, m]`` real
        Effective noise variance of each symbol after equalisation (Sionna's ``no_eff``; for ``"mmse"`` the
        error variance of the biased estimate).
    no : Tensor
        ``N0`` per receive antenna, ``[*batch, 1]``.
    ledger : OFDMLedger
    h, h_hat, err_var : Tensor or None
        The true channel, its estimate and Sionna's estimation error variance, ``[B, num_rx, num_tx, T, F]``
        (``B`` = examples x slots, ``h`` and ``h_hat`` as seen by the unit-energy streams, i.e. ``H /
        sqrt(num_tx)``); only with ``return_csi=True``.

    Examples
    --------
    >>> ch = OFDMChannel(model="rayleigh", fft_size=12, num_ofdm_symbols=14, seed=0)
    >>> out = ch.send_symbols(torch.ones(2, 100, dtype=torch.complex64), no=0.01, return_csi=True)
    >>> out.x_hat.shape, out.no_eff.shape, out.no.shape, out.h.shape      # h: [examples x slots, nr, nt, T, F]
    (torch.Size([2, 100]), torch.Size([2, 100]), torch.Size([2, 1]), torch.Size([2, 1, 1, 14, 12]))
    """

    x_hat: torch.Tensor
    no_eff: torch.Tensor
    no: torch.Tensor
    ledger: OFDMLedger
    h: Optional[torch.Tensor] = None
    h_hat: Optional[torch.Tensor] = None
    err_var: Optional[torch.Tensor] = None


_ANT = dict(low=1, high=16)


@register_channel("ofdm")
class OFDMChannel(Channel):
    """A resource-grid OFDM link layer (pilots, LS or perfect CSI, LMMSE/ZF) over TDL, CDL, Rayleigh or AWGN.

    See the module docstring for the conventions and the ledger. The links (:class:`phy.link.analog.AnalogLink`,
    :class:`phy.link.digital.DigitalLink`) call :meth:`send_symbols` and :meth:`ledger`, so analog and digital schemes
    share the grid, the pilots, the estimator and the SNR definition. :meth:`forward` is the bare grid channel
    (no pilots, no receiver) of the :class:`~phy.channel.base.Channel` protocol.

    Parameters
    ----------
    model : str
        One of :data:`OFDM_MODELS`.
    delay_spread : float
        RMS delay spread [s] (TDL/CDL).
    carrier_frequency : float
        [Hz] (Doppler, CDL array geometry).
    speed : float
        Terminal speed [m/s] (TDL/CDL; Doppler across OFDM symbols).
    num_tx, num_rx : int
        Antennas (1 to 16); ``num_tx`` spatial streams. ``fft_size`` must be a multiple of ``num_tx``
        (orthogonal Kronecker pilots).
    fft_size : int
        Subcarriers (all used: no guard band, no DC null).
    num_ofdm_symbols : int
        OFDM symbols per slot.
    subcarrier_spacing : float
        [Hz].
    pilot_symbols : int
        Pilot OFDM symbols per slot (:func:`pilot_symbol_indices`); 0 only with ``csi="perfect"``.
    csi : ``"ls"`` or ``"perfect"``
        Estimated from the pilots (``estimator``) or the true channel (pilots still sent and charged).
    estimator : ``"lmmse"`` (default) or ``"ls"``
        With ``csi="ls"``: Sionna's LMMSE estimator with the model's covariances, or per-RE LS with
        ``interpolation`` (see the module docstring).
    interpolation : ``"nn"`` or ``"lin"``
        Interpolation of the LS estimates over the grid (``estimator="ls"``).
    cyclic_prefix : int
        Cyclic-prefix length in samples per OFDM symbol; only counted in the ledger (``cp_uses``).
    seed, device, backend :
        As for :class:`~phy.channel.base.Channel` (the backend is always torch here).

    Examples
    --------
    >>> from phy.channel.registry import make_channel
    >>> ch = make_channel("ofdm(model=tdl-C,num_tx=2,num_rx=2,fft_size=12,csi=ls)", seed=0)
    >>> ch.symbols_per_slot, ch.ledger(ch.symbols_per_slot)    # 144 data REs x 2 streams per slot of 14 x 12
    (288, OFDMLedger(slots=1, data_uses=144, pilot_uses=24, cp_uses=0, padding=0))
    >>> s = torch.ones(4, 288, dtype=torch.complex64)
    >>> out = ch.send_symbols(s, no=torch.full((4, 1), 0.01), equalizer="lmmse")   # pilots, LS, LMMSE
    >>> out.x_hat.shape, bool(((out.x_hat - s).abs().pow(2) / out.no_eff).mean() < 3)
    (torch.Size([4, 288]), True)
    """

    name = "ofdm"
    spec_params = (
        Param("model", str, "tdl-C", choices=OFDM_MODELS),
        Param("delay_spread", float, 100e-9, low=0.0, low_open=True, high=1e-3, unit="s"),
        Param("carrier_frequency", float, 3.5e9, low=0.0, low_open=True, high=100e9, unit="Hz"),
        Param("speed", float, 0.0, low=0.0, high=1000.0, unit="m/s"),
        Param("num_tx", int, 1, **_ANT),
        Param("num_rx", int, 1, **_ANT),
        Param("fft_size", int, 72, low=1, high=4096),
        Param("num_ofdm_symbols", int, 14, low=1, high=128),
        Param("subcarrier_spacing", float, 30e3, low=0.0, low_open=True, high=10e6, unit="Hz"),
        Param("pilot_symbols", int, 2, low=0, high=128),
        Param("csi", str, "ls", choices=("ls", "perfect")),
        Param("estimator", str, "lmmse", choices=OFDM_ESTIMATORS),
        Param("interpolation", str, "lin", choices=("nn", "lin")),
        Param("cyclic_prefix", int, 0, low=0, high=4096),
    )

    def __init__(self, model: str = "tdl-C", delay_spread: float = 100e-9, carrier_frequency: float = 3.5e9,
                 speed: float = 0.0, num_tx: int = 1, num_rx: int = 1, fft_size: int = 72,
                 num_ofdm_symbols: int = 14, subcarrier_spacing: float = 30e3, pilot_symbols: int = 2,
                 csi: str = "ls", interpolation: str = "lin", cyclic_prefix: int = 0, seed: Optional[int] = None,
                 device=None, backend: str = "auto", estimator: str = "lmmse"):
        super().__init__(seed=seed, device=device, backend=backend)
        given = dict(model=model, delay_spread=delay_spread, carrier_frequency=carrier_frequency, speed=speed,
                     num_tx=num_tx, num_rx=num_rx, fft_size=fft_size, num_ofdm_symbols=num_ofdm_symbols,
                     subcarrier_spacing=subcarrier_spacing, pilot_symbols=pilot_symbols, csi=csi,
                     estimator=estimator, interpolation=interpolation, cyclic_prefix=cyclic_prefix)
        params = {}
        for p in self.spec_params:
            if p.kind is str and not isinstance(given[p.name], str):
                raise ValueError(f"bad value {given[p.name]!r} for {p.describe()}")
            if p.kind is int and not isinstance(given[p.name], numbers.Integral):
                raise ValueError(f"bad value {given[p.name]!r} for {p.describe()}")
            params[p.name] = p.convert(given[p.name])  # ValueError naming the key, its range and default
        self.params: Dict[str, object] = params
        self.model = params["model"]
        self.num_tx, self.num_rx = params["num_tx"], params["num_rx"]
        self.csi, self.interpolation = params["csi"], params["interpolation"]
        self.estimator = params["estimator"]
        T, F, P = params["num_ofdm_symbols"], params["fft_size"], params["pilot_symbols"]
        if P >= T:
            raise ValueError(f"pilot_symbols={P} must be smaller than num_ofdm_symbols={T} (data need a symbol)")
        if P == 0 and self.csi == "ls":
            raise ValueError("pilot_symbols=0 leaves nothing to estimate the channel from; use csi=perfect "
                             "or pilot_symbols >= 1")
        if F % self.num_tx:
            raise ValueError(f"fft_size={F} must be a multiple of num_tx={self.num_tx} (orthogonal Kronecker "
                             "pilots: one subcarrier in num_tx per stream)")
        if self.model == "awgn" and self.num_tx > 1:
            raise ValueError(f"model=awgn has H = 1 and one transmit antenna; got num_tx={self.num_tx} (use "
                             "model=rayleigh, tdl-* or cdl-* for spatial multiplexing)")
        self.pilot_indices = pilot_symbol_indices(T, P)
        self.num_ofdm_symbols, self.grid_size = T, F  # not named fft_size: links pad to `fft_size` multiples
        self.data_res = (T - P) * F          # data REs per slot (each carries num_tx streams)
        self.pilot_res = P * F               # pilot REs per slot
        self._blocks: Dict[Tuple[str, str], Dict[str, object]] = {}
        self._check_memory(1)

    def _check_memory(self, slots: int) -> None:
        """Refuse (``InsufficientMemoryError``) a channel of ``slots`` slots that cannot fit: the frequency
        responses ``num_rx x num_tx x T x F`` per slot, and for TDL/CDL the per-path terms Sionna forms."""
        from phy.utils.memory import check_memory

        paths = 0 if self.model == "awgn" else 1 if self.model == "rayleigh" else 24
        per_slot = self.num_rx * self.num_tx * self.num_ofdm_symbols * self.grid_size * 8 * (2 + paths)
        check_memory(int(slots) * per_slot, f"an OFDM grid of {slots} slot(s) of {self.num_ofdm_symbols} x "
                     f"{self.grid_size} resource elements over {self.num_rx} x {self.num_tx} antennas ({self.model})",
                     hint="use fewer antennas, a smaller fft_size / num_ofdm_symbols or smaller batches")

    #: the grid rotates time samples itself (phy.ofdm.impairments); the generic forward hook skips it
    applies_impairment = True

    @classmethod
    def symbol_rate_of(cls, params) -> float:
        """The impairments' time base for the spec ``params``: ``fft_size * subcarrier_spacing`` [Hz]."""
        defaults = {p.name: p.default for p in cls.spec_params}
        return grid_sample_rate(int(params.get("fft_size", defaults["fft_size"])),
                                float(params.get("subcarrier_spacing", defaults["subcarrier_spacing"])))

    @property
    def impairment_symbol_rate(self) -> float:
        """The grid's sample rate ``fft_size * subcarrier_spacing`` [Hz]: the ``symbol_rate`` of impairments."""
        return self.symbol_rate_of(self.params)

    @property
    def impairment(self) -> Optional[PhaseImpairment]:
        """Receiver phase noise / CFO (:mod:`phy.channel.impairments`) on the time samples, or ``None`` (off)."""
        return self.__dict__.get("_impairment")

    @impairment.setter
    def impairment(self, value: Optional[PhaseImpairment]) -> None:
        if value is not None:
            if not isinstance(value, PhaseImpairment):
                raise TypeError(f"impairment must be a PhaseImpairment or None, got {type(value).__name__}")
            kw = {k: getattr(value, k) for k in ("phase_noise_linewidth", "cfo", "symbol_rate", "phase_offset",
                                                 "random_phase")}
            value = PhaseImpairment(**resolve_symbol_rate(kw, self.impairment_symbol_rate))
        self.__dict__["_impairment"] = value
        blocks = self.__dict__.get("_blocks")
        if blocks:   # the LMMSE estimator's time covariance holds the oscillator's statistics: rebuild it
            blocks.clear()

    def _impair(self, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``y [*examples, num_rx, S, F]`` (each example's OFDM symbols in time order) through the impairment."""
        imp = self.impairment
        if imp is None or not imp.active:
            return y
        return impair_grid(y, imp, self.params["cyclic_prefix"], generator if imp.random else None)

    @property
    def is_mimo(self) -> bool:
        """Whether :meth:`forward` takes and returns an antenna dimension (anything but 1 x 1)."""
        return self.num_tx > 1 or self.num_rx > 1

    # -- the ledger ----------------------------------------------------------------------
    @property
    def symbols_per_slot(self) -> int:
        """Data symbols one slot carries (data REs x streams)."""
        return self.data_res * self.num_tx

    def ledger(self, num_symbols: int) -> OFDMLedger:
        """Resource elements per example for ``num_symbols`` data symbols (see the module docstring).

        Examples
        --------
        >>> OFDMChannel(model="rayleigh", fft_size=12, seed=0).ledger(300)
        OFDMLedger(slots=3, data_uses=432, pilot_uses=72, cp_uses=0, padding=132)
        """
        if isinstance(num_symbols, bool) or not isinstance(num_symbols, numbers.Integral) or num_symbols < 1:
            raise ValueError(f"num_symbols must be a positive int, got {num_symbols!r}")
        slots = math.ceil(num_symbols / self.symbols_per_slot)
        return OFDMLedger(slots=slots, data_uses=slots * self.data_res, pilot_uses=slots * self.pilot_res,
                          cp_uses=slots * self.num_ofdm_symbols * self.params["cyclic_prefix"],
                          padding=slots * self.symbols_per_slot - num_symbols)

    # -- Sionna blocks, one set per (device, precision) --------------------------------------
    def _sionna(self, device: torch.device, precision: str) -> Dict[str, object]:
        key = (str(device), precision)
        if key in self._blocks:
            return self._blocks[key]
        import numpy as np
        from sionna.phy.channel import GenerateOFDMChannel, RayleighBlockFading
        from sionna.phy.mimo import StreamManagement
        from sionna.phy.ofdm import (LMMSEEqualizer, LSChannelEstimator, ResourceGrid, ResourceGridMapper,
                                     ZFEqualizer)

        p, dev = self.params, str(device)
        nt, nr = self.num_tx, self.num_rx
        with _sionna_rng(torch.Generator(device=device).manual_seed(_PILOT_SEED)):  # a fixed, known pilot set
            rg = ResourceGrid(num_ofdm_symbols=p["num_ofdm_symbols"], fft_size=p["fft_size"],
                              subcarrier_spacing=p["subcarrier_spacing"], num_tx=1, num_streams_per_tx=nt,
                              cyclic_prefix_length=p["cyclic_prefix"], num_guard_carriers=(0, 0), dc_null=False,
                              pilot_pattern="kronecker" if self.pilot_indices else "empty",
                              pilot_ofdm_symbol_indices=self.pilot_indices or None,
                              precision=precision, device=dev)
        sm = StreamManagement(np.ones([1, 1], int), nt)
        blocks: Dict[str, object] = {"rg": rg, "mapper": ResourceGridMapper(rg, precision=precision, device=dev),
                                     "lmmse": LMMSEEqualizer(rg, sm, precision=precision, device=dev),
                                     "zf": ZFEqualizer(rg, sm, precision=precision, device=dev)}
        model = None
        kind, _, profile = self.model.partition("-")
        if kind == "rayleigh":
            model = RayleighBlockFading(num_rx=1, num_rx_ant=nr, num_tx=1, num_tx_ant=nt, precision=precision,
                                        device=dev)
        elif kind == "tdl":
            from sionna.phy.channel.tr38901 import TDL

            model = TDL(profile, delay_spread=p["delay_spread"], carrier_frequency=p["carrier_frequency"],
                        min_speed=p["speed"], max_speed=p["speed"], num_rx_ant=nr, num_tx_ant=nt,
                        precision=precision, device=dev)
        elif kind == "cdl":
            from sionna.phy.channel.tr38901 import CDL, AntennaArray

            arrays = [AntennaArray(num_rows=1, num_cols=n, polarization="single", polarization_type="V",
                                   antenna_pattern="omni", carrier_frequency=p["carrier_frequency"],
                                   precision=precision, device=dev) for n in (nt, nr)]
            model = CDL(profile, delay_spread=p["delay_spread"], carrier_frequency=p["carrier_frequency"],
                        ut_array=arrays[0], bs_array=arrays[1], direction="uplink", min_speed=p["speed"],
                        max_speed=p["speed"], precision=precision, device=dev)
        if model is not None:
            blocks["gen"] = GenerateOFDMChannel(model, rg, normalize_channel=False, precision=precision,
                                                device=dev)
        self._blocks[key] = blocks
        if self.csi == "ls" and self.estimator == "ls":
            blocks["ls"] = LSChannelEstimator(rg, interpolation_type=self.interpolation, precision=precision,
                                              device=dev)
            blocks["ls_weights"] = interpolation_weights(blocks["ls"]._interpol, rg.pilot_pattern.pilots.to(dev))
        elif self.csi == "ls":
            cov_t, cov_f = grid_covariances(self, device, precision)
            cdt = torch.complex128 if precision == "double" else torch.complex64
            zero = torch.zeros(1, 1, nt, self.data_res, dtype=cdt, device=dev)
            pilot_grid = blocks["mapper"](zero)[0, 0]                         # [nt, T, F]: the pilots alone
            blocks["lmmse_est"] = GridLMMSE(pilot_grid, cov_t, cov_f, power=1.0 / nt)
        return blocks

    def _channel(self, batch: int, blocks, generator: torch.Generator, dtype, device) -> torch.Tensor:
        """Frequency responses ``H [batch, num_rx, num_tx, T, F]`` (``E|H_ij|^2 = 1``)."""
        T, F = self.num_ofdm_symbols, self.grid_size
        self._check_memory(batch)
        if "gen" not in blocks:  # awgn
            return torch.ones(batch, self.num_rx, self.num_tx, T, F, dtype=dtype, device=device)
        with _sionna_rng(generator):
            h = blocks["gen"](batch)  # [B, 1, num_rx, 1, num_tx, T, F]
        return h[:, 0, :, 0].to(dtype)

    # -- the Channel protocol: the bare grid -------------------------------------------------
    def forward(self, x: torch.Tensor, no) -> ChannelOutput:
        """The grid channel without pilots or receiver: ``y = H x + n`` on every resource element.

        Parameters
        ----------
        x : Tensor ``[..., num_tx, n]`` (``[..., n]`` for ``1 x 1``), complex
            ``n`` a multiple of ``num_ofdm_symbols * fft_size`` (whole slots, filled OFDM symbol by OFDM symbol).
            The channel does not scale ``x`` (send ``Es / num_tx`` per antenna for the package's convention).
        no : float or Tensor broadcastable to ``y`` (``[..., 1]`` or ``[..., 1, 1]`` per example)

        Returns
        -------
        ChannelOutput
            ``y [..., num_rx, n]`` (``[..., n]`` for ``1 x 1``), ``h [..., num_rx, num_tx, n]`` (``[..., n]``
            for ``1 x 1``), ``no``. With an :attr:`impairment`, ``y`` is rotated on the time samples of each
            OFDM symbol (ICI included; one walk per example over its slots); ``h`` excludes it.
        """
        check_complex(x, "x")
        check_finite(x, "x")
        siso = self.num_tx == 1 and self.num_rx == 1
        xs = x.unsqueeze(-2) if siso else x
        if xs.dim() < 2 or xs.shape[-2] != self.num_tx:
            raise ValueError(f"an OFDM channel with num_tx={self.num_tx} needs x of shape [..., num_tx, n], got "
                             f"{tuple(x.shape)}")
        slot = self.num_ofdm_symbols * self.grid_size
        n = xs.shape[-1]
        if n % slot:
            raise ValueError(f"x has n={n} resource elements, not a multiple of a slot "
                             f"(num_ofdm_symbols * fft_size = {slot})")
        check_no_type(no, "no")
        no_t = check_no(torch.as_tensor(no, dtype=_REAL[x.dtype], device=x.device), "no", finite=True)
        batch_shape = xs.shape[:-2]
        y_shape = torch.Size((*batch_shape, self.num_rx, n))
        no_b = no_t.unsqueeze(-1) if (siso and no_t.dim() and no_t.shape[-1] == 1) else no_t
        try:
            torch.broadcast_shapes(no_b.shape, y_shape)
        except RuntimeError:
            raise ValueError(f"no of shape {tuple(no_t.shape)} must broadcast to y of shape "
                             f"{tuple(y_shape) if not siso else tuple(x.shape)}") from None
        precision = "double" if x.dtype == torch.complex128 else "single"
        blocks = self._sionna(x.device, precision)
        gen = self.generator(x.device)
        B = math.prod(batch_shape) * (n // slot)
        h = self._channel(B, blocks, gen, x.dtype, x.device)  # [B, nr, nt, T, F]
        k = n // slot
        h = h.reshape(*batch_shape, k, self.num_rx, self.num_tx, slot).movedim(-4, -2)
        h = h.reshape(*batch_shape, self.num_rx, self.num_tx, n)
        noise = complex_normal(y_shape, gen, dtype=x.dtype, device=x.device)
        y = torch.einsum("...rtn,...tn->...rn", h, xs) + noise * torch.sqrt(no_b)
        if self.impairment is not None:  # receiver oscillator on the time samples (ICI included)
            T, F = self.num_ofdm_symbols, self.grid_size
            y = self._impair(y.reshape(*y.shape[:-1], k * T, F), gen).reshape(y.shape)
        if siso:
            return ChannelOutput(y=y[..., 0, :], h=h[..., 0, 0, :], no=no_t)
        return ChannelOutput(y=y, h=h, no=no_t)

    # -- the link layer -----------------------------------------------------------------------
    def send_symbols(self, s: torch.Tensor, no, equalizer: str = "lmmse", power: float = 1.0,
                     return_csi: bool = False) -> OFDMOutput:
        """Send symbols of energy ``power`` over the grid (with pilots) and equalise them.

        Parameters
        ----------
        s : Tensor ``[*batch, m]`` complex64/complex128
            Symbols of mean energy ``power`` (the total per resource element: each of the ``num_tx`` streams
            gets ``power / num_tx``), spatially multiplexed: symbol ``i`` on stream ``i % num_tx`` of data RE
            ``i // num_tx``; padded with zeros to whole slots.
        no : float or Tensor ``[*batch]`` / ``[*batch, 1]``
            ``N0`` per receive antenna (one per example).
        equalizer : ``"lmmse"`` (Sionna's, unbiased: for QAM demapping), ``"mmse"`` (the biased LMMSE
            estimate ``x_u / (1 + no_eff)``, error variance ``no_eff / (1 + no_eff)``: for analog symbols) or
            ``"zf"``.
        power : float
            Mean symbol energy ``P`` (``Es``); the receiver works on ``s / sqrt(P)`` with ``N0 / P``.
        return_csi : bool
            Also return the true and estimated channel (for tests and diagnostics).

        Returns
        -------
        OFDMOutput
            ``x_hat`` and ``no_eff`` ``[*batch, m]`` in the units of ``s``; the ledger per example. An
            :attr:`impairment` acts on the received grid before channel estimation, unknown to the receiver.

        Example
        -------
        >>> import torch
        >>> ch = OFDMChannel(model="awgn", fft_size=12, num_ofdm_symbols=4, pilot_symbols=1, seed=0)
        >>> out = ch.send_symbols(torch.ones(2, 30, dtype=torch.complex64), no=1e-4)
        >>> bool((out.x_hat - 1).abs().max() < 0.1), out.ledger.channel_uses
        (True, 48)
        """
        check_complex(s, "s")
        check_finite(s, "s")
        if equalizer not in OFDM_EQUALIZERS:
            raise ValueError(f"equalizer must be one of {OFDM_EQUALIZERS}, got {equalizer!r}")
        if isinstance(power, bool) or not isinstance(power, numbers.Real) or not 0 < power < math.inf:
            raise ValueError(f"power must be a positive finite number, got {power!r}")
        if s.dim() < 1 or s.shape[-1] < 1:
            raise ValueError(f"s must have shape [*batch, m] with m >= 1, got {tuple(s.shape)}")
        batch_shape, m = s.shape[:-1], s.shape[-1]
        rdt = _REAL[s.dtype]
        check_no_type(no, "no")
        no_t = check_no(torch.as_tensor(no, dtype=rdt, device=s.device), "no", finite=True)
        if no_t.dim() == len(batch_shape) + 1 and no_t.shape[-1] == 1:
            no_t = no_t[..., 0]
        try:
            ok = torch.broadcast_shapes(no_t.shape, batch_shape) == batch_shape
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(f"no of shape {tuple(no_t.shape)} must be one N0 per example (batch shape "
                             f"{tuple(batch_shape)})")
        led = self.ledger(m)
        nt, nr, K, D = self.num_tx, self.num_rx, led.slots, self.data_res
        b0 = math.prod(batch_shape)
        B = b0 * K
        precision = "double" if s.dtype == torch.complex128 else "single"
        blocks = self._sionna(s.device, precision)
        gen = self.generator(s.device)

        u = s.reshape(b0, m) / math.sqrt(power)
        if led.padding:
            u = torch.nn.functional.pad(u, (0, led.padding))
        u = u.reshape(B, D, nt).transpose(-1, -2).unsqueeze(1)           # [B, 1, nt, D]
        grid = blocks["mapper"](u)                                       # [B, 1, nt, T, F]
        no_e = (no_t.expand(batch_shape).reshape(b0, 1) / power).expand(b0, K).reshape(B)
        h = self._channel(B, blocks, gen, s.dtype, s.device) / math.sqrt(nt)   # what the unit streams see
        noise = complex_normal((B, nr, *grid.shape[-2:]), gen, dtype=s.dtype, device=s.device)
        y = torch.einsum("brtkf,btkf->brkf", h, grid[:, 0]) + noise * no_e.sqrt()[:, None, None, None]
        if self.impairment is not None:  # receiver oscillator on the time samples, before estimation
            T, F = y.shape[-2:]
            ye = y.reshape(b0, K, nr, T, F).transpose(1, 2).reshape(b0, nr, K * T, F)   # per example, time order
            y = self._impair(ye, gen).reshape(b0, nr, K, T, F).transpose(1, 2).reshape(B, nr, T, F)
        y = y.unsqueeze(1)                                               # [B, 1(rx), nr, T, F]
        h7 = h[:, None, :, None]                                         # [B, 1, nr, 1, nt, T, F]
        if self.csi == "ls" and self.estimator == "ls":   # LS, interpolated; error variance from the weights
            h_hat, _ = blocks["ls"](y, no_e)
            pilots = blocks["rg"].pilot_pattern.pilots.to(s.device)
            err_var = ls_grid_error_variance(blocks["ls_weights"], pilots, no_e).expand(h_hat.shape).to(rdt)
        elif self.csi == "ls":                               # joint time-frequency LMMSE of the stream channels
            h_hat, err_var = blocks["lmmse_est"](y[:, 0], no_e)           # [B, nr, nt, T, F], [B, 1, nt, T, F]
            h_hat, err_var = h_hat[:, None, :, None], err_var[:, None, :, None].expand(h_hat[:, None, :, None].shape)
        else:
            h_hat, err_var = h7, torch.zeros((), dtype=rdt, device=s.device)
        eq = blocks["zf" if equalizer == "zf" else "lmmse"]
        x_hat, no_eff = eq(y, h_hat, err_var, no_e)                      # [B, 1, nt, D]
        no_eff = no_eff.to(rdt)
        if equalizer == "mmse":
            x_hat = x_hat / (1.0 + no_eff)
            no_eff = no_eff / (1.0 + no_eff)
        def flat(t):  # [B, 1, nt, D] -> [*batch, m] in the order sent (padding dropped)
            return t[:, 0].transpose(-1, -2).reshape(b0, K * D * nt)[:, :m].reshape(*batch_shape, m)

        out = OFDMOutput(x_hat=flat(x_hat) * math.sqrt(power), no_eff=flat(no_eff) * power,
                         no=no_t.expand(batch_shape).unsqueeze(-1), ledger=led)
        if return_csi:
            out.h, out.h_hat = h, h_hat[:, 0, :, 0]
            out.err_var = err_var[:, 0, :, 0] if err_var.dim() else err_var
        return out

    # -- the capacity reference (phy.theory.capacity.channel_rate_bits) -------------------------------
    def rate_bits(self, uses: int, snr_db: float, draws: int = 2000) -> Tuple[str, "np.ndarray"]:
        """Bits ``uses`` resource elements of this grid can carry at ``snr_db``, for the OPTA reference.

        The ``uses`` buy ``uses // slot`` whole slots (``slot = ledger(1).channel_uses``: data, pilot and
        cyclic-prefix uses); only their data REs carry information, each at the mutual information
        ``log2 det(I + (snr / num_tx) H H^H)`` of its realised channel with Gaussian inputs, equal power per
        antenna and **perfect CSI at the receiver** (a genie: the pilots are paid for, their estimation error is
        not). One draw is one example's slots, so the result is ``("block", mi)`` with ``mi`` float64
        ``[draws]``, whose expectation of ``D(.)`` is the OPTA of an example sent over those slots
        (:func:`phy.theory.ratedistortion.gaussian_opta_distortion`). Called through
        :func:`phy.theory.capacity.channel_rate_bits`; the channel's random stream advances.

        Examples
        --------
        >>> import numpy as np
        >>> ch = OFDMChannel(model="awgn", fft_size=12, num_ofdm_symbols=14, pilot_symbols=2, seed=0)
        >>> mode, mi = ch.rate_bits(168, 10.0, draws=2)      # one slot: 144 data REs at log2(1 + 10) each
        >>> mode, bool(np.allclose(mi, 144 * np.log2(11.0)))
        ('block', True)
        """
        import numpy as np

        from phy.theory.mimo_capacity import mimo_instantaneous_capacity

        for name, value in (("uses", uses), ("draws", draws)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        per_slot = self.ledger(1).channel_uses
        slots = int(uses) // per_slot
        if slots == 0:
            raise ValueError(f"uses={uses} holds no whole slot of this grid ({per_slot} resource elements per "
                             "slot: data, pilots and cyclic prefix)")
        device = torch.device("cpu")
        blocks = self._sionna(device, "single")
        gen = self.generator(device)
        data_symbols = [t for t in range(self.num_ofdm_symbols) if t not in self.pilot_indices]
        out = np.empty(int(draws))
        chunk = max(1, 2 ** 16 // (slots * self.data_res))  # bound the memory of one channel draw
        for start in range(0, int(draws), chunk):
            d = min(chunk, int(draws) - start)
            h = self._channel(d * slots, blocks, gen, torch.complex64, device)     # [d*S, nr, nt, T, F]
            h = h[..., data_symbols, :].reshape(d, slots, self.num_rx, self.num_tx, -1)
            h = h.movedim(1, -2).reshape(d, self.num_rx, self.num_tx, -1)          # [d, nr, nt, S*D]
            out[start:start + d] = mimo_instantaneous_capacity(h, float(snr_db), self.num_tx).numpy()
        return "block", out

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(self.params.items())) + f", seed={self._seed}"
