"""Square Gray QAM names and sizes (shared by :mod:`phy.mapping.modulation` and :mod:`phy.mapping.qam_kernels`).

>>> bits_per_symbol("16-QAM"), _canonical("16-QAM")
(4, '16qam')
"""
from __future__ import annotations

from typing import Dict

__all__ = ["MODULATIONS", "bits_per_symbol"]

#: Modulation name -> bits per symbol.
MODULATIONS: Dict[str, int] = {"qpsk": 2, "16qam": 4, "64qam": 6, "256qam": 8}

def bits_per_symbol(modulation: str) -> int:
    """Bits per symbol of a modulation name (``"qpsk"``, ``"16qam"``, ``"64qam"``, ``"256qam"``).

    Examples
    --------
    >>> bits_per_symbol("64qam")
    6
    """
    if not isinstance(modulation, str):
        raise TypeError(f"modulation must be a name (str), got {type(modulation).__name__}: {modulation!r}")
    key = modulation.lower().replace("-", "").replace("_", "")
    if key not in MODULATIONS:
        raise ValueError(f"unknown modulation {modulation!r}; expected one of {sorted(MODULATIONS)}")
    return MODULATIONS[key]


def _canonical(modulation: str) -> str:
    bits_per_symbol(modulation)
    return modulation.lower().replace("-", "").replace("_", "")
