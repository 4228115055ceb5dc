"""`semcom plot`: several runs and commands merged into one figure (experiments/commands/plot_runs.py,
experiments/core/plots.merged_metric_figure)."""
from __future__ import annotations

import matplotlib.colors as mcolors
import numpy as np
import pytest

from experiments.cli import main
from experiments.commands.plot_runs import find_tables, parse_filters
from experiments.core.plots import merged_metric_figure, scheme_style
from experiments.core.results import read_rows

Q16 = "uniform quantiser + LDPC 16-QAM"   # the label of quant-ldpc5g-16qam


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two small run folders: `semcom compare` (Es/N0, `_ci_lo/_hi`) and `semcom ber` (Eb/N0, `_ci_low/_high`)."""
    root = tmp_path_factory.mktemp("plot")
    a, b = root / "cmp", root / "ber"
    assert main(["compare", "--source", "gaussian", "--max-items", "40", "--channel", "awgn", "--snr-db=-10,10",
                 "--schemes", "analog,quant-ldpc5g-16qam", "--out", str(a), "--no-progress"]) == 0
    assert main(["ber", "--code", "none,hamming74", "--k", "64", "--n", "128", "--channel", "awgn",
                 "--snr-db", "0,6", "--target-errors", "20", "--max-bits", "4000", "--seed", "3",
                 "--snr-type", "ebno", "--out", str(b), "--no-progress"]) == 0
    return root, a, b


def _tables(*dirs):
    return [(label, read_rows(p)) for label, p in find_tables([str(d) for d in dirs])]


def _lines(ax):
    """label -> the data line of each curve (an errorbar container)."""
    return {c.get_label(): c.lines[0] for c in ax.containers}


def test_plot_writes_each_format(runs, tmp_path):
    root, a, b = runs
    for ext, magic in ((".pdf", b"%PDF"), (".png", b"\x89PNG"), (".svg", b"<?xml")):
        out = tmp_path / f"fig{ext}"
        assert main(["plot", str(a), str(b), "--metric", "ber", "--out", str(out)]) == 0
        assert out.read_bytes()[:len(magic)] == magic


def test_merged_ber_figure_lines_axes_and_intervals(runs):
    root, a, b = runs
    fig, labels = merged_metric_figure(_tables(a, b), "ber")
    ax = fig.axes[0]
    # compare's analog scheme has no BER: not drawn; the digital ones of both commands are, labelled from the
    # label table and ber.csv's settings columns
    assert set(labels) == {Q16, "uncoded 16-QAM", "Hamming(7,4) 16-QAM"}
    assert ax.get_yscale() == "log"
    # ber.csv is Eb/N0, compare.csv Es/N0: the merged axis is Es/N0, ber.csv's rows placed by their esno_db
    assert ax.get_xlabel() == "Es/N0 per complex channel use [dB]"
    rows = [r for r in read_rows(b / "ber.csv") if r["scheme"] == "none" and float(r["ber"]) > 0]
    line = _lines(ax)["uncoded 16-QAM"]
    np.testing.assert_allclose(line.get_xdata(), sorted(float(r["esno_db"]) for r in rows))
    np.testing.assert_allclose(line.get_ydata(), [float(r["ber"]) for r in sorted(rows, key=lambda r: float(r["esno_db"]))])
    # the 95 % interval of each point is drawn as its error bar (ber.csv: ber_ci_low / ber_ci_high)
    container = next(c for c in ax.containers if c.get_label() == "uncoded 16-QAM")
    segs = container.lines[2][0].get_segments()
    want = sorted((float(r["ber_ci_low"]), float(r["ber_ci_high"])) for r in rows)
    np.testing.assert_allclose(sorted((s[0][1], s[1][1]) for s in segs), want, rtol=1e-12)


def test_compare_intervals_and_linear_axis_for_cosine(runs):
    root, a, b = runs
    fig, labels = merged_metric_figure(_tables(a, b), "cosine")   # ber.csv has no cosine: left out
    ax = fig.axes[0]
    assert set(labels) == {"analog", Q16} and ax.get_yscale() == "linear"
    assert ax.get_ylabel() == "cosine similarity"
    rows = sorted((r for r in read_rows(a / "compare.csv") if r["scheme"] == "analog"), key=lambda r: float(r["snr_db"]))
    container = next(c for c in ax.containers if c.get_label() == "analog")
    segs = sorted(container.lines[2][0].get_segments(), key=lambda s: s[0][0])
    np.testing.assert_allclose([(s[0][1], s[1][1]) for s in segs],
                               [(float(r["cosine_ci_lo"]), float(r["cosine_ci_hi"])) for r in rows], rtol=1e-12)
    # only the BER study: its own convention, Eb/N0
    fig2, _ = merged_metric_figure(_tables(b), "bler")
    assert fig2.axes[0].get_xlabel() == "Eb/N0 [dB]" and fig2.axes[0].get_yscale() == "log"


def test_scheme_style_is_stable_across_figures_and_runs(runs):
    root, a, b = runs
    fig1, _ = merged_metric_figure(_tables(a, b), "ber")
    fig2, labels2 = merged_metric_figure(_tables(a), "ber", filters={"scheme": ["quant-ldpc5g-16qam"]})
    assert labels2 == [Q16]
    l1, l2 = _lines(fig1.axes[0])[Q16], _lines(fig2.axes[0])[Q16]
    want = scheme_style("quant-ldpc5g-16qam")
    for ln in (l1, l2):
        assert mcolors.to_hex(ln.get_color()) == want["color"] and ln.get_marker() == want["marker"]
    # the same run given twice: one curve per run, the second with open markers, same colour
    fig3, labels3 = merged_metric_figure(_tables(a) + [("copy", read_rows(a / "compare.csv"))], "nmse")
    assert set(labels3) == {"analog (cmp)", "analog (copy)", f"{Q16} (cmp)", f"{Q16} (copy)"}
    lines = _lines(fig3.axes[0])
    assert lines["analog (cmp)"].get_color() == lines["analog (copy)"].get_color()
    assert lines["analog (copy)"].get_markerfacecolor() == "none" != lines["analog (cmp)"].get_markerfacecolor()


def test_filters_numeric_and_multi_value(runs):
    root, a, b = runs
    assert parse_filters(["scheme=a,b", "snr_db=10"]) == {"scheme": ["a", "b"], "snr_db": ["10"]}
    fig, labels = merged_metric_figure(_tables(a), "nmse", filters={"snr_db": ["10"]})  # 10 == "10.0"
    assert labels
    for ln in _lines(fig.axes[0]).values():
        assert list(ln.get_xdata()) == [10.0]
    with pytest.raises(ValueError, match="sheme"):
        merged_metric_figure(_tables(a), "nmse", filters={"sheme": ["analog"]})


def test_style_file_is_applied(runs, tmp_path):
    root, a, b = runs
    style = tmp_path / "paper.mplstyle"
    style.write_text("axes.facecolor: \"#123456\"\nlines.linewidth: 3.5\n")
    out = tmp_path / "f.svg"
    assert main(["plot", str(a), "--metric", "nmse", "--style", str(style), "--out", str(out)]) == 0
    svg = out.read_text()
    assert "#123456" in svg and "stroke-width: 3.5" in svg
    plain = tmp_path / "g.svg"
    assert main(["plot", str(a), "--metric", "nmse", "--out", str(plain)]) == 0
    assert "#123456" not in plain.read_text()


@pytest.mark.parametrize("argv, message", [
    (["--metric", "nmse", "--out", "{tmp}/f.jpg"], "--out must end in one of"),
    (["--metric", "no_such_metric", "--out", "{tmp}/f.png"], "no table has the metric 'no_such_metric'"),
    (["--metric", "nmse", "--filter", "scheme", "--out", "{tmp}/f.png"], "--filter expects COLUMN=VALUE"),
    (["--metric", "nmse", "--filter", "scheme=nothing", "--out", "{tmp}/f.png"], "no row is left"),
    (["--metric", "nmse", "--style", "{tmp}/none.mplstyle", "--out", "{tmp}/f.png"], "is not a file"),
])
def test_bad_input_one_line_exit_2(runs, tmp_path, capsys, argv, message):
    root, a, b = runs
    rc = main(["plot", str(a)] + [x.format(tmp=tmp_path) for x in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("semcom plot: error:") and message in err[0]
    assert main(["plot", str(tmp_path / "missing"), "--metric", "nmse", "--out", str(tmp_path / "f.png")]) == 2


def test_per_item_tables_are_left_out(runs, tmp_path, capsys):
    import csv
    import shutil

    root, a, b = runs
    run = tmp_path / "run"
    shutil.copytree(a, run)
    with open(run / "items.csv", "w", newline="") as fh:  # one row per item: not a curve
        w = csv.writer(fh)
        w.writerow(["system", "channel", "snr_db", "image", "nmse"])
        w.writerows([["analog", "awgn", "10.0", f"{i}.png", "0.5"] for i in range(3)])
    assert main(["plot", str(run), "--metric", "nmse", "--out", str(tmp_path / "f.png")]) == 0
    out = capsys.readouterr().out
    assert "left out" in out and "items.csv" in out and "2 curves from 1 tables" in out
