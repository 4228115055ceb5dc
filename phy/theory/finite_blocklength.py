"""Finite-blocklength references: the normal approximation of the maximal coding rate and of the block
error probability (pure functions, vectorised).

For ``n`` uses of a memoryless channel with capacity ``C`` and dispersion ``V`` (Polyanskiy, Poor & Verdu,
"Channel coding rate in the finite blocklength regime", IEEE Trans. IT 56(5), 2010), the largest number of
information bits a code can carry at block error probability ``eps`` is

``log2 M*(n, eps) ~= n C - sqrt(n V) Q^-1(eps) + 1/2 log2 n``

and, inverted, a code of ``k`` information bits over ``n`` uses has

``eps(k, n) ~= Q((n C - k + 1/2 log2 n) / sqrt(n V))``.

Channel: complex AWGN, ``y = x + z``, ``E|x|^2 = 1``, ``z ~ CN(0, 1/snr)``; ``snr`` is Es/N0 per complex
channel use (the package's convention), ``n`` counts complex channel uses, rates are in bits.

* ``inputs="gaussian"``: ``C = log2(1 + snr)``, ``V = (log2 e)^2 snr (snr + 2) / (snr + 1)^2`` (twice the
  real-AWGN dispersion ``(log2 e)^2 snr (snr + 2) / (2 (snr + 1)^2)`` at the same SNR per real dimension;
  PPV 2010, Theorem 54, with ``n`` complex uses = ``2n`` real ones).
* ``inputs="qpsk"``, ``"16qam"``, ``"64qam"``, ``"256qam"``: uniform input on the square QAM constellation
  (unit energy), the constellation-constrained ("coded modulation") channel. ``C = I(X; Y)`` and ``V =
  Var[i(X; Y)]``, the variance of the information density ``i(x; y) = log2 p(y|x) / p(y)`` under the
  uniform input (the dispersion of i.i.d. uniform random codes; the conditional variance
  ``E Var[i|X]`` differs from it by ``Var E[i|X]``, below 1e-3 bit^2 for these constellations). A square
  QAM is the product of two PAMs on independent real noise, so ``i = i_I + i_Q``: ``C`` and ``V`` are twice
  those of the ``sqrt(M)``-PAM at the same SNR per real dimension, integrated over the Gaussian noise with
  the trapezoidal rule on a fixed grid (step 0.01 standard deviations over +-12; the integrand is analytic,
  so the rule converges geometrically: ``C`` and ``V`` are exact to about 1e-9 for SNRs up to 60 dB).
  The third-order term ``1/2 log2 n`` is the Gaussian-input one, used for every input (the normal
  approximation as it is usually drawn for coded modulation); a constellation's rate is capped at
  ``log2 M`` bits per use.

Fading (``fading="rayleigh"``, Gaussian input only): i.i.d. Rayleigh fading from one channel use to the next,
``y = h x + z`` with ``h ~ CN(0, 1)`` known at the receiver (the package's ``rayleigh`` channel with
``block_length=1``). Polyanskiy & Verdu ("Scalar coherent fading channel: dispersion analysis", ISIT 2011):
``C = E[log2(1 + snr |h|^2)]`` (the ergodic capacity) and
``V = Var[log2(1 + snr |h|^2)] + (log2 e)^2 (1 - E^2[1 / (1 + snr |h|^2)])``, the expectations over
``|h|^2 ~ Exp(1)`` by adaptive quadrature (``scipy.integrate.quad``). Without fading the first term vanishes
and the second is the AWGN dispersion. A fade held over several uses (block fading) has a larger
dispersion that grows with the coherence time; it is not covered.

Functions
---------
* :func:`capacity_dispersion`: ``(C, V)`` per complex use for an input (and i.i.d. Rayleigh fading).
* :func:`normal_approx_bits`, :func:`normal_approx_rate`: ``log2 M*(n, eps)`` and ``log2 M* / n``.
* :func:`normal_approx_bler`: ``eps(k, n)``.
* :func:`fbl_separation`: the expected distortion of ideal separation at a finite block length: a
  Gaussian source coded at ``B`` bits (reverse water-filling), the codeword lost with the normal
  approximation's probability, minimised over ``B``.

Example
-------
>>> cd = capacity_dispersion(0.0)                     # 0 dB: C = 1 bit, V = 3/4 (log2 e)^2
>>> float(cd.capacity), round(float(cd.dispersion), 4)
(1.0, 1.561)
>>> round(float(normal_approx_rate(500, 1e-3, 0.0)), 3)           # 500 uses at 0 dB, BLER 1e-3
0.836
>>> round(float(normal_approx_bler(400, 500, 0.0)), 6)            # 400 bits in 500 uses
9.2e-05
"""
from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass
from typing import NamedTuple, Optional, Sequence, Union

import numpy as np

__all__ = ["FBL_INPUTS", "FBL_FADING", "CapacityDispersion", "capacity_dispersion", "normal_approx_bits", "normal_approx_rate",
           "normal_approx_bler", "FBLSeparation", "fbl_separation"]

#: The channel inputs of the normal approximation: Gaussian, or uniform on a square Gray QAM (unit energy).
FBL_INPUTS = ("gaussian", "qpsk", "16qam", "64qam", "256qam")

#: The fading models of the normal approximation: none (AWGN) or i.i.d. Rayleigh with receiver CSI.
FBL_FADING = ("none", "rayleigh")

_LOG2E = 1.0 / math.log(2.0)
_QAM_BITS = {"qpsk": 2, "16qam": 4, "64qam": 6, "256qam": 8}
#: trapezoidal grid of the noise integral (standard-normal units)
_Z_STEP, _Z_MAX = 0.01, 12.0


class CapacityDispersion(NamedTuple):
    """Capacity (bits per complex use) and dispersion (bits^2 per complex use) of :func:`capacity_dispersion`.

    Examples
    --------
    >>> c, v = capacity_dispersion(10.0, "qpsk")
    >>> round(float(c), 4), round(float(v), 4)
    (1.9935, 0.0206)
    """

    capacity: Union[float, np.ndarray]
    dispersion: Union[float, np.ndarray]


def _inputs(inputs: str) -> str:
    if not isinstance(inputs, str):
        raise TypeError(f"inputs must be a name (str), got {type(inputs).__name__}: {inputs!r}")
    key = inputs.lower().replace("-", "").replace("_", "")
    if key not in FBL_INPUTS:
        raise ValueError(f"unknown inputs {inputs!r}; expected one of {list(FBL_INPUTS)}")
    return key


def _real_array(x, name: str) -> np.ndarray:
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().double().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency of the package
        pass
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (numbers.Real, np.ndarray, list, tuple)):
        raise TypeError(f"{name} must be a real number or array, got {type(x).__name__}: {x!r}")
    arr = np.asarray(x, dtype=np.float64)
    if arr.dtype == bool or np.isnan(arr).any():
        raise ValueError(f"{name} must be real numbers without NaN, got {x!r}")
    return arr


def _scalar_out(value, *inputs):
    """A float when every input was a scalar, else the array."""
    if all(np.ndim(v) == 0 for v in inputs):
        return float(value)
    return np.asarray(value, dtype=np.float64)


@functools.lru_cache(maxsize=1)
def _noise_grid():
    z = np.arange(-_Z_MAX, _Z_MAX + _Z_STEP / 2, _Z_STEP)
    w = np.exp(-0.5 * z * z)
    return z, w / w.sum()


@functools.lru_cache(maxsize=4096)
def _pam_cd(m: int, snr: float):
    """``(C, V)`` of uniform ``m``-PAM (energy 1/2) on real noise of variance ``1/(2 snr)``, in bits: one
    real dimension of the ``m^2``-QAM at Es/N0 ``snr``."""
    if snr == 0.0:
        return 0.0, 0.0
    from scipy.special import logsumexp

    z, w = _noise_grid()
    a = np.arange(-(m - 1), m, 2, dtype=np.float64)
    a *= math.sqrt(2.0 * snr * 0.5 / np.mean(a * a))        # points over the noise std (unit-variance noise)
    half = a[: (m + 1) // 2]                                 # the PAM is symmetric: half of the points suffice
    d = half[:, None] - a[None, :]                           # [j, l] distances b_j - b_l
    # u = log2 sum_l exp(-(d^2 + 2 d z) / 2) >= 0: i(x_j; y) = log2 m - u
    e = -(d[:, :, None] ** 2 + 2.0 * d[:, :, None] * z[None, None, :]) / 2.0    # [j, l, z]
    mask = np.ones(d.shape, dtype=bool)
    mask[np.arange(half.size), np.arange(half.size)] = False  # l == j: the zero exponent
    others = logsumexp(np.where(mask[:, :, None], e, -np.inf), axis=1)           # [j, z]
    u = np.logaddexp(0.0, others) * _LOG2E
    weights = np.full(half.size, 2.0 / m)
    if m % 2:
        weights[-1] = 1.0 / m
    mean_u = float(weights @ (u @ w))
    var = float(weights @ (((u - mean_u) ** 2) @ w))
    return max(math.log2(m) - mean_u, 0.0), max(var, 0.0)


@functools.lru_cache(maxsize=4096)
def _rayleigh_cd(snr: float):
    """``(C, V)`` of i.i.d. Rayleigh fading with receiver CSI and Gaussian input (Polyanskiy & Verdu 2011)."""
    if snr == 0.0:
        return 0.0, 0.0
    from scipy.integrate import quad

    def expect(f):
        return quad(lambda g: math.exp(-g) * f(g), 0.0, math.inf, limit=400, epsabs=0.0, epsrel=1e-11)[0]

    c = expect(lambda g: math.log2(1.0 + snr * g))
    var = expect(lambda g: (math.log2(1.0 + snr * g) - c) ** 2)
    shrink = expect(lambda g: 1.0 / (1.0 + snr * g))
    return c, var + _LOG2E ** 2 * (1.0 - shrink ** 2)


def _fading(fading: str, inputs: str) -> str:
    if not isinstance(fading, str) or fading not in FBL_FADING:
        raise ValueError(f"fading must be one of {list(FBL_FADING)}, got {fading!r}")
    if fading != "none" and inputs != "gaussian":
        raise ValueError(f"fading={fading!r} is implemented for Gaussian input only, got inputs={inputs!r}")
    return fading


def capacity_dispersion(snr_db, inputs: str = "gaussian", fading: str = "none") -> CapacityDispersion:
    """Capacity and dispersion of the complex AWGN channel at Es/N0 ``snr_db`` with the given input.

    Parameters
    ----------
    snr_db : float or array
        Es/N0 per complex channel use, dB (any shape; ``-inf`` means no signal).
    inputs : str
        One of :data:`FBL_INPUTS`: ``"gaussian"`` (closed form) or a square QAM with uniform input
        (numerical integration, see the module docstring).
    fading : str
        One of :data:`FBL_FADING`: ``"none"`` (AWGN, default) or ``"rayleigh"`` (i.i.d. Rayleigh fading
        with receiver CSI; Gaussian input only).

    Returns
    -------
    :class:`CapacityDispersion` ``(capacity, dispersion)``: bits and bits^2 per complex use, floats for a
    scalar ``snr_db``, else arrays of its shape.

    Examples
    --------
    >>> cd = capacity_dispersion([0.0, 10.0])
    >>> cd.capacity.round(4), cd.dispersion.round(4)
    (array([1.    , 3.4594]), array([1.561 , 2.0642]))
    >>> c, v = capacity_dispersion(0.0, "qpsk")          # two BPSKs at 0 dB per real dimension
    >>> round(float(c), 4), round(float(v), 4)
    (0.9719, 1.3194)
    >>> c, v = capacity_dispersion(10.0, fading="rayleigh")  # ergodic capacity; dispersion above the AWGN 2.06
    >>> round(float(c), 4), round(float(v), 4)
    (2.9065, 3.7261)
    """
    key = _inputs(inputs)
    fade = _fading(fading, key)
    snr_arr = _real_array(snr_db, "snr_db")
    snr = 10.0 ** (snr_arr / 10.0)
    if fade == "rayleigh":
        flat = snr.reshape(-1)
        if np.isinf(flat).any():
            raise ValueError(f"snr_db must be finite for fading={fade!r}, got {snr_db!r}")
        pairs = np.array([_rayleigh_cd(float(x)) for x in flat]).reshape(flat.shape + (2,))
        c, v = pairs[..., 0].reshape(snr.shape), pairs[..., 1].reshape(snr.shape)
    elif key == "gaussian":
        c = np.log2(1.0 + snr)
        v = _LOG2E ** 2 * snr * (snr + 2.0) / (snr + 1.0) ** 2
        v = np.where(np.isinf(snr), _LOG2E ** 2, v)
    else:
        m = 2 ** (_QAM_BITS[key] // 2)
        flat = snr.reshape(-1)
        if np.isinf(flat).any():
            raise ValueError(f"snr_db must be finite for inputs={key!r}, got {snr_db!r}")
        pairs = np.array([_pam_cd(m, float(s)) for s in flat]).reshape(flat.shape + (2,))
        c = 2.0 * pairs[..., 0].reshape(snr.shape)
        v = 2.0 * pairs[..., 1].reshape(snr.shape)
    return CapacityDispersion(_scalar_out(c, snr_arr), _scalar_out(v, snr_arr))


def _check_uses(n) -> np.ndarray:
    arr = _real_array(n, "n (channel uses)")
    if (arr < 1).any() or not np.isfinite(arr).all():
        raise ValueError(f"n (channel uses) must be >= 1 and finite, got {n!r}")
    return arr


def normal_approx_bits(n, epsilon, snr_db, inputs: str = "gaussian", fading: str = "none"):
    """``log2 M*(n, eps) ~= n C - sqrt(n V) Q^-1(eps) + 1/2 log2 n`` information bits in ``n`` complex uses.

    Parameters
    ----------
    n : float or array
        Complex channel uses of the block (>= 1; need not be an integer, e.g. ``n_coded / bits_per_symbol``).
    epsilon : float or array
        Block error probability, in (0, 1).
    snr_db : float or array
        Es/N0 per complex use, dB.
    inputs : str
        One of :data:`FBL_INPUTS`.
    fading : str
        One of :data:`FBL_FADING` (see :func:`capacity_dispersion`).

    Returns
    -------
    float or array (the broadcast shape of the inputs): bits, clipped to ``[0, n log2 M]`` (``M`` the
    constellation size; no upper clip for Gaussian input).

    Examples
    --------
    >>> round(float(normal_approx_bits(100, 1e-3, 5.0)), 2)
    165.78
    """
    key = _inputs(inputs)
    n_arr = _check_uses(n)
    eps = _real_array(epsilon, "epsilon")
    if ((eps <= 0) | (eps >= 1)).any():
        raise ValueError(f"epsilon must be a probability in (0, 1), got {epsilon!r}")
    from scipy.stats import norm

    c, v = capacity_dispersion(snr_db, key, fading)
    bits = n_arr * c - np.sqrt(n_arr * v) * norm.isf(eps) + 0.5 * np.log2(n_arr)
    cap = n_arr * _QAM_BITS[key] if key in _QAM_BITS else np.inf
    return _scalar_out(np.clip(bits, 0.0, cap), n_arr, eps, _real_array(snr_db, "snr_db"))


def normal_approx_rate(n, epsilon, snr_db, inputs: str = "gaussian", fading: str = "none"):
    """The normal approximation of the maximal coding rate, ``log2 M*(n, eps) / n`` bits per complex use
    (see :func:`normal_approx_bits` for the parameters).

    Examples
    --------
    >>> import numpy as np
    >>> normal_approx_rate(np.array([100, 1000, 10000]), 1e-3, 0.0).round(3)   # -> C = 1 as n grows
    array([0.647, 0.883, 0.962])
    """
    n_arr = _check_uses(n)
    bits = normal_approx_bits(n, epsilon, snr_db, inputs, fading)
    return _scalar_out(np.asarray(bits) / n_arr, n_arr, _real_array(epsilon, "epsilon"),
                       _real_array(snr_db, "snr_db"))


def normal_approx_bler(k, n, snr_db, inputs: str = "gaussian", fading: str = "none"):
    """Block error probability of the best code of ``k`` information bits over ``n`` complex uses,
    ``eps ~= Q((n C - k + 1/2 log2 n) / sqrt(n V))``.

    Parameters
    ----------
    k : float or array
        Information bits per block (>= 0).
    n : float or array
        Complex channel uses per block (>= 1), e.g. ``coded_bits / bits_per_symbol`` of a coded chain.
    snr_db : float or array
        Es/N0 per complex use, dB.
    inputs : str
        One of :data:`FBL_INPUTS`.
    fading : str
        One of :data:`FBL_FADING` (see :func:`capacity_dispersion`).

    Returns
    -------
    float or array (the broadcast shape of the inputs), in [0, 1]. With ``V = 0`` (a constellation at
    very high SNR) the value is 0 or 1: whether ``k`` exceeds ``n C + 1/2 log2 n``.

    Examples
    --------
    >>> round(float(normal_approx_bler(512, 512, 1.0, "qpsk")), 4)   # LDPC(1024,512) size, QPSK, 1 dB
    0.0038
    """
    key = _inputs(inputs)
    k_arr = _real_array(k, "k (information bits)")
    if (k_arr < 0).any() or not np.isfinite(k_arr).all():
        raise ValueError(f"k (information bits) must be >= 0 and finite, got {k!r}")
    n_arr = _check_uses(n)
    from scipy.stats import norm

    c, v = capacity_dispersion(snr_db, key, fading)
    margin = n_arr * np.asarray(c) - k_arr + 0.5 * np.log2(n_arr)
    sd = np.sqrt(n_arr * np.asarray(v))
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = np.where(sd > 0, norm.sf(margin / np.where(sd > 0, sd, 1.0)), (margin < 0).astype(np.float64))
    return _scalar_out(eps, k_arr, n_arr, _real_array(snr_db, "snr_db"))


@dataclass
class FBLSeparation:
    """Result of :func:`fbl_separation`: the expected distortion per example (sum of squared errors), the
    codeword payload ``payload_bits`` that attains it, its share per example ``bits_per_example`` and the
    codeword's block error probability ``bler``.

    Examples
    --------
    >>> r = fbl_separation([1.0, 1.0], uses=1, snr_db=30.0)
    >>> r.payload_bits, round(r.bler, 4)                 # 6 bits, not the 9.97 bits of capacity
    (6, 0.003)
    """

    distortion: float
    payload_bits: int
    bits_per_example: float
    bler: float


def fbl_separation(eigenvalues: Sequence[float], uses: int, snr_db: float, *, examples_per_codeword: int = 1,
                   erased_distortion: Optional[float] = None, inputs: str = "gaussian",
                   fading: str = "none") -> FBLSeparation:
    """Expected distortion of ideal separation at a finite block length over complex AWGN (or i.i.d. Rayleigh
    fading, ``fading="rayleigh"``).

    ``examples_per_codeword`` examples (the codeword's span) share one codeword of ``B`` information bits over
    ``examples_per_codeword * uses`` channel uses, lost with the normal approximation's probability
    ``eps(B)`` (:func:`normal_approx_bler`); each example is a Gaussian source vector (covariance eigenvalues
    ``eigenvalues``) described with ``B / examples_per_codeword`` bits at the reverse water-filling distortion
    ``D``, and a lost example costs ``erased_distortion`` (default: the source variance ``sum(eigenvalues)``,
    the receiver's mean). Returns the minimum over integer ``B >= 0`` of
    ``(1 - eps(B)) D(B / examples_per_codeword) + eps(B) erased_distortion``.

    Parameters
    ----------
    eigenvalues : array ``[d]``
        Source covariance eigenvalues (>= 0).
    uses : int
        Complex channel uses per example.
    snr_db : float
        Es/N0 per complex use, dB.
    examples_per_codeword : int
        Examples per codeword (the codeword's span), default 1.
    erased_distortion : float, optional
        Distortion of an example whose codeword is lost (default ``sum(eigenvalues)``).
    inputs : str
        Channel input of the normal approximation (:data:`FBL_INPUTS`; default Gaussian).
    fading : str
        One of :data:`FBL_FADING` (see :func:`capacity_dispersion`).

    Returns
    -------
    :class:`FBLSeparation`.

    Examples
    --------
    >>> from phy.theory.ratedistortion import gaussian_opta_distortion
    >>> lam = [1.0] * 8
    >>> r = fbl_separation(lam, uses=4, snr_db=10.0)
    >>> opta = gaussian_opta_distortion(lam, 4 * 3.4594)
    >>> r.payload_bits, round(r.distortion, 3), round(opta, 3)       # short blocks cost distortion
    (10, 1.718, 0.727)
    """
    from phy.theory.ratedistortion import check_eigenvalues, reverse_water_filling

    lam = check_eigenvalues(eigenvalues)
    for name, value in (("uses", uses), ("examples_per_codeword", examples_per_codeword)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if isinstance(snr_db, bool) or not isinstance(snr_db, numbers.Real) or not math.isfinite(snr_db):
        raise ValueError(f"snr_db must be a finite number, got {snr_db!r}")
    total = float(lam.sum())
    if erased_distortion is None:
        erased_distortion = total
    if (isinstance(erased_distortion, bool) or not isinstance(erased_distortion, numbers.Real)
            or not erased_distortion >= 0 or not math.isfinite(erased_distortion)):
        raise ValueError(f"erased_distortion must be a finite number >= 0, got {erased_distortion!r}")
    key = _inputs(inputs)
    span = int(examples_per_codeword)
    n = span * int(uses)
    c, v = capacity_dispersion(float(snr_db), key, _fading(fading, key))
    # beyond n C + 1/2 log2 n + 12 sqrt(n V) bits the codeword is lost with probability > 1 - 1e-30
    top = int(math.ceil(n * c + 0.5 * math.log2(n) + 12.0 * math.sqrt(n * v) + 1.0))
    payload = np.arange(0, max(top, 1) + 1)
    eps = np.asarray(normal_approx_bler(payload, n, float(snr_db), key, fading), dtype=np.float64)
    eps[0] = 0.0                                             # nothing to send, nothing lost
    dist = reverse_water_filling(lam, payload / span).distortion
    expected = (1.0 - eps) * dist + eps * float(erased_distortion)
    best = int(np.argmin(expected))
    return FBLSeparation(float(expected[best]), best, best / span, float(eps[best]))
