"""OFDM resource grids over TDL, CDL, Rayleigh or AWGN: pilots, LS or perfect CSI, LMMSE/ZF equalisation.

===============  ===========================================================================================
``channel``      :class:`OFDMChannel`, the ``ofdm(...)`` channel spec, its ledger of data, pilot and CP uses
``impairments``  phase noise and CFO on the grid's time samples (exact inter-carrier interference)
===============  ===========================================================================================
"""
from .channel import OFDM_MODELS, OFDM_EQUALIZERS, pilot_symbol_indices, OFDMLedger, OFDMOutput, OFDMChannel
from .impairments import grid_sample_rate, apply_grid_phase, impair_grid

__all__ = [
    "OFDM_MODELS",
    "OFDM_EQUALIZERS",
    "pilot_symbol_indices",
    "OFDMLedger",
    "OFDMOutput",
    "OFDMChannel",
    "grid_sample_rate",
    "apply_grid_phase",
    "impair_grid",
]
