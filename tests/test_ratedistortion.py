"""Rate-distortion formulas against closed forms and independent computations."""
import math

import numpy as np
import pytest

from phy.theory.ratedistortion import (distortion_rate, gaussian_opta_distortion, greedy_bit_allocation,
                                linear_power_allocation, lloyd_max_gaussian, reverse_water_filling)


def _bisection_rwf(lam, rate):
    """Independent reverse water-filling: bisection on the water level in log space."""
    lo, hi = 1e-300, float(max(lam))
    for _ in range(4000):
        th = math.sqrt(lo * hi)
        r = sum(max(0.0, 0.5 * math.log2(l / th)) for l in lam if l > 0)
        lo, hi = (th, hi) if r > rate else (lo, th)
    return sum(min(th, l) for l in lam)


@pytest.mark.parametrize("rate", [0.0, 0.3, 1.0, 7.5, 40.0, 120.0, 400.0])
def test_reverse_water_filling_matches_bisection(rate):
    lam = list(0.85 ** np.arange(64)) + [0.0, 0.0]      # rank-deficient too
    assert distortion_rate(lam, rate) == pytest.approx(_bisection_rwf(lam, rate), rel=1e-9, abs=1e-300)


def test_iid_source_closed_form_and_vectorised_rates():
    # d equal components at R bits: D = d 2^(-2R/d)
    d = 10
    rates = np.array([0.0, 5.0, 10.0, 33.3])
    r = reverse_water_filling(np.ones(d), rates)
    np.testing.assert_allclose(r.distortion, d * 2.0 ** (-2 * rates / d), rtol=1e-12)
    # Goblick: bandwidth ratio 1, R = (d/2) log2(1 + snr)  ->  D/d = 1/(1 + snr)
    for snr in (0.1, 1.0, 10.0, 1000.0):
        assert distortion_rate(np.ones(d), d / 2 * math.log2(1 + snr)) / d == pytest.approx(1 / (1 + snr))


def test_water_level_and_active_components():
    r = reverse_water_filling([4.0, 1.0, 0.25], 1.0)   # theta = 1: only the first is described
    assert float(r.theta) == pytest.approx(1.0) and int(r.active) == 1
    assert float(r.distortion) == pytest.approx(1.0 + 1.0 + 0.25)


def test_opta_expectation_is_the_mean_of_d_over_rate_draws():
    lam = [3.0, 1.0, 0.5]
    draws = np.array([0.5, 2.0, 6.0])
    assert gaussian_opta_distortion(lam, draws) == pytest.approx(np.mean([distortion_rate(lam, x) for x in draws]))


@pytest.mark.parametrize("bad", [[-1.0, 1.0], [np.nan], [], [np.inf]])
def test_bad_eigenvalues(bad):
    with pytest.raises(ValueError, match="eigenvalues"):
        distortion_rate(bad, 1.0)


def test_bad_rate():
    with pytest.raises(ValueError, match="rate_bits"):
        distortion_rate([1.0], -1.0)


def test_lloyd_max_matches_max_1960_table():
    # J. Max, "Quantizing for minimum distortion", IRE Trans. IT 1960: MSE of the N(0,1) quantiser
    for bits, mse in ((1, 0.3634), (2, 0.1175), (3, 0.03454), (4, 0.009497)):
        assert lloyd_max_gaussian(bits).mse == pytest.approx(mse, rel=1e-3)
    q = lloyd_max_gaussian(1)
    assert q.levels.tolist() == pytest.approx([-math.sqrt(2 / math.pi), math.sqrt(2 / math.pi)], rel=1e-9)
    # high-rate limit (Panter-Dite): mse 4^b -> sqrt(3) pi / 2
    assert lloyd_max_gaussian(10).mse * 4 ** 10 == pytest.approx(math.sqrt(3) * math.pi / 2, rel=3e-3)


def test_lloyd_max_monte_carlo():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(400_000)
    q = lloyd_max_gaussian(3)
    xh = q.levels[np.searchsorted(q.thresholds, x)]
    assert np.mean((x - xh) ** 2) == pytest.approx(q.mse, rel=0.02)


def test_greedy_allocation_is_optimal_by_exhaustive_search():
    w = np.array([5.0, 2.0, 0.7, 0.1])
    d = [1.0] + [lloyd_max_gaussian(b).mse for b in range(1, 6)]
    for total in range(0, 12):
        bits = greedy_bit_allocation(w, total, d)
        assert bits.sum() <= total
        best = min(sum(w[i] * d[b[i]] for i in range(4))
                   for b in np.ndindex(6, 6, 6, 6) if sum(b) <= total)
        assert sum(w[i] * d[bits[i]] for i in range(4)) == pytest.approx(best)


def test_linear_power_allocation_kkt_and_goblick():
    # i.i.d. source, ratio 1: equal powers, MSE 1/(1+snr) per component
    snr = 10.0
    a = linear_power_allocation(np.ones(8), total_power=4.0, noise_var=1 / (2 * snr), num_dims=8)
    np.testing.assert_allclose(a.power, 0.5)
    assert a.distortion / 8 == pytest.approx(1 / (1 + snr))
    # correlated: KKT conditions -- lambda_i s2 / (p_i + s2)^2 equal on the active set, smaller off it
    lam = 0.7 ** np.arange(10)
    s2 = 0.05
    a = linear_power_allocation(lam, total_power=3.0, noise_var=s2, num_dims=6)
    assert a.power.sum() == pytest.approx(3.0) and (a.power[6:] == 0).all()
    act = a.power > 0
    marg = lam * s2 / (a.power + s2) ** 2
    assert np.ptp(marg[act]) == pytest.approx(0.0, abs=1e-12)
    assert (lam[:6][~act[:6]] / s2 <= marg[act][0] + 1e-12).all()
    # no other split of the same power does better (random perturbations)
    rng = np.random.default_rng(1)
    for _ in range(200):
        p = np.abs(a.power[:6] + rng.normal(0, 0.05, 6))
        p *= 3.0 / p.sum()
        d = float(np.sum(lam[:6] * s2 / (p + s2)) + lam[6:].sum())
        assert d >= a.distortion - 1e-12
