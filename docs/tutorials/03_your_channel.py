"""
Tutorial 3: a channel of your own, with spec parameters
========================================================

A channel is a :class:`phy.channel.base.Channel` subclass that says how it fades: ``fading(x, generator)``
returns the coefficients ``h`` with the shape of ``x`` (or ``None`` for no fading). The base class adds the
noise with the package's convention (:math:`E_s/N_0` per complex channel use, :math:`n \\sim \\mathcal{CN}(0,
N_0)`), the seeding and the input checks, so the channel plugs into every link, analog and digital alike.

Its **spec parameters** are declared with :class:`~phy.channel.spec.Param`: then ``nakagami(m=3)`` works on
every command line (``--channel "nakagami(m=3)"``), in configs and in :func:`~phy.channel.registry.make_channel`;
bad values are refused with the valid range, and the canonical spec (every parameter, defaults filled in)
becomes the CSV's ``channel`` key. Here: Nakagami-*m* fading, per symbol, checked against its closed-form
BER.
"""

# %%
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from scipy.special import comb
from scipy.stats import norm

from experiments.core.plots import error_rate_figure, save_figure
from phy.channel.base import Channel, complex_normal
from phy.channel.registry import canonical_channel_spec, make_channel, register_channel
from phy.channel.spec import Param
from phy.fec.codes import make_code
from phy.link.digital import DigitalLink
from phy.sim.montecarlo import simulate_ber
from phy.sim.trials import LinkTrial

SEED = 0
QUICK = os.environ.get("SEMCOM_TUTORIAL_QUICK") == "1"
OUT = Path(os.environ.get("SEMCOM_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="semcom-tutorial-"))


@register_channel("nakagami")
class Nakagami(Channel):
    r"""Nakagami-*m* fading, independent per symbol: :math:`|h|^2 \sim \mathrm{Gamma}(m, 1/m)` (so
    :math:`E|h|^2 = 1`) with a uniform phase. ``m = 1`` is Rayleigh; large ``m`` approaches AWGN.

    The power is drawn as the mean of ``m`` squared :math:`\mathcal{CN}(0, 1)` magnitudes, from the channel's
    own generator, so a seed gives the same output every time.
    """

    name = "nakagami"
    spec_params = (Param("m", int, 1, low=1, high=64),)

    def __init__(self, m: int = 1, seed=None, device=None, backend="auto"):
        super().__init__(seed=seed, device=device, backend=backend)
        self.m = int(m)

    def fading(self, x, generator):
        g = complex_normal((self.m,) + tuple(x.shape), generator, dtype=x.dtype, device=x.device)
        power = g.abs().square().mean(0)                          # Gamma(m, 1/m)
        phase = g[0] / g[0].abs().clamp_min(1e-30)                # uniform, independent of the power
        return power.sqrt() * phase


# %%
# The spec grammar now knows it
# -----------------------------
#
# The canonical spec fills in the defaults; an unknown key or a value out of range is refused, naming the
# valid keys with their types, ranges and defaults.

print(canonical_channel_spec("nakagami"), canonical_channel_spec("nakagami(m=3)"))
for bad in ("nakagami(m=0)", "nakagami(k=2)"):
    try:
        make_channel(bad)
    except ValueError as err:
        print(f"{bad}: {err}")

# %%
# Check it against the convention
# -------------------------------
#
# What ``semcom channel`` measures for the built-in channels: the mean power gain must be 1, the noise
# variance :math:`N_0`, and for Nakagami-*m* the variance of :math:`|h|^2` is :math:`1/m`.

ch = make_channel("nakagami(m=3)", seed=SEED)
x = torch.ones(4000, 64, dtype=torch.complex64)
out = ch(x, 0.1)
gain = out.h.abs().square()
noise = (out.y - out.h * x).abs().square()
print(f"E|h|^2 = {gain.mean():.4f} (1), Var|h|^2 = {gain.var():.4f} ({1 / 3:.4f}), "
      f"noise variance = {noise.mean():.4f} (0.1)")
assert abs(gain.mean() - 1) < 0.01 and abs(gain.var() - 1 / 3) < 0.01 and abs(noise.mean() - 0.1) < 0.002


# %%
# The closed form
# ---------------
#
# Gray QPSK with perfect CSI makes an error on a bit when a real Gaussian exceeds the faded amplitude:
# :math:`P(e \mid h) = Q\big(\sqrt{|h|^2 E_s/N_0}\big)`. Averaged over :math:`|h|^2 \sim \mathrm{Gamma}(m, 1/m)`
# with integer *m* (the same as maximum-ratio combining of *m* Rayleigh branches of mean SNR
# :math:`\bar\gamma / m` each, with :math:`\bar\gamma = E_s / (2 N_0)` per bit):
#
# .. math::
#
#    P_b = \Big(\frac{1 - \mu}{2}\Big)^m \sum_{k=0}^{m-1} \binom{m-1+k}{k} \Big(\frac{1 + \mu}{2}\Big)^k,
#    \qquad \mu = \sqrt{\frac{\bar\gamma / m}{1 + \bar\gamma / m}} .

def nakagami_qpsk_ber(esno_db, m):
    g = 10 ** (np.asarray(esno_db, dtype=float) / 10) / 2 / m
    mu = np.sqrt(g / (1 + g))
    return ((1 - mu) / 2) ** m * sum(comb(m - 1 + k, k) * ((1 + mu) / 2) ** k for k in range(m))


# %%
# BER curves through the package's digital link
# ---------------------------------------------
#
# :class:`~phy.link.digital.DigitalLink` equalises with the perfect CSI the channel returns (``h``) and
# demaps; for QPSK the hard decisions are exactly the ones of the closed form. All points of all curves are
# checked with one test, as in :doc:`/tutorials/01_ber_curve`: each fading value is shared by the two bits
# of a symbol, so the error count's variance is at most :math:`2 n p` and
# :math:`|z_i| = |k_i - n_i p_i| / \sqrt{2 n_i p_i}` must stay below the Bonferroni threshold.

snrs = np.arange(0.0, 20.1, 4.0)
rows, z = [], []
for m in (1, 3):
    link = DigitalLink(make_channel(f"nakagami(m={m})", seed=SEED), code=make_code("none", k=1000),
                       modulation="qpsk")
    pts = simulate_ber(LinkTrial(link), snrs, snr_type="esno", batch_size=100, target_errors=None,
                       max_bits=6e4 if QUICK else 3e5, seed=SEED, scheme=f"QPSK, Nakagami m={m}",
                       channel=f"nakagami(m={m})", progress=False)
    p = nakagami_qpsk_ber(snrs, m)
    n = np.array([q.bits for q in pts], dtype=float)
    k = np.array([q.bit_errors for q in pts], dtype=float)
    z += list((k - n * p) / np.sqrt(2 * n * p))
    rows += pts
    for q, pi in zip(pts, p):
        print(f"m={m}  Es/N0 {q.esno_db:4.1f} dB  BER {q.ber:.3e}  closed form {pi:.3e}")
alpha = 0.01
z_star = norm.ppf(1 - alpha / (2 * len(z)))
print(f"max |z| = {max(map(abs, z)):.2f}, threshold {z_star:.2f} ({len(z)} points, alpha = {alpha})")
assert max(map(abs, z)) <= z_star

# %%
# The figure: simulated points with 95 % intervals, closed forms dashed, Rayleigh (m = 1) and m = 3.

fine = np.linspace(0.0, 20.0, 41)
fig = error_rate_figure(rows, metric="ber", title="Nakagami-m, QPSK, perfect CSI",
                        closed_forms={f"closed form, m={m}": (fine, nakagami_qpsk_ber(fine, m)) for m in (1, 3)})
print(save_figure(fig, OUT / "nakagami.png"))

# %%
# Using it elsewhere
# ------------------
#
# Registered in this process, ``nakagami(m=...)`` is a channel like the built-in ones for every API and
# command. To make it available to the ``semcom`` command line, put the class in a module and pass
# ``--plugin my_channels.py`` (or declare a ``semcom.channels`` entry point), then for example
# ``semcom compare --plugin my_channels.py --channel "awgn,nakagami(m=3)" --out runs/nak``. See
# :doc:`/guide/plugins`.
