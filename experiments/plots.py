"""Matplotlib figures for experiments (Agg canvas, no pyplot global state, safe without a display).

* :func:`plot_error_rate` draws BER (or BLER) vs SNR on a log axis, one curve per
  (scheme, channel) with 95 % confidence bars, optional closed-form curves (dashed), and labels
  the axis with the SNR convention: ``"Eb/N0 [dB]"`` or ``"Es/N0 per complex channel use [dB]"``.
  Skipped points (NaN) are left out; simulated points with zero errors are drawn as a downward
  triangle at their CI upper bound (an upper limit, not a BER of 0).
* :func:`plot_metric_vs_snr` is the generic "metric vs SNR" line plot (accuracy, PSNR, BLEU,
  similarity ...) that the other experiments reuse.

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
           "metric_figure"]

SNR_LABELS = {
    "ebno": "Eb/N0 [dB]",
    "esno": "Es/N0 per complex channel use [dB]",
}


def snr_axis_label(snr_type: str) -> str:
    """Axis label for an SNR convention (``"ebno"`` or ``"esno"``)."""
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
    """Draw :func:`error_rate_figure` and save it as a PNG at ``path``; returns ``path``."""
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
    rows : iterable of mappings (CSV rows) or ``phy.montecarlo.PointResult``
        Needs ``scheme, channel, snr_db, snr_type, <metric>, <metric>_ci_low, <metric>_ci_high``.
    metric : ``"ber"`` or ``"bler"``
    snr_type : ``"ebno"`` or ``"esno"``, optional
        Defaults to the rows' ``snr_type`` (they must agree).
    closed_forms : mapping label -> (snr_db, values), optional
        Curves drawn dashed without markers (e.g. uncoded 16-QAM AWGN theory), on the same SNR axis.

    Returns
    -------
    matplotlib.figure.Figure (Agg canvas)
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
    """Draw :func:`metric_figure` and save it as a PNG at ``path``; returns ``path``."""
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
