"""Gray square QAM: names and sizes, Sionna's mapper and demapper, and compiled PAM demapping kernels.

==================  =====================================================================================
``constellations``  modulation names and bits per symbol
``modulation``      :class:`QAM` (map, APP/max-log demap), closed-form uncoded BER over AWGN and Rayleigh
``qam_kernels``     compiled CPU kernels: scrambled mapping, exact APP and max-log demapping (not API)
==================  =====================================================================================
"""
from .modulation import (
    MODULATIONS, bits_per_symbol, QAM, qam_ber_awgn, qam_ber_awgn_approx, qam_ber_rayleigh, uncoded_ber,
    sionna_device,
)

__all__ = [
    "MODULATIONS",
    "bits_per_symbol",
    "QAM",
    "qam_ber_awgn",
    "qam_ber_awgn_approx",
    "qam_ber_rayleigh",
    "uncoded_ber",
    "sionna_device",
]
