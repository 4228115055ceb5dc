"""How far every scheme of ``semcom compare`` is from the Gaussian OPTA (with the targets the tests hold).

Three sources, every scheme through :func:`experiments.comparison.run_comparison` (held-out items,
``--realizations`` channel realisations, 95% intervals):

1. ``iid``: i.i.d. N(0, 1), d = 64, 32 complex uses (bandwidth ratio 1), AWGN. Goblick: the OPTA and
   the analog scheme both give NMSE = 1/(1 + snr).
2. ``corr``: lambda_i proportional to 0.85^i, d = 64, 16 complex uses, AWGN and i.i.d. Rayleigh;
   the OPTA of the *true* eigenvalues is printed beside the one the package estimates from the
   training split.
3. ``minilm``: the main job's source (MiniLM features of the 1613 pydoc sentences, 192 uses), AWGN
   and Rayleigh at 0, 10, 15 dB.

``fbl-separation`` is ideal separation at the scheme's actual block length (normal approximation): the
tightest reference a digital scheme of that block length can be held to.

Prints markdown tables (NMSE with its interval, gap to the analytic OPTA in dB) and writes JSON.
Run: ``python benchmarks/bench_compare_opta.py --out benchmarks/results/bench_compare_opta.json``
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import semantic  # noqa: E402,F401  (CPU shim first)
import numpy as np  # noqa: E402
import torch  # noqa: E402

from experiments.comparison import CompareConfig, run_comparison  # noqa: E402
from experiments.core.results import write_benchmark  # noqa: E402
from experiments.core.sources import FeatureSource, load_source  # noqa: E402
from phy.channel.registry import canonical_channel_spec  # noqa: E402
from phy.theory.ratedistortion import distortion_rate  # noqa: E402

SCHEMES = ["opta", "fbl-separation", "analog-mmse", "analog-klt", "transform-ideal", "transform-ldpc5g-amc", "quant-ideal",
           "quant-ldpc5g-16qam"]


def _gauss(n, lam, seed):
    g = torch.Generator().manual_seed(seed)
    return FeatureSource("gauss", torch.randn(n, len(lam), generator=g) * torch.as_tensor(lam).sqrt().float())


def _table(title, rows, snrs, channels, true_opta=None):
    lines = [f"\n**{title}**", "", "| scheme | channel | " + " | ".join(f"{s:g} dB" for s in snrs) + " |",
             "|---|---|" + "---|" * len(snrs)]
    by = {(r["scheme"], r["channel"], r["snr_db"]): r for r in rows}   # rows carry the canonical spec
    for ch in channels:
        spec = canonical_channel_spec(ch)
        if true_opta is not None:
            lines.append(f"| OPTA, true eigenvalues | {ch} | " + " | ".join(
                f"{true_opta(ch, s):.4f}" for s in snrs) + " |")
        opta_row = [by.get(("opta", spec, s)) for s in snrs]
        lines.append(f"| OPTA, training covariance (analytic) | {ch} | " + " | ".join(
            f"{r['opta_nmse']:.4f}" if r and r["opta_nmse"] is not None else "-" for r in opta_row) + " |")
        for sch in dict.fromkeys(r["scheme"] for r in rows):
            cells = []
            for s in snrs:
                r = by.get((sch, spec, s))
                if r is None or r["nmse"] is None:
                    cells.append(r["status"] if r else "-")
                    continue
                extra = f" (MCS {r['mcs']})" if r.get("mcs") is not None else ""
                cells.append(f"{r['nmse']:.4f} [{r['nmse_ci_lo']:.4f}, {r['nmse_ci_hi']:.4f}], "
                             f"{r['gap_db']:+.1f} dB{extra}")
            lines.append(f"| {sch} | {ch} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--realizations", type=int, default=4)
    ap.add_argument("--skip-minilm", action="store_true")
    ap.add_argument("--out", default=None, help="JSON output path")
    args = ap.parse_args(argv)
    out = {"realizations": args.realizations, "cases": {}}
    text = []
    t0 = time.perf_counter()

    snrs = [0.0, 10.0, 20.0]
    rows = run_comparison(_gauss(6000, np.ones(64), 0), CompareConfig(
        schemes=["opta", "analog-mmse", "analog-klt", "transform-ideal"], channels=["awgn"], snr_db=snrs,
        budget=32, realizations=args.realizations), progress=False)
    text.append(_table("i.i.d. N(0,1), d = 64, 32 complex uses (ratio 1), AWGN; Goblick: 1/(1+snr) = "
                       + ", ".join(f"{1 / (1 + 10 ** (s / 10)):.4f}" for s in snrs), rows, snrs, ["awgn"]))
    out["cases"]["iid"] = rows

    lam = 0.85 ** np.arange(64)
    lam_n = lam / lam.sum()

    def true_opta(ch, s):
        from phy.theory.capacity import awgn_capacity, rayleigh_ergodic_capacity

        c = awgn_capacity(s) if ch == "awgn" else rayleigh_ergodic_capacity(s)
        return distortion_rate(lam_n, 16 * c)

    rows = run_comparison(_gauss(5000, lam, 1), CompareConfig(
        schemes=SCHEMES, channels=["awgn", "rayleigh"], snr_db=snrs, budget=16, realizations=args.realizations),
        progress=False)
    text.append(_table("lambda_i ~ 0.85^i, d = 64, 16 complex uses", rows, snrs, ["awgn", "rayleigh"], true_opta))
    out["cases"]["corr"] = rows

    if not args.skip_minilm:
        snrs = [0.0, 10.0, 15.0]
        rows = run_comparison(load_source("pydoc-minilm"), CompareConfig(
            schemes=SCHEMES, channels=["awgn", "rayleigh"], snr_db=snrs, realizations=args.realizations),
            progress=False)
        text.append(_table("MiniLM features of the 1613 pydoc sentences, d = 384, 192 complex uses", rows, snrs,
                           ["awgn", "rayleigh"]))
        out["cases"]["minilm"] = rows
    out["elapsed_s"] = time.perf_counter() - t0
    print("\n".join(text))
    out["table_markdown"] = "\n".join(text)
    if args.out:
        write_benchmark(args.out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
