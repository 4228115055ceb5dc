"""KLT and transform coder: held-out distortion against the Lloyd-Max theory and the RD bound."""
import numpy as np
import pytest
import torch

from phy.theory.ratedistortion import distortion_rate, lloyd_max_gaussian
from phy.source.transform import KLT, TransformCoder


def _source(n=20000, d=16, rho=0.8, seed=0):
    g = torch.Generator().manual_seed(seed)
    lam = rho ** torch.arange(d, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))   # random rotation
    z = torch.randn(n, d, generator=g, dtype=torch.float64) * lam.sqrt()
    return z @ q.T + 3.0, lam, q


def test_klt_recovers_eigenvalues_and_is_orthonormal():
    x, lam, q = _source()
    k = KLT().fit(x[:16000])
    np.testing.assert_allclose(k.eigenvalues.numpy(), lam.numpy(), rtol=0.05)
    assert torch.allclose(k.basis.T @ k.basis, torch.eye(16, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(k.inverse(k.forward(x[16000:])), x[16000:], atol=1e-9)
    assert k.energy == pytest.approx(float(lam.sum()) + 16 * 9.0, rel=0.02)


def test_coder_distortion_on_held_out_items_matches_lloyd_max_theory():
    x, lam, _ = _source()
    for bits in (8, 24, 48):
        c = TransformCoder(bits).fit(x[:16000])
        assert c.used_bits == bits
        xh = c.decode(c.encode(x[16000:]), torch.float64)
        mse = float(((xh - x[16000:]) ** 2).sum(1).mean())
        # theory: sum_i lambda_i d_LM(b_i) with the true eigenvalues
        theory = sum(float(l) * (1.0 if b == 0 else lloyd_max_gaussian(int(b)).mse)
                     for l, b in zip(lam, c.bits_per_component.tolist()))
        assert mse == pytest.approx(theory, rel=0.06)
        d_rd = distortion_rate(lam.numpy(), bits)
        assert d_rd <= mse <= d_rd * 10 ** 0.435 * 1.1     # fixed-rate scalar: at most ~4.35 dB above D(R)


def test_zero_bits_and_constant_features():
    x, _, _ = _source(n=100)
    c = TransformCoder(0).fit(x)
    assert c.used_bits == 0 and c.encode(x).shape == (100, 0)
    assert torch.allclose(c.decode(torch.zeros(100, 0), torch.float64), x.mean(0).expand(100, -1))
    const = torch.full((50, 4), 2.5)
    c = TransformCoder(16).fit(const)
    assert c.used_bits == 0 and c.klt.rank == 0
    assert torch.equal(c.decode(c.encode(const)), const)


def test_results_do_not_depend_on_the_thread_count():
    x, _, _ = _source(n=3000, d=64)
    n = torch.get_num_threads()
    outs = []
    for t in (1, 2):
        torch.set_num_threads(t)
        try:
            c = TransformCoder(100).fit(x[:2000])
            outs.append(c.decode(c.encode(x[2000:]), torch.float64))
        finally:
            torch.set_num_threads(n)
    assert torch.equal(outs[0], outs[1])


def test_bad_inputs():
    with pytest.raises(ValueError, match="total_bits"):
        TransformCoder(-1)
    with pytest.raises(ValueError, match="max_bits_per_component"):
        TransformCoder(4, max_bits_per_component=13)
    with pytest.raises(ValueError, match="NaN"):
        KLT().fit(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="at least 2"):
        KLT().fit(torch.ones(1, 3))
    with pytest.raises(RuntimeError, match="not fitted"):
        TransformCoder(3).encode(torch.ones(2, 2))
    c = TransformCoder(6).fit(torch.randn(100, 3))
    with pytest.raises(ValueError, match="bits must be"):
        c.decode(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="columns"):
        c.encode(torch.randn(2, 4))
