"""Estimated CSI that behaves like a receiver's (phy.mimo.csi.send_and_estimate): pilots in the data's frame pass the
same receiver oscillator, and the LS receiver equalises with the LMMSE estimate and counts the estimation error as
noise -- checked against closed forms, numerical integration and an explicit pilot computation."""
import itertools
import math

import numpy as np
import pytest
import torch
from scipy import integrate, special

from phy.channel.registry import make_channel
from phy.link.digital import DigitalLink
from phy.mapping.modulation import QAM
from phy.mimo.csi import channel_prior, lmmse_from_ls, pilot_matrix, send_and_estimate
from phy.mimo.equalization import Equalizer

_LEVELS = np.array([-3, -1, 1, 3]) / math.sqrt(10)      # Gray 16-QAM, one dimension


def _ber(link, snr_db, rows=100, width=40_000, seed=2):
    bits = torch.randint(0, 2, (rows, width), generator=torch.Generator().manual_seed(seed)).float()
    return float((link(bits, snr_db=snr_db).x_hat != bits).float().mean()), rows * width


def _qam16_ls_ber(snr_db, num_pilots, k_factor, expect_q):
    """Uncoded Gray 16-QAM with nearest-point decisions after ZF on the LMMSE estimate ``h_hat``: given ``h_hat``
    and the symbol ``x``, ``y / h_hat = x + w`` with ``w ~ CN(0, (sigma_e^2 |x|^2 + N0) / |h_hat|^2)``; each bit's
    error probability is a sum of ``Q(c / sigma)`` terms (thresholds 0 and +-2 / sqrt 10) averaged over
    ``h_hat ~ CN(mu, v w)`` with ``expect_q(c^2 / var) = E[Q(c |h_hat| / sqrt(var / 2))]``."""
    n0 = 10 ** (-snr_db / 10)
    s2, v = n0 / num_pilots, 1 / (k_factor + 1)
    se = v * s2 / (v + s2)
    r, tot = 1 / math.sqrt(10), 0.0
    for a_i, a_q in itertools.product(_LEVELS, _LEVELS):
        var = se * (a_i ** 2 + a_q ** 2) + n0
        for a in (abs(a_i), abs(a_q)):
            tot += expect_q(a * a / var)
            if a < 2 * r:
                tot += expect_q((2 * r - a) ** 2 / var) + expect_q((2 * r + a) ** 2 / var)
            else:
                tot += expect_q((a - 2 * r) ** 2 / var) - expect_q((a + 2 * r) ** 2 / var)
    return tot / 64


def test_qpsk_with_a_random_oscillator_phase_and_ls_pilots():
    """The pilots see the example's oscillator phase: the estimate absorbs it (before, the estimate was drawn around
    the unrotated h and the BER was 0.499). Equal to the unimpaired BER within Monte Carlo error."""
    kw = dict(code="none", modulation="qpsk", csi="ls", num_pilots=4)
    link = DigitalLink(make_channel("rayleigh(block_length=8,random_phase=1)", seed=0), **kw)
    ber, n = _ber(link, 30.0, rows=200, width=1600)
    ref, _ = _ber(DigitalLink(make_channel("rayleigh(block_length=8)", seed=5), **kw), 30.0, rows=200, width=1600)
    assert ber < 1e-2
    assert abs(ber - ref) < 5 * math.sqrt(2 * ref / (n / 8))       # errors come in coherence blocks of 8 symbols
    # a slow drift (CFO of 2 kHz at 1 Msym/s: 0.16 rad over a block of 4 pilots + 8 symbols) is tracked per block;
    # the same CFO unknown to a perfect-CSI receiver turns the constellation by 1.26 rad every 100 symbols
    cfo = "rayleigh(block_length=8,cfo=2000,symbol_rate=1e6)"
    ber_cfo, _ = _ber(DigitalLink(make_channel(cfo, seed=1), **kw), 30.0, rows=200, width=1600)
    perfect = dict(kw, csi="perfect")
    ber_genie, _ = _ber(DigitalLink(make_channel(cfo, seed=1), **perfect), 30.0, rows=200, width=1600)
    assert ber_cfo < 1e-2 < 0.1 < ber_genie


@pytest.mark.parametrize("nt,nr", [(1, 1), (1, 2), (2, 2)])
def test_the_pilots_share_the_frame_and_the_oscillator_of_the_data(nt, nr):
    """Noiseless, with a deterministic oscillator (phase offset + CFO): the estimate equals an explicit computation
    of the frame -- per coherence block the T = num_pilots * num_tx DFT pilots, then the L data uses, one phase per
    use -- ``H_ls = sum_k y_k p_k^H / num_pilots`` (``H M``, not ``H``), and the data are rotated at their times."""
    L, npil, blocks, cfo, rate, phi0 = 4, 2, 3, 7000.0, 1e6, 0.4
    spec = f"rayleigh(block_length={L},num_tx={nt},num_rx={nr},cfo={cfo},symbol_rate={rate},phase_offset={phi0})"
    ch = make_channel(spec, seed=3)
    shape = (2, nt, L * blocks) if (nt, nr) != (1, 1) else (2, L * blocks)
    x = torch.randn(*shape, 2, generator=torch.Generator().manual_seed(0)).mul(0.5).to(torch.float64)
    x = torch.view_as_complex(x).to(torch.complex128)
    no = torch.zeros(2, 1, 1) if len(shape) == 3 else torch.zeros(2, 1)
    out, h_hat, no_rx = send_and_estimate(ch, x, no, Equalizer("zf", csi="ls", num_pilots=npil))
    T = npil * nt
    theta = phi0 + 2 * math.pi * cfo / rate * np.arange(blocks * (T + L))
    P = pilot_matrix(nt, npil, torch.complex128).numpy()                  # [nt, T]
    H = out.h.numpy().reshape(2, nr, nt, blocks * L) if nt * nr > 1 else out.h.numpy().reshape(2, 1, 1, -1)
    xs = x.numpy().reshape(2, nt, -1)
    y_ref = np.zeros((2, nr, blocks * L), dtype=complex)
    h_ref = np.zeros((2, nr, nt, blocks * L), dtype=complex)
    for b in range(blocks):
        t0 = b * (T + L)
        Hb = H[..., b * L]                                                  # [2, nr, nt]
        Y = np.einsum("erk,k->erk", Hb @ P, np.exp(1j * theta[t0:t0 + T]))   # pilots through the oscillator
        h_ref[..., b * L:(b + 1) * L] = (Y @ P.conj().T / npil)[..., None]
        for j in range(L):
            y_ref[..., b * L + j] = (Hb @ xs[..., b * L + j, None])[..., 0] * np.exp(1j * theta[t0 + T + j])
    np.testing.assert_allclose(out.y.numpy().reshape(2, nr, -1), y_ref, atol=1e-9)
    np.testing.assert_allclose(h_hat.numpy().reshape(2, nr, nt, -1), h_ref, atol=1e-9)   # s2 = 0: no shrink
    assert float(no_rx.abs().max()) == 0.0


def test_qam16_ls_receiver_matches_the_theory_of_the_matched_receiver_on_rician_fading():
    """Rician K = 10 dB, one pilot per symbol, 15 dB: the BER equals the matched receiver's, computed by numerical
    integration over the Rician |h_hat| (the old receiver, ZF on h_ls, measured 0.0338 against 0.0274: its
    16-QAM thresholds sit on the unshrunk estimate)."""
    K, snr, npil = 10.0, 15.0, 1
    mu, v = math.sqrt(K / (K + 1)), 1 / (K + 1)
    s2 = 10 ** (-snr / 10) / npil
    vh = v * v / (v + s2)                                  # h_hat ~ CN(mu, v w), w = v / (v + s2)

    def expect_q(c2v):   # E[Q(sqrt(2 c^2 |h_hat|^2 / var))] over the Rician pdf of |h_hat|
        f = lambda a: 0.5 * special.erfc(math.sqrt(c2v) * a) * (2 * a / vh) * special.i0e(2 * a * mu / vh) \
            * math.exp(-(a - mu) ** 2 / vh)
        return integrate.quad(f, 0, mu + 12 * math.sqrt(vh), limit=200)[0]

    theory = _qam16_ls_ber(snr, npil, K, expect_q)
    link = DigitalLink(make_channel("rician(k_db=10)", seed=1), code="none", modulation="16qam", csi="ls",
                       num_pilots=npil, demapping="maxlog")
    ber, n = _ber(link, snr)
    sigma = math.sqrt(theory * (1 - theory) / (n / 4) * 4)     # bits of one symbol share its fade: n/4 fades
    assert abs(ber - theory) < 5 * sigma, (ber, theory)
    assert abs(theory - 0.0338) > 10 * sigma                   # the check tells the mismatched receiver apart


def test_qam16_ls_receiver_on_rayleigh_closed_form_and_calibrated_noise():
    """Rayleigh, one pilot per symbol, 10 dB: the BER equals the closed form (E[Q(sqrt(a g))] = (1 - sqrt(a m /
    (2 + a m))) / 2 for g = |h_hat|^2 ~ Exp(m), m = 1 / (1 + s2)), and the equaliser's noise is the error it leaves:
    E[|x_hat - x|^2 / no_eff] = 1 (ZF on h_ls with N0 / |h_ls|^2 gives 1 + 1 / num_pilots = 2)."""
    snr, npil = 10.0, 1
    m = 1 / (1 + 10 ** (-snr / 10) / npil)
    theory = _qam16_ls_ber(snr, npil, 0.0, lambda c2v: 0.5 * (1 - math.sqrt(2 * c2v * m / (2 + 2 * c2v * m))))
    link = DigitalLink(make_channel("rayleigh", seed=1), code="none", modulation="16qam", csi="ls", num_pilots=npil,
                       demapping="maxlog")
    ber, n = _ber(link, snr)
    assert abs(ber - theory) < 5 * math.sqrt(theory * (1 - theory) / (n / 4) * 4), (ber, theory)
    qam = QAM("16qam")
    bits = torch.randint(0, 2, (50, 80_000), generator=torch.Generator().manual_seed(4)).float()
    x = qam.modulate(bits)
    x_hat, no_eff, _ = Equalizer("zf", csi="ls", num_pilots=npil).transmit(make_channel("rayleigh", seed=2), x,
                                                                        torch.full((50, 1), 10 ** (-snr / 10)))
    ratio = float(((x_hat - x).abs().square() / no_eff).mean())
    assert ratio == pytest.approx(1.0, abs=0.03)


def test_lmmse_from_ls_and_the_prior():
    """The shrink and the error variance against a Monte Carlo draw; the Rician prior; bad input."""
    g = torch.Generator().manual_seed(0)
    K, s2, n = 3.0, 0.5, 400_000
    ch = make_channel(f"rician(k_db={10 * math.log10(K)},los_phase=0.3)", seed=1)
    mu, v = channel_prior(ch)
    assert abs(mu) ** 2 == pytest.approx(K / (K + 1)) and v == pytest.approx(1 / (K + 1))
    assert np.angle(mu) == pytest.approx(0.3)
    h = ch(torch.ones(1, n, dtype=torch.complex64), no=0.0).h
    e = torch.view_as_complex(torch.randn(1, n, 2, generator=g) * math.sqrt(s2 / 2))
    h_hat, err = lmmse_from_ls(h + e, s2, mu, v)
    assert float((h - h_hat).abs().square().mean()) == pytest.approx(float(err), rel=0.01)
    assert float(err) == pytest.approx(v * s2 / (v + s2))
    assert float((h - (h + e)).abs().square().mean()) > 1.5 * float(err)       # LS alone is worse
    assert channel_prior(make_channel("rician(random_phase=1)", seed=0)) == (0j, 1.0)   # phase unknown
    with pytest.raises(TypeError, match="h_ls"):
        lmmse_from_ls(torch.ones(3), 0.1)
    with pytest.raises(ValueError, match="var"):
        lmmse_from_ls(torch.ones(3, dtype=torch.complex64), 0.1, 0j, 0.0)
    with pytest.raises(ValueError, match="ls_var"):
        lmmse_from_ls(torch.ones(3, dtype=torch.complex64), -0.1)
    with pytest.raises(ValueError, match="num_tx"):
        pilot_matrix(0)
