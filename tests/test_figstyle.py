"""The figure style (experiments/core/figstyle.py) as every command uses it: colours, labels, limits, names."""
from __future__ import annotations

import csv
import math
import os

import matplotlib.colors as mcolors
import pytest

from experiments.cli import main
from experiments.commands import compare as compare_cmd
from experiments.commands.run import RUN_SCHEMES
from experiments.core import plots
from experiments.core.figstyle import (REFERENCE_COLORS, assign_styles, channel_file_label, channel_short_name,
                                       data_limits, safe_file_stem, scheme_label)
from experiments.core.plots import error_rate_figure, merged_metric_figure
from experiments.core.results import read_rows
from phy.channel.registry import canonical_channel_spec

OFDM = "ofdm(model=tdl-C,cfo=600,phase_noise_linewidth=1e3)"   # README's OFDM-with-impairments example
GREYS = {mcolors.to_hex(c) for c in REFERENCE_COLORS}


def _compare_rows(channel, schemes, snrs=(-10.0, 0.0, 10.0), outlier=None):
    """compare.csv-like rows: NMSE falling with SNR, ``outlier`` far above the rest."""
    rows = []
    for i, s in enumerate(schemes):
        for snr in snrs:
            v = 0.5 * 10 ** (-snr / 20) * (1 + 0.1 * i)
            if s == outlier:
                v *= 1e4
            rows.append({"scheme": s, "channel": channel, "snr_db": snr, "budget": 192, "nmse": v,
                         "nmse_ci_lo": 0.9 * v, "nmse_ci_hi": 1.1 * v, "opta_nmse": 0.01 * 10 ** (-snr / 10),
                         "retrieval_top1": 0.1 * i, "retrieval_top1_ci_lo": 0.0, "retrieval_top1_ci_hi": 0.2,
                         "cosine": 0.9, "chance": 1 / 1613})
    return rows


def _figures(monkeypatch, rows, tmp_path, fmt="png"):
    figs = []
    real = plots.metric_figure

    def keep(*a, **kw):
        figs.append(real(*a, **kw))
        return figs[-1]

    monkeypatch.setattr(plots, "metric_figure", keep)
    paths = compare_cmd.plot_comparison(rows, str(tmp_path), fmt=fmt)
    return figs, paths


def _data_colors(ax):
    return [mcolors.to_hex(c.lines[0].get_color()) for c in ax.containers]


def test_main_job_schemes_no_colour_twice_references_grey_dashed(monkeypatch, tmp_path):
    styles = assign_styles(RUN_SCHEMES)
    colors = [s["color"] for s in styles.values()]
    assert len(set(colors)) == len(colors) and not GREYS & set(colors)
    figs, _ = _figures(monkeypatch, _compare_rows("awgn", RUN_SCHEMES), tmp_path)
    assert figs
    for fig in figs:
        ax = fig.axes[0]
        data = _data_colors(ax)
        assert len(data) == len(set(data)), data              # no colour twice among the schemes
        refs = [ln for ln in ax.get_lines() if ln.get_marker() in ("None", None, "")]
        for ln in refs:                                         # references: black/grey, dashed, no markers
            assert mcolors.to_hex(ln.get_color()) in GREYS and ln.get_linestyle() == "--"
        assert not GREYS & set(data)
        # labels from the label table, not keys
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "analog, ZF" in labels and "quant-ldpc5g-16qam" not in labels


def test_readme_ofdm_example_writes_short_named_figures(tmp_path):
    out = tmp_path / "ofdm"
    rc = main(["compare", "--source", "gaussian", "--max-items", "40", "--channel", OFDM, "--schemes", "analog",
               "--snr-db", "10", "--realizations", "1", "--no-progress", "--format", "svg", "--out", str(out)])
    assert rc == 0
    figs = sorted(p for p in os.listdir(out) if p.endswith(".svg"))
    assert figs and all(len(p) <= 80 for p in figs)
    assert "nmse_ofdm_tdl-C_cfo=600_phase_noise_linewidth=1000.svg" in figs
    svg = (out / figs[0]).read_text()
    spec = canonical_channel_spec(OFDM)
    assert spec in svg                                          # the full spec in the figure's metadata
    assert f"<title>{channel_short_name(spec)}" in svg          # a short title
    assert read_rows(out / "compare.csv")[0]["channel"] == spec  # and in the CSV


def test_file_names_are_bounded_and_distinct():
    long_a = canonical_channel_spec("ofdm(model=cdl-C,num_tx=2,num_rx=4,speed=30,cfo=600,phase_noise_linewidth=1e3,"
                                    "delay_spread=300e-9,fft_size=144)")
    long_b = long_a.replace("speed=30.0", "speed=31.0")
    a, b = channel_file_label(long_a), channel_file_label(long_b)
    assert a != b and len(a) <= 48 and len(b) <= 48
    for text in ("x" * 500, long_a, "a/b\\c:d e"):
        stem = safe_file_stem(text)
        assert len(stem) <= 64 and os.sep not in stem and " " not in stem
    assert channel_file_label("rayleigh") == "rayleigh"


def test_outlier_scheme_leaves_the_axis_with_a_note(monkeypatch, tmp_path):
    rows = _compare_rows("rayleigh", ("opta", "analog-zf", "analog-mmse", "analog-klt"), outlier="analog-zf")
    figs, _ = _figures(monkeypatch, rows, tmp_path)
    ax = figs[0].axes[0]                                        # nmse
    lo, hi = ax.get_ylim()
    others = [r["nmse"] for r in rows if r["scheme"] != "analog-zf"]
    assert hi < 10 * max(others) and lo > min(others) / 10      # the range of the data, not of the outlier
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("analog, ZF (off scale, up to") for t in labels)
    bars = {c.get_label(): c.has_yerr for c in ax.containers}   # the outlier's intervals are not drawn across
    assert bars == {**{k: True for k in bars if "off scale" not in k},  # the axis; the others keep theirs
                    **{k: False for k in bars if "off scale" in k}} and len(bars) == 4


def test_data_limits_clip_references():
    lim, out = data_limits({"a": [0.1, 0.01], "b": [0.2, 0.02]}, log=True)
    assert out == {} and 0.005 < lim[0] < 0.01 and 0.2 < lim[1] < 0.4
    lim, out = data_limits({"a": [0.5, 0.6], "b": [0.55, 0.7], "c": [50.0, 60.0]}, log=False)
    assert "c" in out and lim[1] < 1


def test_ber_figure_theory_clipped_to_the_data():
    rows = [{"scheme": "none", "channel": "awgn", "snr_db": s, "snr_type": "esno", "ber": b, "ber_ci_low": b / 2,
             "ber_ci_high": b * 2, "modulation": "16qam"} for s, b in ((0.0, 0.2), (6.0, 0.02))]
    theory = ([0.0, 10.0, 30.0], [0.2, 1e-3, 1e-12])
    ax = error_rate_figure(rows, closed_forms={"theory": theory}).axes[0]
    assert ax.get_ylim()[0] > 1e-3                              # the theory line does not pull it to 1e-12
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["uncoded 16-QAM", "theory"]


def test_labels_from_the_label_table():
    assert scheme_label("ldpc5g", {"modulation": "16qam", "k": "512", "n": "1024", "decoder": "layered"}) == \
        "LDPC(1024,512) 16-QAM, layered"
    assert scheme_label("quant-hamming74-16qam") == "uniform quantiser + Hamming(7,4) 16-QAM"
    assert channel_short_name("rician(k_db=10)") == "Rician (k_db=10)"


# ------------------------------------------------------------------------------------------
# ber.csv describes its curves; semcom plot tells runs apart
# ------------------------------------------------------------------------------------------
def _ber(out, modulation, *extra):
    argv = ["ber", "--modulation", modulation, "--code", "none", "--channel", "awgn", "--snr-db", "0,4",
            "--max-bits", "3000", "--target-errors", "50", "--seed", "1", "--no-progress", "--out", str(out)]
    assert main(argv + list(extra)) == 0
    return argv + list(extra)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("mods")
    _ber(root / "qpsk", "qpsk")
    _ber(root / "qam", "16qam")
    return root


def test_ber_csv_has_the_settings_of_its_curves(two_runs):
    rows = read_rows(two_runs / "qpsk" / "ber.csv")
    assert {r["modulation"] for r in rows} == {"qpsk"} and {r["k"] for r in rows} == {"512"}
    assert {"coderate", "decoder", "ldpc_iter", "demapping", "detector", "n"} <= set(rows[0])


def test_merging_runs_that_differ_in_modulation(two_runs):
    tables = [(label, read_rows(two_runs / label / "ber.csv")) for label in ("qpsk", "qam")]
    fig, labels = merged_metric_figure(tables, "ber")
    assert sorted(labels) == ["uncoded 16-QAM", "uncoded QPSK"]
    ax = fig.axes[0]
    colors = {c.get_label(): mcolors.to_hex(c.lines[0].get_color()) for c in ax.containers}
    assert colors["uncoded 16-QAM"] != colors["uncoded QPSK"]
    theory = sorted(ln.get_label() for ln in ax.get_lines() if ln.get_label().startswith("theory"))
    assert theory == ["theory: uncoded 16-QAM AWGN", "theory: uncoded QPSK AWGN"]
    # the same run twice: the theory curve once
    fig2, _ = merged_metric_figure(tables[:1] + [("again", tables[0][1])], "ber")
    assert sum(ln.get_label().startswith("theory") for ln in fig2.axes[0].get_lines()) == 1


def test_merged_labels_name_the_differing_setting(two_runs, tmp_path):
    _ber(tmp_path / "ml", "qpsk", "--demapping", "maxlog")
    tables = [("qpsk", read_rows(two_runs / "qpsk" / "ber.csv")), ("ml", read_rows(tmp_path / "ml" / "ber.csv"))]
    _, labels = merged_metric_figure(tables, "ber")
    assert sorted(labels) == ["uncoded QPSK (demapping=app)", "uncoded QPSK (demapping=maxlog)"]


def test_no_error_points_kept_in_merged_figure():
    rows = [{"scheme": "ldpc5g", "channel": "awgn", "snr_db": s, "snr_type": "esno", "ber": b, "ber_ci_low": 0.0,
             "ber_ci_high": hi} for s, b, hi in ((0.0, 0.01, 0.02), (2.0, 0.0, 1e-5))]
    ax = merged_metric_figure([("a", rows)], "ber")[0].axes[0]
    tri = [ln for ln in ax.get_lines() if ln.get_marker() == "v"]
    assert len(tri) == 1 and list(tri[0].get_ydata()) == [1e-5]


def test_resume_from_a_csv_without_the_settings_columns(tmp_path):
    out = tmp_path / "old"
    argv = _ber(out, "qpsk")
    path = out / "ber.csv"
    new = path.read_text()
    from phy.sim.points import BER_COLUMNS

    rows = list(csv.DictReader(open(path)))
    with open(path, "w", newline="") as fh:                     # as an older version wrote it
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(BER_COLUMNS)
        for r in rows:
            w.writerow([r[c] for c in BER_COLUMNS])
    assert main(argv) == 0
    assert path.read_text() == new


def test_every_figure_format(tmp_path):
    out = tmp_path / "pdf"
    _ber(out, "qpsk", "--format", "pdf")
    assert (out / "ber.pdf").read_bytes()[:4] == b"%PDF" and not (out / "ber.png").exists()
    assert math.isfinite(float(read_rows(out / "ber.csv")[0]["coderate"]))
    with pytest.raises(SystemExit):
        main(["ber", "--format", "jpg", "--out", str(tmp_path / "x")])


def test_legend_inside_the_canvas_however_the_figure_is_saved(tmp_path):
    """A plain ``fig.savefig`` (what a user or the documentation gallery calls, without a tight box) keeps the
    legend that sits right of the axes inside the canvas, and the axes keep a usable width."""
    import io

    long = {f"a long scheme label number {i} / rayleigh(block_length=1,num_rx=1)": ([0, 10], [1.0, 0.1 / (i + 1)])
            for i in range(6)}
    fig = plots.metric_figure(long, logy=True)
    width0 = 6.4
    fig.savefig(io.BytesIO(), format="png")                     # draws with the figure's own layout
    renderer = fig.canvas.get_renderer()
    legend = fig.axes[0].get_legend().get_window_extent(renderer)
    assert legend.x1 <= fig.bbox.x1 + 1 and legend.x0 >= fig.axes[0].get_window_extent(renderer).x1
    assert fig.axes[0].get_window_extent(renderer).width / fig.dpi > 0.6 * width0
