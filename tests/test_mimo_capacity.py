"""phy.theory.mimo_capacity: the Telatar integral against the 1 x 1 closed form, the 1 x N / N x 1 closed forms
(sums of generalised exponential integrals) and Monte Carlo log-det averages; channel_rate_bits for MIMO."""
import math

import numpy as np
import pytest
import torch
from scipy.special import expn

from phy.theory.capacity import channel_rate_bits, rayleigh_ergodic_capacity
from phy.channel.registry import make_channel
from phy.theory.mimo_capacity import mimo_ergodic_capacity, mimo_instantaneous_capacity


def _simo_closed_form(rho, n):
    """E log2(1 + rho X), X ~ Gamma(n, 1): log2(e) e^{1/rho} sum_{k=1}^{n} E_k(1/rho) (Alouini & Goldsmith)."""
    return math.log2(math.e) * math.exp(1 / rho) * sum(expn(k, 1 / rho) for k in range(1, n + 1))


def test_one_by_one_is_the_siso_ergodic_capacity():
    snr = np.array([-10.0, 0.0, 10.0, 25.0])
    np.testing.assert_allclose(mimo_ergodic_capacity(snr, 1, 1), rayleigh_ergodic_capacity(snr), rtol=1e-8)


@pytest.mark.parametrize("n", [2, 4])
@pytest.mark.parametrize("snr_db", [0.0, 15.0])
def test_simo_and_miso_closed_forms(n, snr_db):
    rho = 10 ** (snr_db / 10)
    assert mimo_ergodic_capacity(snr_db, 1, n) == pytest.approx(_simo_closed_form(rho, n), rel=1e-8)
    # n x 1 with equal power rho / n per antenna (no CSIT): the same law with rho / n
    assert mimo_ergodic_capacity(snr_db, n, 1) == pytest.approx(_simo_closed_form(rho / n, n), rel=1e-8)


@pytest.mark.parametrize("nt, nr", [(2, 2), (2, 3), (4, 2)])
@pytest.mark.parametrize("snr_db", [0.0, 12.0])
def test_telatar_integral_matches_monte_carlo(nt, nr, snr_db):
    g = torch.Generator().manual_seed(nt * 10 + nr)
    h = torch.view_as_complex(torch.randn(100_000, nr, nt, 1, 2, generator=g, dtype=torch.float64) / math.sqrt(2))
    mi = mimo_instantaneous_capacity(h, snr_db)
    se = mi.std().item() / math.sqrt(mi.numel())
    assert abs(mi.mean().item() - mimo_ergodic_capacity(snr_db, nt, nr)) < 4.5 * se


def test_instantaneous_capacity_of_known_matrices():
    h = torch.zeros(2, 3, 2, 4, dtype=torch.complex64)          # [batch, num_rx=3, num_tx=2, n=4]
    h[0, 0, 0] = h[0, 1, 1] = 1.0                               # two unit parallel channels
    h[1, 0, 0] = 2.0                                            # one channel of gain 4, one dead
    mi = mimo_instantaneous_capacity(h, torch.tensor([0.0, 10.0]))
    assert mi[0].item() == pytest.approx(4 * 2 * math.log2(1 + 0.5))
    assert mi[1].item() == pytest.approx(4 * math.log2(1 + 10 / 2 * 4))
    with pytest.raises(ValueError, match="num_rx, num_tx, n"):
        mimo_instantaneous_capacity(torch.ones(3, dtype=torch.complex64), 0.0)
    with pytest.raises(ValueError, match="num_tx"):
        mimo_ergodic_capacity(0.0, 0, 2)


def test_channel_rate_bits_for_mimo_channels():
    mode, r = channel_rate_bits(make_channel("rayleigh(num_tx=2,num_rx=2)", seed=0), 10, 10.0)
    assert mode == "ergodic" and r[0] == pytest.approx(10 * mimo_ergodic_capacity(10.0, 2, 2))
    mode, r = channel_rate_bits(make_channel("rayleigh(num_tx=2,num_rx=2,block_length=5)", seed=0), 10, 10.0,
                                draws=4000)
    assert mode == "block" and r.shape == (4000,)
    assert abs(r.mean() - 10 * mimo_ergodic_capacity(10.0, 2, 2)) < 4.5 * r.std() / math.sqrt(4000)
    mode, r = channel_rate_bits(make_channel("rayleigh(num_tx=2,num_rx=2,corr_rx=0.9)", seed=0), 4, 10.0)
    assert mode == "ergodic" and r[0] < 4 * mimo_ergodic_capacity(10.0, 2, 2) * 0.97    # correlation costs rate
