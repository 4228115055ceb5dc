"""7-bit ASCII codec: exact bit layout, round trips, corruption never raises, link round trip."""
import pytest
import torch

from phy.channel.flat import AWGN
from phy.link.digital import DigitalLink
from phy.source.text_codec import TextCodec


def test_bit_layout_and_padding():
    codec = TextCodec()
    bits = codec.encode("A")  # 'A' = 65 = 1000001, padded 7 -> 8 bits
    assert bits.tolist() == [1, 0, 0, 0, 0, 0, 1, 0]
    assert codec.num_bits(3) == 24 and codec.num_bits(4) == 28 and codec.num_bits(0) == 0
    assert codec.encode("abc").shape == (24,)
    assert TextCodec(block_size=1).encode("abc").shape == (21,)
    assert TextCodec(block_size=64).num_bits(10) == 128
    assert codec.encode("").shape == (0,)


def test_round_trip_printable_ascii():
    codec = TextCodec()
    text = "".join(chr(c) for c in range(32, 127)) + "\n\tend"
    assert codec.decode(codec.encode(text), num_chars=len(text)) == text
    assert codec.decode(codec.encode("hello")) == "hello"  # default num_chars = L // 7 (40 // 7 = 5)


def test_batch_round_trip_with_lengths():
    codec = TextCodec(pad_char="~")
    texts = ["short", "a much longer sentence.", "", "mid size"]
    bits, lengths = codec.encode_batch(texts)
    assert bits.shape == (4, codec.num_bits(max(map(len, texts))))
    assert lengths.tolist() == [len(t) for t in texts]
    assert codec.decode_batch(bits, lengths) == texts
    # without cutting, the rows carry the documented pad character
    assert codec.decode(bits[0], 7) == "short~~"


def test_non_ascii_strict_and_replace():
    with pytest.raises(ValueError, match="index 3"):
        TextCodec().encode("abc\u00e9")
    with pytest.raises(ValueError, match="index 1"):
        TextCodec().encode("a\x07b")  # a control character the codec cannot reproduce
    codec = TextCodec(errors="replace", replacement="#")
    assert codec.decode(codec.encode("abc\u00e9\x07"), 5) == "abc##"
    with pytest.raises(ValueError, match="replacement"):
        TextCodec(replacement="??")
    with pytest.raises(ValueError, match="block_size"):
        TextCodec(block_size=0)


def test_corrupted_bits_never_raise_and_keep_length():
    codec = TextCodec()
    g = torch.Generator().manual_seed(7)
    texts = ["The quick brown fox jumps over the lazy dog."] * 50
    bits, lengths = codec.encode_batch(texts)
    for p in (0.01, 0.1, 0.5):
        flips = torch.rand(bits.shape, generator=g) < p
        noisy = torch.where(flips, 1 - bits, bits)
        out = codec.decode_batch(noisy, lengths)
        assert [len(s) for s in out] == lengths.tolist()
        assert all(all(32 <= ord(c) < 127 or c in "\n\t" for c in s) for s in out)
    # all-ones: 127 = DEL (control) -> replacement; all-zeros: NUL -> replacement
    assert codec.decode(torch.ones(28), 4) == "????"
    assert codec.decode(torch.zeros(28), 4) == "????"
    # garbage values (soft values, NaN) are thresholded, not rejected
    garbage = torch.tensor([0.9, 0.2, float("nan"), 0.6, -3.0, 7.0, 0.5] * 2)
    s = codec.decode(garbage, 2)
    assert len(s) == 2
    with pytest.raises(ValueError, match="need 21 bits"):
        codec.decode(torch.zeros(14), 3)


def test_text_round_trip_through_hamming_16qam_link():
    from semantic.sentences import load_pydoc_corpus

    sentences = load_pydoc_corpus(max_sentences=12)
    codec = TextCodec(block_size=4)
    bits, lengths = codec.encode_batch(sentences)
    link = DigitalLink(AWGN(seed=3), code="hamming74", modulation="16qam")
    out = link(bits, snr_db=25.0)
    assert out.channel_uses == link.channel_uses(bits.shape[-1])
    assert codec.decode_batch(out.x_hat, lengths) == sentences
    # at low SNR the text is corrupted but still decodes to the right lengths
    out = link(bits, snr_db=3.0)
    noisy = codec.decode_batch(out.x_hat, lengths)
    assert [len(s) for s in noisy] == [len(s) for s in sentences]
    assert noisy != sentences
