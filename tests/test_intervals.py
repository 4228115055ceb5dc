"""Confidence intervals against closed forms and their coverage by simulation."""
import math

import numpy as np
import pytest

from phy.sim.intervals import mean_interval, proportion_interval, ratio_interval


def test_mean_interval_closed_form():
    lo, hi = mean_interval([1.0, 2.0, 3.0, 4.0])
    # t_{0.975, 3} = 3.182446, s = 1.290994
    h = 3.182446305 * 1.2909944487 / 2
    assert (lo, hi) == pytest.approx((2.5 - h, 2.5 + h), rel=1e-8)
    assert mean_interval([7.0]) == (7.0, 7.0)


def test_wilson_closed_form():
    lo, hi = proportion_interval(0, 100)
    assert lo == 0.0 and hi == pytest.approx(1.96 ** 2 / (100 + 1.96 ** 2), rel=1e-3)
    lo, hi = proportion_interval(50, 100)
    assert (lo + hi) / 2 == pytest.approx(0.5) and hi - lo == pytest.approx(0.1925, abs=2e-3)


@pytest.mark.parametrize("kind", ["mean", "ratio", "proportion"])
def test_coverage_is_about_95_percent(kind):
    rng = np.random.default_rng(0)
    hits, trials = 0, 2000
    for _ in range(trials):
        if kind == "mean":
            v = rng.exponential(2.0, 60)
            lo, hi = mean_interval(v)
            truth = 2.0
        elif kind == "ratio":
            b = rng.uniform(0.5, 1.5, 80)
            a = 0.3 * b * rng.exponential(1.0, 80)
            lo, hi = ratio_interval(a, b)
            truth = 0.3
        else:
            k = rng.binomial(200, 0.07)
            lo, hi = proportion_interval(k, 200)
            truth = 0.07
        hits += lo <= truth <= hi
    assert 0.93 <= hits / trials <= 0.97


def test_bad_input():
    with pytest.raises(ValueError, match="values"):
        mean_interval([])
    with pytest.raises(ValueError, match="pair"):
        ratio_interval([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="positive sum"):
        ratio_interval([1.0], [0.0])
    with pytest.raises(ValueError, match="successes"):
        proportion_interval(5, 3)
    with pytest.raises(ValueError, match="confidence"):
        mean_interval([1.0, 2.0], confidence=1.5)
    with pytest.raises(ValueError, match="finite"):
        mean_interval([1.0, math.nan])
