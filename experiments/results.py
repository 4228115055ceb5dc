"""Result files shared by every experiment: resumable CSV tables and ``manifest.json``.

* :class:`ResumableCSV` (re-exported from :mod:`phy.montecarlo`, the one implementation) is an
  append-only table with key columns and value columns: each row is written, flushed and
  ``fsync``-ed; the header is written atomically; :meth:`ResumableCSV.finished_keys` tells a
  rerun what to skip. :func:`open_table` is the convenience constructor for experiments.
* :func:`write_manifest` writes ``manifest.json`` atomically: the command's arguments, the seed,
  versions of torch / sionna / numpy / semcom (and any extra packages), host information, start
  time and elapsed time. :class:`RunManifest` times a run and writes the manifest at start
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

from phy.montecarlo import ResumableCSV, format_value

__all__ = [
    "ResumableCSV",
    "format_value",
    "open_table",
    "read_rows",
    "package_versions",
    "host_info",
    "jsonable",
    "write_json_atomic",
    "write_benchmark",
    "check_result_settings",
    "write_manifest",
    "RunManifest",
    "DEFAULT_PACKAGES",
]

DEFAULT_PACKAGES = ("semcom", "torch", "sionna-no-rt", "sionna", "numpy", "scipy", "matplotlib")


def open_table(path: Union[str, os.PathLike], keys: Sequence[str], values: Sequence[str]) -> ResumableCSV:
    """A :class:`ResumableCSV` with columns ``keys + values`` keyed on ``keys``."""
    keys, values = list(keys), list(values)
    overlap = set(keys) & set(values)
    if overlap:
        raise ValueError(f"key and value columns must be disjoint, both contain {sorted(overlap)}")
    return ResumableCSV(path, keys + values, keys)


def read_rows(path: Union[str, os.PathLike]) -> List[Dict[str, str]]:
    """All rows of a result CSV as dicts of strings (no layout check; empty list if missing)."""
    import csv

    path = os.fspath(path)
    if not os.path.exists(path):
        return []
    with open(path, "r", newline="", encoding="utf-8") as fh:
        return [row for row in csv.DictReader(fh)]


def package_versions(packages: Iterable[str] = DEFAULT_PACKAGES) -> Dict[str, Optional[str]]:
    """Installed versions of ``packages`` (``None`` when not installed)."""
    out: Dict[str, Optional[str]] = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def host_info() -> Dict[str, Any]:
    """Host, platform, Python, CPU count and the accelerator if any."""
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
    """Best-effort conversion to JSON types (paths, tuples, tensors, numpy scalars, NaN -> None)."""
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
    """Write ``obj`` as indented JSON via a temporary file + ``fsync`` + ``os.replace``."""
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
    """
    import torch

    full = dict(result)
    full.setdefault("machine", {**host_info(), "torch": torch.__version__})
    full.setdefault("loadavg", list(os.getloadavg()) if hasattr(os, "getloadavg") else None)
    write_json_atomic(path, full)
    print(f"\nwrote {os.fspath(path)}")
    return os.fspath(path)


def check_result_settings(out_dir: Union[str, os.PathLike], settings: Mapping[str, Any], csv_name: str,
                          manifest_name: str = "manifest.json") -> None:
    """Raise ``ValueError`` if ``out_dir`` holds ``csv_name`` from a run whose manifest recorded other
    ``result_settings`` (resuming into it would mix two runs' rows); names each differing setting.

    Settings missing from the old manifest are not compared; without a manifest or a CSV there is
    nothing to resume and nothing is checked.
    """
    out_dir = os.fspath(out_dir)
    path = os.path.join(out_dir, manifest_name)
    if not (os.path.exists(path) and os.path.exists(os.path.join(out_dir, csv_name))):
        return
    try:
        with open(path, encoding="utf-8") as fh:
            old = (json.load(fh) or {}).get("result_settings") or {}
    except (OSError, ValueError):
        return
    new = jsonable(settings)
    diff = {k: (old.get(k), new[k]) for k in new if k in old and old[k] != new[k]}
    if diff:
        desc = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"{out_dir} holds results of a run with other settings ({desc}); resuming would mix "
                         "them. Use another --out or delete the old results")


def write_manifest(out_dir: Union[str, os.PathLike], *, args: Any = None, seed: Optional[int] = None,
                   elapsed_s: Optional[float] = None, command: Optional[str] = None,
                   extra: Optional[Mapping[str, Any]] = None, packages: Iterable[str] = DEFAULT_PACKAGES,
                   filename: str = "manifest.json") -> str:
    """Write ``out_dir/manifest.json`` and return its path.

    Keys: ``command``, ``argv``, ``args``, ``seed``, ``versions``, ``host``, ``written_at`` (UTC ISO
    time), ``elapsed_s`` and everything in ``extra``.
    """
    manifest: Dict[str, Any] = {
        "command": command,
        "argv": list(sys.argv),
        "args": jsonable(args) if args is not None else None,
        "seed": seed,
        "versions": package_versions(packages),
        "host": host_info(),
        "written_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": elapsed_s,
    }
    if extra:
        manifest.update(jsonable(dict(extra)))
    path = os.path.join(os.fspath(out_dir), filename)
    write_json_atomic(path, manifest)
    return path


class RunManifest:
    """Context manager that writes the manifest at start and end of a run, with elapsed time.

    ``update(**fields)`` adds fields (e.g. the number of resumed points) written at the end.
    On an exception the manifest is written with ``"status": "failed"`` and the error text.
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
