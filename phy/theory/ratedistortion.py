"""Rate-distortion of Gaussian sources and the optimal linear analog transceiver (pure functions).

The references that every scheme of :mod:`experiments.schemes` is drawn beside, and the bit
allocation of transform coding (:mod:`phy.source.transform`), come from these formulas. Eigenvalues are
those of the source covariance (one real Gaussian component each), rates are in bits per source
vector, distortions are sums of squared errors per vector (divide by ``E||x||^2`` for an NMSE).

* :func:`reverse_water_filling`: ``D(R) = sum_i min(theta, lambda_i)`` with the water level
  ``theta`` set by ``R = sum_i max(0, 1/2 log2(lambda_i / theta))`` (Cover & Thomas, thm. 10.3.3),
  solved exactly (no bisection) and vectorised over many rates.
* :func:`gaussian_opta_distortion`: the optimal performance theoretically attainable (OPTA) of a
  Gaussian source over a channel by separation: ``D(n C)`` for AWGN (``C = log2(1 + snr)``) and
  i.i.d. fading (ergodic ``C``), and ``E_h[D(I(h))]`` when the fade is fixed over the block (the
  caller gives the mutual-information samples ``I(h)``).
* :func:`linear_power_allocation`: the MSE-optimal power split of the best *linear* analog
  scheme (KLT + per-component gains + LMMSE receiver; Lee & Petersen, 1976): ``p_i = (t sqrt(lambda_i)
  - sigma^2)^+`` with ``t`` set by the power budget.
* :func:`lloyd_max_gaussian`: the optimal fixed-rate scalar quantiser of ``N(0, 1)`` (thresholds,
  levels, MSE) for 1..12 bits, and :func:`greedy_bit_allocation`, the integer bit allocation that
  minimises ``sum_i lambda_i d(b_i)`` for a convex decreasing ``d`` (marginal returns; it follows the
  reverse water-filling slope).

Example
-------
>>> import numpy as np
>>> lam = np.ones(4)
>>> d = reverse_water_filling(lam, 4 * 0.5 * np.log2(1 + 10.0)).distortion   # 4 comps, 1/(1+snr) each
>>> round(float(d) / 4, 6) == round(1 / 11, 6)
True
>>> round(lloyd_max_gaussian(1).mse, 4)       # 1 - 2/pi
0.3634
"""
from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass
from typing import Sequence, Tuple, Union

import numpy as np

__all__ = ["RWF", "reverse_water_filling", "distortion_rate", "gaussian_opta_distortion",
           "LinearAllocation", "linear_power_allocation", "LloydMax", "lloyd_max_gaussian",
           "greedy_bit_allocation", "check_eigenvalues"]

ArrayLike = Union[Sequence[float], np.ndarray]


def check_eigenvalues(eigenvalues: ArrayLike, name: str = "eigenvalues") -> np.ndarray:
    """Eigenvalues as a float64 array sorted in decreasing order; rejects negatives beyond rounding,
    NaN/Inf and empty input (``ValueError`` naming ``name``).

    Examples
    --------
    >>> check_eigenvalues([0.5, 2.0, -1e-18]).tolist()
    [2.0, 0.5, 0.0]
    >>> check_eigenvalues([1.0, -0.5])
    Traceback (most recent call last):
    ...
    ValueError: eigenvalues ...
    """
    lam = np.asarray(eigenvalues, dtype=np.float64).reshape(-1)
    if lam.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.isfinite(lam).all():
        raise ValueError(f"{name} must be finite, got {lam[~np.isfinite(lam)][:3].tolist()}")
    scale = max(float(np.abs(lam).max()), 1e-300)
    if (lam < -1e-9 * scale).any():
        raise ValueError(f"{name} must be >= 0 (a covariance), got min {float(lam.min())!r}")
    return np.sort(np.clip(lam, 0.0, None))[::-1].copy()


@dataclass
class RWF:
    """Result of :func:`reverse_water_filling` (arrays have the shape of ``rate_bits``).

    ``distortion``: ``sum_i min(theta, lambda_i)``; ``theta``: the water level; ``active``: how
    many components are described (``lambda_i > theta``).

    Examples
    --------
    >>> r = reverse_water_filling([4.0, 1.0, 0.25], 2.0)
    >>> float(r.theta), int(r.active), float(r.distortion)      # lambda = 0.25 is below the water level
    (0.5, 2, 1.25)
    """

    distortion: np.ndarray
    theta: np.ndarray
    active: np.ndarray


def reverse_water_filling(eigenvalues: ArrayLike, rate_bits) -> RWF:
    """Gaussian distortion-rate function by reverse water-filling, exactly.

    Parameters
    ----------
    eigenvalues : array ``[d]``
        Component variances (covariance eigenvalues), >= 0.
    rate_bits : float or array
        Bits per source vector (>= 0).

    Returns
    -------
    :class:`RWF` with arrays of ``rate_bits``' shape. With ``k`` components described,
    ``theta = (prod_{i<=k} lambda_i)^(1/k) 2^(-2R/k)`` for the ``k`` with
    ``lambda_{k+1} <= theta < lambda_k``.

    Example
    -------
    >>> r = reverse_water_filling([4.0, 1.0], 1.0)        # theta = 1: only the first comp. coded
    >>> float(r.theta), float(r.distortion), int(r.active)
    (1.0, 2.0, 1)
    """
    lam = check_eigenvalues(eigenvalues)
    rate = np.asarray(rate_bits, dtype=np.float64)
    if not np.isfinite(rate).all() or (rate < 0).any():
        raise ValueError(f"rate_bits must be finite and >= 0, got {rate_bits!r}")
    pos = lam[lam > 0]
    total = float(lam.sum())
    flat = rate.reshape(-1)
    dist = np.full(flat.shape, total)
    theta = np.full(flat.shape, float(lam[0]))
    active = np.zeros(flat.shape, dtype=np.int64)
    if pos.size:
        k = np.arange(1, pos.size + 1, dtype=np.float64)
        cum_log = np.cumsum(np.log(pos))                                   # [K]
        # theta_k for every rate and every k: [num_rates, K]
        log_th = (cum_log[None, :] - 2.0 * math.log(2.0) * flat[:, None]) / k[None, :]
        th = np.exp(log_th)
        upper = pos[None, :]
        lower = np.append(pos[1:], 0.0)[None, :]
        ok = (th < upper * (1 + 1e-12)) & (th >= lower * (1 - 1e-12))
        has = ok.any(axis=1) & (flat > 0)
        kk = np.where(has, np.argmax(ok, axis=1), -1)   # ties (theta == lambda_k): the smaller set
        idx = np.nonzero(has)[0]
        if idx.size:
            t = th[idx, kk[idx]]
            tail = total - np.cumsum(lam)[kk[idx]]                          # sum_{i > k} lambda_i
            dist[idx] = (kk[idx] + 1) * t + np.clip(tail, 0.0, None)
            theta[idx] = t
            active[idx] = kk[idx] + 1
    shape = rate.shape
    return RWF(dist.reshape(shape), theta.reshape(shape), active.reshape(shape))


def distortion_rate(eigenvalues: ArrayLike, rate_bits):
    """``D(R)`` of a Gaussian source with these eigenvalues (float for a scalar rate).

    Examples
    --------
    >>> round(distortion_rate([1.0, 1.0], 2.0), 6)     # 1 bit per component: 1/4 each
    0.5
    """
    d = reverse_water_filling(eigenvalues, rate_bits).distortion
    return float(d) if np.ndim(rate_bits) == 0 else d


def gaussian_opta_distortion(eigenvalues: ArrayLike, rate_bits) -> float:
    """The Gaussian OPTA: ``E[D(R)]`` over the given rate samples (bits per source vector).

    Pass one rate (``n_ch * C`` for AWGN or ergodic fading) or the mutual information of each
    fade draw (block fading: the expectation over the fade of ``D(n_ch log2(1 + |h|^2 snr))``).
    For a non-Gaussian source with this covariance it is a reference, not a bound.

    Examples
    --------
    >>> gaussian_opta_distortion([1.0, 1.0], 2.0)               # one rate: D(R)
    0.5
    >>> gaussian_opta_distortion([1.0, 1.0], [0.0, 4.0])         # mean of D(0) = 2 and D(4) = 0.125
    1.0625
    """
    r = np.asarray(rate_bits, dtype=np.float64).reshape(-1)
    return float(np.mean(reverse_water_filling(eigenvalues, r).distortion))


@dataclass
class LinearAllocation:
    """Result of :func:`linear_power_allocation`: ``power[i]`` is the received signal power of
    component ``i`` (``g_i^2 lambda_i``), ``mse[i]`` its LMMSE error, ``distortion`` the sum.

    Examples
    --------
    >>> a = linear_power_allocation([1.0, 1.0], total_power=1.0, noise_var=1.0, num_dims=1)
    >>> a.power.tolist(), a.mse.tolist(), a.distortion     # one dimension: the second component costs 1
    ([1.0, 0.0], [0.5, 1.0], 1.5)
    """

    power: np.ndarray
    mse: np.ndarray
    distortion: float


def linear_power_allocation(eigenvalues: ArrayLike, total_power: float, noise_var: float,
                            num_dims: int) -> LinearAllocation:
    """MSE-optimal power allocation of the best linear analog transceiver.

    ``num_dims`` real channel dimensions, each with noise variance ``noise_var`` (``N0/2`` for a
    complex use), total transmit energy ``total_power`` per source vector. Component ``i``
    (``i < num_dims``, strongest first) is sent as ``g_i z_i``; the receiver's LMMSE estimate has
    error ``lambda_i sigma^2 / (p_i + sigma^2)`` with ``p_i = g_i^2 lambda_i``; components beyond
    ``num_dims`` or given no power cost ``lambda_i``. Minimising the sum under ``sum p_i = P``
    gives ``p_i = (t sqrt(lambda_i) - sigma^2)^+``.

    Example
    -------
    >>> a = linear_power_allocation([1.0, 1.0], total_power=1.0, noise_var=0.05, num_dims=2)
    >>> a.power.tolist(), round(a.distortion, 6)        # equal split; 2 * 0.05 / 0.55
    ([0.5, 0.5], 0.181818)
    """
    lam = check_eigenvalues(eigenvalues)
    for v, nm in ((total_power, "total_power"), (noise_var, "noise_var")):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (v > 0 and math.isfinite(v)):
            raise ValueError(f"{nm} must be a positive finite number, got {v!r}")
    if isinstance(num_dims, bool) or not isinstance(num_dims, numbers.Integral) or num_dims < 1:
        raise ValueError(f"num_dims must be a positive int, got {num_dims!r}")
    s2 = float(noise_var)
    m = min(int(num_dims), int((lam > 0).sum()))
    power = np.zeros_like(lam)
    if m:
        sq = np.sqrt(lam[:m])
        cs = np.cumsum(sq)
        for k in range(m, 0, -1):            # the largest active set whose weakest member gets power
            t = (total_power + k * s2) / cs[k - 1]
            if t * sq[k - 1] > s2:
                power[:k] = t * sq[:k] - s2
                break
    mse = lam.copy()
    sel = power > 0
    mse[sel] = lam[sel] * s2 / (power[sel] + s2)
    return LinearAllocation(power, mse, float(mse.sum()))


@dataclass(frozen=True)
class LloydMax:
    """Optimal fixed-rate scalar quantiser of ``N(0, 1)``: ``2**bits`` levels, the interior
    thresholds (``2**bits - 1``) and the MSE per sample.

    Examples
    --------
    >>> q = lloyd_max_gaussian(1)
    >>> q.levels.round(4).tolist(), q.thresholds.tolist(), round(q.mse, 4)   # +-sqrt(2/pi)
    ([-0.7979, 0.7979], [0.0], 0.3634)
    """

    bits: int
    thresholds: np.ndarray
    levels: np.ndarray
    mse: float


def _cell_stats(a: np.ndarray, b: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mass, first and second moments of N(0,1) on the cells [a, b)."""
    from scipy.special import ndtr

    fa = np.where(np.isfinite(a), a, 0.0)
    fb = np.where(np.isfinite(b), b, 0.0)
    pa = np.where(np.isfinite(a), np.exp(-0.5 * fa * fa) / math.sqrt(2 * math.pi), 0.0)
    pb = np.where(np.isfinite(b), np.exp(-0.5 * fb * fb) / math.sqrt(2 * math.pi), 0.0)
    # mass from the tail nearer to the cell, for precision far out
    mass = np.where(a >= 0, ndtr(-a) - ndtr(-b), ndtr(b) - ndtr(a))
    m1 = pa - pb
    am = fa * pa
    bm = fb * pb
    m2 = mass + am - bm
    return mass, m1, m2


@functools.lru_cache(maxsize=None)
def lloyd_max_gaussian(bits: int, iterations: int = 1000) -> LloydMax:
    """Lloyd-Max quantiser of ``N(0, 1)`` with ``bits`` bits (1..12), by Lloyd's algorithm on the
    exact Gaussian cell moments, started from the Panter-Dite compander (thresholds at the
    quantiles of ``N(0, 3)``, near-optimal at high rate). Cached.

    Known values (Max, 1960): 1 bit 0.3634, 2 bits 0.1175, 3 bits 0.03454, 4 bits 0.009497.

    Examples
    --------
    >>> [round(lloyd_max_gaussian(b).mse, 4) for b in (1, 2, 3)]             # Max (1960)
    [0.3634, 0.1175, 0.0345]
    """
    from scipy.special import ndtri

    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral) or not 1 <= bits <= 12:
        raise ValueError(f"bits must be an int in [1, 12], got {bits!r}")
    L = 2 ** int(bits)
    t = math.sqrt(3.0) * ndtri(np.arange(1, L) / L)
    for _ in range(int(iterations)):
        a = np.concatenate(([-np.inf], t))
        b = np.concatenate((t, [np.inf]))
        mass, m1, _ = _cell_stats(a, b)
        c = np.where(mass > 1e-300, m1 / np.maximum(mass, 1e-300), np.nan_to_num((a + b) / 2, posinf=0, neginf=0))
        t_new = 0.5 * (c[:-1] + c[1:])
        if np.max(np.abs(t_new - t)) < 1e-11:
            t = t_new
            break
        t = t_new
    a = np.concatenate(([-np.inf], t))
    b = np.concatenate((t, [np.inf]))
    mass, m1, m2 = _cell_stats(a, b)
    c = np.where(mass > 1e-300, m1 / np.maximum(mass, 1e-300), 0.5 * (np.nan_to_num(a, neginf=t[0] - 1)
                                                                     + np.nan_to_num(b, posinf=t[-1] + 1)))
    mse = float(np.sum(m2 - 2 * c * m1 + c * c * mass))
    return LloydMax(int(bits), t, c, max(mse, 0.0))


def greedy_bit_allocation(weights: ArrayLike, total_bits: int, distortion: Sequence[float]) -> np.ndarray:
    """Integer bits per component minimising ``sum_i w_i d(b_i)`` under ``sum_i b_i <= total_bits``.

    ``distortion[b]`` is the normalised distortion with ``b`` bits (``distortion[0] = 1``, convex and
    decreasing, e.g. the Lloyd-Max MSEs); ``len(distortion) - 1`` is the most bits a component gets.
    Each step gives one bit to the component with the largest decrease (optimal for convex ``d``).

    Examples
    --------
    >>> greedy_bit_allocation([4.0, 1.0], 3, [1.0, 0.36, 0.12, 0.035]).tolist()
    [2, 1]
    """
    import heapq

    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    d = np.asarray(distortion, dtype=np.float64)
    if isinstance(total_bits, bool) or not isinstance(total_bits, numbers.Integral) or total_bits < 0:
        raise ValueError(f"total_bits must be an int >= 0, got {total_bits!r}")
    if d.ndim != 1 or d.size < 2 or not np.all(np.diff(d) <= 0):
        raise ValueError("distortion must list d(0) >= d(1) >= ... (at least two entries)")
    bmax = d.size - 1
    bits = np.zeros(w.size, dtype=np.int64)
    heap = [(-(w[i] * (d[0] - d[1])), i) for i in range(w.size) if w[i] > 0]
    heapq.heapify(heap)
    left = int(total_bits)
    while left > 0 and heap:
        gain, i = heapq.heappop(heap)
        if -gain <= 0:
            break
        bits[i] += 1
        left -= 1
        if bits[i] < bmax:
            heapq.heappush(heap, (-(w[i] * (d[bits[i]] - d[bits[i] + 1])), i))
    return bits
