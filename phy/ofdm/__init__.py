"""OFDM resource grids over TDL, CDL, Rayleigh or AWGN: pilots, LMMSE, LS or perfect CSI, LMMSE/ZF equalisation.

===============  ===========================================================================================
``channel``      :class:`OFDMChannel`, the ``ofdm(...)`` channel spec, its ledger of data, pilot and CP uses
``estimation``   joint time-frequency LMMSE estimation; the per-RE error variance of interpolated LS
``impairments``  phase noise and CFO on the grid's time samples (exact inter-carrier interference)
===============  ===========================================================================================
"""
from .channel import OFDM_MODELS, OFDM_EQUALIZERS, pilot_symbol_indices, OFDMLedger, OFDMOutput, OFDMChannel
from .estimation import OFDM_ESTIMATORS, GridLMMSE, grid_covariances, interpolation_weights, ls_grid_error_variance
from .impairments import grid_sample_rate, apply_grid_phase, impair_grid

__all__ = [
    "OFDM_MODELS",
    "OFDM_EQUALIZERS",
    "pilot_symbol_indices",
    "OFDMLedger",
    "OFDMOutput",
    "OFDMChannel",
    "OFDM_ESTIMATORS",
    "GridLMMSE",
    "grid_covariances",
    "interpolation_weights",
    "ls_grid_error_variance",
    "grid_sample_rate",
    "apply_grid_phase",
    "impair_grid",
]
