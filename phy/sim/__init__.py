"""Monte Carlo simulation of BER/BLER curves, resumable results and confidence intervals.

===============  ===========================================================================
``montecarlo``   :func:`simulate_ber`: error-count stopping, SNR early stop, SNR batching
``adaptive``     :func:`simulate_ber_adaptive`: an SNR grid placed along the falling curve
``trials``       what runs at one point: a function, a link, the scrambled all-zero codeword
``points``       one point: its seed, its CSV row, its status
``resultstore``  the resumable, append-only CSV store
``intervals``    Clopper-Pearson, Wilson, Student-t and delta-method intervals
===============  ===========================================================================
"""
from .montecarlo import simulate_ber
from .adaptive import simulate_ber_adaptive, curve_resolution
from .trials import BitTrial, FunctionTrial, LinkTrial, ScrambledZeroTrial
from .points import (
    PointResult, BER_COLUMNS, BER_KEY_COLUMNS, STATUS_TARGET, STATUS_BUDGET, STATUS_NO_ERRORS, STATUS_SKIPPED,
    point_seed,
)
from .resultstore import format_value, ResumableCSV
from .intervals import mean_interval, ratio_interval, proportion_interval, clopper_pearson

__all__ = [
    "simulate_ber",
    "simulate_ber_adaptive",
    "curve_resolution",
    "BitTrial",
    "FunctionTrial",
    "LinkTrial",
    "ScrambledZeroTrial",
    "PointResult",
    "BER_COLUMNS",
    "BER_KEY_COLUMNS",
    "STATUS_TARGET",
    "STATUS_BUDGET",
    "STATUS_NO_ERRORS",
    "STATUS_SKIPPED",
    "point_seed",
    "format_value",
    "ResumableCSV",
    "mean_interval",
    "ratio_interval",
    "proportion_interval",
    "clopper_pearson",
]
