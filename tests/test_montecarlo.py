"""Monte Carlo engine: theory agreement, stopping rules, early stop, resume and reproducibility."""
import math

import numpy as np
import pytest
import torch
from scipy.special import erfc

from phy.channel.flat import AWGN, Rayleigh
from phy.utils.conventions import snr_db_to_no
from phy.mimo.equalization import equalize
from phy.mapping.modulation import QAM
from phy.sim import ResumableCSV, simulate_ber
from phy.sim.points import BER_COLUMNS, STATUS_BUDGET, STATUS_NO_ERRORS, STATUS_SKIPPED, STATUS_TARGET, PointResult, clopper_pearson, point_seed
from phy.sim.trials import FunctionTrial, LinkTrial



# ------------------------------------------------------------------------------------------
# independent closed forms (textbook 16-QAM Gray, written here, not imported from phy)
# ------------------------------------------------------------------------------------------
def _q(x):
    return 0.5 * erfc(np.asarray(x, dtype=float) / math.sqrt(2.0))


def qam16_awgn(esno_db):
    x = np.sqrt(10 ** (esno_db / 10) / 5.0)
    return float((3 * _q(x) + 2 * _q(3 * x) - _q(5 * x)) / 4)


def qam16_rayleigh(esno_db):
    # E_g[Q(c sqrt(g))], g ~ Exp(mean snr/5) -> (1 - sqrt(a / (2 + a))) / 2 with a = c^2 snr / 5
    snr = 10 ** (esno_db / 10)

    def eq(c):
        a = c * c * snr / 5.0
        return 0.5 * (1 - math.sqrt(a / (2 + a)))

    return (3 * eq(1) + 2 * eq(3) - eq(5)) / 4


class UncodedQAMTrial:
    """16-QAM over a phy channel, ZF + nearest-point decisions (what the closed forms assume)."""

    def __init__(self, channel, k=400):
        self.channel = channel
        self.qam = QAM("16qam")
        self.k = k
        self.coderate = 1.0
        self.bits_per_symbol = 4
        self.gen = torch.Generator()

    def reset(self, seed):
        self.gen.manual_seed(point_seed(seed, "src"))
        self.channel.reset(point_seed(seed, "ch"))

    def __call__(self, batch_size, esno_db):
        b = torch.randint(0, 2, (batch_size, self.k), generator=self.gen).float()
        x = self.qam.modulate(b)
        out = self.channel(x, snr_db_to_no(esno_db))
        y, _ = equalize(out.y, out.h, out.no, "zf")
        return b, self.qam.hard_decision(y)


@pytest.mark.parametrize("channel,theory", [(AWGN, qam16_awgn), (Rayleigh, qam16_rayleigh)])
def test_uncoded_16qam_matches_closed_form(channel, theory):
    snrs = [0.0, 4.0, 8.0, 12.0]
    res = simulate_ber(UncodedQAMTrial(channel(seed=3)), snrs, target_errors=1500, max_bits=2_000_000,
                       batch_size=500, seed=11, scheme="none", channel=channel.name, progress=False)
    assert [r.snr_db for r in res] == snrs
    for r in res:
        th = theory(r.esno_db)
        assert r.status == STATUS_TARGET and r.bit_errors >= 1500
        # 99.9 % exact interval (4 points x 2 channels; bits of a symbol are mildly correlated)
        lo, hi = clopper_pearson(r.bit_errors, r.bits, 0.999)
        assert lo <= th <= hi, (r.snr_db, r.ber, th, lo, hi)
        assert r.ber_ci_low <= r.ber <= r.ber_ci_high
        assert r.ebno_db == pytest.approx(r.esno_db - 10 * math.log10(4))
    # the test can fail: 1 dB off is far outside the interval at 8 dB
    r8 = res[2]
    lo, hi = clopper_pearson(r8.bit_errors, r8.bits, 0.999)
    assert not lo <= theory(9.0) <= hi


def test_ebno_input_converts_with_rate_and_bits_per_symbol():
    trial = UncodedQAMTrial(AWGN(seed=0), k=200)
    res = simulate_ber(trial, [4.0], snr_type="ebno", target_errors=800, max_bits=400_000, batch_size=500,
                       progress=False)
    r = res[0]
    assert r.snr_type == "ebno" and r.ebno_db == 4.0
    assert r.esno_db == pytest.approx(4.0 + 10 * math.log10(4))
    lo, hi = clopper_pearson(r.bit_errors, r.bits, 0.999)
    assert lo <= qam16_awgn(r.esno_db) <= hi
    with pytest.raises(ValueError, match="coderate and bits_per_symbol"):
        simulate_ber(FunctionTrial(lambda b, s: (None, None), k=4), [0.0], snr_type="ebno", progress=False)


# ------------------------------------------------------------------------------------------
# A cheap binary symmetric channel trial: p(snr) = 0.2 * 10**(-snr/10), exactly 0 from `zero_at`
# ------------------------------------------------------------------------------------------
class BSCTrial:
    def __init__(self, k=16, zero_at=math.inf):
        self.k = k
        self.zero_at = zero_at
        self.gen = torch.Generator()
        self.calls = {}
        self.resets = []

    def p(self, snr):
        return 0.0 if snr >= self.zero_at else 0.2 * 10 ** (-snr / 10)

    def reset(self, seed):
        self.resets.append(seed)
        self.gen.manual_seed(seed)

    def __call__(self, batch_size, esno_db):
        self.calls[esno_db] = self.calls.get(esno_db, 0) + 1
        b = torch.randint(0, 2, (batch_size, self.k), generator=self.gen)
        flip = (torch.rand(batch_size, self.k, generator=self.gen) < self.p(esno_db)).long()
        return b, b ^ flip


def test_stopping_rules_counts_and_ci():
    t = BSCTrial(k=10)
    res = simulate_ber(t, [0.0, 10.0], target_errors=100, max_bits=5_000, batch_size=50, progress=False)
    a, b = res
    # 0 dB: p = 0.2 -> 100 errors long before 5000 bits; batches of 50 blocks of 10 bits
    assert a.status == STATUS_TARGET and a.bit_errors >= 100 and a.bits % 500 == 0 and a.bits < 5_000
    assert a.blocks * 10 == a.bits and a.ber == a.bit_errors / a.bits and a.bler == a.block_errors / a.blocks
    assert 0.15 < a.ber < 0.25
    # 10 dB: p = 0.02 -> ~100 expected errors in 5000 bits; either reached or budget used exactly
    assert b.status in (STATUS_TARGET, STATUS_BUDGET)
    if b.status == STATUS_BUDGET:
        assert b.bits == 5_000 and b.bit_errors < 100
    lo, hi = clopper_pearson(a.bit_errors, a.bits)
    assert (a.ber_ci_low, a.ber_ci_high) == (lo, hi)
    # block-error target
    res = simulate_ber(BSCTrial(k=10), [0.0], target_errors=None, target_block_errors=7, max_bits=1e6,
                       batch_size=1, progress=False)
    assert res[0].block_errors == 7 and res[0].status == STATUS_TARGET


def test_last_batch_respects_budget():
    t = BSCTrial(k=10)
    res = simulate_ber(t, [0.0], target_errors=None, max_bits=1234, batch_size=100, progress=False)
    # ceil(1234 / 10) = 124 blocks: one batch of 100 then one of 24
    assert res[0].blocks == 124 and res[0].bits == 1240 and t.calls[0.0] == 2


def test_clopper_pearson_against_beta_quantiles():
    from scipy.stats import beta

    lo, hi = clopper_pearson(7, 50)
    assert lo == pytest.approx(beta.ppf(0.025, 7, 44)) and hi == pytest.approx(beta.ppf(0.975, 8, 43))
    assert clopper_pearson(0, 1000)[0] == 0.0 and clopper_pearson(1000, 1000)[1] == 1.0
    assert clopper_pearson(0, 1000)[1] == pytest.approx(1 - 0.025 ** (1 / 1000))
    assert all(math.isnan(v) for v in clopper_pearson(0, 0))


def test_early_stop_skips_with_nan_and_reason_never_zero(tmp_path):
    path = tmp_path / "ber.csv"
    t = BSCTrial(k=8, zero_at=6.0)
    snrs = [0.0, 3.0, 6.0, 9.0, 12.0]
    res = simulate_ber(t, snrs, target_errors=50, max_bits=4_000, batch_size=100, csv_file=path,
                       scheme="s", channel="bsc", progress=False)
    assert [r.status for r in res[:2]] == [STATUS_TARGET, STATUS_TARGET]
    assert res[2].status == STATUS_NO_ERRORS and res[2].ber == 0.0 and res[2].bits >= 4_000
    assert res[2].ber_ci_high > 0
    for r in res[3:]:
        assert r.status == STATUS_SKIPPED and "no errors at previous point" in r.status
        assert math.isnan(r.ber) and math.isnan(r.bler) and r.bits == 0
    assert 9.0 not in t.calls and 12.0 not in t.calls
    rows = ResumableCSV(path, BER_COLUMNS, ("scheme", "channel", "snr_type", "snr_db")).rows()
    assert len(rows) == 5
    assert [r["ber"] for r in rows[3:]] == ["nan", "nan"]
    assert all(r["status"] == STATUS_SKIPPED for r in rows[3:])
    # without early stop the points are simulated (and see no errors)
    t2 = BSCTrial(k=8, zero_at=6.0)
    res2 = simulate_ber(t2, snrs, target_errors=50, max_bits=800, batch_size=100, early_stop=False,
                        progress=False)
    assert [r.status for r in res2[2:]] == [STATUS_NO_ERRORS] * 3 and 12.0 in t2.calls
    # resuming the early-stopped CSV with early stop off simulates the skipped points, keeps the rest
    before = path.read_text().splitlines()
    t3 = BSCTrial(k=8, zero_at=6.0)
    res3 = simulate_ber(t3, snrs, target_errors=50, max_bits=4_000, batch_size=100, csv_file=path,
                        scheme="s", channel="bsc", progress=False, early_stop=False)
    assert set(t3.calls) == {9.0, 12.0}
    assert [r.status for r in res3[3:]] == [STATUS_NO_ERRORS] * 2 and res3[:3] == res[:3]
    after = path.read_text().splitlines()
    assert after[:4] == before[:4] and len(after) == 6 and "skipped" not in path.read_text()
    assert ResumableCSV(path, BER_COLUMNS, ("scheme", "channel", "snr_type", "snr_db")).discard(
        ("s", "bsc", "esno", 99.0)) is False


def test_unsorted_sweep_only_skips_higher_snr():
    t = BSCTrial(k=8, zero_at=6.0)
    res = simulate_ber(t, [6.0, 0.0, 9.0], target_errors=20, max_bits=800, batch_size=100, progress=False)
    assert [r.status for r in res] == [STATUS_NO_ERRORS, STATUS_TARGET, STATUS_SKIPPED]


class Interrupt(Exception):
    pass


def test_resume_skips_finished_points_and_csv_is_byte_identical(tmp_path):
    snrs = [0.0, 2.0, 4.0, 6.0]
    kw = dict(target_errors=40, max_bits=20_000, batch_size=64, seed=5, scheme="bsc16", channel="bsc",
              progress=False)
    full = tmp_path / "full.csv"
    t_full = BSCTrial()
    ref = simulate_ber(t_full, snrs, csv_file=full, **kw)

    part = tmp_path / "part.csv"
    done = []

    def stop_after_two(res):
        done.append(res.snr_db)
        if len(done) == 2:
            raise Interrupt

    t1 = BSCTrial()
    with pytest.raises(Interrupt):
        simulate_ber(t1, snrs, csv_file=part, callback=stop_after_two, **kw)
    assert set(t1.calls) == {0.0, 2.0}
    # a torn half-written row (crash during a write) is cut off on reopen
    with open(part, "a") as fh:
        fh.write("bsc16,bsc,4.0,esno,4.0,nan,0.01")
    t2 = BSCTrial()
    res = simulate_ber(t2, snrs, csv_file=part, **kw)
    assert set(t2.calls) == {4.0, 6.0}, "finished points must not be recomputed"
    assert len(t2.resets) == 2
    assert part.read_bytes() == full.read_bytes()
    assert res == ref
    # a third run computes nothing
    t3 = BSCTrial()
    assert simulate_ber(t3, snrs, csv_file=part, **kw) == ref and t3.calls == {}


def test_same_seed_same_rows_different_seed_different_rows(tmp_path):
    kw = dict(target_errors=30, max_bits=10_000, batch_size=32, scheme="a", channel="bsc", progress=False)
    a = simulate_ber(BSCTrial(), [0.0, 3.0], seed=1, csv_file=tmp_path / "a.csv", **kw)
    b = simulate_ber(BSCTrial(), [0.0, 3.0], seed=1, csv_file=tmp_path / "b.csv", **kw)
    c = simulate_ber(BSCTrial(), [0.0, 3.0], seed=2, **kw)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert a == b and a != c
    # per-point seeds: a point alone gives the same row as inside a sweep
    alone = simulate_ber(BSCTrial(), [3.0], seed=1, **kw)
    assert alone[0] == a[1]
    assert a[1].seed == point_seed(1, "a", "bsc", "esno", 3.0)


def test_link_trial_resets_source_and_channel():
    class EchoLink(torch.nn.Module):
        """Bits -> BPSK over the channel -> sign; k = 32, rate 1, 1 bit/symbol."""
        k = 32
        coderate = 1.0
        bits_per_symbol = 1

        def __init__(self, channel):
            super().__init__()
            self.channel = channel

        def forward(self, bits, snr_db):
            x = (1 - 2 * bits).to(torch.complex64)
            y = self.channel(x, snr_db_to_no(snr_db)).y
            return type("Out", (), {"x_hat": (y.real < 0).float()})()

    ch = AWGN(seed=0)
    trial = LinkTrial(EchoLink(ch))
    assert trial.k == 32 and trial.coderate == 1.0 and trial.bits_per_symbol == 1
    r1 = simulate_ber(trial, [0.0, 2.0], snr_type="ebno", target_errors=200, max_bits=1e5, batch_size=100,
                      progress=False)
    r2 = simulate_ber(trial, [2.0], snr_type="ebno", target_errors=200, max_bits=1e5, batch_size=100,
                      progress=False)
    assert r1[1] == r2[0]
    # BPSK at Es/N0 = Eb/N0 = 0 dB (complex noise, real decision): Q(sqrt(2 Es/N0))
    lo, hi = clopper_pearson(r1[0].bit_errors, r1[0].bits, 0.999)
    assert lo <= float(_q(math.sqrt(2.0))) <= hi


def test_bad_inputs():
    t = BSCTrial()
    with pytest.raises(ValueError, match="empty"):
        simulate_ber(t, [], progress=False)
    with pytest.raises(ValueError, match="max_bits"):
        simulate_ber(t, [0.0], max_bits=0, progress=False)
    with pytest.raises(ValueError, match="max_bits"):
        simulate_ber(t, [0.0], max_bits=-5, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        simulate_ber(t, [0.0], batch_size=0, progress=False)
    with pytest.raises(ValueError, match="target_errors"):
        simulate_ber(t, [0.0], target_errors=0, progress=False)
    with pytest.raises(ValueError, match="snr_type"):
        simulate_ber(t, [0.0], snr_type="sinr", progress=False)
    with pytest.raises(ValueError, match="finite"):
        simulate_ber(t, [float("inf")], progress=False)
    with pytest.raises(TypeError):
        simulate_ber(t, "0:10:2", progress=False)
    with pytest.raises(ValueError, match="bits_hat shape"):
        simulate_ber(FunctionTrial(lambda b, s: (torch.zeros(b, 4), torch.zeros(b, 3)), k=4), [0.0],
                     progress=False)
    with pytest.raises(ValueError, match="k"):
        FunctionTrial(lambda b, s: None, k=0)


@pytest.mark.parametrize("shape, message", [((5, 4), "batch_size=3"), ((3, 6), "k=4"), ((3, 2), "k=4")])
def test_trial_returning_other_blocks_or_widths_is_refused(shape, message):
    """A trial must return ``[batch_size, k]`` bits: more rows or columns used to be counted into the BER."""
    trial = FunctionTrial(lambda b, s: (torch.zeros(*shape), torch.zeros(*shape)), k=4)
    with pytest.raises(ValueError, match=message):
        simulate_ber(trial, [0.0], batch_size=3, max_bits=100, progress=False)


def test_duplicate_snrs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="repeat"):
        simulate_ber(BSCTrial(), [0.0, 1.0, 0.0], max_bits=1000, progress=False, csv_file=tmp_path / "b.csv")
    assert not (tmp_path / "b.csv").exists() or len(open(tmp_path / "b.csv").readlines()) <= 1


def test_non_numeric_cell_in_a_stored_row_names_the_file(tmp_path):
    p = tmp_path / "b.csv"
    simulate_ber(BSCTrial(), [0.0], max_bits=1000, progress=False, csv_file=p)
    header, row = p.read_text().splitlines()
    cells = row.split(",")
    cells[header.split(",").index("bits")] = "lots"
    p.write_text(header + "\n" + ",".join(cells) + "\n")
    with pytest.raises(ValueError, match=r"b\.csv.*'bits' must be an int, got 'lots'"):
        simulate_ber(BSCTrial(), [0.0], max_bits=1000, progress=False, csv_file=p)


def test_point_result_row_roundtrip():
    r = PointResult("ldpc5g", "awgn", 2.0, "ebno", 5.0103, 2.0, 0.01, float("nan"), 3, 300, 1, 10,
                    0.0, 0.03, float("nan"), float("nan"), 7, STATUS_TARGET)
    from phy.sim.resultstore import format_value

    back = PointResult.from_row({k: format_value(v) for k, v in r.to_row().items()})
    assert back.to_row().keys() == r.to_row().keys()
    assert back.ber == r.ber and math.isnan(back.bler) and back.bits == 300 and back.status == r.status
    assert tuple(r.to_row()) == BER_COLUMNS


def test_progress_bar_only_when_asked_or_on_a_tty(capsys):
    simulate_ber(BSCTrial(), [0.0], target_errors=10, max_bits=1000, batch_size=10, scheme="bar", channel="bsc",
                 progress=True)
    assert "bar/bsc" in capsys.readouterr().err
    simulate_ber(BSCTrial(), [0.0], target_errors=10, max_bits=1000, batch_size=10, scheme="bar", channel="bsc")
    assert "bar/bsc" not in capsys.readouterr().err  # pytest's captured stderr is not a terminal


def test_resume_with_other_seed_refuses_stored_rows(tmp_path):
    # the CSV key has no seed: resuming a file written with seed=1 under seed=2 used to return the
    # seed-1 rows silently as if they were the seed-2 results
    kw = dict(target_errors=30, max_bits=10_000, batch_size=32, scheme="a", channel="bsc", progress=False)
    path = tmp_path / "r.csv"
    simulate_ber(BSCTrial(), [0.0, 3.0], seed=1, csv_file=path, **kw)
    before = path.read_bytes()
    t = BSCTrial()
    with pytest.raises(ValueError, match="seed"):
        simulate_ber(t, [0.0, 3.0], seed=2, csv_file=path, **kw)
    assert path.read_bytes() == before and t.calls == {}


# ------------------------------------------------------------------------------------------
# Batched SNR points (snr_batch > 1)
# ------------------------------------------------------------------------------------------
class BatchedBSCTrial(BSCTrial):
    """:class:`BSCTrial` with a batched method: slice ``s`` flips bits with ``p(esno_dbs[s])``."""

    def __init__(self, k=16, zero_at=math.inf):
        super().__init__(k, zero_at)
        self.batched_calls = []  # (batch_size, tuple of SNRs) per call

    def batched(self, batch_size, esno_dbs):
        self.batched_calls.append((batch_size, tuple(esno_dbs)))
        S = len(esno_dbs)
        b = torch.randint(0, 2, (S, batch_size, self.k), generator=self.gen)
        p = torch.tensor([self.p(s) for s in esno_dbs], dtype=torch.float64).reshape(S, 1, 1)
        flip = (torch.rand(S, batch_size, self.k, generator=self.gen, dtype=torch.float64) < p).long()
        return b, b ^ flip


class CountingLinkTrial(LinkTrial):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.single_calls = 0
        self.batched_sizes = []

    def __call__(self, batch_size, esno_db):
        self.single_calls += 1
        return super().__call__(batch_size, esno_db)

    def batched(self, batch_size, esno_dbs):
        self.batched_sizes.append(len(esno_dbs))
        return super().batched(batch_size, esno_dbs)


def qpsk_awgn(esno_db):
    # Gray QPSK, Es/N0 per complex symbol: each bit sees BPSK with Eb = Es/2 -> Q(sqrt(Es/N0))
    return float(_q(math.sqrt(10 ** (esno_db / 10))))


def _same_rate(a, b, z=4.5):
    """Two binomial estimates agree within z standard errors of their difference."""
    p = (a.bit_errors + b.bit_errors) / (a.bits + b.bits)
    se = math.sqrt(p * (1 - p) * (1 / a.bits + 1 / b.bits))
    return abs(a.ber - b.ber) <= z * se


@pytest.mark.parametrize("modulation,theory,snrs", [
    ("qpsk", qpsk_awgn, [0.0, 3.0, 6.0, 8.0]),
    ("16qam", qam16_awgn, [4.0, 7.0, 10.0, 13.0]),
])
def test_batched_sweep_matches_sequential_and_theory(modulation, theory, snrs):
    from phy.link.digital import DigitalLink

    def make():
        # maxlog hard decisions are the nearest-point decisions the closed forms assume
        link = DigitalLink(AWGN(seed=2), code="none", modulation=modulation, demapping="maxlog",
                           code_kwargs={"k": 256})
        return CountingLinkTrial(link)

    kw = dict(target_errors=1500, max_bits=3_000_000, batch_size=200, seed=7, scheme="none", channel="awgn",
              progress=False)
    seq_trial, bat_trial = make(), make()
    seq = simulate_ber(seq_trial, snrs, **kw)
    bat = simulate_ber(bat_trial, snrs, snr_batch=4, **kw)
    # the batched run really ran batched: one link call per iteration for all active points
    assert bat_trial.single_calls == 0 and bat_trial.batched_sizes[0] == 4
    assert seq_trial.batched_sizes == [] and seq_trial.single_calls > 0
    assert [r.snr_db for r in bat] == snrs
    for s, b in zip(seq, bat):
        assert b.status == STATUS_TARGET and b.bit_errors >= 1500 and b.bits % (200 * 256) == 0
        assert b.seed == s.seed == point_seed(7, "none", "awgn", "esno", b.snr_db)
        assert b.esno_db == s.esno_db and b.blocks * 256 == b.bits
        th = theory(b.esno_db)
        for r in (s, b):
            lo, hi = clopper_pearson(r.bit_errors, r.bits, 0.999)
            assert lo <= th <= hi, (modulation, r.snr_db, r.ber, th, lo, hi)
        assert _same_rate(s, b), (s.ber, b.ber)
    # not the same random numbers as the sequential run (statistically equivalent only)
    assert any(s.bit_errors != b.bit_errors for s, b in zip(seq, bat))
    # the check can fail: the closed form 1 dB off is outside the batched interval
    lo, hi = clopper_pearson(bat[2].bit_errors, bat[2].bits, 0.999)
    assert not lo <= theory(bat[2].esno_db + 1.0) <= hi


def test_batched_per_point_stopping_and_counts():
    t = BatchedBSCTrial(k=10)
    order = []
    # 0 dB: p = 0.2 (100 errors after ~500 bits); 13 dB: p ~ 0.01 (~50 expected in the 5000-bit budget)
    res = simulate_ber(t, [0.0, 13.0], target_errors=100, max_bits=5_000, batch_size=50, progress=False,
                       snr_batch=2, callback=lambda r: order.append(r.snr_db))
    a, b = res
    assert order == [0.0, 13.0], "the low-SNR point must finish (and be reported) first"
    assert a.status == STATUS_TARGET and a.bit_errors >= 100 and a.bits % 500 == 0 and a.bits < 5_000
    assert b.status == STATUS_BUDGET and b.bits == 5_000 and 0 < b.bit_errors < 100
    for r in res:  # counts and intervals of each slice, not of the whole batch
        assert r.blocks * 10 == r.bits and r.ber == r.bit_errors / r.bits and r.bler == r.block_errors / r.blocks
        assert (r.ber_ci_low, r.ber_ci_high) == clopper_pearson(r.bit_errors, r.bits)
        assert (r.bler_ci_low, r.bler_ci_high) == clopper_pearson(r.block_errors, r.blocks)
    assert 0.15 < a.ber < 0.25 and 0.002 < b.ber < 0.02
    # the group shrinks once the 0 dB point leaves: S=2 calls, then S=1 calls for the rest of 13 dB
    sizes = [len(s) for _, s in t.batched_calls]
    n2 = a.blocks // 50  # 500 bits per call; the 13 dB point needs 10 calls for its 5000 bits
    assert sizes == [2] * n2 + [1] * (10 - n2)
    assert all(s == (0.0, 13.0) for _, s in t.batched_calls[:n2]) and all(s == (13.0,) for _, s in t.batched_calls[n2:])
    # block-error target per point
    res = simulate_ber(BatchedBSCTrial(k=10), [0.0, 1.0], target_errors=None, target_block_errors=7, max_bits=1e6,
                       batch_size=1, progress=False, snr_batch=2)
    assert [r.block_errors for r in res] == [7, 7] and all(r.status == STATUS_TARGET for r in res)


def test_batched_last_batch_respects_budget():
    t = BatchedBSCTrial(k=10)
    res = simulate_ber(t, [0.0, 20.0, 40.0], target_errors=None, max_bits=1234, batch_size=100, progress=False,
                       snr_batch=3)
    # ceil(1234 / 10) = 124 blocks per point: one batched call of 100 blocks then one of 24
    assert [(bs, len(s)) for bs, s in t.batched_calls] == [(100, 3), (24, 3)]
    assert all(r.blocks == 124 and r.bits == 1240 for r in res)
    assert t.calls == {}  # never called point by point


def test_batched_group_of_one_point_is_the_sequential_point():
    kw = dict(target_errors=30, max_bits=10_000, batch_size=32, seed=4, scheme="a", channel="bsc", progress=False)
    t = BatchedBSCTrial()
    one = simulate_ber(t, [3.0], snr_batch=4, **kw)
    assert t.batched_calls == [] and one == simulate_ber(BSCTrial(), [3.0], **kw)


def test_batched_early_stop_inside_a_group_and_across_groups(tmp_path):
    snrs = [0.0, 3.0, 6.0, 9.0, 12.0]
    kw = dict(target_errors=50, max_bits=4_000, batch_size=100, scheme="s", channel="bsc", progress=False)
    seq = simulate_ber(BSCTrial(k=8, zero_at=6.0), snrs, **kw)
    # one group of 5: 6 dB ends error-free, so 9 and 12 dB (same group, higher SNR) are skipped
    path = tmp_path / "ber.csv"
    t = BatchedBSCTrial(k=8, zero_at=6.0)
    res = simulate_ber(t, snrs, snr_batch=5, csv_file=path, **kw)
    assert [r.status for r in res] == [STATUS_TARGET, STATUS_TARGET, STATUS_NO_ERRORS, STATUS_SKIPPED,
                                       STATUS_SKIPPED]
    assert [r.status for r in res] == [r.status for r in seq]
    assert res[2].ber == 0.0 and res[2].bits >= 4_000 and res[2].ber_ci_high > 0
    assert res[3:] == seq[3:]  # the skipped rows are the sequential ones (NaN, zero counts, reason)
    for r in res[3:]:
        assert math.isnan(r.ber) and math.isnan(r.bler) and r.bits == 0 and r.bit_errors == 0
    rows = ResumableCSV(path, BER_COLUMNS, ("scheme", "channel", "snr_type", "snr_db")).rows()
    assert len(rows) == 5 and sorted(float(r["snr_db"]) for r in rows) == snrs
    assert {r["snr_db"]: r["status"] for r in rows}["12.0"] == STATUS_SKIPPED
    # groups of 2: [0, 3], [6, 9] (9 skipped in its group), then 12 is skipped without being simulated
    t2 = BatchedBSCTrial(k=8, zero_at=6.0)
    res2 = simulate_ber(t2, snrs, snr_batch=2, **kw)
    assert [r.status for r in res2] == [r.status for r in seq]
    assert {s for _, snr in t2.batched_calls for s in snr} == {0.0, 3.0, 6.0, 9.0}
    # without early stop every point is simulated
    res3 = simulate_ber(BatchedBSCTrial(k=8, zero_at=6.0), snrs, snr_batch=5, early_stop=False,
                        **dict(kw, max_bits=800))
    assert [r.status for r in res3[2:]] == [STATUS_NO_ERRORS] * 3
    # unsorted sweep: only later points with a higher SNR are skipped, as in the sequential run
    t4 = BatchedBSCTrial(k=8, zero_at=6.0)
    res4 = simulate_ber(t4, [6.0, 0.0, 9.0], target_errors=20, max_bits=800, batch_size=100, progress=False,
                        snr_batch=3)
    assert [r.status for r in res4] == [STATUS_NO_ERRORS, STATUS_TARGET, STATUS_SKIPPED]


def test_batched_resume_keeps_finished_rows_and_completes(tmp_path):
    snrs = [0.0, 2.0, 4.0, 6.0]
    kw = dict(target_errors=40, max_bits=20_000, batch_size=64, seed=5, scheme="bsc16", channel="bsc",
              progress=False, snr_batch=4)
    full = simulate_ber(BatchedBSCTrial(), snrs, csv_file=tmp_path / "full.csv", **kw)

    part = tmp_path / "part.csv"
    done = []

    def stop_after_first(res):
        done.append(res)
        raise Interrupt

    with pytest.raises(Interrupt):
        simulate_ber(BatchedBSCTrial(), snrs, csv_file=part, callback=stop_after_first, **kw)
    first = done[0]
    assert first.status == STATUS_TARGET and first.snr_db == 0.0  # highest error rate finishes first
    before = part.read_text().splitlines()
    assert len(before) == 2  # header + the one finished row; the interrupted points were not written
    assert first == full[0]  # same group, same seed: the same row as the uninterrupted run

    t = BatchedBSCTrial()
    res = simulate_ber(t, snrs, csv_file=part, **kw)
    assert 0.0 not in {s for _, g in t.batched_calls for s in g}, "a finished point must not be recomputed"
    assert t.batched_calls[0][1] == (2.0, 4.0, 6.0)  # the rest runs as one new group
    after = part.read_text().splitlines()
    assert after[:2] == before and len(after) == 5
    assert sorted(float(r["snr_db"]) for r in ResumableCSV(part, BER_COLUMNS, ("scheme", "channel", "snr_type",
                                                                               "snr_db")).rows()) == snrs
    assert [r.snr_db for r in res] == snrs and res[0] == first
    for r, f in zip(res, full):  # recomputed points: other draws, same statistics
        assert r.status == STATUS_TARGET and r.seed == f.seed and _same_rate(r, f)
    # a third run computes nothing; another master seed is refused
    t3 = BatchedBSCTrial()
    assert simulate_ber(t3, snrs, csv_file=part, **kw) == res and t3.batched_calls == [] and t3.calls == {}
    with pytest.raises(ValueError, match="seed"):
        simulate_ber(BatchedBSCTrial(), snrs, csv_file=part, **dict(kw, seed=6))


def test_batched_same_seed_same_rows(tmp_path):
    kw = dict(target_errors=30, max_bits=10_000, batch_size=32, scheme="a", channel="bsc", progress=False,
              snr_batch=3)
    snrs = [0.0, 3.0, 6.0]
    t = BatchedBSCTrial()  # one trial object: the group reset must make the second run repeat the first
    a = simulate_ber(t, snrs, seed=1, csv_file=tmp_path / "a.csv", **kw)
    b = simulate_ber(t, snrs, seed=1, csv_file=tmp_path / "b.csv", **kw)
    c = simulate_ber(BatchedBSCTrial(), snrs, seed=2, **kw)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert a == b
    # another master seed draws other numbers (not only another seed column)
    assert [(r.bit_errors, r.bits) for r in a] != [(r.bit_errors, r.bits) for r in c]
    assert [r.seed for r in a] == [point_seed(1, "a", "bsc", "esno", s) for s in snrs]


def test_batched_function_trial_and_bad_inputs():
    t = BatchedBSCTrial(k=8)
    ft = FunctionTrial(t, k=8, reset=t.reset, batched_fn=t.batched)
    res = simulate_ber(ft, [0.0, 3.0], target_errors=20, max_bits=2_000, batch_size=50, progress=False, snr_batch=2)
    assert all(r.status == STATUS_TARGET for r in res) and len(t.batched_calls) > 0
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="snr_batch"):
            simulate_ber(BatchedBSCTrial(), [0.0], progress=False, snr_batch=bad)
    # a trial without a batched method cannot run batched
    with pytest.raises(ValueError, match="batched"):
        simulate_ber(BSCTrial(), [0.0, 1.0], progress=False, snr_batch=2)
    assert not hasattr(FunctionTrial(t, k=8), "batched")
    with pytest.raises(TypeError, match="batched_fn"):
        FunctionTrial(t, k=8, batched_fn=3)
    # a batched trial must return one slice per SNR point
    wrong = FunctionTrial(t, k=8, batched_fn=lambda bs, snrs: (torch.zeros(1, bs, 8), torch.zeros(1, bs, 8)))
    with pytest.raises(ValueError, match=r"S=2"):
        simulate_ber(wrong, [0.0, 1.0], progress=False, snr_batch=2)


# ------------------------------------------------------------------------------------------
# ScrambledZeroTrial: the all-zero codeword with scrambling
# ------------------------------------------------------------------------------------------
def _digital_link(code, channel, **code_kw):
    from phy.fec.codes import make_code
    from phy.link.digital import DigitalLink

    return DigitalLink(channel, code=make_code(code, **code_kw), modulation="16qam")


@pytest.mark.parametrize("fallback", [False, True])
@pytest.mark.parametrize("kind,esno_db", [("awgn", 8.0), ("rayleigh", 14.0)])
def test_scrambled_zero_uncoded_matches_closed_form(kind, esno_db, fallback, monkeypatch):
    """Uncoded 16-QAM through the scrambled all-zero trial (compiled kernels, or the torch path
    that other devices use) has the textbook BER (closed forms written in this file)."""
    from phy.mapping import qam_kernels
    from phy.sim.trials import ScrambledZeroTrial

    if fallback:
        monkeypatch.setattr(qam_kernels, "available", lambda: False)
    channel = AWGN(seed=1) if kind == "awgn" else Rayleigh(seed=1)
    trial = ScrambledZeroTrial(_digital_link("none", channel, k=512), k=512)
    res = simulate_ber(trial, [esno_db], batch_size=256, target_errors=None, max_bits=400_000, seed=3,
                       progress=False)[0]
    theory = qam16_awgn(esno_db) if kind == "awgn" else qam16_rayleigh(esno_db)
    # 4 sigma, with the variance of whole symbols (the 4 bits of a symbol share its noise and fade)
    assert abs(res.ber - theory) < 4 * math.sqrt(4 * theory * (1 - theory) / res.bits), (res.ber, theory)


def _two_proportion_z(e1, n1, e2, n2):
    p = (e1 + e2) / (n1 + n2)
    return (e1 / n1 - e2 / n2) / math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))


@pytest.mark.parametrize("code,kw,k,esno_db", [
    ("ldpc5g", dict(k=256, n=512, decoder="layered", decoder_kwargs={"early_stop": True}), 256, 7.0),
    ("hamming74", dict(), 16, 7.0),
])
def test_scrambled_zero_equals_random_codewords(code, kw, k, esno_db):
    """BER and BLER of the scrambled all-zero codeword equal those of random codewords through the
    plain DigitalLink (Sionna's encoder, mapper and demapper) within Monte Carlo error (|z| < 4;
    the BER test treats bits as independent, which makes it stricter, not looser)."""
    from phy.sim.trials import ScrambledZeroTrial

    link = _digital_link(code, AWGN(seed=2), **kw)
    kwargs = dict(batch_size=250, target_errors=None, max_bits=2500 * k, seed=5, progress=False)
    a = simulate_ber(ScrambledZeroTrial(link, k=k), [esno_db], **kwargs)[0]
    b = simulate_ber(LinkTrial(link, k=k), [esno_db], **kwargs)[0]
    assert 0.05 < b.bler < 0.95, f"test point badly placed: BLER {b.bler}"
    assert abs(_two_proportion_z(a.block_errors, a.blocks, b.block_errors, b.blocks)) < 4, (a.bler, b.bler)
    assert abs(_two_proportion_z(a.bit_errors, a.bits, b.bit_errors, b.bits)) < 4 * 3, (a.ber, b.ber)


def test_scrambled_zero_trial_batched_and_reproducible():
    from phy.sim.trials import ScrambledZeroTrial

    link = _digital_link("hamming74", AWGN(seed=0))
    trial = ScrambledZeroTrial(link, k=64)
    trial.reset(7)
    bits, hat = trial.batched(10, [0.0, 30.0])
    assert bits.shape == hat.shape == (2, 10, 64) and not bits.any()
    assert hat[0].any() and not hat[1].any()  # errors at 0 dB, none at 30 dB
    trial.reset(7)
    assert torch.equal(trial.batched(10, [0.0, 30.0])[1], hat)
    with pytest.raises(TypeError, match="DigitalLink"):
        ScrambledZeroTrial(object())


# ------------------------------------------------------------------------------------------
# Adaptive SNR grid
# ------------------------------------------------------------------------------------------
def _waterfall_trial(calls=None):
    """Independent bit errors with a steepening 'waterfall' BER 10**(-0.3 (s - 2)^2) for s > 2."""
    def rate(esno_db):
        return 0.3 if esno_db <= 2 else 0.3 * 10 ** (-0.3 * (esno_db - 2) ** 2)

    def fn(batch_size, esno_db):
        if calls is not None:
            calls.append(esno_db)
        g = torch.Generator().manual_seed(int(1000 * esno_db) + batch_size)
        return torch.zeros(batch_size, 64), (torch.rand(batch_size, 64, generator=g) < rate(esno_db)).float()

    return FunctionTrial(fn, k=64), rate


def test_adaptive_grid_resolves_the_waterfall_and_stops_below_the_floor(tmp_path):
    from phy.sim.adaptive import curve_resolution, simulate_ber_adaptive

    trial, rate = _waterfall_trial()
    kw = dict(min_ber=1e-5, target_errors=100, max_bits=1e9, batch_size=4096, max_batch_size=4096 * 16,
              coarse_step=1.0, max_decades=0.75, progress=False, csv_file=tmp_path / "a.csv")
    res = simulate_ber_adaptive(trial, 0.0, 30.0, **kw)
    snrs = [r.snr_db for r in res]
    assert snrs == sorted(snrs) and len(set(snrs)) == len(snrs)
    # the Sionna-style stop: the march ends at its first point below the floor; refinement may add
    # one midpoint below it (between that point and the last one above), never beyond
    assert res[-1].ber < 1e-5 and sum(r.ber < 1e-5 for r in res) <= 2
    assert res[-1].bit_errors >= 100
    cr = curve_resolution(res, 1e-5, metric="ber", top=0.2)
    assert cr["max_step_decades"] <= 0.75 * 1.5 and cr["points_between"] >= 6, cr
    for r in res:  # every point is an honest estimate of the true curve (4 sigma, independent bits)
        p = rate(r.snr_db)
        assert abs(r.ber - p) < 4 * math.sqrt(p * (1 - p) / r.bits) + 1e-12, (r.snr_db, r.ber, p)
    # resume: the same call on the finished CSV simulates nothing and returns the same rows
    calls = []
    trial2, _ = _waterfall_trial(calls)
    assert simulate_ber_adaptive(trial2, 0.0, 30.0, **kw) == res and calls == []
    # an interrupted run (first 4 rows kept) finishes with the same file as the uninterrupted one
    lines = (tmp_path / "a.csv").read_text().splitlines(keepends=True)
    (tmp_path / "b.csv").write_text("".join(lines[:5]))
    res_b = simulate_ber_adaptive(trial, 0.0, 30.0, **dict(kw, csv_file=tmp_path / "b.csv"))
    assert res_b == res and (tmp_path / "b.csv").read_text() == "".join(lines)


def test_adaptive_grid_ends_at_stop_without_floor_and_bad_input():
    from phy.sim.adaptive import simulate_ber_adaptive

    trial, _ = _waterfall_trial()
    res = simulate_ber_adaptive(trial, 0.0, 3.0, target_errors=50, max_bits=1e6, batch_size=1000,
                                coarse_step=1.0, progress=False)
    assert [r.snr_db for r in res][0] == 0.0 and res[-1].snr_db == 3.0
    with pytest.raises(ValueError, match="start < stop"):
        simulate_ber_adaptive(trial, 3.0, 3.0)
    with pytest.raises(ValueError, match="at most one"):
        simulate_ber_adaptive(trial, 0.0, 3.0, min_ber=1e-3, min_bler=1e-3)
    with pytest.raises(ValueError, match="< 1"):
        simulate_ber_adaptive(trial, 0.0, 3.0, min_bler=2.0)
    with pytest.raises(TypeError, match="early_stop"):
        simulate_ber_adaptive(trial, 0.0, 3.0, early_stop=True)
    with pytest.raises(ValueError, match="min_step"):
        simulate_ber_adaptive(trial, 0.0, 3.0, coarse_step=0.01)


def test_batch_growth_keeps_counts_and_budget():
    calls = []

    def fn(batch_size, esno_db):
        calls.append(batch_size)
        return torch.zeros(batch_size, 8), torch.zeros(batch_size, 8)

    res = simulate_ber(FunctionTrial(fn, k=8), [1.0], batch_size=10, max_batch_size=80, target_errors=5,
                       max_bits=8 * 500, progress=False)[0]
    assert calls == [10, 20, 40, 80, 80, 80, 80, 80, 30] and res.bits == 8 * 500
    with pytest.raises(ValueError, match="max_batch_size"):
        simulate_ber(FunctionTrial(fn, k=8), [1.0], batch_size=10, max_batch_size=5, progress=False)


def test_adaptive_grid_lands_on_a_straight_waterfall_where_it_aims(monkeypatch):
    """On a noise-free log-linear curve the extrapolations are exact: the final point lands on ``_FINAL_AIM *
    floor`` (not just above the floor, which would cost almost as much and need another point), from a point
    at most ``_FINAL_REACH * max_decades`` above it, and no other step exceeds ``max_decades``."""
    import phy.sim.adaptive as mc

    def curve(snr):   # 0.5 up to 5 dB, then 3 decades per dB
        return min(0.5, 0.5 * 10 ** (-3.0 * (snr - 5.0)))

    def fake(trial, snrs, **kw):
        b = curve(snrs[0])
        return [mc.PointResult("s", "c", snrs[0], "esno", snrs[0], math.nan, math.nan, b, 0, 0, 100, int(100 / b),
                               0, 0, 0, 0, 0, "target_block_errors")]

    monkeypatch.setattr(mc, "simulate_ber", fake)
    # (with 2 dB coarse steps the saturated points stay out of the final line: they would flatten it and the
    # final step would overshoot far below the floor)
    for start, coarse, floor in ((0.0, 1.0, 1e-5), (0.3, 1.0, 1e-5), (0.6, 1.0, 1e-5), (0.0, 2.0, 1e-4), (0.0, 2.0, 1e-5)):
        res = mc.simulate_ber_adaptive(None, start, 20.0, min_bler=floor, max_decades=0.75, coarse_step=coarse,
                                       progress=False)
        rates = [r.bler for r in res]
        assert rates[-1] < floor <= rates[-2]
        # SNRs are rounded to 0.001 dB: 3 decades per dB -> rates within 10**0.0015 (after 2 dB coarse steps the
        # first point of the waterfall may be the only one to extrapolate from: then within 0.25 decades)
        tol = 0.002 if coarse == 1.0 else 0.25
        assert abs(math.log10(rates[-1] / (mc._FINAL_AIM * floor))) < tol, rates
        assert math.log10(rates[-2] / rates[-1]) <= mc._FINAL_REACH * 0.75 + tol
        steps = [math.log10(a / b) for a, b in zip(rates, rates[1:]) if a < 0.5]
        assert max(steps[:-1]) <= 0.75 + 0.002, steps
        assert sum(r < 10 * floor for r in rates) <= 2, rates   # the point to jump from and the final one


def test_scrambled_zero_counts_in_one_pass_equal_the_decoded_logits(monkeypatch):
    """The fused chain + decoder + count (``count_errors``) gives the rows of the three-step path (logits,
    decoder, comparison) exactly: the same keys, the same numbers."""
    from phy.fec.codes import LDPC5G
    from phy.link.digital import DigitalLink
    from phy.sim.trials import ScrambledZeroTrial

    def rows(fused):
        trial = ScrambledZeroTrial(DigitalLink(AWGN(seed=3), code=LDPC5G(512, 1024, decoder="layered-int8"),
                                               modulation="16qam"))
        assert trial.counts_in_one_pass
        if not fused:
            monkeypatch.setattr(ScrambledZeroTrial, "counts_in_one_pass", property(lambda self: False))
        try:
            return simulate_ber(trial, [6.5, 7.0], batch_size=256, max_batch_size=1024, target_block_errors=40,
                                max_bits=512 * 6000, seed=5, progress=False)
        finally:
            monkeypatch.undo()

    a, b = rows(True), rows(False)
    assert a == b and a[0].block_errors >= 40 and a[1].block_errors > 0
    trial = ScrambledZeroTrial(DigitalLink(AWGN(seed=3), code=LDPC5G(512, 1024, decoder="layered-int8"),
                                           modulation="16qam"))
    with pytest.raises(ValueError, match="batch_size"):
        trial.count_errors(0, 7.0)
    with pytest.raises(ValueError, match="esno_db must be finite"):
        trial.count_errors(10, float("inf"))
    # where the pass does not exist (float32 decoder, Rayleigh fading), the trial says so
    assert not ScrambledZeroTrial(DigitalLink(AWGN(), code=LDPC5G(512, 1024, decoder="layered-float32"),
                                              modulation="16qam")).counts_in_one_pass
