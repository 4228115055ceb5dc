"""``semcom run``: the main job, on the embedded default source, in one command.

1. **BER curves of the digital chain** (``semcom ber`` machinery, :mod:`experiments.commands.ber`): uncoded,
   Hamming(7,4) and 5G LDPC (k=512, n=1024) with Gray 16-QAM over AWGN and i.i.d. Rayleigh
   (perfect CSI, ZF + APP demapping; LDPC decoded by the layered min-sum decoder with early
   termination; scrambled all-zero codewords), BER and BLER vs Eb/N0 on the adaptive grid
   ``auto:0:40:2`` (coarse 2 dB steps, then points wherever the curve falls by more than 0.75
   decade), down to BER 1e-5 (uncoded, Hamming) and BLER 1e-4 (LDPC) or 40 dB, 2000 bit errors or
   100 block errors or 2e8 bits per point, with 95 % Clopper-Pearson intervals and the closed-form uncoded
   curves -> ``<out>/ber/``.
2. **Analog vs digital at matched bandwidth** (:mod:`experiments.commands.compare`): the ``pydoc-minilm``
   source (about 1.6k real sentences, 384-d MiniLM features) over AWGN and Rayleigh from -20 to
   15 dB Es/N0 per complex channel use in 2.5 dB steps, every scheme fitted into the analog scheme's 192 complex
   channel uses per example: analog (ZF and MMSE), quantised features + Hamming(7,4)/LDPC5G +
   QPSK/16-QAM, quantised features + an ideal capacity-achieving code, and the raw text as ASCII
   + Hamming(7,4) + 16-QAM (first ``--text-max-items`` sentences; re-encoded by MiniLM), beside the Gaussian
   OPTA and ideal separation at this block length (``fbl-separation``) -> ``<out>/compare/``.

Everything is written as it finishes (resumable CSVs: rerunning the same command skips finished
points), with one PNG per figure and a ``manifest.json`` per step plus ``<out>/manifest.json``
(wall time, the files written, versions, host). Progress is printed to stderr.

Cost, measured on a quiet 2-core machine from a fresh clone: 59 s inside the command (1 min 02 s wall,
1 min 44 s CPU) once numba's compiled kernels (kept in ``__pycache__``) and the MiniLM encodings of the
ASCII scheme's received sentences (kept under ``--cache-dir``, default ``~/.cache/semcom``, by their exact
texts) are cached; the very first run also compiles the kernels (1-1.5 min) and encodes: 162-170 s.
The same seed writes the same CSVs either way.

``--quick`` is a reduced version (500 sentences -- the fewest whose 80 % training split exceeds the
384 dimensions, so the covariance-based schemes run --, 2-3 SNR points per curve, 2 realisations, small bit budgets) that
writes every output file in well under a minute; it is what the test suite runs.

Example
-------
``semcom run`` (writes ``results/``), ``semcom run --quick --out /tmp/r``
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Dict, List, Optional

__all__ = ["add_arguments", "main", "ber_argv", "compare_config", "FULL", "QUICK"]

#: Settings of the full run and of ``--quick``.
FULL: Dict[str, Any] = {
    "ber_snr_db": "auto:0:40:2", "ber_max_bits": 2e8, "ber_target_errors": 2000, "ber_target_block_errors": 100,
    "ber_min_ber": 1e-5, "ber_min_bler": 1e-4, "ber_k": 512, "ber_n": 1024,
    "compare_snr_db": [-20.0 + 2.5 * i for i in range(15)], "max_items": None, "text_max_items": 64,
    "compare_realizations": 4,
}
#: Settings of ``--quick``: a few SNR points and small budgets (minutes on a laptop).
QUICK: Dict[str, Any] = {
    "ber_snr_db": "0,10", "ber_max_bits": 1e4, "ber_target_errors": 50, "ber_k": 64, "ber_n": 128,
    "compare_snr_db": [-10.0, 0.0, 10.0], "max_items": 500, "text_max_items": 8,
    "compare_realizations": 2,
}
RUN_SCHEMES = ("opta", "fbl-separation", "analog-zf", "analog-mmse", "analog-klt", "transform-ideal", "transform-ldpc5g-amc",
               "quant-hamming74-16qam", "quant-ldpc5g-16qam", "quant-ideal", "ascii-hamming74-16qam")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``semcom run`` to ``parser`` (``semcom run --help`` lists them).

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["--quick", "--out", "results"])
    >>> (args.quick, args.out, args.seed)
    (True, 'results', 0)
    """
    parser.add_argument("--out", default="results", help="output directory (default results/; reruns resume)")
    parser.add_argument("--quick", action="store_true",
                        help="reduced run (500 sentences, 2-3 SNR points, small bit budgets) producing every file")
    parser.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    parser.add_argument("--device", default="auto", help="torch device: auto (default: cuda if available, else cpu), cpu, cuda, cuda:1 ...")
    parser.add_argument("--source", default="pydoc-minilm",
                        help="feature source for the comparison (default: the embedded pydoc-minilm)")
    parser.add_argument("--max-items", type=int, default=None, help="use the first N items of the source")
    parser.add_argument("--text-max-items", type=int, default=None,
                        help="held-out sentences sent through the ASCII text scheme (default 64; 8 with --quick)")
    parser.add_argument("--skip-ber", action="store_true", help="skip step 1 (BER curves)")
    parser.add_argument("--skip-compare", action="store_true", help="skip step 2 (matched-bandwidth comparison)")
    parser.add_argument("--cache-dir", default=None, help="MiniLM cache folder: the corpus's features and the text scheme's re-encoded sentences, each "
                             "call kept by its exact texts, so a seeded run made again encodes nothing and writes "
                             "the same numbers (default $SEMCOM_CACHE or ~/.cache/semcom)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no per-point progress lines")
    from experiments.core.figstyle import add_format_argument

    add_format_argument(parser)


def ber_argv(settings: Dict[str, Any], out_dir: str, seed: int, device: str, ber_parser) -> List[str]:
    """Arguments of ``semcom ber`` for the run's BER step.

    Examples
    --------
    >>> import argparse
    >>> from experiments.commands import ber
    >>> parser = argparse.ArgumentParser(); ber.add_arguments(parser)
    >>> argv = ber_argv(QUICK, "results/ber", seed=0, device="cpu", ber_parser=parser)
    >>> argv[:4], parser.parse_args(argv).snr_db
    (['--modulation', '16qam', '--code', 'none,hamming74,ldpc5g'], [0.0, 10.0])
    """
    argv = ["--modulation", "16qam", "--code", "none,hamming74,ldpc5g", "--channel", "awgn,rayleigh",
            f"--snr-db={settings['ber_snr_db']}", "--snr-type", "ebno",
            "--k", str(settings["ber_k"]), "--n", str(settings["ber_n"]),
            "--target-errors", str(settings["ber_target_errors"]), "--max-bits", str(settings["ber_max_bits"]),
            "--seed", str(seed), "--device", device, "--out", out_dir, "--format", settings.get("format", "png")]
    for key, option in (("ber_target_block_errors", "--target-block-errors"), ("ber_min_ber", "--min-ber"),
                        ("ber_min_bler", "--min-bler")):
        if settings.get(key) is not None:
            argv += [option, str(settings[key])]
    options = {a for act in ber_parser._actions for a in act.option_strings}
    if "--ldpc-decoder" in options:  # use the fast layered decoder when `semcom ber` offers it
        argv += ["--ldpc-decoder", "layered"]
    return argv


def compare_config(settings: Dict[str, Any], seed: int, device: str, text_max_items: Optional[int]):
    """The :class:`experiments.comparison.CompareConfig` of the run's comparison step (``settings``:
    :data:`FULL` or :data:`QUICK`; ``text_max_items`` overrides the settings' value when given).

    Examples
    --------
    >>> cfg = compare_config(QUICK, seed=0, device="cpu", text_max_items=None)
    >>> cfg.channels, cfg.snr_db, cfg.text_max_items
    (('awgn', 'rayleigh'), [-10.0, 0.0, 10.0], 8)
    """
    from experiments.comparison import CompareConfig

    return CompareConfig(schemes=RUN_SCHEMES, channels=("awgn", "rayleigh"), snr_db=settings["compare_snr_db"],
                         budget=None, matched=True, equalizer="mmse", seed=seed, device=device,
                         realizations=settings["compare_realizations"],
                         text_max_items=text_max_items if text_max_items is not None else settings["text_max_items"])


def _summary(rows, snrs=(-15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0)) -> str:
    """Text tables per channel: top-1 retrieval, and each scheme's NMSE gap to the Gaussian OPTA
    (``10 log10(NMSE / NMSE_OPTA)`` dB, the OPTA computed from the training covariance) and to ideal separation at
    the block length used (``gap_fbl_db``, ``fbl-separation``)."""
    lines = []
    by = {}
    for r in rows:
        by[(str(r["channel"]), str(r["scheme"]), float(r["snr_db"]))] = r
    avail = sorted({k[2] for k in by})
    snrs = [s for s in snrs if s in avail] or avail[: min(7, len(avail))]

    def num(v):
        return None if v in (None, "") else float(v)

    for ch in sorted({k[0] for k in by}):
        schemes = list(dict.fromkeys(k[1] for k in by if k[0] == ch))
        for title, col, fmt in (("top-1 retrieval", "retrieval_top1", "{:7.3f}"),
                                ("NMSE gap to the Gaussian OPTA [dB]", "gap_db", "{:7.2f}"),
                                ("NMSE gap to separation at this block length [dB]", "gap_fbl_db", "{:7.2f}")):
            lines.append(f"{title}, {ch} (Es/N0 per complex channel use [dB]; uses per example)")
            lines.append(f"{'scheme':24s} {'uses':>5s} " + " ".join(f"{s:>7.1f}" for s in snrs))
            for sch in schemes:
                cells, uses = [], ""
                for s in snrs:
                    r = by.get((ch, sch, s))
                    v = num(r.get(col)) if r else None
                    cells.append(fmt.format(v) if v is not None else f"{'-':>7s}")
                    uses = str(r["channel_uses"]) if r else uses
                lines.append(f"{sch:24s} {uses:>5s} " + " ".join(cells))
            lines.append("")
    return "\n".join(lines).rstrip()


def main(args) -> int:
    """Run ``semcom run`` with the parsed ``args`` (the options of :func:`add_arguments`); returns
    the exit status (0 on success, 2 for bad input, reported as one line).

    Examples
    --------
    Not run by the test-suite: the quick run alone takes minutes (BER curves and a comparison); ``tests/test_run.py`` runs a reduced one.

    >>> from experiments.cli import main as semcom
    >>> semcom(["run"] + ["--quick", "--out", "results"])                                # doctest: +SKIP
    0
    """
    import semantic  # noqa: F401  (CPU shim before any transformers import)
    from experiments.core.sources import load_source

    settings = dict(QUICK if args.quick else FULL, format=getattr(args, "format", "png"))
    out = args.out
    log = (lambda s: print(s, file=sys.stderr, flush=True)) if args.progress else (lambda s: None)
    t0 = time.perf_counter()
    try:
        if args.max_items is not None and args.max_items < 2:
            raise ValueError(f"--max-items must be >= 2, got {args.max_items}")
        if args.text_max_items is not None and args.text_max_items < 1:
            raise ValueError(f"--text-max-items must be >= 1, got {args.text_max_items}")
        from experiments.core.args import parse_device

        args.device = str(parse_device(args.device))  # "auto" resolved once, for both steps
        source = None
        if not args.skip_compare:
            max_items = args.max_items if args.max_items is not None else settings["max_items"]
            kw = {"cache_dir": args.cache_dir} if args.source == "pydoc-minilm" else {}
            source = load_source(args.source, max_items=max_items, **kw)
    except (ValueError, TypeError, FileNotFoundError, KeyError) as e:
        print(f"semcom run: error: {e}", file=sys.stderr)
        return 2
    os.makedirs(out, exist_ok=True)
    files: List[str] = []
    steps: Dict[str, Any] = {}
    try:
        _steps(args, settings, source, out, log, files, steps, t0)
    except (ValueError, RuntimeError) as e:  # e.g. resuming into a directory written with other settings
        print(f"semcom run: error: {e}", file=sys.stderr)
        return 2
    print(f"semcom run: wrote {out}/ ({len(files)} files) in {time.perf_counter() - t0:.1f} s")
    return 0


def _steps(args, settings, source, out, log, files, steps, t0) -> None:
    from experiments.commands import ber as ber_mod
    from experiments.commands.compare import execute
    from experiments.core.results import RunManifest

    with RunManifest(out, args=args, seed=args.seed, command="semcom run",
                     extra={"quick": bool(args.quick), "settings": settings}) as manifest:
        if not args.skip_ber:
            t = time.perf_counter()
            log(f"[run] step 1/2: BER curves -> {os.path.join(out, 'ber')}")
            p = argparse.ArgumentParser(prog="semcom ber")
            ber_mod.add_arguments(p)
            ber_args = p.parse_args(ber_argv(settings, os.path.join(out, "ber"), args.seed, args.device, p))
            ber_args.progress = bool(args.progress)  # the Monte Carlo engine's per-curve progress bar
            rc = ber_mod.main(ber_args)
            if rc:
                raise RuntimeError(f"semcom ber failed with exit status {rc}")
            steps["ber"] = {"elapsed_s": time.perf_counter() - t, "dir": "ber"}
            log(f"[run] step 1/2 done in {steps['ber']['elapsed_s']:.1f} s")
            files += [os.path.join("ber", f) for f in sorted(os.listdir(os.path.join(out, "ber")))]
        if not args.skip_compare:
            t = time.perf_counter()
            log(f"[run] step 2/2: matched-bandwidth comparison -> {os.path.join(out, 'compare')} "
                f"({source.n_items} items, d={source.dim})")
            cfg = compare_config(settings, args.seed, args.device, args.text_max_items)
            rows, _ = execute(source, cfg, os.path.join(out, "compare"), args=vars(cfg), progress=args.progress,
                              command="semcom run (compare step)", fmt=args.format)
            steps["compare"] = {"elapsed_s": time.perf_counter() - t, "dir": "compare", "rows": len(rows)}
            log(f"[run] step 2/2 done in {steps['compare']['elapsed_s']:.1f} s")
            files += [os.path.join("compare", f) for f in sorted(os.listdir(os.path.join(out, "compare")))]
            summary = _summary(rows)
            print(summary)
            with open(os.path.join(out, "summary.txt"), "w", encoding="utf-8") as fh:
                fh.write(summary + "\n")
            files.append("summary.txt")
        manifest.update(steps=steps, files=files, wall_time_s=time.perf_counter() - t0)
