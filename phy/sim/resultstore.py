"""The resumable result store: one CSV row per finished point, safe against interruption.

* :func:`format_value`: the canonical text of a CSV cell (floats as their shortest round-trip
  ``repr``), used for the cells *and* for matching keys, so a resumed run finds its rows.
* :class:`ResumableCSV`: append-only rows (write + flush + fsync per row, header written
  atomically), the finished keys skipped on the next run, a torn last row cut whole, duplicate keys
  and foreign headers refused. Every study writes through it (:mod:`phy.sim.montecarlo`,
  :mod:`experiments.core.results`).
* :func:`folder_lock`: one writer per results folder (an advisory ``fcntl.flock`` on ``.semcom.lock`` in
  the folder, released on exit and by the kernel when the holder dies, so a stale lock never blocks).

Example
-------
>>> format_value(0.1), format_value(None), format_value(True)
('0.1', '', 'true')
"""
from __future__ import annotations

import contextlib
import csv
import io
import numbers
import os
import threading
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple, Union

import torch

#: The largest CSV cell read [characters] (Python's csv default field limit).
MAX_CELL = csv.field_size_limit()

__all__ = ["format_value", "ResumableCSV", "MAX_CELL", "folder_lock", "FolderBusyError", "LOCK_NAME"]


def format_value(value: Any) -> str:
    """Canonical text of a CSV cell: shortest round-trip ``repr`` for floats (``nan``, ``inf``),
    ``str`` for ints and strings, ``""`` for ``None``. Used for cells *and* for key matching.

    Examples
    --------
    >>> format_value(0.1), format_value(float("nan")), format_value(3), format_value(None)
    ('0.1', 'nan', '3', '')
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return format_value(value.item())
    return str(value)


def _key_cell(text: str) -> str:
    """How a key cell is compared: a number by its value (``0``, ``0.0`` and ``0e0`` are one key, as a
    spreadsheet may rewrite them), any other text as it is."""
    t = text.strip()
    if not t or not (t[0].isdigit() or t[0] in "+-." or t[:3].lower() in ("nan", "inf")):
        return text
    from decimal import Decimal, InvalidOperation

    try:
        d = Decimal(t)
    except (InvalidOperation, ValueError):
        return text
    if d.is_nan():
        return "#nan"
    if d.is_infinite():
        return "#-inf" if d < 0 else "#inf"
    return "#0" if d == 0 else "#" + str(d.normalize())


def _norm_key(key: Sequence[str]) -> Tuple[str, ...]:
    return tuple(_key_cell(str(c)) for c in key)


class _KeySet(set):
    """The finished key tuples (as written in the file); ``in`` compares numbers by value."""

    def __init__(self, keys=()):
        super().__init__(keys)
        self._norm = {_norm_key(k) for k in self}

    def __contains__(self, key) -> bool:
        return isinstance(key, tuple) and _norm_key(key) in self._norm

    def __repr__(self) -> str:
        return repr(set(self))


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ResumableCSV:
    """Append-only CSV of result rows, resumable after an interruption.

    * The header is written atomically (temporary file + ``fsync`` + ``os.replace``).
    * Each :meth:`append` writes one full line, flushes and calls ``fsync``, so a crash loses at most
      the row being written; a torn last record (no newline outside a quoted field after it) is
      cut off whole when the file is opened again.
    * A file with two rows of one key, or rows with missing or extra cells, is refused (``ValueError``);
      :meth:`append` writes a key once.
    * :meth:`finished_keys` gives the key tuples already present (cells compared as
      :func:`format_value` text, numbers by value: ``0`` and ``0.0`` are one key), so a rerun can skip them.
    * A cell larger than :data:`MAX_CELL` characters, or bytes that are not UTF-8, make the file refused
      (``ValueError``), not a traceback.
    * Opening an existing file whose header differs from ``columns`` raises ``ValueError``
      (never silently mixes layouts), with one exception: *derived* columns (``derived``), which are
      computed from the other cells of a row. :meth:`append` fills a derived cell the row does not
      bring, and a file written before (some of) the derived columns existed (its header is ``columns``
      without them, in order) is rewritten once, atomically, with them computed for every stored row.

    Parameters
    ----------
    path : str or PathLike
    columns : sequence of str
        All columns, in file order.
    key_columns : sequence of str
        The subset of ``columns`` that identifies a row (e.g. scheme, channel, snr).
    derived : mapping column -> callable, optional
        Columns of ``columns`` (not keys) whose value is ``fn(row)``, ``row`` a mapping of the other
        cells (strings when read from the file, values when appended); ``None`` is an empty cell.

    Example
    -------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> t = ResumableCSV(os.path.join(d, "r.csv"), ["snr", "ber"], ["snr"])
    >>> t.append({"snr": 0.0, "ber": 0.1})
    >>> ResumableCSV(os.path.join(d, "r.csv"), ["snr", "ber"], ["snr"]).finished_keys()
    {('0.0',)}

    A derived column, and a file from before it existed:

    >>> t = ResumableCSV(os.path.join(d, "r.csv"), ["snr", "ber", "half"], ["snr"],
    ...                  derived={"half": lambda r: float(r["ber"]) / 2})
    >>> t.append({"snr": 1.0, "ber": 0.2})
    >>> [(r["snr"], r["half"]) for r in t.rows()]
    [('0.0', '0.05'), ('1.0', '0.1')]
    """

    def __init__(self, path: Union[str, os.PathLike], columns: Sequence[str], key_columns: Sequence[str],
                 derived: Optional[Mapping[str, Callable[[Mapping[str, Any]], Any]]] = None):
        columns = tuple(columns)
        key_columns = tuple(key_columns)
        if not columns or len(set(columns)) != len(columns):
            raise ValueError(f"columns must be non-empty and unique, got {columns}")
        missing = [c for c in key_columns if c not in columns]
        if missing or not key_columns:
            raise ValueError(f"key_columns must be a non-empty subset of columns {columns}, got {key_columns}")
        derived = dict(derived or {})
        bad = [c for c in derived if c not in columns or c in key_columns or not callable(derived[c])]
        if bad:
            raise ValueError(f"derived must map value columns of {columns} to callables, got {bad}")
        self.path = os.fspath(path)
        self.columns = columns
        self.key_columns = key_columns
        self.derived = derived
        self._rows: List[Dict[str, str]] = []
        self._keys: Set[Tuple[str, ...]] = set()
        self._open()

    # -- opening -------------------------------------------------------------------------
    def _open(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        if os.path.exists(self.path) and os.path.getsize(self.path) > 0:
            self._repair_torn_tail()
            with open(self.path, "r", newline="", encoding="utf-8") as fh:
                reader = csv.reader(fh)
                try:
                    header = next(reader, None)
                    raw = [r for r in reader if r] if header is not None else []
                except (csv.Error, UnicodeDecodeError) as exc:
                    raise ValueError(f"{self.path} is not a readable result table ({' '.join(str(exc).split())}; "
                                     f"a cell may hold at most {MAX_CELL} characters); repair or delete it") from None
                if header is None:
                    rows = []
                else:
                    # written before some derived columns existed: the others, in order
                    missing = [c for c in self.columns if c not in header]
                    upgrade = bool(missing) and set(missing) <= set(self.derived) and tuple(header) == tuple(
                        c for c in self.columns if c not in missing)
                    if tuple(header) != self.columns and not upgrade:
                        raise ValueError(
                            f"{self.path} has columns {header}, expected {list(self.columns)}; "
                            "write to a new file or delete the old one"
                        )
                    bad = [r for r in raw if len(r) != len(header)]
                    if bad:
                        raise ValueError(f"{self.path} has {len(bad)} malformed row(s) (not {len(header)} "
                                         f"cells), e.g. {bad[0]}; repair or delete the file")
                    rows = [dict(zip(header, r)) for r in raw]
            if header is not None:
                seen: Set[Tuple[str, ...]] = set()
                for r in rows:
                    key = _norm_key(self.key_of(r))
                    if key in seen:
                        raise ValueError(f"{self.path} holds two rows with the key {dict(zip(self.key_columns, self.key_of(r)))}"
                                         "; it is not a file this code wrote: repair or delete it")
                    seen.add(key)
                self._rows, self._keys = rows, seen
                if tuple(header) != self.columns:   # written before the derived columns existed
                    self._rewrite([self._with_derived(r, as_text=True) for r in rows])
                return
        # new (or empty) file: atomic header
        tmp = f"{self.path}.tmp.{os.getpid()}"
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            fh.write(self._line(self.columns))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(directory)
        self._rows, self._keys = [], set()

    def _repair_torn_tail(self) -> None:
        """Cut a torn last record: after the last newline that lies outside a quoted field (a cell may
        hold a newline, e.g. a caption), so a record torn inside such a cell goes whole."""
        with open(self.path, "rb+") as fh:
            data = fh.read()
            cut, quotes, pos = 0, 0, 0
            for line in data.split(b"\n")[:-1]:  # every piece that a newline ends
                quotes += line.count(b'"')
                pos += len(line) + 1
                if quotes % 2 == 0:  # this newline is outside quotes: a record ends here
                    cut = pos
            if cut == len(data):
                return
            fh.truncate(cut)
            fh.flush()
            os.fsync(fh.fileno())

    @staticmethod
    def _line(cells: Iterable[str]) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(list(cells))
        return buf.getvalue()

    # -- reading -------------------------------------------------------------------------
    def rows(self) -> List[Dict[str, str]]:
        """All rows so far, as dicts of strings (file order)."""
        return [dict(r) for r in self._rows]

    def key_of(self, row: Mapping[str, Any]) -> Tuple[str, ...]:
        """The canonical key tuple of a row (values or already formatted strings)."""
        try:
            return tuple(format_value(row[c]) for c in self.key_columns)
        except KeyError as exc:
            raise ValueError(f"row lacks key column {exc.args[0]!r}; key columns are {self.key_columns}") from None

    def finished_keys(self) -> Set[Tuple[str, ...]]:
        """The key tuples of the rows (the file's text); ``key in finished_keys()`` compares numbers by value."""
        return _KeySet(self.key_of(r) for r in self._rows)

    def get(self, key: Sequence[Any]) -> Optional[Dict[str, str]]:
        """The row with ``key`` (values are formatted with :func:`format_value`; numbers compared by value),
        or ``None``."""
        k = _norm_key(format_value(v) for v in key)
        for r in self._rows:
            if _norm_key(self.key_of(r)) == k:
                return dict(r)
        return None

    def __len__(self) -> int:
        return len(self._rows)

    # -- writing -------------------------------------------------------------------------
    def _with_derived(self, row: Mapping[str, Any], as_text: bool = False) -> Dict[str, Any]:
        """``row`` with the derived cells it lacks computed (as :func:`format_value` text if ``as_text``)."""
        out = dict(row)
        for column, fn in self.derived.items():
            if column not in out:
                value = fn(row)
                out[column] = format_value(value) if as_text else value
        return out

    def _rewrite(self, rows: List[Dict[str, str]]) -> None:
        """Replace the file by ``rows`` atomically (temporary file, fsync, rename)."""
        tmp = f"{self.path}.tmp.{os.getpid()}"
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            fh.write(self._line(self.columns))
            for r in rows:
                fh.write(self._line(r[c] for c in self.columns))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(os.path.dirname(os.path.abspath(self.path)))
        self._rows, self._keys = rows, {_norm_key(self.key_of(r)) for r in rows}

    def discard(self, key: Sequence[Any]) -> bool:
        """Remove the row with ``key`` (atomic rewrite: temp file, fsync, rename); ``False`` if absent.

        Used to recompute a row that no longer holds (a point skipped by early stop, resumed with
        early stop off); every other row is kept byte for byte."""
        k = _norm_key(format_value(v) for v in key)
        keep = [r for r in self._rows if _norm_key(self.key_of(r)) != k]
        if len(keep) == len(self._rows):
            return False
        self._rewrite(keep)
        return True

    def reorder(self, keys: Iterable[Sequence[Any]]) -> bool:
        """Put the rows in the order of ``keys`` (key tuples; values are formatted with
        :func:`format_value`); rows whose key is not listed follow, in file order. Rows are kept byte
        for byte; the rewrite is atomic and happens only when the order changes. Returns whether the
        file was rewritten.

        A parallel run appends rows as points finish (each row durable at once) and calls this at the
        end, so its file equals the one a sequential run writes in ``keys`` order."""
        rank: Dict[Tuple[str, ...], int] = {}
        for key in keys:
            rank.setdefault(_norm_key(format_value(v) for v in key), len(rank))
        last = len(rank)
        ordered = sorted(self._rows, key=lambda r: rank.get(_norm_key(self.key_of(r)), last))  # stable: unlisted keep order
        if all(a is b for a, b in zip(ordered, self._rows)):
            return False
        self._rewrite(ordered)
        return True

    def append(self, row: Mapping[str, Any]) -> None:
        """Append one row (a mapping with exactly :attr:`columns` and a key not yet in the file), flush
        and fsync. A derived column the row lacks is computed from it."""
        row = self._with_derived(row)
        extra = set(row) - set(self.columns)
        missing = [c for c in self.columns if c not in row]
        if extra or missing:
            raise ValueError(f"row must have exactly the columns {list(self.columns)}; "
                             f"missing {missing}, unexpected {sorted(extra)}")
        key = self.key_of(row)
        if _norm_key(key) in self._keys:
            raise ValueError(f"{self.path} already holds a row with the key {dict(zip(self.key_columns, key))}; "
                             "a key is written once (discard() it first to replace it)")
        cells = [format_value(row[c]) for c in self.columns]
        with open(self.path, "a", newline="", encoding="utf-8") as fh:
            fh.write(self._line(cells))
            fh.flush()
            os.fsync(fh.fileno())
        self._rows.append(dict(zip(self.columns, cells)))
        self._keys.add(_norm_key(key))


# --------------------------------------------------------------------------------------------
# One writer per results folder
# --------------------------------------------------------------------------------------------
#: The lock file a writer holds (``fcntl.flock``) in the folder it writes; removed when it is released.
LOCK_NAME = ".semcom.lock"
_held: Dict[str, List[Any]] = {}  # real path -> [fd, count]: this process's locks (re-entrant)
_held_guard = threading.Lock()


class FolderBusyError(ValueError):
    """Another live process holds the folder's lock: a second writer would mix its rows with the first's.

    Examples
    --------
    >>> issubclass(FolderBusyError, ValueError)
    True
    """


def _holder_pid(path: str) -> str:
    for _ in range(20):  # the holder writes its PID right after taking the lock
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read(64).strip()
        except OSError:
            text = ""
        if text:
            return text.split()[0]
        import time

        time.sleep(0.01)
    return "unknown"


def _acquire(folder: str) -> int:
    import fcntl

    path = os.path.join(folder, LOCK_NAME)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise FolderBusyError(
                f"{folder} is being written by another run (PID {_holder_pid(path)}, lock {path}); one writer per "
                "results folder: wait for it to finish, stop it, or use another --out") from None
        try:  # the lock of a file a finishing holder just removed guards nothing: take the new file's
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return fd


def _release(folder: str, fd: int) -> None:
    try:  # removed while still held, so no other process can lock the old file after this one
        os.unlink(os.path.join(folder, LOCK_NAME))
    except OSError:
        pass
    os.close(fd)


@contextlib.contextmanager
def folder_lock(folder: Union[str, os.PathLike]):
    """Hold ``folder``'s writer lock inside the block (the folder is created if needed).

    An advisory ``fcntl.flock`` on ``folder/.semcom.lock``, which holds the holder's PID. A second process
    gets :class:`FolderBusyError` (a ``ValueError``) at once, naming that PID; the lock is released (and its
    file removed) when the block ends, and by the kernel when the holder dies, so the lock of a killed run
    never blocks the next one. Re-entrant within a process (a command that runs another into the same
    folder). Where ``fcntl`` is missing (Windows) the block runs without a lock.

    Examples
    --------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> with folder_lock(d):
    ...     with folder_lock(d):                    # the same process again: fine
    ...         os.path.exists(os.path.join(d, LOCK_NAME))
    True
    >>> os.listdir(d)                               # released: nothing left behind
    []
    """
    try:
        import fcntl  # noqa: F401
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    key = os.path.realpath(folder)
    with _held_guard:
        entry = _held.get(key)
        if entry is None:
            entry = _held[key] = [_acquire(folder), 0]
        entry[1] += 1
    try:
        yield
    finally:
        with _held_guard:
            entry[1] -= 1
            if entry[1] == 0:
                del _held[key]
                _release(folder, entry[0])
