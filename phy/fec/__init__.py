"""Forward error correction: the codes of the digital links and fast 5G LDPC decoders.

===================  ====================================================================================
``codes``            :class:`Code` protocol and registry: uncoded, Hamming(7,4), repetition, 5G LDPC
``ldpc_fast``        layered min-sum decoder for Sionna's 5G LDPC encoder (numba on CPU, torch elsewhere)
``ldpc_structure``   the quasi-cyclic structure of a rate-matched 5G LDPC code
``ldpc_torch``       the torch backend of the layered decoder
``ldpc_fixed``       int8/int16 inter-frame SIMD layered decoder (64 codewords per LLVM vector)
``simd_lanes``       the 64-lane vector building blocks of that decoder (not API)
``scrambled_chain``  scrambled all-zero QAM over AWGN: map, noise and APP demap in one compiled pass
===================  ====================================================================================
"""
from .codes import (
    Code, layered_precision, Uncoded, Hamming74, LDPC5G, Repetition, CODES, register_code, make_code,
    hard_decisions, LDPC5G_MAX_K, LDPC5G_MAX_N,
)
from .ldpc_fast import LDPC5GFastDecoder, numba_available, CN_UPDATES, BACKENDS
from .ldpc_structure import QCStructure, qc_structure
from .ldpc_fixed import PRECISIONS, FIXED_DEFAULTS, fixed_kernel, no_chain, qmax

__all__ = [
    "Code",
    "layered_precision",
    "Uncoded",
    "Hamming74",
    "LDPC5G",
    "Repetition",
    "CODES",
    "register_code",
    "make_code",
    "hard_decisions",
    "LDPC5G_MAX_K",
    "LDPC5G_MAX_N",
    "LDPC5GFastDecoder",
    "numba_available",
    "CN_UPDATES",
    "BACKENDS",
    "QCStructure",
    "qc_structure",
    "PRECISIONS",
    "FIXED_DEFAULTS",
    "fixed_kernel",
    "no_chain",
    "qmax",
]
