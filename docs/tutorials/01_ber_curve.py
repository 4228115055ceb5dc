# %% [markdown]
# # Tutorial 1: a BER/BLER curve of the digital chain
#
# 5G LDPC (k = 256, n = 512) with Gray 16-QAM over AWGN, against the closed-form curve of uncoded
# 16-QAM. SNR is Es/N0 per complex channel use (the package's convention). The same curve from the
# command line: `semcom ber --modulation 16qam --code none,ldpc5g --k 256 --n 512 --snr-db 0:10:1 --out DIR`.
#
# This file is a jupytext "percent" script: run it with `python`, or open it as a notebook with
# `jupytext --to notebook`. The test suite runs it (`tests/test_tutorials.py`), so it cannot rot.
# `SEMCOM_TUTORIAL_OUT` names the output folder, `SEMCOM_TUTORIAL_QUICK=1` shrinks the budgets.

# %%
import os

import numpy as np

from phy.channel.flat import AWGN
from phy.fec.codes import make_code
from phy.link.digital import DigitalLink
from phy.mapping.modulation import uncoded_ber
from phy.sim.montecarlo import simulate_ber
from phy.sim.trials import LinkTrial

out = os.environ.get("SEMCOM_TUTORIAL_OUT", "tutorial-out")
quick = os.environ.get("SEMCOM_TUTORIAL_QUICK") == "1"
os.makedirs(out, exist_ok=True)

# %% [markdown]
# One channel object, one link per scheme. `LinkTrial` draws random information bits; the Monte Carlo
# engine runs each SNR point until a target number of errors or a bit budget, with 95% Clopper-Pearson
# intervals, and writes a resumable CSV.

# %%
channel = AWGN(seed=0)
snrs = [0.0, 4.0, 8.0] if quick else list(np.arange(0.0, 10.5, 1.0))
curves = {}
for name, code in (("uncoded", make_code("none", k=256)),
                   ("ldpc5g", make_code("ldpc5g", k=256, n=512, decoder="layered"))):
    link = DigitalLink(channel, code=code, modulation="16qam")
    points = simulate_ber(LinkTrial(link), snrs, snr_type="esno", batch_size=64, target_errors=100,
                          max_bits=2e5 if quick else 2e6, seed=1, scheme=name, channel="awgn",
                          csv_file=os.path.join(out, "ber.csv"), progress=False)
    curves[name] = points

# %% [markdown]
# The uncoded curve must sit on the closed form; the coded one falls steeply once the SNR passes the
# code's threshold.

# %%
for p in curves["uncoded"]:
    theory = float(uncoded_ber(p.esno_db, "16qam"))
    print(f"uncoded 16-QAM  Es/N0 {p.esno_db:5.1f} dB  BER {p.ber:.4g}  [{p.ber_ci_low:.3g}, "
          f"{p.ber_ci_high:.3g}]  closed form {theory:.4g}")
    assert p.ber_ci_low <= theory <= p.ber_ci_high or p.bit_errors == 0
for p in curves["ldpc5g"]:
    print(f"LDPC(512,256)   Es/N0 {p.esno_db:5.1f} dB  BER {p.ber:.3g}  BLER {p.bler:.3g}  ({p.status})")

# %%
from experiments.core.plots import plot_metric_vs_snr  # noqa: E402

series = {name: ([p.esno_db for p in pts], [p.ber for p in pts]) for name, pts in curves.items()}
series["uncoded 16-QAM, closed form"] = (snrs, [float(uncoded_ber(s, "16qam")) for s in snrs])
print(plot_metric_vs_snr(series, os.path.join(out, "ber.png"), ylabel="BER", logy=True))
