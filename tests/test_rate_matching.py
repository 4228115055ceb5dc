"""5G LDPC below the 1/5 mother rate: the circular buffer read on and repeated (TS 38.212 5.4.2.1), the LLRs of
the copies summed, and the MCS below MCS 2 that use it (phy.fec.codes.LDPC5G, phy.link.amc)."""
import math

import numpy as np
import pytest
import torch

from phy.channel.flat import AWGN
from phy.fec.codes import LDPC5G, circular_buffer_length
from phy.link.amc import MCS_TABLE, CodewordLink, codeword_layout, estimate_bler, mcs_by_index, select_mcs
from phy.link.digital import DigitalLink
from phy.theory.capacity import awgn_capacity


def _mother_codeword(enc, u, buf):
    """The full base-graph codeword ``[n_ldpc]`` from the information bits and the circular buffer's bits:
    the 2Z punctured systematic bits, the rest of the systematic part, the filler zeros, the parity bits."""
    z, k, k_ldpc, n_ldpc = enc.z, enc.k, enc.k_ldpc, enc.n_ldpc
    c = np.zeros(n_ldpc, dtype=np.int64)
    c[:2 * z] = u[:2 * z]
    c[2 * z:k] = buf[:k - 2 * z]
    c[k_ldpc:] = buf[k - 2 * z:]
    return c


@pytest.mark.parametrize("k,n", [(135, 1152), (217, 1152), (135, 2304), (12, 500)])
def test_the_low_rate_codeword_is_the_circular_buffer_read_cyclically(k, n):
    """Every transmitted bit is bit ``i mod N`` of the filler-free circular buffer, and that buffer with the
    punctured bits and the fillers is a codeword of the standard's parity-check matrix (H c = 0)."""
    from sionna.phy.fec.ldpc import LDPC5GEncoder

    code = LDPC5G(k, n, decoder="layered")
    ref = LDPC5GEncoder(k, 5 * k)          # Sionna's own encoder at the mother rate: same graph and lifting
    N = circular_buffer_length(k)
    assert N == ref.n_cb_comp == 40 * ref.z + k and code.buffer_length == min(n, N)
    u = torch.randint(0, 2, (4, k), generator=torch.Generator().manual_seed(k)).float()
    c = code.encode(u).long().numpy()
    assert c.shape == (4, n)
    idx = np.arange(n) % code.buffer_length
    assert (c == c[:, idx]).all()                                     # cyclic repetition
    assert (c[:, :5 * k] == ref(u).long().numpy()[:, :min(n, 5 * k)]).all()   # the same first 5k bits as Sionna's
    H = ref.pcm
    for row in range(4):
        buf = c[row, :code.buffer_length]
        if code.buffer_length < N:               # no repetition: only the buffer's first n bits were sent
            continue
        cw = _mother_codeword(ref, u[row].long().numpy(), buf)
        assert not (H @ cw % 2).any()


def test_llr_combining_is_the_exact_sum_of_the_copies(monkeypatch):
    """The decoder sees, for each buffer bit, the sum of the LLRs of its copies (and nothing else)."""
    code = LDPC5G(135, 2304, decoder="layered")
    N = code.buffer_length
    llr = torch.randn(3, 2304, generator=torch.Generator().manual_seed(0)) * 4
    seen = []
    enc, dec = code._get("cpu", torch.float32)
    monkeypatch.setitem(code._blocks, ("cpu", "single"), (enc, lambda x: seen.append(x.clone()) or dec(x)))
    code.decode(llr)
    expected = torch.zeros(3, N)
    for j in range(2304):
        expected[:, j % N] += llr[:, j]
    torch.testing.assert_close(seen[0], expected, rtol=0, atol=1e-5)
    # the same decoder on the summed LLRs: bit-identical decisions
    base = LDPC5G(135, N, decoder="layered")
    torch.testing.assert_close(code.decode(llr), base.decode(expected), rtol=0, atol=0)


def test_repetition_by_r_is_the_unrepeated_code_at_r_times_the_snr():
    """QPSK over AWGN, k = 135: the buffer (N = 1095) sent twice (n = 2190) at Es/N0 has the block error rate of
    the buffer sent once at Es/N0 + 3.01 dB (two independent simulations in the waterfall, 3000 codewords each):
    summed QPSK LLRs are one LLR at twice the SNR."""
    def bler(n, snr, seed, m=3000, k=135):
        link = DigitalLink(AWGN(seed=seed), code=LDPC5G(k, n, decoder="layered"), modulation="qpsk")
        u = torch.randint(0, 2, (m, k), generator=torch.Generator().manual_seed(seed + 1)).float()
        return float(link(u, snr_db=snr).info["block_errors"].float().mean()), m

    snr = -8.5
    (p_rep, m), (p_base, _) = bler(2190, snr, 3), bler(1095, snr + 10 * math.log10(2), 1)
    assert 0.1 < p_base < 0.9                       # in the waterfall: the check can see a 0.3 dB shift
    sigma = math.sqrt(p_base * (1 - p_base) * 2 / m)
    assert abs(p_rep - p_base) < 4.5 * sigma, (p_rep, p_base)
    p_shift, _ = bler(2190, snr - 0.3, 5)
    assert p_shift - p_base > 4.5 * sigma           # 0.3 dB less is visibly worse


def test_mcs_0_and_below_decode_where_mcs_2_cannot_and_the_amc_selects_them():
    """At -5 dB over AWGN (192 uses per example) MCS 2 is above capacity (0.60 > 0.40 bit/use); MCS 0 and its
    repetitions deliver, and the link adaptation picks one of them."""
    uses, snr = 192, -5.0
    assert mcs_by_index(2).spectral_efficiency > awgn_capacity(snr) > mcs_by_index(0).spectral_efficiency
    lays = [codeword_layout(m, uses) for m in MCS_TABLE]
    by = {l.mcs.index: l for l in lays}
    ch = AWGN(seed=0)
    blers = {}

    def bler_of(lay):
        blers[lay.mcs.index] = estimate_bler(ch, lay, snr, seed=lay.mcs.index + 10, max_codewords=200).bler
        return blers[lay.mcs.index]

    choice = select_mcs(lays, bler_of, lambda b: 2.0 ** (-b / 20), 1.0, awgn_capacity(snr))
    assert choice.layout.mcs.index <= 1 and choice.bler < 0.5, blers
    assert 2 not in blers and set(blers) <= {1, 0, -1}   # MCS 2 above capacity: never simulated
    assert estimate_bler(ch, by[-1], snr, seed=3, max_codewords=200).bler < 0.05
    assert estimate_bler(ch, by[2], snr, seed=1, max_codewords=64).bler == 1.0
    # the repetitions carry MCS 0's codeword over 2, 4, 8 times the examples
    for r, i in ((2, -1), (4, -2), (8, -3)):
        assert (by[i].k, by[i].span, by[i].n) == (by[0].k, r * by[0].span, r * by[0].n)
        assert CodewordLink(ch, by[i]).link.code.repetitions == pytest.approx(by[i].n / circular_buffer_length(by[0].k))


def test_low_rate_bad_input():
    with pytest.raises(ValueError, match="base graph 2"):
        LDPC5G(4000, 24000)                 # rate 1/6 with k > 3840: needs segmentation
    with pytest.raises(ValueError, match="above the 5G NR LDPC maximum"):
        LDPC5G(100, 101)
    with pytest.raises(ValueError, match="k must be an int in"):
        circular_buffer_length(5000)
    with pytest.raises(ValueError, match="k must be an int in"):
        circular_buffer_length(12.5)
