"""phy.mimo.precoding: SVD precoding with CSIT -- the MMSE water-filling against its KKT conditions and a
brute-force optimum, per-stream MSE of the link against 1 / (1 + p_i sigma_i^2 / N0) for a fixed H,
never worse than LMMSE spatial multiplexing, and the single-mode case equal to the SISO/MRC MMSE."""
import math

import numpy as np
import pytest
import torch

from phy.channel.flat import FlatFading
from phy.channel.registry import make_channel
from phy.link.analog import AnalogLink
from phy.mimo.precoding import eigenmode_mse, mmse_power_allocation, svd_eigenmodes


class FixedH(FlatFading):
    """A deterministic MIMO channel: the same H at every channel use (test helper)."""

    def __init__(self, H, **kw):
        super().__init__(num_tx=H.shape[1], num_rx=H.shape[0], **kw)
        self.H = H

    def mimo_fading(self, batch_shape, n, generator, dtype=torch.complex64, device=None):
        return self.H.to(dtype)[..., None].expand(*batch_shape, *self.H.shape, n)


H3x2 = torch.tensor([[1.2 + 0.3j, 0.2 - 0.1j], [0.4j, 0.5 + 0.2j], [0.1, -0.3 + 0.1j]], dtype=torch.complex128)


@pytest.mark.parametrize("gains, P", [([4.0, 1.0], 1.0), ([10.0, 3.0, 0.2], 2.0), ([0.5, 0.5], 0.3),
                                      ([100.0, 0.01, 0.0], 1.0), ([2.0], 5.0)])
def test_power_allocation_satisfies_kkt_and_beats_a_grid_search(gains, P):
    g = torch.tensor(gains, dtype=torch.float64)
    p = mmse_power_allocation(g, P)
    assert p.sum().item() == pytest.approx(P, rel=1e-12) and (p >= 0).all()
    deriv = g / (1 + p * g) ** 2                      # -d mse_i / d p_i
    act = p > 0
    mu = deriv[act]
    assert torch.allclose(mu, mu[0].expand_as(mu), rtol=1e-9)             # equal marginal gain on active modes
    assert (g[~act] <= mu[0] + 1e-12).all()                                # inactive modes: g_i <= mu
    best = eigenmode_mse(g, p).sum().item()
    if len(gains) == 2:                                                    # brute force on the simplex
        q = torch.linspace(0, P, 20001, dtype=torch.float64)
        grid = eigenmode_mse(g[0], q) + eigenmode_mse(g[1], P - q)
        assert best <= grid.min().item() + 1e-12 and best == pytest.approx(grid.min().item(), abs=1e-7)


def test_power_allocation_is_batched_and_order_free():
    g = torch.tensor([[1.0, 9.0, 4.0], [0.0, 0.0, 0.0], [3.0, 0.0, 3.0]])
    p = mmse_power_allocation(g, 1.0)
    torch.testing.assert_close(p[0], mmse_power_allocation(torch.tensor([9.0, 4.0, 1.0]), 1.0)[[2, 0, 1]])
    torch.testing.assert_close(p[1], torch.full((3,), 1 / 3))
    torch.testing.assert_close(p[2], torch.tensor([0.5, 0.0, 0.5]))


@pytest.mark.parametrize("snr_db", [0.0, 12.0])
def test_link_per_stream_mse_matches_the_closed_form_for_a_fixed_H(snr_db):
    no = 10 ** (-snr_db / 10)
    B, m = 400, 2000                                   # features +-1: every example has power exactly 1 per symbol
    f = torch.randint(0, 2, (B, m), generator=torch.Generator().manual_seed(0)).double() * 2 - 1
    link = AnalogLink(FixedH(H3x2, seed=1), precoding="svd")
    out = link(f, snr_db=snr_db)
    assert out.channel_uses == link.channel_uses((m,)) == m // 2 // 2 and out.info["csit"]
    sigma = torch.linalg.svdvals(H3x2)
    p = mmse_power_allocation(sigma ** 2 / no, 1.0)
    want = eigenmode_mse(sigma ** 2 / no, p)           # per complex unit-power stream = per real feature here
    err = (out.x_hat - f).reshape(B, -1, 2, 2)         # [B, uses, stream, re/im]
    mse = err.square().mean((0, 1, 3))
    for i in range(2):
        assert mse[i].item() == pytest.approx(want[i].item(), rel=0.03)
    torch.testing.assert_close(out.info["eigenmode_power"][0, :, 0].double(), p, rtol=1e-5, atol=1e-6)
    # reported error variances are the closed form (unit symbol power)
    torch.testing.assert_close(out.info["no_eff"][0, :2].double(), want, rtol=1e-4, atol=1e-6)
    # the antenna symbols respect the total power per channel use (mean over examples)
    assert out.info["symbols"].abs().square().sum(-2).mean().item() == pytest.approx(1.0, rel=0.01)
    # never worse than spatial multiplexing with LMMSE (its closed form: equal power P / num_tx per stream)
    lmmse = eigenmode_mse(sigma ** 2 / no, torch.full((2,), 0.5, dtype=torch.float64)).sum()
    assert want.sum() <= lmmse + 1e-12
    plain = AnalogLink(FixedH(H3x2, seed=1))(f, snr_db=snr_db)
    mse_plain = (plain.x_hat - f).square().mean().item()
    assert mse_plain == pytest.approx(lmmse.item() / 2, rel=0.03) and mse.mean().item() <= mse_plain * 1.01


def test_single_mode_is_the_siso_and_mrc_mmse():
    no, P = 0.2, 1.0
    # 1 x 1: the pure formula equals the SISO MMSE error P N0 / (P |h|^2 + N0)
    h = torch.tensor([[0.7 - 0.4j]], dtype=torch.complex128)
    g = (torch.linalg.svdvals(h) ** 2 / no)
    p = mmse_power_allocation(g, P)
    assert p.item() == pytest.approx(P)
    assert eigenmode_mse(g, p).item() == pytest.approx(no / (P * abs(h.item()) ** 2 + no))
    # 1 x 3 (SIMO) and 3 x 1 (MISO, beamforming needs CSIT): one mode, 1 / (1 + P ||h||^2 / N0)
    hv = torch.tensor([0.7 - 0.4j, 0.2j, -1.1], dtype=torch.complex128)
    want = 1 / (1 + P * hv.abs().square().sum().item() / no)
    f = torch.randint(0, 2, (300, 1000), generator=torch.Generator().manual_seed(2)).double() * 2 - 1
    for H in (hv.reshape(3, 1), hv.reshape(1, 3)):
        out = AnalogLink(FixedH(H, seed=0), precoding="svd")(f, snr_db=-10 * math.log10(no))
        assert out.channel_uses == 500
        assert (out.x_hat - f).square().mean().item() == pytest.approx(want, rel=0.03)


def test_rayleigh_svd_beats_lmmse_and_eigenmodes_reconstruct_h():
    h = make_channel("rayleigh(num_tx=2,num_rx=3)", seed=0)(torch.zeros(5, 2, 7, dtype=torch.complex64), 0.1).h
    U, s, V = svd_eigenmodes(h)
    rec = U @ torch.diag_embed(s).to(U.dtype) @ V.conj().transpose(-1, -2)
    torch.testing.assert_close(rec, h.movedim(-1, -3), atol=1e-5, rtol=1e-5)
    f = torch.randn(300, 512, generator=torch.Generator().manual_seed(1))
    spec = "rayleigh(num_tx=2,num_rx=2,block_length=4)"
    a = AnalogLink(make_channel(spec, seed=3), precoding="svd")(f, snr_db=10.0)
    b = AnalogLink(make_channel(spec, seed=3))(f, snr_db=10.0)
    assert a.channel_uses == b.channel_uses == 128
    assert (a.x_hat - f).square().mean() < 0.97 * (b.x_hat - f).square().mean()   # ~6 % at 10 dB


def test_bad_inputs():
    with pytest.raises(ValueError, match="precoding"):
        AnalogLink(make_channel("rayleigh(num_tx=2,num_rx=2)"), precoding="zf")
    with pytest.raises(ValueError, match="csi='perfect'"):
        AnalogLink(make_channel("rayleigh(num_tx=2,num_rx=2)"), precoding="svd", csi="ls")
    with pytest.raises(ValueError, match="equalizer='mmse'"):
        AnalogLink(make_channel("rayleigh(num_tx=2,num_rx=2)"), precoding="svd", equalizer="zf")
    with pytest.raises(ValueError, match="total_power"):
        mmse_power_allocation(torch.ones(2), 0.0)
    with pytest.raises(ValueError, match="gains"):
        mmse_power_allocation(torch.tensor([-1.0, 1.0]), 1.0)
