"""
Tutorial 5: MIMO over OFDM with estimated CSI
=============================================

An OFDM resource grid with pilots (:class:`~phy.ofdm.channel.OFDMChannel`, spec ``ofdm(...)``) carrying
uncoded Gray QPSK over flat Rayleigh fading (constant over a slot), received with the true channel
(``csi=perfect``) or with Sionna's least-squares estimate from the pilots (``csi=ls,estimator=ls``; the grid's
default estimator, ``lmmse``, smooths the estimates with the channel's statistics):

* 1 x 2 SIMO with Sionna's OFDM LMMSE equaliser (for one stream its decisions are maximum-ratio combining);
* 2 x 2 spatial multiplexing with zero forcing.

Both have closed forms with perfect CSI, and -- derived below -- with LS CSI too. SNR is :math:`E_s/N_0`
per resource element, all transmit antennas together, :math:`N_0` per receive antenna
(:doc:`/guide/conventions`). The command-line equivalent of one curve::

    semcom ber --modulation qpsk --code none --channel \\
        "ofdm(model=rayleigh,num_tx=2,num_rx=2,fft_size=4,num_ofdm_symbols=2,pilot_symbols=1,csi=ls,estimator=ls,interpolation=nn)" \\
        --detector zf --snr-type esno --snr-db 0:20:5 --out runs/mimo
"""

# %%
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from scipy.stats import norm

from experiments.core.plots import error_rate_figure, save_figure
from phy.link.digital import DigitalLink
from phy.mimo.detection import mrc_qpsk_ber, zf_qpsk_ber
from phy.ofdm.channel import OFDMChannel

SEED = 0
QUICK = os.environ.get("SEMCOM_TUTORIAL_QUICK") == "1"
OUT = Path(os.environ.get("SEMCOM_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="semcom-tutorial-"))
SLOTS = 1500 if QUICK else 6000          # independent fades per SNR point
# a small grid: 4 subcarriers x 2 OFDM symbols, the first one pilots -> 4 data REs per slot
GRID = dict(model="rayleigh", fft_size=4, num_ofdm_symbols=2, pilot_symbols=1, estimator="ls", interpolation="nn")

# %%
# The closed form with LS estimates
# ---------------------------------
#
# Each pilot resource element carries energy :math:`E_s`, so the LS estimate of each antenna pair is
# :math:`\hat H = H + E` with :math:`E \sim \mathcal{CN}(0, \sigma_e^2)`, :math:`\sigma_e^2 = N_0/E_s`, and
# nearest-neighbour interpolation gives every data RE of the slot that estimate. :math:`H` and :math:`\hat H`
# are jointly Gaussian, so :math:`H = a \hat H + W` with :math:`a = 1/(1 + \sigma_e^2)` and :math:`W`
# independent of :math:`\hat H`, entries of variance :math:`\sigma_e^2 / (1 + \sigma_e^2)`. For QPSK,
# :math:`W x` is Gaussian with variance :math:`E_s \sigma_e^2/(1 + \sigma_e^2)` per receive antenna, so the
# receiver working with :math:`\hat H` sees a perfect-CSI Rayleigh channel at the effective SNR
#
# .. math::
#
#    \frac{E_s}{N_{0,\mathrm{eff}}} = \frac{E_s}{(1 + \sigma_e^2) N_0 + \sigma_e^2 E_s}
#      = \frac{E_s/N_0}{2 + N_0/E_s} ,
#
# about 3 dB below the true SNR at high SNR: one pilot per estimate doubles the noise.

def ls_effective_esno_db(esno_db):
    snr = 10 ** (np.asarray(esno_db, dtype=float) / 10)
    return 10 * np.log10(snr / (2 + 1 / snr))


def closed_form(esno_db, num_tx, num_rx, csi):
    snr_db = ls_effective_esno_db(esno_db) if csi == "ls" else np.asarray(esno_db, dtype=float)
    return mrc_qpsk_ber(snr_db, num_rx) if num_tx == 1 else zf_qpsk_ber(snr_db, num_tx, num_rx)


# %%
# Simulation
# ----------
#
# One example carries ``SLOTS`` slots; each slot fades independently, so the per-slot error fractions
# :math:`X_s \in [0, 1]` are independent. All points are checked with one Bonferroni test at level
# :math:`\alpha = 0.01`, as in the other tutorials. Under the closed form :math:`p`, the variance of a slot's
# error fraction is at most :math:`p (1 - p)` (because :math:`X_s^2 \le X_s`), so
# :math:`z = (\widehat{\mathrm{BER}} - p) / \sqrt{p (1 - p) / S}` over :math:`S` slots is a conservative
# standard score; the intervals drawn are the usual 95 % intervals from the measured per-slot spread.

snrs = np.arange(0.0, 20.1, 5.0)
g = torch.Generator().manual_seed(SEED)
rows, z = [], []
for num_tx, num_rx, detector in ((1, 2, "lmmse"), (2, 2, "zf")):
    for csi in ("perfect", "ls"):
        link = DigitalLink(OFDMChannel(num_tx=num_tx, num_rx=num_rx, csi=csi, seed=SEED, **GRID),
                           code="none", modulation="qpsk", detector=detector)
        per_slot = 4 * num_tx * 2                                 # bits per slot: 4 data REs x streams x 2
        label = f"{num_tx}x{num_rx} {detector.upper()}, {csi} CSI"
        for snr in snrs:
            bits = torch.randint(0, 2, (1, SLOTS * per_slot), generator=g).float()
            errors = (link(bits, snr_db=float(snr)).x_hat != bits).double().reshape(-1, per_slot).mean(1)
            ber, se = float(errors.mean()), float(errors.std() / math.sqrt(errors.numel()))
            p = float(closed_form(snr, num_tx, num_rx, csi))
            z.append((ber - p) / math.sqrt(p * (1 - p) / errors.numel()))
            lo, hi = ber - 1.96 * se, (ber + 1.96 * se) if ber > 0 else 3.0 / errors.numel()
            rows.append(dict(scheme=label, channel="ofdm rayleigh", snr_db=float(snr), snr_type="esno",
                             ber=ber, ber_ci_low=max(lo, 0.0), ber_ci_high=hi))
            print(f"{label:24s} Es/N0 {snr:4.1f} dB  BER {ber:.3e} +- {1.96 * se:.1e}  closed form {p:.3e}")
z_star = norm.ppf(1 - 0.01 / (2 * len(z)))
print(f"max |z| = {max(map(abs, z)):.2f}, threshold {z_star:.2f} ({len(z)} points)")
assert max(map(abs, z)) <= z_star

# %%
# The figure
# ----------
#
# Simulated points with 95 % intervals, closed forms dashed (perfect CSI black, LS grey). The LS curves run
# parallel to the perfect-CSI ones, 3 dB to the right at high SNR: the same diversity (2 for 1 x 2 MRC,
# 1 for 2 x 2 ZF), half the effective SNR.

fine = np.linspace(0.0, 20.0, 41)
refs = {f"{t}x{r} {csi} CSI, closed form": (fine, closed_form(fine, t, r, csi))
        for t, r in ((1, 2), (2, 2)) for csi in ("perfect", "ls")}
fig = error_rate_figure(rows, metric="ber", closed_forms=refs, title="OFDM, flat Rayleigh, QPSK")
print(save_figure(fig, OUT / "mimo_ofdm_csi.png"))
