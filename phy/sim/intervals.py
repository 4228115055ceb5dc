"""95% confidence intervals for the per-example statistics of a comparison (pure functions).

* :func:`mean_interval`: Student-t interval of a mean of i.i.d. values.
* :func:`ratio_interval`: delta-method interval of a ratio of sums ``sum(a) / sum(b)`` (e.g. an
  NMSE ``sum ||f - f_hat||^2 / sum ||f||^2`` over examples): the linearised residuals
  ``a_i - r b_i`` give ``Var(r) ~ s_u^2 / (n mean(b)^2)``.
* :func:`proportion_interval`: Wilson score interval of a proportion (stays inside [0, 1] and is
  not degenerate at 0 or 1 successes).
* :func:`clopper_pearson`: the exact binomial interval (BER/BLER counts of the Monte Carlo engine).

Sums are taken with ``math.fsum`` so results do not depend on the summation order.

Example
-------
>>> lo, hi = mean_interval([1.0, 2.0, 3.0, 4.0])
>>> round(lo, 3), round(hi, 3)
(0.446, 4.554)
>>> lo, hi = proportion_interval(0, 100)
>>> lo, round(hi, 4)
(0.0, 0.037)
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import numpy as np

__all__ = ["mean_interval", "ratio_interval", "proportion_interval", "clopper_pearson"]


def _t(n: int, confidence: float) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, n - 1))


def _values(v, name: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} must be finite")
    return a


def _check_conf(confidence: float):
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Tuple[float, float]:
    """Student-t interval of the mean (``(m, m)`` for a single value).

    Examples
    --------
    >>> lo, hi = mean_interval([1.0, 2.0, 3.0])
    >>> round(lo, 3), round(hi, 3)          # 2 -/+ t_{0.975, 2} * 1 / sqrt(3)
    (-0.484, 4.484)
    """
    _check_conf(confidence)
    a = _values(values, "values")
    n = a.size
    m = math.fsum(a) / n
    if n < 2:
        return m, m
    s = math.sqrt(math.fsum((a - m) ** 2) / (n - 1))
    h = _t(n, confidence) * s / math.sqrt(n)
    return m - h, m + h


def ratio_interval(num: Sequence[float], den: Sequence[float], confidence: float = 0.95) -> Tuple[float, float]:
    """Delta-method interval of ``sum(num) / sum(den)`` over paired per-example values.

    Examples
    --------
    >>> lo, hi = ratio_interval([1.0, 2.0, 3.0, 2.0], [2.0, 4.0, 6.0, 4.0])
    >>> round(lo, 6), round(hi, 6)          # every pair has ratio 0.5: no spread
    (0.5, 0.5)
    """
    _check_conf(confidence)
    a, b = _values(num, "num"), _values(den, "den")
    if a.shape != b.shape:
        raise ValueError(f"num and den must pair up, got {a.size} and {b.size} values")
    n = a.size
    sb = math.fsum(b)
    if not sb > 0:
        raise ValueError("den must have a positive sum")
    r = math.fsum(a) / sb
    if n < 2:
        return r, r
    u = a - r * b
    su = math.sqrt(math.fsum(u * u) / (n - 1))
    h = _t(n, confidence) * su / (math.sqrt(n) * (sb / n))
    return max(r - h, 0.0) if r >= 0 and (a >= 0).all() else r - h, r + h


def proportion_interval(successes: float, trials: int, confidence: float = 0.95) -> Tuple[float, float]:
    """Wilson score interval for ``successes / trials`` (``successes`` may be fractional, e.g. a
    sum of per-example means).

    Examples
    --------
    >>> [round(v, 4) for v in proportion_interval(5, 100)]
    [0.0215, 0.1118]
    """
    from scipy.stats import norm

    _check_conf(confidence)
    if not trials >= 1:
        raise ValueError(f"trials must be >= 1, got {trials!r}")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be in [0, trials={trials}], got {successes!r}")
    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / trials
    den = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / den
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / den
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == trials else min(1.0, centre + half)
    return lo, hi


def clopper_pearson(errors: int, trials: int, confidence: float = 0.95) -> Tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided confidence interval of a binomial proportion.

    Returns ``(nan, nan)`` for ``trials == 0``.

    Example
    -------
    >>> lo, hi = clopper_pearson(0, 1000)
    >>> lo, round(hi, 5)
    (0.0, 0.00368)
    """
    from scipy.special import betaincinv

    if trials <= 0:
        return math.nan, math.nan
    if not 0 <= errors <= trials:
        raise ValueError(f"errors must be in [0, trials={trials}], got {errors}")
    alpha = 1.0 - confidence
    lo = 0.0 if errors == 0 else float(betaincinv(errors, trials - errors + 1, alpha / 2))
    hi = 1.0 if errors == trials else float(betaincinv(errors + 1, trials - errors, 1 - alpha / 2))
    return lo, hi
