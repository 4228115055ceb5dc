"""phy.link.analog.AnalogLink: feature MSE against the N0-driven theory, power normalisation, padding,
SNR sweeps, reproducibility, the channel-use ledger and input checks."""
import math

import pytest
import torch
from scipy.special import exp1

from phy.channel.flat import AWGN, Rayleigh
from phy.link.analog import AnalogLink
from phy.link.base import complex_to_real, real_to_complex, snr_to_no_tensor

B, M = 8, 1 << 16  # examples, reals per example


def make_features(batch=B, m=M, seed=0):
    """Gaussian features with very different per-example scales and means."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.logspace(-2, 2, batch).unsqueeze(-1)
    return torch.randn(batch, m, generator=g) * scales + 0.3 * scales


def symbol_power(features):
    """p_s: mean |s|^2 of each example's complex symbols (real pairs), padding included."""
    m = features.shape[-1]
    n = math.ceil(m / 2)
    return features.pow(2).sum(-1) / n


def check_ratio(mse, expected, m, k=5.0):
    """Each example's MSE over m reals is a mean of m (or m/2 i.i.d. pairs of) squared Gaussians:
    relative std sqrt(2/m)."""
    ratio = mse / expected
    tol = k * math.sqrt(2 / m)
    assert torch.all((ratio - 1).abs() < tol), (ratio, tol)


@pytest.mark.parametrize("power", [1.0, 2.0])
@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
def test_zf_awgn_feature_mse_matches_theory(power, snr_db):
    f = make_features()
    link = AnalogLink(AWGN(seed=1), equalizer="zf", power=power)
    out = link(f, snr_db=snr_db)
    assert out.x_hat.shape == f.shape and out.x_hat.dtype == f.dtype
    no = power * 10 ** (-snr_db / 10)
    torch.testing.assert_close(out.no, torch.full((B, 1), no))
    mse = (out.x_hat - f).double().pow(2).mean(-1)
    # per real element: (p_s / P) * N0 / 2
    check_ratio(mse, symbol_power(f).double() / power * no / 2, M)


@pytest.mark.parametrize("snr_db", [0.0, 10.0])
def test_mmse_awgn_feature_mse_matches_theory(snr_db):
    power = 1.0
    f = make_features(seed=1)
    out = AnalogLink(AWGN(seed=2), equalizer="mmse")(f, snr_db=snr_db)
    no = 10 ** (-snr_db / 10)
    mse = (out.x_hat - f).double().pow(2).mean(-1)
    # per real element: (p_s / P) * P N0 / (P + N0) / 2 (the example's mean |x|^2 is exactly P)
    check_ratio(mse, symbol_power(f).double() / power * power * no / (power + no) / 2, M)


@pytest.mark.parametrize("snr_db", [0.0, 10.0])
def test_mmse_rayleigh_feature_mse_matches_theory(snr_db):
    f = make_features(seed=2)
    out = AnalogLink(Rayleigh(seed=3), equalizer="mmse")(f, snr_db=snr_db)
    no = 10 ** (-snr_db / 10)
    mse = (out.x_hat - f).double().pow(2).mean(-1)
    # E over h ~ CN(0,1) of P N0 / (P|h|^2 + N0) = N0 e^a E1(a), a = N0 / P
    expected = symbol_power(f).double() * no * math.exp(no) * exp1(no) / 2
    ratio = (mse / expected)
    assert torch.all((ratio - 1).abs() < 0.03), ratio  # observed < 1.2 %


def test_zf_rayleigh_error_matches_effective_noise():
    f = make_features(seed=3)
    out = AnalogLink(Rayleigh(seed=4))(f, snr_db=5.0)
    # back to the symbol domain: (f_hat - f) paired / scale = x_hat - x, variance N0 / |h|^2
    d, _ = real_to_complex(out.x_hat - f)
    err = d / out.info["scale"]
    ratio = (err.abs().pow(2) / out.info["no_eff"]).mean(-1)
    assert torch.all((ratio - 1).abs() < 5 * math.sqrt(1 / (M / 2))), ratio


@pytest.mark.parametrize("channel", [AWGN(seed=0), Rayleigh(seed=0), Rayleigh(block_length=4, seed=0)])
@pytest.mark.parametrize("equalizer", ["zf", "mmse"])
def test_infinite_snr_returns_input(channel, equalizer):
    f = make_features(batch=4, m=1000)
    link = AnalogLink(channel, equalizer=equalizer)
    for kwargs in ({"snr_db": float("inf")}, {"no": 0.0}, {"snr_db": torch.full((4,), math.inf)}):
        out = link(f, **kwargs)
        torch.testing.assert_close(out.x_hat, f, rtol=1e-5, atol=1e-4)
        assert torch.count_nonzero(out.no) == 0


def test_per_example_power_independent_of_batch():
    f = make_features(batch=4, m=1001)
    for power in (1.0, 3.0):
        link = AnalogLink(AWGN(seed=0), power=power)
        x, scale, pad = link.encode(f)
        assert pad == 1 and x.shape == (4, 501)
        torch.testing.assert_close(x.abs().pow(2).mean(-1), torch.full((4,), power), rtol=1e-5, atol=0)
        torch.testing.assert_close(scale.squeeze(-1) ** 2 * power, symbol_power(f), rtol=1e-5, atol=0)
        f2 = f.clone()
        f2[1:] = torch.randn(3, 1001) * 1e4  # change every other example
        x2, _, _ = link.encode(f2)
        assert torch.equal(x2[0], x[0])  # example 0's transmitted symbols are unchanged
        out = link(f2, snr_db=10.0)
        torch.testing.assert_close(out.info["symbols"][0], x[0])
    # the explicit batch-wide variant does depend on the batch
    bw = AnalogLink(AWGN(seed=0), batchwide_power=True)
    xb, _, _ = bw.encode(f)
    xb2, _, _ = bw.encode(f2)
    assert not torch.allclose(xb[0], xb2[0])
    assert xb.abs().pow(2).mean().item() == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("shape", [(3, 5), (7,), (2, 3, 3), (1,)])
def test_odd_sizes_are_padded_and_removed(shape):
    f = torch.randn(4, *shape)
    numel = math.prod(shape)
    link = AnalogLink(Rayleigh(seed=1))
    assert link.channel_uses(shape) == math.ceil(numel / 2)
    out = link(f, snr_db=float("inf"))
    assert out.x_hat.shape == f.shape and out.channel_uses == math.ceil(numel / 2)
    torch.testing.assert_close(out.x_hat, f, rtol=1e-5, atol=1e-5)
    if numel % 2:
        sym = out.info["symbols"]
        assert torch.count_nonzero(sym[..., -1].imag) == 0  # the zero pad
    # pairing helpers: exact round trip
    z, pad = real_to_complex(f.reshape(4, -1))
    assert pad == numel % 2 and z.shape[-1] == math.ceil(numel / 2)
    assert torch.equal(complex_to_real(z, pad), f.reshape(4, -1))


def test_channel_uses_and_bcr():
    link = AnalogLink(AWGN(seed=0))
    assert link.channel_uses((32, 768)) == 12288
    assert link.channel_uses(15) == 8
    bcr = link.bandwidth_compression_ratio((3, 256, 256), feature_shape=(32, 768))
    assert bcr == pytest.approx(1 / 16)
    assert link.bandwidth_compression_ratio((3, 256, 256), convention="real",
                                            feature_shape=(32, 768)) == pytest.approx(1 / 8)
    out = link(torch.randn(2, 32, 768), snr_db=10.0)
    assert out.channel_uses == 12288 and out.x_hat.shape == (2, 32, 768)
    with pytest.raises(ValueError, match="feature_shape is required"):
        link.channel_uses()


def test_snr_sweep_in_one_pass_matches_per_point_runs():
    snrs = [0.0, 10.0, 20.0]
    f = make_features(batch=4, m=1 << 14, seed=5)
    link = AnalogLink(AWGN(seed=6), equalizer="zf")
    fs = f.unsqueeze(0).expand(len(snrs), *f.shape)
    out = link(fs, snr_db=torch.tensor(snrs).unsqueeze(-1), batch_dims=2)
    assert out.x_hat.shape == (3, 4, 1 << 14) and out.no.shape == (3, 4, 1)
    sweep_mse = (out.x_hat - fs).double().pow(2).mean(-1)  # [S, B]
    theory = symbol_power(f).double()
    for i, s in enumerate(snrs):
        no = 10 ** (-s / 10)
        torch.testing.assert_close(out.no[i], torch.full((4, 1), no))
        single = link(f, snr_db=s)
        single_mse = (single.x_hat - f).double().pow(2).mean(-1)
        check_ratio(sweep_mse[i], theory * no / 2, 1 << 14)
        check_ratio(single_mse, theory * no / 2, 1 << 14)
        # both are estimates of the same value: difference within combined Monte Carlo error
        assert torch.all((sweep_mse[i] / single_mse - 1).abs() < 5 * math.sqrt(4 / (1 << 14)))
    # one SNR per example also works
    per_ex = link(f, snr_db=torch.tensor([0.0, 10.0, 20.0, 30.0]))
    torch.testing.assert_close(per_ex.no.squeeze(-1), torch.tensor([1.0, 0.1, 0.01, 0.001]))


def test_same_seed_bit_identical():
    f = make_features(batch=3, m=999, seed=7)
    for ch_cls in (AWGN, Rayleigh):
        a = AnalogLink(ch_cls(seed=42), equalizer="mmse", csi="ls")
        b = AnalogLink(ch_cls(seed=42), equalizer="mmse", csi="ls")
        oa, ob = a(f, snr_db=5.0), b(f, snr_db=5.0)
        assert torch.equal(oa.x_hat, ob.x_hat)
        oa2 = a(f, snr_db=5.0)
        assert not torch.equal(oa.x_hat, oa2.x_hat)
        a.channel.reset()
        assert torch.equal(a(f, snr_db=5.0).x_hat, oa.x_hat)


def test_shared_channel_between_links():
    ch = Rayleigh(seed=0)
    l1, l2 = AnalogLink(ch), AnalogLink(ch, equalizer="mmse")
    assert l1.channel is l2.channel
    assert AnalogLink("rayleigh").channel.name == "rayleigh"


def test_float64_and_float16_features():
    f64 = torch.randn(2, 64, dtype=torch.float64)
    out = AnalogLink(AWGN(seed=0))(f64, snr_db=float("inf"))
    assert out.x_hat.dtype == torch.float64 and out.info["symbols"].dtype == torch.complex128
    torch.testing.assert_close(out.x_hat, f64)
    f16 = torch.randn(2, 64).half()
    out16 = AnalogLink(AWGN(seed=0))(f16, snr_db=float("inf"))
    assert out16.x_hat.dtype == torch.float16
    torch.testing.assert_close(out16.x_hat, f16)


def test_snr_to_no_tensor_shapes():
    no = snr_to_no_tensor(10.0, (2, 3), 1.0, torch.float32, "cpu")
    assert no.shape == (2, 3, 1) and torch.allclose(no, torch.tensor(0.1))
    with pytest.raises(ValueError, match=r"snr_db of shape \(4,\) must broadcast to the batch shape \(2, 3\)"):
        snr_to_no_tensor(torch.zeros(4), (2, 3), 1.0, torch.float32, "cpu")


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------
def test_analog_link_bad_input():
    link = AnalogLink(AWGN(seed=0))
    f = torch.randn(2, 16)
    with pytest.raises(TypeError, match="features must be a real floating-point tensor, got dtype torch.complex64"):
        link(f.to(torch.complex64), snr_db=10.0)
    with pytest.raises(TypeError, match="features must be a real floating-point tensor, got dtype torch.int64"):
        link(torch.ones(2, 16, dtype=torch.int64), snr_db=10.0)
    with pytest.raises(TypeError, match="features must be a real torch.Tensor, got list"):
        link([[1.0, 2.0]], snr_db=10.0)
    bad = f.clone()
    bad[1, 3] = float("nan")
    with pytest.raises(ValueError, match="features must be finite, got 1 NaN/Inf"):
        link(bad, snr_db=10.0)
    bad[1, 3] = float("inf")
    with pytest.raises(ValueError, match="features must be finite"):
        link(bad, snr_db=10.0)
    with pytest.raises(TypeError, match="snr_db must be a real number or a torch.Tensor, got str"):
        link(f, snr_db="10")
    with pytest.raises(TypeError, match="snr_db must be a real number or a torch.Tensor, got list"):
        link(f, snr_db=[0.0, 10.0])
    with pytest.raises(ValueError, match="snr_db must not be NaN"):
        link(f, snr_db=float("nan"))
    with pytest.raises(ValueError, match="snr_db must not contain NaN"):
        link(f, snr_db=torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match=r"snr_db of shape \(3,\) must broadcast to the batch shape \(2,\)"):
        link(f, snr_db=torch.zeros(3))
    with pytest.raises(ValueError, match="give exactly one of snr_db"):
        link(f)
    with pytest.raises(ValueError, match="give exactly one of snr_db"):
        link(f, snr_db=1.0, no=0.1)
    with pytest.raises(ValueError, match=r"no \(noise power N0\) must be >= 0"):
        link(f, no=-1.0)
    with pytest.raises(ValueError, match=r"no \(noise power N0\) must not be NaN"):
        link(f, no=float("nan"))
    with pytest.raises(ValueError, match=r"no of shape \(3,\) must broadcast to the batch shape \(2,\)"):
        link(f, no=torch.full((3, 1), 0.1))
    # one N0 per symbol is not a link-level quantity: refused, never broadcast along the symbols
    with pytest.raises(ValueError, match=r"no of shape \(8,\) must broadcast to the batch shape \(2,\)"):
        link(f, no=torch.full((8,), 0.1))
    with pytest.raises(ValueError, match="batch_dims must be a non-negative int"):
        link(f, snr_db=1.0, batch_dims=-1)
    with pytest.raises(ValueError, match="features must have feature dimensions after the 2 batch dim"):
        link(f, snr_db=1.0, batch_dims=2)
    with pytest.raises(ValueError, match=r"block_length=3 must divide the number of channel uses; x has n=8"):
        AnalogLink(Rayleigh(block_length=3, seed=0))(f, snr_db=10.0)
    with pytest.raises(ValueError, match="power must be a positive number"):
        AnalogLink(AWGN(), power=0.0)
    with pytest.raises(TypeError, match="channel must be a phy.channel.base.Channel or a registered name, got int"):
        AnalogLink(3)
    with pytest.raises(ValueError, match="unknown channel"):
        AnalogLink("fading-of-doom")
    with pytest.raises(ValueError, match="equalizer must be one of"):
        AnalogLink(AWGN(), equalizer="ml")


def test_gradients_flow_and_stay_finite_with_an_all_zero_example():
    for ch in (AWGN(seed=0), Rayleigh(seed=0)):
        for eq in ("zf", "mmse"):
            f = torch.randn(3, 64)
            f[1] = 0.0  # e.g. a dead ReLU output: must not poison the batch's gradients with NaN
            f.requires_grad_(True)
            out = AnalogLink(ch, equalizer=eq)(f, snr_db=10.0)
            assert torch.count_nonzero(out.x_hat[1].detach()) == 0
            out.x_hat.pow(2).sum().backward()
            assert torch.isfinite(f.grad).all()
            assert f.grad[0].abs().sum() > 0 and f.grad[2].abs().sum() > 0


def test_features_view_at_odd_storage_offset():
    buf = torch.randn(2 * 16 + 1)
    f = buf[1:].view(2, 16)  # even length but odd offset: view_as_complex would refuse it
    assert f.storage_offset() == 1
    out = AnalogLink(AWGN(seed=0))(f, snr_db=float("inf"))
    torch.testing.assert_close(out.x_hat, f)
    g = torch.randn(4, 10)[:, ::2]  # strided
    torch.testing.assert_close(AnalogLink(AWGN(seed=0))(g, no=0.0).x_hat, g)


def test_analog_link_per_example_noise_power():
    """``no`` of shape [B] is one N0 per example, even when B equals the number of symbols."""
    f = torch.randn(4, 8)  # 4 examples, 4 complex symbols each: B == n
    out = AnalogLink(AWGN(seed=3))(f, no=torch.tensor([0.0, 0.0, 1.0, 1.0]))
    assert torch.allclose(out.x_hat[:2], f[:2], atol=1e-6)
    assert (out.x_hat[2:] - f[2:]).abs().max() > 1e-2
    assert out.no.shape == (4, 1)


@pytest.mark.parametrize("bad", [(-3, 4), (0, 8), (), (2.5, 4), 0, -5, "ab", (True, 4)])
def test_channel_uses_rejects_bad_feature_shape(bad):
    # previously (-3, 4) gave -6 channel uses and (0, 8) gave 0, silently
    link = AnalogLink(AWGN(seed=0))
    with pytest.raises(ValueError, match="feature_shape"):
        link.channel_uses(bad)
