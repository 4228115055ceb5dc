"""The package's conventions as pure functions (SNR <-> N0, Eb/N0 <-> Es/N0, power normalisation,
bandwidth ratio, input checks) and the thread knob of the compiled kernels.

===============  =============================================================
``conventions``  SNR, power and bandwidth conventions; input and device checks
``threads``      numba's thread pool follows torch's thread count
===============  =============================================================
"""
from .conventions import (
    db_to_lin, lin_to_db, snr_db_to_no, no_to_snr_db, ebno_db_to_esno_db, esno_db_to_ebno_db, normalize_power,
    normalize_power_batchwide, bandwidth_compression_ratio, check_snr, check_no, check_no_type, check_complex,
    check_real, check_finite, device_checks, device_assert, check_device,
)
from .threads import numba_threads, numba_max_threads

__all__ = [
    "db_to_lin",
    "lin_to_db",
    "snr_db_to_no",
    "no_to_snr_db",
    "ebno_db_to_esno_db",
    "esno_db_to_ebno_db",
    "normalize_power",
    "normalize_power_batchwide",
    "bandwidth_compression_ratio",
    "check_snr",
    "check_no",
    "check_no_type",
    "check_complex",
    "check_real",
    "check_finite",
    "device_checks",
    "device_assert",
    "check_device",
    "numba_threads",
    "numba_max_threads",
]
