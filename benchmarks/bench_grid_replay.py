"""Replay ``phy.sim.adaptive.simulate_ber_adaptive``'s grid on measured BLER curves: what a curve to the floor costs.

Each replay runs the grid logic on a "true" curve (log-linear interpolation of a measured CSV, extrapolated
past its last point) whose points come back with the scatter of a 100-error estimate (log-normal, 0.0434
decades); a point costs ``100 / BLER`` codewords. Reports, over ``--replays`` replays, the mean and 90th
percentile of the codewords, and of the seconds they take at the goal command's measured throughput
(``--codewords-per-s``, default: codewords / wall time of the goal curve in
``benchmarks/results/bench_ber_curve.json``, LDPC(1024,512) 16-QAM int8 on the quiet 2-core machine), how often
the final step landed above the floor (one more point), the fewest points between BLER 0.2 and the floor and the
largest step between neighbours -- for the current rule and for the rule of an earlier commit (``--previous``,
loaded from git; ``phy/sim/adaptive.py``, or ``phy/montecarlo.py`` before the subpackages).

Run: ``python benchmarks/bench_grid_replay.py benchmarks/results/grid_replay_int8_curve_a.csv ...``
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import phy.sim.adaptive as current  # noqa: E402
from phy.sim.intervals import clopper_pearson  # noqa: E402
from phy.sim.points import PointResult  # noqa: E402


def load(path):
    with open(path, newline="") as fh:
        return sorted((float(r["snr_db"]), float(r["bler"])) for r in csv.DictReader(fh) if float(r["bler"]) > 0)


def previous_rule(commit: str):
    for rel in ("phy/sim/adaptive.py", "phy/montecarlo.py"):
        got = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{rel}"], capture_output=True, text=True)
        if got.returncode == 0:
            src = got.stdout
            break
    else:
        raise SystemExit(f"commit {commit} has neither phy/sim/adaptive.py nor phy/montecarlo.py")
    src = re.sub(r"from \.(\w)", r"from phy.\1", src).replace("from . import", "from phy import")
    path = Path(tempfile.mkdtemp()) / "adaptive_previous.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("adaptive_previous", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def replay(mod, pts, rng, floor, max_decades, sigma=0.0434):
    s = np.array([p[0] for p in pts])
    y = np.log10([p[1] for p in pts])
    slope = (y[-1] - y[-2]) / (s[-1] - s[-2])
    cost, sims = [], []

    def fake(trial, snrs, **kw):
        snr = snrs[0]
        true = 10 ** (y[-1] + slope * (snr - s[-1])) if snr > s[-1] else 10 ** np.interp(snr, s, y)
        b = min(1.0, true * 10 ** (rng.normal() * sigma))
        n = int(100 / b)
        cost.append(n)
        sims.append((snr, 100 / n))
        lo, hi = clopper_pearson(100, n)
        return [PointResult("s", "c", snr, "esno", snr, math.nan, math.nan, 100 / n, 0, 0, 100, n, 0, 0, lo, hi, 0,
                            "target_errors")]

    orig, mod.simulate_ber = mod.simulate_ber, fake
    try:
        res = mod.simulate_ber_adaptive(None, 0.0, 40.0, min_bler=floor, max_decades=max_decades, progress=False)
    finally:
        mod.simulate_ber = orig
    r = current.curve_resolution(res, floor)
    # the final step landed above the floor: a point within a factor 2 above it was followed by a higher SNR
    above = any(floor <= v < 2 * floor and any(s2 > snr for s2, _ in sims[i + 1:]) for i, (snr, v) in enumerate(sims))
    at_floor = any(str(x.status).endswith(getattr(mod, "AT_FLOOR", "\0")) for x in res)
    return sum(cost), r["points_between"], r["max_step_decades"], above, at_floor


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", nargs="+")
    ap.add_argument("--floor", type=float, default=1e-5)
    ap.add_argument("--max-decades", type=float, default=0.75)
    ap.add_argument("--replays", type=int, default=300)
    ap.add_argument("--previous", default="a43c7e3", help="git commit of the earlier rule")
    ap.add_argument("--codewords-per-s", type=float, default=None,
                    help="throughput that turns codewords into seconds (default: the goal curve's in "
                         "benchmarks/results/bench_ber_curve.json)")
    args = ap.parse_args(argv)
    rate = args.codewords_per_s
    if rate is None:
        curve = json.loads((ROOT / "benchmarks/results/bench_ber_curve.json").read_text())["curve"]
        cw = sum(e / b for _, b, e in curve["rates"] if b > 0)
        rate = cw / curve["wall_s"]
        print(f"throughput: {rate:.3g} codewords/s ({cw:.3g} codewords in {curve['wall_s']:.1f} s wall, "
              f"{curve['command']})")
    rules = {"current": current, f"previous ({args.previous})": previous_rule(args.previous)}
    for path in args.csv:
        pts = load(path)
        for name, mod in rules.items():
            rng = np.random.default_rng(0)
            rs = [replay(mod, pts, rng, args.floor, args.max_decades) for _ in range(args.replays)]
            c = np.array([r[0] for r in rs])
            print(f"{Path(path).name:34s} {name:20s} codewords mean {c.mean():.3g}, p90 {np.percentile(c, 90):.3g} "
                  f"(= {c.mean() / rate:.0f} s, p90 {np.percentile(c, 90) / rate:.0f} s); final step above the "
                  f"floor in {100 * np.mean([r[3] for r in rs]):.0f} %, accepted at the floor within its CI in "
                  f"{100 * np.mean([r[4] for r in rs]):.0f} %; fewest points between 0.2 and the floor "
                  f"{min(r[1] for r in rs)}, largest step {max(r[2] for r in rs):.2f} decades")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
