"""Executors for independent point tasks: in-process (:class:`LocalExecutor`) or on Ray (:class:`RayExecutor`).

A *point task* is ``(key, fn, args)``: ``fn(*args)`` computes one result (e.g. one (scheme, channel,
SNR) point of a sweep) and returns it; ``key`` names it. Tasks must be independent and
deterministic given their arguments (the Monte Carlo engine seeds every point from
``(seed, scheme, channel, snr_type, snr_db)``, :func:`phy.sim.points.point_seed`), so the order and
the process in which they run do not change the results. For Ray, ``fn`` and ``args`` must be
picklable (use module-level functions of the package, which workers import by name) and small:
pass configuration dicts and rebuild links, channels and models *inside* the task (cached per
worker process, e.g. with ``functools.lru_cache``, since every point reseeds them).

Results are written by the driver, one row per finished point, through the experiment's
:class:`phy.sim.resultstore.ResumableCSV` (write + flush + fsync per row). Finished keys are skipped
before submission, so an interrupted run resumed with either executor gives the same CSV rows
as an uninterrupted local run. When all points are done the driver puts the rows in task order
(:meth:`~phy.sim.resultstore.ResumableCSV.reorder`, one atomic rewrite), so the final file is the
sequential run's, line for line.

* :func:`make_executor` (``"local"`` or ``"ray"``; ``num_cpus`` for a local Ray instance,
  ``address`` for an existing cluster, e.g. ``"auto"`` or ``"ray://head:10001"``).
* :func:`run_points`: generic "skip finished keys, run the rest, append each returned row".
* The studies build their tasks on top of these and nothing here knows a study:
  :func:`experiments.commands.ber.run_ber_sweeps` (``semcom ber``, one task per (scheme, channel, SNR) point,
  the engine's early stop reproduced exactly), :func:`experiments.comparison.run_compare_points`
  (``semcom compare``), :func:`experiments.commands.clip_extraction.extract_features_parallel` (one task per
  CLIP feature shard).

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
    "Task",
    "Executor",
    "LocalExecutor",
    "RayExecutor",
    "EXECUTORS",
    "make_executor",
    "add_executor_arguments",
    "executor_from_args",
    "check_ray_address",
    "run_points",
]

#: A task: ``(key, fn, args)``; the result is ``fn(*args)``, reported with ``key``.
Task = Tuple[Hashable, Callable[..., Any], tuple]
#: The executor names of :func:`make_executor` (``--executor``).
EXECUTORS = ("local", "ray")


# --------------------------------------------------------------------------------------------
# Executors
# --------------------------------------------------------------------------------------------
class Executor:
    """Minimal task-pool interface: :meth:`submit`, :meth:`wait_any`, :meth:`cancel`.

    ``wait_any()`` returns ``(key, result)`` of one finished task (raising the task's exception if
    it failed). :meth:`map` runs an iterable of tasks with at most :attr:`max_in_flight` submitted
    at a time and yields ``(key, result)`` as they finish.

    Examples
    --------
    >>> ex = LocalExecutor()
    >>> sorted(ex.map([("a", pow, (2, 3)), ("b", pow, (3, 2))]))
    [('a', 8), ('b', 9)]
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
    """Runs tasks in this process, one at a time, in submission order (when :meth:`wait_any` asks).

    Examples
    --------
    >>> ex = LocalExecutor()
    >>> ex.submit("x", sum, ([1, 2, 3],))
    >>> ex.wait_any()
    ('x', 6)
    """

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

    Notes
    -----
    Ray is shut down by :meth:`close` only if this executor started it.

    Examples
    --------
    Needs the ``ray`` extra and starts a local Ray instance (seconds), so the example is not run by the
    test-suite (``tests/test_executors.py`` runs it when Ray is installed):

    >>> ex = RayExecutor(num_cpus=2)                                  # doctest: +SKIP
    >>> sorted(ex.map([("a", pow, (2, 3)), ("b", pow, (3, 2))]))      # doctest: +SKIP
    [('a', 8), ('b', 9)]
    """

    name = "ray"

    def __init__(self, num_cpus: Optional[int] = None, address: Optional[str] = None,
                 num_cpus_per_task: float = 1, num_gpus_per_task: float = 0,
                 max_in_flight: Optional[int] = None, runtime_env: Optional[dict] = None,
                 init_kwargs: Optional[Mapping[str, Any]] = None):
        try:
            import ray
        except ImportError:
            from experiments.core.extras import missing_extra

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

    Raises ``ValueError`` naming the address and what happened (refused, timed out, unresolvable).

    Examples
    --------
    >>> check_ray_address("auto")                # Ray's own keyword: nothing to check
    >>> check_ray_address("127.0.0.1:1", timeout_s=1.0)
    Traceback (most recent call last):
    ...
    ValueError: ...127.0.0.1:1...
    """
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
    """``"local"`` -> :class:`LocalExecutor`; ``"ray"`` -> :class:`RayExecutor` (``num_cpus``, ``address``).

    Examples
    --------
    >>> type(make_executor("local")).__name__
    'LocalExecutor'
    >>> make_executor("dask")
    Traceback (most recent call last):
    ...
    ValueError: ...
    """
    if name == "local":
        if address is not None:
            raise ValueError("--address only applies to --executor ray")
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(num_cpus=num_cpus, address=address, **kwargs)
    raise ValueError(f"executor must be one of {EXECUTORS}, got {name!r}")


def add_executor_arguments(parser) -> None:
    """Add ``--executor``, ``--num-cpus`` and ``--address`` to an argparse parser.

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_executor_arguments(parser)
    >>> args = parser.parse_args(["--executor", "local"])
    >>> args.executor, args.num_cpus, args.address
    ('local', None, None)
    """
    parser.add_argument("--executor", default="local", choices=EXECUTORS,
                        help="local: points one after the other in this process (default); ray: one Ray "
                             "task per point (local Ray instance, or --address)")
    parser.add_argument("--num-cpus", type=int, default=None,
                        help="CPUs of the local Ray instance (--executor ray; default: all cores)")
    parser.add_argument("--address", default=None,
                        help="existing Ray cluster for --executor ray, e.g. auto or ray://head:10001")


def executor_from_args(args) -> Executor:
    """The executor named by ``args.executor`` / ``args.num_cpus`` / ``args.address`` (defaults: local).

    Examples
    --------
    >>> import argparse
    >>> type(executor_from_args(argparse.Namespace(executor="local", num_cpus=None, address=None))).__name__
    'LocalExecutor'
    """
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
        ``table.key_columns``, formatted with :func:`phy.sim.resultstore.format_value` when compared);
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

    Examples
    --------
    >>> import os, tempfile
    >>> from experiments.core.results import open_table
    >>> table = open_table(os.path.join(tempfile.mkdtemp(), "t.csv"), keys=["snr_db"], values=["sq"])
    >>> row = lambda s: {"snr_db": s, "sq": s * s}
    >>> tasks = [(("0.0",), row, (0.0,)), (("2.0",), row, (2.0,))]
    >>> sorted(run_points(LocalExecutor(), tasks, table))
    [('0.0',), ('2.0',)]
    >>> run_points(LocalExecutor(), tasks, table)      # a rerun: both rows are in the table already
    {}
    """
    from phy.sim.resultstore import format_value

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
