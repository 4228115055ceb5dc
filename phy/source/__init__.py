"""Source coding of features and text for the digital schemes.

================  =======================================================================
``transform``     KLT + bit allocation + Lloyd-Max quantisers, fitted on a training split
``quantization``  uniform scalar quantiser
``text_codec``    7-bit ASCII text <-> bits, robust to corrupted bits
================  =======================================================================
"""
from .transform import single_thread, KLT, TransformCoder, MAX_BITS_PER_COMPONENT
from .quantization import UniformQuantizer
from .text_codec import TextCodec, BITS_PER_CHAR

__all__ = [
    "single_thread",
    "KLT",
    "TransformCoder",
    "MAX_BITS_PER_COMPONENT",
    "UniformQuantizer",
    "TextCodec",
    "BITS_PER_CHAR",
]
