"""Executors for independent point tasks: in-process (:class:`LocalExecutor`) or on Ray (:class:`RayExecutor`).

A *point task* is ``(key, fn, args)``: ``fn(*args)`` computes one result (e.g. one (scheme, channel,
SNR) point of a sweep) and returns it; ``key`` names it. Tasks must be independent and
deterministic given their arguments (the Monte Carlo engine seeds every point from
``(seed, scheme, channel, snr_type, snr_db)``, :func:`phy.montecarlo.point_seed`), so the order and
the process in which they run do not change the results. For Ray, ``fn`` and ``args`` must be
picklable (use module-level functions of the package, which workers import by name) and small:
pass configuration dicts and rebuild links, channels and models *inside* the task (cached per
worker process, e.g. with ``functools.lru_cache``, since every point reseeds them).

Results are written by the driver, one row per finished point, through the experiment's
:class:`phy.montecarlo.ResumableCSV` (write + flush + fsync per row). Finished keys are skipped
before submission, so an interrupted run resumed with either executor gives the same CSV rows
as an uninterrupted local run. When all points are done the driver puts the rows in task order
(:meth:`~phy.montecarlo.ResumableCSV.reorder`, one atomic rewrite), so the final file is the
sequential run's, line for line.

* :func:`make_executor` (``"local"`` or ``"ray"``; ``num_cpus`` for a local Ray instance,
  ``address`` for an existing cluster, e.g. ``"auto"`` or ``"ray://head:10001"``).
* :func:`run_points`: generic "skip finished keys, run the rest, append each returned row".
* :func:`run_ber_sweeps`: the ``semcom ber`` sweeps as one task per (scheme, channel, SNR)
  point, with the engine's early stop reproduced exactly (rows of a sweep are written in SNR-list
  order; once a point ends error-free, queued higher-SNR points of that sweep are cancelled and
  written as ``skipped``), so the CSV rows equal those of :func:`phy.montecarlo.simulate_ber`.
* :func:`run_compare_points`: ``semcom compare`` with one task per (scheme, channel, SNR) point.
* :func:`extract_features_parallel`: :func:`semantic.clip_tokens.extract_features` with one task
  per shard (the encoder and the data set are rebuilt in each task from picklable factories).

On a cluster every node needs the package importable (``pip install -e .`` on each node or a Ray
``runtime_env``, ``RayExecutor(runtime_env={"working_dir": "."})``) and, for file outputs such as
feature shards, a shared file system.

Example
-------
>>> def square(x):
...     return {"x": x, "y": x * x}
>>> with make_executor("local") as ex:
...     sorted(r["y"] for _, r in ex.map([(i, square, (i,)) for i in range(4)]))
[0, 1, 4, 9]
"""
from __future__ import annotations

import collections
import functools
import json
import math
from typing import (Any, Callable, Dict, Hashable, Iterable, Iterator, List, Mapping, Optional, Sequence,
                    Tuple)

__all__ = [
    "check_ray_address",
    "Task",
    "Executor",
    "LocalExecutor",
    "RayExecutor",
    "EXECUTORS",
    "make_executor",
    "add_executor_arguments",
    "executor_from_args",
    "run_points",
    "ber_point",
    "run_ber_sweeps",
    "compare_point",
    "run_compare_points",
    "extract_features_parallel",
    "extract_shard",
    "clip_image_encoder",
    "clip_dataset",
    "ClipPreprocess",
]

Task = Tuple[Hashable, Callable[..., Any], tuple]
EXECUTORS = ("local", "ray")


# --------------------------------------------------------------------------------------------
# Executors
# --------------------------------------------------------------------------------------------
class Executor:
    """Minimal task-pool interface: :meth:`submit`, :meth:`wait_any`, :meth:`cancel`.

    ``wait_any()`` returns ``(key, result)`` of one finished task (raising the task's exception if
    it failed). :meth:`map` runs an iterable of tasks with at most :attr:`max_in_flight` submitted
    at a time and yields ``(key, result)`` as they finish.
    """

    name = "executor"
    max_in_flight: int = 1

    def submit(self, key: Hashable, fn: Callable[..., Any], args: tuple = ()) -> None:
        raise NotImplementedError

    def wait_any(self) -> Tuple[Hashable, Any]:
        raise NotImplementedError

    def cancel(self, key: Hashable) -> bool:
        """Drop a submitted task that has not finished; ``True`` when it was pending."""
        raise NotImplementedError

    @property
    def pending(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def describe(self) -> Dict[str, Any]:
        return {"executor": self.name}

    def map(self, tasks: Iterable[Task]) -> Iterator[Tuple[Hashable, Any]]:
        """Run ``tasks`` (``(key, fn, args)``) and yield ``(key, result)`` in completion order."""
        it = iter(tasks)
        exhausted = False
        keys = set()
        while True:
            while not exhausted and self.pending < self.max_in_flight:
                try:
                    key, fn, args = next(it)
                except StopIteration:
                    exhausted = True
                    break
                if key in keys:
                    raise ValueError(f"task key {key!r} appears twice")
                keys.add(key)
                self.submit(key, fn, tuple(args))
            if self.pending == 0:
                return
            yield self.wait_any()


def _check_task(key, fn, args) -> None:
    if not callable(fn):
        raise TypeError(f"task {key!r}: fn must be callable, got {type(fn).__name__}")
    if not isinstance(args, tuple):
        raise TypeError(f"task {key!r}: args must be a tuple, got {type(args).__name__}")


class LocalExecutor(Executor):
    """Runs tasks in this process, one at a time, in submission order (when :meth:`wait_any` asks)."""

    name = "local"

    def __init__(self):
        self._queue: "collections.OrderedDict[Hashable, Tuple[Callable, tuple]]" = collections.OrderedDict()
        self.max_in_flight = 1

    def submit(self, key, fn, args=()):
        _check_task(key, fn, args)
        if key in self._queue:
            raise ValueError(f"task key {key!r} is already pending")
        self._queue[key] = (fn, args)

    def wait_any(self):
        if not self._queue:
            raise RuntimeError("wait_any() with no pending task")
        key, (fn, args) = self._queue.popitem(last=False)
        return key, fn(*args)

    def cancel(self, key):
        return self._queue.pop(key, None) is not None

    @property
    def pending(self) -> int:
        return len(self._queue)


def _invoke(fn: Callable[..., Any], args: tuple) -> Any:
    return fn(*args)


class RayExecutor(Executor):
    """Runs tasks as Ray tasks (one CPU each by default).

    Parameters
    ----------
    num_cpus : int, optional
        CPUs of the *local* Ray instance started when ``address`` is None (default: all cores).
    address : str, optional
        An existing cluster (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``); ``num_cpus`` is
        then ignored.
    num_cpus_per_task, num_gpus_per_task : float
        Resources each task requests (``num_gpus_per_task=1`` to place GPU tasks).
    max_in_flight : int, optional
        Tasks submitted at once (default: twice the cluster's CPUs / ``num_cpus_per_task``); keeps
        later tasks unsubmitted so that they can still be skipped.
    runtime_env : dict, optional
        Passed to ``ray.init`` (e.g. ``{"working_dir": "."}`` on a cluster without the package).
    init_kwargs : dict, optional
        More ``ray.init`` arguments. The dashboard is off and worker logs are not forwarded unless
        given here.

    Ray is shut down by :meth:`close` only if this executor started it.
    """

    name = "ray"

    def __init__(self, num_cpus: Optional[int] = None, address: Optional[str] = None,
                 num_cpus_per_task: float = 1, num_gpus_per_task: float = 0,
                 max_in_flight: Optional[int] = None, runtime_env: Optional[dict] = None,
                 init_kwargs: Optional[Mapping[str, Any]] = None):
        try:
            import ray
        except ImportError:
            from experiments.extras import missing_extra

            raise missing_extra("ray") from None
        if num_cpus is not None and (isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 1):
            raise ValueError(f"num_cpus must be a positive int or None, got {num_cpus!r}")
        if not (num_cpus_per_task > 0):
            raise ValueError(f"num_cpus_per_task must be > 0, got {num_cpus_per_task!r}")
        if address is not None:  # before ray.init, which would wait for a cluster that is not there
            check_ray_address(address)
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            kw: Dict[str, Any] = dict(include_dashboard=False, log_to_driver=False)
            if address is None:
                kw["num_cpus"] = num_cpus
            else:
                kw["address"] = address
            if runtime_env is not None:
                kw["runtime_env"] = runtime_env
            kw.update(init_kwargs or {})
            ray.init(**kw)
            self._started = True
        self.address = address
        self.num_cpus_per_task = float(num_cpus_per_task)
        self.num_gpus_per_task = float(num_gpus_per_task)
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        self.cluster_cpus = cpus
        self.max_in_flight = int(max_in_flight) if max_in_flight else max(1, int(2 * cpus / self.num_cpus_per_task))
        self._invoke = None
        self._refs: Dict[Any, Hashable] = {}     # ObjectRef -> key
        self._by_key: Dict[Hashable, Any] = {}   # key -> ObjectRef

    def submit(self, key, fn, args=()):
        _check_task(key, fn, args)
        if key in self._by_key:
            raise ValueError(f"task key {key!r} is already pending")
        if self._invoke is None:  # one remote function; any picklable callable travels as its argument
            self._invoke = self._ray.remote(num_cpus=self.num_cpus_per_task, num_gpus=self.num_gpus_per_task,
                                            max_retries=0)(_invoke)
        ref = self._invoke.remote(fn, args)
        self._refs[ref] = key
        self._by_key[key] = ref

    def wait_any(self):
        if not self._refs:
            raise RuntimeError("wait_any() with no pending task")
        ready, _ = self._ray.wait(list(self._refs), num_returns=1)
        ref = ready[0]
        key = self._refs.pop(ref)
        del self._by_key[key]
        try:
            return key, self._ray.get(ref)
        except Exception:
            self.cancel_all()
            raise

    def cancel(self, key):
        ref = self._by_key.pop(key, None)
        if ref is None:
            return False
        del self._refs[ref]
        try:
            self._ray.cancel(ref, force=False)
        except Exception:  # already finished or not cancellable: the result is just dropped
            pass
        return True

    def cancel_all(self) -> None:
        for key in list(self._by_key):
            self.cancel(key)

    @property
    def pending(self) -> int:
        return len(self._refs)

    def describe(self):
        return {"executor": self.name, "address": self.address, "cluster_cpus": self.cluster_cpus,
                "num_cpus_per_task": self.num_cpus_per_task, "num_gpus_per_task": self.num_gpus_per_task}

    def close(self):
        self.cancel_all()
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
        self._started = False


def check_ray_address(address: str, timeout_s: float = 5.0) -> None:
    """Fail within ``timeout_s`` when nothing listens at a ``HOST:PORT`` (or ``ray://HOST:PORT``) Ray
    address; ``ray.init`` would wait for a cluster that is not there. ``"auto"``/``"local"`` are Ray's own.

    Raises ``ValueError`` naming the address and what happened (refused, timed out, unresolvable)."""
    import socket

    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"--address must be HOST:PORT, ray://HOST:PORT or 'auto', got {address!r}")
    text = address.strip()
    if text in ("auto", "local"):
        return
    hostport = text.split("://", 1)[1] if "://" in text else text
    host, sep, port = hostport.rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--address must be HOST:PORT, ray://HOST:PORT or 'auto', got {address!r}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except socket.timeout:
        raise ValueError(f"--address {address}: no Ray cluster answered within {timeout_s:g} s") from None
    except OSError as exc:
        raise ValueError(f"--address {address}: no Ray cluster there ({exc.strerror or exc})") from None


def make_executor(name: str = "local", *, num_cpus: Optional[int] = None, address: Optional[str] = None,
                  **kwargs) -> Executor:
    """``"local"`` -> :class:`LocalExecutor`; ``"ray"`` -> :class:`RayExecutor` (``num_cpus``, ``address``)."""
    if name == "local":
        if address is not None:
            raise ValueError("--address only applies to --executor ray")
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(num_cpus=num_cpus, address=address, **kwargs)
    raise ValueError(f"executor must be one of {EXECUTORS}, got {name!r}")


def add_executor_arguments(parser) -> None:
    """Add ``--executor``, ``--num-cpus`` and ``--address`` to an argparse parser."""
    parser.add_argument("--executor", default="local", choices=EXECUTORS,
                        help="local: points one after the other in this process (default); ray: one Ray "
                             "task per point (local Ray instance, or --address)")
    parser.add_argument("--num-cpus", type=int, default=None,
                        help="CPUs of the local Ray instance (--executor ray; default: all cores)")
    parser.add_argument("--address", default=None,
                        help="existing Ray cluster for --executor ray, e.g. auto or ray://head:10001")


def executor_from_args(args) -> Executor:
    """The executor named by ``args.executor`` / ``args.num_cpus`` / ``args.address`` (defaults: local)."""
    name = getattr(args, "executor", None) or "local"
    num_cpus = getattr(args, "num_cpus", None)
    if num_cpus is not None and num_cpus < 1:
        raise ValueError(f"--num-cpus must be a positive integer, got {num_cpus}")
    return make_executor(name, num_cpus=num_cpus, address=getattr(args, "address", None))


# --------------------------------------------------------------------------------------------
# Generic: independent rows keyed like a ResumableCSV
# --------------------------------------------------------------------------------------------
def run_points(executor: Executor, tasks: Iterable[Task], table=None,
               callback: Optional[Callable[[Hashable, Any], None]] = None) -> Dict[Hashable, Any]:
    """Run point tasks whose results are CSV rows, skipping those already in ``table``.

    Parameters
    ----------
    executor : Executor
    tasks : iterable of ``(key, fn, args)``
        ``key`` must be the row's key as the table writes it (a tuple of values of
        ``table.key_columns``, formatted with :func:`phy.montecarlo.format_value` when compared);
        ``fn(*args)`` returns one row (a mapping with the table's columns) or a list of rows.
    table : ResumableCSV, optional
        Rows are appended (flushed, fsynced) by the driver as tasks finish.
    callback : callable, optional
        ``callback(key, result)`` after each row is written.

    Returns
    -------
    dict key -> result for the tasks that ran (finished keys are not included).

    Rows are appended as tasks finish (in any order); at the end the table is reordered to the
    task order (rows of a list result in their list order).
    """
    from phy.montecarlo import format_value

    done = set()
    if table is not None:
        done = table.finished_keys()
    order: List[Tuple[str, ...]] = []  # task keys in submission order

    def row_key(key) -> Tuple[str, ...]:
        return tuple(format_value(v) for v in (key if isinstance(key, tuple) else (key,)))

    def todo():
        for key, fn, args in tasks:
            order.append(row_key(key))
            if order[-1] not in done:
                yield key, fn, args

    out: Dict[Hashable, Any] = {}
    row_keys: Dict[Tuple[str, ...], List[Tuple[str, ...]]] = {}
    for key, result in executor.map(todo()):
        if table is not None:
            rows = result if isinstance(result, list) else [result]
            for r in rows:
                table.append(r)
            row_keys[row_key(key)] = [table.key_of(r) for r in rows]
        out[key] = result
        if callback is not None:
            callback(key, result)
    if table is not None:  # the file in task order, as a sequential run writes it
        table.reorder(rk for k in order for rk in row_keys.get(k, [k]))
    return out


# --------------------------------------------------------------------------------------------
# BER sweeps (semcom ber)
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _ber_trial(cfg_json: str):
    """Build (and keep, per worker process) the trial of one scheme; reseeded at every point."""
    from experiments.ber import build_trial
    from phy.channels import make_channel

    cfg = json.loads(cfg_json)
    channel = make_channel(cfg["channel"], seed=cfg["seed"])
    return build_trial(cfg["code"], cfg["modulation"], channel, k=cfg["k"], n=cfg["n"], num_iter=cfg["num_iter"],
                       demapping=cfg["demapping"], device=cfg["device"], ldpc_decoder=cfg["ldpc_decoder"],
                       hamming_decoder=cfg["hamming_decoder"])


_BUILD_KEYS = ("code", "modulation", "channel", "k", "n", "num_iter", "demapping", "device", "ldpc_decoder",
               "hamming_decoder", "seed")


def ber_point(config: Mapping[str, Any], snr_db: float) -> Dict[str, Any]:
    """One BER point in any process: rebuild the scheme from ``config`` and simulate ``snr_db``.

    ``config`` (JSON-able) has the build keys ``code, modulation, channel, k, n, num_iter, demapping,
    device, ldpc_decoder, hamming_decoder, seed`` and the engine keys ``snr_type, batch_size,
    target_errors, target_block_errors, max_bits`` (see :func:`phy.montecarlo.simulate_ber`).
    Returns the CSV row (:meth:`PointResult.to_row`); identical to the row the sequential engine
    writes for that point, since the point's seed depends only on its key.
    """
    from phy.montecarlo import simulate_ber

    torch_threads = config.get("torch_threads")
    if torch_threads:
        import torch

        torch.set_num_threads(int(torch_threads))
    build = json.dumps({k: config[k] for k in _BUILD_KEYS}, sort_keys=True)
    trial, coderate, bps = _ber_trial(build)
    res = simulate_ber(trial, [float(snr_db)], snr_type=config["snr_type"], coderate=coderate,
                       bits_per_symbol=bps, batch_size=config["batch_size"], target_errors=config["target_errors"],
                       target_block_errors=config["target_block_errors"], max_bits=config["max_bits"],
                       seed=config["seed"], scheme=config["code"], channel=config["channel"], early_stop=False,
                       csv_file=None, progress=False)
    return res[0].to_row()


def _skipped_row(config: Mapping[str, Any], snr: float, coderate: Optional[float], bps: Optional[float]):
    from phy.conventions import ebno_db_to_esno_db, esno_db_to_ebno_db
    from phy.montecarlo import STATUS_SKIPPED, PointResult, point_seed

    have_rate = coderate is not None and bps is not None
    if config["snr_type"] == "esno":
        esno, ebno = snr, (esno_db_to_ebno_db(snr, bps, coderate) if have_rate else math.nan)
    else:
        ebno, esno = snr, ebno_db_to_esno_db(snr, bps, coderate)
    pseed = point_seed(config["seed"], config["code"], config["channel"], config["snr_type"], snr)
    return PointResult(config["code"], config["channel"], snr, config["snr_type"], esno, ebno, math.nan, math.nan,
                       0, 0, 0, 0, math.nan, math.nan, math.nan, math.nan, pseed, STATUS_SKIPPED).to_row()


def run_ber_sweeps(executor: Executor, sweeps: Sequence[Tuple[Mapping[str, Any], Sequence[float]]], table,
                   *, early_stop: bool = True, rates: Optional[Mapping[Tuple[str, str], Tuple[float, float]]] = None,
                   progress: Optional[bool] = None) -> List[Any]:
    """Run BER sweeps as one task per SNR point; rows equal :func:`phy.montecarlo.simulate_ber`'s.

    Parameters
    ----------
    executor : Executor
    sweeps : list of ``(config, snr_dbs)``
        ``config`` as for :func:`ber_point` (one scheme on one channel); ``snr_dbs`` in the order
        the sequential engine would walk them.
    table : ResumableCSV
        The ``ber.csv`` table (:data:`phy.montecarlo.BER_COLUMNS`); stored points are not rerun.
    early_stop : bool
        As in ``simulate_ber``: after a point with zero errors, later points of the sweep with a
        higher SNR are written as skipped (their queued tasks are cancelled).
    rates : dict ``(code, channel) -> (coderate, bits_per_symbol)``, optional
        For the Eb/N0 column of skipped rows (built in the driver when omitted).

    Returns
    -------
    list of PointResult, sweep by sweep, each in ``snr_dbs`` order.

    Rows of one sweep are appended in ``snr_dbs`` order (a finished point waits for the points
    before it), so an interrupted CSV always holds a prefix of every sweep, exactly as the
    sequential engine leaves it, and resuming with either executor gives the same rows. Sweeps
    interleave while running; at the end the file is put in sweep order, so it equals the
    sequential engine's line for line.
    """
    from phy.montecarlo import STATUS_NO_ERRORS, PointResult, format_value

    if table is None:
        raise ValueError("run_ber_sweeps needs the result table (a ResumableCSV)")
    n_sweeps = len(sweeps)
    snr_lists = [[float(s) for s in snrs] for _, snrs in sweeps]
    configs = [dict(c) for c, _ in sweeps]
    stored: List[List[Optional[Dict[str, str]]]] = []
    for cfg, snrs in zip(configs, snr_lists):
        if len(set(snrs)) != len(snrs):
            raise ValueError(f"sweep {cfg['code']}/{cfg['channel']} lists an SNR twice: {snrs}")
        stored.append([table.get((cfg["code"], cfg["channel"], cfg["snr_type"], s)) for s in snrs])

    rows: List[List[Optional[Dict[str, Any]]]] = [[None] * len(s) for s in snr_lists]
    computed: Dict[Tuple[int, int], Dict[str, Any]] = {}
    pointer = [0] * n_sweeps
    zero_snr: List[Optional[float]] = [None] * n_sweeps
    rates = dict(rates or {})

    def rate_of(i):
        key = (configs[i]["code"], configs[i]["channel"])
        if key not in rates:
            _, cr, bps = _ber_trial(json.dumps({k: configs[i][k] for k in _BUILD_KEYS}, sort_keys=True))
            rates[key] = (cr, bps)
        return rates[key]

    def skippable(i, j):
        z = zero_snr[i]
        return early_stop and z is not None and snr_lists[i][j] > z and stored[i][j] is None

    def advance(i):
        """Write every resolvable row of sweep i from its pointer on."""
        while pointer[i] < len(snr_lists[i]):
            j = pointer[i]
            snr = snr_lists[i][j]
            if stored[i][j] is not None:
                row = stored[i][j]
            elif skippable(i, j):
                executor.cancel((i, j))
                cr, bps = rate_of(i)
                row = _skipped_row(configs[i], snr, cr, bps)
                table.append(row)
            elif (i, j) in computed:
                row = computed.pop((i, j))
                table.append(row)
            else:
                return
            rows[i][j] = row
            if format_value(row["status"]) == STATUS_NO_ERRORS and (zero_snr[i] is None or snr < zero_snr[i]):
                zero_snr[i] = snr
                for jj in range(j + 1, len(snr_lists[i])):
                    if skippable(i, jj):
                        executor.cancel((i, jj))
            pointer[i] += 1

    # round-robin over sweeps, low list positions first, so early points start first
    order = []
    for j in range(max((len(s) for s in snr_lists), default=0)):
        for i in range(n_sweeps):
            if j < len(snr_lists[i]) and stored[i][j] is None:
                order.append((i, j))

    def tasks():
        for i, j in order:
            if skippable(i, j):
                continue  # already known to be skipped: never submitted
            yield (i, j), ber_point, (configs[i], snr_lists[i][j])

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(order), desc=f"ber ({executor.name})", unit="pt", leave=False)
    try:
        for i in range(n_sweeps):
            advance(i)
        for (i, j), row in executor.map(tasks()):
            computed[(i, j)] = row
            advance(i)
            if bar is not None:
                bar.update(1)
        for i in range(n_sweeps):
            advance(i)
    finally:
        if bar is not None:
            bar.close()
    missing = [(configs[i]["code"], configs[i]["channel"], snr_lists[i][j])
               for i in range(n_sweeps) for j in range(len(snr_lists[i])) if rows[i][j] is None]
    if missing:  # pragma: no cover - would be a bug in the bookkeeping above
        raise RuntimeError(f"points without a result: {missing}")
    # sweep by sweep, as the sequential engine writes them (rows were appended as points finished)
    table.reorder(table.key_of(r) for rs in rows for r in rs)
    return [PointResult.from_row({k: format_value(v) for k, v in r.items()}) for rs in rows for r in rs]


# --------------------------------------------------------------------------------------------
# semcom compare: one task per (scheme, channel, SNR) point
# --------------------------------------------------------------------------------------------
def compare_point(source, config: Mapping[str, Any], channel: str, scheme: str, snr_db: float) -> List[Dict[str, Any]]:
    """One ``semcom compare`` point in any process: :func:`experiments.compare.run_comparison`
    restricted to one channel, one scheme and one SNR (the point reseeds the channel from its own
    key, so the row equals the sequential run's). Returns ``[row]`` (``[]`` when the scheme does
    not apply to the source)."""
    from experiments.compare import CompareConfig, run_comparison

    cfg = CompareConfig(**dict(config, channels=[channel], schemes=[scheme], snr_db=[float(snr_db)]))
    return run_comparison(source, cfg, None, table=None, progress=False)


def run_compare_points(executor: Executor, source, config, table) -> List[Dict[str, Any]]:
    """Run a :class:`experiments.compare.CompareConfig` as one task per point, skipping the points
    already in ``table``; returns the rows in the sequential order (channel, scheme, SNR)."""
    from dataclasses import asdict

    from experiments.compare import make_scheme

    config.validate(source.dim)
    cfg = asdict(config)
    names = {spec: make_scheme(spec).name for spec in config.schemes}
    keys, tasks = [], []
    for ch in config.channels:
        for spec in config.schemes:
            for snr in config.snr_db:
                key = (names[spec], ch, float(snr))
                keys.append(key)
                tasks.append((key, compare_point, (source, cfg, ch, spec, float(snr))))
    run_points(executor, tasks, table)
    return [r for r in (table.get(k) for k in keys) if r is not None]


# --------------------------------------------------------------------------------------------
# Feature extraction (semantic.clip_tokens cache), one task per shard
# --------------------------------------------------------------------------------------------
def _call(factory):
    """``(fn, args)`` / ``(fn, args, kwargs)`` / ``fn`` -> ``fn(*args, **kwargs)``."""
    if isinstance(factory, tuple):
        if len(factory) not in (2, 3):
            raise ValueError(f"a factory must be (fn, args) or (fn, args, kwargs), got {len(factory)} items")
        fn, args = factory[0], tuple(factory[1])
        kwargs = dict(factory[2]) if len(factory) == 3 else {}
    else:
        fn, args, kwargs = factory, (), {}
    if not callable(fn):
        raise TypeError(f"factory function must be callable, got {type(fn).__name__}")
    return fn(*args, **kwargs)


def extract_shard(encoder_factory, dataset_factory, cache_dir: str, shard: int, shard_size: int,
                  batch_size: int, num_workers: int = 0) -> str:
    """Encode shard ``shard`` (examples ``[shard*shard_size, (shard+1)*shard_size)``) and write it
    to ``cache_dir`` in :func:`semantic.clip_tokens.extract_features`' layout. Returns the file name.

    ``encoder_factory`` / ``dataset_factory``: ``(fn, args[, kwargs])`` tuples (or plain callables)
    building the encoder and the data set inside the worker.
    """
    from pathlib import Path

    import torch

    from semantic.clip_tokens import _write_atomic

    encoder = _call(encoder_factory)
    dataset = _call(dataset_factory)
    name = f"shard-{shard:05d}.safetensors"
    path = Path(cache_dir) / name
    if path.is_file():
        return name
    n = len(dataset)
    lo, hi = shard * shard_size, min(n, (shard + 1) * shard_size)
    sub = torch.utils.data.Subset(dataset, range(lo, hi))
    loader = torch.utils.data.DataLoader(sub, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    feats, labels = [], []
    with torch.no_grad():
        for images, lab, _ in loader:
            feats.append(encoder(images).detach().float().cpu())
            labels.append(torch.as_tensor(lab, dtype=torch.long))
    _write_atomic(path, {"features": torch.cat(feats), "labels": torch.cat(labels)})
    return name


class _KeyOnlyEncoder:
    """Stands in for the encoder in the driver once every shard exists (never called)."""

    def __init__(self, key, image_shape):
        self.key = key
        self.image_shape = image_shape

    def __call__(self, images):  # pragma: no cover - only reached if a shard vanished meanwhile
        raise RuntimeError("a feature shard is missing after the parallel extraction; rerun to resume")


def extract_features_parallel(executor: Executor, encoder_factory, dataset_factory, cache_dir,
                              encoder_key: str, batch_size: int = 64, shard_size: int = 4096,
                              image_shape: Optional[Sequence[int]] = None, num_workers: int = 0):
    """:func:`semantic.clip_tokens.extract_features` with one executor task per shard.

    The driver builds the data set once (for its length, paths and class names; no image is read),
    each task rebuilds encoder and data set from the factories and writes its shard; the driver then
    finalises the manifest through ``extract_features`` itself (which finds every shard present
    and only writes ``complete = true``) and returns the :class:`~semantic.clip_tokens.FeatureSet`.
    Existing shards are skipped (resume). A cache of another encoder key or data set raises
    ``ValueError`` before any task is submitted.
    """
    from pathlib import Path

    from semantic.clip_tokens import extract_features, load_features

    if not isinstance(encoder_key, str) or not encoder_key:
        raise ValueError(f"encoder_key must be a non-empty str, got {encoder_key!r}")
    if shard_size < 1 or batch_size < 1:
        raise ValueError(f"batch_size and shard_size must be >= 1, got {batch_size}, {shard_size}")
    shard_size = -(-shard_size // batch_size) * batch_size
    dataset = _call(dataset_factory)
    cache = Path(cache_dir)
    n = len(dataset)
    mpath = cache / "manifest.json"
    if mpath.is_file():
        old = json.loads(mpath.read_text())
        same = (old.get("encoder_key") == encoder_key and old.get("num_examples") == n
                and old.get("class_names") == list(dataset.class_names)
                and old.get("paths") == list(getattr(dataset, "paths", []))
                and old.get("shard_size") == shard_size)
        if not same:
            raise ValueError(f"cache_dir {str(cache)!r} holds features of another encoder or data set "
                             f"(encoder_key {old.get('encoder_key')!r}); use an empty folder")
        if old.get("complete"):
            return load_features(cache)
    cache.mkdir(parents=True, exist_ok=True)
    shards = -(-n // shard_size)
    tasks = [(s, extract_shard, (encoder_factory, dataset_factory, str(cache), s, shard_size, batch_size,
                                 num_workers))
             for s in range(shards) if not (cache / f"shard-{s:05d}.safetensors").is_file()]
    for _ in executor.map(tasks):
        pass
    return extract_features(_KeyOnlyEncoder(encoder_key, image_shape), dataset, cache, encoder_key=encoder_key,
                            batch_size=batch_size, shard_size=shard_size, image_shape=image_shape, progress=False)


@functools.lru_cache(maxsize=2)
def _clip_bundle(model_name: str, pretrained: Optional[str], device: str):
    """(model, preprocess) of an open_clip model, loaded once per worker process."""
    from semantic.clip_tokens import load_open_clip

    model, preprocess, _ = load_open_clip(model_name, pretrained, device=device)
    return model, preprocess


def clip_image_encoder(model_name: str, pretrained: Optional[str], device: str = "cpu"):
    """Encoder factory for :func:`extract_features_parallel`: a :class:`CLIPImageEncoder` keyed
    ``"<model>|<pretrained>"`` (the key ``semcom semclip extract`` uses)."""
    from semantic.clip_tokens import CLIPImageEncoder

    model, _ = _clip_bundle(model_name, pretrained, str(device))
    return CLIPImageEncoder(model, key=f"{model_name}|{pretrained}")


class ClipPreprocess:
    """Picklable stand-in for an open_clip eval preprocess, built on first use in the process that
    reads images (the driver, which never reads one, does not load the model)."""

    def __init__(self, model_name: str, pretrained: Optional[str], device: str = "cpu"):
        self.args = (model_name, pretrained, str(device))

    def __call__(self, image):
        return _clip_bundle(*self.args)[1](image)


def clip_dataset(dataset: str, root: str, split: Optional[str], model_name: str, pretrained: Optional[str],
                 device: str = "cpu"):
    """Data set factory for :func:`extract_features_parallel`: :func:`semantic.datasets.make_dataset`
    with the CLIP model's preprocess (lazily built)."""
    from semantic.datasets import make_dataset

    return make_dataset(dataset, root, transform=ClipPreprocess(model_name, pretrained, device), split=split)

