"""MIMO receivers (soft outputs) and the closed-form error rates they must reach.

Convention (README, Conventions): one **channel use is one resource element** carrying up to ``num_tx``
spatial streams; **Es/N0 = total transmitted energy per channel use (all antennas together) / N0 per
receive antenna**. A link that sends unit-energy QAM symbols on ``num_tx`` streams therefore puts
``1 / sqrt(num_tx)`` on each antenna, and with i.i.d. CN(0, 1) channel entries each receive antenna
sees Es/N0.

Receivers
    ``mrc``         maximum-ratio combining for one transmit antenna (``1 x N_r``):
                    ``x_hat = h^H y / ||h||^2``, noise ``N0 / ||h||^2`` (a sufficient statistic: APP
                    demapping after MRC gives the exact LLRs).
    ``MIMODetector`` spatial multiplexing through Sionna's detectors with LLR outputs: ``"zf"`` and
                    ``"lmmse"`` (``LinearDetector``), ``"kbest"`` (``KBestDetector``, ``k`` candidates)
                    and ``"ml"`` (``MaximumLikelihoodDetector``, exact APP LLRs).

Closed forms (Gray QPSK = two BPSK bits with half the symbol energy each)
    :func:`diversity_bpsk_ber` (Proakis, 5th ed., eq. 13.4-15): ``P_b = p^L sum_k C(L-1+k, k) (1-p)^k``
    with ``p = (1 - mu) / 2``, ``mu = sqrt(g / (1 + g))`` and ``g`` the mean SNR per bit per branch.
    :func:`mrc_qpsk_ber`: ``1 x N_r`` MRC, ``L = N_r``, ``g = Es / (2 N0)``.
    :func:`zf_qpsk_ber`: ``N_t x N_r`` ZF spatial multiplexing; the post-ZF SNR of a stream is
    ``Es / (N_t N0)`` times a chi-square gain with ``2 (N_r - N_t + 1)`` degrees of freedom, so
    ``L = N_r - N_t + 1``, ``g = Es / (2 N_t N0)``.

Example
-------
>>> round(float(mrc_qpsk_ber(10.0, 1)), 6)   # Rayleigh QPSK at Es/N0 = 10 dB: (1 - sqrt(5/6)) / 2
0.043565
>>> bool(np.isclose(zf_qpsk_ber(10.0, 2, 2), mrc_qpsk_ber(10.0 - 10 * np.log10(2), 1)))   # 2 x 2 ZF: diversity 1
True
"""
from __future__ import annotations

import math
import numbers
from typing import Dict, Tuple

import numpy as np
import torch
from torch import nn

from phy.utils.conventions import check_complex
from phy.mapping.modulation import QAM, _precision, sionna_device

__all__ = ["DETECTORS", "mrc", "mimo_equalize", "MIMODetector", "diversity_bpsk_ber", "mrc_qpsk_ber", "zf_qpsk_ber"]

#: MIMO detectors of :class:`MIMODetector`: ZF, LMMSE, K-best and exhaustive ML.
DETECTORS = ("zf", "lmmse", "kbest", "ml")


def mrc(y: torch.Tensor, h: torch.Tensor, no) -> Tuple[torch.Tensor, torch.Tensor]:
    """Maximum-ratio combining of ``y [..., num_rx, n]`` with ``h [..., num_rx, 1, n]`` (or
    ``[..., num_rx, n]``): ``x_hat [..., n]`` and its noise variance ``N0 / ||h||^2 [..., n]``.

    ``no`` (N0 per receive antenna) must broadcast to ``y`` and be the same on every antenna.

    Examples
    --------
    >>> y = torch.tensor([[1 + 0j], [1j]]); h = torch.tensor([[1 + 0j], [1j]])
    >>> x, v = mrc(y, h, 0.5)
    >>> x.tolist(), v.tolist()
    ([(1+0j)], [0.25])
    """
    check_complex(y, "y")
    check_complex(h, "h")
    if h.dim() == y.dim() + 1:
        if h.shape[-2] != 1:
            raise ValueError(f"mrc needs one transmit antenna, got h of shape {tuple(h.shape)}")
        h = h[..., 0, :]
    if h.shape[-2:] != y.shape[-2:]:
        raise ValueError(f"h of shape {tuple(h.shape)} does not match y of shape {tuple(y.shape)} ([..., num_rx, n])")
    g = h.real.square().add(h.imag.square()).sum(-2)  # ||h||^2 [..., n]
    x_hat = (h.conj() * y).sum(-2) / g
    no_t = torch.as_tensor(no, dtype=g.dtype, device=g.device)
    no_t = no_t.expand(torch.broadcast_shapes(no_t.shape, y.shape))[..., 0, :] if no_t.dim() >= 2 else no_t
    return x_hat, no_t / g


def mimo_equalize(y: torch.Tensor, h: torch.Tensor, no, method: str = "mmse", power: float = 1.0
                  ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Linear per-stream equalisation of ``y = H s + n`` per channel use (analog links).

    ``y [..., M, n]``, ``h [..., M, K, n]`` (the channel the symbols ``s`` of energy ``power`` see),
    ``no`` N0 per receive antenna (broadcastable to ``y``, equal on every antenna).

    ``"mmse"`` (LMMSE): ``s_hat = (H^H H + (N0/P) I)^{-1} H^H y``, error covariance
    ``N0 (H^H H + (N0/P) I)^{-1}``; ``"zf"``: ``s_hat = (H^H H)^{-1} H^H y`` (``M >= K``), noise covariance
    ``N0 (H^H H)^{-1}``. Returns ``s_hat [..., K, n]`` and the per-stream error variances ``[..., K, n]``
    (the diagonal). With ``K = 1``, ``"zf"`` is MRC.

    Examples
    --------
    >>> h = torch.eye(2, dtype=torch.complex64).reshape(2, 2, 1) * 2
    >>> s, v = mimo_equalize(torch.tensor([[2 + 0j], [4j]]), h, 0.4, "zf")
    >>> s.squeeze(-1).tolist(), v.squeeze(-1).tolist()
    ([(1+0j), 2j], [0.10000000149011612, 0.10000000149011612])
    """
    if method not in ("zf", "mmse"):
        raise ValueError(f"method must be 'zf' or 'mmse', got {method!r}")
    check_complex(y, "y")
    check_complex(h, "h")
    M, K = h.shape[-3], h.shape[-2]
    if method == "zf" and M < K:
        raise ValueError(f"ZF needs at least as many receive as transmit antennas, got {M} x {K}")
    rdt = y.real.dtype
    no_t = torch.as_tensor(no, dtype=rdt, device=y.device)
    no_t = no_t.expand(torch.broadcast_shapes(no_t.shape, y.shape))[..., 0, :]  # [..., n]
    ht = h.movedim(-1, -3)                                          # [..., n, M, K]
    gram = ht.conj().transpose(-1, -2) @ ht                         # [..., n, K, K]
    if method == "mmse":
        gram = gram + (no_t / power).to(y.dtype)[..., None, None] * torch.eye(K, dtype=y.dtype, device=y.device)
    inv = torch.linalg.inv(gram)
    s_hat = inv @ (ht.conj().transpose(-1, -2) @ y.movedim(-1, -2).unsqueeze(-1))  # [..., n, K, 1]
    var = torch.diagonal(inv, dim1=-2, dim2=-1).real * no_t[..., None]            # [..., n, K]
    return s_hat[..., 0].movedim(-2, -1), var.movedim(-2, -1)


class MIMODetector(nn.Module):
    """Soft-output MIMO detection of ``y = H x + n`` per channel use, through Sionna's detectors.

    Parameters
    ----------
    detector : ``"zf"``, ``"lmmse"``, ``"kbest"`` or ``"ml"``
    modulation : str
        The QAM of every stream (:class:`phy.mapping.modulation.QAM`, Sionna's Gray ``qam`` constellation).
    num_streams : int
        Transmitted streams ``K`` (columns of ``H``).
    demapping : ``"app"`` or ``"maxlog"`` (``zf``/``lmmse``/``ml``; K-best uses Sionna's list LLRs)
    kbest_k : int
        Candidates kept by K-best (default 16).

    Notes
    -----
    Call with ``y [..., M, n]``, ``h [..., M, K, n]`` (the effective channel, power scaling included)
    and ``no`` (N0 per receive antenna, broadcastable to ``y`` and equal on every antenna); returns LLRs
    ``[..., n, K * m]`` (``m`` bits per symbol): per channel use the bits of stream 0, then stream 1, ...
    ``LLR = ln P(b=1) / P(b=0)`` (positive favours 1, as :meth:`phy.mapping.modulation.QAM.demodulate`).

    Example
    -------
    >>> det = MIMODetector("ml", "qpsk", num_streams=2)
    >>> h = torch.eye(2, dtype=torch.complex64).reshape(2, 2, 1)
    >>> x = QAM("qpsk").modulate(torch.tensor([1., 0., 0., 1.])).reshape(2, 1)
    >>> (det(h[:, 0] * x[0] + h[:, 1] * x[1], h, 1e-3) > 0).int().tolist()
    [[1, 0, 0, 1]]
    """

    def __init__(self, detector: str = "lmmse", modulation: str = "qpsk", num_streams: int = 2,
                 demapping: str = "app", kbest_k: int = 16):
        super().__init__()
        if detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
        for name, v in (("num_streams", num_streams), ("kbest_k", kbest_k)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.qam = QAM(modulation, demapping=demapping)
        self.detector, self.num_streams, self.kbest_k = detector, int(num_streams), int(kbest_k)
        self._blocks: Dict[Tuple[str, str], nn.Module] = {}
        if detector == "ml":  # every one of M^K candidate vectors is tabulated (and scored per channel use)
            from phy.utils.memory import check_memory

            check_memory(self._ml_bytes(1), f"the ML detector's table of {(2 ** self.qam.bits_per_symbol)}^{self.num_streams} "
                         f"candidate vectors ({self.qam.modulation}, {self.num_streams} streams)",
                         hint="use --detector kbest or lmmse, fewer transmit antennas or a smaller constellation")

    def _ml_bytes(self, uses: int) -> int:
        """Bytes the ML detector needs for ``uses`` channel uses: its candidate table (vectors and bit labels)
        and the distance of every candidate at every use."""
        cand = (2 ** self.qam.bits_per_symbol) ** self.num_streams
        return cand * self.num_streams * (8 + self.qam.bits_per_symbol) + cand * int(uses) * 16

    def _get(self, device, dtype):
        key = (sionna_device(device), _precision(dtype))
        if key not in self._blocks:
            from sionna.phy.mimo import KBestDetector, LinearDetector, MaximumLikelihoodDetector

            common = dict(constellation_type="qam", num_bits_per_symbol=self.qam.bits_per_symbol,
                          precision=key[1], device=key[0])
            if self.detector in ("zf", "lmmse"):
                block = LinearDetector(self.detector, "bit", self.qam.demapping, **common)
            elif self.detector == "ml":
                block = MaximumLikelihoodDetector("bit", self.qam.demapping, self.num_streams, **common)
            else:
                block = KBestDetector("bit", self.num_streams, self.kbest_k, **common)
            self._blocks[key] = block
        return self._blocks[key]

    def forward(self, y: torch.Tensor, h: torch.Tensor, no) -> torch.Tensor:
        check_complex(y, "y")
        check_complex(h, "h")
        M, n = y.shape[-2], y.shape[-1]
        if h.dim() != y.dim() + 1 or h.shape[-3] != M or h.shape[-2] != self.num_streams or h.shape[-1] != n:
            raise ValueError(f"h must have shape [..., M={M}, K={self.num_streams}, n={n}] for y of shape "
                             f"{tuple(y.shape)}, got {tuple(h.shape)}")
        rdt = y.real.dtype
        no_t = torch.as_tensor(no, dtype=rdt, device=y.device)
        no_t = no_t.expand(torch.broadcast_shapes(no_t.shape, y.shape))[..., 0, :]  # [..., n]
        # a zero N0 (noiseless) would make the whitening of kbest/ml singular
        no_t = no_t.clamp_min(1e-12)
        if self.detector == "ml":
            from phy.utils.memory import check_memory

            uses = y.numel() // max(M, 1)
            check_memory(self._ml_bytes(uses), f"ML detection of {uses} channel uses over "
                         f"{(2 ** self.qam.bits_per_symbol)}^{self.num_streams} candidates", hint="use smaller batches, "
                         "--detector kbest or lmmse")
        yt = y.movedim(-1, -2)                       # [..., n, M]
        ht = h.movedim(-1, -3)                       # [..., n, M, K]
        eye = torch.eye(M, dtype=y.dtype, device=y.device)
        s = no_t.to(y.dtype)[..., None, None] * eye  # [..., n, M, M]
        llr = self._get(y.device, y.dtype)(yt, ht, s)  # [..., n, K, m]
        return llr.reshape(*llr.shape[:-2], -1).to(rdt)

    def extra_repr(self) -> str:
        return f"detector={self.detector!r}, modulation={self.qam.modulation!r}, num_streams={self.num_streams}"


# --------------------------------------------------------------------------------------------
# Closed forms
# --------------------------------------------------------------------------------------------
def diversity_bpsk_ber(snr_bit, order: int):
    """BPSK bit error rate with ``order``-branch MRC over i.i.d. Rayleigh branches of mean SNR per bit
    ``snr_bit`` (linear, per branch): Proakis eq. (13.4-15), exact.

    Examples
    --------
    >>> round(float(diversity_bpsk_ber(10.0, 1)), 6)    # (1 - sqrt(10/11)) / 2
    0.023269
    >>> bool(diversity_bpsk_ber(10.0, 2) < diversity_bpsk_ber(10.0, 1) ** 1.5)   # order-2 diversity
    True
    """
    if isinstance(order, bool) or not isinstance(order, numbers.Integral) or order < 1:
        raise ValueError(f"order (diversity) must be a positive int, got {order!r}")
    g = np.asarray(snr_bit, dtype=float)
    mu = np.sqrt(g / (1.0 + g))
    p = (1.0 - mu) / 2.0
    total = sum(math.comb(order - 1 + k, k) * ((1.0 + mu) / 2.0) ** k for k in range(order))
    return p ** order * total


def mrc_qpsk_ber(esno_db, num_rx: int):
    """Gray QPSK BER over ``1 x num_rx`` i.i.d. Rayleigh with MRC at Es/N0 ``esno_db`` per receive antenna.

    Examples
    --------
    >>> round(float(mrc_qpsk_ber(10.0, 1)), 6)          # (1 - sqrt(5/6)) / 2
    0.043565
    """
    return diversity_bpsk_ber(10.0 ** (np.asarray(esno_db, dtype=float) / 10.0) / 2.0, num_rx)


def zf_qpsk_ber(esno_db, num_tx: int, num_rx: int):
    """Gray QPSK BER per stream of ``num_tx x num_rx`` ZF spatial multiplexing over i.i.d. Rayleigh at
    Es/N0 ``esno_db`` (total over the transmit antennas, per receive antenna): diversity
    ``num_rx - num_tx + 1`` with the per-stream SNR ``Es / (num_tx N0)``.

    Examples
    --------
    >>> bool(np.isclose(zf_qpsk_ber(10.0, 2, 2), mrc_qpsk_ber(10.0 - 10 * np.log10(2), 1)))
    True
    """
    if num_rx < num_tx:
        raise ValueError(f"ZF needs num_rx >= num_tx, got num_tx={num_tx}, num_rx={num_rx}")
    snr = 10.0 ** (np.asarray(esno_db, dtype=float) / 10.0)
    return diversity_bpsk_ber(snr / (2.0 * num_tx), num_rx - num_tx + 1)
