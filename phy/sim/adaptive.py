"""The adaptive SNR grid: points placed where the error-rate curve falls, down to a floor.

:func:`simulate_ber_adaptive` starts at a coarse grid and marches along the curve, aiming each next point
``max_decades`` lower on a fit of the last falling points, and ends with one step below the floor;
:func:`curve_resolution` says how well a finished curve is resolved.
"""
from __future__ import annotations

import math
import os
import sys
from typing import (Any, Dict, List, Optional, Sequence, Tuple, Union)


from phy.utils.conventions import check_snr
from phy.sim.resultstore import ResumableCSV
from phy.sim.montecarlo import _use_progress, simulate_ber
from phy.sim.points import BER_COLUMNS, BER_KEY_COLUMNS, PointResult, _check_pos_int, _check_pos_number
from phy.sim.trials import BitTrial

__all__ = ["simulate_ber_adaptive", "curve_resolution"]


# --------------------------------------------------------------------------------------------
# Adaptive SNR grid
# --------------------------------------------------------------------------------------------
def _rate_of(res: PointResult, metric: str) -> float:
    """The point's error rate (``ber`` or ``bler``); NaN for skipped points."""
    return float(getattr(res, metric))


def _predict_step(pts: Sequence[Tuple[float, float]], target: float) -> Optional[float]:
    """SNR step from the last of ``pts`` (``(snr, rate)``, ascending) to where ``log10(rate)``
    reaches ``target``: the parabola through the last three points when it bends down (a
    waterfall steepens, and a straight line then overshoots), else the line through the last two;
    ``None`` when the curve does not fall."""
    (s1, v1), (s2, v2) = pts[-2], pts[-1]
    y1, y2 = math.log10(v1), math.log10(v2)
    slope = (y1 - y2) / (s2 - s1)  # decades per dB, > 0 when falling
    if not slope > 0:
        return None
    linear = (y2 - target) / slope
    if len(pts) < 3:
        return linear
    (s0, v0) = pts[0]
    y0 = math.log10(v0)
    # y(s) = y2 + b (s - s2) + c (s - s2)^2 through the three points
    d1, d0 = s1 - s2, s0 - s2
    c = ((y1 - y2) / d1 - (y0 - y2) / d0) / (d1 - d0)
    b = (y1 - y2) / d1 - c * d1
    if not c < 0 or not b < 0:
        return linear
    disc = b * b - 4 * c * (y2 - target)  # c h^2 + b h + (y2 - target) = 0, smallest h > 0
    if disc < 0:
        return linear
    h = (-b - math.sqrt(disc)) / (2 * c)
    return h if 0 < h < linear else linear


#: The final step of the march aims at this fraction of the floor (a point's cost grows as 1 / rate, and a
#: point that lands just above the floor costs nearly as much as the final one and needs another).
_FINAL_AIM = 0.8
#: The final step is taken from a point at most ``_FINAL_REACH * max_decades`` above ``_FINAL_AIM * floor``;
#: from higher up the march aims no lower than ``_PRE * max_decades`` above it: the cheapest point from
#: which the final step stays within ``max_decades``.
_FINAL_REACH = 1.25
_PRE = 1.0
#: The final step extrapolates the least-squares line through this many last points (the line through
#: two points near the floor scatters with their Monte Carlo error).
_FINAL_FIT = 3
#: The refine pass fills the gap that crosses the floor only when it exceeds this many times ``max_decades``:
#: a final step that lands a little past its aim is kept (there a midpoint costs as much as the final point).
_REFINE_SLACK = 1.5
# (chosen by replaying the grid 300 times on measured LDPC curves with the scatter of 100-error points,
# benchmarks/bench_grid_replay.py: 1.6e7-1.8e7 codewords on average to reach BLER 1e-5 on four curves of the
# int8 decoder, 90th percentile 2.0e7-2.5e7, with a point accepted at the floor when its 95 % interval reaches
# below it; aiming the final step lower by its prediction's Monte Carlo spread instead cost more than it saved;
# the documentation's performance page)
#: Appended to the ``status`` of a point that ended the march above the floor but with the floor inside its 95 %
#: confidence interval (accepted as reaching the floor: another point would cost as much again).
AT_FLOOR = "at the floor within its 95% CI"


def _reaches_floor(res: PointResult, metric: str, floor: Optional[float]) -> bool:
    """The point is below the floor, or its 95 % confidence interval (one that holds its estimate) reaches
    below it."""
    if floor is None:
        return False
    rate = _rate_of(res, metric)
    lo, hi = float(getattr(res, f"{metric}_ci_low")), float(getattr(res, f"{metric}_ci_high"))
    if rate < floor:
        return True
    return lo <= rate <= hi and lo < floor   # an interval that holds its estimate (not a row without one)


def _mark_at_floor(res: PointResult, table) -> None:
    """Say in the point's ``status`` (and its CSV row) that it was accepted as at the floor."""
    if res.status.endswith(AT_FLOOR):
        return
    res.status = f"{res.status}; {AT_FLOOR}"
    if table is not None:
        key = (res.scheme, res.channel, res.snr_type, res.snr_db)
        row = table.get(key)
        if row is not None and not str(row.get("status", "")).endswith(AT_FLOOR):
            table.discard(key)
            table.append(dict(row, status=res.status))


def _fit_step(pts: Sequence[Tuple[float, float]], target: float) -> Optional[float]:
    """SNR step from the last of ``pts`` (``(snr, rate)``, ascending) to where the least-squares line of
    ``log10(rate)`` on SNR reaches ``target`` (the line through two points; three average out some of the
    Monte Carlo scatter of a slope); ``None`` when the line does not fall."""
    xs = [p[0] for p in pts]
    ys = [math.log10(p[1]) for p in pts]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = -sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx > 0 else math.nan
    if not slope > 0:
        return None
    return (ys[-1] - target) / slope


def simulate_ber_adaptive(
    trial: BitTrial,
    start: float,
    stop: float,
    *,
    min_ber: Optional[float] = None,
    min_bler: Optional[float] = None,
    coarse_step: float = 1.0,
    max_decades: float = 1.0,
    min_step: float = 0.05,
    max_points: int = 40,
    snr_type: str = "esno",
    csv_file: Union[None, str, os.PathLike, ResumableCSV] = None,
    **kwargs: Any,
) -> List[PointResult]:
    """Monte Carlo BER/BLER on an SNR grid chosen as the curve unfolds, from ``start`` up to ``stop``.

    1. **March up** from ``start``. While the error rate is near saturation (``>= 0.5``) the step
       is ``coarse_step``; after that, the step is the one that the last points (saturated ones
       included) predict to lower the rate by ``max_decades`` (``log10(rate)`` extrapolated by the
       parabola through the last three points when it bends down, else by the line through the
       last two), between ``min_step`` and ``coarse_step`` (``coarse_step / 2`` while only one
       point is below 0.5). Near the floor (``min_bler`` or ``min_ber``), where a point's cost
       (``~ 1 / rate``) dominates the run: the march first aims no lower than ``max_decades``
       above ``0.8 x floor``, and from a point within ``1.25 * max_decades`` of ``0.8 x floor`` it
       takes the final step to ``0.8 x floor``, on the least-squares line through the last (up to
       three) points below 0.5 (a point that lands just above the floor would cost almost as much
       as the final one and need another). Where two noisy points close together look flat (no fall
       predicted), the least-squares line through the last three falling points sets the step, not a
       blind ``coarse_step`` (which could land decades below the floor, at ~1/rate the cost). The
       march ends at the first point **below the floor** (the Sionna-style stop: no higher SNR is
       simulated), at a point whose 95 % confidence interval reaches below the floor (accepted as at
       the floor: its ``status`` ends in ``"; at the floor within its 95% CI"``, in the CSV too; one
       more point would cost about as much again), at a point without errors, or at ``stop``.
    2. **Refine**: while two neighbouring points differ by more than ``max_decades`` decades
       (``1.5 * max_decades`` for the step across the floor, whose midpoint would cost as much as
       the final point) and lie more than ``2 * min_step`` apart, the lower one not below the
       floor, the midpoint is simulated (lowest SNR first).

    The rate that steers the grid is the BLER when ``min_bler`` is given, else the BER. Every
    point is an ordinary :func:`simulate_ber` point (same stopping rules, point seed and CSV row),
    and the grid depends only on the points' results, so a rerun into the same CSV reproduces
    the same grid from the stored rows and resumes where it stopped (rows are appended in the
    order they are simulated, which is itself reproducible). SNR points are rounded to 0.001 dB.
    At most ``max_points`` points are simulated.

    Parameters
    ----------
    trial : BitTrial
    start, stop : float
        SNR range in dB (of ``snr_type``), ``start < stop``.
    min_ber, min_bler : float, optional
        The floor (at most one of them; ``None``: march to ``stop``).
    coarse_step, max_decades, min_step : float
        Grid steering (dB, decades, dB).
    max_points : int
        Upper bound on the number of SNR points.
    snr_type, csv_file, **kwargs
        As for :func:`simulate_ber` (``batch_size``, ``target_errors``, ``target_block_errors``,
        ``max_bits``, ``seed``, ``scheme``, ``channel``, ``progress``, ``callback``...).
        ``early_stop`` and ``snr_batch`` are not accepted (the grid has its own stop).

    Returns
    -------
    list of PointResult, sorted by SNR.

    Example
    -------
    >>> from phy.sim import FunctionTrial
    >>> import torch
    >>> from phy.mapping.modulation import qam_ber_awgn
    >>> def bpsk_like(batch_size, esno_db):   # independent bit errors with the QPSK BER
    ...     p = float(qam_ber_awgn(esno_db, "qpsk"))
    ...     return torch.zeros(batch_size, 100), (torch.rand(batch_size, 100) < p).float()
    >>> res = simulate_ber_adaptive(FunctionTrial(bpsk_like, k=100), 0.0, 14.0, min_ber=1e-4,
    ...                             target_errors=100, max_bits=1e7, batch_size=1000, progress=False)
    >>> res[-1].ber < 1e-4 <= res[-2].ber
    True
    """
    for name in ("early_stop", "snr_batch", "snr_dbs"):
        if name in kwargs:
            raise TypeError(f"simulate_ber_adaptive() does not take {name!r}")
    start = float(check_snr(start, "start"))
    stop = float(check_snr(stop, "stop"))
    if not (math.isfinite(start) and math.isfinite(stop) and start < stop):
        raise ValueError(f"the SNR range needs finite start < stop, got start={start}, stop={stop}")
    if min_ber is not None and min_bler is not None:
        raise ValueError("give at most one of min_ber and min_bler")
    floor = min_bler if min_bler is not None else min_ber
    if floor is not None:
        _check_pos_number(floor, "min_bler" if min_bler is not None else "min_ber")
        if not floor < 1:
            raise ValueError(f"the floor (min_ber/min_bler) must be < 1, got {floor}")
    for name, val in (("coarse_step", coarse_step), ("max_decades", max_decades), ("min_step", min_step)):
        _check_pos_number(val, name)
    if min_step > coarse_step:
        raise ValueError(f"min_step={min_step} must be <= coarse_step={coarse_step}")
    _check_pos_int(max_points, "max_points")
    table = None
    if csv_file is not None:
        table = csv_file if isinstance(csv_file, ResumableCSV) else \
            ResumableCSV(csv_file, BER_COLUMNS, BER_KEY_COLUMNS)
    grid = _Grid(trial, snr_type, table, kwargs, "bler" if min_bler is not None else "ber", floor)
    _march(grid, start, stop, coarse_step, max_decades, min_step, max_points)
    _refine(grid, max_decades, min_step, max_points)
    return [grid.done[s] for s in sorted(grid.done)]


class _Grid:
    """The points of :func:`simulate_ber_adaptive` simulated so far (``done``, by SNR rounded to 0.001 dB), the
    steering rate (``metric``) and the floor."""

    def __init__(self, trial, snr_type: str, table: Optional[ResumableCSV], kwargs: Dict[str, Any], metric: str,
                 floor: Optional[float]):
        self.trial, self.snr_type, self.table, self.metric, self.floor = trial, snr_type, table, metric, floor
        self.done: Dict[float, PointResult] = {}
        self.show = _use_progress(kwargs.pop("progress", None))  # one line per point instead of a bar per point
        self.label = f"{kwargs.get('scheme', 'scheme')}/{kwargs.get('channel', 'channel')}"
        self.kwargs = kwargs

    def run(self, snr: float) -> PointResult:
        """The point at ``snr`` (rounded to 0.001 dB), simulated unless already done."""
        snr = round(snr, 3) + 0.0
        if snr not in self.done:
            self.done[snr] = res = simulate_ber(self.trial, [snr], snr_type=self.snr_type, csv_file=self.table,
                                                early_stop=False, progress=False, **self.kwargs)[0]
            if self.show:
                print(f"{self.label} {snr:g} dB: BER {res.ber:.3g}, BLER {res.bler:.3g} ({res.block_errors} block "
                      f"errors in {res.blocks}; {res.status})", file=sys.stderr, flush=True)
        return self.done[snr]

    def below_floor(self, v: float) -> bool:
        return self.floor is not None and v < self.floor


def _march(grid: _Grid, start: float, stop: float, coarse_step: float, max_decades: float, min_step: float,
           max_points: int) -> None:
    """1. March up from ``start`` to the first point below the floor, without errors, or at ``stop``."""
    metric, floor = grid.metric, grid.floor
    snr = start
    while len(grid.done) < max_points:
        res = grid.run(snr)
        v = _rate_of(res, metric)
        if not v > 0 or grid.below_floor(v) or snr >= stop:
            break
        if _reaches_floor(res, metric, floor):   # the floor inside its interval: as good as below it
            _mark_at_floor(res, grid.table)
            break
        known = [(s, _rate_of(r, metric)) for s, r in sorted(grid.done.items()) if _rate_of(r, metric) > 0]
        falling = sum(1 for _, x in known if x < 0.5)
        if v >= 0.5 or len(known) < 2:
            step = coarse_step
        else:
            step = _march_step(known, v, floor, max_decades)
            cap = coarse_step if falling >= 2 else coarse_step / 2
            step = min(max(step, min_step), cap) if step is not None else cap
        snr = min(round(snr + step, 3), stop)


def _march_step(known: Sequence[Tuple[float, float]], v: float, floor: Optional[float],
                max_decades: float) -> Optional[float]:
    """The predicted step from the last point (rate ``v`` below saturation) of ``known`` (``(snr, rate)`` of the
    points with errors, ascending); ``None`` when the curve does not fall."""
    lv = math.log10(v)
    fall = [p for p in known if p[1] < 0.5][-_FINAL_FIT:]
    final = floor is not None and lv - math.log10(_FINAL_AIM * floor) <= _FINAL_REACH * max_decades
    if final:  # the jump across the floor, on the least-squares line through the last (up to) three
        # points of the falling part (a saturated point would flatten the line)
        aim = math.log10(_FINAL_AIM * floor)
        step = _fit_step(fall, aim) if len(fall) >= 2 else _predict_step(known[-3:], aim)
    else:
        want = max_decades
        if floor is not None:  # land no lower than the furthest point the final jump starts from
            want = min(want, lv - (math.log10(_FINAL_AIM * floor) + _PRE * max_decades))
        aim = lv - want
        # saturated points take part: their flat log-rate bends the parabola down, which keeps
        # the first step into a waterfall short (a point far below the floor costs ~1/rate)
        step = _predict_step(known[-3:], aim)
    if step is None and len(fall) >= 3:  # two noisy points close together look flat: the line through the last
        # three falling points instead of a blind coarse step (which can land decades below the floor)
        fit = _fit_step(fall, aim)
        step = fit if fit is not None and fit > 0 else None
    return step


def _refine(grid: _Grid, max_decades: float, min_step: float, max_points: int) -> None:
    """2. Refine where neighbours differ by more than ``max_decades`` (lowest SNR first)."""
    while len(grid.done) < max_points:
        pts = [(s, _rate_of(r, grid.metric)) for s, r in sorted(grid.done.items())]
        at_floor = {s for s, r in grid.done.items() if _reaches_floor(r, grid.metric, grid.floor)}
        gap = None
        for (s0, v0), (s1, v1) in zip(pts, pts[1:]):
            slack = _REFINE_SLACK if s1 in at_floor else 1.0
            if (v0 > 0 and v1 > 0 and s0 not in at_floor and math.log10(v0 / v1) > slack * max_decades
                    and s1 - s0 > 2 * min_step):
                gap = (s0 + s1) / 2
                break
        if gap is None:
            break
        grid.run(gap)


def curve_resolution(results: Sequence[PointResult], floor: float, metric: str = "bler",
                     top: float = 0.2) -> Dict[str, Any]:
    """How well a simulated curve is resolved between ``top`` and ``floor`` (pure function).

    Returns ``points_between`` (points with ``floor <= rate <= top``), ``max_step_decades`` (the
    largest ``|log10|`` ratio between neighbouring points with errors, over the points from the last
    one above ``top`` to the first one at or below ``floor``), ``floor_snr_db`` and
    ``floor_errors`` (the first point at or below ``floor``: its SNR and error count; ``None`` if
    no point got there) and ``rates`` (``(snr_db, rate, errors)`` of every point, by SNR).

    Example
    -------
    >>> pts = [PointResult("s", "c", s, "esno", s, math.nan, math.nan, b, 0, 0, e, 10**7, 0, 0, 0, 0, 0, "x")
    ...        for s, b, e in [(1, 0.5, 9), (2, 0.1, 9), (3, 1e-3, 9), (4, 5e-6, 101)]]
    >>> r = curve_resolution(pts, 1e-5)
    >>> r["points_between"], r["max_step_decades"], r["floor_snr_db"], r["floor_errors"]
    (2, 2.3010299956639813, 4, 101)
    """
    if metric not in ("ber", "bler"):
        raise ValueError(f"metric must be 'ber' or 'bler', got {metric!r}")
    count = "bit_errors" if metric == "ber" else "block_errors"
    pts = sorted(((r.snr_db, float(getattr(r, metric)), int(getattr(r, count))) for r in results
                  if not math.isnan(float(getattr(r, metric)))), key=lambda p: p[0])
    between = [p for p in pts if floor <= p[1] <= top]
    floor_pt = next((p for p in pts if p[1] <= floor and p[2] > 0), None)
    lo = max([i for i, p in enumerate(pts) if p[1] > top], default=0)
    hi = next((i for i, p in enumerate(pts) if p[1] <= floor), len(pts) - 1)
    span = [p for p in pts[lo:hi + 1] if p[1] > 0]
    steps = [abs(math.log10(a[1] / b[1])) for a, b in zip(span, span[1:])]
    return {"points_between": len(between), "max_step_decades": max(steps, default=math.nan),
            "floor_snr_db": floor_pt[0] if floor_pt else None, "floor_errors": floor_pt[2] if floor_pt else None,
            "rates": pts}
