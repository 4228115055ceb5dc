"""Links: the mapping of a payload onto channel symbols and back, with a channel-use ledger.

A link owns the mapping to and from complex channel symbols and the count of channel uses; the
:class:`~phy.channels.Channel` it is given owns nothing but the physics. Create one channel per
experiment and hand the *same* object to every link so the SNR definition, the fading statistics
and the random stream are shared by every scheme.

Every link reports ``channel_uses``: complex channel uses per example.

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
from .conventions import (bandwidth_compression_ratio, check_finite, check_real, check_snr,
                          normalize_power, normalize_power_batchwide, snr_db_to_no)
from .equalization import Equalizer

__all__ = ["LinkOutput", "Link", "AnalogLink", "real_to_complex", "complex_to_real", "snr_to_no_tensor"]

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
    """

    x_hat: torch.Tensor
    channel_uses: int
    no: torch.Tensor
    info: Dict[str, Any] = field(default_factory=dict)


def snr_to_no_tensor(snr_db, batch_shape: Sequence[int], power: float, dtype, device) -> torch.Tensor:
    """N0 as a tensor of shape ``[*batch_shape, 1]`` from an Es/N0 in dB (number or tensor).

    A tensor ``snr_db`` must broadcast to ``batch_shape`` (one SNR per example, or ``[S, 1]`` for an
    SNR sweep over a leading dimension).
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


def real_to_complex(x: torch.Tensor) -> Tuple[torch.Tensor, int]:
    """Pair consecutive reals of the last dim into complex symbols (zero-padding an odd length).

    ``[..., m]`` real -> ``[..., ceil(m/2)]`` complex; returns the symbols and the padding (0/1).
    No copy when ``m`` is even and ``x`` is contiguous float32/float64.
    """
    m = x.shape[-1]
    pad = m % 2
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    if pad:
        x = torch.nn.functional.pad(x, (0, 1))
    x = x.contiguous()
    return torch.view_as_complex(x.reshape(*x.shape[:-1], x.shape[-1] // 2, 2)), pad


def complex_to_real(z: torch.Tensor, pad: int) -> torch.Tensor:
    """Inverse of :func:`real_to_complex`: ``[..., n]`` complex -> ``[..., 2n - pad]`` real."""
    r = torch.view_as_real(z.contiguous()).reshape(*z.shape[:-1], 2 * z.shape[-1])
    return r[..., : r.shape[-1] - pad] if pad else r


class Link(nn.Module):
    """Base class: holds the shared channel and the ledger interface."""

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

    Parameters
    ----------
    channel : Channel or str
        The shared channel object.
    equalizer : ``"zf"`` (default) or ``"mmse"``
    csi : ``"perfect"`` (default), ``"ls"`` or ``"noisy"`` (see :mod:`phy.equalization`)
    power : float
        Mean symbol energy ``P`` (default 1); the SNR is ``P / N0``.
    batchwide_power : bool
        Normalise over the whole batch instead of per example (only to reproduce public code).
    pilot_snr_db, num_pilots :
        CSI estimation parameters.
    """

    def __init__(self, channel: Union[Channel, str], equalizer: str = "zf", csi: str = "perfect",
                 power: float = 1.0, batchwide_power: bool = False, pilot_snr_db: Optional[float] = None,
                 num_pilots: int = 1):
        super().__init__(channel)
        if not isinstance(power, numbers.Real) or not power > 0:
            raise ValueError(f"power must be a positive number, got {power!r}")
        self.power = float(power)
        self.batchwide_power = bool(batchwide_power)
        self.equalizer = Equalizer(equalizer, csi=csi, num_pilots=num_pilots, pilot_snr_db=pilot_snr_db,
                                   power=self.power)

    @staticmethod
    def _check_batch_dims(batch_dims):
        if isinstance(batch_dims, bool) or not isinstance(batch_dims, numbers.Integral) or batch_dims < 0:
            raise ValueError(f"batch_dims must be a non-negative int, got {batch_dims!r}")

    def channel_uses(self, feature_shape: Union[Sequence[int], int] = None) -> int:
        """Complex channel uses per example for features of ``feature_shape`` (excluding batch)."""
        if feature_shape is None:
            raise ValueError("feature_shape is required, e.g. (32, 768)")
        dims = (feature_shape,) if isinstance(feature_shape, numbers.Integral) else tuple(feature_shape)
        return math.ceil(math.prod(int(d) for d in dims) / 2)

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
        batch_shape = features.shape[:batch_dims]
        rdt = x.real.dtype
        if snr_db is not None:
            no_t = snr_to_no_tensor(snr_db, batch_shape, self.power, rdt, x.device)
        else:
            no_t = no
        out = self.channel(x, no_t)
        x_hat, no_eff = self.equalizer(out, self.channel.generator(x.device))
        f_hat = self.decode(x_hat, scale, pad, features.shape, features.dtype)
        return LinkOutput(x_hat=f_hat, channel_uses=x.shape[-1], no=out.no,
                          info={"scale": scale, "no_eff": no_eff, "symbols": x})
