"""Receiver-side equalisation of ``y = h x + n`` with perfect or estimated CSI.

Equalisers
    ``"zf"``
        zero forcing, ``x_hat = y / h_est``; effective noise ``N0 / |h_est|^2``.
        For a single-antenna link this is also the *unbiased* MMSE estimate, which is what
        a soft demapper needs.
    ``"mmse"``
        linear MMSE for a prior of energy ``P``: ``x_hat = P conj(h) y / (P |h|^2 + N0)``
        (biased, minimum mean-square error, what an analog feature receiver wants);
        returned error variance ``P N0 / (P |h|^2 + N0)``.

CSI (``csi=``)
    ``"perfect"`` (default)
        the receiver knows ``h``.
    ``"ls"``
        least-squares estimate from ``num_pilots`` unit-energy pilots per coefficient sent
        over the same channel: ``h_est = h + e``, ``e ~ CN(0, N0 / num_pilots)``. On block
        fading (``block_length = L``) there is one coefficient per coherence block, so one
        estimate per block from that block's pilots (constant over the block's ``L`` symbols),
        and the pilots are channel uses: :meth:`Equalizer.pilot_uses` =
        ``num_pilots * n / L`` per example (``num_pilots`` per symbol for per-symbol fading),
        which the links add to their ledger (``channel_uses``, ``info["pilot_uses"]``).
        The receiver is matched to the estimate (:mod:`phy.mimo.csi`): it equalises with the LMMSE
        estimate ``E[h | h_ls]`` and counts the error it leaves as noise, ``N0 + sigma_e^2 P``; through
        :meth:`Equalizer.transmit` the pilots share the data's frame and receiver oscillator (phase
        offset, CFO, phase noise: :func:`phy.mimo.csi.send_and_estimate`).
    ``"noisy"``
        ``h_est = h + e``, ``e ~ CN(0, 10**(-pilot_snr_db/10))`` for a given pilot SNR (a
        genie-style error model: no pilots are counted).

    Estimation errors are drawn from the channel's random stream, one per channel coefficient (per
    coherence block for block fading).

Example
-------
>>> import torch
>>> from phy.channel.flat import Rayleigh
>>> out = Rayleigh(seed=0)(torch.ones(1, 4, dtype=torch.complex64), no=1e-6)
>>> x_hat, no_eff = Equalizer("zf")(out)
>>> torch.allclose(x_hat, torch.ones(1, 4, dtype=torch.complex64), atol=1e-2)
True
"""
from __future__ import annotations

import math
import numbers
from typing import Optional, Tuple

import torch
from torch import nn

from phy.channel.base import ChannelOutput
from phy.utils.conventions import check_no
from phy.mimo.csi import CSI_MODES, estimate_csi, lmmse_from_ls, send_and_estimate
from phy.mimo.zf_mmse import EQUALIZERS, equalize

__all__ = ["Equalizer", "equalize", "combine_repetitions", "EQUALIZERS"]

def _block_length(channel) -> int:
    """Coherence length of ``channel`` in symbols (``block_length`` of flat block fading, else 1)."""
    L = getattr(channel, "block_length", 1)
    return int(L) if isinstance(L, numbers.Integral) and not isinstance(L, bool) and L > 1 else 1


def combine_repetitions(out: ChannelOutput, r: int) -> ChannelOutput:
    """Maximum-ratio combining of ``r`` received copies of the same symbols (perfect CSI).

    ``out`` holds ``[..., r * n]`` received symbols: copy ``i`` of symbol ``j`` at position ``i * n + j``
    (the block ``x`` sent ``r`` times). Returns one equivalent observation per symbol,
    ``y' = sum_i conj(h_i) y_i / g`` with the real gain ``g = sqrt(sum_i |h_i|^2)``: ``y' = g x + n'``,
    ``n' ~ CN(0, N0)``, so that any equaliser applied to ``(y', h' = g)`` sees ``r`` times the SNR on AWGN
    (``sum |h_i|^2`` times on fading). ZF on the result leaves a noise variance ``N0 / sum |h_i|^2``.

    Parameters
    ----------
    out : ChannelOutput
        ``y`` ``[..., r * n]``; ``h`` ``None`` (AWGN) or of ``y``'s shape; ``no`` broadcastable to ``y``
        and the same on every copy (one N0 per example).
    r : int
        Copies (``r = 1`` returns ``out`` unchanged).

    Example
    -------
    >>> import torch
    >>> x = torch.ones(1, 4, dtype=torch.complex64)
    >>> y = x.repeat(1, 3)                                  # 3 noiseless copies over AWGN
    >>> c = combine_repetitions(ChannelOutput(y, None, torch.tensor([[0.1]])), 3)
    >>> torch.allclose(c.y / c.h, x), c.y.shape
    (True, torch.Size([1, 4]))
    """
    if isinstance(r, bool) or not isinstance(r, numbers.Integral) or r < 1:
        raise ValueError(f"r (copies) must be a positive int, got {r!r}")
    if r == 1:
        return out
    y = out.y
    if y.shape[-1] % r:
        raise ValueError(f"the received block has {y.shape[-1]} symbols, not a multiple of r={r} copies")
    n = y.shape[-1] // r
    ys = y.reshape(*y.shape[:-1], r, n)
    no = out.no
    if isinstance(no, torch.Tensor) and no.dim() and no.shape[-1] == y.shape[-1]:  # N0 per symbol: copy 0's
        no = no.reshape(*no.shape[:-1], r, n)[..., 0, :]
    elif isinstance(no, torch.Tensor) and no.dim() and no.shape[-1] != 1:
        raise ValueError(f"combine_repetitions needs N0 per example or per received symbol, got shape "
                         f"{tuple(no.shape)} for y of shape {tuple(y.shape)}")
    if out.h is None:
        gain = torch.full_like(ys[..., 0, :].real, math.sqrt(r))
        y_c = ys.sum(-2) / math.sqrt(r)
    else:
        if out.h.shape != y.shape:
            raise ValueError(f"combine_repetitions needs one channel coefficient per received symbol (h of shape "
                             f"{tuple(y.shape)}), got {tuple(out.h.shape)}")
        hs = out.h.reshape(*y.shape[:-1], r, n)
        gain = (hs.real.square() + hs.imag.square()).sum(-2).sqrt()
        y_c = (hs.conj() * ys).sum(-2) / gain.clamp_min(torch.finfo(gain.dtype).tiny)
    return ChannelOutput(y_c, gain.to(y.dtype), no)


class Equalizer(nn.Module):
    """CSI estimation followed by ZF or MMSE equalisation (see the module docstring).

    Calling it on a :class:`ChannelOutput` (``y``, ``h`` ``[..., n]`` complex) returns ``(x_hat, no_eff)``, both
    ``[..., n]`` (``no_eff`` real: the noise variance left on each equalised symbol).

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

    Examples
    --------
    >>> from phy.channel.flat import Rayleigh
    >>> ch = Rayleigh(seed=0)
    >>> out = ch(torch.ones(2, 4, dtype=torch.complex64), no=0.0)
    >>> x_hat, no_eff = Equalizer("zf")(out)
    >>> torch.allclose(x_hat, torch.ones(2, 4, dtype=torch.complex64)), no_eff.shape   # noiseless: exact
    (True, torch.Size([2, 4]))
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

    def pilot_uses(self, n: int, channel=None) -> int:
        """Pilot channel uses per example that :meth:`transmit` charges for ``n`` data symbols over
        ``channel``: ``num_pilots`` per coefficient with ``csi="ls"`` (one coefficient per coherence block
        of ``channel.block_length`` symbols, else one per symbol; times ``num_tx`` orthogonal pilots on a MIMO
        channel, :mod:`phy.mimo.csi`), 0 otherwise and for a channel without fading (AWGN: nothing to
        estimate)."""
        if self.csi != "ls" or channel is None or getattr(channel, "name", "") == "awgn":
            return 0
        streams = int(getattr(channel, "num_tx", 1)) if getattr(channel, "is_mimo", False) else 1
        return self.num_pilots * streams * math.ceil(n / _block_length(channel))

    def forward(self, out: ChannelOutput, generator: Optional[torch.Generator] = None, block_length: int = 1,
                prior: Tuple[complex, float] = (0j, 1.0)) -> Tuple[torch.Tensor, torch.Tensor]:
        """Equalise a :class:`ChannelOutput`; ``generator`` (the channel's) draws CSI errors, one per
        coherence block of ``block_length`` symbols. With ``csi="ls"`` the receiver uses the LMMSE
        estimate for the prior ``(mean, variance)`` of ``h`` and the noise ``N0 + sigma_e^2 P``
        (:func:`phy.mimo.csi.lmmse_from_ls`); the estimate is drawn around ``out.h`` (the pilots' frame and
        oscillator are :meth:`transmit`'s)."""
        h, no = out.h, out.no
        if self.csi != "perfect" and h is not None:
            if generator is None:
                raise ValueError("an estimated CSI needs the channel's generator (generator=None given)")
            h = estimate_csi(h, no, self.csi, generator, self.num_pilots, self.pilot_snr_db, block_length)
            if self.csi == "ls":

                h, err = lmmse_from_ls(h, no / self.num_pilots, *prior)
                no = no + err * self.power
        return equalize(out.y, h, no, self.method, self.power)

    def transmit(self, channel, x: torch.Tensor, no) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Send ``x`` ``[..., n]`` through ``channel`` and equalise: ``(x_hat, no_eff, no)``.

        With perfect CSI this is ``channel.forward_equalized`` (one fused pass where the channel
        has one, see :meth:`phy.channel.base.Channel.forward_equalized`); otherwise the channel with the
        pilots in the frame, the receiver's estimate (errors drawn from the channel's generator;
        :func:`phy.mimo.csi.send_and_estimate`) and :func:`equalize` with it.
        """
        if self.csi == "perfect" and hasattr(channel, "forward_equalized"):
            return channel.forward_equalized(x, no, self.method, self.power)

        out, h_hat, no_rx = send_and_estimate(channel, x, no, self, self.power)
        x_hat, no_eff = equalize(out.y, h_hat, no_rx, self.method, self.power)
        return x_hat, no_eff, out.no

    def extra_repr(self) -> str:
        return f"method={self.method!r}, csi={self.csi!r}"
