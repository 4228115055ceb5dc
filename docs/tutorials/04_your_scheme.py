# %% [markdown]
# # Tutorial 4: your own learned encoder/decoder against the built-in schemes
#
# A scheme implements the public protocol of `experiments.schemes.Scheme`: `plan` says how it fits the
# budget of complex channel uses per example (and is where it may train, on `ctx.train` only), and
# `transmit` sends the held-out features `ctx.test` through the one shared channel and returns the
# reconstructions. The comparison then checks its channel uses against the budget, averages the channel
# realisations, adds 95% intervals and the gap to the Gaussian OPTA -- exactly as for the built-in
# schemes. Register it with `register_scheme` (or a `semcom.schemes` entry point / a `--plugin` file)
# and `semcom compare --schemes yours,...` runs it too.
#
# Here: a small autoencoder (linear encoder -> 2 x 16 reals -> complex symbols -> AWGN -> MLP decoder),
# trained end to end through the channel at the point's SNR, on a correlated Gaussian source.

# %%
import os

import torch

from experiments.comparison import CompareConfig, run_comparison
from experiments.core.sources import FeatureSource
from experiments.schemes import Plan, Received, Scheme, register_scheme
from phy.link.analog import AnalogLink

quick = os.environ.get("SEMCOM_TUTORIAL_QUICK") == "1"


@register_scheme("tiny-autoencoder")
class TinyAutoencoder(Scheme):
    kind = "learned"
    snr_dependent_plan = True

    def plan(self, ctx, snr_db, channel):
        return Plan(ctx.budget, True, dims_sent=ctx.dim, note="learned linear encoder + MLP decoder")

    def _train(self, ctx, channel, snr_db):
        torch.manual_seed(ctx.seed)
        d, k = ctx.dim, 2 * ctx.budget
        self.enc = torch.nn.Linear(d, k)
        self.dec = torch.nn.Sequential(torch.nn.Linear(k, 128), torch.nn.GELU(), torch.nn.Linear(128, d))
        opt = torch.optim.Adam([*self.enc.parameters(), *self.dec.parameters()], lr=3e-3)
        no = 10 ** (-snr_db / 10)
        for _ in range(150 if quick else 600):
            z = self.enc(ctx.train)
            # what AnalogLink does: per-example unit energy per complex use, AWGN, ZF, the scale undone,
            # so the decoder sees z + scale * n with n ~ N(0, N0/2) per real dimension
            scale = z.square().mean(1, keepdim=True).mul(2).sqrt().detach()
            y = z + scale * (no / 2) ** 0.5 * torch.randn_like(z)
            loss = (self.dec(y) - ctx.train).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    def transmit(self, ctx, plan, channel, snr_db):
        if getattr(self, "_trained_for", None) != (snr_db, ctx.channel_name):
            self._train(ctx, channel, snr_db)
            self._trained_for = (snr_db, ctx.channel_name)
        with torch.no_grad():
            link = AnalogLink(channel, equalizer="zf")        # the shared channel; the link normalises power
            y = link(self.enc(ctx.test), snr_db=snr_db)
            assert y.channel_uses == ctx.budget
            return Received(self.dec(y.x_hat), ctx.test_index)


# %%
g = torch.Generator().manual_seed(0)
lam = 0.8 ** torch.arange(64.0)
source = FeatureSource("correlated", torch.randn(3000, 64, generator=g) * lam.sqrt())
rows = run_comparison(source, CompareConfig(schemes=["opta", "analog-mmse", "analog-klt", "tiny-autoencoder"],
                                            snr_db=[10.0], budget=16, realizations=2), progress=False)
for r in rows:
    print(f"{r['scheme']:18s} uses {r['channel_uses']:3d}  NMSE {r['nmse']:.4f} "
          f"[{r['nmse_ci_lo']:.4f}, {r['nmse_ci_hi']:.4f}]  gap {r['gap_db']:5.2f} dB")
learned = next(r for r in rows if r["scheme"] == "tiny-autoencoder")
plain = next(r for r in rows if r["scheme"] == "analog-mmse")
assert learned["channel_uses"] == 16 and learned["nmse_ci_hi"] < plain["nmse_ci_lo"]   # it learned the correlation
