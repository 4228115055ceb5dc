"""Matplotlib figures for experiments (Agg canvas, no pyplot global state, safe without a display).

* :func:`plot_error_rate` draws BER (or BLER) vs SNR on a log axis, one curve per
  (scheme, channel) with 95 % confidence bars, optional closed-form curves (dashed), and labels
  the axis with the SNR convention: ``"Eb/N0 [dB]"`` or ``"Es/N0 per complex channel use [dB]"``.
  Skipped points (NaN) are left out; simulated points with zero errors are drawn as a downward
  triangle at their CI upper bound (an upper limit, not a BER of 0).
* :func:`plot_metric_vs_snr` is the generic "metric vs SNR" line plot (accuracy, PSNR, BLEU,
  similarity ...) that the other experiments reuse.
* :func:`merged_metric_figure` merges the result tables of several runs and commands into one figure
  (``semcom plot``), each scheme in the colour and marker :func:`scheme_style` derives from its name.

Example
-------
>>> import tempfile, os
>>> p = os.path.join(tempfile.mkdtemp(), "m.png")
>>> _ = plot_metric_vs_snr({"jscc": ([0, 5, 10], [0.2, 0.6, 0.9])}, p, ylabel="accuracy")
>>> os.path.getsize(p) > 0
True
"""
from __future__ import annotations

import math
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["SNR_LABELS", "snr_axis_label", "plot_error_rate", "error_rate_figure", "plot_metric_vs_snr",
           "metric_figure", "LOG_METRICS", "METRIC_LABELS", "scheme_style", "merged_metric_figure", "save_figure"]

#: Axis labels of the SNR conventions (``snr_type``).
SNR_LABELS = {
    "ebno": "Eb/N0 [dB]",
    "esno": "Es/N0 per complex channel use [dB]",
}


def snr_axis_label(snr_type: str) -> str:
    """Axis label for an SNR convention (``"ebno"`` or ``"esno"``).

    Examples
    --------
    >>> snr_axis_label("esno"), snr_axis_label("ebno")
    ('Es/N0 per complex channel use [dB]', 'Eb/N0 [dB]')
    """
    if snr_type not in SNR_LABELS:
        raise ValueError(f"snr_type must be one of {sorted(SNR_LABELS)}, got {snr_type!r}")
    return SNR_LABELS[snr_type]


def _figure(figsize):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> str:
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp_root, ext = os.path.splitext(path)
    tmp = f"{tmp_root}.tmp.{os.getpid()}{ext}"
    fig.savefig(tmp, dpi=fig.dpi)
    os.replace(tmp, path)
    return path


def _f(v) -> float:
    if v is None or v == "":
        return math.nan
    return float(v)


def plot_error_rate(rows: Iterable[Union[Mapping[str, Any], Any]], path: Union[str, os.PathLike], *,
                    metric: str = "ber", snr_type: Optional[str] = None,
                    closed_forms: Optional[Mapping[str, Tuple[Sequence[float], Sequence[float]]]] = None,
                    title: Optional[str] = None, figsize=(6.4, 4.8), dpi: int = 120) -> str:
    """Draw :func:`error_rate_figure` and save it as a PNG at ``path``; returns ``path``.

    Examples
    --------
    >>> import os, tempfile
    >>> rows = [{"scheme": "uncoded", "channel": "awgn", "snr_db": s, "snr_type": "esno", "ber": b,
    ...          "ber_ci_low": b / 2, "ber_ci_high": b * 2} for s, b in ((0.0, 0.1), (5.0, 0.01))]
    >>> path = plot_error_rate(rows, os.path.join(tempfile.mkdtemp(), "ber.png"))
    >>> os.path.getsize(path) > 0
    True
    """
    fig = error_rate_figure(rows, metric=metric, snr_type=snr_type, closed_forms=closed_forms, title=title,
                            figsize=figsize, dpi=dpi)
    return _save(fig, path)


def error_rate_figure(rows: Iterable[Union[Mapping[str, Any], Any]], *, metric: str = "ber",
                      snr_type: Optional[str] = None,
                      closed_forms: Optional[Mapping[str, Tuple[Sequence[float], Sequence[float]]]] = None,
                      title: Optional[str] = None, figsize=(6.4, 4.8), dpi: int = 120):
    """BER or BLER vs SNR, log scale, one curve per ``scheme`` (per ``scheme/channel`` if several;
    colour = scheme, line style = channel).

    Parameters
    ----------
    rows : iterable of mappings (CSV rows) or ``phy.sim.points.PointResult``
        Needs ``scheme, channel, snr_db, snr_type, <metric>, <metric>_ci_low, <metric>_ci_high``.
    metric : ``"ber"`` or ``"bler"``
    snr_type : ``"ebno"`` or ``"esno"``, optional
        Defaults to the rows' ``snr_type`` (they must agree).
    closed_forms : mapping label -> (snr_db, values), optional
        Curves drawn dashed without markers (e.g. uncoded 16-QAM AWGN theory), on the same SNR axis.

    Returns
    -------
    matplotlib.figure.Figure (Agg canvas)

    Examples
    --------
    >>> rows = [{"scheme": "uncoded", "channel": "awgn", "snr_db": s, "snr_type": "esno", "ber": b,
    ...          "ber_ci_low": b / 2, "ber_ci_high": b * 2} for s, b in ((0.0, 0.1), (5.0, 0.01))]
    >>> fig = error_rate_figure(rows, closed_forms={"theory": ([0.0, 5.0], [0.16, 0.04])})
    >>> ax = fig.axes[0]
    >>> ax.get_yscale(), ax.get_xlabel(), len(ax.get_lines()) >= 2
    ('log', 'Es/N0 per complex channel use [dB]', True)
    """
    if metric not in ("ber", "bler"):
        raise ValueError(f"metric must be 'ber' or 'bler', got {metric!r}")
    rows = [r.to_row() if hasattr(r, "to_row") else dict(r) for r in rows]
    types = {str(r["snr_type"]) for r in rows}
    if snr_type is None:
        if len(types) > 1:
            raise ValueError(f"rows mix SNR conventions {sorted(types)}; plot them separately")
        snr_type = types.pop() if types else "esno"
    elif types and types != {snr_type}:
        raise ValueError(f"rows have snr_type {sorted(types)}, but snr_type={snr_type!r} was asked")
    xlabel = snr_axis_label(snr_type)

    channels = sorted({str(r["channel"]) for r in rows})
    schemes: List[str] = []
    curves: Dict[Tuple[str, str], List[Tuple[float, float, float, float]]] = {}
    for r in rows:
        scheme, chan = str(r["scheme"]), str(r["channel"])
        if scheme not in schemes:
            schemes.append(scheme)
        curves.setdefault((scheme, chan), []).append(
            (_f(r["snr_db"]), _f(r[metric]), _f(r[f"{metric}_ci_low"]), _f(r[f"{metric}_ci_high"])))

    fig = _figure(figsize)
    fig.set_dpi(dpi)
    ax = fig.add_subplot(1, 1, 1)
    positive: List[float] = []
    styles = ("-", "-.", ":", (0, (5, 1, 1, 1)))
    for (scheme, chan), pts in curves.items():
        # colour = scheme, line style = channel
        label = scheme if len(channels) == 1 else f"{scheme} / {chan}"
        color = f"C{schemes.index(scheme) % 10}"
        style = styles[channels.index(chan) % len(styles)]
        pts.sort(key=lambda p: p[0])
        x = np.array([p[0] for p in pts])
        y = np.array([p[1] for p in pts])
        lo = np.array([p[2] for p in pts])
        hi = np.array([p[3] for p in pts])
        ok = np.isfinite(y) & (y > 0)
        if ok.any():
            yerr = np.vstack([y[ok] - lo[ok], hi[ok] - y[ok]])
            ax.errorbar(x[ok], y[ok], yerr=np.where(np.isfinite(yerr), yerr, 0.0), fmt="o", linestyle=style,
                        color=color, label=label, capsize=2, markersize=4, linewidth=1.2)
            positive.extend(y[ok].tolist())
        zero = np.isfinite(y) & (y == 0) & np.isfinite(hi)
        if zero.any():
            ax.plot(x[zero], hi[zero], "v", color=color, markersize=6,
                    label=None if ok.any() else label)
            positive.extend(hi[zero].tolist())
        if not ok.any() and not zero.any():
            ax.plot([], [], "o", linestyle=style, color=color, label=f"{label} (no data)")
    greys = ("black", "dimgray", "darkgray", "silver")
    for j, (label, (xs, ys)) in enumerate((closed_forms or {}).items()):
        xs = np.asarray(xs, dtype=float)
        ys = np.asarray(ys, dtype=float)
        good = np.isfinite(ys) & (ys > 0)
        ax.plot(xs[good], ys[good], "--", color=greys[j % len(greys)], linewidth=1.0, label=label)
        positive.extend(ys[good].tolist())
    ax.set_yscale("log")
    if positive:
        lo_y = max(min(positive) / 3.0, 1e-12)
        ax.set_ylim(lo_y, min(1.0, max(positive) * 2.0))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("BER" if metric == "ber" else "BLER")
    ax.grid(True, which="both", alpha=0.3)
    if title:
        ax.set_title(title)
    if curves or closed_forms:
        ax.legend(fontsize="small", title="\u25bc: no errors (95% upper bound)" if any(
            _f(r[metric]) == 0 for r in rows) else None, title_fontsize="x-small")
    fig.tight_layout()
    return fig


def plot_metric_vs_snr(series: Mapping[str, Tuple[Sequence[float], Sequence[float]]],
                       path: Union[str, os.PathLike], *, xlabel: Optional[str] = None,
                       snr_type: Optional[str] = "esno", ylabel: str = "metric", logy: bool = False,
                       errors: Optional[Mapping[str, Sequence[float]]] = None, title: Optional[str] = None,
                       figsize=(6.4, 4.8), dpi: int = 120) -> str:
    """Draw :func:`metric_figure` and save it as a PNG at ``path``; returns ``path``.

    Examples
    --------
    >>> import os, tempfile
    >>> path = plot_metric_vs_snr({"analog": ([0, 5, 10], [0.5, 0.2, 0.05])}, os.path.join(tempfile.mkdtemp(), "m.png"),
    ...                           ylabel="NMSE", logy=True)
    >>> os.path.getsize(path) > 0
    True
    """
    fig = metric_figure(series, xlabel=xlabel, snr_type=snr_type, ylabel=ylabel, logy=logy, errors=errors,
                        title=title, figsize=figsize, dpi=dpi)
    return _save(fig, path)


def metric_figure(series: Mapping[str, Tuple[Sequence[float], Sequence[float]]], *,
                  xlabel: Optional[str] = None, snr_type: Optional[str] = "esno", ylabel: str = "metric",
                  logy: bool = False, errors: Optional[Mapping[str, Sequence[float]]] = None,
                  title: Optional[str] = None, figsize=(6.4, 4.8), dpi: int = 120):
    """Generic metric-vs-SNR line plot, one line per entry of ``series`` (returns the Figure).

    Parameters
    ----------
    series : mapping label -> (snr_db, values)
        NaN values are left out of the line.
    xlabel : str, optional
        Defaults to :func:`snr_axis_label` of ``snr_type`` (Es/N0 per complex channel use).
    ylabel : str
    logy : bool
        Log-scale y axis.
    errors : mapping label -> half-widths ``[N]`` or ``[2, N]`` (offsets below, above), optional
        Error bars (e.g. 95% intervals).

    Examples
    --------
    >>> fig = metric_figure({"analog": ([0, 5, 10], [0.5, 0.2, float("nan")])}, ylabel="NMSE", logy=True)
    >>> line = fig.axes[0].get_lines()[0]
    >>> [float(v) for v in line.get_xdata()], fig.axes[0].get_ylabel()          # the NaN point is left out
    ([0.0, 5.0], 'NMSE')
    """
    if not isinstance(series, Mapping) or not series:
        raise ValueError("series must be a non-empty mapping label -> (snr_db, values)")
    fig = _figure(figsize)
    fig.set_dpi(dpi)
    ax = fig.add_subplot(1, 1, 1)
    for label, xy in series.items():
        if len(xy) != 2:
            raise ValueError(f"series[{label!r}] must be (snr_db, values), got {len(xy)} items")
        x = np.asarray(xy[0], dtype=float)
        y = np.asarray(xy[1], dtype=float)
        if x.shape != y.shape:
            raise ValueError(f"series[{label!r}]: snr_db has shape {x.shape}, values {y.shape}")
        good = np.isfinite(y) & np.isfinite(x)
        if logy:
            good &= y > 0
        order = np.argsort(x[good])
        err = None
        if errors and label in errors:
            e = np.asarray(errors[label], dtype=float)
            if e.shape == y.shape:
                err = e[good][order]
            elif e.shape == (2,) + y.shape:          # asymmetric: (below, above) offsets
                err = e[:, good][:, order]
            else:
                raise ValueError(f"errors[{label!r}] has shape {e.shape}, values {y.shape} "
                                 f"(expected {y.shape} or {(2,) + y.shape})")
            err = np.nan_to_num(err, nan=0.0)
        ax.errorbar(x[good][order], y[good][order], yerr=err, fmt="o-", markersize=4, capsize=2,
                    linewidth=1.2, label=label)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel if xlabel is not None else snr_axis_label(snr_type or "esno"))
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------
# merged figures across runs (`semcom plot`)
# ------------------------------------------------------------------------------------------------
#: metrics drawn on a log y axis by default (error rates and distortions)
LOG_METRICS = frozenset({"ber", "bler", "bler_normal_approx", "nmse", "opta_nmse", "fbl_nmse", "outage_rate", "codeword_error_rate", "mcs_bler_est",
                         "ser", "wer", "lpips"})
#: Axis labels of the metrics of the result CSVs (the column name is used for any other).
METRIC_LABELS = {
    "ber": "BER", "bler": "BLER", "nmse": "NMSE", "opta_nmse": "Gaussian OPTA NMSE", "gap_db": "gap to the OPTA [dB]",
    "fbl_nmse": "NMSE of separation at this block length", "gap_fbl_db": "gap to separation at this block length [dB]",
    "bler_normal_approx": "BLER, normal approximation",
    "cosine": "cosine similarity", "retrieval_top1": "top-1 retrieval accuracy",
    "retrieval_top5": "top-5 retrieval accuracy", "top1": "top-1 accuracy", "top5": "top-5 accuracy",
    "semantic_similarity": "semantic similarity", "bleu": "BLEU", "bleu1": "BLEU-1", "bleu4": "BLEU-4",
    "bertscore_f1": "BERTScore F1", "lpips": "LPIPS (lower is better)", "clip_score": "CLIP score",
    "psnr": "PSNR [dB]", "ssim": "SSIM", "ms_ssim": "MS-SSIM", "outage_rate": "outage rate",
    "codeword_error_rate": "codeword error rate",
}
#: the tab10 palette and the markers a scheme's style is drawn from
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p")
CHANNEL_LINESTYLES = {"awgn": "-", "rayleigh": "--", "rician": "-.", "ideal": "-"}
SCHEME_COLUMNS = ("scheme", "system")


def scheme_style(scheme: str) -> Dict[str, str]:
    """The colour and marker of ``scheme``: derived from its name alone (CRC-32), so a scheme looks the same in
    every figure, whatever else is drawn and in whatever order.

    Example
    -------
    >>> scheme_style("analog-mmse") == scheme_style("analog-mmse")
    True
    >>> sorted(scheme_style("ldpc5g"))
    ['color', 'marker']
    """
    import zlib

    h = zlib.crc32(str(scheme).encode("utf-8"))
    return {"color": PALETTE[h % len(PALETTE)], "marker": MARKERS[(h // len(PALETTE)) % len(MARKERS)]}


def _ci_columns(columns: Sequence[str], metric: str) -> Optional[Tuple[str, str]]:
    for lo, hi in (("ci_lo", "ci_hi"), ("ci_low", "ci_high")):
        if f"{metric}_{lo}" in columns and f"{metric}_{hi}" in columns:
            return f"{metric}_{lo}", f"{metric}_{hi}"
    return None


def _matches(value: str, wanted: Sequence[str]) -> bool:
    for w in wanted:
        if value == w:
            return True
        try:
            if float(value) == float(w):
                return True
        except ValueError:
            pass
    return False


def merged_metric_figure(tables: Sequence[Tuple[str, Sequence[Mapping[str, Any]]]], metric: str, *,
                         filters: Optional[Mapping[str, Sequence[str]]] = None, snr_type: Optional[str] = None,
                         logy: Optional[bool] = None, title: Optional[str] = None, figsize=(6.4, 4.8),
                         dpi: int = 120):
    """One figure of ``metric`` vs SNR from the rows of several result tables (runs and commands merged).

    Parameters
    ----------
    tables : sequence of ``(label, rows)``
        ``label`` names the table (its run folder); ``rows`` are its CSV rows as dicts of strings. A table
        needs ``snr_db``, a ``scheme`` or ``system`` column and ``metric``; tables without ``metric`` are
        skipped.
    metric : str
        The column drawn (``ber``, ``bler``, ``nmse``, ``cosine``, ``retrieval_top1``, ...).
    filters : mapping column -> accepted values, optional
        Keep only rows whose column equals one of the values (numbers compare as numbers). A column no
        table has is an error.
    snr_type : ``"ebno"`` or ``"esno"``, optional
        The x axis. Tables with an ``snr_type`` column (``ber.csv``) are converted through their
        ``esno_db`` / ``ebno_db`` columns; the others are Es/N0 per complex channel use. Default: the
        tables' common convention, Es/N0 when they differ.
    logy : bool, optional
        Default: log axis for the error rates and distortions of :data:`LOG_METRICS`.

    Returns
    -------
    (matplotlib.figure.Figure, list of curve labels)
        One curve per (scheme, channel[, table]): colour and marker from :func:`scheme_style` (the scheme
        name), line style from the channel, open markers for a repeated scheme/channel from another
        table; 95 % intervals as error bars where the table has ``<metric>_ci_lo/_hi`` or
        ``_ci_low/_high``. Non-finite values (skipped points) are left out, as are non-positive ones on
        a log axis; a curve with nothing left is not drawn.

    Examples
    --------
    >>> rows = [{"scheme": "uncoded", "channel": "awgn", "snr_db": s, "snr_type": "esno", "ber": b,
    ...          "ber_ci_low": b / 2, "ber_ci_high": b * 2} for s, b in ((0.0, 0.1), (5.0, 0.01))]
    >>> other = [dict(r, scheme="hamming74", ber=r["ber"] / 10) for r in rows]
    >>> fig, labels = merged_metric_figure([("run-a", rows), ("run-b", other)], "ber")
    >>> sorted(labels), fig.axes[0].get_yscale()
    (['hamming74', 'uncoded'], 'log')
    """
    filters = {k: list(v) for k, v in (filters or {}).items()}
    used = [(label, list(rows)) for label, rows in tables if rows and metric in rows[0]]
    if not used:
        available = sorted({c for _, rows in tables for c in (rows[0] if rows else {})})
        raise ValueError(f"no table has the metric {metric!r}; columns found: {available}")
    columns = set().union(*(set(rows[0]) for _, rows in used))
    unknown = sorted(set(filters) - columns)
    if unknown:
        raise ValueError(f"--filter names column(s) {unknown} that no table with {metric!r} has; "
                         f"columns: {sorted(columns)}")
    types = {r.get("snr_type") or "esno" for _, rows in used for r in rows}
    if snr_type is None:
        snr_type = types.pop() if len(types) == 1 else "esno"
    snr_axis_label(snr_type)  # validates
    if logy is None:
        logy = metric in LOG_METRICS

    curves: Dict[Tuple[str, str, str], List[Tuple[float, float, float, float]]] = {}
    for label, rows in used:
        scheme_col = next((c for c in SCHEME_COLUMNS if c in rows[0]), None)
        if scheme_col is None or "snr_db" not in rows[0]:
            raise ValueError(f"table {label!r} has no {' or '.join(SCHEME_COLUMNS)} / snr_db column")
        ci = _ci_columns(list(rows[0]), metric)
        for r in rows:
            if any(k not in r or not _matches(str(r[k]), v) for k, v in filters.items()):
                continue
            own = r.get("snr_type") or "esno"
            x = _f(r["snr_db"]) if own == snr_type else _f(r.get(f"{snr_type}_db"))
            if own != snr_type and f"{snr_type}_db" not in r:
                raise ValueError(f"table {label!r} is in {own} and has no {snr_type}_db column; plot it with "
                                 f"--snr-type {own} or --filter snr_type={snr_type}")
            y = _f(r[metric])
            lo, hi = (_f(r[ci[0]]), _f(r[ci[1]])) if ci else (math.nan, math.nan)
            key = (str(r[scheme_col]), str(r.get("channel", "")), label)
            curves.setdefault(key, []).append((x, y, lo, hi))

    fig = _figure(figsize)
    fig.set_dpi(dpi)
    ax = fig.add_subplot(1, 1, 1)
    channels = sorted({c for _, c, _ in curves})
    seen: Dict[Tuple[str, str], int] = {}
    for s, c, _ in curves:
        seen[(s, c)] = seen.get((s, c), 0) + 1
    labels: List[str] = []
    drawn: Dict[Tuple[str, str], int] = {}
    for (scheme, chan, table), pts in sorted(curves.items()):
        pts.sort(key=lambda p: p[0])
        x, y, lo, hi = (np.array(v, dtype=float) for v in zip(*pts))
        ok = np.isfinite(x) & np.isfinite(y) & ((y > 0) if logy else True)
        if not ok.any():  # nothing measured to draw (e.g. the BER of an analog scheme)
            continue
        label = scheme + (f" / {chan}" if len(channels) > 1 and chan else "") + \
            (f" ({table})" if seen[(scheme, chan)] > 1 else "")
        nth = drawn.get((scheme, chan), 0)
        drawn[(scheme, chan)] = nth + 1
        style = scheme_style(scheme)
        yerr = None
        if np.isfinite(lo[ok]).any() or np.isfinite(hi[ok]).any():
            yerr = np.nan_to_num(np.vstack([y[ok] - lo[ok], hi[ok] - y[ok]]), nan=0.0).clip(min=0.0)
        ax.errorbar(x[ok], y[ok], yerr=yerr, color=style["color"], marker=style["marker"],
                    linestyle=CHANNEL_LINESTYLES.get(chan.lower(), ":"), capsize=2,  # sizes: rcParams / --style
                    markerfacecolor=style["color"] if nth == 0 else "none", label=label)
        labels.append(label)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(snr_axis_label(snr_type))
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.grid(True, which="both", alpha=0.3)
    if title:
        ax.set_title(title)
    if len(labels) > 6:  # many curves: the legend beside the axes, the figure widened for it
        fig.set_size_inches(figsize[0] + 3.2, max(figsize[1], 0.17 * len(labels) + 0.8))
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize="x-small")
    elif labels:
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig, labels


def save_figure(fig, path: Union[str, os.PathLike]) -> str:
    """Save ``fig`` atomically at ``path`` (the format from the extension: ``.pdf``, ``.svg`` or ``.png``).

    Examples
    --------
    >>> import os, tempfile
    >>> fig = metric_figure({"a": ([0, 1], [1.0, 2.0])})
    >>> path = save_figure(fig, os.path.join(tempfile.mkdtemp(), "fig.svg"))
    >>> open(path).read().lstrip().startswith("<?xml")
    True
    """
    return _save(fig, path)
