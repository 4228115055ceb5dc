"""The normal approximation (phy.theory.finite_blocklength) against closed forms, published values and
independent computations of the constellation-constrained capacity and dispersion: a Monte Carlo of the
information density on the package's own 2-D QAM points, and a 2-D Gauss-Hermite quadrature."""
import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from scipy.special import logsumexp
from scipy.stats import norm

from phy.mapping.modulation import QAM
from phy.theory import finite_blocklength as fbl
from phy.theory.ratedistortion import reverse_water_filling

LOG2E = 1.0 / math.log(2.0)


def _qam_points(modulation):
    return QAM(modulation).points(dtype=torch.complex128).numpy()


def _info_density(points, x_idx, z, snr):
    """``i(x; y)`` in bits for ``y = x + z`` (complex noise of variance 1/snr), full 2-D log-sum-exp."""
    x = points[x_idx]
    y = x + z
    no = 1.0 / snr
    metric = -np.abs(y[:, None] - points[None, :]) ** 2 / no            # [N, M]
    own = -np.abs(z) ** 2 / no
    return (math.log(points.size) + own - logsumexp(metric, axis=1)) * LOG2E


def _mc_capacity_dispersion(modulation, snr_db, draws=200_000, seed=7):
    rng = np.random.default_rng(seed)
    pts = _qam_points(modulation)
    snr = 10 ** (snr_db / 10)
    idx = rng.integers(0, pts.size, draws)
    z = (rng.standard_normal(draws) + 1j * rng.standard_normal(draws)) * math.sqrt(0.5 / snr)
    i = _info_density(pts, idx, z, snr)
    return i.mean(), i.var(), i.std() / math.sqrt(draws)


def _gh_capacity_dispersion(modulation, snr_db, nodes=48):
    """2-D Gauss-Hermite over the complex noise, every constellation point (no PAM decomposition)."""
    pts = _qam_points(modulation)
    snr = 10 ** (snr_db / 10)
    t, w = np.polynomial.hermite.hermgauss(nodes)
    zr, zi = np.meshgrid(t, t, indexing="ij")
    wz = (np.outer(w, w) / math.pi).reshape(-1)
    z = (zr + 1j * zi).reshape(-1) / math.sqrt(snr)                # std 1/sqrt(2 snr) per real dimension
    vals = np.stack([_info_density(pts, np.full(z.size, j), z, snr) for j in range(pts.size)])   # [M, Z]
    mean = float((vals @ wz).mean())
    var = float((((vals - mean) ** 2) @ wz).mean())
    return mean, var


# -- Gaussian input: closed forms -------------------------------------------------------------------------------
def test_gaussian_input_is_two_real_awgn_dimensions():
    """Complex AWGN over n uses = real AWGN over 2n dimensions at the same SNR per dimension (PPV 2010, Thm 54:
    V_real = (log2 e)^2 snr (snr + 2) / (2 (snr + 1)^2), C_real = 1/2 log2(1 + snr))."""
    snr_db = np.array([-10.0, -3.0, 0.0, 7.5, 20.0])
    snr = 10 ** (snr_db / 10)
    c, v = fbl.capacity_dispersion(snr_db)
    np.testing.assert_allclose(c, 2 * 0.5 * np.log2(1 + snr), rtol=1e-12)
    np.testing.assert_allclose(v, 2 * LOG2E ** 2 * snr * (snr + 2) / (2 * (snr + 1) ** 2), rtol=1e-12)
    # high SNR: V -> (log2 e)^2
    assert fbl.capacity_dispersion(60.0).dispersion == pytest.approx(LOG2E ** 2, rel=1e-5)


def test_normal_approximation_formula_and_inverse():
    n, eps, snr_db = 192, 1e-3, 10.0
    c, v = math.log2(11.0), LOG2E ** 2 * 10 * 12 / 121
    bits = n * c - math.sqrt(n * v) * norm.isf(eps) + 0.5 * math.log2(n)
    assert fbl.normal_approx_bits(n, eps, snr_db) == pytest.approx(bits, rel=1e-12)
    assert fbl.normal_approx_rate(n, eps, snr_db) == pytest.approx(bits / n, rel=1e-12)
    assert fbl.normal_approx_bler(bits, n, snr_db) == pytest.approx(eps, rel=1e-9)
    # vectorised over k, n and SNR (broadcast), and monotone
    ks = np.arange(400, 700, 20)
    e = fbl.normal_approx_bler(ks, n, snr_db)
    assert e.shape == ks.shape and np.all(np.diff(e) > 0)
    grid = fbl.normal_approx_bler(600, np.array([[150], [300]]), np.array([5.0, 10.0, 15.0]))
    assert grid.shape == (2, 3) and np.all(np.diff(grid, axis=1) < 0) and np.all(grid[1] < grid[0])
    # the rate approaches capacity from below as n grows (the sqrt(V/n) back-off)
    r = fbl.normal_approx_rate(np.array([100, 1000, 100000]), 1e-3, 0.0)
    assert np.all(np.diff(r) > 0) and r[-1] < 1.0 and 1.0 - r[-1] < 0.02


# -- constellation inputs: published values -----------------------------------------------------------------------
@pytest.mark.parametrize("rate, ebno_db", [(1 / 3, -0.495), (1 / 2, 0.187), (2 / 3, 1.059), (3 / 4, 1.626)])
def test_qpsk_capacity_meets_the_binary_input_shannon_limits(rate, ebno_db):
    """Binary-input AWGN (BPSK per real dimension): the Eb/N0 at which a code of rate R reaches capacity,
    -0.495 / 0.187 / 1.059 / 1.626 dB for R = 1/3, 1/2, 2/3, 3/4 (the standard Shannon limits of binary codes).
    QPSK carries 2R bits per use at Eb/N0 = Es/N0 - 10 log10(2R)."""
    es = brentq(lambda s: fbl.capacity_dispersion(s, "qpsk").capacity - 2 * rate, -10, 10, xtol=1e-6)
    assert es - 10 * math.log10(2 * rate) == pytest.approx(ebno_db, abs=0.01)


def test_constellation_capacity_limits():
    for mod, bits in (("qpsk", 2), ("16qam", 4), ("64qam", 6), ("256qam", 8)):
        c, v = fbl.capacity_dispersion(np.array([-20.0, 60.0]), mod)
        g = fbl.capacity_dispersion(-20.0).capacity
        assert c[0] == pytest.approx(g, rel=2e-3)              # low SNR: any zero-mean input is Gaussian-like
        assert c[1] == pytest.approx(bits, abs=1e-9) and v[1] < 1e-9
        # below the Gaussian-input capacity at every SNR
        snrs = np.arange(-10.0, 31.0, 2.5)
        assert np.all(fbl.capacity_dispersion(snrs, mod).capacity <= fbl.capacity_dispersion(snrs).capacity + 1e-12)


# -- constellation inputs: independent computations ---------------------------------------------------------------
@pytest.mark.parametrize("mod, snr_db", [("qpsk", 0.0), ("qpsk", 5.0), ("16qam", 5.0), ("16qam", 10.0),
                                         ("64qam", 15.0), ("256qam", 20.0)])
def test_constellation_capacity_dispersion_match_monte_carlo(mod, snr_db):
    """A fixed-seed Monte Carlo of the information density on the 2-D points of phy.mapping (2e5 draws):
    capacity within 4 standard errors (and 2%), dispersion within 2%."""
    c, v = fbl.capacity_dispersion(snr_db, mod)
    c_mc, v_mc, se = _mc_capacity_dispersion(mod, snr_db)
    assert abs(c - c_mc) < max(4 * se, 1e-4) and c == pytest.approx(c_mc, rel=0.02)
    assert v == pytest.approx(v_mc, rel=0.02)


@pytest.mark.parametrize("mod, snr_db, k, n", [("qpsk", 1.0, 512, 512), ("16qam", 6.0, 512, 256),
                                               ("64qam", 10.0, 512, 1024 / 6)])
def test_normal_approx_bler_matches_a_two_dimensional_quadrature(mod, snr_db, k, n):
    """The BLER from C and V of a 2-D Gauss-Hermite quadrature over every constellation point agrees within 2%."""
    c, v = _gh_capacity_dispersion(mod, snr_db)
    ref = norm.sf((n * c - k + 0.5 * math.log2(n)) / math.sqrt(n * v))
    got = fbl.normal_approx_bler(k, n, snr_db, mod)
    assert 1e-6 < ref < 0.5
    assert got == pytest.approx(ref, rel=0.02)


def test_qam_rate_is_capped_by_the_constellation():
    assert fbl.normal_approx_bits(100, 1e-3, 60.0, "qpsk") == pytest.approx(200.0)
    assert fbl.normal_approx_bler(200, 100, 60.0, "qpsk") == 0.0        # V = 0: k <= n C + 1/2 log2 n
    assert fbl.normal_approx_bler(250, 100, 60.0, "qpsk") == 1.0


# -- separation at a finite block length ----------------------------------------------------------------------------
def test_fbl_separation_is_the_minimum_over_the_payload():
    lam = np.array([3.0, 1.0, 0.5, 0.25, 0.1])
    uses, span, snr_db = 3, 2, 6.0
    r = fbl.fbl_separation(lam, uses, snr_db, examples_per_codeword=span)
    payload = np.arange(0, 60)
    eps = np.array([0.0] + [fbl.normal_approx_bler(b, span * uses, snr_db) for b in payload[1:]])
    d = reverse_water_filling(lam, payload / span).distortion
    expected = (1 - eps) * d + eps * lam.sum()
    assert r.payload_bits == int(np.argmin(expected)) and r.bits_per_example == r.payload_bits / span
    assert r.distortion == pytest.approx(expected.min(), rel=1e-12)
    assert r.bler == pytest.approx(eps[r.payload_bits], rel=1e-12)
    # above the OPTA (infinite block length), and approaching it as the codeword spans more examples
    opta = reverse_water_filling(lam, uses * math.log2(1 + 10 ** 0.6)).distortion
    longer = [fbl.fbl_separation(lam, uses, snr_db, examples_per_codeword=s).distortion for s in (1, 10, 10000)]
    assert opta < longer[-1] < longer[1] < longer[0]
    assert longer[-1] / opta < 1.05
    # a lost codeword costs erased_distortion
    assert fbl.fbl_separation(lam, uses, -60.0).distortion == pytest.approx(lam.sum(), rel=1e-6)
    worse = fbl.fbl_separation(lam, uses, snr_db, examples_per_codeword=span, erased_distortion=2 * lam.sum())
    assert worse.distortion > r.distortion and worse.bler <= r.bler


@pytest.mark.parametrize("call, exc", [
    (lambda: fbl.capacity_dispersion(0.0, "8psk"), ValueError),
    (lambda: fbl.capacity_dispersion(0.0, 4), TypeError),
    (lambda: fbl.capacity_dispersion("0", "qpsk"), TypeError),
    (lambda: fbl.capacity_dispersion(float("nan")), ValueError),
    (lambda: fbl.capacity_dispersion(float("inf"), "qpsk"), ValueError),
    (lambda: fbl.normal_approx_bits(0, 1e-3, 0.0), ValueError),
    (lambda: fbl.normal_approx_bits(10, 1.0, 0.0), ValueError),
    (lambda: fbl.normal_approx_bler(-1, 10, 0.0), ValueError),
    (lambda: fbl.normal_approx_bler(True, 10, 0.0), TypeError),
    (lambda: fbl.fbl_separation([1.0], 0, 0.0), ValueError),
    (lambda: fbl.fbl_separation([1.0], 2, 0.0, examples_per_codeword=1.5), ValueError),
    (lambda: fbl.fbl_separation([1.0], 2, float("nan")), ValueError),
    (lambda: fbl.fbl_separation([-1.0], 2, 0.0), ValueError),
])
def test_bad_input_is_refused(call, exc):
    with pytest.raises(exc):
        call()


# -- i.i.d. Rayleigh fading (Gaussian input, receiver CSI) -------------------------------------------------------
@pytest.mark.parametrize("snr_db", [-10.0, 0.0, 10.0, 20.0, 30.0])
def test_rayleigh_dispersion_matches_a_monte_carlo_over_the_fade(snr_db):
    """C = E log2(1 + snr g), V = Var log2(1 + snr g) + (log2 e)^2 (1 - E^2[1/(1 + snr g)]), g ~ Exp(1)
    (Polyanskiy & Verdu 2011), against 2e6 fixed-seed draws of g (within 1%), and C against the closed-form
    ergodic capacity."""
    from phy.theory.capacity import rayleigh_ergodic_capacity

    snr = 10 ** (snr_db / 10)
    g = np.random.default_rng(3).exponential(size=2_000_000)
    cap = np.log2(1 + snr * g)
    v_mc = cap.var() + LOG2E ** 2 * (1 - np.mean(1 / (1 + snr * g)) ** 2)
    c, v = fbl.capacity_dispersion(snr_db, fading="rayleigh")
    assert c == pytest.approx(rayleigh_ergodic_capacity(snr_db), rel=1e-9)
    assert v == pytest.approx(v_mc, rel=0.01)
    if snr_db >= 0:   # at moderate and high SNR fading adds dispersion (at low SNR the second term shrinks)
        assert v > fbl.capacity_dispersion(snr_db).dispersion


def test_rayleigh_normal_approximation_and_separation():
    n, snr_db = 576, 10.0
    c, v = fbl.capacity_dispersion(snr_db, fading="rayleigh")
    k = 1500
    ref = norm.sf((n * c - k + 0.5 * math.log2(n)) / math.sqrt(n * v))
    assert fbl.normal_approx_bler(k, n, snr_db, fading="rayleigh") == pytest.approx(ref, rel=1e-12)
    lam = np.geomspace(1.0, 1e-3, 64)
    ray = fbl.fbl_separation(lam, 192, snr_db, examples_per_codeword=3, fading="rayleigh")
    awgn = fbl.fbl_separation(lam, 192, snr_db, examples_per_codeword=3)
    assert ray.distortion > awgn.distortion          # fading costs both capacity and dispersion
    with pytest.raises(ValueError, match="Gaussian input only"):
        fbl.capacity_dispersion(0.0, "qpsk", fading="rayleigh")
    with pytest.raises(ValueError, match="fading"):
        fbl.normal_approx_bler(10, 10, 0.0, fading="rician")
