"""Fast paths implement the whole channel spec or are not taken.

The compiled and fused paths (the scrambled all-zero AWGN chain of :mod:`phy.fec.scrambled_chain`, the fused
LDPC error count, the compiled channel-plus-equaliser pass of ``Channel.forward_equalized``, SNR batching,
closed-form links) reproduce a channel from its noise and fading alone. A channel whose output is transformed
on top of that (an impairment key of the spec, a forward hook) must take the general path, so every path
gives the statistics of the spec it was given.
"""
import contextlib
import csv
import io
import math

import pytest
import torch

from experiments.cli import main
from phy.channel.registry import make_channel
from phy.link.digital import BSCEquivalentLink, DigitalLink
from phy.sim.montecarlo import simulate_ber
from phy.sim.trials import LinkTrial, ScrambledZeroTrial

QUARTER_TURN = "0.7853981"  # pi/4: QPSK points land on the decision boundaries of one bit


def _ber(trial, esno_db=10.0, bits=40_000, snr_batch=1, snrs=None):
    res = simulate_ber(trial, snrs or [esno_db], batch_size=500, max_bits=bits, target_errors=None,
                       progress=False, snr_batch=snr_batch)
    return res[0].ber


def _q(x):
    return 0.5 * math.erfc(x / math.sqrt(2.0))


def test_ber_command_applies_a_phase_offset_on_awgn(tmp_path):
    """QPSK turned by pi/4 at 10 dB: one bit of each symbol sits on its decision boundary (BER 1/2), the other
    is decided with margin 1: BER = (1/2 + Q(1 / sqrt(N0 / 2))) / 2 ~ 0.25, not the plain AWGN 8e-4."""
    out = tmp_path / "ber"
    with contextlib.redirect_stdout(io.StringIO()):
        rc = main(["ber", "--code", "none", "--modulation", "qpsk", "--max-bits", "40000", "--snr-db", "10",
                   "--channel", f"awgn(phase_offset={QUARTER_TURN})", "--no-progress", "--out", str(out)])
    assert rc == 0
    (row,) = list(csv.DictReader(open(out / "ber.csv")))
    theory = 0.5 * (0.5 + _q(1.0 / math.sqrt(0.1 / 2)))
    assert abs(float(row["ber"]) - theory) < 0.015, row["ber"]


@pytest.mark.parametrize("spec", [f"awgn(phase_offset={QUARTER_TURN})", "awgn(cfo=2000,symbol_rate=1e6)",
                                  "awgn(random_phase=1)", "awgn(phase_noise_linewidth=2e4,symbol_rate=1e6)",
                                  f"rayleigh(phase_offset={QUARTER_TURN})", f"rician(k_db=10,phase_offset=0.5)"])
def test_scrambled_zero_trial_matches_the_digital_link(spec):
    """Every spec key reaches the scrambled-zero trial (fused or not, one SNR point or batched) as it reaches
    DigitalLink with random bits."""
    link = lambda: DigitalLink(make_channel(spec, seed=1), code="none", modulation="qpsk")  # noqa: E731
    scrambled = ScrambledZeroTrial(link(), k=64)
    assert not scrambled._fused()
    reference = _ber(LinkTrial(link(), k=64))
    assert abs(_ber(scrambled) - reference) < 0.02 + 0.1 * reference
    batched = _ber(ScrambledZeroTrial(link(), k=64), snr_batch=2, snrs=[10.0, 11.0])
    assert abs(batched - reference) < 0.02 + 0.1 * reference


def test_fused_ldpc_count_honours_the_phase_offset():
    """The one-pass LDPC error count (chain + int8 decoder) is not taken on an impaired AWGN channel: at
    a pi/4 offset a rate-1/2 code over QPSK still fails (half the bits carry no information)."""
    from phy.fec.codes import LDPC5G

    code = lambda: LDPC5G(256, 512, decoder="layered-int8")  # noqa: E731
    plain = ScrambledZeroTrial(DigitalLink(make_channel("awgn", seed=1), code=code(), modulation="qpsk"), k=256)
    turned = ScrambledZeroTrial(DigitalLink(make_channel(f"awgn(phase_offset={QUARTER_TURN})", seed=1),
                                            code=code(), modulation="qpsk"), k=256)
    assert not turned.counts_in_one_pass
    assert _ber(plain, esno_db=3.0, bits=25_600) < 1e-3
    assert _ber(turned, esno_db=3.0, bits=25_600) > 0.05


def test_a_forward_hook_turns_the_fast_paths_off():
    """A hook on the channel (here: y -> -y, every bit flipped) is honoured by the fused AWGN chain and by the
    compiled Rayleigh + equaliser pass, and a hook added after the trial was built too."""
    from phy.channel.base import ChannelOutput

    def negate(module, args, out):
        return ChannelOutput(y=-out.y, h=out.h, no=out.no)

    for spec in ("awgn", "rayleigh"):
        trial = ScrambledZeroTrial(DigitalLink(make_channel(spec, seed=1), code="none", modulation="qpsk"), k=64)
        assert _ber(trial, esno_db=30.0, bits=6400) < 0.01
        handle = trial.link.channel.register_forward_hook(negate)
        assert trial.link.channel.output_transformed()
        assert _ber(trial, esno_db=30.0, bits=6400) > 0.95
        handle.remove()
        assert not trial.link.channel.output_transformed()


def test_closed_form_link_refuses_an_impaired_channel():
    with pytest.raises(ValueError, match="closed form"):
        BSCEquivalentLink("qpsk", channel=make_channel("awgn(phase_offset=0.5)", seed=0))
    assert BSCEquivalentLink("qpsk", channel=make_channel("awgn", seed=0)).channel_kind == "awgn"


def test_forward_equalized_honours_the_impairment():
    """The compiled Rayleigh + ZF pass is the plain channel's; with an impairment the equalised symbols are turned."""
    x = torch.ones(1, 4096, dtype=torch.complex64)
    x_hat, _, _ = make_channel(f"rayleigh(phase_offset={QUARTER_TURN})", seed=0).forward_equalized(x, 1e-6)
    assert abs(float(torch.angle(x_hat).median()) - math.pi / 4) < 1e-3
