"""How a scheme's symbols occupy the channel, shared by the scheme families and the comparison: whether the
channel is an OFDM resource grid and how many data symbols a budget of its whole slots carries, the streams a
multi-antenna channel takes per use, the data / pilot split of the uses, how many examples one codeword spans,
and the skipped plans of schemes that do not run on a grid or a MIMO channel. Nothing here is public API.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

from experiments.schemes.protocol import Plan

__all__ = []


def _ofdm_grid(channel):
    """The channel if it is a resource grid (:class:`phy.ofdm.channel.OFDMChannel`: a ``ledger``), else ``None``."""
    return channel if hasattr(channel, "ledger") and hasattr(channel, "send_symbols") else None


def _symbol_budget(budget: int, grid) -> int:
    """Data symbols (all streams) a budget of ``budget`` channel uses carries: itself on a flat channel; on an
    OFDM grid, those of the whole slots (data + pilot + cyclic-prefix uses) that fit the budget."""
    if grid is None:
        return budget
    per_slot = grid.ledger(1)
    return (budget // per_slot.channel_uses) * grid.symbols_per_slot


#: A codeword spans the fewest whole examples whose channel uses (data symbols on a grid) reach this many: the
#: uses of a 1024-bit QPSK codeword. One rule for the ideal code and for every MCS of the 5G LDPC scheme (whose
#: MCS below 0 repeat that codeword r times, over r times as many examples).
_MIN_CODEWORD_USES = 512


def _codeword_span(uses_per_example: int) -> int:
    """Examples per codeword: ``ceil(_MIN_CODEWORD_USES / uses_per_example)`` (at least 1)."""
    return max(1, math.ceil(_MIN_CODEWORD_USES / max(1, int(uses_per_example))))


def _streams(channel, precoding: Optional[str] = None) -> int:
    """Complex symbols a link puts in one channel use of ``channel``: ``num_tx`` (spatial multiplexing) on a
    MIMO channel, ``min(num_tx, num_rx)`` eigenmodes with SVD precoding, else 1."""
    if not getattr(channel, "is_mimo", False):
        return 1
    return min(channel.num_tx, channel.num_rx) if precoding else int(channel.num_tx)


def _split_uses(channel, uses: int) -> Tuple[int, int]:
    """(data uses, pilot uses) of ``uses`` channel uses: an OFDM grid's ledger (whole slots), else all data."""
    grid = _ofdm_grid(channel)
    if grid is None or not uses:
        return uses, 0
    slot = grid.ledger(1)
    slots = uses // slot.channel_uses
    return slots * slot.data_uses, slots * slot.pilot_uses


def _mimo_skip(scheme, channel) -> Optional[Plan]:
    """A skipped plan for a scheme that does not handle a multi-antenna channel (else ``None``)."""
    if not getattr(channel, "is_mimo", False) or getattr(scheme, "supports_mimo", False):
        return None
    why = (f"skipped: {scheme.name} is single-antenna (one stream per channel use); not run on a "
           f"{channel.num_rx} x {channel.num_tx} MIMO channel")
    return Plan(0, False, note=why, status=why)


def _grid_skip(scheme, channel) -> Optional[Plan]:
    """A skipped plan for a scheme that does not run over an OFDM grid (else ``None``): those with
    ``supports_grid`` do -- :class:`OptaScheme`, :class:`AnalogScheme` without precoding, :class:`AnalogKLTScheme`,
    :class:`QuantizedDigitalScheme`, :class:`IdealQuantizedScheme` (``quant-ideal``, ``transform-ideal``),
    :class:`TransformAMCScheme` and :class:`TextScheme` (single-antenna ones only on a 1 x 1 grid:
    :func:`_mimo_skip`)."""
    if _ofdm_grid(channel) is None:
        return None
    if getattr(scheme, "supports_grid", False):
        return None
    why = (f"skipped: {scheme.name} is not implemented over an OFDM grid (opta, analog, analog-zf, analog-mmse, "
           "analog-klt, quant-<code>-<mod>, quant-ideal, transform-ideal, transform-ldpc5g-amc and ascii-* are; "
           "analog-svd needs CSIT, which the grid's receiver-side estimation does not give)")
    return Plan(0, False, note=why, status=why)
