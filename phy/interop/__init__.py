"""Interoperability with other frameworks: zero-copy DLPack exchange with NumPy, TensorFlow, JAX and
CuPy, and TensorFlow channel models as channels.

==========  ===============================================================
``bridge``  :func:`to_torch`, :func:`from_torch`, :class:`TFChannelAdapter`
==========  ===============================================================
"""
from .bridge import (
    FRAMEWORKS, DLPACK_ALIGNMENT, to_torch, from_torch, is_dlpack_aligned, aligned_contiguous, TFChannelAdapter,
)

__all__ = [
    "FRAMEWORKS",
    "DLPACK_ALIGNMENT",
    "to_torch",
    "from_torch",
    "is_dlpack_aligned",
    "aligned_contiguous",
    "TFChannelAdapter",
]
