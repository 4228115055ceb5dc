"""phy.channel: measured noise, SNR and fading statistics against the package convention,
uncoded 16-QAM BER against closed forms, reproducibility and input checks."""
import math

import numpy as np

import pytest
import torch
from scipy import integrate, special

from phy.channel.base import Channel, ChannelOutput, complex_normal
from phy.channel.callable_channel import CallableChannel
from phy.channel.flat import AWGN, FlatFading, Rayleigh, Rician
from phy.channel.registry import CHANNELS, make_channel
from phy.channel.tdl import SionnaTDL
from phy.utils.conventions import ebno_db_to_esno_db, snr_db_to_no
from phy.mimo.equalization import equalize

N_SYM = 1_000_000


def qpsk(n, seed=0, dtype=torch.complex64):
    """Unit-energy QPSK symbols (|x|^2 = 1 exactly), shape [n]."""
    g = torch.Generator().manual_seed(seed)
    bits = torch.randint(0, 2, (n, 2), generator=g).to(torch.float64)
    z = torch.complex((1 - 2 * bits[:, 0]), (1 - 2 * bits[:, 1])) / math.sqrt(2)
    return z.to(dtype)


def esno_db(x, y, h=None):
    """Empirical Es/N0 [dB] = mean |h x|^2 / mean |y - h x|^2."""
    s = x if h is None else h * x
    return 10 * math.log10(s.abs().pow(2).mean().item() / (y - s).abs().pow(2).mean().item())


# --------------------------------------------------------------------------------------------
# noise and SNR convention
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 20.0])
def test_awgn_measured_snr_and_noise_per_real_dimension(snr_db):
    x = qpsk(N_SYM).reshape(1000, 1000)
    no = snr_db_to_no(snr_db)
    out = AWGN(seed=1)(x, no)
    assert isinstance(out, ChannelOutput) and out.h is None and out.y.dtype == torch.complex64
    n = (out.y - x).to(torch.complex128)
    # empirical Es/N0 within 0.05 dB of the requested value (1e6 symbols: std ~ 0.004 dB)
    assert abs(esno_db(x, out.y) - snr_db) < 0.05
    # N0/2 per real dimension, independent and zero mean (circular symmetry: E[n^2] = 0)
    var_re, var_im = n.real.var().item(), n.imag.var().item()
    for v in (var_re, var_im):
        assert v == pytest.approx(no / 2, rel=0.01)  # 5 sigma = 0.7 %
    assert abs(n.mean().item()) < 5 * math.sqrt(no / N_SYM)
    assert abs((n * n).mean().item()) < 5 * no / math.sqrt(N_SYM)
    torch.testing.assert_close(out.no, torch.tensor(no, dtype=torch.float32))


def test_awgn_per_example_noise_power():
    x = qpsk(400_000).reshape(4, 100_000)
    no = torch.tensor([[1.0], [0.1], [0.01], [0.0]])
    out = AWGN(seed=2)(x, no)
    measured = (out.y - x).abs().pow(2).mean(-1)
    torch.testing.assert_close(measured[:3], no[:3, 0], rtol=0.02, atol=0)
    assert measured[3].item() == 0.0  # N0 = 0 is noiseless
    assert torch.equal(out.y[3], x[3])


def test_complex128_supported():
    x = qpsk(200_000, dtype=torch.complex128).reshape(2, -1)
    for ch in (AWGN(seed=0), Rayleigh(seed=0), Rician(k_factor=2.0, seed=0)):
        out = ch(x, 0.5)
        assert out.y.dtype == torch.complex128 and out.no.dtype == torch.float64
        assert out.h is None or out.h.dtype == torch.complex128
        assert abs(esno_db(x, out.y, out.h) - 10 * math.log10(2.0)) < 0.05


@pytest.mark.parametrize("block_length", [1, 8])
def test_rayleigh_statistics(block_length):
    x = qpsk(N_SYM).reshape(100, 10_000)
    out = Rayleigh(block_length=block_length, seed=3)(x, no=0.1)
    h = out.h.to(torch.complex128)
    assert h.shape == x.shape
    blocks = h.reshape(100, -1, block_length)
    # constant within blocks
    assert torch.equal(blocks, blocks[..., :1].expand_as(blocks))
    hb = blocks[..., 0].reshape(-1)  # one draw per block
    m = hb.numel()
    # E|h|^2 = 1 (|h|^2 ~ Exp(1): std of the mean 1/sqrt(m)); CN(0,1): 1/2 per real dimension
    assert abs(hb.abs().pow(2).mean().item() - 1) < 5 / math.sqrt(m)
    assert abs(hb.real.var().item() - 0.5) < 5 * 0.5 * math.sqrt(2 / m)
    assert abs(hb.imag.var().item() - 0.5) < 5 * 0.5 * math.sqrt(2 / m)
    assert abs(hb.mean().item()) < 5 / math.sqrt(m)
    # independent across blocks: correlation of consecutive blocks ~ 0
    b = blocks[..., 0]
    corr = (b[:, 1:] * b[:, :-1].conj()).mean().abs().item()
    assert corr < 5 / math.sqrt(b[:, 1:].numel())
    # the SNR convention holds after fading: E|hx|^2 / N0 = Es/N0 on average
    assert abs(esno_db(x, out.y, out.h) - 10.0) < 0.05


def test_block_length_must_divide_symbols():
    with pytest.raises(ValueError, match=r"block_length=3 must divide the number of channel uses; x has n=8"):
        Rayleigh(block_length=3, seed=0)(torch.ones(2, 8, dtype=torch.complex64), 0.1)
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="block_length must be an int in"):
            Rayleigh(block_length=bad)


@pytest.mark.parametrize("k_factor", [0.5, 3.0, 10.0])
def test_rician_statistics(k_factor):
    x = qpsk(N_SYM).reshape(10, -1)
    out = Rician(k_factor=k_factor, seed=4)(x, no=0.01)
    h = out.h.to(torch.complex128).reshape(-1)
    m = h.numel()
    assert abs(h.abs().pow(2).mean().item() - 1) < 0.005
    los = math.sqrt(k_factor / (k_factor + 1))
    assert abs(h.real.mean().item() - los) < 5 * math.sqrt(0.5 / (k_factor + 1) / m)
    assert abs(h.imag.mean().item()) < 5 * math.sqrt(0.5 / (k_factor + 1) / m)
    scatter = h - los
    assert scatter.abs().pow(2).mean().item() == pytest.approx(1 / (k_factor + 1), rel=0.01)
    # line-of-sight phase rotates the mean
    h2 = Rician(k_factor=k_factor, los_phase=math.pi / 2, seed=4)(x[:1], no=0.01).h
    assert abs(h2.mean().item() - 1j * los) < 0.01
    with pytest.raises(ValueError, match="k_factor must be a finite number >= 0"):
        Rician(k_factor=-1.0)
    with pytest.raises(ValueError, match="k_factor"):
        Rician(k_factor=float("inf"))


def test_rayleigh_is_rician_with_k_zero():
    x = qpsk(1000).reshape(10, 100)
    a = Rayleigh(seed=9)(x, 0.1)
    b = FlatFading(k_factor=0.0, seed=9)(x, 0.1)
    assert torch.equal(a.h, b.h) and torch.equal(a.y, b.y)


@pytest.fixture(scope="module")
def tdl_outputs():
    x = qpsk(64 * 512).reshape(64, 512)  # 64 examples, 8 OFDM symbols of 64 subcarriers
    ch = SionnaTDL("A", delay_spread=300e-9, fft_size=64, max_speed=10.0, seed=5)
    out1 = ch(x, no=0.05)
    out2 = SionnaTDL("A", delay_spread=300e-9, fft_size=64, max_speed=10.0, seed=5)(x, no=0.05)
    out3 = SionnaTDL("A", delay_spread=300e-9, fft_size=64, max_speed=10.0, seed=6)(x, no=0.05)
    ch.reset()
    out4 = ch(x, no=0.05)
    return x, out1, out2, out3, out4


def test_sionna_tdl_power_and_reproducibility(tdl_outputs):
    x, out1, out2, out3, out4 = tdl_outputs
    h = out1.h
    assert h.shape == x.shape and h.dtype == torch.complex64
    assert abs(h.abs().pow(2).mean().item() - 1) < 0.01
    assert torch.equal(out1.y, out2.y) and torch.equal(out1.h, out2.h)  # same seed -> identical
    assert torch.equal(out1.y, out4.y)  # reset() restarts the stream
    assert not torch.allclose(out1.h, out3.h)  # other seed -> other channel
    # frequency selective but correlated: adjacent subcarriers closer than far-apart ones
    grid = h.reshape(64, 8, 64)
    near = (grid[..., 1:] - grid[..., :-1]).abs().pow(2).mean().item()
    far = (grid[..., 32:] - grid[..., :32]).abs().pow(2).mean().item()
    assert near < 0.2 * far
    assert abs(esno_db(x, out1.y, out1.h) - 10 * math.log10(1 / 0.05)) < 0.1


def test_sionna_tdl_checks_fft_size():
    with pytest.raises(ValueError, match="fft_size=64 must divide the number of channel uses"):
        SionnaTDL(fft_size=64, seed=0)(torch.ones(2, 100, dtype=torch.complex64), 0.1)
    with pytest.raises(ValueError, match="fft_size must be a positive int"):
        SionnaTDL(fft_size=0)


# --------------------------------------------------------------------------------------------
# uncoded 16-QAM BER vs closed forms
# --------------------------------------------------------------------------------------------
def qfunc(x):
    return 0.5 * special.erfc(x / math.sqrt(2))


def ber_16qam_awgn(esno):
    """Exact BER of Gray 16-QAM with nearest-point decisions (two Gray 4-PAM per dimension).

    Per dimension the levels are (+-1, +-3)/sqrt(10), noise std sqrt(N0/2); with
    d = sqrt(Es / (5 N0)) the sign bit errs w.p. (Q(d) + Q(3d))/2 and the magnitude bit w.p.
    (2Q(d) + Q(3d) - Q(5d))/2, so Pb = (3Q(d) + 2Q(3d) - Q(5d))/4.
    """
    d = math.sqrt(esno / 5)
    return (3 * qfunc(d) + 2 * qfunc(3 * d) - qfunc(5 * d)) / 4


def avg_q_rayleigh(c, mean_snr):
    """E[Q(sqrt(c g))] for g ~ Exp(mean mean_snr): (1 - sqrt(c m / (2 + c m))) / 2."""
    return 0.5 * (1 - math.sqrt(c * mean_snr / (2 + c * mean_snr)))


def ber_16qam_rayleigh(esno):
    """Per-symbol Rayleigh + perfect-CSI ZF: average of the AWGN BER over |h|^2 ~ Exp(1)."""
    return (3 * avg_q_rayleigh(1 / 5, esno) + 2 * avg_q_rayleigh(9 / 5, esno) - avg_q_rayleigh(25 / 5, esno)) / 4


def test_closed_forms_against_independent_computations():
    # 4-PAM Gray BER by direct enumeration of the decision regions
    for esno_db_ in (2.0, 8.0, 14.0):
        esno = 10 ** (esno_db_ / 10)
        sigma = math.sqrt(1 / (2 * esno))
        levels = [-3, -1, 1, 3]
        labels = {-3: (0, 0), -1: (0, 1), 1: (1, 1), 3: (1, 0)}
        edges = [-math.inf, -2, 0, 2, math.inf]
        errs = 0.0
        for s in levels:
            for lo, hi, r in zip(edges[:-1], edges[1:], levels):
                p = (qfunc((lo - s) / math.sqrt(10) / sigma) - qfunc((hi - s) / math.sqrt(10) / sigma))
                errs += p * sum(a != b for a, b in zip(labels[s], labels[r]))
        assert ber_16qam_awgn(esno) == pytest.approx(errs / 8, rel=1e-9)
        # Rayleigh average by numerical integration over the exponential SNR distribution
        num, _ = integrate.quad(lambda g: ber_16qam_awgn(g * esno) * math.exp(-g), 0, math.inf,
                                epsabs=1e-13, limit=200)
        assert ber_16qam_rayleigh(esno) == pytest.approx(num, rel=1e-6)


@pytest.fixture(scope="module")
def qam16():
    from sionna.phy.mapping import Demapper, Mapper

    return Mapper("qam", 4), Demapper("maxlog", "qam", 4, hard_out=True)


def _simulate_ber(qam16, channel, ebno_db, n_sym, seed):
    mapper, demapper = qam16
    g = torch.Generator().manual_seed(seed)
    bits = torch.randint(0, 2, (8, n_sym * 4 // 8), generator=g).float()
    x = mapper(bits)
    assert abs(x.abs().pow(2).mean().item() - 1) < 0.01  # unit energy, as the convention wants
    no = snr_db_to_no(ebno_db_to_esno_db(ebno_db, bits_per_symbol=4))
    out = channel(x, no)
    x_hat, no_eff = equalize(out.y, out.h, out.no, "zf")
    bits_hat = demapper(x_hat, no_eff.expand_as(x_hat) if isinstance(no_eff, torch.Tensor) else no_eff)
    return (bits_hat != bits).double().mean().item(), bits.numel()


@pytest.mark.parametrize("ebno_db", [0.0, 4.0, 8.0])
def test_16qam_ber_awgn_matches_closed_form(qam16, ebno_db):
    ber, n_bits = _simulate_ber(qam16, AWGN(seed=11), ebno_db, 300_000, seed=int(ebno_db))
    p = ber_16qam_awgn(10 ** (ebno_db_to_esno_db(ebno_db, 4) / 10))
    sigma = math.sqrt(p * (1 - p) / n_bits)
    assert p * n_bits > 300  # enough errors for a tight bound
    assert abs(ber - p) < 5 * sigma, (ber, p, sigma)


@pytest.mark.parametrize("ebno_db", [5.0, 15.0, 25.0])
def test_16qam_ber_rayleigh_zf_matches_closed_form(qam16, ebno_db):
    ber, n_bits = _simulate_ber(qam16, Rayleigh(seed=12), ebno_db, 300_000, seed=100 + int(ebno_db))
    p = ber_16qam_rayleigh(10 ** (ebno_db_to_esno_db(ebno_db, 4) / 10))
    sigma = math.sqrt(p * (1 - p) / n_bits)
    assert p * n_bits > 300
    assert abs(ber - p) < 5 * sigma, (ber, p, sigma)


# --------------------------------------------------------------------------------------------
# reproducibility and the registry
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["awgn", "rayleigh", "rician"])
def test_same_seed_bit_identical_and_reset(name):
    x = qpsk(4096).reshape(4, 1024)
    a = make_channel(name, seed=7)
    b = make_channel(name, seed=7)
    ya1, yb1 = a(x, 0.1), b(x, 0.1)
    assert torch.equal(ya1.y, yb1.y)
    ya2 = a(x, 0.1)
    assert not torch.equal(ya1.y, ya2.y)  # the stream moves on
    a.reset()
    assert torch.equal(a(x, 0.1).y, ya1.y)
    a.reset(8)
    assert a.seed == 8 and not torch.equal(a(x, 0.1).y, ya1.y)
    # the global torch RNG is not touched
    torch.manual_seed(0)
    ref = torch.rand(3)
    torch.manual_seed(0)
    a(x, 0.1)
    assert torch.equal(torch.rand(3), ref)


def test_registry_and_make_channel():
    assert {"awgn", "rayleigh", "rician", "tdl"} <= set(CHANNELS)
    ch = make_channel("Rayleigh", block_length=4, seed=0)
    assert isinstance(ch, Rayleigh) and ch.block_length == 4
    assert make_channel(ch) is ch
    assert isinstance(make_channel("tdl", fft_size=16, seed=0), SionnaTDL)
    with pytest.raises(ValueError, match=r"unknown channel 'foo'"):
        make_channel("foo")
    with pytest.raises(TypeError, match="channel must be a name or a Channel, got int"):
        make_channel(3)
    with pytest.raises(TypeError, match="seed must be an int or None"):
        AWGN(seed=1.5)


def test_complex_normal_variance():
    g = torch.Generator().manual_seed(0)
    z = complex_normal((500_000,), g, variance=2.0)
    assert z.dtype == torch.complex64
    assert z.real.var().item() == pytest.approx(1.0, rel=0.02)
    assert z.imag.var().item() == pytest.approx(1.0, rel=0.02)


def test_callable_channel():
    def fn(x, no, gen):
        h = torch.full_like(x, 2.0)
        return h * x + complex_normal(x.shape, gen, x.dtype) * torch.sqrt(no), h

    ch = CallableChannel(fn, name="double", pass_generator=True, seed=0)
    assert isinstance(ch, Channel)
    x = qpsk(200_000).reshape(2, -1)
    out = ch(x, 0.5)
    assert abs(esno_db(x, out.y, out.h) - 10 * math.log10(4 / 0.5)) < 0.05
    with pytest.raises(ValueError, match="must return complex y of shape"):
        CallableChannel(lambda x, no: x.real)(x, 0.1)
    with pytest.raises(ValueError, match="must return complex y of shape"):
        CallableChannel(lambda x, no: x[:, :10])(x, 0.1)
    with pytest.raises(ValueError, match="returned h that does not broadcast"):
        CallableChannel(lambda x, no: (x, torch.ones(3, 7, dtype=x.dtype)))(x, 0.1)
    with pytest.raises(TypeError, match="fn must be callable"):
        CallableChannel(5)


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ch", [AWGN(seed=0), Rayleigh(seed=0), Rician(seed=0)])
def test_channel_bad_input(ch):
    x = torch.ones(2, 8, dtype=torch.complex64)
    with pytest.raises(TypeError, match="x must be complex"):
        ch(torch.ones(2, 8), 0.1)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        ch([1j, 2j], 0.1)
    bad = x.clone()
    bad[0, 3] = complex("nan")
    with pytest.raises(ValueError, match="x must be finite"):
        ch(bad, 0.1)
    bad[0, 3] = complex(float("inf"), 0)
    with pytest.raises(ValueError, match="x must be finite"):
        ch(bad, 0.1)
    with pytest.raises(ValueError, match=r"no \(noise power N0\) must be >= 0"):
        ch(x, -0.1)
    with pytest.raises(ValueError, match=r"no \(noise power N0\) must not be NaN"):
        ch(x, float("nan"))
    with pytest.raises(ValueError, match=r"no \(noise power N0\) must be finite"):
        ch(x, float("inf"))
    with pytest.raises(TypeError, match=r"no \(noise power N0\) must be a real number or tensor, got str"):
        ch(x, "0.1")
    with pytest.raises(TypeError, match=r"no \(noise power N0\) must be a real number or tensor, got list"):
        ch(x, [0.1, 0.2])
    with pytest.raises(TypeError, match=r"no \(noise power N0\) must be real"):
        ch(x, torch.tensor(0.1j))
    with pytest.raises(ValueError, match=r"no \(noise power\) of shape \(3, 1\) must broadcast to x of shape"):
        ch(x, torch.full((3, 1), 0.1))
    with pytest.raises(ValueError, match=r"no \(noise power\) of shape \(2, 8, 1\) must broadcast"):
        ch(x, torch.full((2, 8, 1), 0.1))  # would silently grow y


# --------------------------------------------------------------------------------------------
# `semcom channel`
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["--channel", "awgn", "--snr-db", "10"],
    ["--channel", "rayleigh(block_length=4)", "--snr-db", "3"],
    ["--channel", "rician(k_db=3)", "--snr-db", "15"],
])
def test_cli_channel_check_reports_measured_snr(capsys, argv):
    import re

    from experiments.cli import main

    rc = main(["channel", *argv, "--symbols", "2e5", "--seed", "0", "--tolerance-db", "0.1"])
    text = capsys.readouterr().out
    assert rc == 0, text
    target = float(argv[3])
    measured = float(re.search(r"measured Es/N0: (-?[0-9.]+) dB", text).group(1))
    assert abs(measured - target) < 0.1
    h2 = float(re.search(r"measured E\|h\|\^2: ([0-9.]+)", text).group(1))
    assert abs(h2 - 1) < 0.02
    var_re = float(re.search(r"per real dimension: re ([0-9.e-]+)", text).group(1))
    assert var_re == pytest.approx(10 ** (-target / 10) / 2, rel=0.02)


def test_cli_channel_check_rejects_bad_symbols(capsys):
    from experiments.cli import main

    with pytest.raises(SystemExit):
        main(["channel", "--symbols", "lots"])
    assert "--symbols must be a number" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [1.7, True, "3"])
def test_reset_rejects_non_int_seed(bad):
    # the constructor refuses these; reset must not silently truncate 1.7 -> 1 or take True as 1
    ch = AWGN(seed=0)
    with pytest.raises(TypeError, match="seed"):
        ch.reset(bad)
    assert ch.seed == 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "1.0", True])
def test_rician_rejects_bad_los_phase(bad):
    # a NaN phase used to give NaN channel coefficients and NaN received symbols silently
    with pytest.raises(ValueError, match="los_phase"):
        Rician(k_factor=2.0, los_phase=bad, seed=0)


def test_broadcast_check_agrees_with_torch():
    from phy.channel.base import _broadcasts_to

    rng = np.random.default_rng(3)
    for _ in range(400):
        big = tuple(int(v) for v in rng.integers(1, 4, rng.integers(0, 4)))
        small = tuple(int(v) for v in rng.integers(1, 4, rng.integers(0, 5)))
        try:
            want = torch.broadcast_shapes(big, small) == torch.Size(big)
        except RuntimeError:
            want = False
        assert _broadcasts_to(torch.Size(small), torch.Size(big)) == want, (small, big)


@pytest.mark.parametrize("kwargs, message", [
    (dict(delay_spread=-1.0), "delay_spread must be a finite number > 0"),
    (dict(delay_spread=float("nan")), "delay_spread"),
    (dict(carrier_frequency=0.0), "carrier_frequency must be a finite number > 0"),
    (dict(subcarrier_spacing=-30e3), "subcarrier_spacing"),
    (dict(max_speed=-3.0), "max_speed must be a finite number >= 0"),
    (dict(model="Z"), "model must be one of"),
])
def test_sionna_tdl_rejects_unphysical_parameters(kwargs, message):
    from phy.channel.tdl import SionnaTDL

    with pytest.raises(ValueError, match=message):
        SionnaTDL(**kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
@pytest.mark.parametrize("make", [lambda: AWGN(device="cuda"), lambda: Rayleigh(device="cuda:0"),
                                  lambda: __import__("phy.sim").sim.LinkTrial(lambda b, snr_db: b, k=4,
                                                                                           device="cuda")])
def test_cuda_device_without_cuda_is_refused(make):
    """``device="cuda"`` on a machine without CUDA used to run on the CPU silently."""
    with pytest.raises(ValueError, match="CUDA is not available"):
        make()
