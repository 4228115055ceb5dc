"""The adaptive grid's tail (phy/sim/adaptive.py): a last point whose 95 % interval reaches below the floor ends
the march and says so in its status and CSV row; two noisy points that look flat do not send the grid decades low."""
from __future__ import annotations

import math

import pytest

import phy.sim.adaptive as adaptive
from phy.sim.intervals import clopper_pearson
from phy.sim.points import BER_COLUMNS, BER_KEY_COLUMNS, PointResult
from phy.sim.resultstore import ResumableCSV


def _fake(curve, calls, table=None):
    """simulate_ber stand-in: 100 block errors at the curve's BLER (Clopper-Pearson interval), row in ``table``."""
    def run(trial, snrs, **kw):
        snr = snrs[0]
        if table is not None and table.get(("s", "c", "esno", snr)) is not None:
            return [PointResult.from_row(table.get(("s", "c", "esno", snr)))]
        calls.append(snr)
        n = int(round(100 / curve(snr)))
        lo, hi = clopper_pearson(100, n)
        res = PointResult("s", "c", snr, "esno", snr, math.nan, math.nan, 100 / n, 0, 0, 100, n, 0.0, 0.0, lo, hi,
                          0, "target_errors")
        if table is not None:
            table.append(res.to_row())
        return [res]
    return run


def test_a_point_at_the_floor_within_its_interval_ends_the_march(tmp_path, monkeypatch):
    # a waterfall that flattens just above the floor: 1.1e-5 can never be beaten
    curve = lambda s: max(10 ** (-1.5 * (s - 6.0)) if s > 6 else 0.9, 1.1e-5)   # noqa: E731
    table = ResumableCSV(tmp_path / "ber.csv", BER_COLUMNS, BER_KEY_COLUMNS)
    calls = []
    monkeypatch.setattr(adaptive, "simulate_ber", _fake(curve, calls, table))
    res = adaptive.simulate_ber_adaptive(None, 0.0, 40.0, min_bler=1e-5, max_decades=0.75, progress=False,
                                         csv_file=table)
    last = max(res, key=lambda r: r.snr_db)
    assert last.bler >= 1e-5 > last.bler_ci_low                       # above the floor, interval reaching below
    assert last.status == f"target_errors; {adaptive.AT_FLOOR}"
    assert sum(1 for r in res if r.bler < 2e-5) == 1                  # no second point at the floor's cost
    rows = {float(r["snr_db"]): r["status"] for r in ResumableCSV(tmp_path / "ber.csv", BER_COLUMNS,
                                                                   BER_KEY_COLUMNS).rows()}
    assert rows[last.snr_db].endswith(adaptive.AT_FLOOR)
    # resumed from the CSV: the same grid, nothing simulated again
    calls2 = []
    monkeypatch.setattr(adaptive, "simulate_ber", _fake(curve, calls2, table))
    again = adaptive.simulate_ber_adaptive(None, 0.0, 40.0, min_bler=1e-5, max_decades=0.75, progress=False,
                                           csv_file=table)
    assert calls2 == [] and [r.snr_db for r in again] == [r.snr_db for r in res]


def test_flat_looking_points_do_not_jump_a_coarse_step(monkeypatch):
    # a shoulder where the measured rate even rises a little (as two noisy points close together can), then a
    # steep fall: a blind coarse step from the shoulder would land decades below the floor
    def curve(s):
        if s <= 6.8:
            return 0.9
        if s <= 7.4:
            return 10 ** (-3.0 * (s - 6.8))
        if s <= 7.8:
            return 10 ** (-1.8) * (1 + 2 * (s - 7.4))
        return 10 ** (-1.8 - 6.0 * (s - 7.8))

    calls = []
    monkeypatch.setattr(adaptive, "simulate_ber", _fake(curve, calls))
    res = adaptive.simulate_ber_adaptive(None, 0.0, 40.0, min_bler=1e-5, max_decades=0.75, coarse_step=1.0,
                                         progress=False)
    assert sum(1 for r in res if 7.4 < r.snr_db <= 7.8) >= 2          # it did walk onto the shoulder
    assert min(r.bler for r in res) > 1e-7                            # and never decades below the floor


@pytest.mark.parametrize("rate, lo, expected", [(0.5e-5, 0.4e-5, True), (1.1e-5, 0.9e-5, True),
                                                (2e-5, 1.6e-5, False)])
def test_reaches_floor(rate, lo, expected):
    r = PointResult("s", "c", 1.0, "esno", 1.0, 0, 0, rate, 0, 0, 1, 1, 0, 0, lo, 1.0, 0, "target_errors")
    assert adaptive._reaches_floor(r, "bler", 1e-5) is expected and adaptive._reaches_floor(r, "bler", None) is False
