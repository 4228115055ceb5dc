"""semcom compare on flat multi-antenna channels: matched resource elements carrying num_tx streams, the
OPTA from the MIMO ergodic capacity, analog LMMSE against an independent Monte Carlo closed form,
SVD precoding marked as needing CSIT, unsupported schemes skipped with the reason."""
import math

import numpy as np
import pytest
import torch

import semantic  # noqa: F401  (CPU shim first)
from experiments.comparison import CompareConfig, run_comparison
from experiments.core.sources import FeatureSource
from experiments.schemes import SchemeContext, opta_reference
from phy.channel.registry import make_channel
from phy.theory.mimo_capacity import mimo_ergodic_capacity
from phy.theory.ratedistortion import distortion_rate

SPEC = "rayleigh(num_tx=2,num_rx=2)"


def _gaussian(n, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    return FeatureSource("gauss", torch.randn(n, d, generator=g))


def _lmmse_2x2_mse(snr_db, draws=200_000):
    """E[(I + snr/2 H^H H)^{-1}]_11 for i.i.d. CN(0,1) 2 x 2 H: the per-stream LMMSE error (unit power)."""
    g = torch.Generator().manual_seed(5)
    h = torch.view_as_complex(torch.randn(draws, 2, 2, 2, generator=g, dtype=torch.float64) / math.sqrt(2))
    a = torch.eye(2, dtype=torch.complex128) + 10 ** (snr_db / 10) / 2 * h.conj().transpose(-1, -2) @ h
    return torch.linalg.inv(a)[:, 0, 0].real.mean().item()


def test_mimo_compare_rows():
    d, U = 64, 16                                        # 32 complex symbols = 16 uses x 2 streams
    src = _gaussian(2000, d)
    names = ["opta", "analog-mmse", "analog-svd", "quant-none-qpsk", "analog-klt", "quant-ideal"]
    rows = {(r["scheme"], r["snr_db"]): r for r in run_comparison(
        src, CompareConfig(schemes=names, channels=[SPEC], snr_db=[10.0], budget=U, realizations=2),
        progress=False)}
    a = rows[("analog-mmse", 10.0)]
    assert a["status"] == "ok" and a["channel_uses"] == U and a["dims_sent"] == d
    assert a["nmse"] == pytest.approx(_lmmse_2x2_mse(10.0), rel=0.05)
    assert a["nmse_ci_lo"] <= a["nmse"] <= a["nmse_ci_hi"]
    s = rows[("analog-svd", 10.0)]
    assert s["status"] == "ok" and s["channel_uses"] == U and "needs CSIT" in s["note"]
    assert s["nmse"] < a["nmse"]                         # CSIT helps
    q = rows[("quant-none-qpsk", 10.0)]                 # 16 uses x 2 streams x 2 bits = 64 bits = 1 bit/element
    assert q["status"] == "ok" and q["channel_uses"] == U and q["info_bits"] == 64 and q["bits_per_element"] == 1
    assert 0 < q["ber"] < 0.2
    o = rows[("opta", 10.0)]
    # white source: every nmse above the OPTA, which uses U x the 2 x 2 ergodic capacity
    ideal = distortion_rate(np.ones(d), U * mimo_ergodic_capacity(10.0, 2, 2)) / d
    assert o["opta_nmse"] == pytest.approx(ideal, rel=0.15)
    for name in ("analog-mmse", "analog-svd", "quant-none-qpsk"):
        assert rows[(name, 10.0)]["nmse"] > o["opta_nmse"]
    for name in ("analog-klt", "quant-ideal"):
        r = rows[(name, 10.0)]
        assert r["status"].startswith("skipped") and "MIMO" in r["status"] and r["nmse"] is None


def test_mimo_opta_uses_the_mimo_capacity():
    lam = 0.8 ** np.arange(12)
    g = torch.Generator().manual_seed(0)
    src = FeatureSource("g", torch.randn(400, 12, generator=g) * torch.as_tensor(lam).sqrt().float())
    U, snr = 6, 10.0
    ctx = SchemeContext(src, U, True, "mmse", torch.device("cpu"), None, 8, 0.5, 0.1, None)
    ev = ctx.klt.eigenvalues.numpy()
    got = opta_reference(ctx, make_channel("rayleigh(num_tx=2,num_rx=3)", seed=0), "m", snr)
    assert got == pytest.approx(distortion_rate(ev, U * mimo_ergodic_capacity(snr, 2, 3)) / ctx.klt.energy,
                                rel=1e-9)
    siso = opta_reference(ctx, make_channel("rayleigh", seed=0), "s", snr)
    assert got < siso
