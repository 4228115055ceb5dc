"""Monte Carlo BER/BLER engine with error-count stopping, SNR early stop and resumable CSV output.

The engine runs a *trial* over a list of SNR points. A trial is anything that follows the small
:class:`BitTrial` protocol::

    trial.k                              # information bits per block (int)
    trial(batch_size, esno_db)           # -> (bits, bits_hat), both [batch_size, k] (or [..., k])
    trial.reset(seed)                    # optional: restart every random stream from ``seed``
    trial.batched(batch_size, esno_dbs)  # optional (``snr_batch > 1``): S SNR points in one pass,
                                         # -> (bits, bits_hat), both [S, batch_size, k]

:class:`FunctionTrial` turns a plain function into a trial and :class:`LinkTrial` wraps a link
(``link(bits, snr_db=esno_db).x_hat`` -> hard bit estimates), e.g. ``phy.link.digital.DigitalLink``.
The trial always receives Es/N0 per complex channel use (the package's SNR convention); the
engine converts Eb/N0 inputs with ``Es/N0 = Eb/N0 + 10 log10(bits_per_symbol * coderate)``.

Per SNR point the engine draws batches until ``target_errors`` bit errors (or
``target_block_errors`` block errors) are counted or the ``max_bits`` information-bit budget is
spent. Each point gets its own seed, derived deterministically from ``(seed, scheme, channel,
snr_type, snr_db)`` by :func:`point_seed`, and ``trial.reset`` is called with it before the point
starts, so a point's result does not depend on which points ran before it: an interrupted run
that is resumed gives exactly the rows of an uninterrupted one.

Confidence intervals are exact two-sided 95 % **Clopper-Pearson** intervals for a binomial
proportion (:func:`phy.sim.intervals.clopper_pearson`). For BLER the blocks are independent, so the interval is
exact; for BER of a coded scheme the bit errors inside a block are correlated, so the BER interval
is optimistic (too narrow) and should be read as indicative.

Early stop over SNR: once a point ends with zero bit errors after the full bit budget, every
later point of that (scheme, channel) sweep with a higher SNR is *not simulated*; it is reported
with ``ber = bler = NaN``, zero counts and ``status = "skipped: no errors at previous point"``
(never as a BER of 0, unlike Sionna's ``sim_ber``). A point that was simulated and saw no errors
has ``ber = 0`` and ``status = "no_errors"``; its CI upper bound (about ``3.7 / bits``) is the
meaningful number.

Results are appended point by point to a :class:`phy.sim.resultstore.ResumableCSV` (write + flush + fsync
per row, header written atomically); already finished keys are skipped on the next run. That store is
the only CSV-resume implementation in the package; the intervals come from :mod:`phy.sim.intervals`.

Batched SNR points (``snr_batch > 1``): the points still to compute (not stored in the CSV, not
skipped) are taken in groups of up to ``snr_batch`` consecutive points, and each iteration calls
``trial.batched(batch_size, esno_dbs)`` once for all still-active points of the group (the links
take ``bits [S, B, k]`` with ``snr_db`` of shape ``[S, 1]`` and ``batch_dims=2``; memory grows
with ``snr_batch * batch_size``). Every point keeps its own counters and stopping rule
(``target_errors``, ``target_block_errors``, ``max_bits`` with the last batch shortened, exactly
as when points run one by one); it leaves the group when its rule fires and its row is written at
once. Early stop inside a group: when a point ends with ``no_errors``, every group point after it
in ``snr_dbs`` with a higher SNR is reported as skipped (the same row as in a sequential run; a
point that had already finished keeps its row). Since all points of a group draw the same number
of bits per iteration, such points reach the budget in the same iteration, so that work is spent
and discarded -- the price of batching. Points are written as they finish, so the CSV row order
can differ from ``snr_dbs``; the returned list is in ``snr_dbs`` order. A group of one point runs
exactly like a sequential point.

The random streams of a group are reset (``trial.reset``) from ``point_seed(seed, scheme,
channel, snr_type, "snr_group", *group_snrs)``, so a batched run is reproducible (same seed and
same points to compute -> same rows). Batched draws are **statistically equivalent to, but not
bit-identical with**, sequential ones (the S points share one random stream). The ``seed`` column
still holds the point seed :func:`point_seed`, which the resume check compares (resuming with
another master seed is refused). A point interrupted in the middle of its group was never written
and is recomputed on resume, possibly in a different group, hence with different random numbers:
only the finished rows are kept as they were, so a resumed batched CSV is statistically, not
byte-for-byte, equal to an uninterrupted one.

Example
-------
>>> from phy.sim import FunctionTrial
>>> import torch
>>> def trial(batch_size, esno_db):  # a toy binary symmetric channel with p = 0.1
...     g = torch.Generator().manual_seed(int(esno_db))
...     b = torch.randint(0, 2, (batch_size, 8), generator=g)
...     flip = (torch.rand(batch_size, 8, generator=g) < 0.1).long()
...     return b, b ^ flip
>>> res = simulate_ber(FunctionTrial(trial, k=8), [0.0], target_errors=50, max_bits=10_000,
...                    batch_size=100, progress=False)
>>> res[0].status, 0.05 < res[0].ber < 0.15
('target_errors', True)
>>> def batched(batch_size, esno_dbs):  # the same channel, S = len(esno_dbs) points in one call
...     g = torch.Generator().manual_seed(len(esno_dbs))
...     b = torch.randint(0, 2, (len(esno_dbs), batch_size, 8), generator=g)
...     flip = (torch.rand(b.shape, generator=g) < 0.1).long()
...     return b, b ^ flip
>>> res = simulate_ber(FunctionTrial(trial, k=8, batched_fn=batched), [0.0, 1.0], target_errors=50,
...                    max_bits=10_000, batch_size=100, progress=False, snr_batch=2)
>>> [r.status for r in res]
['target_errors', 'target_errors']
"""
from __future__ import annotations

import math
import numbers
import os
import sys
from dataclasses import dataclass, field
from typing import (Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union)

import torch

from phy.utils.conventions import check_snr, ebno_db_to_esno_db, esno_db_to_ebno_db
from phy.sim.resultstore import ResumableCSV
from phy.sim.points import BER_COLUMNS, BER_KEY_COLUMNS, PointResult, SNR_TYPES, STATUS_NO_ERRORS, STATUS_SKIPPED, _check_blocks, _check_pos_int, _check_pos_number, _count_errors, _count_errors_batched, _counts_result, _stop_status, point_seed
from phy.sim.trials import BitTrial, ScrambledZeroTrial

__all__ = ["simulate_ber"]


def _use_progress(progress: Optional[bool]) -> bool:
    if progress is not None:
        return bool(progress)
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _resolve_rate(trial, coderate, bits_per_symbol):
    coderate = coderate if coderate is not None else getattr(trial, "coderate", None)
    bps = bits_per_symbol if bits_per_symbol is not None else getattr(trial, "bits_per_symbol", None)
    return coderate, bps


def simulate_ber(
    trial: BitTrial,
    snr_dbs: Union[Sequence[float], torch.Tensor],
    *,
    snr_type: str = "esno",
    coderate: Optional[float] = None,
    bits_per_symbol: Optional[float] = None,
    batch_size: int = 1000,
    target_errors: Optional[int] = 200,
    target_block_errors: Optional[int] = None,
    max_bits: Union[int, float] = 10**7,
    seed: int = 0,
    scheme: str = "scheme",
    channel: str = "channel",
    early_stop: bool = True,
    csv_file: Union[None, str, os.PathLike, ResumableCSV] = None,
    progress: Optional[bool] = None,
    callback: Optional[Callable[[PointResult], None]] = None,
    snr_batch: int = 1,
    max_batch_size: Optional[int] = None,
) -> List[PointResult]:
    """Monte Carlo BER/BLER of ``trial`` over ``snr_dbs``.

    Parameters
    ----------
    trial : BitTrial
        ``trial(batch_size, esno_db) -> (bits, bits_hat)`` (hard decisions, same shape
        ``[batch_size, k]``), attribute ``k``; optional ``reset(seed)``, ``coderate``,
        ``bits_per_symbol``, and ``batched(batch_size, esno_dbs)`` (needed for ``snr_batch > 1``).
    snr_dbs : sequence of float
        SNR points in dB, of type ``snr_type``. Sweeps are normally ascending; early stop skips
        only points with a *higher* SNR than an earlier error-free point.
    snr_type : ``"esno"`` (Es/N0 per complex channel use, default) or ``"ebno"``
        Eb/N0 needs ``coderate`` and ``bits_per_symbol`` (here or on the trial); with them both
        ``esno_db`` and ``ebno_db`` are reported, without them ``ebno_db`` is NaN.
    batch_size : int
        Blocks per batch (the last batch of a point is shortened to respect ``max_bits``).
    target_errors, target_block_errors : int or None
        A point stops once either count is reached (``None`` disables that criterion).
    max_bits : int or float
        Information-bit budget per point (``1e7`` accepted).
    seed : int
        Master seed; the point seed is ``point_seed(seed, scheme, channel, snr_type, snr_db)``.
    scheme, channel : str
        Labels written to the rows (and part of the key and of the seed).
    early_stop : bool
        Skip higher-SNR points after a point with zero errors at the full budget. With
        ``early_stop=False``, stored ``skipped`` rows (from an earlier early-stopping run into the
        same CSV) are removed and simulated.
    csv_file : path or ResumableCSV, optional
        Rows are appended point by point; points already in the file are not recomputed (their
        stored rows are returned).
    progress : bool or None
        tqdm progress bar; ``None``: only when stderr is a terminal.
    callback : callable, optional
        ``callback(result)`` after each point is written (e.g. logging); with ``snr_batch > 1``
        in the order the points finish.
    snr_batch : int
        ``1`` (default): points run one after the other. ``S > 1``: up to ``S`` consecutive points
        still to compute run together, one ``trial.batched`` call per iteration for all active
        points (see the module docstring: statistically equivalent to, not bit-identical with,
        the sequential run). A trial without ``batched`` raises ``ValueError``.
    max_batch_size : int, optional
        ``snr_batch=1``: a point's batch doubles after each batch, from ``batch_size`` up to this
        many blocks (fewer calls at low error rates, where a point needs many blocks, without
        overshooting the error target at high ones). Default: no growth.

    Returns
    -------
    list of PointResult, one per SNR point, in ``snr_dbs`` order.

    Examples
    --------
    >>> from phy.sim import FunctionTrial
    >>> trial = FunctionTrial(lambda b, e: (torch.zeros(b, 4), torch.ones(b, 4) * (e < 1)), k=4)
    >>> [(p.snr_db, p.ber) for p in simulate_ber(trial, [0.0, 2.0], batch_size=10, max_bits=40)]
    [(0.0, 1.0), (2.0, 0.0)]
    """
    k, snr_list, max_bits = _checked_inputs(trial, snr_dbs, snr_type, batch_size, target_errors,
                                            target_block_errors, max_bits, seed, scheme, channel, snr_batch,
                                            max_batch_size)
    coderate, bps = _resolve_rate(trial, coderate, bits_per_symbol)
    have_rate = coderate is not None and bps is not None
    if snr_type == "ebno" and not have_rate:
        raise ValueError("snr_type='ebno' needs coderate and bits_per_symbol (arguments or trial attributes)")

    table = None
    if csv_file is not None:
        table = csv_file if isinstance(csv_file, ResumableCSV) else \
            ResumableCSV(csv_file, BER_COLUMNS, BER_KEY_COLUMNS)
    sweep = _Sweep(scheme, channel, snr_type, snr_list, table, early_stop, callback)
    sweep.plan(seed, coderate, bps)
    if _use_progress(progress):
        from tqdm.auto import tqdm

        sweep.bar = tqdm(total=len(snr_list), desc=f"{scheme}/{channel}", unit="pt", leave=False)
    stop = dict(target_errors=target_errors, target_block_errors=target_block_errors, max_bits=max_bits)
    try:
        _run_sweep(sweep, trial, k, seed, batch_size, max_batch_size, snr_batch, stop)
    finally:
        if sweep.bar is not None:
            sweep.bar.close()
    return sweep.results


def _checked_inputs(trial, snr_dbs, snr_type, batch_size, target_errors, target_block_errors, max_bits, seed,
                    scheme, channel, snr_batch, max_batch_size) -> Tuple[int, List[float], int]:
    """Validate the arguments of :func:`simulate_ber`; ``(trial.k, SNR points as floats, max_bits as int)``."""
    if not callable(trial):
        raise TypeError(f"trial must be callable (a BitTrial), got {type(trial).__name__}")
    k = getattr(trial, "k", None)
    _check_pos_int(k, "trial.k")
    if snr_type not in SNR_TYPES:
        raise ValueError(f"snr_type must be one of {SNR_TYPES}, got {snr_type!r}")
    if isinstance(snr_dbs, torch.Tensor):
        snr_dbs = snr_dbs.detach().cpu().reshape(-1).tolist()
    if isinstance(snr_dbs, (str, bytes)) or not isinstance(snr_dbs, Iterable):
        raise TypeError(f"snr_dbs must be a sequence of numbers, got {type(snr_dbs).__name__}")
    snr_list = [float(check_snr(s, "snr_dbs")) if not isinstance(s, torch.Tensor) else float(s)
                for s in snr_dbs]
    if not snr_list:
        raise ValueError("snr_dbs must contain at least one SNR point, got an empty list")
    if any(not math.isfinite(s) for s in snr_list):
        raise ValueError(f"snr_dbs must be finite, got {snr_list}")
    if len(set(snr_list)) != len(snr_list):
        raise ValueError(f"snr_dbs must not repeat a point (each is one CSV row), got {snr_list}")
    _check_pos_int(batch_size, "batch_size")
    if target_errors is not None:
        _check_pos_int(target_errors, "target_errors")
    if target_block_errors is not None:
        _check_pos_int(target_block_errors, "target_block_errors")
    _check_pos_number(max_bits, "max_bits")
    max_bits = int(math.ceil(max_bits))
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}: {seed!r}")
    if not isinstance(scheme, str) or not isinstance(channel, str) or not scheme or not channel:
        raise TypeError(f"scheme and channel must be non-empty strings, got {scheme!r}, {channel!r}")
    _check_pos_int(snr_batch, "snr_batch")
    if max_batch_size is not None:
        _check_pos_int(max_batch_size, "max_batch_size")
        if max_batch_size < batch_size:
            raise ValueError(f"max_batch_size={max_batch_size} must be >= batch_size={batch_size}")
    if snr_batch > 1 and not callable(getattr(trial, "batched", None)):
        raise ValueError(f"snr_batch={snr_batch} needs a trial with a batched(batch_size, esno_dbs) method "
                         f"(LinkTrial has one; FunctionTrial takes batched_fn=...), got "
                         f"{type(trial).__name__} without it; use snr_batch=1")
    return k, snr_list, max_bits


@dataclass
class _Sweep:
    """The points of one :func:`simulate_ber` call: their labels, Es/N0, Eb/N0, point seeds and stored rows
    (:meth:`plan`), and the results so far (``results[i]``, ``None`` until point ``i`` is finished)."""

    scheme: str
    channel: str
    snr_type: str
    snrs: List[float]
    table: Optional[ResumableCSV]
    early_stop: bool
    callback: Optional[Callable[[PointResult], None]]
    bar: Any = None
    esnos: List[float] = field(default_factory=list)
    ebnos: List[float] = field(default_factory=list)
    seeds: List[int] = field(default_factory=list)
    stored: List[Optional[PointResult]] = field(default_factory=list)
    results: List[Optional[PointResult]] = field(default_factory=list)

    def plan(self, seed: int, coderate: Optional[float], bps: Optional[float]) -> None:
        """Per point: Es/N0, Eb/N0 (NaN without a rate), point seed and the stored row, checked before
        anything runs."""
        have_rate = coderate is not None and bps is not None
        table = self.table
        for snr in self.snrs:
            if self.snr_type == "esno":
                self.esnos.append(snr)
                self.ebnos.append(esno_db_to_ebno_db(snr, bps, coderate) if have_rate else math.nan)
            else:
                self.ebnos.append(snr)
                self.esnos.append(ebno_db_to_esno_db(snr, bps, coderate))
            pseed = point_seed(seed, self.scheme, self.channel, self.snr_type, snr)
            self.seeds.append(pseed)
            key = (self.scheme, self.channel, self.snr_type, snr)
            row = table.get(key) if table is not None else None
            try:
                res = PointResult.from_row(row) if row is not None else None
            except ValueError as exc:
                raise ValueError(f"{table.path}: the row {key} is unreadable ({exc}); repair or delete the "
                                 "file") from None
            if res is not None and res.status == STATUS_SKIPPED and not self.early_stop and res.seed == pseed:
                table.discard(key)  # skipped by an early-stopping run: with early stop off it is simulated now
                res = None
            if res is not None and res.seed != pseed:  # same key, other master seed: never return another run's row
                raise ValueError(
                    f"{table.path} already holds {key} with point seed {res.seed}, but seed={seed} gives "
                    f"{pseed}; resume with the seed that wrote the file, or write to a new file")
            self.stored.append(res)
        self.results = [None] * len(self.snrs)

    def is_skipped(self, i: int) -> bool:
        """The sequential early-stop rule: an earlier point with a lower SNR ended error-free."""
        return self.early_stop and any(self.results[q] is not None and self.results[q].status == STATUS_NO_ERRORS
                                       and self.snrs[q] < self.snrs[i] for q in range(i))

    def labelled(self, i: int, res: PointResult) -> PointResult:
        res.scheme, res.channel, res.snr_db, res.snr_type = self.scheme, self.channel, self.snrs[i], self.snr_type
        res.esno_db, res.ebno_db = self.esnos[i], self.ebnos[i]
        return res

    def skipped_row(self, i: int) -> PointResult:
        return PointResult(self.scheme, self.channel, self.snrs[i], self.snr_type, self.esnos[i], self.ebnos[i],
                           math.nan, math.nan, 0, 0, 0, 0, math.nan, math.nan, math.nan, math.nan, self.seeds[i],
                           STATUS_SKIPPED)

    def finish(self, i: int, res: PointResult, write: bool) -> None:
        if write and self.table is not None:
            self.table.append(res.to_row())
        self.results[i] = res
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{self.snrs[i]:g} dB: BER {res.ber:.3g} ({res.status})")
        if self.callback is not None:
            self.callback(res)

    def resolve_known(self, i: int) -> bool:
        """Finish point ``i`` if it is stored or skipped; ``False`` if it must be simulated."""
        if self.stored[i] is not None:
            self.finish(i, self.stored[i], write=False)
        elif self.is_skipped(i):
            self.finish(i, self.skipped_row(i), write=True)
        else:
            return False
        return True


def _run_sweep(sweep: _Sweep, trial, k: int, seed: int, batch_size: int, max_batch_size: Optional[int],
               snr_batch: int, stop: Dict[str, Any]) -> None:
    """Simulate the points of ``sweep`` that are neither stored nor skipped, in groups of up to ``snr_batch``
    consecutive points (a group of one runs exactly as the sequential engine)."""
    n = len(sweep.snrs)
    i = 0
    while i < n:
        group: List[int] = []
        while i < n and len(group) < snr_batch:
            if not sweep.resolve_known(i):
                group.append(i)
            i += 1
        if len(group) == 1:  # one point: exactly the sequential run
            j = group[0]
            sweep.finish(j, sweep.labelled(j, _run_point(trial, k, sweep.esnos[j], batch_size, stop["target_errors"],
                                                         stop["target_block_errors"], stop["max_bits"],
                                                         sweep.seeds[j], sweep.bar, max_batch_size or batch_size)),
                         write=True)
        elif group:
            gseed = point_seed(seed, sweep.scheme, sweep.channel, sweep.snr_type, "snr_group",
                               *[sweep.snrs[j] for j in group])
            _run_group(trial, k, group, sweep.esnos, sweep.seeds, gseed, batch_size, stop, sweep.is_skipped,
                       lambda j, res: sweep.finish(j, sweep.labelled(j, res) if res is not None
                                                   else sweep.skipped_row(j), True))


def _run_point(trial, k, esno, batch_size, target_errors, target_block_errors, max_bits, pseed, bar,
               max_batch_size: int) -> PointResult:
    reset = getattr(trial, "reset", None)
    if callable(reset):
        reset(pseed)
    counter = trial.count_errors if isinstance(trial, ScrambledZeroTrial) else None
    bit_err = n_bits = blk_err = n_blk = 0
    while True:
        remaining_blocks = max(1, -(-(max_bits - n_bits) // k))
        bs = min(batch_size, remaining_blocks)
        batch_size = min(2 * batch_size, max_batch_size)
        with torch.no_grad():
            if counter is not None:   # the trial counts its own errors (ScrambledZeroTrial)
                e, nb, be, nblk = counter(bs, esno)
            else:
                bits, bits_hat = trial(bs, esno)
                _check_blocks(bits, bs, k)
                e, nb, be, nblk = _count_errors(bits, bits_hat)
        bit_err += e
        n_bits += nb
        blk_err += be
        n_blk += nblk
        status = _stop_status(bit_err, n_bits, blk_err, target_errors, target_block_errors, max_bits)
        if status is not None:
            return _counts_result(bit_err, n_bits, blk_err, n_blk, esno, pseed, status)


def _run_group(trial, k: int, group: List[int], esnos: List[float], pseeds: List[int], gseed: int,
               batch_size: int, stop: Dict[str, Any], is_skipped: Callable[[int], bool],
               finish: Callable[[int, Optional[PointResult]], None]) -> None:
    """Run the points ``group`` (indices into ``esnos``, list order) with one ``trial.batched``
    call per iteration over the still-active ones.

    After each iteration the active and just-finished points are visited in list order: a point
    that ``is_skipped`` (an earlier point ended error-free at a lower SNR, possibly in this same
    visit) is dropped and finished as skipped (``finish(i, None)``), a point whose own stopping
    rule fired is finished with its counts (``finish(i, result)``), the others go on.
    """
    reset = getattr(trial, "reset", None)
    if callable(reset):
        reset(gseed)
    counts = {i: [0, 0, 0, 0] for i in group}  # bit errors, bits, block errors, blocks
    active = list(group)
    max_bits = stop["max_bits"]
    while active:
        # every active point has drawn the same number of bits so far; shorten the last batch alike
        remaining_blocks = min(max(1, -(-(max_bits - counts[i][1]) // k)) for i in active)
        bs = min(batch_size, remaining_blocks)
        with torch.no_grad():
            bits, bits_hat = trial.batched(bs, [esnos[i] for i in active])
        _check_blocks(bits, bs, k, lead=1)
        finished: Dict[int, str] = {}
        for i, c in zip(active, _count_errors_batched(bits, bits_hat, len(active))):
            acc = counts[i]
            for m in range(4):
                acc[m] += c[m]
            status = _stop_status(acc[0], acc[1], acc[2], stop["target_errors"], stop["target_block_errors"],
                                  max_bits)
            if status is not None:
                finished[i] = status
        for i in list(active):  # list order; active is kept in list order
            if is_skipped(i):
                active.remove(i)
                finish(i, None)
            elif i in finished:
                active.remove(i)
                be, nb, blk, nblk = counts[i]
                finish(i, _counts_result(be, nb, blk, nblk, esnos[i], pseeds[i], finished[i]))
