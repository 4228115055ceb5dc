"""ASCII + Hamming(7,4) + 16-QAM text baseline."""
import math

import pytest

from baselines.ascii_hamming import AsciiHamming, AsciiHammingConfig
from phy.channel.flat import AWGN, Rayleigh
from phy.mapping.modulation import uncoded_ber

CAPTIONS = ["a dog running on the beach", "two cats", "x", "", "a red car parked next to a tree on a street"]


def _independent_uses(chars: int, k: int = 4, n: int = 7, m: int = 4, multiple: int = 1) -> int:
    """ceil(7 chars / k) Hamming blocks -> n bits each -> m bits per symbol, padded to ``multiple``."""
    if chars == 0:
        return 0
    blocks = math.ceil(7 * chars / k)
    sym = math.ceil(blocks * n / m)
    return math.ceil(sym / multiple) * multiple


def test_noiseless_roundtrip_and_per_item_channel_uses():
    tx = AsciiHamming(AWGN(seed=0))
    rx, uses = tx.transmit(CAPTIONS, snr_db=40.0)
    assert rx == CAPTIONS
    assert uses == [_independent_uses(len(c)) for c in CAPTIONS]
    assert uses[3] == 0 and uses[0] > uses[1] > uses[2] > 0  # cost follows the caption length
    assert tx.channel_uses(CAPTIONS) == uses


def test_block_fading_pads_to_the_block():
    tx = AsciiHamming(Rayleigh(block_length=5, seed=0))
    rx, uses = tx.transmit(CAPTIONS, snr_db=60.0)
    assert uses == [_independent_uses(len(c), multiple=5) for c in CAPTIONS]
    assert all(u % 5 == 0 for u in uses)


def test_uncoded_variant_counts_and_errors_follow_theory():
    # code "none": every ASCII bit on 16-QAM; the character error rate is 1 - (1 - p)^7
    tx = AsciiHamming(AWGN(seed=0), AsciiHammingConfig(code="none"))
    caps = ["abcdefghijklmnopqrstuvwxyz0123456789"] * 200
    rx, uses = tx.transmit(caps, snr_db=8.0, seed=3)
    assert uses[0] == math.ceil(7 * len(caps[0]) / 4)
    p = float(uncoded_ber(8.0, "16qam", "awgn"))
    # a wrong 7-bit code can still be printable (it then counts as a character error: it differs)
    cer = sum(a != b for r in rx for a, b in zip(r, caps[0])) / (len(caps) * len(caps[0]))
    expect = 1 - (1 - p) ** 7
    sd = math.sqrt(expect * (1 - expect) / (len(caps) * len(caps[0])))
    assert abs(cer - expect) < 6 * sd + 0.01


def test_hamming_corrects_errors_and_seed_reproduces():
    caps = ["the quick brown fox jumps over the lazy dog"] * 100
    coded = AsciiHamming(AWGN(seed=0))
    uncoded = AsciiHamming(AWGN(seed=0), AsciiHammingConfig(code="none"))
    snr = 12.0
    rc, _ = coded.transmit(caps, snr, seed=1)
    ru, _ = uncoded.transmit(caps, snr, seed=1)
    err = lambda rx: sum(a != b for r in rx for a, b in zip(r, caps[0]))  # noqa: E731
    assert err(rc) < err(ru)  # single-error correction helps at this SNR
    again, _ = coded.transmit(caps, snr, seed=1)
    other, _ = coded.transmit(caps, snr, seed=2)
    assert again == rc and other != rc


def test_low_snr_corrupts_and_invalid_input():
    tx = AsciiHamming(AWGN(seed=0))
    rx, _ = tx.transmit(["a photo of a cat"] * 4, snr_db=-5.0, seed=0)
    assert all(len(r) == 16 for r in rx) and any(r != "a photo of a cat" for r in rx)
    # non-ASCII characters are sent as "?"
    rx, _ = tx.transmit(["caf\u00e9"], snr_db=40.0)
    assert rx == ["caf?"]
    with pytest.raises(TypeError):
        tx.transmit("a single string", snr_db=0.0)
    with pytest.raises(TypeError):
        tx.transmit(["ok"], snr_db="10")
    with pytest.raises(ValueError):
        tx.transmit(["ok"], snr_db=float("nan"))
    with pytest.raises(TypeError):
        AsciiHamming(AWGN(), config={"code": "none"})
