"""Replay ``phy.sim.adaptive.simulate_ber_adaptive``'s grid on measured BLER curves: what a curve to the floor costs.

Each replay runs the grid logic on a "true" curve (log-linear interpolation of a measured CSV, extrapolated
past its last point) whose points come back with the scatter of a 100-error estimate (log-normal, 0.0434
decades); a point costs ``100 / BLER`` codewords. Reports the mean and 90th percentile of the codewords over
``--replays`` replays, the fewest points between BLER 0.2 and the floor and the largest step between
neighbours, for the current rule and for the rule of an earlier commit (``--previous``, loaded from git).

Run: ``python benchmarks/bench_grid_replay.py benchmarks/results/grid_replay_int8_curve_a.csv ...``
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import math
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import phy.sim.montecarlo as current  # noqa: E402


def load(path):
    with open(path, newline="") as fh:
        return sorted((float(r["snr_db"]), float(r["bler"])) for r in csv.DictReader(fh) if float(r["bler"]) > 0)


def previous_rule(commit: str):
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:phy/montecarlo.py"], check=True,
                         capture_output=True, text=True).stdout
    src = re.sub(r"from \.(\w)", r"from phy.\1", src).replace("from . import", "from phy import")
    path = Path(tempfile.mkdtemp()) / "montecarlo_previous.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("montecarlo_previous", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def replay(mc, pts, rng, floor, max_decades, sigma=0.0434):
    s = np.array([p[0] for p in pts])
    y = np.log10([p[1] for p in pts])
    slope = (y[-1] - y[-2]) / (s[-1] - s[-2])
    cost = []

    def fake(trial, snrs, **kw):
        snr = snrs[0]
        true = 10 ** (y[-1] + slope * (snr - s[-1])) if snr > s[-1] else 10 ** np.interp(snr, s, y)
        b = min(1.0, true * 10 ** (rng.normal() * sigma))
        cost.append(int(100 / b))
        return [mc.PointResult("s", "c", snr, "esno", snr, math.nan, math.nan, b, 0, 0, 100, int(100 / b), 0, 0, 0,
                               0, 0, "target_block_errors")]

    orig, mc.simulate_ber = mc.simulate_ber, fake
    try:
        res = mc.simulate_ber_adaptive(None, 0.0, 40.0, min_bler=floor, max_decades=max_decades, progress=False)
    finally:
        mc.simulate_ber = orig
    r = current.curve_resolution(res, floor)
    return sum(cost), r["points_between"], r["max_step_decades"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", nargs="+")
    ap.add_argument("--floor", type=float, default=1e-5)
    ap.add_argument("--max-decades", type=float, default=0.75)
    ap.add_argument("--replays", type=int, default=300)
    ap.add_argument("--previous", default="7004b45", help="git commit of the earlier rule")
    args = ap.parse_args(argv)
    rules = {"current": current, f"previous ({args.previous})": previous_rule(args.previous)}
    for path in args.csv:
        pts = load(path)
        for name, mc in rules.items():
            rng = np.random.default_rng(0)
            rs = [replay(mc, pts, rng, args.floor, args.max_decades) for _ in range(args.replays)]
            c = np.array([r[0] for r in rs])
            print(f"{Path(path).name:40s} {name:22s} codewords mean {c.mean():.3g}, 90th percentile "
                  f"{np.percentile(c, 90):.3g}; fewest points between 0.2 and the floor {min(r[1] for r in rs)}, "
                  f"largest step {max(r[2] for r in rs):.2f} decades")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
