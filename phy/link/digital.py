"""Digital separation links: bits -> channel code -> QAM -> the shared channel -> LLRs -> decoder -> bits.

* :class:`DigitalLink`: the simulated modem (any code, QAM order, detector and CSI).
* :class:`BSCEquivalentLink`: uncoded QAM replaced by independent bit flips at the closed-form BER.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Dict, Optional, Tuple, Union

import torch

from phy.channel.base import Channel
from phy.channel.registry import make_channel
from phy.utils.conventions import (check_snr,
                          device_assert, device_checks)
from phy.fec.codes import Code, make_code
from phy.mimo.equalization import Equalizer
from phy.mimo.detection import DETECTORS, MIMODetector, mrc
from phy.mimo.csi import send_and_estimate
from phy.mapping.modulation import QAM, bits_per_symbol, uncoded_ber
from phy.link.analog import AnalogLink
from phy.link.base import Link, LinkOutput, _check_ofdm, noise_power

__all__ = ["DigitalLink", "BSCEquivalentLink"]


# ============================================================================================
# Digital separation links (bits -> code -> QAM -> channel -> LLR -> decode -> bits)
# ============================================================================================



def _check_bits(bits, batch_dims: Optional[int] = None, name: str = "bits") -> torch.Tensor:
    """0/1 tensor; with ``batch_dims``, also of shape ``[*batch, num_bits]``."""
    if not isinstance(bits, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of 0/1 values, got {type(bits).__name__}")
    if bits.is_complex():
        raise TypeError(f"{name} must be real 0/1 values, got dtype {bits.dtype}")
    if bits.numel() and device_checks(bits):  # no host synchronisation on an accelerator
        device_assert(((bits == 0) | (bits == 1)).all(), f"{name} must contain only 0 and 1")
    elif bits.numel() and not ((bits == 0) | (bits == 1)).all():
        raise ValueError(f"{name} must contain only 0 and 1")
    if batch_dims is not None:
        AnalogLink._check_batch_dims(batch_dims)
        if bits.dim() != batch_dims + 1:
            raise ValueError(f"{name} must have shape [*batch, num_bits] with {batch_dims} batch dim(s), got "
                             f"shape {tuple(bits.shape)}")
    return bits



def _symbol_multiple(channel) -> int:
    """Symbols per example must be a multiple of this for the channel (block fading, OFDM)."""
    for attr in ("block_length", "fft_size"):
        v = getattr(channel, attr, None)
        if isinstance(v, numbers.Integral) and v > 1:
            return int(v)
    return 1


class DigitalLink(Link):
    """Separate source/channel coding: information bits through a code, QAM and the shared channel.

    ::

        bits [*batch, num_blocks*k] --reshape--> [*batch, num_blocks, k] --code.encode-->
          [*batch, num_blocks*n] --(interleave)--> zero-pad to a multiple of
          bits_per_symbol * symbol_multiple --QAM map (unit Es)--> channel --ZF-->
          soft demap (per-symbol N0/|h|^2) --drop pad, de-interleave--> LLR --code.decode--> bits

    Parameters
    ----------
    channel : Channel or str
        The shared channel object.
    code : Code or str
        A :class:`phy.fec.codes.Code` or a name (``"none"``, ``"hamming74"``, ``"ldpc5g"``) built with
        ``code_kwargs`` (``"ldpc5g"`` needs ``k`` and ``n``).
    modulation : str
        ``"qpsk"``, ``"16qam"``, ``"64qam"``, ``"256qam"``.
    interleave : bool
        Apply a fixed pseudo-random bit permutation (seed ``interleaver_seed``) across all coded
        bits of an example (spreads the bits of one symbol / one fade over many codewords).
    equalizer : ``"zf"``
        Zero forcing (for one antenna the unbiased MMSE estimate is the ZF one; the biased MMSE
        estimate would distort the QAM demapping, so it is not offered).
    demapping : ``"app"`` (exact LLRs) or ``"maxlog"``
        ``"maxlog"`` hard decisions equal nearest-point decisions exactly.
    csi : ``"perfect"``, ``"ls"`` or ``"noisy"`` (see :mod:`phy.mimo.equalization`). ``"ls"``: one
        estimate per coherence block from ``num_pilots`` pilots, which are counted in ``channel_uses`` and
        pass the channel's oscillator impairment with the data; ZF and the demapper use the LMMSE estimate
        and the noise ``N0 + sigma_e^2`` (matched to the estimation error, :mod:`phy.mimo.csi`).
        ``"noisy"``: ``h + e``, mismatched demapping with ``N0/|h_est|^2``.
    symbol_multiple : int, optional
        Pad the symbols of each example to a multiple of this. Default: the channel's
        ``block_length`` (:class:`~phy.channel.flat.FlatFading`) or ``fft_size``
        (:class:`~phy.channel.tdl.SionnaTDL`), else 1. Padding symbols carry zero bits and are counted
        in ``channel_uses``.
    detector : ``"zf"``, ``"lmmse"`` (default), ``"kbest"`` or ``"ml"``
        MIMO channels only (``num_tx``/``num_rx`` > 1, :class:`phy.channel.flat.FlatFading`): spatial
        multiplexing of ``num_tx`` streams, the QAM symbols laid out channel use by channel use
        (symbol ``i`` on antenna ``i % num_tx`` of use ``i // num_tx``), each antenna sending
        ``Es / num_tx``; LLRs from Sionna's detector (:class:`phy.mimo.detection.MIMODetector`). With one
        transmit antenna (``1 x N_r``) the receiver is MRC (:func:`phy.mimo.detection.mrc`) followed by the
        soft demapper, exact for every ``detector``. MIMO ``csi="ls"``: ``num_pilots * num_tx`` orthogonal
        pilots per coherence block, counted (:mod:`phy.mimo.csi`).
        Over an OFDM grid (:class:`phy.ofdm.channel.OFDMChannel`): ``"lmmse"`` or ``"zf"``, Sionna's OFDM equalisers
        with the spec's pilots and LS or perfect CSI, then the soft demapper with their ``no_eff``;
        ``channel_uses`` is the grid's ledger (data REs of whole slots + pilot REs + cyclic prefix), the same
        as an analog link's for the same number of symbols.
    kbest_k : int
        Candidates of the K-best detector (default 16).

    Output
    ------
    A :class:`LinkOutput`:

    ``x_hat`` : decoded bits, same shape and dtype as ``bits``.
    ``channel_uses`` : complex channel uses per example (:meth:`channel_uses`).
    ``info`` : ``"llr"`` ``[*batch, num_blocks, n]`` de-interleaved code-bit LLRs (positive = 1),
    ``"coded_bits"`` ``[*batch, num_blocks, n]``, ``"symbols"`` ``[*batch, channel_uses]``,
    ``"no_eff"`` (per-symbol noise after ZF), ``"num_blocks"``, ``"pad_bits"`` (zero bits added
    before mapping), ``"block_errors"`` bool ``[*batch, num_blocks]`` (decoded block differs).

    Example
    -------
    >>> import torch
    >>> from phy.channel.flat import AWGN
    >>> link = DigitalLink(AWGN(seed=0), code="hamming74", modulation="16qam")
    >>> bits = torch.randint(0, 2, (2, 40)).float()          # 10 Hamming blocks
    >>> out = link(bits, snr_db=30.0)
    >>> out.channel_uses, bool((out.x_hat == bits).all())     # 70 code bits -> 18 symbols
    (18, True)
    """

    def __init__(self, channel: Union[Channel, str], code: Union[Code, str] = "none", modulation: str = "qpsk",
                 interleave: bool = False, equalizer: str = "zf", demapping: str = "app",
                 csi: str = "perfect", code_kwargs: Optional[Dict[str, Any]] = None,
                 interleaver_seed: int = 1234, symbol_multiple: Optional[int] = None,
                 pilot_snr_db: Optional[float] = None, num_pilots: int = 1, detector: str = "lmmse",
                 kbest_k: int = 16):
        super().__init__(channel)
        self.code = make_code(code, **(code_kwargs or {}))
        self.qam = QAM(modulation, demapping=demapping)
        self.modulation = self.qam.modulation
        if detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
        self.detector = detector
        self.mimo = bool(getattr(self.channel, "is_mimo", False))
        self.num_tx = int(getattr(self.channel, "num_tx", 1)) if self.mimo else 1
        self.ofdm = _check_ofdm(self.channel, csi)
        if self.ofdm:  # spatial multiplexing on the grid; Sionna's OFDM LMMSE / ZF equaliser + the soft demapper
            if detector not in ("zf", "lmmse"):
                raise ValueError(f"over an OFDM channel the detector must be 'zf' or 'lmmse' (Sionna's OFDM "
                                 f"equalisers), got {detector!r}")
            self.num_tx = int(self.channel.num_tx)
        self.mimo_detector = (MIMODetector(detector, self.modulation, self.num_tx, demapping, kbest_k)
                              if self.num_tx > 1 and not self.ofdm else None)
        if equalizer != "zf":
            raise ValueError(f"DigitalLink supports equalizer='zf' only (unbiased, what the QAM demapper "
                             f"needs), got {equalizer!r}")
        self.equalizer = Equalizer("zf", csi=csi, num_pilots=num_pilots, pilot_snr_db=pilot_snr_db)
        if not isinstance(interleave, bool):
            raise TypeError(f"interleave must be bool, got {type(interleave).__name__}")
        self.interleave = interleave
        self.interleaver_seed = int(interleaver_seed)
        if symbol_multiple is None:
            symbol_multiple = _symbol_multiple(self.channel)
        if isinstance(symbol_multiple, bool) or not isinstance(symbol_multiple, numbers.Integral) \
                or symbol_multiple < 1:
            raise ValueError(f"symbol_multiple must be a positive int, got {symbol_multiple!r}")
        self.symbol_multiple = int(symbol_multiple)
        self._perms: Dict[Tuple[int, str], Tuple[torch.Tensor, torch.Tensor]] = {}

    # -- rates and the ledger ---------------------------------------------------------------
    @property
    def k(self) -> int:
        return self.code.k

    @property
    def n(self) -> int:
        return self.code.n

    @property
    def rate(self) -> float:
        """Code rate ``k / n``."""
        return self.code.rate

    @property
    def coderate(self) -> float:
        """Alias of :attr:`rate` (the name :class:`phy.sim.trials.LinkTrial` and Sionna use)."""
        return self.code.rate

    @property
    def bits_per_symbol(self) -> int:
        return self.qam.bits_per_symbol

    @property
    def streams(self) -> int:
        """Spatial streams per channel use (``num_tx`` of a MIMO channel, else 1)."""
        return self.num_tx

    @property
    def spectral_efficiency(self) -> float:
        """Information bits per channel use without padding: ``rate * bits_per_symbol * streams``."""
        return self.rate * self.bits_per_symbol * self.streams

    def num_blocks(self, num_bits: int) -> int:
        """Codewords per example for ``num_bits`` information bits (must be a multiple of ``k``)."""
        if isinstance(num_bits, bool) or not isinstance(num_bits, numbers.Integral) or num_bits < 1:
            raise ValueError(f"num_bits must be a positive int, got {num_bits!r}")
        if num_bits % self.k:
            raise ValueError(f"num_bits={num_bits} is not a multiple of the code's k={self.k}; pad the "
                             f"payload explicitly (DigitalLink.pad_payload) before sending")
        return num_bits // self.k

    def pad_bits(self, num_bits: int) -> int:
        """Zero bits appended after coding so that the symbols fill whole QAM symbols / blocks."""
        coded = self.num_blocks(num_bits) * self.n
        unit = self.bits_per_symbol * self.symbol_multiple * self.streams
        return (-coded) % unit

    def channel_uses(self, num_bits: int = None) -> int:
        """Complex channel uses per example for a payload of ``num_bits`` information bits:
        ``ceil(num_blocks * n / (m * L * S)) * L`` with ``m`` bits/symbol, ``L = symbol_multiple`` and
        ``S`` spatial streams."""
        if num_bits is None:
            raise ValueError("num_bits (information bits per example) is required")
        coded = self.num_blocks(num_bits) * self.n
        if self.ofdm:  # a resource grid: data REs + pilot REs (+ cyclic prefix) of the slots used
            return self.channel.ledger((coded + self.pad_bits(num_bits)) // self.bits_per_symbol).channel_uses
        data = (coded + self.pad_bits(num_bits)) // (self.bits_per_symbol * self.streams)
        return data + self.equalizer.pilot_uses(data, self.channel)

    def effective_rate(self, num_bits: int) -> float:
        """Information bits per channel use including padding: ``num_bits / channel_uses``."""
        return num_bits / self.channel_uses(num_bits)

    def snr_db_from_ebno_db(self, ebno_db):
        """Es/N0 [dB] = Eb/N0 [dB] + 10 log10(bits_per_symbol * rate) (padding not counted)."""
        check_snr(ebno_db, "ebno_db")
        return ebno_db + 10.0 * math.log10(self.spectral_efficiency)

    def ebno_db_from_snr_db(self, snr_db):
        """Eb/N0 [dB] = Es/N0 [dB] - 10 log10(bits_per_symbol * rate)."""
        check_snr(snr_db)
        return snr_db - 10.0 * math.log10(self.spectral_efficiency)

    def pad_payload(self, bits: torch.Tensor) -> Tuple[torch.Tensor, int]:
        """Explicitly append zeros to ``bits [..., L]`` up to a multiple of ``k``; returns
        (padded bits, number of zeros added). Drop them after decoding with ``x_hat[..., :L]``."""
        _check_bits(bits)
        pad = (-bits.shape[-1]) % self.k
        return (torch.nn.functional.pad(bits, (0, pad)) if pad else bits), pad

    # -- interleaver ------------------------------------------------------------------------
    def _permutation(self, length: int, device) -> Tuple[torch.Tensor, torch.Tensor]:
        key = (length, str(device))
        if key not in self._perms:
            g = torch.Generator().manual_seed(self.interleaver_seed)
            perm = torch.randperm(length, generator=g)
            self._perms[key] = (perm.to(device), torch.argsort(perm).to(device))
        return self._perms[key]

    # -- transmission -----------------------------------------------------------------------
    def forward(self, bits: torch.Tensor, snr_db=None, no=None, batch_dims: int = 1) -> LinkOutput:
        """Send information bits ``[*batch, num_blocks * k]`` (0/1, float or int) at Es/N0
        ``snr_db`` (number, or tensor broadcastable to the batch shape) or noise power ``no``.

        Returns a :class:`LinkOutput` whose ``x_hat`` are the decoded bits (shape and dtype of
        ``bits``).
        """
        _check_bits(bits, batch_dims)
        batch_shape = tuple(bits.shape[:batch_dims])
        L = bits.shape[-1]
        nb = self.num_blocks(L)
        pad = self.pad_bits(L)
        dev = bits.device
        fdt = bits.dtype if bits.is_floating_point() else torch.float32
        cdt = torch.complex128 if fdt == torch.float64 else torch.complex64
        rdt = torch.float64 if fdt == torch.float64 else torch.float32

        u = bits.to(rdt).reshape(*batch_shape, nb, self.k)
        c = self.code.encode(u)  # [*batch, nb, n]
        cflat = c.reshape(*batch_shape, nb * self.n)
        if self.interleave:
            perm, inv = self._permutation(nb * self.n, dev)
            cflat = cflat[..., perm]
        if pad:
            cflat = torch.nn.functional.pad(cflat, (0, pad))
        x = self.qam.modulate(cflat, dtype=cdt)  # [*batch, ns]

        no_t = noise_power(snr_db, no, batch_shape, 1.0, rdt, dev)
        ledger = None
        if self.ofdm:
            o = self.channel.send_symbols(x, no_t, self.detector)
            llr, no_eff, no_used, ledger = self.qam.demodulate(o.x_hat, o.no_eff), o.no_eff, o.no, o.ledger
        elif self.mimo:
            llr, no_eff, no_used = self._mimo_receive(x, no_t)
            x = x.reshape(*batch_shape, -1, self.streams).transpose(-1, -2)  # [*batch, num_tx, uses]
        else:
            x_eq, no_eff, no_used = self.equalizer.transmit(self.channel, x, no_t)
            no_sym = torch.as_tensor(no_eff, dtype=rdt, device=dev).expand(x.shape)
            llr = self.qam.demodulate(x_eq, no_sym)
        llr = torch.nan_to_num(llr, nan=0.0, posinf=1e4, neginf=-1e4).clamp(-1e4, 1e4)
        if pad:
            llr = llr[..., : nb * self.n]
        if self.interleave:
            llr = llr[..., inv]
        llr = llr.reshape(*batch_shape, nb, self.n)
        u_hat = self.code.decode(llr)  # [*batch, nb, k]
        block_errors = (u_hat != u).any(-1)
        x_hat = u_hat.reshape(bits.shape).to(bits.dtype)
        pilots = self.equalizer.pilot_uses(x.shape[-1], self.channel) if ledger is None else ledger.pilot_uses
        data = x.shape[-1] if ledger is None else ledger.data_uses
        cp = 0 if ledger is None else ledger.cp_uses
        return LinkOutput(x_hat=x_hat, channel_uses=data + pilots + cp, no=no_used,
                          info={"llr": llr, "coded_bits": c, "symbols": x, "no_eff": no_eff,
                                "data_uses": data, "pilot_uses": pilots, "cp_uses": cp,
                                "num_blocks": nb, "pad_bits": pad, "block_errors": block_errors})

    def _mimo_receive(self, s: torch.Tensor, no_t: torch.Tensor):
        """Unit-energy QAM symbols ``s [*batch, uses * num_tx]`` -> antennas (``Es / num_tx`` each) ->
        MIMO channel -> MRC (one transmit antenna) or the MIMO detector -> LLRs ``[*batch, uses * num_tx * m]``
        in the order of ``s``; also the post-MRC noise (``None`` for spatial multiplexing) and ``N0``."""
        nt = self.num_tx
        batch = s.shape[:-1]
        scale = 1.0 / math.sqrt(nt)
        x = s.reshape(*batch, -1, nt).transpose(-1, -2) * scale  # [*batch, num_tx, uses]
        # no [*batch, 1, 1] per receive antenna; csi="ls": pilots in the frame, LMMSE estimate (phy.mimo.csi)
        out, h, no_rx = send_and_estimate(self.channel, x, no_t.unsqueeze(-1), self.equalizer)
        h = h * scale if nt > 1 else h                            # the channel the unit-energy symbols see
        if nt == 1:
            x_eq, no_eff = mrc(out.y, h, no_rx)
            return self.qam.demodulate(x_eq, no_eff), no_eff, out.no
        llr = self.mimo_detector(out.y, h, no_rx)                 # [*batch, uses, num_tx * m]
        return llr.reshape(*batch, -1), None, out.no

    def extra_repr(self) -> str:
        return (f"code={self.code.name}(k={self.k}, n={self.n}), modulation={self.modulation!r}, "
                f"interleave={self.interleave}, symbol_multiple={self.symbol_multiple}")


class BSCEquivalentLink(Link):
    """Uncoded QAM replaced by its binary symmetric channel: independent bit flips with the
    closed-form uncoded BER of the modulation (:func:`phy.mapping.modulation.uncoded_ber`; exact Gray-QAM
    BER for AWGN, its exact average over ``|h|^2 ~ Exp(1)`` for Rayleigh).

    This is the shortcut some papers (e.g. Img2Img-SC) use instead of simulating the modem. It
    ignores the correlation of errors within a symbol and within a fading block. Channel uses are
    counted as for an uncoded :class:`DigitalLink`: ``ceil(num_bits / bits_per_symbol)``.

    Parameters
    ----------
    modulation : str
    channel_kind : ``"awgn"`` or ``"rayleigh"`` (``None``: taken from ``channel.name``)
    channel : Channel, optional
        Only its random stream is used (pass the experiment's shared channel); default: a new
        channel of ``channel_kind`` seeded with ``seed``.

    Example
    -------
    >>> import torch
    >>> link = BSCEquivalentLink("qpsk", "awgn", seed=0)
    >>> out = link(torch.zeros(2, 10), snr_db=100.0)
    >>> out.channel_uses, int(out.x_hat.sum())
    (5, 0)
    """

    KINDS = ("awgn", "rayleigh")

    def __init__(self, modulation: str = "qpsk", channel_kind: Optional[str] = None,
                 channel: Optional[Channel] = None, seed: Optional[int] = None):
        if channel_kind is None:
            channel_kind = getattr(channel, "name", None) if channel is not None else "awgn"
        if channel_kind not in self.KINDS:
            raise ValueError(f"channel_kind must be one of {self.KINDS} (closed-form BER available), "
                             f"got {channel_kind!r}")
        super().__init__(channel if channel is not None else make_channel(channel_kind, seed=seed))
        if getattr(self.channel, "is_mimo", False):
            raise ValueError(f"BSCEquivalentLink has single-antenna closed forms only; got a {self.channel.num_rx} x "
                             f"{self.channel.num_tx} MIMO channel (use DigitalLink)")
        transformed = getattr(self.channel, "output_transformed", None)
        if callable(transformed) and transformed():
            raise ValueError(f"BSCEquivalentLink's closed form is the plain {channel_kind} channel's; this channel "
                             f"also has {getattr(self.channel, 'impairment', None) or 'a forward hook'}, which the "
                             "closed form cannot include (use DigitalLink)")
        self.channel_kind = channel_kind
        self.modulation = QAM(modulation).modulation
        self.bits_per_symbol = bits_per_symbol(modulation)

    def channel_uses(self, num_bits: int = None) -> int:
        if isinstance(num_bits, bool) or not isinstance(num_bits, numbers.Integral) or num_bits < 1:
            raise ValueError(f"num_bits must be a positive int, got {num_bits!r}")
        return math.ceil(num_bits / self.bits_per_symbol)

    def bit_error_rate(self, snr_db):
        """Closed-form flip probability at Es/N0 ``snr_db``."""
        return uncoded_ber(snr_db, self.modulation, self.channel_kind)

    def forward(self, bits: torch.Tensor, snr_db=None, no=None, batch_dims: int = 1) -> LinkOutput:
        """Flip each bit of ``bits [*batch, L]`` independently with the closed-form BER."""
        _check_bits(bits, batch_dims)
        batch_shape = tuple(bits.shape[:batch_dims])
        no_t = noise_power(snr_db, no, batch_shape, 1.0, torch.float64, bits.device)
        snr_db_t = -10.0 * torch.log10(no_t.clamp_min(1e-300))
        p = torch.as_tensor(self.bit_error_rate(snr_db_t.cpu().numpy()), dtype=torch.float64,
                            device=bits.device)
        gen = self.channel.generator(bits.device)
        r = torch.rand(bits.shape, generator=gen, dtype=torch.float64, device=bits.device)
        flips = r < p
        x_hat = torch.where(flips, 1 - bits, bits)
        return LinkOutput(x_hat=x_hat, channel_uses=self.channel_uses(bits.shape[-1]), no=no_t,
                          info={"ber": p, "flips": flips})

    def extra_repr(self) -> str:
        return f"modulation={self.modulation!r}, channel_kind={self.channel_kind!r}"
