"""phy.mimo.csi: LS MIMO channel estimates from orthogonal pilots -- the error variance of the
derivation checked by an explicit pilot simulation, one estimate per coherence block, the ledger."""
import math

import pytest
import torch

from phy.channel.registry import make_channel
from phy.mimo.equalization import Equalizer
from phy.link.analog import AnalogLink
from phy.link.digital import DigitalLink
from phy.mimo.csi import estimate_mimo_csi, ls_error_variance, ls_pilot_uses


@pytest.mark.parametrize("num_tx, num_pilots", [(2, 1), (3, 2)])
def test_explicit_orthogonal_pilot_ls_has_the_documented_error_variance(num_tx, num_pilots):
    """Send DFT pilots (total energy 1 per use) through the channel, LS-estimate H, measure the error."""
    num_rx, T, no, B = 2, num_tx * num_pilots, 0.3, 20000
    ch = make_channel(f"rayleigh(num_tx={num_tx},num_rx={num_rx},block_length={T})", seed=4)
    t = torch.arange(num_tx, dtype=torch.float64)[:, None]
    k = torch.arange(T, dtype=torch.float64)[None, :]
    P = (torch.polar(torch.ones(num_tx, T, dtype=torch.float64), -2 * math.pi * t * k / T) / math.sqrt(num_tx))
    P = P.to(torch.complex64)
    assert torch.allclose((P.abs() ** 2).sum(0), torch.ones(T))              # energy 1 per channel use
    out = ch(P.expand(B, num_tx, T), no=no)                                     # Y = H P + N, H constant
    H = out.h[..., 0]                                                            # [B, num_rx, num_tx]
    H_ls = out.y @ P.conj().T @ torch.linalg.inv(P @ P.conj().T)
    err = (H_ls - H).to(torch.complex128)
    want = ls_error_variance(no, num_pilots)
    assert want == pytest.approx(no / num_pilots)
    assert err.abs().square().mean().item() == pytest.approx(want, rel=0.02)    # std ~ 0.5 %
    # independent entries: correlation between two entries ~ 0
    e = err.reshape(B, -1)
    c = (e[:, 0] * e[:, -1].conj()).mean().abs().item() / want
    assert c < 0.03
    # the shortcut draws errors with the same law
    g = torch.Generator().manual_seed(0)
    est = estimate_mimo_csi(out.h, out.no.reshape(1, 1, 1).expand(B, 1, 1), "ls", g, num_pilots, block_length=T)
    e2 = (est - out.h)[..., 0].to(torch.complex128)
    assert e2.abs().square().mean().item() == pytest.approx(want, rel=0.02)
    assert (e2.real.var() / e2.imag.var()).item() == pytest.approx(1.0, rel=0.05)


def test_estimate_is_constant_within_each_coherence_block():
    h = make_channel("rayleigh(num_tx=2,num_rx=3,block_length=5)", seed=1)(
        torch.ones(4, 2, 20, dtype=torch.complex64), no=0.1).h
    est = estimate_mimo_csi(h, torch.full((4, 1, 1), 0.1), "ls", torch.Generator().manual_seed(2), block_length=5)
    e = (est - h).reshape(4, 3, 2, 4, 5)
    assert torch.equal(e, e[..., :1].expand_as(e))            # one error per block
    assert not torch.equal(e[..., 0, 0], e[..., 1, 0])         # fresh error in the next block
    assert torch.equal(estimate_mimo_csi(h, 0.1, "perfect", None), h)


def test_links_count_the_pilots_and_estimated_csi_costs_mse():
    spec = "rayleigh(num_tx=2,num_rx=2,block_length=4)"
    f = torch.randn(500, 64, generator=torch.Generator().manual_seed(0))   # 32 symbols -> 16 uses -> 4 blocks
    perfect = AnalogLink(make_channel(spec, seed=3))(f, snr_db=10.0)
    out = AnalogLink(make_channel(spec, seed=3), csi="ls", num_pilots=3)(f, snr_db=10.0)
    assert out.info["data_uses"] == 16 and out.info["pilot_uses"] == 3 * 2 * 4 == ls_pilot_uses(16, 2, 3, 4)
    assert out.channel_uses == 16 + 24
    mse_p = (perfect.x_hat - f).square().mean().item()
    mse_ls = (out.x_hat - f).square().mean().item()
    assert mse_ls > 1.05 * mse_p
    d = DigitalLink(make_channel(spec, seed=3), code="none", code_kwargs={"k": 64}, csi="ls", num_pilots=1)
    res = d(torch.randint(0, 2, (8, 64)).float(), snr_db=30.0)
    assert res.info["pilot_uses"] == 1 * 2 * math.ceil(res.info["data_uses"] / 4)
    assert Equalizer(csi="ls", num_pilots=2).pilot_uses(8, make_channel("rayleigh(num_tx=3,num_rx=1)")) == 48


def test_bad_inputs():
    h = torch.ones(2, 2, 2, 4, dtype=torch.complex64)
    g = torch.Generator()
    with pytest.raises(ValueError, match="csi must be one of"):
        estimate_mimo_csi(h, 0.1, "blind", g)
    with pytest.raises(ValueError, match=r"\[..., 1, 1\]"):
        estimate_mimo_csi(h, torch.full((2, 2, 4), 0.1), "ls", g)
    with pytest.raises(ValueError, match="num_rx, num_tx, n"):
        estimate_mimo_csi(torch.ones(4, dtype=torch.complex64), 0.1, "ls", g)
    with pytest.raises(ValueError, match="num_pilots"):
        ls_pilot_uses(4, 2, 0)
