"""``semcom plot``: one figure from the CSVs of several runs and commands.

``semcom plot RUN_DIR... --metric M [--filter COLUMN=VALUE[,VALUE...] ...] --out FIG.pdf|svg|png`` reads
every result CSV under the given folders (or the CSV files given) that has ``snr_db``, a ``scheme`` or
``system`` column and the metric -- ``ber.csv`` of ``semcom ber``, ``compare.csv`` of ``semcom compare``,
``metrics.csv`` of ``vlf-msc-eval``, ``accuracy_vs_snr.csv`` of ``semclip-eval``, ``zeroshot.csv`` of
``semclip eval``, ... -- and draws them in one figure (:func:`experiments.core.plots.merged_metric_figure`), in
the style of :mod:`experiments.core.figstyle`: a fixed colour and marker per scheme and no colour twice in the
figure; legend labels from the label table plus the settings that differ between the merged curves of a scheme
(``ber.csv``'s ``modulation, k, n, coderate, decoder, ldpc_iter, demapping, detector``; ``compare.csv``'s
equaliser and budget), so two runs that differ only in modulation give two entries naming them; the references
of the tables kept, each once (the uncoded closed forms of ``ber.csv``'s modulations, the analytic OPTA,
chance, the normal approximation), black/grey and dashed; error-free points as open triangles at their 95 %
upper bound; 95 % intervals where the CSV has them; y range from the data; the x axis labelled with the SNR
convention; error rates on a log axis; the legend beside the axes. ``--style FILE.mplstyle`` applies a
matplotlib style file.

Example
-------
``semcom plot runs/a runs/b --metric nmse --filter channel=awgn --out fig.pdf``
"""
from __future__ import annotations

import argparse
import os
from typing import Dict, List, Sequence, Tuple

__all__ = ["add_arguments", "main", "find_tables", "parse_filters", "one_row_per_point", "FORMATS"]

#: The figure formats ``--out`` may name (by its extension).
FORMATS = (".pdf", ".svg", ".png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``semcom plot`` to ``parser`` (``semcom plot --help`` lists them).

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["runs/a", "runs/b", "--metric", "ber", "--out", "ber.png"])
    >>> (args.runs, args.metric)
    (['runs/a', 'runs/b'], 'ber')
    """
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR",
                        help="run folders (searched recursively for result CSVs) or CSV files")
    parser.add_argument("--metric", required=True,
                        help="the column drawn: ber, bler, nmse, cosine, retrieval_top1, top1, bleu1, psnr, ...")
    parser.add_argument("--filter", dest="filters", action="append", default=[], metavar="COLUMN=VALUE[,VALUE...]",
                        help="keep rows whose COLUMN is one of the values (repeatable; e.g. scheme=analog-mmse,opta)")
    parser.add_argument("--out", required=True, help="the figure: a .pdf, .svg or .png file")
    parser.add_argument("--snr-type", choices=("ebno", "esno"), default=None,
                        help="x axis convention (default: the CSVs' own; Es/N0 when they differ)")
    parser.add_argument("--logy", action=argparse.BooleanOptionalAction, default=None,
                        help="log y axis (default: on for error rates and NMSE)")
    parser.add_argument("--style", default=None, metavar="FILE.mplstyle", help="matplotlib style file")
    parser.add_argument("--title", default=None, help="figure title")
    parser.set_defaults(_out_is_file=True)  # --out names a file here, not a folder


def parse_filters(items: Sequence[str]) -> Dict[str, List[str]]:
    """``["scheme=a,b", "channel=awgn"]`` -> ``{"scheme": ["a", "b"], "channel": ["awgn"]}``.

    Examples
    --------
    >>> parse_filters(["scheme=a,b", "channel=awgn"])
    {'scheme': ['a', 'b'], 'channel': ['awgn']}
    """
    out: Dict[str, List[str]] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"--filter expects COLUMN=VALUE[,VALUE...], got {item!r}")
        out.setdefault(key.strip(), []).extend(v.strip() for v in value.split(",") if v.strip())
    return out


def find_tables(paths: Sequence[str]) -> List[Tuple[str, str]]:
    """``(label, csv path)`` of every CSV under ``paths`` (folders searched recursively, files taken as
    they are), the label being the given folder's name plus the CSV's folder under it.

    Examples
    --------
    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(root, "run", "ber"))
    >>> for name in ("compare.csv", os.path.join("ber", "ber.csv")):
    ...     open(os.path.join(root, "run", name), "w").close()
    >>> [label for label, path in find_tables([os.path.join(root, "run")])]
    ['run', 'run/ber']
    """
    found: List[Tuple[str, str]] = []
    for given in paths:
        p = os.path.expanduser(given)
        if os.path.isfile(p):
            if not p.endswith(".csv"):
                raise ValueError(f"RUN_DIR {given!r} is a file but not a .csv")
            found.append((os.path.basename(os.path.dirname(os.path.abspath(p))) or given, p))
            continue
        if not os.path.isdir(p):
            raise ValueError(f"RUN_DIR {given!r} does not exist; expected a run folder or a CSV file")
        base = os.path.basename(os.path.normpath(os.path.abspath(p)))
        for root, dirs, files in os.walk(p):
            dirs.sort()
            for f in sorted(files):
                if f.endswith(".csv"):
                    rel = os.path.relpath(root, p)
                    found.append((base if rel == "." else f"{base}/{rel}", os.path.join(root, f)))
    return found


def one_row_per_point(rows: Sequence[Dict[str, str]]) -> bool:
    """Whether ``rows`` hold one row per (scheme or system, channel, SNR, channel uses): a result table, not
    a per-item one (``items.csv``: one row per image).

    Examples
    --------
    >>> one_row_per_point([{"scheme": "a", "snr_db": "0"}, {"scheme": "a", "snr_db": "5"}])
    True
    >>> one_row_per_point([{"system": "vlf", "snr_db": "0"}, {"system": "vlf", "snr_db": "0"}])   # per-item rows
    False
    """
    cols = [c for c in ("scheme", "system", "channel", "snr_db", "channel_uses") if c in rows[0]]
    keys = [tuple(r.get(c) for c in cols) for r in rows]
    return len(set(keys)) == len(keys)


def main(args: argparse.Namespace) -> int:
    """Run ``semcom plot`` with the parsed ``args`` (the options of :func:`add_arguments`); returns
    the exit status (0 on success, 2 for bad input, reported as one line).

    Examples
    --------
    Two runs' CSVs (here written by hand) in one figure:

    >>> import os, tempfile
    >>> from experiments.cli import main as semcom
    >>> root = tempfile.mkdtemp()
    >>> for run, ber in (("a", "0.1"), ("b", "0.01")):
    ...     os.makedirs(os.path.join(root, run))
    ...     with open(os.path.join(root, run, "ber.csv"), "w") as f:
    ...         _ = f.write("scheme,channel,snr_db,ber" + chr(10) + f"uncoded,awgn,0.0,{ber}" + chr(10))
    >>> rc = semcom(["plot", os.path.join(root, "a"), os.path.join(root, "b"), "--metric", "ber",
    ...              "--out", os.path.join(root, "ber.png")])
    semcom plot: wrote ...ber.png (2 curves from 2 tables)
    >>> rc, os.path.isfile(os.path.join(root, "ber.png"))
    (0, True)
    """
    from experiments.core.plots import merged_metric_figure, save_figure
    from experiments.core.results import read_rows

    ext = os.path.splitext(args.out)[1].lower()
    if ext not in FORMATS:
        raise ValueError(f"--out must end in one of {', '.join(FORMATS)}, got {args.out!r}")
    from experiments.cli import check_out_dir

    if os.path.isdir(args.out):
        raise ValueError(f"--out {args.out!r} is a folder; expected a figure file (.pdf, .svg or .png)")
    check_out_dir(os.path.dirname(os.path.abspath(os.path.expanduser(args.out))), "--out's folder")
    if args.style is not None and not os.path.isfile(os.path.expanduser(args.style)):
        raise ValueError(f"--style {args.style!r} is not a file; expected a matplotlib .mplstyle file")
    filters = parse_filters(args.filters)
    tables = []
    for label, path in find_tables(args.runs):
        rows = read_rows(path)
        if not rows or "snr_db" not in rows[0] or not any(c in rows[0] for c in ("scheme", "system")):
            continue
        if not one_row_per_point(rows):
            print(f"semcom plot: note: left out {path}: several rows per scheme, channel and SNR (a per-item table)")
            continue
        tables.append((label, rows))
    if not tables:
        raise ValueError(f"no result CSV (with snr_db and a scheme or system column) under {', '.join(args.runs)}")

    import matplotlib.style

    with matplotlib.style.context(os.path.expanduser(args.style) if args.style else {}):
        fig, labels = merged_metric_figure(tables, args.metric, filters=filters, snr_type=args.snr_type,
                                           logy=args.logy, title=args.title)
        if not labels:
            if args.filters:
                raise ValueError(f"no row is left after --filter {' '.join(args.filters)}")
            raise ValueError(f"no finite {args.metric!r} value to draw in {', '.join(args.runs)}"
                             + (" (a log axis leaves out values <= 0; try --no-logy)" if args.logy is not False else ""))
        save_figure(fig, args.out)
    print(f"semcom plot: wrote {args.out} ({len(labels)} curves from {len(tables)} tables)")
    return 0
