"""Multi-antenna receivers and transmitters, and the equalisers every link uses.

================  =====================================================================================
``detection``     MRC and soft-output MIMO detectors (ZF, LMMSE, K-best, ML), closed-form error rates
``equalization``  :class:`Equalizer`: ZF/MMSE with perfect, LS-pilot or noisy CSI (SISO and per stream)
``zf_mmse``       the ZF/MMSE formulas with known coefficients (pure functions)
``csi``           LS pilots in the data's frame (same oscillator), the LMMSE receiver matched to their error
``precoding``     SVD precoding with transmitter CSI and MSE-optimal power over the eigenmodes
================  =====================================================================================
"""
from .detection import DETECTORS, mrc, mimo_equalize, MIMODetector, diversity_bpsk_ber, mrc_qpsk_ber, zf_qpsk_ber
from .equalization import Equalizer, equalize, combine_repetitions, EQUALIZERS
from .csi import estimate_csi, CSI_MODES
from .csi import (ls_pilot_uses, ls_error_variance, estimate_mimo_csi, receiver_csi, channel_prior, lmmse_from_ls,
                  pilot_matrix, send_and_estimate)
from .precoding import mmse_power_allocation, eigenmode_mse, svd_eigenmodes, svd_transmit, PRECODINGS

__all__ = [
    "DETECTORS",
    "mrc",
    "mimo_equalize",
    "MIMODetector",
    "diversity_bpsk_ber",
    "mrc_qpsk_ber",
    "zf_qpsk_ber",
    "Equalizer",
    "equalize",
    "estimate_csi",
    "combine_repetitions",
    "EQUALIZERS",
    "CSI_MODES",
    "ls_pilot_uses",
    "ls_error_variance",
    "estimate_mimo_csi",
    "receiver_csi",
    "channel_prior",
    "lmmse_from_ls",
    "pilot_matrix",
    "send_and_estimate",
    "mmse_power_allocation",
    "eigenmode_mse",
    "svd_eigenmodes",
    "svd_transmit",
    "PRECODINGS",
]
