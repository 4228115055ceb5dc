"""Channel models behind one protocol, shared by analog and digital links.

====================  ===================================================================================
``base``              the :class:`Channel` protocol, :class:`ChannelOutput`, complex normals
``flat``              AWGN, Rayleigh and Rician fading (per symbol or block, MIMO, Kronecker correlation)
``tdl``               3GPP TDL over an OFDM grid (Sionna's model) for symbol streams
``callable_channel``  a user function as a channel
``impairments``       Wiener phase noise and carrier frequency offset, spec keys of every channel
``spec``              the ``name(key=value, ...)`` grammar, :class:`Param` declarations
``registry``          :func:`make_channel`, :func:`register_channel`, canonical specs
``kernels``           compiled CPU kernels: noise, i.i.d. fading and equaliser in one pass (not API)
====================  ===================================================================================

For resource grids with pilots and estimated CSI see :mod:`phy.ofdm`.
"""
from .base import ChannelOutput, Channel, complex_normal, BACKENDS
from .flat import AWGN, FlatFading, Rayleigh, Rician, exponential_correlation
from .tdl import SionnaTDL
from .callable_channel import CallableChannel
from .impairments import (
    PhaseImpairment, IMPAIRMENT_PARAMS, IMPAIRMENT_KEYS, wiener_increment_variance, phase_trajectory,
    apply_phase, attach_impairment, split_impairment_kwargs, resolve_symbol_rate,
)
from .spec import Param, parse_spec, split_channel_list, check_spec_kwargs, format_spec, format_value
from .registry import (
    CHANNELS, register_channel, make_channel, parse_channel_spec, canonical_channel_spec, canonical_channel_list,
)

__all__ = [
    "ChannelOutput",
    "Channel",
    "complex_normal",
    "BACKENDS",
    "AWGN",
    "FlatFading",
    "Rayleigh",
    "Rician",
    "exponential_correlation",
    "SionnaTDL",
    "CallableChannel",
    "PhaseImpairment",
    "IMPAIRMENT_PARAMS",
    "IMPAIRMENT_KEYS",
    "wiener_increment_variance",
    "phase_trajectory",
    "apply_phase",
    "attach_impairment",
    "split_impairment_kwargs",
    "resolve_symbol_rate",
    "Param",
    "parse_spec",
    "split_channel_list",
    "check_spec_kwargs",
    "format_spec",
    "format_value",
    "CHANNELS",
    "register_channel",
    "make_channel",
    "parse_channel_spec",
    "canonical_channel_spec",
    "canonical_channel_list",
]
