"""
Tutorial 2: analog vs digital at matched channel uses, beside the Gaussian OPTA
===============================================================================

Real features -- the 384-dimensional MiniLM embeddings of CPython's pydoc sentences, shipped with the
package's dependencies -- are sent by every scheme in the same 192 complex channel uses per example, over
one shared AWGN channel: plain analog, the optimal linear analog scheme (KLT + power allocation + LMMSE),
transform coding over an ideal code and over 5G LDPC with adaptive modulation and coding. The Gaussian OPTA
(optimum performance theoretically attainable) says how far each one is from the limit. Everything is fitted
on a training split and scored on held-out sentences, with 95 % intervals.

The command-line version: ``semcom compare --source pydoc-minilm --snr-db 0:15:5 --out runs/cmp``; see
:doc:`/guide/analog-vs-digital` for every scheme and every column of ``compare.csv``.
"""

# %%
import os
import tempfile
from pathlib import Path

from experiments.comparison import CompareConfig, run_comparison
from experiments.core.plots import merged_metric_figure, save_figure
from experiments.core.sources import load_source

SEED = 0
QUICK = os.environ.get("SEMCOM_TUTORIAL_QUICK") == "1"
OUT = Path(os.environ.get("SEMCOM_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="semcom-tutorial-"))

source = load_source("pydoc-minilm", max_items=600 if QUICK else 800)   # 384-d features of real sentences
config = CompareConfig(schemes=["opta", "analog-mmse", "analog-klt", "transform-ideal", "transform-ldpc5g-amc"],
                       channels=["awgn"], snr_db=[0.0, 10.0] if QUICK else [0.0, 5.0, 10.0, 15.0],
                       realizations=2, seed=SEED)
rows = run_comparison(source, config, out_dir=str(OUT), progress=False, log=lambda message: None)

# %%
# Reading the table
# -----------------
#
# Each row is one (scheme, channel, SNR) point. ``nmse`` is the normalised mean squared error of the
# received feature, with its 95 % interval ``[nmse_ci_lo, nmse_ci_hi]``; ``opta_nmse`` is the analytic
# Gaussian OPTA of the training covariance at this SNR and budget, and
#
# .. math::
#
#    \mathrm{gap\_db} = 10 \log_{10} \frac{\mathrm{NMSE}}{\mathrm{NMSE}_\mathrm{OPTA}}
#
# says how many dB a scheme is from it. ``retrieval_top1`` is the share of held-out sentences whose
# received feature is closest to their own among all sentences.

print(f"{'scheme':22s} {'SNR':>5s} {'uses':>5s} {'NMSE':>8s} {'95% interval':>18s} {'gap [dB]':>9s} {'top-1':>6s}")
for r in rows:
    print(f"{r['scheme']:22s} {r['snr_db']:5.1f} {r['channel_uses']:5d} {r['nmse']:8.4f} "
          f"[{r['nmse_ci_lo']:.4f}, {r['nmse_ci_hi']:.4f}] {r['gap_db']:9.2f} {r['retrieval_top1']:6.3f}")
    assert r["channel_uses"] <= r["budget"]                         # matched channel uses
    assert r["nmse_ci_hi"] >= 0.97 * r["opta_nmse"]                 # nobody beats the reference

# %%
# The figure
# ----------
#
# :func:`~experiments.core.plots.merged_metric_figure` is what ``semcom plot`` draws: one colour and marker
# per scheme (the same in every figure), the 95 % intervals as error bars, a log axis for NMSE. It returns
# the figure and the curve labels.

fig, labels = merged_metric_figure([("tutorial", rows)], "nmse", title="AWGN, 192 complex uses per example")
print(labels)
print(save_figure(fig, OUT / "nmse.png"))
