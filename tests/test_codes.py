"""Codes: Hamming(7,4) against an exhaustive independent reference, 5G LDPC waterfall, errors."""
import itertools
import math

import numpy as np
import pytest
import torch

from phy.channel.flat import AWGN
from phy.fec.codes import LDPC5G, CODES, Code, Hamming74, Uncoded, make_code
from phy.link.digital import DigitalLink
from phy.mapping.modulation import qam_ber_awgn

# Sionna's example (7,4) Hamming parity-check matrix, typed in independently.
H = np.array([[1, 0, 1, 1, 1, 0, 0],
              [0, 1, 0, 1, 1, 1, 0],
              [0, 0, 1, 0, 1, 1, 1]])
MESSAGES = np.array(list(itertools.product([0, 1], repeat=4)))


def codebook(code):
    return code.encode(torch.tensor(MESSAGES, dtype=torch.float32)).numpy().astype(int)


def test_hamming_codebook_and_info_positions():
    code = Hamming74()
    assert (code.k, code.n, code.rate) == (4, 7, 4 / 7)
    C = codebook(code)
    assert np.all((C @ H.T) % 2 == 0)                 # every codeword satisfies the parity checks
    assert len({tuple(c) for c in C}) == 16           # the map is injective
    dmin = min(np.sum(a != b) for a, b in itertools.combinations(C, 2))
    assert dmin == 3
    # The information bits sit at codeword positions (4, 5, 6, 3), not the first k
    assert code.info_positions == (4, 5, 6, 3)
    assert np.array_equal(C[:, list(code.info_positions)], MESSAGES)
    assert not np.array_equal(C[:, :4], MESSAGES)


def _llr(word):
    return torch.tensor(4.0 * (2 * np.asarray(word) - 1), dtype=torch.float32)


def test_hamming_single_errors_corrected_double_not():
    code = Hamming74()
    C = codebook(code)
    # all 16 codewords x 7 single-bit errors
    received = []
    expect = []
    for msg, c in zip(MESSAGES, C):
        for j in range(7):
            r = c.copy()
            r[j] ^= 1
            received.append(r)
            expect.append(msg)
    out = code.decode(_llr(np.array(received))).numpy()
    assert np.array_equal(out, np.array(expect))
    # all 16 x 21 double errors: decoded message is always wrong (perfect code mis-corrects)
    received, expect = [], []
    for msg, c in zip(MESSAGES, C):
        for i, j in itertools.combinations(range(7), 2):
            r = c.copy()
            r[i] ^= 1
            r[j] ^= 1
            received.append(r)
            expect.append(msg)
    out = code.decode(_llr(np.array(received))).numpy()
    assert np.all(np.any(out != np.array(expect), axis=1))


def test_hamming_syndrome_equals_min_distance_reference_on_all_words():
    """Independent reference: minimum Hamming distance decoding over the codebook, all 128 words."""
    code = Hamming74()
    C = codebook(code)
    words = np.array(list(itertools.product([0, 1], repeat=7)))
    ref = []
    for w in words:
        d = np.sum(C != w, axis=1)
        assert np.sum(d == d.min()) == 1  # perfect code: unique nearest codeword
        ref.append(MESSAGES[d.argmin()])
    out = code.decode(_llr(words)).numpy()
    assert np.array_equal(out, np.array(ref))
    # the ML decoder agrees on equal-magnitude LLRs (ML == min distance there)
    assert np.array_equal(Hamming74("ml").decode(_llr(words)).numpy(), np.array(ref))


def test_hamming_ml_vs_bruteforce_and_soft_gain():
    code = Hamming74("ml")
    C = codebook(code)
    rng = np.random.default_rng(3)
    llr = rng.normal(size=(200, 7)) * 3
    ref = MESSAGES[np.argmax(llr @ C.T, axis=1)]  # maximise sum_i c_i LLR_i
    out = code.decode(torch.tensor(llr, dtype=torch.float64)).numpy()
    assert np.array_equal(out, ref)
    # Soft ML beats hard syndrome decoding on BPSK/AWGN-like LLRs
    u = torch.randint(0, 2, (20000, 4)).float()
    c = code.encode(u)
    sigma = 0.8
    y = (1 - 2 * c) + sigma * torch.randn(c.shape)   # bit 0 -> +1
    llr = -2 * y / sigma ** 2                         # ln p(1|y)/p(0|y)
    ber_ml = (code.decode(llr) != u).float().mean().item()
    ber_hd = (Hamming74().decode(llr) != u).float().mean().item()
    assert ber_ml < 0.8 * ber_hd


def test_uncoded_and_batch_shapes():
    code = Uncoded(3)
    u = torch.randint(0, 2, (2, 5, 3))
    assert torch.equal(code.encode(u), u.float())
    llr = torch.tensor([[-1.0, 0.0, 2.0]])
    assert torch.equal(code.decode(llr), torch.tensor([[0.0, 0.0, 1.0]]))  # LLR 0 decides 0
    h = Hamming74()
    u = torch.randint(0, 2, (2, 3, 4)).float()
    c = h.encode(u)
    assert c.shape == (2, 3, 7)
    assert torch.equal(h.decode(10 * (2 * c - 1)), u)


def test_ldpc_noiseless_round_trip_and_params():
    code = LDPC5G(100, 200)
    assert (code.k, code.n, code.rate) == (100, 200, 0.5)
    u = torch.randint(0, 2, (4, 100)).float()
    c = code.encode(u)
    assert c.shape == (4, 200)
    assert torch.equal(code.decode(20 * (2 * c - 1)), u)


def test_ldpc_waterfall_and_gain_over_uncoded():
    """5G LDPC (k=128, n=256) with QPSK on AWGN: BLER falls through the waterfall and is far
    below the uncoded BLER at the same Eb/N0."""
    k, n = 128, 256
    link = DigitalLink(AWGN(seed=5), code=LDPC5G(k, n, num_iter=20), modulation="qpsk")
    blocks = 150
    bler = []
    ebnos = [0.0, 1.5, 3.0]
    for ebno in ebnos:
        bits = torch.randint(0, 2, (blocks, k)).float()
        out = link(bits, snr_db=link.snr_db_from_ebno_db(ebno))
        bler.append(out.info["block_errors"].float().mean().item())
    assert bler[0] > 0.3                      # before the waterfall
    assert bler[0] > bler[1] >= bler[2]
    assert bler[2] < 0.05
    # uncoded QPSK at Eb/N0 = 3 dB: Es/N0 = 6.01 dB, BLER over 128 bits
    p = qam_ber_awgn(3.0 + 10 * math.log10(2), "qpsk")
    bler_uncoded = 1 - (1 - p) ** k
    assert bler_uncoded > 0.9
    assert bler[2] < 0.1 * bler_uncoded


def test_registry_and_bad_input():
    assert set(CODES) == {"none", "hamming74", "ldpc5g"}
    assert isinstance(make_code("none"), Uncoded)
    assert isinstance(make_code("hamming74", decoder="ml"), Hamming74)
    assert make_code("ldpc5g", k=64, n=128).n == 128
    h = Hamming74()
    assert make_code(h) is h
    with pytest.raises(ValueError, match="hamming74"):
        make_code("turbo")
    with pytest.raises(ValueError, match="needs k= and n="):
        make_code("ldpc5g")
    with pytest.raises(ValueError, match="k=300 > n=200"):
        LDPC5G(300, 200)
    with pytest.raises(ValueError, match="rate"):
        LDPC5G(100, 101)          # rate > 0.95
    assert LDPC5G(100, 1000).buffer_length < 1000   # rate < 1/5: the circular buffer repeats (test_rate_matching)
    with pytest.raises(ValueError, match="rate"):
        LDPC5G(4000, 24000)       # rate < 1/5 with k beyond base graph 2
    with pytest.raises(ValueError, match="12 <= k <= 8448"):
        LDPC5G(8, 16)
    with pytest.raises(ValueError, match="n=200000"):
        LDPC5G(8000, 200000)
    with pytest.raises(ValueError, match="decoder"):
        Hamming74("bp")
    with pytest.raises(ValueError, match="k=4"):
        h.encode(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="n=7"):
        h.decode(torch.zeros(2, 8))
    with pytest.raises(TypeError):
        h.decode(torch.zeros(2, 7, dtype=torch.int64))
    with pytest.raises(ValueError, match="k"):
        Code(5, 3)


def test_ldpc_layered_decoder_option():
    """The optional layered min-sum decoder (phy.fec.ldpc_fast) decodes the same code."""
    code = LDPC5G(64, 128, decoder="layered")
    u = torch.randint(0, 2, (8, 64)).float()
    c = code.encode(u)
    assert torch.equal(c, LDPC5G(64, 128).encode(u))
    assert torch.equal(code.decode(20 * (2 * c - 1)), u)
    # a few flipped-sign LLRs (weak errors) are corrected
    llr = 4 * (2 * c - 1)
    llr[:, ::16] *= -0.25
    assert torch.equal(code.decode(llr), u)
    with pytest.raises(ValueError, match="decoder"):
        LDPC5G(64, 128, decoder="sum-product")


@pytest.mark.parametrize("make", [lambda: Uncoded(4), lambda: Hamming74("syndrome"), lambda: Hamming74("ml"),
                                  lambda: LDPC5G(64, 128), lambda: LDPC5G(64, 128, decoder="layered")],
                         ids=["none", "hamming-syndrome", "hamming-ml", "ldpc-bp", "ldpc-layered"])
def test_nan_llrs_are_refused_not_decoded_to_zeros(make):
    """A NaN LLR used to decode to bit 0 silently; now every decoder refuses it, naming the argument;
    the same block without the NaN decodes."""
    code = make()
    llr = torch.full((2, code.n), 3.0)
    assert code.decode(llr).shape == (2, code.k)
    llr[1, 2] = float("nan")
    with pytest.raises(ValueError, match="must not contain NaN"):
        code.decode(llr)


def test_codes_build_from_the_command_line_options():
    from phy.fec.codes import CODES, Code

    opts = dict(k=64, n=128, num_iter=7, ldpc_decoder="layered", hamming_decoder="ml")
    ldpc = CODES["ldpc5g"].from_options(**opts)
    assert (ldpc.k, ldpc.n, ldpc.num_iter, ldpc.decoder) == (64, 128, 7, "layered")
    assert ldpc.decoder_kwargs == {"early_stop": True}
    assert CODES["hamming74"].from_options(**opts).decoder == "ml"
    assert CODES["none"].from_options(**opts).k == 64
    assert all(CODES[c].symmetric for c in ("none", "hamming74", "ldpc5g")) and not Code.symmetric
