"""Every scheme ``semcom compare`` can run, behind one public protocol: fit on the training split, plan the
channel uses within a budget, send the held-out features through the shared channel, reconstruct.

==============  =============================================================================================
``protocol``    :class:`Scheme`, :class:`Plan`, :class:`Received`, :class:`SchemeContext` (the public protocol;
                the context's train / held-out split and quantiser fit)
``analog``      ``analog``, ``analog-zf``, ``analog-mmse``, ``analog-svd`` (:class:`AnalogScheme`) and the optimal
                linear ``analog-klt`` (:class:`AnalogKLTScheme`)
``quantized``   ``quant-<code>-<mod>``: uniform quantiser + channel code + QAM (:class:`QuantizedDigitalScheme`)
``ideal``       ``quant-ideal``: the quantiser over an ideal capacity-achieving code (:class:`IdealQuantizedScheme`)
``transform``   ``transform-ideal`` and ``transform-ldpc5g-amc``: KLT + bit allocation + Lloyd-Max, over the ideal
                code or 5G LDPC with adaptive modulation and coding (:class:`TransformIdealScheme`,
                :class:`TransformAMCScheme`)
``text``        ``ascii-<code>-<mod>``: the raw sentence as 7-bit ASCII, re-encoded at the receiver
                (:class:`TextScheme`)
``references``  ``opta``: the Gaussian OPTA as a scheme (:class:`OptaScheme`) and per row (:func:`opta_reference`);
                ``fbl-separation``: ideal separation at the finite block length (:class:`FBLSeparationScheme`,
                :func:`fbl_reference`)
``registry``    :data:`SCHEMES`, :func:`register_scheme`, :func:`make_scheme`; plug-ins register through
                ``--plugin`` or the ``semcom.schemes`` entry-point group
``resources``   how symbols occupy the channel: OFDM slots, MIMO streams, data / pilot uses (not API)
==============  =============================================================================================

The study that runs them is :mod:`experiments.comparison`; the command, :mod:`experiments.commands.compare`.
"""
from .protocol import Plan, Received, Scheme, SchemeContext, fit_quantizer, split_indices
from .analog import AnalogKLTScheme, AnalogScheme
from .quantized import QuantizedDigitalScheme
from .ideal import IdealQuantizedScheme
from .transform import TransformAMCScheme, TransformIdealScheme
from .text import TextScheme
from .references import FBLSeparationScheme, OptaScheme, fbl_reference, opta_reference
from .registry import SCHEMES, make_scheme, register_scheme

__all__ = [
    "Plan",
    "Received",
    "Scheme",
    "SchemeContext",
    "fit_quantizer",
    "split_indices",
    "AnalogScheme",
    "AnalogKLTScheme",
    "QuantizedDigitalScheme",
    "IdealQuantizedScheme",
    "TransformIdealScheme",
    "TransformAMCScheme",
    "TextScheme",
    "OptaScheme",
    "opta_reference",
    "FBLSeparationScheme",
    "fbl_reference",
    "SCHEMES",
    "register_scheme",
    "make_scheme",
]
