"""The capacity-achieving digital link: a payload is delivered error-free when it fits the channel's
capacity over its channel uses, and is lost (outage) otherwise; and the choice of its payload.

* :class:`IdealCodeLink`: the link.
* :func:`design_payload`: the payload per example that minimises the expected distortion
  ``(1 - P_out(B)) D(B) + P_out(B) D_erased`` over draws of the channel's mutual information, the way
  :func:`phy.link.amc.select_mcs` chooses an MCS; a fixed outage target is the override.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Union

import numpy as np
import torch

from phy.channel.base import Channel
from phy.theory.capacity import CAPACITY_MODES, IdealCode, instantaneous_capacity
from phy.link.base import Link, LinkOutput, noise_power
from phy.link.digital import _check_bits

__all__ = ["IdealCodeLink", "PayloadDesign", "design_payload"]


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


@dataclass
class PayloadDesign:
    """Result of :func:`design_payload`: ``payload_bits`` per example, the estimated probability
    ``outage`` that a codeword does not fit its channel, the ``expected_distortion``
    ``(1 - outage) D(payload_bits) + outage D_erased``, and ``evaluated``: payload -> (outage, expected
    distortion) of every candidate tried.

    Examples
    --------
    >>> d = design_payload([10.0, 12.0, 14.0, 16.0], lambda b: 2.0 ** -b, erased_distortion=1.0)
    >>> d.payload_bits, d.outage
    (10, 0.0)
    """

    payload_bits: int
    outage: float
    expected_distortion: float
    evaluated: Dict[int, tuple]


def design_payload(mi_bits: Sequence[float], distortion_of: Callable[[int], float], erased_distortion: float, *,
                   span: int = 1, outage: Optional[float] = None, levels: int = 60) -> PayloadDesign:
    """The ideal code's payload per example, chosen to minimise the expected distortion over the channel.

    A codeword carries ``span`` examples of ``B`` bits each and is delivered iff ``span * B`` fits the
    mutual information of its channel uses; ``mi_bits`` are draws of that mutual information (bits per
    codeword, e.g. ``sum_i log2(1 + |h_i|^2 snr)`` over the codeword's uses; one value for AWGN). With
    ``P_out(B)`` the fraction of draws below ``span * B``, the payload minimises
    ``(1 - P_out(B)) D(B) + P_out(B) erased_distortion``, ``D = distortion_of`` (e.g. the source coder's
    distortion on the training split). For a non-increasing ``D`` the minimum lies at a payload
    ``floor(mi_(j) / span)`` just below a draw (larger payloads with the same ``P_out`` only lower ``D``);
    the candidates are those at ``levels`` outage levels spaced logarithmically from ``1 / len(mi_bits)``
    to 1/2, and the outage is resolved down to about ``1 / len(mi_bits)``.

    ``outage`` (a probability) overrides the design: ``B = floor(q / span)`` with ``q`` the ``outage``
    quantile of the draws, a fixed outage target.

    Parameters
    ----------
    mi_bits : array ``[draws]``
        Mutual information of one codeword's channel uses, bits, one value per channel draw.
    distortion_of : callable ``int -> float``
        Distortion of an example delivered with ``B`` bits.
    erased_distortion : float
        Distortion of an example whose codeword is lost.
    span : int
        Examples per codeword (default 1).
    outage : float, optional
        Fixed outage target instead of the design.
    levels : int
        Outage levels whose payloads are tried (default 60).

    Returns
    -------
    :class:`PayloadDesign`.

    Examples
    --------
    >>> import numpy as np
    >>> mi = np.random.default_rng(0).normal(560.0, 18.0, 20000)     # an example's bits over i.i.d. fading
    >>> d = design_payload(mi, lambda b: 2.0 ** (-b / 50), erased_distortion=1.0)
    >>> d.payload_bits < 560 - 2 * 18, d.outage < 0.02                # far below the mean: outage is costly
    (True, True)
    >>> design_payload(mi, lambda b: 2.0 ** (-b / 50), 1.0, outage=0.1).payload_bits   # a fixed 10% target
    537
    """
    mi = np.sort(np.asarray(mi_bits, dtype=np.float64).reshape(-1))
    if mi.size == 0 or not np.isfinite(mi).all():
        raise ValueError(f"mi_bits must be a non-empty array of finite values, got {mi_bits!r}")
    if isinstance(span, bool) or not isinstance(span, numbers.Integral) or span < 1:
        raise ValueError(f"span must be a positive int, got {span!r}")
    if isinstance(levels, bool) or not isinstance(levels, numbers.Integral) or levels < 1:
        raise ValueError(f"levels must be a positive int, got {levels!r}")
    if isinstance(erased_distortion, bool) or not isinstance(erased_distortion, numbers.Real) or \
            not math.isfinite(erased_distortion):
        raise ValueError(f"erased_distortion must be a finite number, got {erased_distortion!r}")
    if not callable(distortion_of):
        raise TypeError(f"distortion_of must be callable, got {type(distortion_of).__name__}")

    def p_out(b: int) -> float:
        return float(np.searchsorted(mi, span * b - 1e-9, side="left")) / mi.size   # draws below span * b

    evaluated: Dict[int, tuple] = {}

    def evaluate(b: int) -> float:
        if b not in evaluated:
            p = p_out(b) if b > 0 else 0.0
            evaluated[b] = (p, (1.0 - p) * float(distortion_of(b)) + p * float(erased_distortion))
        return evaluated[b][1]

    if outage is not None:
        if isinstance(outage, bool) or not isinstance(outage, numbers.Real) or not 0 < outage < 1:
            raise ValueError(f"outage must be a probability in (0, 1), got {outage!r}")
        b = max(0, int(math.floor(float(np.quantile(mi, outage)) / span + 1e-9)))
        evaluate(b)
        return PayloadDesign(b, evaluated[b][0], evaluated[b][1], evaluated)
    top = mi.size - 1
    index = {0} | {min(top, int(round(q * mi.size))) for q in np.geomspace(1.0 / mi.size, 0.5, int(levels))}
    for j in sorted(index):
        evaluate(max(0, int(math.floor(mi[j] / span + 1e-9))))
    evaluate(0)
    best = min(evaluated, key=lambda b: (evaluated[b][1], -b))
    return PayloadDesign(best, evaluated[best][0], evaluated[best][1], evaluated)
