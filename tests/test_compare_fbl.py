"""The ideal code's payload as a design variable, the codeword span shared with the LDPC scheme, and the
finite-blocklength reference ``fbl-separation`` (with every row's ``fbl_nmse`` / ``gap_fbl_db``), checked
against independent computations."""
import math

import numpy as np
import pytest
from scipy.stats import norm

import semantic  # noqa: F401  (CPU shim first)
from compare_sources import compare_rows, gaussian_source
from experiments.comparison import COLUMNS
from experiments.schemes import SchemeContext, TransformAMCScheme
from phy.channel.registry import canonical_channel_spec
from phy.sim.intervals import clopper_pearson
from phy.theory.ratedistortion import reverse_water_filling

RAY = canonical_channel_spec("rayleigh")
LOG2E = 1 / math.log(2)


def _independent_fbl(lam, uses, span, snr_db, fading):
    """min over the codeword payload of (1 - eps) D(B / span) + eps sum(lam), eps = Q((nC - B + log2(n)/2) /
    sqrt(nV)) with C, V of complex AWGN (closed form) or of i.i.d. Rayleigh fading (Monte Carlo over the fade)."""
    snr = 10 ** (snr_db / 10)
    if fading:
        g = np.random.default_rng(11).exponential(size=1_000_000)
        cap = np.log2(1 + snr * g)
        c, v = cap.mean(), cap.var() + LOG2E ** 2 * (1 - np.mean(1 / (1 + snr * g)) ** 2)
    else:
        c, v = math.log2(1 + snr), LOG2E ** 2 * snr * (snr + 2) / (snr + 1) ** 2
    n = span * uses
    payload = np.arange(0, int(n * c + 20 * math.sqrt(n * v)) + 2)
    eps = norm.sf((n * c - payload + 0.5 * math.log2(n)) / math.sqrt(n * v))
    eps[0] = 0.0
    d = reverse_water_filling(lam, payload / span).distortion
    return float(np.min((1 - eps) * d + eps * lam.sum()))


@pytest.fixture(scope="module")
def source():
    return gaussian_source(900, 0.9 ** np.arange(64))


def test_ideal_code_payload_is_designed_for_the_least_distortion(source):
    """Per-symbol Rayleigh, 32 uses per example: a codeword spans ceil(512/32) = 16 examples; the designed
    payload gives far less outage than a fixed 10 % target (an 'ideal' code throwing away a tenth of the
    examples) and a lower distortion; --ideal-outage 0.1 still gives about 10 %."""
    kw = dict(schemes=["transform-ideal", "quant-ideal"], channels=["rayleigh"], snr_db=[5.0, 15.0], budget=32,
              realizations=4)
    designed = compare_rows(source, **kw)
    fixed = compare_rows(source, ideal_outage=0.1, **kw)
    for s in (5.0, 15.0):
        for name in ("transform-ideal", "quant-ideal"):
            d, f = designed[(name, RAY, s)], fixed[(name, RAY, s)]
            assert d["status"] == "ok" and d["codeword_span"] == 16 == f["codeword_span"], d["note"]
            assert "designed" in d["note"] and "fixed outage target 0.1" in f["note"]
            assert d["outage_rate"] < 0.03, (name, s, d["outage_rate"])
            n = f["n_examples"] * f["realizations"] // 16            # codewords: their outages are the draws
            lo, hi = clopper_pearson(round(f["outage_rate"] * n), n, confidence=0.999)
            assert lo <= 0.1 <= hi
        t_d, t_f = designed[("transform-ideal", RAY, s)], fixed[("transform-ideal", RAY, s)]
        assert t_d["nmse_ci_hi"] < t_f["nmse_ci_lo"]
        assert t_d["retrieval_top1"] >= t_f["retrieval_top1"]


def test_awgn_payload_and_the_span_rule_shared_with_ldpc(source, monkeypatch):
    """AWGN: the designed payload is floor(U log2(1 + snr)) (no outage); the LDPC scheme's codewords span the
    same ceil(512 / U) examples for whatever MCS it picks; no LDPC-coded scheme is more than 0.5 dB below
    fbl-separation."""
    monkeypatch.setattr(TransformAMCScheme, "bler_codewords", 64)
    rows = compare_rows(source, schemes=["transform-ideal", "transform-ldpc5g-amc", "fbl-separation"],
                        channels=["awgn"], snr_db=[0.0, 12.0], budget=24, realizations=2)
    for s in (0.0, 12.0):
        t, a, f = (rows[(n, "awgn", s)] for n in ("transform-ideal", "transform-ldpc5g-amc", "fbl-separation"))
        assert t["codeword_span"] == a["codeword_span"] == f["codeword_span"] == math.ceil(512 / 24) == 22
        assert t["info_bits"] <= math.floor(24 * math.log2(1 + 10 ** (s / 10))) and t["outage_rate"] == 0.0
        assert f"payload {math.floor(24 * math.log2(1 + 10 ** (s / 10)))} bits per example" in t["note"]
        assert a["status"] == "ok" and a["gap_fbl_db"] >= -0.5


@pytest.mark.parametrize("channel, fading", [("awgn", False), ("rayleigh", True)])
def test_fbl_reference_matches_an_independent_computation(source, channel, fading):
    """fbl_nmse (every row) within 2% of the minimum recomputed from the closed-form dispersion (AWGN) or a
    Monte Carlo over the fade (i.i.d. Rayleigh), reverse water-filling on the training eigenvalues; the
    fbl-separation row samples it (its NMSE near fbl_nmse) and sits between the OPTA and the 1-example code."""
    snrs = [0.0, 10.0]
    rows = compare_rows(source, schemes=["fbl-separation", "opta", "analog-mmse"], channels=[channel], snr_db=snrs,
                        budget=32, realizations=4)
    spec = canonical_channel_spec(channel)
    ctx = SchemeContext(source, budget=32, matched=True, equalizer="mmse", device="cpu", bits=None, max_bits=8,
                        ldpc_rate=0.5, ideal_outage=None, text_max_items=None)
    lam = ctx.klt.eigenvalues.numpy()
    for s in snrs:
        ref = _independent_fbl(lam, 32, 16, s, fading) / ctx.klt.energy
        f, o, a = (rows[(n, spec, s)] for n in ("fbl-separation", "opta", "analog-mmse"))
        for r in (f, o, a):
            assert r["fbl_nmse"] == pytest.approx(ref, rel=0.02)
            assert r["gap_fbl_db"] == pytest.approx(10 * math.log10(r["nmse"] / r["fbl_nmse"]))
        assert f["status"] == "ok" and f["codeword_span"] == 16
        assert o["opta_nmse"] < f["fbl_nmse"]
        one = _independent_fbl(lam, 32, 1, s, fading) / ctx.klt.energy
        assert f["fbl_nmse"] < one
        assert f["nmse_ci_lo"] <= f["fbl_nmse"] * 1.1 and f["fbl_nmse"] <= f["nmse_ci_hi"] * 1.1


def test_channels_without_a_dispersion_say_why(source):
    rows = compare_rows(source, schemes=["fbl-separation", "analog-mmse"],
                        channels=["rician(k_db=10)", "rayleigh(block_length=8)"], snr_db=[10.0], budget=32,
                        realizations=1)
    for ch in ("rician(k_db=10)", "rayleigh(block_length=8)"):
        spec = canonical_channel_spec(ch)
        f, a = rows[("fbl-separation", spec, 10.0)], rows[("analog-mmse", spec, 10.0)]
        assert f["status"].startswith("skipped: the normal approximation is implemented for AWGN and i.i.d.")
        assert f["nmse"] is None and a["fbl_nmse"] is None and a["gap_fbl_db"] is None and a["nmse"] > 0
    assert COLUMNS.index("fbl_nmse") == COLUMNS.index("gap_db") + 1 and "gap_fbl_db" in COLUMNS


def test_bad_ideal_outage_is_refused(tmp_path, capsys):
    from experiments.cli import main

    for bad in ("1.5", "0", "x"):
        with pytest.raises(SystemExit):
            main(["compare", "--source", "gaussian", "--ideal-outage", bad, "--out", str(tmp_path)])
    from experiments.comparison import CompareConfig

    with pytest.raises(ValueError, match="ideal_outage"):
        CompareConfig(ideal_outage=1.0).validate(16)
    assert CompareConfig().ideal_outage is None
