"""``semcom ber`` end to end on tiny budgets, resume, and bad input."""
import csv
import json
import math

import pytest

from experiments.core.args import parse_snr_list
from experiments.cli import main
from phy.channel.registry import canonical_channel_spec

RAY = canonical_channel_spec("rayleigh")  # the CSV key of the bare name: every parameter, defaults filled in


REQUIRED = ["scheme", "channel", "snr_db", "snr_type", "esno_db", "ebno_db", "ber", "bler", "bit_errors", "bits",
            "block_errors", "blocks", "ber_ci_low", "ber_ci_high", "bler_ci_low", "bler_ci_high", "status"]

ARGS = ["ber", "--modulation", "16qam", "--code", "none,hamming74,ldpc5g", "--k", "64", "--n", "128",
        "--channel", "awgn,rayleigh", "--snr-db", "0:6:3", "--target-errors", "30", "--max-bits", "3000",
        "--seed", "1", "--device", "cpu", "--no-progress", "--snr-type", "ebno"]


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ber")
    assert main(ARGS + ["--out", str(out)]) == 0
    return out


def test_end_to_end_outputs(full_run):
    out = full_run
    rows = _rows(out / "ber.csv")
    assert set(REQUIRED) <= set(rows[0])
    keys = {(r["scheme"], r["channel"], float(r["snr_db"])) for r in rows}
    assert len(rows) == 18 and keys == {(s, c, x) for s in ("none", "hamming74", "ldpc5g")
                                        for c in ("awgn", RAY) for x in (0.0, 3.0, 6.0)}
    rate = {"none": 1.0, "hamming74": 4 / 7, "ldpc5g": 0.5}
    for r in rows:
        assert r["snr_type"] == "ebno" and float(r["ebno_db"]) == float(r["snr_db"])
        assert float(r["esno_db"]) == pytest.approx(float(r["ebno_db"]) + 10 * math.log10(4 * rate[r["scheme"]]))
        if r["status"].startswith("skipped"):
            assert r["ber"] == "nan" and r["bits"] == "0"
        else:
            bits, errs = int(r["bits"]), int(r["bit_errors"])
            assert bits >= 64 and bits % 64 == 0 and int(r["blocks"]) == bits // 64
            assert float(r["ber"]) == errs / bits
            assert errs >= 30 or bits >= 3000
    # uncoded 16-QAM on AWGN at Eb/N0 = 0 dB: BER about 0.14, so the chain is really simulated
    r0 = [r for r in rows if r["scheme"] == "none" and r["channel"] == "awgn" and r["snr_db"] == "0.0"][0]
    assert 0.08 < float(r0["ber"]) < 0.22
    assert open(out / "ber.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    m = json.load(open(out / "manifest.json"))
    assert m["status"] == "finished" and m["seed"] == 1 and m["args"]["k"] == 64
    assert m["versions"]["torch"] and m["versions"]["sionna-no-rt"] and m["elapsed_s"] > 0
    assert m["coderates"] == pytest.approx(rate)


def test_interrupted_run_resumes_to_identical_csv(full_run, tmp_path):
    ref = (full_run / "ber.csv").read_bytes()
    lines = ref.decode().splitlines(keepends=True)
    # crash after 7 finished rows, in the middle of writing the 8th
    (tmp_path / "ber.csv").write_text("".join(lines[:8]) + lines[8][:20])
    (tmp_path / "ber.settings.json").write_text((full_run / "ber.settings.json").read_text())
    assert main(ARGS + ["--out", str(tmp_path)]) == 0
    assert (tmp_path / "ber.csv").read_bytes() == ref
    assert json.load(open(tmp_path / "manifest.json"))["rows_resumed"] == 7


def test_rerun_with_other_settings_is_refused(full_run, capsys):
    before = (full_run / "ber.csv").read_bytes()
    args = list(ARGS)
    args[args.index("--max-bits") + 1] = "5000"
    assert main(args + ["--out", str(full_run)]) == 2
    assert "max_bits" in capsys.readouterr().err
    assert (full_run / "ber.csv").read_bytes() == before


@pytest.mark.parametrize("record", [None, "", "{\"max_bits\": ", "[1, 2]", "null"])
def test_rows_without_a_readable_settings_record_are_refused(full_run, tmp_path, record, capsys):
    """The settings travel with the rows (``ber.settings.json``, written before the first row): a
    missing, truncated or non-dict record refuses the resume (exit 2, one line), whatever
    ``manifest.json`` says; the rows stay as they were."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "ber.csv").write_bytes((full_run / "ber.csv").read_bytes())
    (out / "manifest.json").write_text((full_run / "manifest.json").read_text())
    if record is not None:
        (out / "ber.settings.json").write_text(record)
    assert main(ARGS + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "ber.settings.json" in err or "settings record" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert (out / "ber.csv").read_bytes() == (full_run / "ber.csv").read_bytes()


def test_esno_axis_and_single_channel(tmp_path):
    args = ["ber", "--code", "none", "--k", "64", "--n", "128", "--channel", "rayleigh", "--snr-db", "5,10",
            "--snr-type", "esno", "--target-errors", "20", "--max-bits", "1000", "--no-progress",
            "--out", str(tmp_path)]
    assert main(args) == 0
    rows = _rows(tmp_path / "ber.csv")
    assert [(r["scheme"], r["channel"], r["snr_db"], r["esno_db"]) for r in rows] == [
        ("none", RAY, "5.0", "5.0"), ("none", RAY, "10.0", "10.0")]
    assert float(rows[0]["ebno_db"]) == pytest.approx(5.0 - 10 * math.log10(4))


def test_parse_snr_list():
    assert parse_snr_list("0:12:2") == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0]  # inclusive stop
    assert parse_snr_list("0:1:0.1")[-1] == 1.0 and len(parse_snr_list("0:1:0.1")) == 11
    assert parse_snr_list("-4:-1") == [-4.0, -3.0, -2.0, -1.0]
    assert parse_snr_list("10:0:-5") == [10.0, 5.0, 0.0]
    assert parse_snr_list(" 3, 1.5 ,0:2:2") == [3.0, 1.5, 0.0, 2.0]
    for bad in ("", ",", "0:4:0", "0:4:-1", "a", "0:1:2:3", "1,1", "nan", "inf"):
        with pytest.raises(ValueError):
            parse_snr_list(bad)


@pytest.mark.parametrize("bad, message", [
    (["--modulation", "8psk"], "modulation"),
    (["--code", "none,turbo"], "turbo"),
    (["--code", ""], "code"),
    (["--channel", "awgn,foo"], "foo"),
    (["--code", "ldpc5g", "--k", "256", "--n", "128"], "k"),
    (["--code", "ldpc5g", "--k", "64", "--n", "65"], "5G"),
    (["--code", "ldpc5g", "--k", "5000", "--n", "30000"], "5G"),
    (["--code", "ldpc5g", "--k", "8", "--n", "16"], "5G"),
    (["--code", "hamming74", "--k", "30", "--n", "64"], "multiple of 4"),
    (["--snr-db", ","], "snr-db"),
    (["--snr-db", "0:4:0"], "step"),
    (["--max-bits", "0"], "max-bits"),
    (["--max-bits", "-5"], "max-bits"),
    (["--target-errors", "0"], "target-errors"),
    (["--snr-type", "sinr"], "snr-type"),
    (["--device", "nodevice"], "--device"),
    (["--snr-batch", "0"], "snr-batch"),
    (["--snr-batch", "x"], "snr-batch"),
    (["--snr-batch", "2", "--executor", "ray"], "--snr-batch 2 applies to --executor local only"),
    (["--num-cpus", "2"], "--num-cpus and --address apply to --executor ray only"),
    (["--executor", "ray", "--num-cpus", "0"], "--num-cpus must be a positive integer"),
])
def test_bad_input_exits_2_with_clear_message(bad, message, tmp_path, capsys):
    argv = ["ber", "--code", "none", "--k", "64", "--n", "128"] + bad + ["--out", str(tmp_path / "o")]
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse errors
        rc = e.code
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o" / "ber.csv").exists()


def test_layered_ldpc_decoder_option_and_namespace_defaults(tmp_path):
    import argparse

    from experiments.commands.ber import main as ber_main

    ns = argparse.Namespace(code="ldpc5g", k=64, n=128, snr_db=[6.0], target_errors=20, max_bits=640.0,
                            ldpc_decoder="layered", progress=False, out=str(tmp_path))
    assert ber_main(ns) == 0  # every other option takes the parser's default
    rows = _rows(tmp_path / "ber.csv")
    assert [(r["scheme"], r["channel"], r["snr_db"], r["snr_type"]) for r in rows] == [
        ("ldpc5g", "awgn", "6.0", "esno")]   # Es/N0, the default of every command
    assert int(rows[0]["bits"]) >= 640
    m = json.load(open(tmp_path / "manifest.json"))
    assert m["result_settings"]["ldpc_decoder"] == "layered" and m["result_settings"]["num_iter"] == 20


@pytest.mark.parametrize("bad, message", [
    (["--channel", "rayleigh(block_length=0)"], "block_length"),
    (["--snr-db", "nan"], "--snr-db"),
    (["--channel", "tdl(fft_size=0)"], "fft_size"),
])
def test_channel_bad_input_exits_2_with_message(bad, message, capsys):
    """``semcom channel``: invalid values give exit status 2 and a one-line error, not a traceback."""
    try:
        rc = main(["channel", "--symbols", "64"] + bad)
    except SystemExit as e:  # argparse errors
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2
    assert "semcom channel: error:" in err and message in err


def test_snr_batch_end_to_end_same_columns_and_resume(full_run, tmp_path, capsys):
    """``--snr-batch 3``: one batched pass over the 3 SNR points; same CSV columns and keys as the
    sequential run, statistically consistent values, and a rerun computes nothing."""
    out = tmp_path / "batched"
    assert main(ARGS + ["--snr-batch", "3", "--out", str(out)]) == 0
    seq_rows, rows = _rows(full_run / "ber.csv"), _rows(out / "ber.csv")
    with open(out / "ber.csv", newline="") as fh, open(full_run / "ber.csv", newline="") as fs:
        assert next(csv.reader(fh)) == next(csv.reader(fs))  # identical header (columns and order)
    key = lambda r: (r["scheme"], r["channel"], r["snr_db"])  # noqa: E731
    assert sorted(map(key, rows)) == sorted(map(key, seq_rows)) and len(rows) == 18
    seq = {key(r): r for r in seq_rows}
    for r in rows:
        s = seq[key(r)]
        for col in ("snr_type", "esno_db", "ebno_db", "seed"):  # the point seed, as in the sequential run
            assert r[col] == s[col]
        if not r["status"].startswith("skipped"):
            bits, errs = int(r["bits"]), int(r["bit_errors"])
            assert bits % 64 == 0 and int(r["blocks"]) == bits // 64 and float(r["ber"]) == errs / bits
            assert errs >= 30 or bits >= 3000
    # uncoded 16-QAM on AWGN at Eb/N0 = 0 dB: closed form about 0.14 (as in the sequential run)
    r0 = [r for r in rows if r["scheme"] == "none" and r["channel"] == "awgn" and r["snr_db"] == "0.0"][0]
    assert 0.08 < float(r0["ber"]) < 0.22
    m = json.load(open(out / "manifest.json"))
    assert m["status"] == "finished" and m["args"]["snr_batch"] == 3
    before = (out / "ber.csv").read_bytes()
    assert main(ARGS + ["--snr-batch", "3", "--out", str(out)]) == 0
    assert (out / "ber.csv").read_bytes() == before
    assert json.load(open(out / "manifest.json"))["rows_resumed"] == 18


def test_snr_batch_documented_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["ber", "--help"])
    assert "--snr-batch S" in capsys.readouterr().out


@pytest.mark.slow
def test_auto_grid_resolves_ldpc_curve_and_resumes(tmp_path):
    """The LDPC curve command of the performance page on a cheaper configuration (k=64, n=128, floor BLER 1e-3 with
    30 block errors): the curve is resolved (points between BLER 0.2 and the floor, no step above
    1.5 x max-decades, the point at or below the floor with the target count), and the
    rerun simulates nothing and leaves the file as it was."""
    from phy.sim.adaptive import curve_resolution
    from phy.sim.points import PointResult

    out = tmp_path / "auto"
    args = ["ber", "--modulation", "16qam", "--code", "ldpc5g", "--k", "64", "--n", "128", "--ldpc-decoder",
            "layered", "--channel", "awgn", "--snr-type", "esno", "--snr-db", "auto:0:20:1", "--min-bler", "1e-3",
            "--target-block-errors", "30", "--target-errors", "1e9", "--max-bits", "1e8", "--seed", "3", "--batch-size", "256",
            "--no-progress", "--out", str(out)]
    assert main(args) == 0
    rows = _rows(out / "ber.csv")
    res = [PointResult.from_row(r) for r in rows]
    assert [r.snr_db for r in res] == sorted(r.snr_db for r in res)  # reordered by SNR
    cr = curve_resolution(res, 1e-3, metric="bler", top=0.2)
    assert cr["floor_errors"] is not None and cr["floor_errors"] >= 30, cr
    assert cr["max_step_decades"] <= 1.5 * 0.75 and cr["points_between"] >= 3, cr
    assert res[-1].bler <= 1e-3 and sum(r.bler <= 1e-3 for r in res) <= 2
    assert json.loads((out / "manifest.json").read_text())["result_settings"]["codeword"] == "scrambled-zero"
    before = (out / "ber.csv").read_bytes()
    assert main(args) == 0
    assert (out / "ber.csv").read_bytes() == before


@pytest.mark.parametrize("extra,message", [
    (["--min-ber", "1e-4"], "apply to --snr-db auto"),
    (["--snr-db", "auto", "--snr-batch", "2"], "--executor local and --snr-batch 1"),
    (["--snr-db", "auto:5:1"], "START must be below STOP"),
    (["--snr-db", "auto:0:10:0"], "STEP must be > 0"),
    (["--snr-db", "auto", "--min-bler", "2"], "error rate in (0, 1)"),
    (["--codeword", "ones"], "invalid choice"),
])
def test_auto_grid_bad_input(extra, message, tmp_path, capsys):
    base = ["ber", "--code", "none", "--k", "64", "--snr-db", "0,3", "--no-progress", "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit) if message in ("START must be below STOP", "STEP must be > 0",
                                                   "error rate in (0, 1)", "invalid choice") else _nullctx():
        rc = main(base + extra)
        assert rc == 2
    assert message in capsys.readouterr().err


def _nullctx():
    import contextlib

    return contextlib.nullcontext()


def test_random_and_scrambled_codewords_agree_on_uncoded_ber(tmp_path):
    """Both --codeword options on uncoded 16-QAM/AWGN agree with each other and with the closed form."""
    from phy.mapping.modulation import uncoded_ber

    bers = {}
    for cw in ("random", "scrambled-zero"):
        out = tmp_path / cw
        assert main(["ber", "--code", "none", "--k", "512", "--snr-type", "esno", "--snr-db", "8",
                     "--target-errors", "1e9", "--max-bits", "3e5", "--codeword", cw, "--no-progress",
                     "--out", str(out)]) == 0
        bers[cw] = float(_rows(out / "ber.csv")[0]["ber"])
    p = float(uncoded_ber(8.0, "16qam", "awgn"))
    sigma = math.sqrt(4 * p * (1 - p) / 3e5)  # whole-symbol variance (4 bits share the noise)
    for v in bers.values():
        assert abs(v - p) < 4 * sigma, (bers, p)


def test_normal_approximation_column_matches_an_independent_computation(full_run):
    """``bler_normal_approx``: for the coded chains on AWGN, Q((n C - k + 1/2 log2 n) / sqrt(n V)) with C and V
    of uniform 16-QAM from a 2-D quadrature over the constellation points (within 2%), n = coded bits / 4;
    empty for the uncoded chain and for Rayleigh."""
    from scipy.stats import norm

    from test_finite_blocklength import _gh_capacity_dispersion

    uses = {"hamming74": 16 * 7 / 4, "ldpc5g": 128 / 4}
    checked = 0
    for r in _rows(full_run / "ber.csv"):
        if r["scheme"] == "none" or r["channel"] != "awgn":
            assert r["bler_normal_approx"] == ""
            continue
        n = uses[r["scheme"]]
        c, v = _gh_capacity_dispersion("16qam", float(r["esno_db"]))
        ref = norm.sf((n * c - 64 + 0.5 * math.log2(n)) / math.sqrt(n * v))
        if ref > 1e-9:
            assert float(r["bler_normal_approx"]) == pytest.approx(ref, rel=0.02)
            checked += 1
        # the best code of that size is at least as good as the simulated chain (within its interval)
        if r["status"] != "skipped: no errors at previous point":
            assert float(r["bler_normal_approx"]) <= float(r["bler_ci_high"])
    assert checked >= 4


def test_a_csv_from_before_the_normal_approximation_resumes(full_run, tmp_path):
    """A ``ber.csv`` without ``bler_normal_approx`` (an older run) gets the column computed for its rows and
    resumes to the file an uninterrupted run writes."""
    ref = (full_run / "ber.csv").read_text()
    rows = list(csv.reader(ref.splitlines()))
    na = rows[0].index("bler_normal_approx")
    settings = [rows[0].index(c) for c in ("modulation", "k", "n", "coderate", "decoder", "ldpc_iter", "demapping",
                                           "detector")]
    for drop in ({na}, {na, *settings}):   # without the column; and as written before the settings columns too
        with open(tmp_path / "ber.csv", "w", newline="") as fh:      # header + 9 rows, without the column(s)
            csv.writer(fh, lineterminator="\n").writerows([c for i, c in enumerate(r) if i not in drop]
                                                          for r in rows[:10])
        (tmp_path / "ber.settings.json").write_text((full_run / "ber.settings.json").read_text())
        assert main(ARGS + ["--out", str(tmp_path)]) == 0
        assert (tmp_path / "ber.csv").read_text() == ref
        assert json.load(open(tmp_path / "manifest.json"))["rows_resumed"] == 9
    with open(tmp_path / "ber.csv", "w", newline="") as fh:      # header + 9 rows, without the column
        csv.writer(fh, lineterminator="\n").writerows([c for i, c in enumerate(r) if i != na] for r in rows[:10])
    (tmp_path / "ber.settings.json").write_text((full_run / "ber.settings.json").read_text())
    assert main(ARGS + ["--out", str(tmp_path)]) == 0
    assert (tmp_path / "ber.csv").read_text() == ref
    assert json.load(open(tmp_path / "manifest.json"))["rows_resumed"] == 9
