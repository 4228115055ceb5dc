"""The analog link: real features sent straight as complex channel symbols, equalised at the receiver.

Example
-------
>>> import torch
>>> from phy.channel.flat import AWGN
>>> from phy.link.analog import AnalogLink
>>> out = AnalogLink(AWGN(seed=0))(torch.randn(4, 32, 7), snr_db=20.0)
>>> out.x_hat.shape, out.channel_uses
(torch.Size([4, 32, 7]), 112)
"""
from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence, Union

import torch

from phy.channel.base import Channel
from phy.utils.conventions import (check_finite, check_real, normalize_power, normalize_power_batchwide)
from phy.mimo.equalization import Equalizer
from phy.mimo.detection import mimo_equalize
from phy.mimo.csi import send_and_estimate
from phy.mimo.precoding import svd_transmit
from phy.link.base import Link, LinkOutput, _check_ofdm, complex_to_real, noise_power, real_to_complex

__all__ = ["AnalogLink", "NOISELESS_NO"]

#: The smallest N0 (relative to the symbol energy) a receiver that inverts in N0 works with: 200 dB Es/N0.
NOISELESS_NO = 1e-20


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
    (:func:`phy.mimo.detection.mimo_equalize`); ``channel_uses = ceil(ceil(m / 2) / num_tx)``. ``csi="ls"``: orthogonal
    pilots, ``num_pilots * num_tx`` per coherence block, counted (:mod:`phy.mimo.csi`). ``precoding="svd"``
    (**needs CSIT**): eigen-beamforming on the ``K = min(num_tx, num_rx)`` eigenmodes with MSE-optimal power
    allocation and per-mode LMMSE (:mod:`phy.mimo.precoding`); ``channel_uses = ceil(ceil(m / 2) / K)``.

    Over an OFDM grid (:class:`phy.ofdm.channel.OFDMChannel`, spec ``ofdm(...)``) the symbols go through the grid's
    :meth:`~phy.ofdm.channel.OFDMChannel.send_symbols` (pilots, the spec's LS or perfect CSI, Sionna's LMMSE made
    biased for ``"mmse"``, or ZF) and ``channel_uses`` is its ledger: data REs of whole slots + pilot REs
    (+ cyclic prefix), in ``info["data_uses"]``, ``info["pilot_uses"]``, ``info["cp_uses"]``; ``csi`` must
    stay ``"perfect"`` (the grid's CSI is set by its spec).

    Parameters
    ----------
    channel : Channel or str
        The shared channel object.
    equalizer : ``"mmse"`` (default: the biased LMMSE estimate an analog feature receiver wants, the
        rule of every command) or ``"zf"``
    csi : ``"perfect"`` (default), ``"ls"`` or ``"noisy"`` (see :mod:`phy.mimo.equalization`)
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
    >>> from phy.channel.flat import Rayleigh
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
        data symbols plus, with ``csi="ls"``, the pilots (:meth:`phy.mimo.equalization.Equalizer.pilot_uses`)."""
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
        if self.ofdm or (self.mimo and self.precoding == "svd"):
            # receivers that invert in the noise power (the grid's LMMSE, water-filling over eigenmodes):
            # N0 = 0 (snr_db = inf) is taken as N0 = 1e-20 P (200 dB), noiseless to float precision, not 0/0
            no_t = no_t.clamp_min(NOISELESS_NO * self.power)
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
        (:func:`phy.mimo.detection.mimo_equalize`, ``"mmse"`` = LMMSE, ``"zf"``). Returns ``(s_hat [*batch, m],
        per-symbol error variance [*batch, m], N0, antenna symbols [*batch, num_tx, uses])``."""
        nt, m = self.num_tx, s.shape[-1]
        batch = s.shape[:-1]
        pad = (-m) % nt
        sp = torch.nn.functional.pad(s, (0, pad)) if pad else s
        scale = 1.0 / math.sqrt(nt)
        x = sp.reshape(*batch, -1, nt).transpose(-1, -2) * scale   # [*batch, num_tx, uses]
        # csi="ls": pilots in the frame, LMMSE estimate and its error counted as noise (phy.mimo.csi)
        out, h, no_rx = send_and_estimate(self.channel, x, no_t.unsqueeze(-1), self.equalizer, self.power)
        s_hat, var = mimo_equalize(out.y, h * scale, no_rx, self.equalizer.method, self.power)
        s_hat = s_hat.transpose(-1, -2).reshape(*batch, -1)[..., :m]
        var = var.transpose(-1, -2).reshape(*batch, -1)[..., :m]
        return s_hat, var, out.no, x
