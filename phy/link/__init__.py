"""Links: the mapping of a payload onto channel symbols and back, with a channel-use ledger.

===========  ====================================================================================
``base``     :class:`Link` and :class:`LinkOutput`, real <-> complex packing, noise power
``analog``   :class:`AnalogLink`: features straight onto symbols (MMSE/ZF, SVD precoding, LS CSI)
``digital``  :class:`DigitalLink`: code + QAM + detector; :class:`BSCEquivalentLink`
``ideal``    :class:`IdealCodeLink`: a capacity-achieving code with outage; :func:`design_payload`
``amc``      5G MCS table, CRC-protected codewords, BLER tables and link adaptation
===========  ====================================================================================
"""
from .base import LinkOutput, Link, real_to_complex, complex_to_real, snr_to_no_tensor, noise_power
from .analog import AnalogLink
from .digital import DigitalLink, BSCEquivalentLink
from .ideal import IdealCodeLink, PayloadDesign, design_payload
from .amc import (
    MCS, MCS_TABLE, mcs_by_index, CodewordLayout, codeword_layout, CodewordLink, estimate_bler, BlerEstimate, McsChoice,
    select_mcs, AMC_POLICIES,
)

__all__ = [
    "LinkOutput",
    "Link",
    "real_to_complex",
    "complex_to_real",
    "snr_to_no_tensor",
    "noise_power",
    "AnalogLink",
    "DigitalLink",
    "BSCEquivalentLink",
    "IdealCodeLink",
    "PayloadDesign",
    "design_payload",
    "MCS",
    "MCS_TABLE",
    "mcs_by_index",
    "CodewordLayout",
    "codeword_layout",
    "CodewordLink",
    "estimate_bler",
    "BlerEstimate",
    "McsChoice",
    "select_mcs",
    "AMC_POLICIES",
]
