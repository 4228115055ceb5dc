"""A user function as a channel: ``fn(x, no[, generator]) -> y`` or ``(y, h)``.

Example
-------
>>> import torch
>>> from phy.channel.callable_channel import CallableChannel
>>> CallableChannel(lambda x, no: 2 * x, name="gain2")(torch.ones(1, 2, dtype=torch.complex64), no=0.0).y
tensor([[2.+0.j, 2.+0.j]])
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from phy.channel.base import Channel, ChannelOutput


__all__ = ["CallableChannel"]


class CallableChannel(Channel):
    """Turn a user callable into a :class:`Channel`.

    ``fn(x, no, generator)`` (or ``fn(x, no)``) must return ``y`` or ``(y, h)`` with ``y`` complex
    of ``x``'s shape and ``h`` broadcastable to it (or ``None``). The noise is the callable's job.

    Examples
    --------
    >>> ch = CallableChannel(lambda x, no: 2 * x, name="gain2")
    >>> ch(torch.ones(1, 2, dtype=torch.complex64), no=0.0).y
    tensor([[2.+0.j, 2.+0.j]])
    """

    name = "callable"

    def __init__(self, fn: Callable, name: str = "callable", pass_generator: bool = False,
                 seed: Optional[int] = None, device=None):
        super().__init__(seed=seed, device=device)
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.name = name
        self.pass_generator = pass_generator

    def forward(self, x, no) -> ChannelOutput:
        no_t = self._check_inputs(x, no)
        args = (x, no_t, self.generator(x.device)) if self.pass_generator else (x, no_t)
        out = self.fn(*args)
        y, h = (out if isinstance(out, tuple) else (out, None))
        if not isinstance(y, torch.Tensor) or not y.is_complex() or y.shape != x.shape:
            raise ValueError(
                f"channel callable {self.name!r} must return complex y of shape {tuple(x.shape)}, got "
                f"{type(y).__name__} {getattr(y, 'dtype', '')} {tuple(getattr(y, 'shape', ()))}"
            )
        if h is not None:
            try:  # broadcast_shapes raises RuntimeError on incompatible shapes
                ok = isinstance(h, torch.Tensor) and torch.broadcast_shapes(h.shape, x.shape) == x.shape
            except RuntimeError:
                ok = False
            if not ok:
                raise ValueError(f"channel callable {self.name!r} returned h that does not broadcast to "
                                 f"{tuple(x.shape)}: {tuple(getattr(h, 'shape', ()))}")
            h = h.to(device=x.device, dtype=x.dtype)
        return ChannelOutput(y=y.to(device=x.device, dtype=x.dtype), h=h, no=no_t)
