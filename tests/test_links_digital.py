"""DigitalLink / BSCEquivalentLink / IdealCodeLink: ledgers, BER vs theory, outage logic, errors."""
import math

import pytest
import torch

from phy.channel.flat import AWGN, Rayleigh
from phy.fec.codes import LDPC5G, Hamming74
from phy.utils.conventions import ebno_db_to_esno_db
from phy.link.digital import BSCEquivalentLink, DigitalLink
from phy.link.ideal import IdealCodeLink
from phy.mapping.modulation import qam_ber_awgn, qam_ber_rayleigh


@pytest.mark.parametrize("code,modulation,num_bits,block,expect", [
    ("none", "qpsk", 10, 1, 5),             # 10 bits / 2
    ("none", "16qam", 10, 1, 3),            # 10 bits -> 12 (2 pad) / 4
    ("hamming74", "16qam", 40, 1, 18),      # 10 blocks * 7 = 70 -> 72 / 4
    ("hamming74", "64qam", 8, 1, 3),        # 2 * 7 = 14 -> 18 / 6
    ("hamming74", "qpsk", 4, 4, 4),         # 7 -> 8 bits = 4 symbols, already a multiple of 4
    ("hamming74", "qpsk", 8, 4, 8),         # 14 -> 7 symbols -> 8 (block fading multiple)
    ("ldpc5g", "256qam", 64, 1, 17),        # n = 130 -> 136 / 8
])
def test_channel_uses_match_independent_count(code, modulation, num_bits, block, expect):
    kw = {"k": 64, "n": 130} if code == "ldpc5g" else {}
    ch = Rayleigh(block_length=block, seed=0) if block > 1 else AWGN(seed=0)
    link = DigitalLink(ch, code=code, modulation=modulation, code_kwargs=kw)
    assert link.channel_uses(num_bits) == expect
    bits = torch.randint(0, 2, (3, num_bits)).float()
    out = link(bits, snr_db=40.0)
    assert out.channel_uses == expect
    assert out.info["symbols"].shape == (3, expect)       # what was actually sent
    assert out.x_hat.shape == bits.shape and torch.equal(out.x_hat, bits)
    assert out.info["pad_bits"] == expect * link.bits_per_symbol - out.info["num_blocks"] * link.n
    assert link.bandwidth_compression_ratio((num_bits,), num_bits=num_bits) == expect / num_bits


def test_uncoded_16qam_ber_matches_closed_form_awgn():
    link = DigitalLink(AWGN(seed=11), code="none", modulation="16qam", demapping="maxlog")
    n_bits = 160_000
    for snr_db in (6.0, 12.0):
        bits = torch.randint(0, 2, (8, n_bits // 8)).float()
        out = link(bits, snr_db=snr_db)
        ber = (out.x_hat != bits).double().mean().item()
        p = qam_ber_awgn(snr_db, "16qam")
        sigma = math.sqrt(p * (1 - p) / n_bits) * 2  # x2 for the correlation of a symbol's 4 bits
        assert abs(ber - p) < 4 * sigma, (snr_db, ber, p)
    # exact APP demapping gives the same BER within MC error (bitwise MAP ~ nearest point)
    link_app = DigitalLink(AWGN(seed=12), code="none", modulation="16qam", demapping="app")
    bits = torch.randint(0, 2, (8, n_bits // 8)).float()
    ber = (link_app(bits, snr_db=6.0).x_hat != bits).double().mean().item()
    p = qam_ber_awgn(6.0, "16qam")
    assert abs(ber - p) < 4 * math.sqrt(p * (1 - p) / n_bits) * 2


def test_uncoded_qpsk_ber_matches_closed_form_rayleigh_zf():
    link = DigitalLink(Rayleigh(seed=2), code="none", modulation="qpsk")
    n_bits = 100_000
    bits = torch.randint(0, 2, (10, n_bits // 10)).float()
    out = link(bits, snr_db=10.0)
    ber = (out.x_hat != bits).double().mean().item()
    p = qam_ber_rayleigh(10.0, "qpsk")
    assert abs(ber - p) < 4 * math.sqrt(p * (1 - p) / n_bits) * 1.5
    # the demapper was given the per-symbol noise N0/|h|^2
    assert out.info["no_eff"].shape == out.info["symbols"].shape


def test_llrs_signs_interleaver_and_per_example_snr():
    link = DigitalLink(Rayleigh(seed=4), code=Hamming74(), modulation="16qam", interleave=True)
    bits = torch.randint(0, 2, (2, 400)).float()
    out = link(bits, snr_db=torch.tensor([60.0, -10.0]))
    # the LLRs come back de-interleaved, aligned with the code bits (positive = 1)
    c = out.info["coded_bits"]
    assert torch.equal((out.info["llr"][0] > 0).float(), c[0])
    assert torch.equal(out.x_hat[0], bits[0])
    assert (out.x_hat[1] != bits[1]).float().mean() > 0.2
    assert out.info["block_errors"].shape == (2, 100)
    assert not out.info["block_errors"][0].any()
    # the interleaver really permutes the symbols
    plain = DigitalLink(Rayleigh(seed=4), code=Hamming74(), modulation="16qam")
    assert not torch.equal(plain(bits, snr_db=60.0).info["symbols"], out.info["symbols"])
    # noise power instead of SNR, and integer bits keep their dtype
    ib = bits.long()
    o2 = plain(ib, no=1e-6)
    assert o2.x_hat.dtype == torch.int64 and torch.equal(o2.x_hat, ib)
    # an S-point SNR sweep over a leading dimension
    sweep = plain(bits.unsqueeze(0).expand(3, 2, 400), snr_db=torch.tensor([[50.0], [40.0], [30.0]]),
                  batch_dims=2)
    assert sweep.x_hat.shape == (3, 2, 400)


def test_rate_helpers():
    link = DigitalLink(AWGN(seed=0), code=LDPC5G(100, 200), modulation="16qam")
    assert link.rate == 0.5 and link.bits_per_symbol == 4 and link.spectral_efficiency == 2.0
    assert link.snr_db_from_ebno_db(3.0) == pytest.approx(ebno_db_to_esno_db(3.0, 4, 0.5))
    assert link.ebno_db_from_snr_db(link.snr_db_from_ebno_db(3.0)) == pytest.approx(3.0)
    assert link.effective_rate(200) == pytest.approx(200 / 100)
    padded, pad = link.pad_payload(torch.ones(2, 250))
    assert padded.shape == (2, 300) and pad == 50 and padded[:, 250:].sum() == 0


def test_digital_link_bad_input():
    ch = AWGN(seed=0)
    with pytest.raises(ValueError, match="qpsk"):
        DigitalLink(ch, modulation="32apsk")
    with pytest.raises(ValueError, match="hamming74"):
        DigitalLink(ch, code="polar")
    with pytest.raises(ValueError, match="equalizer"):
        DigitalLink(ch, equalizer="mmse")
    link = DigitalLink(ch, code="hamming74")
    with pytest.raises(ValueError, match="multiple of the code's k=4"):
        link(torch.zeros(2, 10), snr_db=10.0)
    with pytest.raises(ValueError, match="0 and 1"):
        link(torch.full((2, 8), 0.5), snr_db=10.0)
    with pytest.raises(ValueError, match="exactly one"):
        link(torch.zeros(2, 8), snr_db=10.0, no=0.1)
    with pytest.raises(ValueError, match="broadcast"):
        link(torch.zeros(2, 8), snr_db=torch.zeros(3))
    with pytest.raises(ValueError, match="k=300 > n=200"):
        DigitalLink(ch, code="ldpc5g", code_kwargs={"k": 300, "n": 200})
    with pytest.raises(ValueError, match="5G NR LDPC"):
        DigitalLink(ch, code="ldpc5g", code_kwargs={"k": 100, "n": 101})      # rate above 0.95


@pytest.mark.parametrize("kind,modulation,snr_db", [("awgn", "16qam", 8.0), ("rayleigh", "qpsk", 10.0)])
def test_bsc_equivalent_flip_rate(kind, modulation, snr_db):
    link = BSCEquivalentLink(modulation, kind, seed=9)
    n_bits = 200_000
    bits = torch.randint(0, 2, (4, n_bits // 4)).float()
    out = link(bits, snr_db=snr_db)
    rate = (out.x_hat != bits).double().mean().item()
    p = qam_ber_awgn(snr_db, modulation) if kind == "awgn" else qam_ber_rayleigh(snr_db, modulation)
    assert abs(rate - p) < 4 * math.sqrt(p * (1 - p) / n_bits)
    assert torch.equal(out.info["flips"], out.x_hat != bits)
    bps = {"qpsk": 2, "16qam": 4}[modulation]
    assert out.channel_uses == math.ceil(n_bits / 4 / bps) == link.channel_uses(n_bits // 4)
    # shared channel object: kind inferred from it
    assert BSCEquivalentLink("qpsk", channel=Rayleigh(seed=1)).channel_kind == "rayleigh"
    with pytest.raises(ValueError, match="channel_kind"):
        BSCEquivalentLink("qpsk", "rician")


def test_ideal_code_link_awgn_threshold():
    # 10 uses carry 10 log2(1 + snr) bits: 30 bits need snr >= 7 (8.451 dB)
    link = IdealCodeLink(AWGN(seed=0), num_channel_uses=10)
    bits = torch.randint(0, 2, (2, 30)).float()
    out = link(bits, snr_db=torch.tensor([8.40, 8.50]))
    assert out.info["outage"].tolist() == [True, False]
    assert torch.equal(out.x_hat[1], bits[1])
    assert out.channel_uses == 10 == link.channel_uses(30)
    zeros = IdealCodeLink(AWGN(seed=0), num_channel_uses=10, outage_fill="zeros")
    assert zeros(bits, snr_db=0.0).x_hat.sum() == 0
    fixed = IdealCodeLink(AWGN(seed=0), num_channel_uses=10, capacity="awgn")
    assert fixed(bits, snr_db=torch.tensor([8.40, 8.50])).info["outage"].tolist() == [True, False]
    with pytest.raises(ValueError, match="capacity"):
        IdealCodeLink(AWGN(seed=0), num_channel_uses=10, capacity="magic")


def test_ideal_code_link_block_fading_outage_probability():
    n, payload, snr_db = 16, 32, 10.0
    link = IdealCodeLink(Rayleigh(block_length=n, seed=3), num_channel_uses=n)
    bits = torch.randint(0, 2, (20_000, payload)).float()
    out = link(bits, snr_db=snr_db)
    outage = out.info["outage"]
    s = 10 ** (snr_db / 10)
    p_theory = 1 - math.exp(-(2 ** (payload / n) - 1) / s)   # P(n log2(1 + g s) < B)
    assert abs(outage.double().mean().item() - p_theory) < 4 * math.sqrt(p_theory * (1 - p_theory) / 20_000)
    assert torch.equal(out.x_hat[~outage], bits[~outage])
    err = (out.x_hat[outage] != bits[outage]).double().mean().item()
    assert abs(err - 0.5) < 0.05  # the receiver gets nothing: coin flips


def test_link_trial_reads_the_digital_link_rate():
    """The Monte Carlo engine takes code rate and bits/symbol from the link itself (Eb/N0 sweeps)."""
    from phy.channel.flat import AWGN
    from phy.link.digital import DigitalLink
    from phy.sim.trials import LinkTrial

    link = DigitalLink(AWGN(seed=0), code="hamming74", modulation="16qam")
    trial = LinkTrial(link)
    assert trial.coderate == pytest.approx(4 / 7) and trial.bits_per_symbol == 4
