"""numba's thread pool follows torch's thread count (one knob for every CPU kernel of the package).

numba's OpenMP threading layer sets the process-wide OpenMP thread count, which torch reads too; so
:func:`numba_threads` sets numba to ``torch.get_num_threads()`` for the duration of a kernel call and
then restores torch's own setting if numba changed it.

Example
-------
>>> import torch
>>> n = torch.get_num_threads()
>>> with numba_threads() as used:
...     pass
>>> used == max(1, min(n, numba_max_threads())), torch.get_num_threads() == n
(True, True)
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

__all__ = ["numba_threads", "numba_max_threads"]


def numba_max_threads() -> int:
    """The size of numba's thread pool (``NUMBA_NUM_THREADS``; 1 without numba).

    Examples
    --------
    >>> numba_max_threads() >= 1
    True
    """
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is optional
        return 1
    return int(numba.config.NUMBA_NUM_THREADS)


@contextlib.contextmanager
def numba_threads() -> Iterator[int]:
    """Run numba kernels with torch's thread count; yields the number of threads used.

    Examples
    --------
    >>> with numba_threads() as n:
    ...     n == min(torch.get_num_threads(), numba_max_threads())
    True
    """
    import numba

    threads = torch.get_num_threads()
    used = max(1, min(threads, numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(used)
    try:
        yield used
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
