"""CLIP-FT: the CLIP image token sent as raw analog features (a feature-transmission baseline of SemCLIP).

The ``N``-dim token is paired into ``L = N/2`` complex symbols, power-normalised per example and
sent over the shared channel (:class:`phy.link.analog.AnalogLink`); the receiver runs the frozen zero-shot
classifier on the received token. It is a baseline that goes through the channel: in the paper's Fig. 3
SemCLIP beats it by 41 % at -5 dB. The upper bound is a different thing, "direct task performance based on
the original CLIP vectors without transmission errors": the clean token with CLIP's zero-shot prompts (the
``upper-bound`` system of ``semcom semclip-eval``), which CLIP-FT only reaches with no noise at all.

Example
-------
>>> import torch
>>> from phy.channel.flat import AWGN
>>> ft = CLIPFT(AWGN(seed=0))
>>> out = ft(torch.randn(4, 768), snr_db=0.0)
>>> out.x_hat.shape, out.channel_uses
(torch.Size([4, 768]), 384)
"""
from __future__ import annotations

from typing import Union

import torch
from torch import nn

from phy.channel.base import Channel
from phy.link.analog import AnalogLink
from phy.link.base import LinkOutput

__all__ = ["CLIPFT"]


class CLIPFT(nn.Module):
    """Analog transmission of CLIP tokens ``[B, N]`` (``N/2`` complex channel uses each).

    Parameters
    ----------
    channel : Channel or str
    equalizer : ``"mmse"`` (default; the MSE-optimal linear receiver for a feature) or ``"zf"``

    Examples
    --------
    >>> from phy.channel.flat import AWGN
    >>> ft = CLIPFT(AWGN(seed=0))
    >>> out = ft(torch.randn(4, 768), snr_db=10.0)
    >>> out.x_hat.shape, ft.channel_uses(768)
    (torch.Size([4, 768]), 384)
    """

    def __init__(self, channel: Union[Channel, str], equalizer: str = "mmse"):
        super().__init__()
        self.link = AnalogLink(channel, equalizer=equalizer)

    def channel_uses(self, token_dim: int) -> int:
        return self.link.channel_uses((token_dim,))

    def forward(self, tokens: torch.Tensor, snr_db) -> LinkOutput:
        """``tokens`` ``[B, N]`` -> :class:`LinkOutput` with the received tokens (``inf`` dB: noiseless)."""
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be [batch, N], got shape {tuple(tokens.shape)}")
        return self.link(tokens, snr_db=snr_db)
