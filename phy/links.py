"""Links: the mapping of a payload onto channel symbols and back, with a channel-use ledger.

A link owns the mapping to and from complex channel symbols and the count of channel uses; the
:class:`~phy.channels.Channel` it is given owns nothing but the physics. Create one channel per
experiment and hand the *same* object to every link so the SNR definition, the fading statistics
and the random stream are shared by every scheme.

Every link reports ``channel_uses``: complex channel uses (resource elements) per example, the data symbols
plus, with ``csi="ls"``, the pilots of the channel estimate (``info["data_uses"]``, ``info["pilot_uses"]``).

Example
-------
>>> import torch
>>> from phy.channels import AWGN
>>> link = AnalogLink(AWGN(seed=0))
>>> feats = torch.randn(4, 32, 7)          # 224 reals -> 112 complex channel uses
>>> out = link(feats, snr_db=20.0)
>>> out.x_hat.shape, out.channel_uses
(torch.Size([4, 32, 7]), 112)
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .channels import Channel, make_channel
from .conventions import (bandwidth_compression_ratio, check_finite, check_no, check_real, check_snr,
                          device_assert, device_checks,
                          normalize_power, normalize_power_batchwide, snr_db_to_no)
from .capacity import CAPACITY_MODES, IdealCode, instantaneous_capacity
from .codes import Code, make_code
from .equalization import Equalizer
from .mimo import DETECTORS, MIMODetector, mimo_equalize, mrc
from .mimo_csi import receiver_csi
from .precoding import svd_transmit
from .modulation import QAM, bits_per_symbol, uncoded_ber

__all__ = ["LinkOutput", "Link", "AnalogLink", "real_to_complex", "complex_to_real", "snr_to_no_tensor", "noise_power"]

_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128,
            torch.float16: torch.complex64, torch.bfloat16: torch.complex64}


@dataclass
class LinkOutput:
    """Result of sending a batch through a link.

    Attributes
    ----------
    x_hat : Tensor
        The receiver's estimate of the payload, same shape (and dtype) as the input.
    channel_uses : int
        Complex channel uses spent per example.
    no : Tensor
        Noise power N0 used, broadcastable to the symbols ``[..., n]``.
    info : dict
        Link-specific extras (e.g. ``symbols``, ``scale``, ``no_eff``).

    Examples
    --------
    >>> from phy.channels import AWGN
    >>> out = AnalogLink(AWGN(seed=0))(torch.randn(2, 6), snr_db=20.0)
    >>> out.x_hat.shape, out.channel_uses, tuple(out.no.shape)
    (torch.Size([2, 6]), 3, (2, 1))
    """

    x_hat: torch.Tensor
    channel_uses: int
    no: torch.Tensor
    info: Dict[str, Any] = field(default_factory=dict)


def snr_to_no_tensor(snr_db, batch_shape: Sequence[int], power: float, dtype, device) -> torch.Tensor:
    """N0 as a tensor of shape ``[*batch_shape, 1]`` from an Es/N0 in dB (number or tensor).

    A tensor ``snr_db`` must broadcast to ``batch_shape`` (one SNR per example, or ``[S, 1]`` for an
    SNR sweep over a leading dimension).

    Examples
    --------
    >>> snr_to_no_tensor(torch.tensor([0.0, 10.0]), batch_shape=(2,), power=1.0, dtype=torch.float32, device="cpu")
    tensor([[1.0000],
            [0.1000]])
    """
    check_snr(snr_db)
    snr = torch.as_tensor(snr_db, dtype=dtype, device=device)
    try:
        shape = torch.broadcast_shapes(snr.shape, tuple(batch_shape))
    except RuntimeError:
        shape = None
    if shape != tuple(batch_shape):
        raise ValueError(f"snr_db of shape {tuple(snr.shape)} must broadcast to the batch shape "
                         f"{tuple(batch_shape)}")
    return snr_db_to_no(snr, power).expand(tuple(batch_shape)).unsqueeze(-1)


def noise_power(snr_db, no, batch_shape: Sequence[int], power: float, dtype, device) -> torch.Tensor:
    """N0 ``[*batch_shape, 1]`` from exactly one of ``snr_db`` (Es/N0 in dB) or ``no`` (noise power).

    Either may be a number or a tensor broadcastable to ``batch_shape`` (one value per example;
    ``[*batch_shape, 1]`` is accepted too). A per-symbol ``no`` is not a link-level quantity and
    is refused rather than broadcast along the symbols.

    Examples
    --------
    >>> noise_power(None, 0.5, batch_shape=(3,), power=1.0, dtype=torch.float32, device="cpu").shape
    torch.Size([3, 1])
    >>> noise_power(10.0, 0.5, batch_shape=(3,), power=1.0, dtype=torch.float32, device="cpu")
    Traceback (most recent call last):
    ...
    ValueError: ...
    """
    if (snr_db is None) == (no is None):
        raise ValueError("give exactly one of snr_db (Es/N0 in dB) or no (noise power N0)")
    if snr_db is not None:
        return snr_to_no_tensor(snr_db, batch_shape, power, dtype, device)
    check_no(no)
    no_t = torch.as_tensor(no, dtype=dtype, device=device)
    if no_t.dim() == len(batch_shape) + 1 and no_t.shape[-1] == 1:
        no_t = no_t[..., 0]
    try:
        shape = torch.broadcast_shapes(no_t.shape, tuple(batch_shape))
    except RuntimeError:
        shape = None
    if shape != tuple(batch_shape):
        raise ValueError(f"no of shape {tuple(no_t.shape)} must broadcast to the batch shape {tuple(batch_shape)} "
                         "(one noise power per example)")
    return no_t.expand(tuple(batch_shape)).unsqueeze(-1)


def real_to_complex(x: torch.Tensor) -> Tuple[torch.Tensor, int]:
    """Pair consecutive reals of the last dim into complex symbols (zero-padding an odd length).

    ``[..., m]`` real -> ``[..., ceil(m/2)]`` complex; returns the symbols and the padding (0/1).
    No copy when ``m`` is even and ``x`` is contiguous float32/float64.

    Examples
    --------
    >>> z, pad = real_to_complex(torch.tensor([[1.0, 2.0, 3.0]]))
    >>> z, pad
    (tensor([[1.+2.j, 3.+0.j]]), 1)
    """
    m = x.shape[-1]
    pad = m % 2
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    if pad:
        x = torch.nn.functional.pad(x, (0, 1))
    x = x.contiguous()
    if x.storage_offset() % 2:  # view_as_complex needs an even offset (e.g. a view like buf[1:])
        x = x.clone()
    return torch.view_as_complex(x.reshape(*x.shape[:-1], x.shape[-1] // 2, 2)), pad


def complex_to_real(z: torch.Tensor, pad: int) -> torch.Tensor:
    """Inverse of :func:`real_to_complex`: ``[..., n]`` complex -> ``[..., 2n - pad]`` real.

    Examples
    --------
    >>> complex_to_real(torch.tensor([[1 + 2j, 3 + 0j]]), pad=1)
    tensor([[1., 2., 3.]])
    """
    r = torch.view_as_real(z.contiguous()).reshape(*z.shape[:-1], 2 * z.shape[-1])
    return r[..., : r.shape[-1] - pad] if pad else r


class Link(nn.Module):
    """Base class: holds the shared channel and the ledger interface.

    Examples
    --------
    >>> from phy.channels import AWGN
    >>> link = AnalogLink(AWGN(seed=0))
    >>> isinstance(link, Link), link.channel_uses((3, 32, 32))
    (True, 1536)
    >>> link.bandwidth_compression_ratio((3, 32, 32), feature_shape=(3, 32, 32))
    0.5
    """

    def __init__(self, channel: Union[Channel, str]):
        super().__init__()
        if not isinstance(channel, (Channel, str)):
            raise TypeError(f"channel must be a phy.channels.Channel or a registered name, got "
                            f"{type(channel).__name__}")
        self.channel = make_channel(channel) if isinstance(channel, str) else channel

    def channel_uses(self, *args, **kwargs) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def bandwidth_compression_ratio(self, source_shape, convention: str = "complex", **kwargs) -> float:
        """BCR of this link for a source of ``source_shape`` (e.g. ``(3, 256, 256)``)."""
        return bandwidth_compression_ratio(self.channel_uses(**kwargs), source_shape, convention)


class AnalogLink(Link):
    """Real features sent straight as complex channel symbols (analog / semantic transmission).

    ::

        features [*batch, *shape] --flatten--> pair into complex (n = ceil(numel/2), odd -> pad)
          --per-example power normalisation (mean |x|^2 = P)--> channel --> equaliser
          --> undo power scale --> unpair, drop pad --> [*batch, *shape]

    The power scale of each example is side information the receiver is assumed to know.

    Over a MIMO channel (``num_tx``/``num_rx`` > 1) the symbols are spatially multiplexed (symbol ``i``
    on antenna ``i % num_tx`` of channel use ``i // num_tx``, ``Es / num_tx`` per antenna, zero-padded to
    whole channel uses) and equalised per stream: ``equalizer="mmse"`` is LMMSE, ``"zf"`` zero forcing
    (:func:`phy.mimo.mimo_equalize`); ``channel_uses = ceil(ceil(m / 2) / num_tx)``. ``csi="ls"``: orthogonal
    pilots, ``num_pilots * num_tx`` per coherence block, counted (:mod:`phy.mimo_csi`). ``precoding="svd"``
    (**needs CSIT**): eigen-beamforming on the ``K = min(num_tx, num_rx)`` eigenmodes with MSE-optimal power
    allocation and per-mode LMMSE (:mod:`phy.precoding`); ``channel_uses = ceil(ceil(m / 2) / K)``.

    Over an OFDM grid (:class:`phy.ofdm.OFDMChannel`, spec ``ofdm(...)``) the symbols go through the grid's
    :meth:`~phy.ofdm.OFDMChannel.send_symbols` (pilots, the spec's LS or perfect CSI, Sionna's LMMSE made
    biased for ``"mmse"``, or ZF) and ``channel_uses`` is its ledger: data REs of whole slots + pilot REs
    (+ cyclic prefix), in ``info["data_uses"]``, ``info["pilot_uses"]``, ``info["cp_uses"]``; ``csi`` must
    stay ``"perfect"`` (the grid's CSI is set by its spec).

    Parameters
    ----------
    channel : Channel or str
        The shared channel object.
    equalizer : ``"mmse"`` (default: the biased LMMSE estimate an analog feature receiver wants, the
        rule of every command) or ``"zf"``
    csi : ``"perfect"`` (default), ``"ls"`` or ``"noisy"`` (see :mod:`phy.equalization`)
    power : float
        Mean symbol energy ``P`` (default 1); the SNR is ``P / N0``.
    batchwide_power : bool
        Normalise over the whole batch instead of per example (only to reproduce public code).
    pilot_snr_db, num_pilots :
        CSI estimation parameters; with ``csi="ls"`` the ``num_pilots`` pilots per coherence block
        are counted in ``channel_uses``.
    precoding : ``None`` (default) or ``"svd"``
        SVD precoding with transmitter CSI (needs ``equalizer="mmse"``, ``csi="perfect"``; on a 1 x 1
        channel it is the plain LMMSE link). ``info["csit"]`` says whether the transmitter used CSI.

    Examples
    --------
    >>> from phy.channels import Rayleigh
    >>> link = AnalogLink(Rayleigh(seed=0), equalizer="mmse")
    >>> x = torch.randn(4, 10)
    >>> out = link(x, snr_db=40.0)
    >>> out.x_hat.shape, out.channel_uses, torch.allclose(out.x_hat, x, atol=0.1)
    (torch.Size([4, 10]), 5, True)
    """

    def __init__(self, channel: Union[Channel, str], equalizer: str = "mmse", csi: str = "perfect",
                 power: float = 1.0, batchwide_power: bool = False, pilot_snr_db: Optional[float] = None,
                 num_pilots: int = 1, precoding: Optional[str] = None):
        super().__init__(channel)
        if precoding not in (None, "svd"):
            raise ValueError(f"precoding must be None or 'svd' (needs transmitter CSI), got {precoding!r}")
        if precoding == "svd" and (equalizer != "mmse" or csi != "perfect"):
            raise ValueError(f"precoding='svd' needs equalizer='mmse' (per-eigenmode LMMSE) and csi='perfect' "
                             f"(CSIT), got equalizer={equalizer!r}, csi={csi!r}")
        self.precoding = precoding
        if not isinstance(power, numbers.Real) or not power > 0:
            raise ValueError(f"power must be a positive number, got {power!r}")
        self.power = float(power)
        self.batchwide_power = bool(batchwide_power)
        self.equalizer = Equalizer(equalizer, csi=csi, num_pilots=num_pilots, pilot_snr_db=pilot_snr_db,
                                   power=self.power)
        self.mimo = bool(getattr(self.channel, "is_mimo", False))
        self.num_tx = int(getattr(self.channel, "num_tx", 1)) if self.mimo else 1
        #: complex symbols per channel use: num_tx (spatial multiplexing) or min(num_tx, num_rx) eigenmodes (SVD)
        self.streams = min(self.num_tx, int(self.channel.num_rx)) if self.mimo and precoding else self.num_tx
        self.ofdm = _check_ofdm(self.channel, csi)
        if self.ofdm and precoding is not None:
            raise ValueError(f"precoding={precoding!r} is not implemented over an OFDM grid (ofdm(...): spatial "
                             "multiplexing with Sionna's OFDM LMMSE/ZF); use precoding=None")

    @staticmethod
    def _check_batch_dims(batch_dims):
        if isinstance(batch_dims, bool) or not isinstance(batch_dims, numbers.Integral) or batch_dims < 0:
            raise ValueError(f"batch_dims must be a non-negative int, got {batch_dims!r}")

    def channel_uses(self, feature_shape: Union[Sequence[int], int] = None) -> int:
        """Complex channel uses per example for features of ``feature_shape`` (excluding batch): the
        data symbols plus, with ``csi="ls"``, the pilots (:meth:`phy.equalization.Equalizer.pilot_uses`)."""
        if feature_shape is None:
            raise ValueError("feature_shape is required, e.g. (32, 768)")
        dims = (feature_shape,) if isinstance(feature_shape, numbers.Integral) else feature_shape
        if isinstance(dims, (str, bytes)) or not isinstance(dims, Sequence) or len(dims) == 0 or any(
                isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in dims):
            raise ValueError(f"feature_shape must be a positive int or a non-empty sequence of positive ints "
                             f"(the shape without batch dims, e.g. (32, 768)), got {feature_shape!r}")
        if self.ofdm:  # a resource grid: data REs + pilot REs (+ cyclic prefix) of the slots used
            return self.channel.ledger(math.ceil(math.prod(int(d) for d in dims) / 2)).channel_uses
        data = math.ceil(math.ceil(math.prod(int(d) for d in dims) / 2) / self.streams)
        return data + self.equalizer.pilot_uses(data, self.channel)

    def encode(self, features: torch.Tensor, batch_dims: int = 1):
        """Features ``[*batch, *shape]`` real -> (symbols ``[*batch, n]`` complex, scale, pad)."""
        check_real(features, "features")
        check_finite(features, "features")
        self._check_batch_dims(batch_dims)
        if features.dim() <= batch_dims:
            raise ValueError(f"features must have feature dimensions after the {batch_dims} batch dim(s), "
                             f"got shape {tuple(features.shape)}")
        flat = features.reshape(*features.shape[:batch_dims], -1)
        z, pad = real_to_complex(flat)
        norm = normalize_power_batchwide if self.batchwide_power else normalize_power
        x, scale = norm(z, self.power)
        return x, scale, pad

    def decode(self, x_hat: torch.Tensor, scale: torch.Tensor, pad: int, shape: Sequence[int],
               dtype: torch.dtype) -> torch.Tensor:
        """Equalised symbols -> features of ``shape``."""
        return complex_to_real(x_hat * scale, pad).reshape(shape).to(dtype)

    def forward(self, features: torch.Tensor, snr_db=None, no=None, batch_dims: int = 1) -> LinkOutput:
        """Send ``features`` ``[*batch, *shape]`` (real) at Es/N0 ``snr_db`` (or noise power ``no``).

        ``snr_db`` may be a number or a tensor broadcastable to the batch shape (one SNR per
        example, or ``[S, 1]`` with ``batch_dims=2`` for an S-point sweep in one pass).
        """
        if (snr_db is None) == (no is None):
            raise ValueError("give exactly one of snr_db (Es/N0 in dB) or no (noise power N0)")
        x, scale, pad = self.encode(features, batch_dims)
        no_t = noise_power(snr_db, no, features.shape[:batch_dims], self.power, x.real.dtype, x.device)
        if self.ofdm:  # the grid's LMMSE (biased, "mmse") or ZF receiver with the spec's CSI; its ledger
            o = self.channel.send_symbols(x, no_t, self.equalizer.method, self.power)
            f_hat = self.decode(o.x_hat, scale, pad, features.shape, features.dtype)
            return LinkOutput(x_hat=f_hat, channel_uses=o.ledger.channel_uses, no=o.no,
                              info={"scale": scale, "no_eff": o.no_eff, "symbols": x, "data_uses": o.ledger.data_uses,
                                    "pilot_uses": o.ledger.pilot_uses, "cp_uses": o.ledger.cp_uses,
                                    "slots": o.ledger.slots, "csit": False})
        extra = {}
        if self.mimo and self.precoding == "svd":
            x_hat, no_eff, no_used, x, p = svd_transmit(self.channel, x, no_t, self.power)
            extra = {"eigenmode_power": p}
        elif self.mimo:
            x_hat, no_eff, no_used, x = self._mimo_transmit(x, no_t)
        else:
            x_hat, no_eff, no_used = self.equalizer.transmit(self.channel, x, no_t)
        f_hat = self.decode(x_hat, scale, pad, features.shape, features.dtype)
        pilots = self.equalizer.pilot_uses(x.shape[-1], self.channel)
        return LinkOutput(x_hat=f_hat, channel_uses=x.shape[-1] + pilots, no=no_used,
                          info={"scale": scale, "no_eff": no_eff, "symbols": x, "data_uses": x.shape[-1],
                                "pilot_uses": pilots, "csit": self.mimo and self.precoding is not None, **extra})

    def _mimo_transmit(self, s: torch.Tensor, no_t: torch.Tensor):
        """Spatial multiplexing of the normalised symbols ``s [*batch, m]`` over a MIMO channel:
        zero-padded to a multiple of ``num_tx``, symbol ``i`` on antenna ``i % num_tx`` of channel use
        ``i // num_tx`` with ``Es / num_tx`` per antenna, then linear per-stream equalisation
        (:func:`phy.mimo.mimo_equalize`, ``"mmse"`` = LMMSE, ``"zf"``). Returns ``(s_hat [*batch, m],
        per-symbol error variance [*batch, m], N0, antenna symbols [*batch, num_tx, uses])``."""
        nt, m = self.num_tx, s.shape[-1]
        batch = s.shape[:-1]
        pad = (-m) % nt
        sp = torch.nn.functional.pad(s, (0, pad)) if pad else s
        scale = 1.0 / math.sqrt(nt)
        x = sp.reshape(*batch, -1, nt).transpose(-1, -2) * scale   # [*batch, num_tx, uses]
        out = self.channel(x, no_t.unsqueeze(-1))
        h = receiver_csi(self.channel, out, self.equalizer)        # csi="ls": phy.mimo_csi
        s_hat, var = mimo_equalize(out.y, h * scale, out.no, self.equalizer.method, self.power)
        s_hat = s_hat.transpose(-1, -2).reshape(*batch, -1)[..., :m]
        var = var.transpose(-1, -2).reshape(*batch, -1)[..., :m]
        return s_hat, var, out.no, x


# ============================================================================================
# Digital separation links (bits -> code -> QAM -> channel -> LLR -> decode -> bits)
# ============================================================================================

__all__ += ["DigitalLink", "BSCEquivalentLink", "IdealCodeLink"]


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


def _check_ofdm(channel, csi: str) -> bool:
    """Whether ``channel`` is a resource-grid channel (:class:`phy.ofdm.OFDMChannel`: it has ``send_symbols``
    and ``ledger``); its CSI (pilots, estimator) is set by the channel spec, so the link's own must be perfect."""
    if not (hasattr(channel, "send_symbols") and hasattr(channel, "ledger")):
        return False
    if csi != "perfect":
        raise ValueError(f"over an OFDM channel the CSI is set by the channel spec (ofdm(csi=ls|perfect, "
                         f"pilot_symbols=...)); the link's csi must be 'perfect', got csi={csi!r}")
    return True


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
        A :class:`phy.codes.Code` or a name (``"none"``, ``"hamming74"``, ``"ldpc5g"``) built with
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
    csi : ``"perfect"``, ``"ls"`` or ``"noisy"`` (see :mod:`phy.equalization`; mismatched
        demapping with ``N0/|h_est|^2``; ``"ls"``: one estimate per coherence block from
        ``num_pilots`` pilots, which are counted in ``channel_uses``).
    symbol_multiple : int, optional
        Pad the symbols of each example to a multiple of this. Default: the channel's
        ``block_length`` (:class:`~phy.channels.FlatFading`) or ``fft_size``
        (:class:`~phy.channels.SionnaTDL`), else 1. Padding symbols carry zero bits and are counted
        in ``channel_uses``.
    detector : ``"zf"``, ``"lmmse"`` (default), ``"kbest"`` or ``"ml"``
        MIMO channels only (``num_tx``/``num_rx`` > 1, :class:`phy.channels.FlatFading`): spatial
        multiplexing of ``num_tx`` streams, the QAM symbols laid out channel use by channel use
        (symbol ``i`` on antenna ``i % num_tx`` of use ``i // num_tx``), each antenna sending
        ``Es / num_tx``; LLRs from Sionna's detector (:class:`phy.mimo.MIMODetector`). With one
        transmit antenna (``1 x N_r``) the receiver is MRC (:func:`phy.mimo.mrc`) followed by the
        soft demapper, exact for every ``detector``. MIMO ``csi="ls"``: ``num_pilots * num_tx`` orthogonal
        pilots per coherence block, counted (:mod:`phy.mimo_csi`).
        Over an OFDM grid (:class:`phy.ofdm.OFDMChannel`): ``"lmmse"`` or ``"zf"``, Sionna's OFDM equalisers
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
    >>> from phy.channels import AWGN
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
        """Alias of :attr:`rate` (the name :class:`phy.montecarlo.LinkTrial` and Sionna use)."""
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
        out = self.channel(x, no_t.unsqueeze(-1))                # no [*batch, 1, 1] per receive antenna
        h = receiver_csi(self.channel, out, self.equalizer)       # csi="ls": phy.mimo_csi
        h = h * scale if nt > 1 else h                            # the channel the unit-energy symbols see
        if nt == 1:
            x_eq, no_eff = mrc(out.y, h, out.no)
            return self.qam.demodulate(x_eq, no_eff), no_eff, out.no
        llr = self.mimo_detector(out.y, h, out.no)                # [*batch, uses, num_tx * m]
        return llr.reshape(*batch, -1), None, out.no

    def extra_repr(self) -> str:
        return (f"code={self.code.name}(k={self.k}, n={self.n}), modulation={self.modulation!r}, "
                f"interleave={self.interleave}, symbol_multiple={self.symbol_multiple}")


class BSCEquivalentLink(Link):
    """Uncoded QAM replaced by its binary symmetric channel: independent bit flips with the
    closed-form uncoded BER of the modulation (:func:`phy.modulation.uncoded_ber`; exact Gray-QAM
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


class IdealCodeLink(Link):
    """Capacity-achieving digital link (:class:`phy.capacity.IdealCode`) with ``n`` channel uses.

    Each example's payload is delivered error-free when it fits the capacity, otherwise the
    example is in outage: ``info["outage"]`` (bool ``[*batch]``) is ``True`` and the receiver gets
    nothing, represented by ``outage_fill``: ``"random"`` fair coin flips from the channel's stream
    (default, so a BER averages to 1/2 on lost blocks) or ``"zeros"``.

    With ``capacity="instantaneous"`` (default) the shared channel is run on ``n`` unit-energy
    symbols to draw the realised ``h`` and the payload must satisfy
    ``B <= sum_i log2(1 + |h_i|^2 snr)`` (AWGN: ``n log2(1 + snr)``; block fading: outage events).
    The fixed-rate modes ``"awgn"``, ``"rayleigh_ergodic"``, ``"rayleigh_outage"`` use
    ``floor(n C(snr))`` without drawing ``h``.

    Example
    -------
    >>> import torch
    >>> from phy.channels import AWGN
    >>> link = IdealCodeLink(AWGN(seed=0), num_channel_uses=10)
    >>> bits = torch.ones(2, 30)
    >>> out = link(bits, snr_db=torch.tensor([0.0, 10.0]))    # 10 bits fit at 0 dB, 34 at 10 dB
    >>> out.info["outage"].tolist(), out.channel_uses
    ([True, False], 10)
    """

    def __init__(self, channel: Union[Channel, str], num_channel_uses: int, capacity: str = "instantaneous",
                 outage: float = 0.1, outage_fill: str = "random"):
        super().__init__(channel)
        if capacity not in CAPACITY_MODES:
            raise ValueError(f"capacity must be one of {CAPACITY_MODES}, got {capacity!r}")
        if outage_fill not in ("random", "zeros"):
            raise ValueError(f"outage_fill must be 'random' or 'zeros', got {outage_fill!r}")
        self.ideal = IdealCode(num_channel_uses, capacity=capacity, outage=outage)
        self.outage_fill = outage_fill

    @property
    def num_channel_uses(self) -> int:
        return self.ideal.n

    def channel_uses(self, num_bits: int = None) -> int:
        """``n`` channel uses per example, whatever the payload."""
        return self.ideal.n

    def forward(self, bits: torch.Tensor, snr_db=None, no=None, batch_dims: int = 1) -> LinkOutput:
        _check_bits(bits, batch_dims)
        batch_shape = tuple(bits.shape[:batch_dims])
        dev = bits.device
        no_t = noise_power(snr_db, no, batch_shape, 1.0, torch.float64, dev)
        snr_db_t = -10.0 * torch.log10(no_t.clamp_min(1e-300))[..., 0]  # [*batch]
        n = self.ideal.n
        h = None
        if self.ideal.capacity == "instantaneous":
            x = torch.ones(*batch_shape, n, dtype=torch.complex64, device=dev)
            out = self.channel(x, no_t.float())
            h = out.h
            if h is None:
                h = torch.ones_like(x)
            h = h.expand(x.shape)
            outage = self.ideal.is_outage(bits.shape[-1], snr_db_t, h)
            cap = instantaneous_capacity(h, snr_db_t, n)
        else:
            outage = self.ideal.is_outage(bits.shape[-1], snr_db_t.cpu())
            cap = torch.as_tensor(self.ideal.max_payload(snr_db_t.cpu().numpy()))
        outage = outage.to(dev).expand(batch_shape)
        if self.outage_fill == "random":
            fill = torch.randint(0, 2, bits.shape, generator=self.channel.generator(dev), device=dev)
        else:
            fill = torch.zeros(bits.shape, device=dev)
        x_hat = torch.where(outage.unsqueeze(-1), fill.to(bits.dtype), bits)
        return LinkOutput(x_hat=x_hat, channel_uses=n, no=no_t,
                          info={"outage": outage, "capacity_bits": cap, "h": h})

    def extra_repr(self) -> str:
        return f"n={self.ideal.n}, capacity={self.ideal.capacity!r}, outage_fill={self.outage_fill!r}"

