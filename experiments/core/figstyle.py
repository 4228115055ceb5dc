"""The figure style of every ``semcom`` command: colours, markers, labels, titles, axis limits, file names.

One place decides how a figure looks, so that ``semcom ber``, ``compare``, ``run``, ``semclip-eval``,
``vlf-msc-eval`` and ``semcom plot`` draw a scheme the same way:

* **Colour and marker per scheme** (:data:`SCHEME_STYLES`): a fixed entry for every built-in scheme, drawn
  from the tab10 palette without its grey (colour-blind-safe markers carry the difference too); other names
  get a family colour (``quant-*``, ``ascii-*``, ``transform-*``, ``analog*``) or one derived from the name.
  :func:`assign_styles` gives the curves of one figure their styles: the fixed ones first, then a colour no
  other curve of the figure uses, so no colour appears twice in one figure (up to :data:`PALETTE`'s size).
* **References** (closed forms, the analytic OPTA, chance, normal approximations) are black or grey, dashed,
  without markers (:func:`reference_style`).
* **Legend labels** from a label table (:func:`scheme_label`): ``LDPC(1024,512) 16-QAM, layered`` rather
  than ``ldpc5g``; the settings a row carries (``modulation``, ``k``, ``n``, ``decoder``) fill it in.
* **Short titles**: :func:`channel_short_name` (``Rayleigh``, ``OFDM TDL-C (cfo=600, ...)``); the full
  canonical spec goes into the figure's metadata (:func:`save`) and stays in the CSV.
* **Axis limits from the data** (:func:`data_limits`): references are clipped to the data's range, and a
  scheme whose values lie far above every other (``analog-zf`` at low SNR on fading) leaves the axis with a
  note in its label instead of stretching it.
* **Legends outside the data** (:func:`place_legend`), saved with a tight bounding box, so nothing is clipped.
* **Formats** ``png`` (default), ``pdf``, ``svg`` (``--format``, :func:`add_format_argument`); **file names**
  short and safe (:func:`safe_file_stem`: a hash suffix when the text is long).

Example
-------
>>> assign_styles(["opta", "analog-zf", "analog-mmse"])["analog-zf"]["marker"]
's'
>>> scheme_label("ldpc5g", {"modulation": "16qam", "k": "512", "n": "1024", "decoder": "layered-int8"})
'LDPC(1024,512) 16-QAM, layered-int8'
>>> channel_short_name("rayleigh(block_length=1,corr_rx=0.0,corr_tx=0.0,num_rx=1,num_tx=1)")
'Rayleigh'
"""
from __future__ import annotations

import argparse
import hashlib
import math
import os
import re
import zlib
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = ["PALETTE", "MARKERS", "SCHEME_STYLES", "REFERENCE_COLORS", "FORMATS", "scheme_style", "assign_styles",
           "reference_style", "scheme_label", "modulation_label", "channel_short_name", "channel_file_label",
           "safe_file_stem",
           "figure_path", "data_limits", "place_legend", "save", "add_format_argument"]

#: The palette curves are drawn from: tab10 without its grey (kept for references), then four darker
#: companions for figures with more schemes.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
           "#393b79", "#637939", "#843c39", "#7b4173", "#8c6d31")
#: Markers of the schemes outside :data:`SCHEME_STYLES` (in the order they are handed out).
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p", "d")
#: Colours of reference curves (closed forms, the analytic OPTA, chance): black, then greys.
REFERENCE_COLORS = ("black", "#555555", "#8c8c8c", "#b0b0b0")
#: The figure formats of ``--format``.
FORMATS = ("png", "pdf", "svg")

#: Fixed colour and marker of every built-in scheme (``semcom compare`` and ``semcom ber`` names).
SCHEME_STYLES: Dict[str, Tuple[str, str]] = {
    # semcom compare
    "opta": ("#8c564b", "*"),
    "analog": ("#1f77b4", "o"),
    "analog-mmse": ("#1f77b4", "o"),
    "analog-zf": ("#393b79", "s"),
    "analog-klt": ("#9467bd", "D"),
    "analog-svd": ("#17becf", "h"),
    "transform-ideal": ("#2ca02c", "^"),
    "transform-ldpc5g-amc": ("#d62728", "v"),
    "quant-ideal": ("#bcbd22", "<"),
    "quant-ldpc5g-16qam": ("#ff7f0e", ">"),
    "quant-hamming74-16qam": ("#e377c2", "P"),
    "fbl-separation": ("#a6761d", "d"),  # ochre: far from opta's brown
    "ascii-hamming74-16qam": ("#17becf", "p"),
    # semcom ber (codes): colours of their own, so a BER run merged with a comparison keeps every colour
    "none": ("#7b4173", "o"),
    "hamming74": ("#637939", "s"),
    "ldpc5g": ("#843c39", "^"),
}
#: Family colours of scheme names outside :data:`SCHEME_STYLES` (first matching prefix).
_FAMILIES = (("quant-", "#ff7f0e"), ("ascii-", "#17becf"), ("transform-", "#d62728"), ("analog", "#1f77b4"))

_MODULATIONS = {"bpsk": "BPSK", "qpsk": "QPSK", "16qam": "16-QAM", "64qam": "64-QAM", "256qam": "256-QAM",
                "1024qam": "1024-QAM"}
_CODES = {"none": "uncoded", "hamming74": "Hamming(7,4)", "ldpc5g": "LDPC", "ideal": "ideal code"}
#: Labels of the compare schemes (the settings of a row complete the digital ones).
_LABELS = {
    "opta": "Gaussian OPTA (test-channel samples)",
    "fbl-separation": "separation at this block length (normal approx.)",
    "analog": "analog",
    "analog-mmse": "analog, MMSE",
    "analog-zf": "analog, ZF",
    "analog-klt": "analog KLT (optimal linear)",
    "analog-svd": "analog, SVD precoding (CSIT)",
    "transform-ideal": "transform coding + ideal code",
    "quant-ideal": "uniform quantiser + ideal code",
}


def scheme_style(scheme: str) -> Dict[str, str]:
    """The preferred colour and marker of ``scheme``: its :data:`SCHEME_STYLES` entry, else its family's
    colour (``quant-*``, ``ascii-*``, ``transform-*``, ``analog*``) or a palette colour derived from the name
    (CRC-32), so a scheme looks the same in every figure. :func:`assign_styles` resolves collisions.

    Examples
    --------
    >>> scheme_style("analog-mmse")
    {'color': '#1f77b4', 'marker': 'o'}
    >>> scheme_style("my-plugin") == scheme_style("my-plugin")
    True
    """
    s = str(scheme)
    if s in SCHEME_STYLES:
        color, marker = SCHEME_STYLES[s]
        return {"color": color, "marker": marker}
    h = zlib.crc32(s.encode("utf-8"))
    color = next((c for prefix, c in _FAMILIES if s.startswith(prefix)), PALETTE[h % len(PALETTE)])
    return {"color": color, "marker": MARKERS[(h // len(PALETTE)) % len(MARKERS)]}


def assign_styles(keys: Iterable[Any], scheme_of=None) -> Dict[Any, Dict[str, str]]:
    """Styles of the curves of one figure, no colour used twice (while :data:`PALETTE` lasts).

    A curve whose scheme has a fixed style (:data:`SCHEME_STYLES`) gets it, unless another curve of the
    figure took that colour first; the others get their preferred colour (:func:`scheme_style`) when it is
    free, else the first free palette colour. Markers follow the scheme.

    Parameters
    ----------
    keys : iterable of hashable
        The curves, in drawing order.
    scheme_of : callable, optional
        ``key -> scheme name`` (default: ``str(key)``).

    Examples
    --------
    >>> s = assign_styles([("ldpc5g", "qpsk"), ("ldpc5g", "16qam")], scheme_of=lambda k: k[0])
    >>> s[("ldpc5g", "qpsk")]["color"] != s[("ldpc5g", "16qam")]["color"]
    True
    """
    keys = list(dict.fromkeys(keys))
    scheme_of = scheme_of or (lambda k: str(k))
    used: set = set()
    out: Dict[Any, Dict[str, str]] = {}
    # first each scheme's preferred colour (fixed styles before the others, then in drawing order), for the
    # first of its curves; then further curves of a scheme, and schemes whose colour was taken, get free ones
    order = sorted(range(len(keys)), key=lambda i: (str(scheme_of(keys[i])) not in SCHEME_STYLES, i))
    for i in order:
        style = scheme_style(scheme_of(keys[i]))
        if style["color"] not in used:
            used.add(style["color"])
            out[keys[i]] = style
    for i in order:
        if keys[i] in out:
            continue
        style = scheme_style(scheme_of(keys[i]))
        free = [c for c in PALETTE if c not in used]
        style = dict(style, color=free[0] if free else style["color"])
        used.add(style["color"])
        out[keys[i]] = style
    return out


def reference_style(index: int = 0) -> Dict[str, Any]:
    """Style of the ``index``-th reference curve of a figure: black, then greys; dashed, no markers.

    Examples
    --------
    >>> reference_style(0)["color"], reference_style(0)["linestyle"], reference_style(0)["marker"]
    ('black', '--', 'None')
    """
    styles = ("--", ":", "-.", (0, (5, 2, 1, 2)))
    return {"color": REFERENCE_COLORS[index % len(REFERENCE_COLORS)], "linestyle": styles[index // len(
        REFERENCE_COLORS) % len(styles)] if index >= len(REFERENCE_COLORS) else "--", "marker": "None",
        "linewidth": 1.1}


def modulation_label(modulation: Any) -> str:
    """``16qam`` -> ``16-QAM``, ``qpsk`` -> ``QPSK`` (others as given).

    Examples
    --------
    >>> modulation_label("16qam"), modulation_label("qpsk")
    ('16-QAM', 'QPSK')
    """
    m = str(modulation)
    return _MODULATIONS.get(m.lower().replace("-", "").replace("_", ""), m)


def _cell(info: Optional[Mapping[str, Any]], key: str) -> Optional[str]:
    if not info:
        return None
    v = info.get(key)
    if v is None:
        return None
    text = str(v).strip()
    if text in ("", "nan", "None"):
        return None
    try:
        f = float(text)
        if f == int(f) and "." in text:
            text = str(int(f))
    except ValueError:
        pass
    return text


def _code_label(code: str, info: Optional[Mapping[str, Any]]) -> str:
    name = _CODES.get(code, code)
    if code == "ldpc5g":
        n, k = _cell(info, "n"), _cell(info, "k")
        if n and k:
            name = f"LDPC({n},{k})"
    return name


def scheme_label(scheme: str, info: Optional[Mapping[str, Any]] = None) -> str:
    """The legend label of ``scheme``, completed from ``info`` (a CSV row or settings: ``modulation``,
    ``k``, ``n``, ``decoder``).

    Examples
    --------
    >>> scheme_label("none", {"modulation": "qpsk"}), scheme_label("hamming74", {"modulation": "16qam"})
    ('uncoded QPSK', 'Hamming(7,4) 16-QAM')
    >>> scheme_label("quant-ldpc5g-16qam"), scheme_label("transform-ldpc5g-amc")
    ('uniform quantiser + LDPC 16-QAM', 'transform coding + LDPC, AMC')
    >>> scheme_label("ascii-hamming74-16qam"), scheme_label("my-plugin")
    ('ASCII + Hamming(7,4) 16-QAM', 'my-plugin')
    """
    s = str(scheme)
    if s in _LABELS:
        return _LABELS[s]
    if s in _CODES:  # a semcom ber chain: code + modulation (+ decoder)
        parts = [_code_label(s, info)]
        mod = _cell(info, "modulation")
        if mod:
            parts.append(modulation_label(mod))
        label = " ".join(parts)
        dec = _cell(info, "decoder")
        if dec and s == "ldpc5g":
            label += f", {dec}"
        return label
    m = re.fullmatch(r"(quant|ascii)-([a-z0-9]+)-([a-z0-9]+)", s)
    if m:
        kind, code, mod = m.groups()
        head = "uniform quantiser + " if kind == "quant" else "ASCII + "
        return f"{head}{_CODES.get(code, code)} {modulation_label(mod)}"
    m = re.fullmatch(r"transform-([a-z0-9]+)-amc", s)
    if m:
        return f"transform coding + {_CODES.get(m.group(1), m.group(1))}, AMC"
    return s


def channel_short_name(spec: str, max_len: int = 56) -> str:
    """A short name of a channel spec for a title: the bare name when the spec is that channel's defaults,
    else the name and the parameters that differ from the defaults (at most ``max_len`` characters).

    Examples
    --------
    >>> channel_short_name("awgn"), channel_short_name("rician(k_db=10)")
    ('AWGN', 'Rician (k_db=10)')
    >>> channel_short_name("ofdm(model=tdl-C,cfo=600,phase_noise_linewidth=1e3)")
    'OFDM TDL-C (cfo=600, phase_noise_linewidth=1000)'
    """
    from phy.channel.registry import parse_channel_spec

    nice = {"awgn": "AWGN", "rayleigh": "Rayleigh", "rician": "Rician", "tdl": "TDL", "ofdm": "OFDM"}
    try:
        name, params = parse_channel_spec(str(spec))
        _, defaults = parse_channel_spec(name)
    except ValueError:
        text = str(spec)
        return text if len(text) <= max_len else text[:max_len - 1] + "\u2026"
    from phy.channel.impairments import IMPAIRMENT_PARAMS

    defaults = {**{p.name: p.default for p in IMPAIRMENT_PARAMS}, **defaults}
    head = nice.get(name, name)
    diff = {k: v for k, v in params.items() if defaults.get(k, object()) != v}
    if name == "ofdm":
        diff.pop("symbol_rate", None)   # the grid's own sample rate, filled in
    if "model" in params:
        model = str(params["model"])
        diff.pop("model", None)
        head += " " + (model.upper() if name == "ofdm" else model)
    if not diff:
        return head

    def fmt(v):
        return f"{v:g}" if isinstance(v, float) else str(v)

    text = f"{head} (" + ", ".join(f"{k}={fmt(v)}" for k, v in sorted(diff.items())) + ")"
    return text if len(text) <= max_len else text[:max_len - 2] + "\u2026)"


def channel_file_label(spec: str, max_len: int = 48) -> str:
    """A short file-name label of a channel spec: the bare name for a channel's defaults (``rayleigh``),
    else the name, the model and the parameters that differ from the defaults (``ofdm_tdl-C_cfo=600``),
    cut and ended by a hash of the full spec when longer than ``max_len``.

    Examples
    --------
    >>> channel_file_label("rayleigh(block_length=1,corr_rx=0.0,corr_tx=0.0,num_rx=1,num_tx=1)")
    'rayleigh'
    >>> channel_file_label("ofdm(model=tdl-C,cfo=600,phase_noise_linewidth=1e3)")
    'ofdm_tdl-C_cfo=600_phase_noise_linewidth=1000'
    """
    from phy.channel.impairments import IMPAIRMENT_PARAMS
    from phy.channel.registry import parse_channel_spec

    try:
        name, params = parse_channel_spec(str(spec))
        _, defaults = parse_channel_spec(name)
    except ValueError:
        return safe_file_stem(str(spec), max_len)
    defaults = {**{p.name: p.default for p in IMPAIRMENT_PARAMS}, **defaults}
    diff = {k: v for k, v in params.items() if defaults.get(k, object()) != v}
    if name == "ofdm":
        diff.pop("symbol_rate", None)
    parts = [name] + ([str(diff.pop("model"))] if "model" in diff else
                      [str(params["model"])] if "model" in params and diff else [])
    parts += [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(diff.items())]
    stem = re.sub(r"[^A-Za-z0-9.=-]+", "_", "_".join(parts)).strip("_.")
    if len(stem) <= max_len:
        return stem
    digest = hashlib.sha1(str(spec).encode("utf-8")).hexdigest()[:8]
    return stem[:max_len - 9].rstrip("_.") + "-" + digest


def safe_file_stem(text: str, max_len: int = 64) -> str:
    """A file-name-safe stem of ``text``: other characters than letters, digits, ``.=-`` become ``_``; a
    stem longer than ``max_len`` is cut and ends in a hash of the whole text (8 hex digits), so two
    long texts never share a name.

    Examples
    --------
    >>> safe_file_stem("nmse_awgn")
    'nmse_awgn'
    >>> s = safe_file_stem("nmse_ofdm(model=tdl-C,cfo=600.0,cyclic_prefix=0,delay_spread=1e-07,fft_size=72)")
    >>> len(s) <= 64, s[-9:-8]
    (True, '-')
    """
    stem = re.sub(r"[^A-Za-z0-9.=-]+", "_", str(text)).strip("_.") or "figure"
    if len(stem) <= max_len:
        return stem
    digest = hashlib.sha1(str(text).encode("utf-8")).hexdigest()[:8]
    return stem[:max_len - 9].rstrip("_.") + "-" + digest


def figure_path(out_dir: str, stem: str, fmt: str = "png") -> str:
    """``out_dir/<safe stem>.<fmt>`` (:func:`safe_file_stem`; ``fmt`` one of :data:`FORMATS`).

    Examples
    --------
    >>> figure_path("out", "ber", "pdf")
    'out/ber.pdf'
    """
    fmt = str(fmt).lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"figure format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return os.path.join(out_dir, f"{safe_file_stem(stem)}.{fmt}")


def data_limits(curves: Mapping[Any, Sequence[float]], log: bool, *, outlier_decades: float = 1.5,
                pad: float = 0.06) -> Tuple[Optional[Tuple[float, float]], Dict[Any, float]]:
    """The y range of a figure from its data curves (references excluded by the caller), and the curves
    that leave it.

    A curve whose largest value lies more than ``outlier_decades`` decades (log axis; linear: three times
    the others' span) above every other curve's largest value is an outlier: the range is set by the
    others and the outlier's largest value is returned, for a note in its label. Non-finite values (and
    non-positive ones on a log axis) are ignored.

    Returns
    -------
    ``((low, high) or None, {curve: its largest value})``

    Examples
    --------
    >>> lim, out = data_limits({"a": [0.5, 0.1], "b": [0.3, 0.05], "zf": [1e4, 10.0]}, log=True)
    >>> out, lim[1] < 1
    ({'zf': 10000.0}, True)
    """
    vals = {}
    for key, ys in curves.items():
        y = np.asarray([float(v) for v in ys], dtype=float)
        y = y[np.isfinite(y) & ((y > 0) if log else True)]
        if y.size:
            vals[key] = y
    if not vals:
        return None, {}
    outliers: Dict[Any, float] = {}
    while len(vals) - len(outliers) > 2:
        rest = {k: v for k, v in vals.items() if k not in outliers}
        top = max(rest, key=lambda k: rest[k].max())
        others = [v for k, v in rest.items() if k != top]
        hi_others = max(v.max() for v in others)
        lo_others = min(v.min() for v in others)
        if log:
            far = hi_others > 0 and math.log10(rest[top].max() / hi_others) > outlier_decades
        else:
            far = rest[top].max() - hi_others > 3 * max(hi_others - lo_others, 1e-12)
        if not far:
            break
        outliers[top] = float(rest[top].max())
    kept = np.concatenate([v for k, v in vals.items() if k not in outliers])
    lo, hi = float(kept.min()), float(kept.max())
    if log:
        span = max(math.log10(hi / lo), 0.5)
        f = 10 ** (pad * span)
        return (lo / f, hi * f), outliers
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    return (lo - pad * span, hi + pad * span), outliers


def place_legend(ax, *, title: Optional[str] = None, fontsize: str = "small"):
    """The legend beside the axes, right of the data; the figure grows by the legend's width and lays itself
    out (matplotlib's constrained layout), so the legend is inside the canvas however the figure is saved
    (:func:`save`, a plain ``fig.savefig``, a documentation gallery) and the axes keep their size.

    Examples
    --------
    >>> from experiments.core.plots import metric_figure
    >>> fig = metric_figure({"a": ([0, 1], [1.0, 2.0])})
    >>> fig.axes[0].get_legend().get_bbox_to_anchor() is not None
    True
    """
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None

    def rank(h):  # data curves first, references (lines without markers) last
        if isinstance(h, Line2D):
            return 2 if h.get_marker() in (None, "None", "", " ") else 1
        return 0

    pairs = sorted(zip(handles, labels), key=lambda hl: rank(hl[0]))
    handles, labels = [h for h, _ in pairs], [lab for _, lab in pairs]
    legend = ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                       fontsize=fontsize, title=title, title_fontsize="x-small", frameon=False)
    fig = ax.figure
    if len(fig.axes) == 1 and fig.get_layout_engine() is None:
        width = legend.get_window_extent(fig.canvas.get_renderer()).width / fig.dpi
        fig.set_figwidth(fig.get_figwidth() + width + 0.1)
        fig.set_layout_engine("constrained")
    return legend


def save(fig, path, *, title: Optional[str] = None, description: Optional[str] = None) -> str:
    """Save ``fig`` atomically at ``path`` (format from the extension: ``.png``, ``.pdf``, ``.svg``) with a
    tight bounding box (legends outside the axes included) and ``title`` / ``description`` (e.g. the full
    channel spec) in the file's metadata. Returns ``path``.

    Examples
    --------
    >>> import os, tempfile
    >>> from experiments.core.plots import metric_figure
    >>> p = save(metric_figure({"a": ([0, 1], [1.0, 2.0])}), os.path.join(tempfile.mkdtemp(), "f.svg"),
    ...          title="AWGN", description="awgn")
    >>> "awgn" in open(p).read()
    True
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext not in FORMATS:
        raise ValueError(f"a figure file must end in one of {', '.join('.' + f for f in FORMATS)}, got {path!r}")
    meta: Dict[str, str] = {}
    if title:
        meta["Title"] = str(title)
    if description:
        meta["Subject" if ext == "pdf" else "Description"] = str(description)
    if ext == "png":
        meta["Software"] = "semcom"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{os.path.splitext(path)[0]}.tmp.{os.getpid()}.{ext}"
    kw = {"metadata": meta} if meta else {}
    if ext == "pdf" or ext == "svg":
        kw["metadata"] = dict(meta, **({"Date": None} if ext == "svg" else {"CreationDate": None}))
    fig.savefig(tmp, dpi=fig.dpi, bbox_inches="tight", pad_inches=0.05, format=ext, **kw)
    os.replace(tmp, path)
    return path


def add_format_argument(parser: argparse.ArgumentParser, default: str = "png") -> None:
    """Add ``--format png|pdf|svg`` (the figures' file format) to a command's parser.

    Examples
    --------
    >>> p = argparse.ArgumentParser(); add_format_argument(p)
    >>> p.parse_args(["--format", "pdf"]).format
    'pdf'
    """
    parser.add_argument("--format", dest="format", default=default, choices=FORMATS,
                        help=f"file format of the figures: png, pdf or svg (vector); default {default}")
