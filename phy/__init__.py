"""The channel core: one channel model for analog semantic and digital separation links.

Subpackages
-----------
====================  =====================================================================
:mod:`phy.channel`    the channel protocol, AWGN/Rayleigh/Rician/TDL, impairments, specs, registry
:mod:`phy.ofdm`       resource grids with pilots, LS/perfect CSI, LMMSE/ZF over TDL/CDL
:mod:`phy.mimo`       detectors, equalisers, MIMO CSI estimation, SVD precoding
:mod:`phy.mapping`    Gray QAM mapping and demapping
:mod:`phy.fec`        channel codes and the fast 5G LDPC decoders
:mod:`phy.link`       analog, digital and ideal links with their channel-use ledger; AMC
:mod:`phy.source`     transform coding, quantisers, the text codec
:mod:`phy.theory`     capacities, rate-distortion, OPTA
:mod:`phy.sim`        the Monte Carlo BER/BLER engine, result store, confidence intervals
:mod:`phy.utils`      the conventions as pure functions; the thread knob of the kernels
:mod:`phy.interop`    DLPack exchange with NumPy, TensorFlow, JAX, CuPy
====================  =====================================================================

Conventions (shared by every module of the package)
---------------------------------------------------
* Complex baseband, ``torch.complex64`` by default (``complex128`` selectable through
  ``precision="double"``). Shapes are ``[..., n]``: batch dimensions first, channel uses last.
* SNR is Es/N0 per complex channel use. After power normalisation the mean symbol energy is
  ``Es = P`` (default ``P = 1``), so ``N0 = P / 10**(snr_db / 10)``.
* Noise is circularly-symmetric complex Gaussian ``CN(0, N0)``: ``N0 / 2`` per real dimension.
* Analog features are power-normalised **per example** (each example's block of symbols has mean
  ``|x|^2 = P``). The batch-wide variant exists only under the explicit name
  :func:`phy.utils.conventions.normalize_power_batchwide`.
* MIMO (``num_tx``/``num_rx`` antennas): one channel use is one resource element carrying up to
  ``num_tx`` streams; Es/N0 is the total transmitted energy per channel use (all antennas) over N0 per
  receive antenna, so each transmit antenna sends ``Es / num_tx``. Shapes ``x [..., num_tx, n]``,
  ``y [..., num_rx, n]``, ``h [..., num_rx, num_tx, n]``; 1 x 1 keeps ``[..., n]``.
* Channel uses are counted in complex symbols per example; the bandwidth compression ratio
  (BCR) is ``n_ch / (C*H*W)`` with complex channel uses unless ``convention="real"`` is asked for.
* Randomness comes from an explicit, seedable ``torch.Generator`` held by each channel: the same
  seed gives bit-identical outputs (on CPU the compiled channel kernels of
  :mod:`phy.channel.kernels` draw from a counter-based stream keyed by that generator, so the
  output does not depend on the thread count either).
"""

__version__ = "0.1.0"

from .utils.conventions import (  # noqa: F401
    bandwidth_compression_ratio,
    db_to_lin,
    ebno_db_to_esno_db,
    esno_db_to_ebno_db,
    lin_to_db,
    no_to_snr_db,
    normalize_power,
    normalize_power_batchwide,
    snr_db_to_no,
)

from .ofdm import channel as _ofdm_channel  # noqa: F401,E402  (registers the "ofdm(...)" channel spec)
