# %% [markdown]
# # Tutorial 3: plug in your own channel
#
# A channel is a `phy.channel.base.Channel` subclass; it only has to say how it fades (`fading(x, generator)`
# returns `h` of `x`'s shape, or `None` for no fading). The base class adds the noise with the package's
# SNR convention (Es/N0 per complex channel use, CN(0, N0)), the per-example seeding and the checks, so
# your channel plugs into every link, analog and digital alike, and into `semcom compare` / `semcom ber`
# once registered (`register_channel`, a `--plugin` file or a `semcom.channels` entry point).
#
# Here: a two-ray channel whose coefficient is the same for every symbol of an example,
# `h = (1 + a e^{j phi}) / sqrt(1 + a^2)` with a random phase `phi` per example -- a slow two-path fade.

# %%
import math
import os

import torch

from experiments.comparison import CompareConfig, run_comparison
from experiments.core.sources import load_source
from phy.channel.base import Channel
from phy.channel.registry import make_channel, register_channel

quick = os.environ.get("SEMCOM_TUTORIAL_QUICK") == "1"


@register_channel("two-ray")
class TwoRay(Channel):
    """Two equal-delay paths with a random relative phase per example, E|h|^2 = 1."""

    name = "two-ray"

    def __init__(self, a: float = 0.8, seed=None, device=None, backend="auto"):
        super().__init__(seed=seed, device=device, backend=backend)
        self.a = float(a)

    def fading(self, x, generator):
        phi = 2 * math.pi * torch.rand(x.shape[:-1] + (1,), generator=generator, device=x.device)
        h = (1 + self.a * torch.polar(torch.ones_like(phi), phi)) / math.sqrt(1 + self.a ** 2)
        return h.to(x.dtype).expand(x.shape)


# %% [markdown]
# Check it against the convention first (what `semcom channel` does for the built-in ones): the mean
# power gain must be 1 and the noise variance N0.

# %%
ch = make_channel("two-ray", seed=0)
x = torch.ones(20000, 16, dtype=torch.complex64)
out = ch(x, 0.1)
gain = float(out.h.abs().square().mean())
noise = float((out.y - out.h * x).abs().square().mean())
print(f"E|h|^2 = {gain:.3f} (1), noise variance = {noise:.4f} (0.1)")
assert abs(gain - 1) < 0.02 and abs(noise - 0.1) < 0.003

# %% [markdown]
# Now compare analog and digital schemes over it, beside AWGN.

# %%
rows = run_comparison(load_source("gaussian", n_items=2000, dim=32),
                      CompareConfig(schemes=["opta", "analog-mmse", "transform-ideal"], channels=["awgn", "two-ray"],
                                    snr_db=[10.0], realizations=1 if quick else 4), progress=False)
for r in rows:
    print(f"{r['channel']:8s} {r['scheme']:16s} NMSE {r['nmse']:.4f}  gap to the OPTA {r['gap_db']:5.2f} dB")
