"""Receiver-side equalisation of ``y = h x + n`` with perfect or estimated CSI.

Equalisers
    ``"zf"``   zero forcing, ``x_hat = y / h_est``; effective noise ``N0 / |h_est|^2``.
               For a single-antenna link this is also the *unbiased* MMSE estimate, which is what
               a soft demapper needs.
    ``"mmse"`` linear MMSE for a prior of energy ``P``: ``x_hat = P conj(h) y / (P |h|^2 + N0)``
               (biased, minimum mean-square error, what an analog feature receiver wants);
               returned error variance ``P N0 / (P |h|^2 + N0)``.

CSI (``csi=``)
    ``"perfect"`` (default) the receiver knows ``h``.
    ``"ls"``      least-squares estimate from ``num_pilots`` unit-energy pilots per coefficient sent
                  over the same channel: ``h_est = h + e``, ``e ~ CN(0, N0 / num_pilots)``.
    ``"noisy"``   ``h_est = h + e``, ``e ~ CN(0, 10**(-pilot_snr_db/10))`` for a given pilot SNR.
    Estimation errors are drawn i.i.d. per channel coefficient from the channel's random stream.
    The pilot overhead is *not* added to the channel-use ledger (the coefficients are assumed to be
    learned from a preamble); state it if your comparison depends on it.

Example
-------
>>> import torch
>>> from phy.channels import Rayleigh
>>> out = Rayleigh(seed=0)(torch.ones(1, 4, dtype=torch.complex64), no=1e-6)
>>> x_hat, no_eff = Equalizer("zf")(out)
>>> torch.allclose(x_hat, torch.ones(1, 4, dtype=torch.complex64), atol=1e-2)
True
"""
from __future__ import annotations

import numbers
from typing import Optional, Tuple

import torch
from torch import nn

from .channels import ChannelOutput, complex_normal
from .conventions import check_no, db_to_lin
from .zf_mmse import EQUALIZERS, equalize

__all__ = ["Equalizer", "equalize", "estimate_csi", "EQUALIZERS", "CSI_MODES"]

CSI_MODES = ("perfect", "ls", "noisy")


def estimate_csi(h: Optional[torch.Tensor], no: torch.Tensor, mode: str, generator: torch.Generator,
                 num_pilots: int = 1, pilot_snr_db: Optional[float] = None) -> Optional[torch.Tensor]:
    """The receiver's estimate of ``h`` (see the module docstring for the modes)."""
    if mode not in CSI_MODES:
        raise ValueError(f"csi must be one of {CSI_MODES}, got {mode!r}")
    if h is None or mode == "perfect":
        return h
    if mode == "ls":
        var = no / num_pilots
    else:
        var = torch.as_tensor(1.0 / db_to_lin(float(pilot_snr_db)), dtype=no.dtype, device=h.device)
    e = complex_normal(h.shape, generator, dtype=h.dtype, device=h.device)
    return h + e * torch.sqrt(var).to(h.device)


class Equalizer(nn.Module):
    """CSI estimation followed by ZF or MMSE equalisation (see the module docstring).

    Parameters
    ----------
    method : ``"zf"`` (default) or ``"mmse"``
    csi : ``"perfect"`` (default), ``"ls"`` or ``"noisy"``
    num_pilots : int
        Pilots per coefficient for ``csi="ls"``.
    pilot_snr_db : float
        Pilot SNR for ``csi="noisy"``.
    power : float
        Prior symbol energy for MMSE.
    """

    def __init__(self, method: str = "zf", csi: str = "perfect", num_pilots: int = 1,
                 pilot_snr_db: Optional[float] = None, power: float = 1.0):
        super().__init__()
        if method not in EQUALIZERS:
            raise ValueError(f"equalizer must be one of {EQUALIZERS}, got {method!r}")
        if csi not in CSI_MODES:
            raise ValueError(f"csi must be one of {CSI_MODES}, got {csi!r}")
        if isinstance(num_pilots, bool) or not isinstance(num_pilots, numbers.Integral) or num_pilots < 1:
            raise ValueError(f"num_pilots must be a positive int, got {num_pilots!r}")
        if csi == "noisy" and (pilot_snr_db is None or not isinstance(pilot_snr_db, numbers.Real)):
            raise ValueError(f"csi='noisy' needs pilot_snr_db as a number, got {pilot_snr_db!r}")
        if isinstance(power, bool) or not isinstance(power, numbers.Real) or not 0 < power < float("inf"):
            raise ValueError(f"power (prior symbol energy P) must be a positive finite number, got {power!r}")
        self.method, self.csi, self.num_pilots, self.pilot_snr_db, self.power = (
            method, csi, int(num_pilots), pilot_snr_db, float(power))

    def forward(self, out: ChannelOutput, generator: Optional[torch.Generator] = None
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Equalise a :class:`ChannelOutput`; ``generator`` (the channel's) draws CSI errors."""
        h = out.h
        if self.csi != "perfect" and h is not None:
            if generator is None:
                raise ValueError("an estimated CSI needs the channel's generator (generator=None given)")
            h = estimate_csi(h, out.no, self.csi, generator, self.num_pilots, self.pilot_snr_db)
        return equalize(out.y, h, out.no, self.method, self.power)

    def transmit(self, channel, x: torch.Tensor, no) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Send ``x`` ``[..., n]`` through ``channel`` and equalise: ``(x_hat, no_eff, no)``.

        With perfect CSI this is ``channel.forward_equalized`` (one fused pass where the channel
        has one, see :meth:`phy.channels.Channel.forward_equalized`); otherwise the channel, the CSI
        estimate (errors drawn from the channel's generator) and :meth:`forward`.
        """
        if self.csi == "perfect" and hasattr(channel, "forward_equalized"):
            return channel.forward_equalized(x, no, self.method, self.power)
        out = channel(x, no)
        x_hat, no_eff = self(out, channel.generator(x.device))
        return x_hat, no_eff, out.no

    def extra_repr(self) -> str:
        return f"method={self.method!r}, csi={self.csi!r}"
