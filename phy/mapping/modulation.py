"""Gray-mapped square QAM (QPSK ... 256-QAM) on Sionna's Mapper/Demapper, and closed-form BERs.

Conventions
-----------
* Constellations are Sionna's ``qam(m)`` (3GPP TS 38.211 labelling, Gray mapped, unit mean symbol
  energy ``Es = 1``). A symbol carries ``m`` bits, most significant first; bits ``0, 2, 4, ...``
  select the in-phase Gray-PAM level and bits ``1, 3, 5, ...`` the quadrature one.
* **LLR sign convention** (the one Sionna uses everywhere, "logits"):
  ``LLR(b) = ln( P(b = 1 | y) / P(b = 0 | y) )``. A *positive* LLR favours bit ``1``; the hard
  decision is ``b_hat = 1`` iff ``LLR > 0``. Every code in :mod:`phy.fec.codes` expects this sign.
  For QPSK (bit 0 -> +1/sqrt(2), bit 1 -> -1/sqrt(2) per dimension) the exact LLRs are
  ``LLR(b0) = -2*sqrt(2)*Re(y)/N0`` and ``LLR(b1) = -2*sqrt(2)*Im(y)/N0``.
* Soft demapping needs the noise power seen by each symbol: after zero-forcing equalisation of
  ``y = h x + n`` it is ``N0 / |h|^2`` per symbol (:func:`phy.mimo.equalization.equalize` returns it).

Closed-form bit error rates (uncoded, Gray mapping, per-dimension nearest-level decisions)
------------------------------------------------------------------------------------------
* :func:`qam_ber_awgn` is **exact** for every square Gray QAM: each dimension is a Gray
  ``sqrt(M)``-PAM and the BER is enumerated as a finite sum of ``Q(k d / sigma)`` terms (for 16-QAM
  it reduces to the textbook ``(3 Q(x) + 2 Q(3x) - Q(5x)) / 4``, ``x = sqrt(Es / (5 N0))``).
* :func:`qam_ber_awgn_approx` is the standard nearest-neighbour approximation
  ``(4 / log2 M) (1 - 1/sqrt(M)) Q(sqrt(3 Es / ((M - 1) N0)))`` (exact for QPSK only).
* :func:`qam_ber_rayleigh` averages the exact AWGN BER over ``|h|^2 ~ Exp(1)`` (i.i.d. Rayleigh,
  perfect CSI, ZF). Each ``Q(sqrt(beta g))`` term is averaged in closed form,
  ``E[Q(sqrt(beta g))] = (1 - sqrt(beta / (2 + beta))) / 2``, so the result is exact too (the tests
  check it against numerical integration).

Example
-------
>>> import torch
>>> qam = QAM("16qam")
>>> bits = torch.randint(0, 2, (2, 8)).float()
>>> x = qam.modulate(bits)                      # [2, 2] complex64
>>> bool((qam.hard_decision(x) == bits).all())
True
>>> round(qam_ber_awgn(10.0, "16qam"), 5)
0.05899
"""
from __future__ import annotations

import functools
import math
import numbers
from typing import Dict, Tuple, Union

import numpy as np
import torch
from torch import nn

from phy.mapping.constellations import MODULATIONS, _canonical, bits_per_symbol  # names and sizes, re-exported

__all__ = [
    "MODULATIONS",
    "bits_per_symbol",
    "QAM",
    "qam_ber_awgn",
    "qam_ber_awgn_approx",
    "qam_ber_rayleigh",
    "uncoded_ber",
    "sionna_device",
]

_DEMAPPING = ("app", "maxlog")


def sionna_device(device: Union[str, torch.device]) -> str:
    """Sionna's device string (``"cpu"``, ``"cuda:0"``) for a torch device.

    Examples
    --------
    >>> sionna_device("cpu"), sionna_device(torch.device("cuda", 1))
    ('cpu', 'cuda:1')
    """
    d = torch.device(device)
    if d.type == "cuda" and d.index is None:
        return f"cuda:{torch.cuda.current_device()}"
    return str(d)


def _precision(dtype: torch.dtype) -> str:
    return "double" if dtype in (torch.float64, torch.complex128) else "single"


class QAM(nn.Module):
    """Gray square QAM modulator / soft demodulator wrapping Sionna's ``Mapper`` and ``Demapper``.

    Parameters
    ----------
    modulation : str
        ``"qpsk"``, ``"16qam"``, ``"64qam"`` or ``"256qam"``.
    demapping : ``"app"`` (exact LLRs, default) or ``"maxlog"``
        Soft demapping method (see Sionna's ``Demapper``).
    backend : ``"auto"`` (default), ``"sionna"`` or ``"kernel"``
        Demapper: ``"auto"`` takes the compiled per-dimension PAM demapper of :mod:`phy.mapping.qam_kernels`
        (same LLRs as Sionna's within float32 rounding, several times faster: the square Gray QAM
        factorises into two PAMs) for complex64 CPU symbols, Sionna's ``Demapper`` otherwise.

    Notes
    -----
    The Sionna blocks are created lazily per (device, precision), so the module follows its inputs
    onto any device; ``complex128`` symbols use Sionna's double precision.

    Example
    -------
    >>> import torch
    >>> q = QAM("qpsk")
    >>> q.modulate(torch.tensor([0., 1.]))
    tensor([0.7071-0.7071j])
    """

    BACKENDS = ("auto", "sionna", "kernel")

    def __init__(self, modulation: str = "qpsk", demapping: str = "app", backend: str = "auto"):
        super().__init__()
        self.modulation = _canonical(modulation)
        if demapping not in _DEMAPPING:
            raise ValueError(f"demapping must be one of {_DEMAPPING}, got {demapping!r}")
        if backend not in self.BACKENDS:
            raise ValueError(f"backend must be one of {self.BACKENDS}, got {backend!r}")
        self.demapping = demapping
        self.backend = backend
        self.bits_per_symbol = MODULATIONS[self.modulation]
        self._blocks: Dict[Tuple[str, str], tuple] = {}

    def _get(self, device, dtype):
        from sionna.phy.mapping import Demapper, Mapper

        key = (sionna_device(device), _precision(dtype))
        if key not in self._blocks:
            m = self.bits_per_symbol
            mapper = Mapper("qam", m, precision=key[1], device=key[0])
            demapper = Demapper(self.demapping, "qam", m, precision=key[1], device=key[0])
            self._blocks[key] = (mapper, demapper)
        return self._blocks[key]

    def points(self, device="cpu", dtype=torch.complex64) -> torch.Tensor:
        """The ``2**m`` constellation points ``[2**m]``; point ``i`` carries the bits of ``i`` (MSB first)."""
        mapper, _ = self._get(device, dtype)
        return mapper.constellation().to(dtype)

    def modulate(self, bits: torch.Tensor, dtype: torch.dtype = torch.complex64) -> torch.Tensor:
        """Bits ``[..., L]`` (0/1, any real or int dtype; ``L`` a multiple of ``bits_per_symbol``)
        -> symbols ``[..., L / bits_per_symbol]`` of ``dtype`` (complex64 default)."""
        if not isinstance(bits, torch.Tensor):
            raise TypeError(f"bits must be a torch.Tensor, got {type(bits).__name__}")
        if bits.dim() == 0 or bits.shape[-1] % self.bits_per_symbol:
            raise ValueError(f"bits must have a last dimension that is a multiple of bits_per_symbol="
                             f"{self.bits_per_symbol} ({self.modulation}), got shape {tuple(bits.shape)}")
        if bits.is_complex() or (bits.numel() and not ((bits == 0) | (bits == 1)).all()):
            # Sionna's mapper would silently send a wrong point (0.5 or NaN -> 0, 2 -> another
            # label, -1 -> the last point)
            raise ValueError(f"bits must contain only 0 and 1 (real), got dtype {bits.dtype}")
        mapper, _ = self._get(bits.device, dtype)
        return mapper(bits).to(dtype)

    forward = modulate

    def demodulate(self, y: torch.Tensor, no) -> torch.Tensor:
        """Soft demapping: symbols ``[..., n]`` complex and noise power ``no`` (number or tensor
        broadcastable to ``y``; per-symbol ``N0/|h|^2`` after ZF) -> LLRs ``[..., n * m]`` real,
        ``LLR = ln P(b=1|y) / P(b=0|y)`` (positive favours 1)."""
        if not isinstance(y, torch.Tensor) or not y.is_complex():
            raise TypeError(f"y must be a complex torch.Tensor, got {getattr(y, 'dtype', type(y).__name__)}")
        rdt = y.real.dtype
        no_t = torch.as_tensor(no, dtype=rdt, device=y.device)
        if (no_t < 0).any() or torch.isnan(no_t).any():
            raise ValueError("no (noise power) must be >= 0 and not NaN")
        try:
            torch.broadcast_shapes(no_t.shape, y.shape)
        except RuntimeError:
            raise ValueError(f"no of shape {tuple(no_t.shape)} must broadcast to y of shape {tuple(y.shape)}")
        if self._use_kernel(y, no_t):
            from phy.mapping import qam_kernels

            return qam_kernels.demap(y, no_t, self.modulation, method=self.demapping)
        _, demapper = self._get(y.device, y.dtype)
        return demapper(y, no_t).to(rdt)

    def _use_kernel(self, y: torch.Tensor, no_t: torch.Tensor) -> bool:
        """The compiled per-dimension PAM demapper (:mod:`phy.mapping.qam_kernels`, equal to Sionna's within
        float32 rounding) for complex64 CPU symbols with a positive, finite N0 per symbol, per
        example or scalar; Sionna's ``Demapper`` otherwise (or with ``backend="sionna"``)."""
        if self.backend == "sionna" or y.dtype != torch.complex64 or y.device.type != "cpu" or y.dim() == 0:
            return False
        from phy.mapping import qam_kernels

        ok = qam_kernels.available()
        if ok and no_t.dim():
            n = y.shape[-1]
            ok = no_t.shape[-1] in (1, n) and no_t.shape[:-1] in (y.shape[:-1], torch.Size([1] * (no_t.dim() - 1)),
                                                                torch.Size())
        ok = ok and bool(((no_t > 0) & torch.isfinite(no_t)).all())
        if self.backend == "kernel" and not ok:
            raise ValueError("backend='kernel' needs complex64 CPU symbols, numba, and a positive finite N0 "
                             "(scalar, per example [..., 1] or per symbol [..., n])")
        return ok

    def hard_decision(self, y: torch.Tensor) -> torch.Tensor:
        """Bits of the nearest constellation point: ``[..., n]`` complex -> ``[..., n * m]`` float 0/1."""
        if not isinstance(y, torch.Tensor) or not y.is_complex():
            raise TypeError(f"y must be a complex torch.Tensor, got {getattr(y, 'dtype', type(y).__name__)}")
        pts = self.points(y.device, y.dtype)
        idx = (y.unsqueeze(-1) - pts).abs().argmin(-1)
        m = self.bits_per_symbol
        shifts = torch.arange(m - 1, -1, -1, device=y.device)
        b = (idx.unsqueeze(-1) >> shifts) & 1
        return b.reshape(*y.shape[:-1], y.shape[-1] * m).to(y.real.dtype)

    def extra_repr(self) -> str:
        return f"{self.modulation!r}, demapping={self.demapping!r}"


# --------------------------------------------------------------------------------------------
# Closed-form BER
# --------------------------------------------------------------------------------------------
def _qfunc(x):
    from scipy.special import erfc

    return 0.5 * erfc(np.asarray(x, dtype=float) / math.sqrt(2.0))


def _gray_pam_labels(m: int):
    """Levels (odd integers, ascending) and their Gray labels for a 2**m-PAM (Sionna's pam_gray)."""
    from sionna.phy.mapping import pam_gray

    labels = {}
    for i in range(2 ** m):
        b = np.array([int(c) for c in np.binary_repr(i, m)], dtype=np.int64)
        labels[pam_gray(b)] = b
    levels = sorted(labels)
    return levels, [labels[a] for a in levels]


@functools.lru_cache(maxsize=None)
def _pam_q_coefficients(m: int) -> Tuple[float, Tuple[Tuple[int, float], ...]]:
    """Per-dimension BER of Gray 2**m-PAM with levels ``+-1, +-3, ...`` (unit half-spacing) as
    ``c0 + sum_k c_k Q(k * s)``, ``s = half-spacing / sigma``; returns ``(c0, ((k, c_k), ...))``."""
    levels, labels = _gray_pam_labels(m)
    L = len(levels)
    coef: Dict[int, float] = {}
    c0 = 0.0

    def add_q(arg: int, w: float):
        # + w * Q(arg * s); Q(-x) = 1 - Q(x); Q(+inf) = 0 handled by caller
        nonlocal c0
        if arg >= 0:
            coef[arg] = coef.get(arg, 0.0) + w
        else:
            c0 += w
            coef[-arg] = coef.get(-arg, 0.0) - w

    for j, aj in enumerate(levels):
        for l, al in enumerate(levels):
            d = int(np.sum(labels[j] != labels[l]))
            if d == 0:
                continue
            w = d / (m * L)
            # region of level l: [al - 1, al + 1] (outermost regions extend to +-inf)
            lo = None if l == 0 else al - 1
            hi = None if l == L - 1 else al + 1
            # P(y in [lo, hi] | aj) = Q((lo - aj) s) - Q((hi - aj) s)
            if lo is None:
                c0 += w
            else:
                add_q(lo - aj, w)
            if hi is not None:
                add_q(hi - aj, -w)
    terms = tuple(sorted((int(k), float(c)) for k, c in coef.items() if abs(c) > 1e-15))
    return c0, terms


def _half_spacing_sq_snr(m_total: int) -> float:
    """``(d/2)^2 / (N0/2)`` per unit Es/N0 for unit-energy square QAM with ``m_total`` bits/symbol:
    half-spacing^2 = 3 / (2 (M - 1)), so s^2 = 3 snr / (M - 1)."""
    M = 2 ** m_total
    return 3.0 / (M - 1)


def _snr_lin(snr_db):
    return 10.0 ** (np.asarray(snr_db, dtype=float) / 10.0)


def _as_output(x, snr_db):
    if np.ndim(snr_db) == 0 and not isinstance(snr_db, (np.ndarray, torch.Tensor)):
        return float(x)
    return np.asarray(x)


def _snr_input(snr_db):
    if isinstance(snr_db, torch.Tensor):
        snr_db = snr_db.detach().cpu().numpy()
    if isinstance(snr_db, bool) or not isinstance(snr_db, (numbers.Real, np.ndarray, list, tuple)):
        raise TypeError(f"snr_db must be a real number or array, got {type(snr_db).__name__}")
    return snr_db


def qam_ber_awgn(snr_db, modulation: str):
    """Exact uncoded bit error rate of Gray square QAM over AWGN at Es/N0 = ``snr_db`` [dB].

    Parameters
    ----------
    snr_db : float or array
    modulation : ``"qpsk"``, ``"16qam"``, ``"64qam"``, ``"256qam"``

    Returns
    -------
    float or ndarray (same shape as ``snr_db``)

    Examples
    --------
    >>> round(float(qam_ber_awgn(10.0, "qpsk")), 8)     # Q(sqrt(Es/N0)) = Q(sqrt(10))
    0.0007827
    >>> qam_ber_awgn(np.array([0.0, 10.0]), "16qam").shape
    (2,)
    """
    snr_db = _snr_input(snr_db)
    m_total = bits_per_symbol(modulation)
    c0, terms = _pam_q_coefficients(m_total // 2)
    s = np.sqrt(_half_spacing_sq_snr(m_total) * _snr_lin(snr_db))
    out = c0 + sum(c * _qfunc(k * s) for k, c in terms)
    return _as_output(np.clip(out, 0.0, 0.5), snr_db)


def qam_ber_awgn_approx(snr_db, modulation: str):
    """Nearest-neighbour approximation ``(4/log2 M)(1 - 1/sqrt M) Q(sqrt(3 Es/((M-1) N0)))``
    (exact for QPSK; slightly optimistic at low SNR for larger M).

    Examples
    --------
    >>> float(qam_ber_awgn_approx(10.0, "qpsk")) == float(qam_ber_awgn(10.0, "qpsk"))
    True
    """
    snr_db = _snr_input(snr_db)
    m = bits_per_symbol(modulation)
    M = 2 ** m
    out = (4.0 / m) * (1 - 1 / math.sqrt(M)) * _qfunc(np.sqrt(3.0 * _snr_lin(snr_db) / (M - 1)))
    return _as_output(out, snr_db)


def qam_ber_rayleigh(snr_db, modulation: str):
    """Exact uncoded BER of Gray square QAM over i.i.d. Rayleigh fading (``h ~ CN(0,1)``, perfect
    CSI, ZF equalisation) at average Es/N0 = ``snr_db`` [dB]: the AWGN BER averaged over
    ``|h|^2 ~ Exp(1)``, term by term with ``E[Q(sqrt(beta g))] = (1 - sqrt(beta/(2+beta)))/2``.

    Examples
    --------
    >>> round(float(qam_ber_rayleigh(10.0, "qpsk")), 6)  # (1 - sqrt(5/6)) / 2
    0.043565
    """
    snr_db = _snr_input(snr_db)
    m_total = bits_per_symbol(modulation)
    c0, terms = _pam_q_coefficients(m_total // 2)
    s2 = _half_spacing_sq_snr(m_total) * _snr_lin(snr_db)
    out = c0 + sum(c * 0.5 * (1 - np.sqrt(k * k * s2 / (2.0 + k * k * s2))) for k, c in terms)
    return _as_output(np.clip(out, 0.0, 0.5), snr_db)


def uncoded_ber(snr_db, modulation: str, channel_kind: str = "awgn"):
    """Closed-form uncoded BER for ``channel_kind`` ``"awgn"`` or ``"rayleigh"`` (see above).

    Examples
    --------
    >>> uncoded_ber(10.0, "qpsk", "rayleigh") == qam_ber_rayleigh(10.0, "qpsk")
    True
    """
    if channel_kind == "awgn":
        return qam_ber_awgn(snr_db, modulation)
    if channel_kind == "rayleigh":
        return qam_ber_rayleigh(snr_db, modulation)
    raise ValueError(f"channel_kind must be 'awgn' or 'rayleigh', got {channel_kind!r}")
