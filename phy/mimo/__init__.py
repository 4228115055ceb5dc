"""Multi-antenna receivers and transmitters, and the equalisers every link uses.

================  =====================================================================================
``detection``     MRC and soft-output MIMO detectors (ZF, LMMSE, K-best, ML), closed-form error rates
``equalization``  :class:`Equalizer`: ZF/MMSE with perfect, LS-pilot or noisy CSI (SISO and per stream)
``zf_mmse``       the ZF/MMSE formulas with known coefficients (pure functions)
``csi``           least-squares MIMO CSI from orthogonal pilots, charged to the ledger
``precoding``     SVD precoding with transmitter CSI and MSE-optimal power over the eigenmodes
================  =====================================================================================
"""
from .detection import DETECTORS, mrc, mimo_equalize, MIMODetector, diversity_bpsk_ber, mrc_qpsk_ber, zf_qpsk_ber
from .equalization import Equalizer, equalize, estimate_csi, combine_repetitions, EQUALIZERS, CSI_MODES
from .csi import ls_pilot_uses, ls_error_variance, estimate_mimo_csi, receiver_csi
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
    "mmse_power_allocation",
    "eigenmode_mse",
    "svd_eigenmodes",
    "svd_transmit",
    "PRECODINGS",
]
