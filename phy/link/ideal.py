"""The capacity-achieving digital link: a payload is delivered error-free when it fits the channel's
capacity over its channel uses, and is lost (outage) otherwise.
"""
from __future__ import annotations

from typing import Union

import torch

from phy.channel.base import Channel
from phy.theory.capacity import CAPACITY_MODES, IdealCode, instantaneous_capacity
from phy.link.base import Link, LinkOutput, noise_power
from phy.link.digital import _check_bits

__all__ = ["IdealCodeLink"]


class IdealCodeLink(Link):
    """Capacity-achieving digital link (:class:`phy.theory.capacity.IdealCode`) with ``n`` channel uses.

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
    >>> from phy.channel.flat import AWGN
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
