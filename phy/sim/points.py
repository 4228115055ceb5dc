"""One SNR point of a BER/BLER sweep: its seed, its result row, its stopping rule and its error counts.

* :func:`point_seed`: the seed of a point, derived from the master seed and the point's key, so a point's
  result does not depend on which points ran before it.
* :class:`PointResult`: one row of ``ber.csv`` (:data:`BER_COLUMNS`), with exact Clopper-Pearson intervals.
* The ``status`` values (:data:`STATUS_TARGET`, :data:`STATUS_BUDGET`, :data:`STATUS_NO_ERRORS`,
  :data:`STATUS_SKIPPED`) say why a point stopped.

Example
-------
>>> from phy.sim.points import point_seed
>>> point_seed(0, "ldpc5g", "awgn", "esno", 2.0) == point_seed(0, "ldpc5g", "awgn", "esno", 2)
True
"""
from __future__ import annotations

import hashlib
import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import (Any, Dict, List, Mapping, Optional, Tuple)

import torch

from phy.sim.intervals import clopper_pearson
from phy.sim.resultstore import format_value

__all__ = ["PointResult", "BER_COLUMNS", "BER_KEY_COLUMNS", "STATUS_TARGET", "STATUS_BUDGET", "STATUS_NO_ERRORS", "STATUS_SKIPPED", "point_seed"]


#: ``status`` of a point that stopped on its target number of errors.
STATUS_TARGET = "target_errors"
#: ``status`` of a point that stopped on its bit budget (``max_bits``).
STATUS_BUDGET = "max_bits"
#: ``status`` of a point whose whole budget saw no error.
STATUS_NO_ERRORS = "no_errors"
#: ``status`` of a point skipped after an error-free point at a lower SNR (early stop).
STATUS_SKIPPED = "skipped: no errors at previous point"

SNR_TYPES = ("esno", "ebno")


# --------------------------------------------------------------------------------------------
# Small pure helpers
# --------------------------------------------------------------------------------------------
def point_seed(seed: int, *parts: Any) -> int:
    """A 63-bit seed derived from ``seed`` and ``parts`` (hash of their canonical text).

    Example
    -------
    >>> point_seed(0, "ldpc5g", "awgn", "ebno", 2.0) == point_seed(0, "ldpc5g", "awgn", "ebno", 2)
    True
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}: {seed!r}")
    text = "|".join([str(int(seed))] + [
        format_value(float(p)) if isinstance(p, numbers.Real) and not isinstance(p, bool) else format_value(p)
        for p in parts
    ])
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
@dataclass(eq=False)
class PointResult:
    """One SNR point of one (scheme, channel) sweep; also one CSV row (see :data:`BER_COLUMNS`).

    ``ber``/``bler`` and the CI bounds are NaN for skipped points. CIs are 95 % Clopper-Pearson.

    Examples
    --------
    >>> from phy.sim import FunctionTrial, simulate_ber
    >>> trial = FunctionTrial(lambda b, e: (torch.zeros(b, 4), torch.zeros(b, 4)), k=4)
    >>> p = simulate_ber(trial, [3.0], batch_size=10, max_bits=40)[0]
    >>> p.esno_db, p.ber, p.bits, p.ber_ci_high > 0      # no error seen: BER 0, CI upper bound > 0
    (3.0, 0.0, 40, True)
    """

    scheme: str
    channel: str
    snr_db: float
    snr_type: str
    esno_db: float
    ebno_db: float
    ber: float
    bler: float
    bit_errors: int
    bits: int
    block_errors: int
    blocks: int
    ber_ci_low: float
    ber_ci_high: float
    bler_ci_low: float
    bler_ci_high: float
    seed: int
    status: str

    def to_row(self) -> Dict[str, Any]:
        return asdict(self)

    def __eq__(self, other) -> bool:
        """Equal when every CSV cell is equal (so NaN == NaN, as in the file)."""
        if not isinstance(other, PointResult):
            return NotImplemented
        return all(format_value(getattr(self, f.name)) == format_value(getattr(other, f.name))
                   for f in fields(self))

    __hash__ = None

    @classmethod
    def from_row(cls, row: Mapping[str, str]) -> "PointResult":
        """Parse a CSV row (strings) back into a result."""
        kw = {}
        for f in fields(cls):
            if f.name not in row:
                raise ValueError(f"CSV row lacks column {f.name!r}: {dict(row)}")
            v = row[f.name]
            try:
                if f.type in ("int", int):
                    kw[f.name] = int(v)
                elif f.type in ("float", float):
                    kw[f.name] = float(v) if v != "" else math.nan
                else:
                    kw[f.name] = v
            except (TypeError, ValueError):
                raise ValueError(f"CSV cell {f.name!r} must be {'an int' if f.type in ('int', int) else 'a number'}, "
                                 f"got {v!r}") from None
        for name in ("bit_errors", "bits", "block_errors", "blocks"):  # counts: what a run can have written
            if kw[name] < 0:
                raise ValueError(f"CSV cell {name}={kw[name]}: a count is >= 0; the row was not written by a run "
                                 "(repair or delete it)")
        for name in ("ber", "bler", "ber_ci_low", "ber_ci_high", "bler_ci_low", "bler_ci_high"):
            if not (math.isnan(kw[name]) or 0.0 <= kw[name] <= 1.0):
                raise ValueError(f"CSV cell {name}={kw[name]!r}: an error rate lies in [0, 1] (or is empty/nan)")
        return cls(**kw)

    @property
    def finished(self) -> bool:
        return self.status != STATUS_SKIPPED


#: The CSV columns of a BER sweep: the fields of :class:`PointResult`, in order.
BER_COLUMNS: Tuple[str, ...] = tuple(f.name for f in fields(PointResult))
#: The columns that identify a point (resuming a CSV matches rows on them).
BER_KEY_COLUMNS: Tuple[str, ...] = ("scheme", "channel", "snr_type", "snr_db")


# --------------------------------------------------------------------------------------------
def _check_pos_int(v, name):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
        raise ValueError(f"{name} must be a positive int, got {v!r}")


def _check_pos_number(v, name):
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (v > 0) or not math.isfinite(v):
        raise ValueError(f"{name} must be a positive finite number, got {v!r}")


def _check_pair(bits, bits_hat) -> None:
    if not isinstance(bits, torch.Tensor) or not isinstance(bits_hat, torch.Tensor):
        raise TypeError(f"a trial must return two tensors (bits, bits_hat), got "
                        f"{type(bits).__name__}, {type(bits_hat).__name__}")
    if bits.shape != bits_hat.shape:
        raise ValueError(f"bits_hat shape {tuple(bits_hat.shape)} must equal bits shape {tuple(bits.shape)}")
    if bits.dim() < 1 or bits.shape[-1] == 0:
        raise ValueError(f"bits must be [..., k] with k > 0, got shape {tuple(bits.shape)}")


def _check_blocks(bits, batch_size: int, k: int, lead: int = 0) -> None:
    """A trial returned ``batch_size`` blocks of ``k`` bits (dim ``lead`` counts blocks): more blocks or
    other widths would be counted silently (a wrong BER)."""
    if isinstance(bits, torch.Tensor) and bits.dim() > lead and (
            bits.shape[lead] != batch_size or bits.shape[-1] != k):
        want = ("[S, " if lead else "[") + f"batch_size={batch_size}, ..., k={k}]"
        raise ValueError(f"the trial returned bits of shape {tuple(bits.shape)}, expected {want} (trial.k = {k})")


def _count_errors(bits: torch.Tensor, bits_hat: torch.Tensor) -> Tuple[int, int, int, int]:
    """(bit_errors, bits, block_errors, blocks) of one batch; one device sync."""
    _check_pair(bits, bits_hat)
    err = bits_hat.to(bits.dtype) != bits
    counts = torch.stack([err.sum(), err.any(dim=-1).sum()]).tolist()
    n_bits = err.numel()
    return int(counts[0]), n_bits, int(counts[1]), n_bits // bits.shape[-1]


def _count_errors_batched(bits: torch.Tensor, bits_hat: torch.Tensor, num_points: int
                          ) -> List[Tuple[int, int, int, int]]:
    """Per SNR slice ``s`` of ``[S, batch, ..., k]`` outputs: (bit_errors, bits, block_errors,
    blocks); one device sync for all slices."""
    _check_pair(bits, bits_hat)
    if bits.dim() < 2 or bits.shape[0] != num_points or bits.numel() == 0:
        raise ValueError(f"a batched trial must return bits of shape [S={num_points}, batch_size, ..., k] "
                         f"(non-empty), got shape {tuple(bits.shape)}")
    k = bits.shape[-1]
    err = (bits_hat.to(bits.dtype) != bits).reshape(num_points, -1, k)
    counts = torch.stack([err.sum(dim=(1, 2)), err.any(dim=-1).sum(dim=1)]).tolist()
    n_bits = err.shape[1] * k
    return [(int(counts[0][s]), n_bits, int(counts[1][s]), err.shape[1]) for s in range(num_points)]


def _stop_status(bit_err: int, n_bits: int, blk_err: int, target_errors: Optional[int],
                 target_block_errors: Optional[int], max_bits: int) -> Optional[str]:
    """The status a point ends with after these counts, or ``None`` while it must go on."""
    if target_errors is not None and bit_err >= target_errors:
        return STATUS_TARGET
    if target_block_errors is not None and blk_err >= target_block_errors:
        return STATUS_TARGET
    if n_bits >= max_bits:
        return STATUS_NO_ERRORS if bit_err == 0 else STATUS_BUDGET
    return None


def _counts_result(bit_err: int, n_bits: int, blk_err: int, n_blk: int, esno: float, pseed: int,
                   status: str) -> PointResult:
    """An unlabelled result (scheme, channel, snr are filled in by :func:`simulate_ber`)."""
    ber_lo, ber_hi = clopper_pearson(bit_err, n_bits)
    bler_lo, bler_hi = clopper_pearson(blk_err, n_blk)
    return PointResult("", "", math.nan, "", esno, math.nan, bit_err / n_bits, blk_err / n_blk, bit_err,
                       n_bits, blk_err, n_blk, ber_lo, ber_hi, bler_lo, bler_hi, pseed, status)
