"""Links: the mapping of a payload onto channel symbols and back, with a channel-use ledger.

A link owns the mapping to and from complex channel symbols and the count of channel uses; the
:class:`~phy.channel.base.Channel` it is given owns nothing but the physics. Create one channel per
experiment and hand the *same* object to every link so the SNR definition, the fading statistics
and the random stream are shared by every scheme.

Every link reports ``channel_uses``: complex channel uses (resource elements) per example, the data symbols
plus, with ``csi="ls"``, the pilots of the channel estimate (``info["data_uses"]``, ``info["pilot_uses"]``).

Example
-------
>>> from phy.link import AnalogLink
>>> import torch
>>> from phy.channel.flat import AWGN
>>> link = AnalogLink(AWGN(seed=0))
>>> feats = torch.randn(4, 32, 7)          # 224 reals -> 112 complex channel uses
>>> out = link(feats, snr_db=20.0)
>>> out.x_hat.shape, out.channel_uses
(torch.Size([4, 32, 7]), 112)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Sequence, Tuple, Union

import torch
from torch import nn

from phy.channel.base import Channel
from phy.channel.registry import make_channel
from phy.utils.conventions import (bandwidth_compression_ratio, check_no, check_snr,
                          snr_db_to_no)

__all__ = ["LinkOutput", "Link", "real_to_complex", "complex_to_real", "snr_to_no_tensor", "noise_power"]


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
    >>> from phy.link import AnalogLink
    >>> from phy.channel.flat import AWGN
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
    >>> from phy.link import AnalogLink
    >>> from phy.channel.flat import AWGN
    >>> link = AnalogLink(AWGN(seed=0))
    >>> isinstance(link, Link), link.channel_uses((3, 32, 32))
    (True, 1536)
    >>> link.bandwidth_compression_ratio((3, 32, 32), feature_shape=(3, 32, 32))
    0.5
    """

    def __init__(self, channel: Union[Channel, str]):
        super().__init__()
        if not isinstance(channel, (Channel, str)):
            raise TypeError(f"channel must be a phy.channel.base.Channel or a registered name, got "
                            f"{type(channel).__name__}")
        self.channel = make_channel(channel) if isinstance(channel, str) else channel

    def channel_uses(self, *args, **kwargs) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def bandwidth_compression_ratio(self, source_shape, convention: str = "complex", **kwargs) -> float:
        """BCR of this link for a source of ``source_shape`` (e.g. ``(3, 256, 256)``)."""
        return bandwidth_compression_ratio(self.channel_uses(**kwargs), source_shape, convention)

def _check_ofdm(channel, csi: str) -> bool:
    """Whether ``channel`` is a resource-grid channel (:class:`phy.ofdm.channel.OFDMChannel`: it has ``send_symbols``
    and ``ledger``); its CSI (pilots, estimator) is set by the channel spec, so the link's own must be perfect."""
    if not (hasattr(channel, "send_symbols") and hasattr(channel, "ledger")):
        return False
    if csi != "perfect":
        raise ValueError(f"over an OFDM channel the CSI is set by the channel spec (ofdm(csi=ls|perfect, "
                         f"pilot_symbols=...)); the link's csi must be 'perfect', got csi={csi!r}")
    return True
