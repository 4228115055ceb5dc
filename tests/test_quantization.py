"""Uniform quantiser: step^2/12 MSE, midpoint reconstruction, bit round trips, fitting, errors."""
import math

import numpy as np
import pytest
import torch

from phy.source.quantization import UniformQuantizer


def test_high_resolution_mse_equals_step_squared_over_12():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(200_000, generator=g, dtype=torch.float64) * 4 - 2  # uniform in [-2, 2)
    for bits in (6, 8, 10):
        q = UniformQuantizer(bits, clip=(-2.0, 2.0))
        assert q.step == pytest.approx(4 / 2 ** bits)
        err = (q.dequantize(q.quantize(x), dtype=torch.float64) - x)
        mse = err.pow(2).mean().item()
        assert mse == pytest.approx(q.theoretical_mse(), rel=0.02)
        assert err.abs().max().item() <= q.step / 2 + 1e-12


def test_levels_and_midpoints_independent():
    q = UniformQuantizer(3, clip=(0.0, 8.0))  # step 1: cell i = [i, i+1), midpoint i + 0.5
    x = torch.tensor([-5.0, 0.0, 0.99, 1.0, 3.5, 7.99, 8.0, 100.0])
    assert q.quantize(x).tolist() == [0, 0, 0, 1, 3, 7, 7, 7]
    assert q(x).tolist() == [0.5, 0.5, 0.5, 1.5, 3.5, 7.5, 7.5, 7.5]


@pytest.mark.parametrize("gray", [False, True])
def test_bit_round_trip_all_levels(gray):
    q = UniformQuantizer(5, clip=(-1.0, 1.0), gray=gray)
    levels = torch.arange(32).reshape(2, 16)
    bits = q.to_bits(levels)
    assert bits.shape == (2, 80)
    assert torch.equal(q.from_bits(bits), levels)
    codes = bits.reshape(32, 5)
    if gray:  # adjacent levels differ in exactly one bit
        assert all(int((codes[i] != codes[i + 1]).sum()) == 1 for i in range(31))
    else:  # natural binary, MSB first
        w = 2 ** torch.arange(4, -1, -1)
        assert torch.equal((codes.long() * w).sum(-1), torch.arange(32))
    x = torch.randn(3, 10)
    assert torch.equal(q.decode(q.encode(x)), q(x))


def test_fit_minmax_and_percentile():
    x = torch.cat([torch.linspace(-1, 1, 10001), torch.tensor([50.0])])
    q = UniformQuantizer(4).fit(x)
    assert (q.lo, q.hi) == (-1.0, 50.0)
    qp = UniformQuantizer(4, fit_mode="percentile", percentile=99.0).fit(x)
    ref_lo, ref_hi = np.percentile(x.numpy().astype(np.float64), [1.0, 99.0])
    assert qp.lo == pytest.approx(ref_lo) and qp.hi == pytest.approx(ref_hi)
    assert qp.hi < 1.0  # the outlier is clipped
    const = UniformQuantizer(2).fit(torch.full((5,), 3.0))
    assert const.lo < 3.0 < const.hi
    assert torch.allclose(const(torch.full((5,), 3.0)), torch.full((5,), 3.0), atol=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match="bits"):
        UniformQuantizer(0)
    with pytest.raises(ValueError, match="clip"):
        UniformQuantizer(4, clip=(1.0, -1.0))
    with pytest.raises(ValueError, match="fit_mode"):
        UniformQuantizer(4, fit_mode="std")
    with pytest.raises(RuntimeError, match="fit"):
        UniformQuantizer(4).quantize(torch.zeros(3))
    q = UniformQuantizer(4, clip=(0.0, 1.0))
    with pytest.raises(ValueError, match="multiple of bits=4"):
        q.from_bits(torch.zeros(2, 6))
    with pytest.raises(ValueError, match="finite"):
        q.quantize(torch.tensor([float("nan")]))
    with pytest.raises(TypeError):
        q.quantize(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="levels"):
        q.to_bits(torch.tensor([16]))
