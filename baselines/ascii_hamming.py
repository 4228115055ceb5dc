"""Text baseline "ASCII + (7,4) Hamming + 16-QAM" (the separation baseline of the VLF-MSC paper).

A thin wrapper over the digital chain of :mod:`phy`::

    caption --TextCodec (7-bit ASCII, padded to a multiple of k)--> bits
      --DigitalLink (Hamming(7,4) -> 16-QAM -> shared channel -> ZF -> soft demap -> decode)-->
      bits --TextCodec.decode (invalid 7-bit values -> "?")--> received caption

Every caption is sent on its own: its channel uses depend on its length,
``channel_uses = ceil(ceil(7 * chars / k) * n / m)`` for a code ``(n, k)`` and ``m`` bits per
symbol (Hamming(7,4) + 16-QAM: ``ceil(7 * ceil(7 * chars / 4) / 4)``), rounded up to the channel's
symbol multiple (block fading / OFDM) as :meth:`phy.link.digital.DigitalLink.channel_uses` does. Captions
of the same bit length are batched together (no padding is ever sent). An empty caption costs 0
channel uses and is received as ``""``. Characters the 7-bit codec cannot send (non-ASCII) are
sent as ``"?"`` (``TextCodec(errors="replace")``). ``repeat = r`` sends every codeword ``r`` times and sums
the ``r`` LLRs of each code bit before decoding (:class:`phy.fec.codes.Repetition`): ``r`` times the channel uses,
``ceil(r * 7 * ceil(7 * chars / 4) / 4)`` for Hamming(7,4) + 16-QAM (what ``semcom vlf-msc-eval --budget matched``
uses to fill VLF-MSC's budget).

Example
-------
>>> from phy.channel.flat import AWGN
>>> tx = AsciiHamming(AWGN(seed=0))
>>> rx, uses = tx.transmit(["a dog on a beach", "hi"], snr_db=30.0)
>>> rx, uses      # 16 chars: 112 bits -> 28 blocks -> 196 code bits -> 49 symbols
(['a dog on a beach', 'hi'], [49, 7])
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from phy.channel.base import Channel
from phy.channel.registry import make_channel
from phy.fec.codes import Repetition, make_code
from phy.utils.conventions import check_snr
from phy.link.digital import DigitalLink
from phy.source.text_codec import TextCodec

__all__ = ["AsciiHammingConfig", "AsciiHamming"]


@dataclass
class AsciiHammingConfig:
    """Settings of the ASCII separation baseline (defaults: the paper's Hamming(7,4) + 16-QAM).

    Examples
    --------
    >>> cfg = AsciiHammingConfig(modulation="qpsk")
    >>> cfg.code, cfg.modulation, cfg.interleave
    ('hamming74', 'qpsk', False)
    """

    code: str = "hamming74"          # any phy.fec.codes name ("none", "hamming74"; "ldpc5g" needs code_kwargs)
    modulation: str = "16qam"
    interleave: bool = False
    demapping: str = "app"
    code_kwargs: Optional[Dict[str, int]] = None
    replacement: str = "?"           # decoded invalid characters
    errors: str = "replace"          # what the transmitter does with non-ASCII characters ("strict" raises)
    repeat: int = 1                  # send every codeword r times, LLRs summed before decoding (phy.fec.codes.Repetition)


class AsciiHamming(nn.Module):
    """ASCII + channel code + QAM over the experiment's shared channel.

    Parameters
    ----------
    channel : phy.channel.base.Channel or str
        The shared channel object (a name builds a new one).
    config : AsciiHammingConfig, optional
    device : torch device of the bit tensors (default CPU)

    Examples
    --------
    >>> scheme = AsciiHamming("awgn")                      # Hamming(7,4) + 16-QAM
    >>> scheme.num_bits("hi"), scheme.channel_uses("hi")   # 14 bits -> 4 blocks -> 28 code bits -> 7 symbols
    (16, 7)
    >>> scheme.transmit(["a dog on the beach"], snr_db=30.0, seed=0)   # error-free; 126 bits -> 56 symbols
    (['a dog on the beach'], [56])
    """

    def __init__(self, channel: Union[Channel, str] = "awgn", config: Optional[AsciiHammingConfig] = None,
                 device: Union[str, torch.device, None] = None):
        super().__init__()
        self.config = config or AsciiHammingConfig()
        if not isinstance(self.config, AsciiHammingConfig):
            raise TypeError(f"config must be an AsciiHammingConfig, got {type(self.config).__name__}")
        cfg = self.config
        if isinstance(channel, str):
            channel = make_channel(channel)
        if isinstance(cfg.repeat, bool) or not isinstance(cfg.repeat, numbers.Integral) or cfg.repeat < 1:
            raise ValueError(f"config.repeat (copies of every codeword) must be a positive int, got {cfg.repeat!r}")
        code = make_code(cfg.code, **(cfg.code_kwargs or {}))
        if cfg.repeat > 1:  # a lower-rate code: r copies, soft-combined (r times the SNR on Gray QPSK)
            code = Repetition(code, r=int(cfg.repeat))
        self.link = DigitalLink(channel, code=code, modulation=cfg.modulation, interleave=cfg.interleave,
                                demapping=cfg.demapping)
        self.codec = TextCodec(block_size=self.link.k, replacement=cfg.replacement, errors=cfg.errors)
        self.device = torch.device(device) if device is not None else torch.device("cpu")

    @property
    def channel(self) -> Channel:
        return self.link.channel

    def num_bits(self, caption: str) -> int:
        """Information bits of ``caption`` (7 per character, padded to a multiple of ``k``)."""
        if not isinstance(caption, str):
            raise TypeError(f"caption must be a str, got {type(caption).__name__}")
        return self.codec.num_bits(len(caption))

    def channel_uses(self, caption: Union[str, Sequence[str]]) -> Union[int, List[int]]:
        """Complex channel uses to send ``caption`` (a list gives a list); 0 for ``""``."""
        if isinstance(caption, str):
            b = self.num_bits(caption)
            return self.link.channel_uses(b) if b else 0
        return [self.channel_uses(c) for c in caption]

    @torch.no_grad()
    def transmit(self, captions: Sequence[str], snr_db: float, seed: Optional[int] = None
                 ) -> Tuple[List[str], List[int]]:
        """Send each caption at Es/N0 ``snr_db`` [dB].

        Parameters
        ----------
        captions : list of str
        snr_db : float
            Es/N0 per complex channel use.
        seed : int, optional
            Restart the shared channel's random stream first (same seed -> same errors).

        Returns
        -------
        (received captions, channel uses per caption) : (list of str, list of int)
        """
        if isinstance(captions, str) or not isinstance(captions, Sequence) \
                or not all(isinstance(c, str) for c in captions):
            raise TypeError("captions must be a list of str")
        if isinstance(snr_db, bool) or not isinstance(snr_db, numbers.Real):
            raise TypeError(f"snr_db must be a number (Es/N0 in dB), got {type(snr_db).__name__}")
        check_snr(snr_db)
        if seed is not None:
            self.channel.reset(seed)
        out: List[Optional[str]] = [None] * len(captions)
        uses: List[int] = [0] * len(captions)
        groups: Dict[int, List[int]] = {}
        for i, c in enumerate(captions):
            if c == "":
                out[i] = ""
            else:
                groups.setdefault(len(c), []).append(i)
        for length in sorted(groups):  # same length -> same number of bits: one exact batch
            idx = groups[length]
            bits, lengths = self.codec.encode_batch([captions[i] for i in idx])
            res = self.link(bits.to(self.device), snr_db=float(snr_db))
            texts = self.codec.decode_batch(res.x_hat.cpu(), lengths)
            for j, i in enumerate(idx):
                out[i] = texts[j]
                uses[i] = int(res.channel_uses)
        return [str(t) for t in out], uses

    def forward(self, captions: Sequence[str], snr_db: float, seed: Optional[int] = None):
        return self.transmit(captions, snr_db, seed)

    def extra_repr(self) -> str:
        return f"code={self.config.code!r}, modulation={self.config.modulation!r}"
