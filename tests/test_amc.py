"""Adaptive modulation and coding: MCS table, codeword layout, CRC erasures, BLER, link adaptation."""
import math

import pytest
import torch

from phy.link.amc import (MCS_TABLE, CodewordLink, codeword_layout, estimate_bler, mcs_by_index, select_mcs)
from phy.theory.capacity import awgn_capacity
from phy.channel.registry import make_channel
from phy.fec.codes import LDPC5G_BG2_MAX_K, LDPC5G_MAX_K
from phy.sim.intervals import clopper_pearson


def test_table_is_3gpp_256qam_table_and_the_repetitions_of_mcs_0():
    assert [m.index for m in MCS_TABLE] == list(range(-3, 28))
    # spectral efficiencies of TS 38.214 Table 5.1.3.1-2 (4 decimals in the standard)
    se = {0: 0.2344, 1: 0.3770, 2: 0.6016, 5: 1.4766, 11: 2.7305, 20: 5.3320, 27: 7.4063}
    for m in MCS_TABLE:
        if m.index in se:
            assert m.spectral_efficiency == pytest.approx(se[m.index], abs=1e-4)
        assert m.repetition == (2 ** -m.index if m.index < 0 else 1)
        if m.index < 0:   # MCS 0's rate over 2, 4, 8 times the resources
            assert m.spectral_efficiency * m.repetition == pytest.approx(se[0], abs=1e-4)
    assert all(a.spectral_efficiency < b.spectral_efficiency for a, b in zip(MCS_TABLE, MCS_TABLE[1:]))
    assert mcs_by_index(27) is MCS_TABLE[-1]
    for bad in (28, -4, True, "2"):
        with pytest.raises(ValueError, match="index must be an MCS index"):
            mcs_by_index(bad)


@pytest.mark.parametrize("uses", [16, 100, 192, 1000])
def test_layout_invariants(uses):
    for m in MCS_TABLE:
        r = m.repetition
        base_rate = m.rate * r
        max_k = LDPC5G_BG2_MAX_K if base_rate <= 0.25 else LDPC5G_MAX_K
        per = uses * m.bits_per_symbol
        try:
            lay = codeword_layout(m, uses)
        except ValueError as e:
            if "payload" in str(e):     # a low rate on a small budget: the CRC leaves < 1 bit per example
                s0 = math.ceil(1024 / per)
                assert math.floor(s0 * per * base_rate + 1e-9) - 16 < s0 * r
                continue
            assert "codeword" in str(e)
            assert math.floor(uses * m.bits_per_symbol * base_rate) > max_k
            continue
        assert lay.n == lay.span * uses * m.bits_per_symbol
        assert lay.k == math.floor(lay.n / r * base_rate + 1e-9) <= max_k
        assert lay.span % r == 0 and lay.n * m.rate <= lay.k + 1e-9 * lay.n + r
        assert lay.crc_bits == (24 if lay.k > 3824 else 16)
        assert lay.span * lay.payload_bits + lay.crc_bits + lay.filler_bits == lay.k
        assert 0 <= lay.filler_bits < lay.span
        s0 = lay.span // r
        assert lay.n >= 1024 * r or s0 == 1 or (s0 + 1) * per * base_rate > max_k
        if r > 1:                       # MCS 0's codeword over r times the examples
            base = codeword_layout(mcs_by_index(0), uses)
            assert (lay.k, lay.span, lay.n) == (base.k, r * base.span, r * base.n)


def test_crc_erases_failed_codewords_and_delivers_the_rest_exactly():
    lay = codeword_layout(mcs_by_index(5), 64)       # 16-QAM
    ch = make_channel("awgn", seed=3)
    link = CodewordLink(ch, lay)
    g = torch.Generator().manual_seed(0)
    payload = torch.randint(0, 2, (300, lay.span * lay.payload_bits), generator=g).float()
    high, ok = link(payload, 30.0)
    assert ok.all() and torch.equal(high, payload)
    low, ok = link(payload, -10.0)
    assert not ok.any()
    # in the waterfall some codewords fail; every codeword the CRC passes is exact
    thr = 10 * math.log10(2 ** lay.mcs.spectral_efficiency - 1)
    mid, ok = link(payload, thr + 1.0)
    assert 0 < int(ok.sum()) < 300
    assert torch.equal(mid[ok], payload[ok])


def test_bler_estimate_is_reproducible_agrees_with_independent_runs_and_respects_capacity():
    lay = codeword_layout(mcs_by_index(3), 100)      # QPSK 449/1024
    ch = make_channel("awgn", seed=0)
    shannon = 10 * math.log10(2 ** lay.mcs.spectral_efficiency - 1)
    assert estimate_bler(ch, lay, shannon - 1.0, seed=1).bler == 1.0      # below capacity: every codeword lost
    assert estimate_bler(ch, lay, shannon + 4.0, seed=1).bler == 0.0
    snr = shannon + 1.6
    a = estimate_bler(ch, lay, snr, seed=5, target_errors=10_000, max_codewords=400)
    assert a.errors == estimate_bler(ch, lay, snr, seed=5, target_errors=10_000, max_codewords=400).errors
    # an independent count with another seed and the link called directly
    link = CodewordLink(make_channel("awgn", seed=99), lay)
    g = torch.Generator().manual_seed(7)
    errs = 0
    for _ in range(4):
        p = torch.randint(0, 2, (100, lay.span * lay.payload_bits), generator=g).float()
        _, ok = link(p, snr)
        errs += int((~ok).sum())
    lo_a, hi_a = a.interval()
    lo_b, hi_b = clopper_pearson(errs, 400)
    assert 0 < a.errors < 400 and lo_a <= hi_b and lo_b <= hi_a      # intervals overlap


def _layouts(uses=100):
    return [codeword_layout(m, uses) for m in MCS_TABLE if m.index >= 0]


def test_select_mcs_lazy_search_equals_brute_force():
    lays = _layouts()
    for snr in (-2.0, 3.0, 9.0, 17.0):
        cap = awgn_capacity(snr)

        def bler(lay, cap=cap):          # a smooth synthetic waterfall around 0.8 x capacity
            return 1 / (1 + math.exp(12 * (0.8 * cap - lay.mcs.spectral_efficiency)))

        def dist(bits):
            return 2.0 ** (-bits / 60)

        got = select_mcs(lays, bler, dist, 1.0, cap)
        feasible = [l for l in lays if l.mcs.spectral_efficiency <= cap] or lays[:1]
        best = min(feasible, key=lambda l: (1 - bler(l)) * dist(l.payload_bits) + bler(l))
        assert got.layout == best
        assert len(got.evaluated) <= len(feasible)
        t = select_mcs(lays, bler, dist, 1.0, cap, policy="bler-target", bler_target=0.1)
        ok = [l for l in feasible if bler(l) <= 0.1]
        assert t.layout == (max(ok, key=lambda l: l.mcs.spectral_efficiency) if ok else feasible[-1])


def test_select_mcs_bad_input():
    with pytest.raises(ValueError, match="policy"):
        select_mcs(_layouts(), lambda l: 0.0, lambda b: 0.0, 1.0, 3.0, policy="greedy")
    with pytest.raises(ValueError, match="bler_target"):
        select_mcs(_layouts(), lambda l: 0.0, lambda b: 0.0, 1.0, 3.0, policy="bler-target", bler_target=1.5)
    with pytest.raises(ValueError, match="uses_per_example"):
        codeword_layout(mcs_by_index(2), 0)
    with pytest.raises(ValueError, match="more than one 5G LDPC codeword"):
        codeword_layout(MCS_TABLE[-1], 12288)
    with pytest.raises(ValueError, match="payload"):
        link = CodewordLink(make_channel("awgn", seed=0), codeword_layout(mcs_by_index(2), 64))
        link(torch.zeros(2, 3), 0.0)
