"""QAM mapping/demapping (Sionna wrap) and closed-form BERs against independent computations."""
import itertools
import math

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import erfc

from phy.mapping.modulation import (MODULATIONS, QAM, bits_per_symbol, qam_ber_awgn, qam_ber_awgn_approx,
                            qam_ber_rayleigh, uncoded_ber)


def Q(x):
    return 0.5 * erfc(np.asarray(x, dtype=float) / math.sqrt(2))


def test_names_and_bits_per_symbol():
    assert [bits_per_symbol(n) for n in ("qpsk", "16qam", "64qam", "256qam")] == [2, 4, 6, 8]
    assert bits_per_symbol("16-QAM") == 4
    with pytest.raises(ValueError, match="qpsk"):
        bits_per_symbol("8psk")
    with pytest.raises(ValueError, match="256qam"):
        QAM("1024qam")
    with pytest.raises(TypeError):
        bits_per_symbol(4)
    with pytest.raises(ValueError, match="demapping"):
        QAM("qpsk", demapping="exact")


@pytest.mark.parametrize("name", list(MODULATIONS))
def test_constellation_unit_energy_gray_and_levels(name):
    q = QAM(name)
    m = q.bits_per_symbol
    pts = q.points(dtype=torch.complex128).numpy()
    assert len(pts) == 2 ** m
    assert abs(np.mean(np.abs(pts) ** 2) - 1) < 1e-9
    # Square grid: per-dimension levels are +-1, +-3, ... scaled by 1/sqrt(2(M-1)/3)
    L = 2 ** (m // 2)
    a = math.sqrt(3 / (2 * (2 ** m - 1)))
    levels = np.arange(-(L - 1), L, 2) * a
    assert np.allclose(np.sort(np.unique(np.round(pts.real, 9))), np.round(levels, 9))
    assert np.allclose(np.sort(np.unique(np.round(pts.imag, 9))), np.round(levels, 9))
    # Gray: every pair of nearest neighbours (distance 2a) differs in exactly one label bit
    for i, j in itertools.combinations(range(2 ** m), 2):
        if abs(abs(pts[i] - pts[j]) - 2 * a) < 1e-9:
            assert bin(i ^ j).count("1") == 1


@pytest.mark.parametrize("name", list(MODULATIONS))
def test_noiseless_round_trip_hard_and_soft(name):
    q = QAM(name)
    m = q.bits_per_symbol
    bits = torch.randint(0, 2, (3, 5, 24 * m // 2)).float()  # multiple of m
    bits = bits[..., : (bits.shape[-1] // m) * m]
    x = q.modulate(bits)
    assert x.dtype == torch.complex64 and x.shape == (3, 5, bits.shape[-1] // m)
    assert torch.equal(q.hard_decision(x), bits)
    llr = q.demodulate(x, 1e-3)
    assert torch.equal((llr > 0).float(), bits)  # positive LLR <=> bit 1
    # int bits and double precision are accepted
    x2 = q.modulate(bits.long(), dtype=torch.complex128)
    assert x2.dtype == torch.complex128
    assert torch.allclose(x2.to(torch.complex64), x)


def test_modulate_rejects_bad_length():
    with pytest.raises(ValueError, match="multiple of bits_per_symbol=4"):
        QAM("16qam").modulate(torch.zeros(2, 6))


def test_qpsk_llr_exact_formula():
    """Sionna QPSK: bit b -> (1 - 2b)/sqrt(2) per dimension (b0 real, b1 imag). With
    LLR = ln p(b=1|y)/p(b=0|y) and p(y|x) ~ exp(-|y-x|^2/N0):
    LLR(b0) = [(yr - 1/sqrt2)^2 - (yr + 1/sqrt2)^2]/N0 = -2 sqrt(2) yr / N0."""
    q = QAM("qpsk")
    y = torch.tensor([0.3 + 0.2j, -1.1 + 0.05j, 0.0 - 2.0j], dtype=torch.complex128)
    no = torch.tensor([0.5, 0.1, 2.0], dtype=torch.float64)
    llr = q.demodulate(y, no).reshape(3, 2)
    expect = torch.stack([-2 * math.sqrt(2) * y.real / no, -2 * math.sqrt(2) * y.imag / no], -1)
    assert torch.allclose(llr, expect, atol=1e-9)
    # maxlog is exact for QPSK as well
    assert torch.allclose(QAM("qpsk", "maxlog").demodulate(y, no).reshape(3, 2), expect, atol=1e-9)


def test_16qam_llr_vs_bruteforce():
    """Exact APP LLRs recomputed in float64 from the labelled points (log-sum-exp per bit)."""
    q = QAM("16qam")
    pts = q.points(dtype=torch.complex128).numpy()
    rng = np.random.default_rng(1)
    y = rng.normal(size=6) + 1j * rng.normal(size=6)
    no = np.array([0.05, 0.3, 1.0, 0.2, 2.0, 0.7])
    llr = q.demodulate(torch.tensor(y), torch.tensor(no)).numpy().reshape(6, 4)
    for s in range(6):
        metric = -np.abs(y[s] - pts) ** 2 / no[s]
        for b in range(4):
            ones = [metric[i] for i in range(16) if (i >> (3 - b)) & 1]
            zeros = [metric[i] for i in range(16) if not (i >> (3 - b)) & 1]
            ref = np.logaddexp.reduce(ones) - np.logaddexp.reduce(zeros)
            assert abs(llr[s, b] - ref) < 1e-8 * max(1, abs(ref))


def test_per_symbol_noise_is_used():
    q = QAM("16qam")
    y = torch.tensor([[0.4 + 0.1j, -0.2 - 0.9j]])
    no = torch.tensor([[0.1, 1.0]])
    both = q.demodulate(y, no)
    first = q.demodulate(y[:, :1], 0.1)
    second = q.demodulate(y[:, 1:], 1.0)
    assert torch.allclose(both, torch.cat([first, second], -1))


def test_ber_closed_forms_exact_values():
    for snr_db in (0.0, 6.0, 12.0, 18.0):
        s = 10 ** (snr_db / 10)
        # QPSK: Q(sqrt(Es/N0))
        assert abs(qam_ber_awgn(snr_db, "qpsk") - Q(math.sqrt(s))) < 1e-12
        # 16-QAM textbook exact Gray formula
        x = math.sqrt(s / 5)
        ref16 = (3 * Q(x) + 2 * Q(3 * x) - Q(5 * x)) / 4
        assert abs(qam_ber_awgn(snr_db, "16qam") - ref16) < 1e-12
    # array input, monotone decreasing, approx converges to exact at high SNR
    snr = np.arange(0, 31, 3.0)
    for name in MODULATIONS:
        ex = qam_ber_awgn(snr, name)
        assert ex.shape == snr.shape and np.all(np.diff(ex) < 0)
        ap = qam_ber_awgn_approx(30.0 if name != "256qam" else 34.0, name)
        exh = qam_ber_awgn(30.0 if name != "256qam" else 34.0, name)
        assert abs(ap / exh - 1) < 0.01


@pytest.mark.parametrize("name", ["qpsk", "64qam"])
def test_uncoded_ber_monte_carlo_direct(name):
    """Independent Monte Carlo (own noise, nearest-point decisions) vs the exact AWGN formula."""
    q = QAM(name)
    m = q.bits_per_symbol
    snr_db = 14.0 if name == "64qam" else 4.0
    n_sym = 60_000
    bits = torch.randint(0, 2, (n_sym * m,)).float()
    x = q.modulate(bits).to(torch.complex128)
    no = 10 ** (-snr_db / 10)
    noise = torch.randn(n_sym, 2, dtype=torch.float64) * math.sqrt(no / 2)
    y = x + torch.view_as_complex(noise)
    ber = (q.hard_decision(y) != bits).double().mean().item()
    p = qam_ber_awgn(snr_db, name)
    sigma = math.sqrt(p * (1 - p) / (n_sym * m)) * math.sqrt(m)  # bits within a symbol are correlated
    assert abs(ber - p) < 4 * sigma


@pytest.mark.parametrize("name", list(MODULATIONS))
def test_rayleigh_ber_vs_numerical_integration(name):
    for snr_db in (5.0, 15.0, 25.0):
        s = 10 ** (snr_db / 10)
        num, _ = integrate.quad(lambda g: qam_ber_awgn(10 * math.log10(max(g * s, 1e-300)), name) * math.exp(-g),
                                0, np.inf, limit=200)
        assert abs(qam_ber_rayleigh(snr_db, name) - num) < 1e-6 + 1e-4 * num
    # QPSK textbook: (1 - sqrt(snr/(2+snr)))/2
    s = 10.0
    assert abs(qam_ber_rayleigh(10.0, "qpsk") - 0.5 * (1 - math.sqrt(s / (2 + s)))) < 1e-12
    assert uncoded_ber(10.0, name, "rayleigh") == qam_ber_rayleigh(10.0, name)
    with pytest.raises(ValueError, match="channel_kind"):
        uncoded_ber(10.0, name, "rician")


@pytest.mark.parametrize("bad", [[0.5, 0.0, 0.0, 0.0], [float("nan"), 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 2.0],
                                 [0.0, 0.0, 0.0, -1.0]])
def test_modulate_rejects_non_binary_bits(bad):
    # these used to map silently to a wrong 16-QAM point (0.5/NaN read as 0, 2 -> another label,
    # -1 -> the last constellation point)
    with pytest.raises(ValueError, match="0 and 1"):
        QAM("16qam").modulate(torch.tensor(bad))


@pytest.mark.parametrize("mod", ["qpsk", "16qam", "64qam", "256qam"])
def test_default_demapper_is_the_compiled_kernel_and_equals_sionnas(mod):
    """QAM's default CPU complex64 path (phy.mapping.qam_kernels) gives Sionna's Demapper LLRs, for a
    scalar N0, one per example and one per symbol; other inputs take Sionna's path."""
    from phy.mapping import qam_kernels

    if not qam_kernels.available():
        pytest.skip("numba not installed")
    g = torch.Generator().manual_seed(1)
    q, ref = QAM(mod), QAM(mod, backend="sionna")
    y = torch.complex(torch.randn(8, 50, generator=g), torch.randn(8, 50, generator=g))
    for no in (torch.tensor(0.2), torch.rand(8, 1, generator=g) + 0.05, torch.rand(8, 50, generator=g) + 0.01):
        assert q._use_kernel(y, no)
        a, b = q.demodulate(y, no), ref.demodulate(y, no)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-4)
    assert not q._use_kernel(y.to(torch.complex128), torch.tensor(0.2))
    assert not q._use_kernel(y, torch.tensor(0.0))            # N0 = 0: Sionna's limit handling
    with pytest.raises(ValueError, match="backend='kernel'"):
        QAM(mod, backend="kernel").demodulate(y, torch.tensor(0.0))
    with pytest.raises(ValueError, match="backend"):
        QAM(mod, backend="fast")
