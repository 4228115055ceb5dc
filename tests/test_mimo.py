"""MIMO flat fading and the digital MIMO link, against closed forms.

Monte Carlo intervals: channel uses are i.i.d. (per-use fading), so the bit errors of one channel use
(``Z`` in ``0..2 num_tx``) are the i.i.d. unit; the BER estimate ``mean(Z) / (2 num_tx)`` gets a CLT
interval of 4.5 estimated standard errors (a failure probability below 1e-5 per check).
"""
import itertools
import math

import numpy as np
import pytest
import torch

from phy.channel.flat import Rayleigh, Rician
from phy.channel.registry import make_channel
from phy.link.digital import DigitalLink
from phy.mimo.detection import MIMODetector, diversity_bpsk_ber, mrc, mrc_qpsk_ber, zf_qpsk_ber
from phy.mapping.modulation import QAM


# --------------------------------------------------------------------------------------------
# The channel
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["auto", "torch"])
@pytest.mark.parametrize("block_length", [1, 4])
def test_one_by_one_spec_reproduces_siso_rayleigh_bit_for_bit(backend, block_length):
    x = torch.randn(8, 64, dtype=torch.complex64)
    for seed in (0, 11):
        a = make_channel(f"rayleigh(num_tx=1,num_rx=1,block_length={block_length})", seed=seed, backend=backend)
        b = Rayleigh(block_length=block_length, seed=seed, backend=backend)
        for _ in range(2):  # the stream continues identically
            oa, ob = a(x, 0.3), b(x, 0.3)
            assert oa.y.shape == (8, 64) and torch.equal(oa.y, ob.y) and torch.equal(oa.h, ob.h)
            ea, eb = a.forward_equalized(x, 0.3, "mmse"), b.forward_equalized(x, 0.3, "mmse")
            assert all(torch.equal(u, v) for u, v in zip(ea, eb))
    # and through the digital link: same decoded bits and LLRs
    bits = torch.randint(0, 2, (4, 256), generator=torch.Generator().manual_seed(0)).float()
    la = DigitalLink(make_channel("rayleigh(num_tx=1,num_rx=1)", seed=5), code="none", code_kwargs={"k": 256})
    lb = DigitalLink(Rayleigh(seed=5), code="none", code_kwargs={"k": 256})
    oa, ob = la(bits, snr_db=3.0), lb(bits, snr_db=3.0)
    assert torch.equal(oa.info["llr"], ob.info["llr"]) and oa.channel_uses == ob.channel_uses == 128


def test_mimo_shapes_power_noise_and_blocks():
    ch = make_channel("rayleigh(num_tx=2,num_rx=3,block_length=4)", seed=1)
    x = torch.randn(500, 2, 64, dtype=torch.complex64) / math.sqrt(2)
    no = torch.full((500, 1, 1), 0.2)
    out = ch(x, no)
    assert out.y.shape == (500, 3, 64) and out.h.shape == (500, 3, 2, 64)
    blocks = out.h.reshape(500, 3, 2, 16, 4)
    assert torch.equal(blocks, blocks[..., :1].expand_as(blocks))
    g = blocks[..., 0].abs().pow(2).double()
    assert abs(g.mean().item() - 1) < 5 / math.sqrt(g.numel())
    n = (out.y - torch.einsum("brtn,btn->brn", out.h, x)).to(torch.complex128)
    assert n.abs().pow(2).mean().item() == pytest.approx(0.2, rel=5 / math.sqrt(n.numel()))  # N0 per rx antenna
    with pytest.raises(ValueError, match=r"needs x of shape \[..., num_tx=2, n\]"):
        ch(torch.ones(4, 64, dtype=torch.complex64), 0.1)
    with pytest.raises(ValueError, match=r"use \[..., 1, 1\] for one N0 per example"):
        ch(x, torch.full((500, 1), 0.1))
    with pytest.raises(ValueError, match="MIMO receiver"):
        ch.forward_equalized(x, 0.1)


def test_kronecker_exponential_correlation_and_rician_mimo():
    m = 200_000
    ch = make_channel("rayleigh(num_tx=3,num_rx=3,corr_tx=0.4,corr_rx=0.7)", seed=2)
    h = ch(torch.ones(m, 3, 1, dtype=torch.complex64), 0.0).h[..., 0].to(torch.complex128)  # [m, 3, 3]
    tol = 5 / math.sqrt(m)
    emp = lambda a, b: (a * b.conj()).mean().item()  # noqa: E731
    for i, j in itertools.product(range(3), repeat=2):
        # E[h_ik h_jl^*] = R_rx[i, j] R_tx[k, l]
        for k, l in ((0, 0), (0, 2), (1, 2)):
            want = 0.7 ** abs(i - j) * 0.4 ** abs(k - l)
            assert abs(emp(h[:, i, k], h[:, j, l]) - want) < 2 * tol, (i, j, k, l)
    r = make_channel("rician(k_db=10,num_tx=2,num_rx=2,los_phase=1.0)", seed=3)
    h = r(torch.ones(m, 2, 1, dtype=torch.complex64), 0.0).h[..., 0].to(torch.complex128)
    k = 10.0
    mean = h.mean(0)
    assert torch.allclose(mean, torch.full_like(mean, math.sqrt(k / (k + 1)) * complex(math.cos(1), math.sin(1))),
                          atol=5 * math.sqrt(0.5 / (k + 1) / m))
    assert h.abs().pow(2).mean().item() == pytest.approx(1.0, abs=0.01)
    assert isinstance(r, Rician) and r.k_db == pytest.approx(10.0)


# --------------------------------------------------------------------------------------------
# Receivers: independent computations
# --------------------------------------------------------------------------------------------
def test_mrc_equals_its_definition():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(5, 3, 7, dtype=torch.complex128, generator=g)
    h = torch.randn(5, 3, 1, 7, dtype=torch.complex128, generator=g)
    x, v = mrc(y, h, torch.tensor(0.3, dtype=torch.float64))
    for b, t in ((0, 0), (4, 6)):
        hv, yv = h[b, :, 0, t].numpy(), y[b, :, t].numpy()
        assert x[b, t].item() == pytest.approx(np.vdot(hv, yv) / np.vdot(hv, hv).real)
        assert v[b, t].item() == pytest.approx(0.3 / np.vdot(hv, hv).real)


def test_ml_detector_llrs_equal_brute_force_app():
    """Sionna's ML detector through :class:`MIMODetector`: LLRs equal an independent enumeration of the
    16 QPSK vectors of a 2-stream channel (exact APP, ordering stream 0 then stream 1, MSB first)."""
    g = torch.Generator().manual_seed(1)
    q = QAM("qpsk")
    pts = q.points(dtype=torch.complex128).numpy()
    y = torch.randn(3, 2, 5, dtype=torch.complex128, generator=g)
    h = torch.randn(3, 2, 2, 5, dtype=torch.complex128, generator=g)
    no = 0.5
    llr = MIMODetector("ml", "qpsk", num_streams=2)(y, h, no).numpy()  # [3, 5, 4]
    assert llr.shape == (3, 5, 4)
    for b, t in ((0, 0), (2, 4), (1, 2)):
        H, yv = h[b, :, :, t].numpy(), y[b, :, t].numpy()
        metric, labels = [], []
        for i0, i1 in itertools.product(range(4), repeat=2):
            metric.append(-np.sum(np.abs(yv - H @ np.array([pts[i0], pts[i1]])) ** 2) / no)
            labels.append([(i0 >> 1) & 1, i0 & 1, (i1 >> 1) & 1, i1 & 1])
        metric, labels = np.array(metric), np.array(labels)
        for bit in range(4):
            one = np.logaddexp.reduce(metric[labels[:, bit] == 1])
            zero = np.logaddexp.reduce(metric[labels[:, bit] == 0])
            assert llr[b, t, bit] == pytest.approx(one - zero, rel=1e-4, abs=1e-4)


def test_mimo_link_ledger_layout_and_noiseless_decoding():
    ch = make_channel("rayleigh(num_tx=2,num_rx=2,block_length=4)", seed=0)
    link = DigitalLink(ch, code="none", code_kwargs={"k": 100}, modulation="16qam", detector="ml")
    # 100 bits -> 25 16-QAM symbols -> padded to a multiple of 2 streams x 4 (block) -> 32 symbols, 16 uses
    assert link.streams == 2 and link.channel_uses(100) == 16 and link.spectral_efficiency == 8.0
    bits = torch.randint(0, 2, (6, 100), generator=torch.Generator().manual_seed(3)).float()
    out = link(bits, snr_db=60.0)
    assert out.channel_uses == 16 and torch.equal(out.x_hat, bits)
    sym = out.info["symbols"]  # [6, num_tx, uses]: symbol i on antenna i % 2 of use i // 2
    assert sym.shape == (6, 2, 16)
    flat = QAM("16qam").modulate(torch.nn.functional.pad(bits, (0, 28)))
    assert torch.equal(sym[:, 0], flat[:, 0::2]) and torch.equal(sym[:, 1], flat[:, 1::2])
    # csi="ls": 2 orthogonal pilots per transmit antenna in each of the 4 coherence blocks (phy.mimo.csi)
    ls = DigitalLink(ch, code="none", code_kwargs={"k": 100}, modulation="16qam", csi="ls", num_pilots=2)
    assert ls.channel_uses(100) == 16 + 2 * 2 * 4
    with pytest.raises(ValueError, match="detector must be one of"):
        DigitalLink(ch, detector="sphere")
    from phy.link.digital import BSCEquivalentLink

    with pytest.raises(ValueError, match="single-antenna closed forms only"):  # not a silent SISO BER
        BSCEquivalentLink("qpsk", channel=ch)


# --------------------------------------------------------------------------------------------
# Closed forms
# --------------------------------------------------------------------------------------------
def _ber_with_interval(spec, detector, snr_db, uses, seed=0):
    """Uncoded Gray QPSK over ``spec``: (BER, half-width of the 4.5-sigma interval, uses measured)."""
    ch = make_channel(spec, seed=seed)
    nt = getattr(ch, "num_tx", 1)
    k = 2 * nt * uses
    link = DigitalLink(ch, code="none", code_kwargs={"k": k}, modulation="qpsk", detector=detector)
    bits = torch.randint(0, 2, (1, k), generator=torch.Generator().manual_seed(seed + 1)).float()
    out = link(bits, snr_db=snr_db)
    assert out.channel_uses == uses
    z = (out.x_hat != bits).double().reshape(uses, 2 * nt).sum(-1)  # errors per channel use (i.i.d.)
    ber = z.mean().item() / (2 * nt)
    half = 4.5 * z.std().item() / math.sqrt(uses) / (2 * nt)
    return ber, half


def test_diversity_formula_limits():
    # L = 1 is the Rayleigh BPSK BER (1 - mu) / 2; the high-SNR asymptote is C(2L-1, L) / (4g)^L
    g = np.array([1.0, 10.0])
    assert np.allclose(diversity_bpsk_ber(g, 1), (1 - np.sqrt(g / (1 + g))) / 2)
    for L in (1, 2, 4):
        assert diversity_bpsk_ber(1e5, L) == pytest.approx(math.comb(2 * L - 1, L) / (4e5) ** L, rel=1e-3)


@pytest.mark.parametrize("num_rx, snrs", [(1, (0.0, 10.0)), (2, (4.0, 10.0)), (4, (-2.0, 3.0))])
def test_mrc_qpsk_matches_proakis_and_has_diversity_num_rx(num_rx, snrs):
    bers = []
    for snr in snrs:
        ber, half = _ber_with_interval(f"rayleigh(num_rx={num_rx})", "lmmse", snr, 150_000)
        theory = float(mrc_qpsk_ber(snr, num_rx))
        assert abs(ber - theory) < half, (num_rx, snr, ber, theory, half)
        bers.append(ber)
    # the measured slope between the two points is the closed form's (diversity num_rx), not another order's
    decades = (snrs[1] - snrs[0]) / 10
    slope = math.log10(bers[0] / bers[1]) / decades
    want = math.log10(mrc_qpsk_ber(snrs[0], num_rx) / mrc_qpsk_ber(snrs[1], num_rx)) / decades
    other = math.log10(mrc_qpsk_ber(snrs[0], num_rx + 1) / mrc_qpsk_ber(snrs[1], num_rx + 1)) / decades
    assert abs(slope - want) < abs(slope - other)


@pytest.mark.parametrize("num_tx, num_rx, snr", [(2, 2, 10.0), (2, 2, 16.0), (2, 3, 8.0), (3, 3, 12.0)])
def test_zf_spatial_multiplexing_matches_the_chi_square_closed_form(num_tx, num_rx, snr):
    """Per-stream SNR Es/(N_t N0) times a chi-square gain with 2(N_r - N_t + 1) degrees of freedom."""
    ber, half = _ber_with_interval(f"rayleigh(num_tx={num_tx},num_rx={num_rx})", "zf", snr, 60_000)
    theory = float(zf_qpsk_ber(snr, num_tx, num_rx))
    assert abs(ber - theory) < half, (ber, theory, half)
    # and not the closed form of another diversity order
    wrong = float(diversity_bpsk_ber(10 ** (snr / 10) / (2 * num_tx), num_rx - num_tx + 2))
    assert abs(ber - wrong) > half


def test_better_detectors_beat_zf_and_kbest_is_close_to_ml():
    spec, snr = "rayleigh(num_tx=2,num_rx=2)", 10.0
    zf, _ = _ber_with_interval(spec, "zf", snr, 20_000)
    lmmse, _ = _ber_with_interval(spec, "lmmse", snr, 20_000)
    ml, half = _ber_with_interval(spec, "ml", snr, 20_000)
    kbest, half_k = _ber_with_interval(spec, "kbest", snr, 3_000)
    assert ml < lmmse < zf
    assert abs(kbest - ml) < half + half_k  # K = 16 keeps all 16 QPSK pairs: ML decisions


def test_ber_cli_mimo_detector_and_snr_axes(tmp_path, capsys):
    import csv

    from experiments.cli import main

    out = tmp_path / "ber"
    rc = main(["ber", "--code", "none", "--modulation", "qpsk", "--k", "400", "--n", "400", "--snr-type", "esno",
               "--snr-db", "10", "--target-errors", "3000", "--max-bits", "4e5", "--seed", "0", "--no-progress",
               "--channel", "rayleigh(num_tx=2,num_rx=2)", "--detector", "zf", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    (row,) = list(csv.DictReader(open(out / "ber.csv", newline="")))
    # Eb/N0 = Es/N0 - 10 log10(2 bits x 2 streams per channel use)
    assert float(row["ebno_db"]) == pytest.approx(10.0 - 10 * math.log10(4))
    ber, bits = float(row["ber"]), int(row["bits"])
    assert abs(ber - float(zf_qpsk_ber(10.0, 2, 2))) < 4.5 * math.sqrt(ber * (1 - ber) / bits) * 2  # 2: error pairs


# --------------------------------------------------------------------------------------------
# Analog MIMO link: linear per-stream equalisation
# --------------------------------------------------------------------------------------------
def _analog_nmse(spec, equalizer, snr_db, batch=2000, m=256, seed=0):
    from phy.link.analog import AnalogLink

    link = AnalogLink(make_channel(spec, seed=seed), equalizer=equalizer)
    f = torch.randn(batch, m, generator=torch.Generator().manual_seed(seed + 1))
    out = link(f, snr_db=snr_db)
    # per example: sum (f_hat - f)^2 / sum f^2 = mean |s_hat - s|^2 / P over its symbols
    per = ((out.x_hat - f).double().pow(2).sum(-1) / f.double().pow(2).sum(-1))
    return per.mean().item(), 4.5 * per.std().item() / math.sqrt(batch), out


@pytest.mark.parametrize("num_rx", [1, 2, 4])
def test_analog_lmmse_1xn_matches_the_gamma_closed_form(num_rx):
    """1 x N_r LMMSE (MRC + shrinkage): MSE/P = E[1 / (1 + snr X)], X ~ Gamma(N_r, 1) = ||h||^2."""
    from scipy.integrate import quad

    snr_db = 10.0
    snr = 10 ** (snr_db / 10)
    want = quad(lambda x: x ** (num_rx - 1) * math.exp(-x) / math.factorial(num_rx - 1) / (1 + snr * x), 0, np.inf)[0]
    nmse, half, out = _analog_nmse(f"rayleigh(num_rx={num_rx})", "mmse", snr_db)
    assert abs(nmse - want) < half, (nmse, want, half)
    assert out.channel_uses == 128


def test_analog_zf_spatial_multiplexing_closed_form_and_lmmse_beats_it():
    """N_t x N_r ZF: per-stream noise N0 N_t [(H^H H)^{-1}]_kk whose inverse is Gamma(N_r - N_t + 1), so
    MSE/P = N_t N0 / (P (N_r - N_t)) (2 x 4: N0)."""
    snr_db = 10.0
    nmse, half, out = _analog_nmse("rayleigh(num_tx=2,num_rx=4)", "zf", snr_db)
    assert out.channel_uses == 64 and out.info["symbols"].shape == (2000, 2, 64)
    assert abs(nmse - 2 * 0.1 / (4 - 2)) < half
    lm, half_lm, _ = _analog_nmse("rayleigh(num_tx=2,num_rx=4)", "mmse", snr_db)
    assert lm < nmse - half - half_lm


def test_analog_lmmse_2x2_matches_an_independent_expectation():
    """2 x 2 LMMSE: MSE/P per stream = E[(I + (snr/2) H^H H)^{-1}]_kk, estimated with NumPy draws of its own."""
    snr_db, snr = 10.0, 10.0
    rng = np.random.default_rng(5)
    H = (rng.standard_normal((400_000, 2, 2)) + 1j * rng.standard_normal((400_000, 2, 2))) / np.sqrt(2)
    inv = np.linalg.inv(np.eye(2) + snr / 2 * np.conj(np.swapaxes(H, -1, -2)) @ H)
    want = np.real(np.trace(inv, axis1=-2, axis2=-1)).mean() / 2
    nmse, half, out = _analog_nmse("rayleigh(num_tx=2,num_rx=2)", "mmse", snr_db)
    assert abs(nmse - want) < half + 4.5 * np.real(np.trace(inv, axis1=-2, axis2=-1) / 2).std() / math.sqrt(4e5)
    # the reported per-symbol error variance is the measured one, on average
    assert out.info["no_eff"].double().mean().item() == pytest.approx(nmse, rel=0.03)


def test_analog_mimo_odd_symbol_count_and_noiseless():
    from phy.link.analog import AnalogLink

    link = AnalogLink(make_channel("rayleigh(num_tx=3,num_rx=3)", seed=2), equalizer="zf")
    f = torch.randn(4, 13)  # 7 complex symbols -> 3 channel uses (2 zero symbols of padding)
    out = link(f, snr_db=200.0)
    assert out.channel_uses == link.channel_uses((13,)) == 3
    torch.testing.assert_close(out.x_hat, f, atol=1e-3, rtol=1e-3)
    # csi="ls": one pilot per transmit antenna per (per-symbol) coherence block: 3 x 3 pilots
    assert AnalogLink(make_channel("rayleigh(num_tx=3,num_rx=3)"), csi="ls").channel_uses((13,)) == 3 + 9
