"""phy.channel.impairments: CFO ramp and Wiener phase noise against their definitions and closed forms, the
off path bit-identical to the unimpaired channels, specs and input checks."""
import math

import pytest
import torch
from scipy.stats import norm

from phy.channel.flat import AWGN, Rayleigh
from phy.channel.registry import canonical_channel_spec, make_channel, parse_channel_spec
from phy.channel.impairments import PhaseImpairment, attach_impairment, phase_trajectory, wiener_increment_variance
from phy.link.digital import DigitalLink


def _qpsk(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    b = torch.randint(0, 2, (*shape, 2), generator=g).double()
    return torch.complex(1 - 2 * b[..., 0], 1 - 2 * b[..., 1]).to(torch.complex64) / math.sqrt(2)


@pytest.mark.parametrize("spec", ["awgn", "rayleigh", "rayleigh(block_length=4)", "rician(k_db=3)",
                                  "rayleigh(num_tx=2,num_rx=2)"])
def test_off_path_is_bit_identical_and_keeps_the_canonical_spec(spec):
    base = make_channel(spec, seed=5)
    head, _, tail = spec.partition("(")
    off_spec = f"{head}(cfo=0,phase_noise_linewidth=0,phase_offset=0,symbol_rate=1e6{',' + tail if tail else ')'}"
    off = make_channel(off_spec, seed=5)
    assert off.impairment is None and not off._forward_hooks
    assert canonical_channel_spec(off_spec) == canonical_channel_spec(spec)
    assert "cfo" not in canonical_channel_spec(spec)
    x = _qpsk((3, 2, 8)) if "num_tx" in spec else _qpsk((3, 8))
    a, b = base(x, 0.1), off(x, 0.1)
    assert torch.equal(a.y, b.y) and (a.h is None or torch.equal(a.h, b.h))
    if "num_tx" not in spec:
        for u, v in zip(base.forward_equalized(x, 0.1), off.forward_equalized(x, 0.1)):
            assert torch.equal(u, v)


def test_cfo_over_awgn_rotates_by_the_known_ramp_exactly():
    cfo, rate, phi0 = 1234.0, 1e5, 0.7
    ch = make_channel(f"awgn(cfo={cfo},symbol_rate={rate},phase_offset={phi0})", seed=0)
    x = _qpsk((4, 50))
    y = ch(x, no=0.0).y
    k = torch.arange(50, dtype=torch.float64)
    theta = phi0 + 2 * math.pi * cfo / rate * k
    torch.testing.assert_close(y, x * torch.polar(torch.ones_like(theta), theta).to(torch.complex64),
                               rtol=0, atol=2e-6)
    # with noise, de-rotating leaves exactly CN(0, N0): measured noise power within 2 %
    out = make_channel(f"awgn(cfo={cfo},symbol_rate={rate})", seed=1)(_qpsk((200, 1000)), no=0.25)
    th = 2 * math.pi * cfo / rate * torch.arange(1000, dtype=torch.float64)
    n = out.y * torch.polar(torch.ones_like(th), -th).to(torch.complex64) - _qpsk((200, 1000))
    assert n.abs().square().mean().item() == pytest.approx(0.25, rel=0.02)


@pytest.mark.parametrize("lag", [1, 10, 63])
def test_wiener_phase_difference_variance_is_2pi_linewidth_ts_k(lag):
    lw, rate = 2e3, 1e6          # 2 pi lw Ts = 0.01257 rad^2 per symbol
    ch = make_channel(f"awgn(phase_noise_linewidth={lw},symbol_rate={rate})", seed=3)
    y = ch(torch.ones(8000, 64, dtype=torch.complex64), no=0.0).y.to(torch.complex128)
    steps = torch.angle(y[:, 1:] * y[:, :-1].conj())           # exact unwrap: |step| << pi
    theta = torch.cat([torch.zeros(8000, 1, dtype=torch.float64), steps.cumsum(-1)], -1)
    assert torch.allclose(theta[:, 0], torch.zeros(8000, dtype=torch.float64))  # walk starts at 0
    d = theta[:, lag:] - theta[:, :-lag]
    var = wiener_increment_variance(lw, 1 / rate) * lag
    # one difference per example (independent): sample variance has rel. std sqrt(2/8000) = 1.6 %
    assert d[:, 0].var().item() == pytest.approx(var, rel=0.08)
    assert abs(d[:, 0].mean().item()) < 5 * math.sqrt(var / 8000)


def test_mimo_phase_is_common_to_the_receive_antennas_and_h_excludes_it():
    spec = "rayleigh(num_tx=2,num_rx=3,phase_noise_linewidth=5e4,cfo=300,symbol_rate=1e6)"
    x = _qpsk((50, 2, 40)) / math.sqrt(2)
    out = make_channel(spec, seed=7)(x, no=0.0)
    ref = Rayleigh(num_tx=2, num_rx=3, seed=7)(x, no=0.0)
    assert torch.equal(out.h, ref.h)                                   # the receiver's CSI: no impairment
    rot = out.y / ref.y                                                # e^{j theta}, [50, 3, 40]
    torch.testing.assert_close(rot.abs(), torch.ones_like(rot.abs()), rtol=0, atol=1e-4)
    torch.testing.assert_close(rot, rot[:, :1].expand_as(rot), rtol=0, atol=1e-4)   # same on every antenna
    assert rot[:, 0, 1:].angle().abs().max() > 1e-3                   # and it does rotate


def test_mean_received_energy_is_unchanged():
    spec = "rayleigh(phase_noise_linewidth=1e5,cfo=2e4,symbol_rate=1e6,phase_offset=1.0)"
    no = 0.5
    y = make_channel(spec, seed=2)(_qpsk((500, 1000)), no=no).y
    assert y.abs().square().mean().item() == pytest.approx(1.0 + no, rel=0.01)   # Es + N0, std ~0.2 %


@pytest.mark.parametrize("phi", [0.3, math.pi / 8])
def test_uncoded_qpsk_ber_with_a_constant_phase_error_matches_the_closed_form(phi):
    esno_db = 6.0
    g = 10 ** (esno_db / 10)
    ber_theory = 0.5 * (norm.sf(math.sqrt(g) * (math.cos(phi) - math.sin(phi)))
                        + norm.sf(math.sqrt(g) * (math.cos(phi) + math.sin(phi))))
    link = DigitalLink(make_channel(f"awgn(phase_offset={phi})", seed=11), code="none", modulation="qpsk")
    bits = torch.randint(0, 2, (100, 4000), generator=torch.Generator().manual_seed(1)).float()
    ber = (link(bits, snr_db=esno_db).x_hat != bits).double().mean().item()
    sigma = math.sqrt(ber_theory * (1 - ber_theory) / bits.numel())
    assert abs(ber - ber_theory) < 5 * sigma
    assert ber > 1.5 * 0.5 * 2 * norm.sf(math.sqrt(g))  # clearly worse than without the phase error


def test_impairment_is_seeded_and_reset_replays_it():
    spec = "rician(k_db=5,phase_noise_linewidth=1e4,symbol_rate=1e6)"
    x = _qpsk((4, 32))
    a = make_channel(spec, seed=9)
    y1 = a(x, 0.1).y
    a.reset()
    assert torch.equal(a(x, 0.1).y, y1)
    assert torch.equal(make_channel(spec, seed=9)(x, 0.1).y, y1)
    assert not torch.equal(make_channel(spec, seed=10)(x, 0.1).y, y1)


def test_phase_trajectory_and_attach():
    imp = PhaseImpairment(cfo=-250.0, symbol_rate=1e3, phase_offset=0.1)
    th = phase_trajectory((2,), 3, imp, None)
    torch.testing.assert_close(th, torch.tensor([[0.1, 0.1 - math.pi / 2, 0.1 - math.pi]] * 2, dtype=torch.float64))
    ch = attach_impairment(AWGN(seed=0), imp)
    assert ch.impairment is imp
    with pytest.raises(ValueError, match="already has an impairment"):
        attach_impairment(ch, imp)
    assert attach_impairment(AWGN(seed=0), PhaseImpairment()).impairment is None


@pytest.mark.parametrize("spec, match", [
    ("rayleigh(cfo=100)", "symbol_rate"),
    ("awgn(phase_noise_linewidth=1e3)", "symbol_rate"),
    ("awgn(phase_noise_linewidth=-1,symbol_rate=1e6)", "phase_noise_linewidth"),
    ("awgn(symbol_rate=-5)", "symbol_rate"),
    ("awgn(cfo=abc,symbol_rate=1)", "cfo"),
])
def test_bad_impairment_specs_raise(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_channel_spec(spec)
    with pytest.raises(ValueError, match=match):
        make_channel(spec)


def test_bad_impairment_arguments_raise():
    with pytest.raises(ValueError, match="symbol_rate"):
        make_channel("awgn", cfo=10.0)
    with pytest.raises(ValueError, match="both set"):
        make_channel("awgn(phase_offset=1)", phase_offset=2.0)
    with pytest.raises(ValueError, match="linewidth"):
        wiener_increment_variance(-1.0, 1e-6)
    with pytest.raises(TypeError, match="PhaseImpairment"):
        attach_impairment(AWGN(), "cfo")


def test_random_initial_phase_is_uniform_per_example_and_keeps_the_ramp():
    ch = make_channel("awgn(cfo=1000,symbol_rate=1e6,random_phase=1)", seed=4)
    y = ch(torch.ones(20000, 5, dtype=torch.complex128), no=0.0).y
    phi0 = torch.angle(y[:, 0]) % (2 * math.pi)
    # uniform on [0, 2 pi): E e^{j phi} = 0 (std 1/sqrt(2 * 20000)), mean pi, variance (2 pi)^2 / 12
    assert torch.exp(1j * phi0.to(torch.complex128)).mean().abs().item() < 5 / math.sqrt(40000)
    assert phi0.var().item() == pytest.approx((2 * math.pi) ** 2 / 12, rel=0.03)
    ramp = torch.polar(torch.ones(5, dtype=torch.float64), 2 * math.pi * 1e-3 * torch.arange(5.0, dtype=torch.float64))
    torch.testing.assert_close(y / y[:, :1], ramp.expand(20000, 5), rtol=0, atol=1e-9)
    assert "random_phase=1" in canonical_channel_spec("awgn(random_phase=1)")
    with pytest.raises(ValueError, match="random_phase"):
        parse_channel_spec("awgn(random_phase=2)")
    with pytest.raises(ValueError, match="impairment keys"):
        parse_channel_spec("rayleigh(linewidth=5)")


# --------------------------------------------------------------------------------------------------------------
# semcom channel with an impairment: the convention on the unimpaired channel, the oscillator on its own
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["awgn(cfo=1000,phase_noise_linewidth=2000,symbol_rate=1e6)",
                                  "rayleigh(num_tx=2,num_rx=2,cfo=-500,phase_noise_linewidth=1000,symbol_rate=1e6)"])
def test_channel_check_measures_the_convention_and_the_oscillator_separately(spec, capsys):
    """Before, ``semcom channel`` counted the oscillator's rotation as noise (Es/N0 ~ -3 dB for a 10 dB target,
    exit 1 with --tolerance-db); now Es/N0 is the convention's and the CFO / linewidth are measured."""
    import re

    from experiments.cli import main
    from phy.channel.registry import make_channel

    rc = main(["channel", "--channel", spec, "--snr-db", "10", "--symbols", "2e5", "--tolerance-db", "0.1"])
    out = capsys.readouterr().out
    assert rc == 0, out
    cfo, lw = (float(v) for v in re.search(r"measured CFO: (\S+) Hz .* linewidth: (\S+) Hz", out).groups())
    imp = make_channel(spec).impairment
    # increments: mean 2 pi cfo Ts, variance 2 pi lw Ts; ~2e5 of them -> relative errors of a few per cent
    sd_mean = math.sqrt(imp.increment_variance / 1.9e5) / (2 * math.pi * imp.symbol_time)
    assert abs(cfo - imp.cfo) < 5 * sd_mean
    assert abs(lw / imp.phase_noise_linewidth - 1) < 5 * math.sqrt(2 / 1.9e5)


def test_channel_check_on_an_impaired_grid_reports_the_unimpaired_convention(capsys):
    from experiments.cli import main

    rc = main(["channel", "--channel", "ofdm(model=rayleigh,fft_size=12,cfo=3000)", "--snr-db", "10",
               "--symbols", "5e4", "--tolerance-db", "0.2"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "impairment not measured on an OFDM grid" in out
