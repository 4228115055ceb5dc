"""Reference curves in closed form or by numerical integration (pure functions).

======================  =================================================================================
``capacity``            AWGN, Rayleigh ergodic and outage capacity; :class:`IdealCode`
``mimo_capacity``       MIMO capacity with receiver CSI (Telatar's integral)
``ratedistortion``      reverse water-filling, Gaussian OPTA, optimal linear analog allocation, Lloyd-Max
``finite_blocklength``  normal approximation of the coding rate and BLER at ``n`` uses (Gaussian and QAM
                        input), separation at a finite block length
======================  =================================================================================
"""
from .capacity import (
    awgn_capacity, rayleigh_ergodic_capacity, rayleigh_outage_capacity, instantaneous_capacity,
    channel_rate_bits, IdealCode, CAPACITY_MODES,
)
from .finite_blocklength import (
    FBL_INPUTS, CapacityDispersion, capacity_dispersion, normal_approx_bits, normal_approx_rate, normal_approx_bler,
    FBLSeparation, fbl_separation,
)
from .mimo_capacity import mimo_ergodic_capacity, mimo_instantaneous_capacity, mimo_channel_rate_bits
from .ratedistortion import (
    RWF, reverse_water_filling, distortion_rate, gaussian_opta_distortion, LinearAllocation,
    linear_power_allocation, LloydMax, lloyd_max_gaussian, greedy_bit_allocation, check_eigenvalues,
)

__all__ = [
    "awgn_capacity",
    "rayleigh_ergodic_capacity",
    "rayleigh_outage_capacity",
    "instantaneous_capacity",
    "channel_rate_bits",
    "IdealCode",
    "CAPACITY_MODES",
    "mimo_ergodic_capacity",
    "mimo_instantaneous_capacity",
    "mimo_channel_rate_bits",
    "RWF",
    "reverse_water_filling",
    "distortion_rate",
    "gaussian_opta_distortion",
    "LinearAllocation",
    "linear_power_allocation",
    "LloydMax",
    "lloyd_max_gaussian",
    "greedy_bit_allocation",
    "check_eigenvalues",
    "FBL_INPUTS",
    "CapacityDispersion",
    "capacity_dispersion",
    "normal_approx_bits",
    "normal_approx_rate",
    "normal_approx_bler",
    "FBLSeparation",
    "fbl_separation",
]
