"""Memory estimates before large allocations: refuse a run that cannot fit, with the numbers.

Code that is about to allocate in proportion to a user's parameters (a maximum-likelihood detector's
candidate table, an OFDM grid's channel, a model's weights, a measurement buffer) estimates the bytes first
and calls :func:`check_memory`, which raises :class:`InsufficientMemoryError` (a ``ValueError``: one error line
and exit status 2 on the command line) naming the estimate and the memory this machine has available, instead
of starting an allocation that fails after minutes or takes the machine down.

The available memory is ``psutil.virtual_memory().available`` where psutil is installed, else ``MemAvailable``
of ``/proc/meminfo``; where neither exists nothing is refused. ``SEMCOM_MEMORY_LIMIT`` (bytes, e.g. ``4e9``)
caps it (tests, shared machines).

Example
-------
>>> check_memory(1024, "a small buffer")                 # fits anywhere
>>> format_bytes(3 * 2 ** 30)
'3.0 GiB'
"""
from __future__ import annotations

import math
import os
from typing import Optional

__all__ = ["InsufficientMemoryError", "available_memory", "check_memory", "format_bytes", "USABLE_FRACTION"]

#: The share of the available memory one allocation may take (the rest is for everything else).
USABLE_FRACTION = 0.8


class InsufficientMemoryError(ValueError):
    """A run would need more memory than this machine has available.

    Examples
    --------
    >>> issubclass(InsufficientMemoryError, ValueError)
    True
    """


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units.

    Examples
    --------
    >>> format_bytes(512), format_bytes(1.5 * 2 ** 20), format_bytes(2 ** 70)
    ('512 B', '1.5 MiB', '1024.0 EiB')
    """
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EiB"


def available_memory() -> Optional[int]:
    """Bytes of memory available to a new allocation (``None`` when unknown).

    Examples
    --------
    >>> m = available_memory()
    >>> m is None or m > 0
    True
    """
    limit = os.environ.get("SEMCOM_MEMORY_LIMIT")
    cap = None
    if limit:
        try:
            cap = int(float(limit))
        except ValueError:
            cap = None
    avail = None
    try:
        import psutil

        avail = int(psutil.virtual_memory().available)
    except Exception:  # psutil missing or failing: the kernel's own estimate
        try:
            with open("/proc/meminfo", encoding="ascii") as fh:
                for line in fh:
                    if line.startswith("MemAvailable:"):
                        avail = int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError, IndexError):
            avail = None
    if cap is not None:
        avail = cap if avail is None else min(avail, cap)
    return avail


def check_memory(nbytes: float, what: str, hint: str = "") -> None:
    """Raise :class:`InsufficientMemoryError` when ``nbytes`` (an estimate) exceeds :data:`USABLE_FRACTION` of
    the available memory; the message names ``what``, the estimate, the available memory and ``hint``.

    Examples
    --------
    >>> check_memory(2 ** 80, "a 2^80-byte table", hint="use fewer antennas")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    phy.utils.memory.InsufficientMemoryError: a 2^80-byte table needs about 2^80 bytes, more than...
    """
    avail = available_memory()
    if avail is None or nbytes <= USABLE_FRACTION * avail:
        return
    need = format_bytes(nbytes) if nbytes < 2 ** 60 else f"2^{math.log2(nbytes):.0f} bytes"
    raise InsufficientMemoryError(f"{what} needs about {need}, more than this machine can give it "
                                  f"({format_bytes(avail)} available){'; ' + hint if hint else ''}")

