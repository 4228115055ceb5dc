"""
Tutorial 1: a BER/BLER curve and a test that it is right
========================================================

Two curves of the digital chain over AWGN with Gray 16-QAM: uncoded, and 5G LDPC (k = 256, n = 512) with
the layered decoder. The uncoded curve is checked against the exact closed form of the detector it uses,
with **one** statistical test over all its points; the coded curve shows the waterfall with its BLER.

SNR is :math:`E_s/N_0` per complex channel use with unit mean symbol energy (the package's convention, see
:doc:`/guide/conventions`). The same curves from the command line::

    semcom ber --modulation 16qam --code none,ldpc5g --k 256 --n 512 --channel awgn \\
        --snr-type esno --snr-db 0:14:2 --out runs/ber

Run this file with ``python docs/tutorials/01_ber_curve.py``. It writes only into a new temporary folder,
or into ``$SEMCOM_TUTORIAL_OUT`` when that is set.
"""

# %%
import os
import tempfile
from pathlib import Path

import numpy as np
from scipy.stats import norm

from experiments.core.plots import error_rate_figure, save_figure
from phy.channel.flat import AWGN
from phy.fec.codes import make_code
from phy.link.digital import DigitalLink
from phy.mapping.modulation import qam_ber_awgn
from phy.sim.montecarlo import simulate_ber
from phy.sim.trials import LinkTrial

SEED = 0  # any seed: the checks below hold for every seed with high probability
QUICK = os.environ.get("SEMCOM_TUTORIAL_QUICK") == "1"  # smaller budgets (used by the docs build in tests)
OUT = Path(os.environ.get("SEMCOM_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="semcom-tutorial-"))
OUT.mkdir(parents=True, exist_ok=True)

# %%
# The uncoded curve and the detector it is compared with
# ------------------------------------------------------
#
# A closed form is only a reference for the receiver it describes. :func:`~phy.mapping.modulation.qam_ber_awgn`
# is the exact bit error rate of **nearest-point** decisions on Gray square QAM. The link's default demapper
# computes exact (APP) bit LLRs, whose signs are bitwise MAP decisions: a little better than nearest-point
# decisions at low SNR (at 0 dB about 0.282 against 0.287 for 16-QAM), so that curve sits slightly *below*
# the closed form. Max-log demapping (``demapping="maxlog"``) makes hard decisions that *are* nearest-point
# decisions, so its curve must match the closed form exactly, up to Monte Carlo error.
#
# Each point gets a fixed budget of bits (``target_errors=None``), so the number of bits is not random and
# the error count is a sum of independent per-symbol counts.

channel = AWGN(seed=SEED)
uncoded = DigitalLink(channel, code=make_code("none", k=1024), modulation="16qam", demapping="maxlog")
snrs = np.arange(0.0, 14.1, 2.0)
points = simulate_ber(LinkTrial(uncoded), snrs, snr_type="esno", batch_size=64, target_errors=None,
                      max_bits=1e5 if QUICK else 4e5, seed=SEED, scheme="uncoded 16-QAM, max-log",
                      channel="awgn", csv_file=OUT / "ber.csv", progress=False)
exact = qam_ber_awgn(snrs, "16qam")

# %%
# One test for all points
# -----------------------
#
# Checking every point against its own 95 % interval fails somewhere by chance: with eight points,
# one or more misses about a third of the time even when the simulation is correct. The test below
# asks one question of the whole curve and is passed by a correct simulation with probability at least
# :math:`1 - \alpha`.
#
# With :math:`n_i` bits at point :math:`i`, :math:`k_i` bit errors and exact BER :math:`p_i`, the standardised
# error count is
#
# .. math::
#
#    z_i = \frac{k_i - n_i p_i}{\sqrt{2 n_i p_i}} .
#
# Why :math:`2 n_i p_i` and not the binomial :math:`n_i p_i (1 - p_i)`: the bits of a 16-QAM symbol are not
# independent. Each real dimension carries two bits and makes :math:`D \in \{0, 1, 2\}` bit errors, so
# :math:`\operatorname{Var} D \le E[D^2] \le 2 E[D]`; summed over the :math:`n_i / 2` independent dimensions
# of a point, :math:`\operatorname{Var} k_i \le 2 n_i p_i`. The points are independent (each has its own
# seed), so by the union (Bonferroni) bound the probability that any :math:`|z_i|` exceeds the normal
# quantile :math:`z^* = \Phi^{-1}(1 - \alpha / (2 m))` is at most :math:`\alpha` for :math:`m` points
# (normal approximation; every point here has dozens of errors or more).

alpha = 0.01
z_star = norm.ppf(1 - alpha / (2 * len(points)))
bits = np.array([p.bits for p in points], dtype=float)
errors = np.array([p.bit_errors for p in points], dtype=float)
z = (errors - bits * exact) / np.sqrt(2 * bits * exact)
print(f"{'Es/N0 [dB]':>10s} {'bits':>8s} {'errors':>7s} {'BER':>10s} {'exact':>10s} {'z':>6s}")
for p, e, zi in zip(points, exact, z):
    print(f"{p.esno_db:10.1f} {p.bits:8d} {p.bit_errors:7d} {p.ber:10.3e} {e:10.3e} {zi:6.2f}")
print(f"max |z| = {np.abs(z).max():.2f}, threshold z* = {z_star:.2f} (alpha = {alpha}, {len(points)} points)")
assert np.abs(z).max() <= z_star, "the uncoded curve does not match the closed form of its detector"

# %%
# The coded curve
# ---------------
#
# The same channel object and a 5G LDPC code. For a coded scheme the bit errors of a block are strongly
# dependent, so the block error rate (BLER, with an exact Clopper-Pearson interval: blocks are independent)
# is the number to read; the BER interval of a coded scheme is indicative only. Each point runs until
# 100 block errors or its bit budget.

ldpc = DigitalLink(channel, code=make_code("ldpc5g", k=256, n=512, decoder="layered"), modulation="16qam")
coded_snrs = np.arange(5.5, 8.1, 0.5)
coded = simulate_ber(LinkTrial(ldpc), coded_snrs, snr_type="esno", batch_size=256, target_errors=None,
                     target_block_errors=100, max_bits=4e5 if QUICK else 2e6, seed=SEED,
                     scheme="LDPC(512,256) 16-QAM, layered", channel="awgn", csv_file=OUT / "ber.csv",
                     progress=False)
for p in coded:
    print(f"LDPC  Es/N0 {p.esno_db:4.1f} dB  BLER {p.bler:.3g} [{p.bler_ci_low:.2g}, {p.bler_ci_high:.2g}]  "
          f"BER {p.ber:.3g}  ({p.blocks} blocks, {p.status})")
blers = [p.bler for p in coded if p.block_errors > 0]
assert all(a > b for a, b in zip(blers, blers[1:])), "the BLER must fall with the SNR (0.5 dB apart)"

# %%
# The figures
# -----------
#
# :func:`~experiments.core.plots.error_rate_figure` draws each simulated point with its 95 % interval and
# the closed form dashed in black (it returns the figure, so it can be restyled or saved as PDF).

fine = np.linspace(0.0, 14.0, 57)
fig_ber = error_rate_figure(points + coded, metric="ber", title="AWGN, Gray 16-QAM",
                            closed_forms={"uncoded 16-QAM, nearest point (exact)": (fine, qam_ber_awgn(fine, "16qam"))})
fig_bler = error_rate_figure(coded, metric="bler", title="AWGN, LDPC(512,256) 16-QAM")
print(save_figure(fig_ber, OUT / "ber.png"), save_figure(fig_bler, OUT / "bler.png"))
