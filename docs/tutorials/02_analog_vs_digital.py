# %% [markdown]
# # Tutorial 2: analog vs digital at matched channel uses, beside the Gaussian OPTA
#
# Real features (MiniLM embeddings of CPython's pydoc sentences, shipped with the package's
# dependencies) are sent by every scheme in the same 192 complex channel uses per example, over one
# shared AWGN channel: plain analog, the optimal linear analog scheme (KLT + power allocation + LMMSE),
# transform coding over an ideal code and over 5G LDPC with adaptive MCS, and the Gaussian OPTA that
# says how far each one is from the limit. Everything is fitted on a training split and scored on
# held-out sentences, with 95% intervals. The command-line version: `semcom compare --out DIR`.

# %%
import os

from experiments.commands.compare import plot_comparison
from experiments.comparison import CompareConfig, run_comparison
from experiments.core.sources import load_source

out = os.environ.get("SEMCOM_TUTORIAL_OUT", "tutorial-out")
quick = os.environ.get("SEMCOM_TUTORIAL_QUICK") == "1"
os.makedirs(out, exist_ok=True)

source = load_source("pydoc-minilm", max_items=500 if quick else None)   # 384-d features
config = CompareConfig(schemes=["opta", "analog-mmse", "analog-klt", "transform-ideal", "transform-ldpc5g-amc"],
                       channels=["awgn"], snr_db=[0.0, 10.0] if quick else [-5.0, 0.0, 5.0, 10.0, 15.0],
                       realizations=2 if quick else 4)
rows = run_comparison(source, config, progress=False)

# %% [markdown]
# Each row has the NMSE with its interval and the gap to the analytic Gaussian OPTA in dB
# (`gap_db = 10 log10(NMSE / OPTA)`), so the table reads "how many dB from the limit".

# %%
print(f"{'scheme':22s} {'SNR':>5s} {'uses':>5s} {'NMSE':>8s} {'95% interval':>20s} {'gap [dB]':>9s} {'top-1':>6s}")
for r in rows:
    print(f"{r['scheme']:22s} {r['snr_db']:5.1f} {r['channel_uses']:5d} {r['nmse']:8.4f} "
          f"[{r['nmse_ci_lo']:.4f}, {r['nmse_ci_hi']:.4f}] {r['gap_db']:9.2f} {r['retrieval_top1']:6.3f}")
    assert r["channel_uses"] <= r["budget"]                         # matched channel uses
    assert r["nmse_ci_hi"] >= 0.97 * r["opta_nmse"]                 # nobody beats the reference
print(plot_comparison(rows, out))
