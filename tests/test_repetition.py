"""Repetition with soft combining (``--budget matched``): the digital ``phy.fec.codes.Repetition`` code and
the analog ``phy.mimo.equalization.combine_repetitions`` (DeepSC's ``repeat``), checked against closed forms."""
import math

import pytest
import torch

from phy.channel.flat import AWGN, Rayleigh
from phy.fec.codes import Hamming74, Repetition
from phy.mimo.equalization import combine_repetitions
from phy.link.digital import DigitalLink


def _q(x: float) -> float:
    return 0.5 * math.erfc(x / math.sqrt(2.0))


def _ber(link: DigitalLink, snr_db: float, num_bits: int, seed: int) -> float:
    g = torch.Generator().manual_seed(seed)
    bits = torch.randint(0, 2, (8, num_bits // 8), generator=g).float()
    res = link(bits, snr_db=snr_db)
    return float((res.x_hat != bits).float().mean())


def test_repetition_code_layout_rate_and_bad_input():
    code = Repetition("hamming74", r=3)
    assert (code.k, code.n, code.rate) == (4, 21, pytest.approx(4 / 21))
    u = torch.tensor([[1., 0., 1., 1.], [0., 1., 1., 0.]])
    c = code.encode(u)
    base = Hamming74().encode(u)
    assert torch.equal(c, torch.cat([base] * 3, dim=-1))  # the whole codeword, r times
    llr = 5.0 * (2 * c - 1)
    llr[:, 7:14] *= -1.5                                   # one copy wrong and a bit more confident than each other
    assert torch.equal(code.decode(llr), u)                # 5 - 7.5 + 5 > 0: the sum keeps the sign
    assert Repetition("none", r=1).n == 1
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="r must be an int >= 1"):
            Repetition("hamming74", r=bad)


@pytest.mark.parametrize("r", [1, 4])
def test_repetition_on_awgn_qpsk_is_the_closed_form_at_r_times_the_snr(r):
    """Uncoded Gray QPSK, each bit sent r times, LLRs summed: BER = Q(sqrt(r Es/N0)) (Es/N0 per channel use), and
    the link spends r times the channel uses."""
    snr_db = 0.0
    link = DigitalLink(AWGN(seed=1), code=Repetition("none", r=r), modulation="qpsk")
    n = 240_000
    ber = _ber(link, snr_db, n, seed=2)
    theory = _q(math.sqrt(r * 10 ** (snr_db / 10)))
    sigma = math.sqrt(theory * (1 - theory) / n)
    assert abs(ber - theory) < 5 * sigma, (ber, theory)
    assert link.channel_uses(1000) == math.ceil(1000 * r / 2)


def test_repetition_of_hamming_equals_the_base_code_at_r_times_the_snr():
    """Hamming(7,4) + QPSK, codeword sent 3 times: the same BER as the base code at Es/N0 + 10 log10 3 dB (two
    independent simulations; the summed QPSK LLR is distributed as one LLR at 3x the SNR)."""
    r, snr_db, n = 3, -3.0, 200_000
    rep = _ber(DigitalLink(AWGN(seed=3), code=Repetition("hamming74", r=r), modulation="qpsk"), snr_db, n, seed=4)
    base = _ber(DigitalLink(AWGN(seed=5), code="hamming74", modulation="qpsk"), snr_db + 10 * math.log10(r), n,
                seed=6)
    sigma = math.sqrt(2 * base * (1 - base) / n)
    assert base > 0.01  # a regime where the comparison means something
    assert abs(rep - base) < 5 * sigma, (rep, base)


def test_ascii_repetition_lowers_the_ber_at_low_snr():
    """The ASCII baseline with repeat=r (what --budget matched uses) spends r times the uses (closed form) and has
    a far lower bit error rate at 0 dB than the paper's single copy (16-QAM: bits compared as 7-bit ASCII)."""
    from baselines.ascii_hamming import AsciiHamming, AsciiHammingConfig

    caps = [f"a photo of thing {i:02d} on a table" for i in range(40)]
    nchar = len(caps[0])

    def ber(r):
        tx = AsciiHamming(AWGN(seed=0), AsciiHammingConfig(repeat=r))
        rx, uses = tx.transmit(caps, snr_db=0.0, seed=7)
        assert uses == [math.ceil(r * 7 * math.ceil(7 * nchar / 4) / 4)] * len(caps)
        errs = sum(bin(ord(a) ^ ord(b)).count("1") if b != "?" else 7 for s, t in zip(caps, rx) for a, b in zip(s, t))
        return errs / (7 * nchar * len(caps))

    b1, b8 = ber(1), ber(8)
    assert b1 > 0.05 and b8 < b1 / 5, (b1, b8)
    with pytest.raises(ValueError, match="repeat"):
        AsciiHamming("awgn", AsciiHammingConfig(repeat=0))


@pytest.mark.parametrize("r", [1, 4])
def test_combining_r_copies_divides_the_noise_variance_by_r_on_awgn(r):
    """DeepSC's repeat=r: the ZF output's noise variance is N0 / r on AWGN, MMSE's error N0 / (r + N0) for unit-power
    Gaussian symbols, for r times the channel uses."""
    from baselines.deepsc import DeepSC, DeepSCConfig

    model = DeepSC.from_corpus(["a cat sits on the mat ."], DeepSCConfig(max_len=8, d_model=8, num_heads=2,
                                                                           num_layers=1, d_ff=16, symbols_per_token=2,
                                                                           channel_hidden=8, decoder_hidden=8))
    g = torch.Generator().manual_seed(0)
    x = torch.view_as_complex(torch.randn(64, 2048, 2, generator=g) / math.sqrt(2))
    snr_db, no = 0.0, 1.0
    zf = model.channel_pass(x, AWGN(seed=1), snr_db, "zf", repeat=r)
    assert zf.shape == x.shape
    var = float((zf - x).abs().square().mean())
    assert var == pytest.approx(no / r, rel=0.03)
    mmse = model.channel_pass(x, AWGN(seed=2), snr_db, "mmse", repeat=r)
    assert float((mmse - x).abs().square().mean()) == pytest.approx(no / (r + no), rel=0.03)
    assert model.channel_uses("a cat", repeat=r) == r * 4 * 2
    with pytest.raises(ValueError, match="repeat"):
        model.channel_pass(x, AWGN(seed=1), snr_db, "zf", repeat=0)


def test_combining_on_rayleigh_is_maximum_ratio():
    """Per-symbol Rayleigh: the combined gain is sqrt(sum |h_i|^2) over the copies (checked from the channel's own
    coefficients) and the ZF residual divided by sqrt(N0) / gain is CN(0, 1): the effective noise variance is
    N0 / sum |h_i|^2 (mean N0 / (r - 1) over the fading for r >= 2)."""
    r, no = 4, 0.5
    g = torch.Generator().manual_seed(0)
    x = torch.view_as_complex(torch.randn(32, 4096, 2, generator=g) / math.sqrt(2))
    out = Rayleigh(seed=3)(x.repeat(1, r), torch.full((32, 1), no))
    c = combine_repetitions(out, r)
    h2 = out.h.reshape(32, r, 4096).abs().square().sum(1)
    assert torch.allclose(c.h.real.square(), h2, rtol=1e-4) and float(c.h.imag.abs().max()) == 0
    resid = (c.y / c.h - x) * c.h.real / math.sqrt(no)
    assert float(resid.abs().square().mean()) == pytest.approx(1.0, rel=0.03)
    assert float(((c.y / c.h - x).abs().square()).mean()) == pytest.approx(no / (r - 1), rel=0.1)
    with pytest.raises(ValueError, match="multiple of r=3"):
        combine_repetitions(out, 3)
