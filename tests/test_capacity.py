"""Capacities against numerical integration / Monte Carlo, and the IdealCode outage logic."""
import math

import numpy as np
import pytest
import torch
from scipy import integrate

from phy.theory.capacity import (IdealCode, awgn_capacity, instantaneous_capacity, rayleigh_ergodic_capacity,
                          rayleigh_outage_capacity)


def test_awgn_capacity_values():
    assert awgn_capacity(0.0) == pytest.approx(1.0)
    assert awgn_capacity(10 * math.log10(3)) == pytest.approx(2.0)
    arr = awgn_capacity(np.array([0.0, 10.0, 20.0]))
    assert np.allclose(arr, np.log2(1 + np.array([1.0, 10.0, 100.0])))
    with pytest.raises(TypeError):
        awgn_capacity("10")


@pytest.mark.parametrize("snr_db", [-20.0, -5.0, 0.0, 10.0, 30.0])
def test_ergodic_capacity_vs_numerical_integration(snr_db):
    s = 10 ** (snr_db / 10)
    num, _ = integrate.quad(lambda g: math.log2(1 + s * g) * math.exp(-g), 0, np.inf, limit=200)
    assert rayleigh_ergodic_capacity(snr_db) == pytest.approx(num, rel=1e-7)
    assert rayleigh_ergodic_capacity(snr_db) < awgn_capacity(snr_db)  # Jensen


def test_ergodic_capacity_extreme_low_snr_is_finite():
    c = rayleigh_ergodic_capacity(-40.0)  # 1/snr = 1e4: asymptotic branch
    assert c == pytest.approx(1e-4 * math.log2(math.e), rel=1e-3)


def test_outage_capacity_definition():
    for snr_db, eps in [(10.0, 0.01), (20.0, 0.1), (0.0, 0.5)]:
        c = rayleigh_outage_capacity(snr_db, eps)
        s = 10 ** (snr_db / 10)
        # P(log2(1 + g s) < c) for g ~ Exp(1)
        assert 1 - math.exp(-(2 ** c - 1) / s) == pytest.approx(eps, rel=1e-9)
    g = torch.distributions.Exponential(1.0).sample((400_000,)).double()
    c = rayleigh_outage_capacity(10.0, 0.05)
    frac = (torch.log2(1 + 10 * g) < c).double().mean().item()
    assert abs(frac - 0.05) < 4 * math.sqrt(0.05 * 0.95 / 400_000)
    with pytest.raises(ValueError, match="outage"):
        rayleigh_outage_capacity(10.0, 1.5)


def test_ideal_code_fixed_rate_modes():
    code = IdealCode(100, capacity="awgn")
    assert code.max_payload(0.0) == 100
    assert code.max_payload(10 * math.log10(3)) == 200
    assert not bool(code.is_outage(100, 0.0))
    assert bool(code.is_outage(101, 0.0))
    assert code.min_channel_uses(300, 10 * math.log10(3)) == 150
    out = code.is_outage(150, torch.tensor([0.0, 3.0, 10.0]))
    assert out.tolist() == [True, False, False]  # 100, 158, 345 bits fit
    erg = IdealCode(50, capacity="rayleigh_ergodic")
    assert erg.max_payload(10.0) == math.floor(50 * rayleigh_ergodic_capacity(10.0))
    outc = IdealCode(50, capacity="rayleigh_outage", outage=0.1)
    assert outc.max_payload(10.0) == math.floor(50 * rayleigh_outage_capacity(10.0, 0.1))


def test_ideal_code_instantaneous_block_fading():
    n = 8
    code = IdealCode(n, capacity="instantaneous")
    h = torch.tensor([[1.0 + 0j] * n, [0.1 + 0j] * n, [0.0 + 2j] * n], dtype=torch.complex64)
    mi = instantaneous_capacity(h, 10.0, n)
    expect = torch.tensor([n * math.log2(11), n * math.log2(1.1), n * math.log2(41)], dtype=torch.float64)
    assert torch.allclose(mi, expect)
    assert code.is_outage(20, 10.0, h).tolist() == [False, True, False]
    assert code.is_outage(42, 10.0, h).tolist() == [True, True, False]   # 27.7, 1.1, 42.9 bits
    # h = None is AWGN
    assert bool(code.is_outage(27, 10.0)) is False and bool(code.is_outage(28, 10.0)) is True
    with pytest.raises(ValueError, match="n=8"):
        code.is_outage(10, 10.0, torch.ones(2, 4, dtype=torch.complex64))


def test_ideal_code_bad_input():
    with pytest.raises(ValueError, match="n"):
        IdealCode(0)
    with pytest.raises(ValueError, match="capacity"):
        IdealCode(10, capacity="shannon")
    with pytest.raises(ValueError, match="payload_bits"):
        IdealCode(10).is_outage(-1, 0.0)
