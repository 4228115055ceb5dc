"""Matplotlib figures for experiments (Agg canvas, no pyplot global state, safe without a display).

* :func:`plot_error_rate` draws BER (or BLER) vs SNR on a log axis, one curve per
  (scheme, channel) with 95 % confidence bars, optional closed-form curves (dashed), and labels
  the axis with the SNR convention: ``"Eb/N0 [dB]"`` or ``"Es/N0 per complex channel use [dB]"``.
  Skipped points (NaN) are left out; simulated points with zero errors are drawn as a downward
  triangle at their CI upper bound (an upper limit, not a BER of 0).
* :func:`plot_metric_vs_snr` is the generic "metric vs SNR" line plot (accuracy, PSNR, BLEU,
  similarity ...) that the other experiments reuse.
* :func:`merged_metric_figure` merges the result tables of several runs and commands into one figure
  (``semcom plot``), legend labels naming the settings that tell the runs apart, references kept.

Colours, markers, labels, axis limits, legends and file names follow :mod:`experiments.core.figstyle`.

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
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["SNR_LABELS", "snr_axis_label", "plot_error_rate", "error_rate_figure", "plot_metric_vs_snr",
           "metric_figure", "LOG_METRICS", "METRIC_LABELS", "CURVE_COLUMNS", "scheme_style", "merged_metric_figure",
           "save_figure"]

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


def _save(fig, path, title: Optional[str] = None, description: Optional[str] = None) -> str:
    from experiments.core.figstyle import save

    return save(fig, path, title=title, description=description)


def _f(v) -> float:
    if v is None or v == "":
        return math.nan
    return float(v)


def _off_scale(label: str, top: float) -> str:
    return f"{label} (off scale, up to {top:.3g})"


def plot_error_rate(rows: Iterable[Union[Mapping[str, Any], Any]], path: Union[str, os.PathLike], *,
                    metric: str = "ber", snr_type: Optional[str] = None,
                    closed_forms: Optional[Mapping[str, Tuple[Sequence[float], Sequence[float]]]] = None,
                    title: Optional[str] = None, description: Optional[str] = None, figsize=(6.4, 4.8),
                    dpi: int = 120) -> str:
    """Draw :func:`error_rate_figure` and save it at ``path`` (``.png``, ``.pdf`` or ``.svg``; ``title`` and
    ``description`` also go into the file's metadata); returns ``path``.

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
    return _save(fig, path, title, description)


def error_rate_figure(rows: Iterable[Union[Mapping[str, Any], Any]], *, metric: str = "ber",
                      snr_type: Optional[str] = None,
                      closed_forms: Optional[Mapping[str, Tuple[Sequence[float], Sequence[float]]]] = None,
                      title: Optional[str] = None, figsize=(6.4, 4.8), dpi: int = 120):
    """BER or BLER vs SNR, log scale, one curve per ``scheme`` (per ``scheme/channel`` if several;
    colour and marker = scheme, :mod:`experiments.core.figstyle`; line style = channel).

    Legend labels come from :func:`experiments.core.figstyle.scheme_label` and the settings a row carries
    (``modulation``, ``k``, ``n``, ``decoder``: the columns of ``ber.csv``); the y axis spans the measured
    points (and the 95 % upper bounds of error-free points), so the closed forms are clipped to it; the
    legend sits beside the axes.

    Parameters
    ----------
    rows : iterable of mappings (CSV rows) or ``phy.sim.points.PointResult``
        Needs ``scheme, channel, snr_db, snr_type, <metric>, <metric>_ci_low, <metric>_ci_high``.
    metric : ``"ber"`` or ``"bler"``
    snr_type : ``"ebno"`` or ``"esno"``, optional
        Defaults to the rows' ``snr_type`` (they must agree).
    closed_forms : mapping label -> (snr_db, values), optional
        Reference curves, drawn black/grey and dashed without markers (e.g. uncoded 16-QAM AWGN theory),
        on the same SNR axis.

    Returns
    -------
    matplotlib.figure.Figure (Agg canvas)

    Examples
    --------
    >>> rows = [{"scheme": "none", "channel": "awgn", "snr_db": s, "snr_type": "esno", "ber": b,
    ...          "ber_ci_low": b / 2, "ber_ci_high": b * 2, "modulation": "qpsk"} for s, b in ((0.0, 0.1), (5.0, 0.01))]
    >>> fig = error_rate_figure(rows, closed_forms={"theory": ([0.0, 5.0], [0.16, 0.04])})
    >>> ax = fig.axes[0]
    >>> ax.get_yscale(), ax.get_xlabel(), [t.get_text() for t in ax.get_legend().get_texts()]
    ('log', 'Es/N0 per complex channel use [dB]', ['uncoded QPSK', 'theory'])
    """
    from experiments.core.figstyle import (assign_styles, channel_short_name, data_limits, place_legend,
                                           reference_style, scheme_label)

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
    first: Dict[str, Mapping[str, Any]] = {}
    curves: Dict[Tuple[str, str], List[Tuple[float, float, float, float]]] = {}
    for r in rows:
        scheme, chan = str(r["scheme"]), str(r["channel"])
        if scheme not in schemes:
            schemes.append(scheme)
            first[scheme] = r
        curves.setdefault((scheme, chan), []).append(
            (_f(r["snr_db"]), _f(r[metric]), _f(r[f"{metric}_ci_low"]), _f(r[f"{metric}_ci_high"])))
    styles = assign_styles(schemes)

    fig = _figure(figsize)
    fig.set_dpi(dpi)
    ax = fig.add_subplot(1, 1, 1)
    data: Dict[Tuple[str, str], List[float]] = {}
    linestyles = ("-", "-.", ":", (0, (5, 1, 1, 1)))
    any_zero = False
    for (scheme, chan), pts in curves.items():
        # colour and marker = scheme, line style = channel
        label = scheme_label(scheme, first[scheme])
        if len(channels) > 1:
            label += f" / {channel_short_name(chan, 24)}"
        color, marker = styles[scheme]["color"], styles[scheme]["marker"]
        style = linestyles[channels.index(chan) % len(linestyles)]
        pts.sort(key=lambda p: p[0])
        x = np.array([p[0] for p in pts])
        y = np.array([p[1] for p in pts])
        lo = np.array([p[2] for p in pts])
        hi = np.array([p[3] for p in pts])
        ok = np.isfinite(y) & (y > 0)
        if ok.any():
            yerr = np.vstack([y[ok] - lo[ok], hi[ok] - y[ok]])
            ax.errorbar(x[ok], y[ok], yerr=np.where(np.isfinite(yerr), yerr, 0.0).clip(min=0.0), marker=marker,
                        linestyle=style, color=color, label=label, capsize=2, markersize=4, linewidth=1.2)
            data.setdefault((scheme, chan), []).extend(y[ok].tolist())
        zero = np.isfinite(y) & (y == 0) & np.isfinite(hi)
        if zero.any():
            any_zero = True
            ax.plot(x[zero], hi[zero], "v", color=color, markersize=6, markerfacecolor="none",
                    label=None if ok.any() else label)
            data.setdefault((scheme, chan), []).extend(hi[zero].tolist())
        if not ok.any() and not zero.any():
            ax.plot([], [], marker=marker, linestyle=style, color=color, label=f"{label} (no data)")
    for j, (label, (xs, ys)) in enumerate((closed_forms or {}).items()):
        xs = np.asarray(xs, dtype=float)
        ys = np.asarray(ys, dtype=float)
        good = np.isfinite(ys) & (ys > 0)
        ax.plot(xs[good], ys[good], label=label, **reference_style(j))
    ax.set_yscale("log")
    lim, _ = data_limits(data, log=True, outlier_decades=math.inf)
    if lim is None and closed_forms:  # nothing measured: the references set the range
        refs = [v for _, ys in closed_forms.values() for v in np.asarray(ys, dtype=float) if v > 0]
        lim = (min(refs), max(refs)) if refs else None
    if lim is not None:
        ax.set_ylim(max(lim[0], 1e-15), min(1.0, lim[1]) if lim[1] > lim[0] else lim[1])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("BER" if metric == "ber" else "BLER")
    ax.grid(True, which="both", alpha=0.3)
    if title:
        ax.set_title(title)
    place_legend(ax, title="\u25bd: no errors (95% upper bound)" if any_zero else None)
    return fig


def plot_metric_vs_snr(series: Mapping[str, Tuple[Sequence[float], Sequence[float]]],
                       path: Union[str, os.PathLike], *, xlabel: Optional[str] = None,
                       snr_type: Optional[str] = "esno", ylabel: str = "metric", logy: bool = False,
                       errors: Optional[Mapping[str, Sequence[float]]] = None, title: Optional[str] = None,
                       references: Sequence[str] = (), schemes: Optional[Mapping[str, str]] = None,
                       description: Optional[str] = None, figsize=(6.4, 4.8), dpi: int = 120) -> str:
    """Draw :func:`metric_figure` and save it at ``path`` (``.png``, ``.pdf`` or ``.svg``; ``title`` and
    ``description`` also go into the file's metadata); returns ``path``.

    Examples
    --------
    >>> import os, tempfile
    >>> path = plot_metric_vs_snr({"analog": ([0, 5, 10], [0.5, 0.2, 0.05])}, os.path.join(tempfile.mkdtemp(), "m.png"),
    ...                           ylabel="NMSE", logy=True)
    >>> os.path.getsize(path) > 0
    True
    """
    fig = metric_figure(series, xlabel=xlabel, snr_type=snr_type, ylabel=ylabel, logy=logy, errors=errors,
                        title=title, references=references, schemes=schemes, figsize=figsize, dpi=dpi)
    return _save(fig, path, title, description)


def metric_figure(series: Mapping[str, Tuple[Sequence[float], Sequence[float]]], *,
                  xlabel: Optional[str] = None, snr_type: Optional[str] = "esno", ylabel: str = "metric",
                  logy: bool = False, errors: Optional[Mapping[str, Sequence[float]]] = None,
                  title: Optional[str] = None, references: Sequence[str] = (),
                  schemes: Optional[Mapping[str, str]] = None, figsize=(6.4, 4.8), dpi: int = 120):
    """Generic metric-vs-SNR line plot, one line per entry of ``series`` (returns the Figure).

    Every data curve gets its scheme's colour and marker (:func:`experiments.core.figstyle.assign_styles`:
    no colour twice in the figure); the curves named in ``references`` are drawn black/grey, dashed, without
    markers, and do not set the y range, which comes from the data; a data curve far above all the others
    leaves the axis, with a note in its label (:func:`experiments.core.figstyle.data_limits`). The legend
    sits beside the axes.

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
    references : sequence of labels, optional
        The series that are references (closed forms, bounds, chance).
    schemes : mapping label -> scheme name, optional
        The scheme whose style a label is drawn in (default: the label itself).

    Examples
    --------
    >>> fig = metric_figure({"analog": ([0, 5, 10], [0.5, 0.2, float("nan")])}, ylabel="NMSE", logy=True)
    >>> line = fig.axes[0].get_lines()[0]
    >>> [float(v) for v in line.get_xdata()], fig.axes[0].get_ylabel()          # the NaN point is left out
    ([0.0, 5.0], 'NMSE')
    """
    from experiments.core.figstyle import assign_styles, data_limits, place_legend, reference_style

    if not isinstance(series, Mapping) or not series:
        raise ValueError("series must be a non-empty mapping label -> (snr_db, values)")
    refs = [label for label in series if label in set(references)]
    data_labels = [label for label in series if label not in set(references)]
    styles = assign_styles(data_labels, scheme_of=lambda label: (schemes or {}).get(label, label))
    fig = _figure(figsize)
    fig.set_dpi(dpi)
    ax = fig.add_subplot(1, 1, 1)
    cleaned = {}
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
            err = np.nan_to_num(err, nan=0.0).clip(min=0.0)
        cleaned[label] = (x[good][order], y[good][order], err)
    lim, outliers = data_limits({label: cleaned[label][1] for label in data_labels}, log=logy)
    for label in data_labels:
        x, y, err = cleaned[label]
        shown = _off_scale(label, outliers[label]) if label in outliers else label
        if label in outliers:  # off scale: its intervals would only draw lines across the axis
            err = None
        ax.errorbar(x, y, yerr=err, marker=styles[label]["marker"], color=styles[label]["color"], markersize=4,
                    capsize=2, linewidth=1.2, label=shown)
    for j, label in enumerate(refs):
        x, y, _ = cleaned[label]
        ax.plot(x, y, label=label, **reference_style(j))
    if logy:
        ax.set_yscale("log")
    if lim is not None and lim[1] > lim[0]:
        ax.set_ylim(*lim)
    ax.set_xlabel(xlabel if xlabel is not None else snr_axis_label(snr_type or "esno"))
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    if title:
        ax.set_title(title)
    place_legend(ax)
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
#: line style of each channel kind in merged figures (dashed is kept for references)
CHANNEL_LINESTYLES = {"awgn": "-", "rayleigh": "-.", "rician": ":", "tdl": (0, (5, 1, 1, 1)), "ofdm": (0, (3, 1)),
                      "ideal": "-"}
SCHEME_COLUMNS = ("scheme", "system")
#: Columns that describe how a curve was made (``ber.csv``'s settings, ``compare.csv``'s equaliser and budget):
#: where they differ between the merged curves of one scheme, the legend names them.
CURVE_COLUMNS = ("modulation", "k", "n", "coderate", "decoder", "ldpc_iter", "demapping", "detector", "equalizer",
                 "budget", "matched")


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


def _describe(rows: Sequence[Mapping[str, Any]]) -> Tuple[Tuple[str, str], ...]:
    """The :data:`CURVE_COLUMNS` that are constant (and not empty) over one curve's rows."""
    out = []
    for c in CURVE_COLUMNS:
        vals = {str(r.get(c, "")) for r in rows}
        if len(vals) == 1:
            v = vals.pop()
            if v not in ("", "nan", "None"):
                out.append((c, v))
    return tuple(out)


def _x_of(r: Mapping[str, Any], snr_type: str, label: str) -> float:
    own = r.get("snr_type") or "esno"
    if own == snr_type:
        return _f(r["snr_db"])
    if f"{snr_type}_db" not in r:
        raise ValueError(f"table {label!r} is in {own} and has no {snr_type}_db column; plot it with "
                         f"--snr-type {own} or --filter snr_type={snr_type}")
    return _f(r.get(f"{snr_type}_db"))


def _references(metric: str, used, filters, snr_type: str, several_channels: bool) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """The reference curves of the merged tables, each once: the uncoded closed forms of ``ber.csv``'s
    modulations (BER), the analytic OPTA (NMSE), chance (retrieval), the normal approximation (BLER)."""
    from experiments.core.figstyle import channel_short_name, modulation_label

    refs: Dict[str, Dict[float, float]] = {}
    for label, rows in used:
        for r in rows:
            if any(k not in r or not _matches(str(r[k]), v) for k, v in filters.items()):
                continue
            chan = str(r.get("channel", ""))
            where = f" / {channel_short_name(chan, 24)}" if several_channels and chan else ""
            x = _x_of(r, snr_type, label)
            if not math.isfinite(x):
                continue
            if metric == "nmse" and _f(r.get("opta_nmse")) > 0:
                budget = f", {r['budget']} uses" if str(r.get("budget", "")) not in ("", "None") else ""
                refs.setdefault(f"Gaussian OPTA (analytic{budget}){where}", {})[x] = _f(r["opta_nmse"])
            elif metric == "retrieval_top1" and _f(r.get("chance")) > 0:
                refs.setdefault(f"chance (1/N = {_f(r['chance']):.2g})", {})[x] = _f(r["chance"])
            elif metric == "bler" and _f(r.get("bler_normal_approx")) > 0:
                from experiments.core.figstyle import scheme_label

                refs.setdefault(f"normal approx.: {scheme_label(str(r['scheme']), r)}{where}", {})[x] = \
                    _f(r["bler_normal_approx"])
    out = {k: (np.array(sorted(v)), np.array([v[x] for x in sorted(v)])) for k, v in refs.items()}
    if metric == "ber":  # the uncoded closed forms of the BER tables' modulations
        from phy.channel.registry import parse_channel_spec
        from phy.mapping.modulation import MODULATIONS, bits_per_symbol, uncoded_ber

        spans: Dict[Tuple[str, str], List[float]] = {}
        for label, rows in used:
            for r in rows:
                if any(k not in r or not _matches(str(r[k]), v) for k, v in filters.items()):
                    continue
                mod = str(r.get("modulation", "")).lower()
                if mod not in MODULATIONS or "snr_type" not in r:
                    continue
                try:
                    kind, params = parse_channel_spec(str(r.get("channel", "")))
                except ValueError:
                    continue
                if kind not in ("awgn", "rayleigh") or params.get("num_tx", 1) * params.get("num_rx", 1) != 1 \
                        or params.get("block_length", 1) != 1:
                    continue
                x = _x_of(r, snr_type, label)
                if math.isfinite(x):
                    spans.setdefault((mod, kind), []).append(x)
        for (mod, kind), xs in sorted(spans.items()):
            fine = np.linspace(min(xs), max(xs), 200) if max(xs) > min(xs) else np.array(xs[:1])
            esno = fine + (10 * math.log10(bits_per_symbol(mod)) if snr_type == "ebno" else 0.0)
            name = {"awgn": "AWGN", "rayleigh": "Rayleigh"}[kind]
            out[f"theory: uncoded {modulation_label(mod)} {name}"] = (fine, np.asarray(uncoded_ber(esno, mod, kind),
                                                                                       dtype=float))
    return out


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
        One curve per (scheme, channel, settings[, table]). The settings are the :data:`CURVE_COLUMNS` a
        curve's rows share (``ber.csv``: modulation, k, n, code rate, decoder, iterations, demapping,
        detector); the legend label is the scheme's (:func:`experiments.core.figstyle.scheme_label`) plus
        the settings that differ between the curves of that scheme, so two runs that differ only in
        modulation give two entries naming their modulations, in two colours
        (:func:`experiments.core.figstyle.assign_styles`: no colour twice in a figure). Line style from
        the channel; the same curve from another table with open markers and the table's name. 95 %
        intervals as error bars where the table has ``<metric>_ci_lo/_hi`` or ``_ci_low/_high``; an
        error-free point (value 0 with an upper bound) as an open downward triangle at its upper bound.
        References are drawn once each, black/grey and dashed: the uncoded closed forms of the BER
        tables' modulations (AWGN, Rayleigh), the analytic OPTA (``opta_nmse``), chance, the normal
        approximation (``bler_normal_approx``). The y range comes from the data. Non-finite values
        (skipped points) are left out, as are non-positive ones on a log axis; a curve with nothing
        left is not drawn.

    Examples
    --------
    >>> rows = [{"scheme": "none", "channel": "awgn", "snr_db": s, "snr_type": "esno", "ber": b,
    ...          "ber_ci_low": b / 2, "ber_ci_high": b * 2, "modulation": "qpsk"} for s, b in ((0.0, 0.1), (5.0, 0.01))]
    >>> other = [dict(r, modulation="16qam", ber=r["ber"] * 3) for r in rows]
    >>> fig, labels = merged_metric_figure([("run-a", rows), ("run-b", other)], "ber")
    >>> sorted(labels), fig.axes[0].get_yscale()
    (['uncoded 16-QAM', 'uncoded QPSK'], 'log')
    """
    from experiments.core.figstyle import assign_styles, place_legend, reference_style

    filters = {k: list(v) for k, v in (filters or {}).items()}
    used = _tables_with(tables, metric, filters)
    types = {r.get("snr_type") or "esno" for _, rows in used for r in rows}
    if snr_type is None:
        snr_type = types.pop() if len(types) == 1 else "esno"
    snr_axis_label(snr_type)  # validates
    if logy is None:
        logy = metric in LOG_METRICS
    curves = _merged_curves(used, metric, filters, snr_type, logy)
    channels = sorted({c for _, c, _, _ in curves})
    label_of = _curve_labeller(curves, channels)
    styles = assign_styles([(k[0], k[2]) for k in sorted(curves)], scheme_of=lambda k: k[0])
    base = {k: label_of(k[0], k[1], k[2]) for k in curves}

    fig = _figure(figsize)
    fig.set_dpi(dpi)
    ax = fig.add_subplot(1, 1, 1)
    labels, any_zero, lim = _draw_curves(ax, curves, base, styles, logy)
    for j, (ref, (xs, ys)) in enumerate(_references(metric, used, filters, snr_type, len(channels) > 1).items()):
        good = np.isfinite(ys) & ((ys > 0) if logy else True)
        if good.any():
            ax.plot(xs[good], ys[good], label=ref, **reference_style(j))
    if logy:
        ax.set_yscale("log")
    if lim is not None and lim[1] > lim[0]:
        ax.set_ylim(*lim)
    ax.set_xlabel(snr_axis_label(snr_type))
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.grid(True, which="both", alpha=0.3)
    if title:
        ax.set_title(title)
    place_legend(ax, title="\u25bd: no errors (95% upper bound)" if any_zero else None,
                 fontsize="small" if len(labels) <= 8 else "x-small")
    return fig, labels


def _tables_with(tables, metric: str, filters) -> List[Tuple[str, List[Mapping[str, Any]]]]:
    """The ``(label, rows)`` of the tables that have ``metric``; checks that every filter names a column."""
    used = [(label, list(rows)) for label, rows in tables if rows and metric in rows[0]]
    if not used:
        available = sorted({c for _, rows in tables for c in (rows[0] if rows else {})})
        raise ValueError(f"no table has the metric {metric!r}; columns found: {available}")
    columns = set().union(*(set(rows[0]) for _, rows in used))
    unknown = sorted(set(filters) - columns)
    if unknown:
        raise ValueError(f"--filter names column(s) {unknown} that no table with {metric!r} has; "
                         f"columns: {sorted(columns)}")
    return used


def _merged_curves(used, metric: str, filters, snr_type: str, logy: bool):
    """``{(scheme, channel, settings, table): [(x, y, ci_lo, ci_hi), ...]}`` of the rows that pass ``filters``,
    without the curves that have nothing drawable."""
    groups: Dict[Tuple[str, str, str], List[Mapping[str, Any]]] = {}
    for label, rows in used:
        scheme_col = next((c for c in SCHEME_COLUMNS if c in rows[0]), None)
        if scheme_col is None or "snr_db" not in rows[0]:
            raise ValueError(f"table {label!r} has no {' or '.join(SCHEME_COLUMNS)} / snr_db column")
        for r in rows:
            if any(k not in r or not _matches(str(r[k]), v) for k, v in filters.items()):
                continue
            groups.setdefault((str(r[scheme_col]), str(r.get("channel", "")), label), []).append(r)
    curves: Dict[Tuple[str, str, Tuple, str], List[Tuple[float, float, float, float]]] = {}
    for (scheme, chan, label), rows in groups.items():
        ci = _ci_columns(list(rows[0]), metric)
        desc = _describe(rows)
        for r in rows:
            lo, hi = (_f(r[ci[0]]), _f(r[ci[1]])) if ci else (math.nan, math.nan)
            curves.setdefault((scheme, chan, desc, label), []).append(
                (_x_of(r, snr_type, label), _f(r[metric]), lo, hi))

    def drawable(pts):
        y = np.array([p[1] for p in pts], dtype=float)
        hi = np.array([p[3] for p in pts], dtype=float)
        ok = np.isfinite(y) & ((y > 0) if logy else True)
        return ok.any() or (logy and (np.isfinite(y) & (y == 0) & np.isfinite(hi)).any())

    return {k: v for k, v in curves.items() if drawable(v)}


def _curve_labeller(curves, channels):
    """The legend label of a curve: the scheme's label plus the settings that differ between its curves."""
    from experiments.core.figstyle import channel_short_name, modulation_label, scheme_label

    # the settings that differ between the curves of one scheme go into its labels
    differing: Dict[str, List[str]] = {}
    for scheme in {k[0] for k in curves}:
        descs = [dict(k[2]) for k in curves if k[0] == scheme]
        cols = [c for c in CURVE_COLUMNS if len({d.get(c) for d in descs}) > 1]
        differing[scheme] = cols

    def label_of(scheme, chan, desc):
        d = dict(desc)
        text = scheme_label(scheme, d)
        extra = []
        for c in differing[scheme]:
            v = d.get(c)
            if v is None:
                extra.append(f"{c} n/a")
            elif not (modulation_label(v) in text if c == "modulation" else
                      re.search(rf"(?<![\w.]){re.escape(v)}(?![\w.])", text)):
                extra.append(f"{c}={v}")
        if extra:
            text += " (" + ", ".join(extra) + ")"
        if len(channels) > 1 and chan:
            text += f" / {channel_short_name(chan, 24)}"
        return text

    return label_of


def _draw_curves(ax, curves, base, styles, logy: bool):
    """Draw every curve (error bars, open triangles for error-free points, a note for an off-scale one);
    returns the labels drawn, whether an error-free point was drawn and the y range of the data."""
    from experiments.core.figstyle import data_limits

    count: Dict[str, int] = {}
    for k in curves:
        count[base[k]] = count.get(base[k], 0) + 1

    drawn_as: Dict[str, int] = {}
    prepared = []
    for key in sorted(curves):
        scheme, chan, desc, table = key
        pts = sorted(curves[key], key=lambda p: p[0])
        x, y, lo, hi = (np.array(v, dtype=float) for v in zip(*pts))
        label = base[key] + (f" ({table})" if count[base[key]] > 1 else "")
        nth = drawn_as.get(base[key], 0)
        drawn_as[base[key]] = nth + 1
        ok = np.isfinite(x) & np.isfinite(y) & ((y > 0) if logy else True)    # points drawn
        zero = logy & np.isfinite(x) & np.isfinite(y) & (y == 0) & np.isfinite(hi)  # no errors: the upper bound
        prepared.append((key, label, nth, x, y, lo, hi, ok, zero))
    values = {label: np.concatenate([y[ok], hi[zero]]) for _, label, _, _, y, _, hi, ok, zero in prepared}
    lim, outliers = data_limits(values, log=bool(logy))
    labels: List[str] = []
    any_zero = False
    for key, label, nth, x, y, lo, hi, ok, zero in prepared:
        scheme, chan, desc, table = key
        style = styles[(scheme, desc)]
        shown = _off_scale(label, outliers[label]) if label in outliers else label
        linestyle = CHANNEL_LINESTYLES.get(chan.split("(", 1)[0].lower(), ":")
        face = style["color"] if nth == 0 else "none"
        if ok.any():
            yerr = None
            if label not in outliers and (np.isfinite(lo[ok]).any() or np.isfinite(hi[ok]).any()):
                yerr = np.nan_to_num(np.vstack([y[ok] - lo[ok], hi[ok] - y[ok]]), nan=0.0).clip(min=0.0)
            ax.errorbar(x[ok], y[ok], yerr=yerr, color=style["color"], marker=style["marker"],
                        linestyle=linestyle, capsize=2,  # sizes: rcParams / --style
                        markerfacecolor=face, label=shown)
        if zero.any():
            any_zero = True
            ax.plot(x[zero], hi[zero], "v", color=style["color"], markerfacecolor="none",
                    label=None if ok.any() else shown)
        labels.append(label)
    return labels, any_zero, lim


def scheme_style(scheme: str) -> Dict[str, str]:
    """The preferred colour and marker of ``scheme`` (:func:`experiments.core.figstyle.scheme_style`).

    Example
    -------
    >>> scheme_style("analog-mmse") == scheme_style("analog-mmse")
    True
    >>> sorted(scheme_style("ldpc5g"))
    ['color', 'marker']
    """
    from experiments.core.figstyle import scheme_style as style

    return style(scheme)


def save_figure(fig, path: Union[str, os.PathLike], *, title: Optional[str] = None,
                description: Optional[str] = None) -> str:
    """Save ``fig`` atomically at ``path`` (the format from the extension: ``.pdf``, ``.svg`` or ``.png``;
    tight bounding box; ``title`` and ``description`` into the file's metadata).

    Examples
    --------
    >>> import os, tempfile
    >>> fig = metric_figure({"a": ([0, 1], [1.0, 2.0])})
    >>> path = save_figure(fig, os.path.join(tempfile.mkdtemp(), "fig.svg"))
    >>> open(path).read().lstrip().startswith("<?xml")
    True
    """
    return _save(fig, path, title, description)
