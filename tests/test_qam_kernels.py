"""The compiled Gray-QAM kernels against Sionna's Mapper/Demapper outputs."""
import math

import pytest
import torch

from phy.mapping import qam_kernels as qk
from phy.mapping.modulation import QAM

pytestmark = pytest.mark.skipif(not qk.available(), reason="numba not installed")

MODS = ["qpsk", "16qam", "64qam", "256qam"]


@pytest.mark.parametrize("mod", MODS)
@pytest.mark.parametrize("method", ["app", "maxlog"])
def test_demap_equals_sionna_demapper(mod, method):
    """Same logits as Sionna's Demapper on random symbols at low, medium and high SNR, with one N0
    per call, per example ([B, 1]) and per symbol ([B, n], the ZF case)."""
    q = QAM(mod, demapping=method)
    m = q.bits_per_symbol
    gen = torch.Generator().manual_seed(m)
    bits = torch.randint(0, 2, (16, 24 * m), generator=gen).float()
    x = q.modulate(bits)
    for no in (0.01, torch.rand(16, 1, generator=gen) + 0.1, 0.05 + 2 * torch.rand(16, 24, generator=gen)):
        no_t = torch.as_tensor(no, dtype=torch.float32)
        noise = torch.complex(torch.randn(x.shape, generator=gen), torch.randn(x.shape, generator=gen))
        y = x + (no_t / 2).sqrt() * noise
        ref = q.demodulate(y, no_t.expand(y.shape) if no_t.dim() else no_t)
        got = qk.demap(y, no, mod, method)
        assert got.shape == ref.shape and got.dtype == torch.float32
        torch.testing.assert_close(got, ref, rtol=2e-5, atol=2e-4 * max(1.0, float(ref.abs().max()) / 100))


@pytest.mark.parametrize("mod", MODS)
def test_scrambled_symbols_are_sionnas_points_of_the_scrambling_bits(mod):
    q = QAM(mod)
    x = qk.scrambled_symbols((3, 40), mod, key=2**64 - 5)
    bits = qk.scrambling_bits((3, 40), mod, key=2**64 - 5)
    torch.testing.assert_close(x, q.modulate(bits), rtol=0, atol=1e-6)
    # uniform labels: every bit position is a fair coin (5 sigma)
    many = qk.scrambling_bits((4000,), mod, key=3).reshape(4000, -1).mean(dim=0)
    assert (many - 0.5).abs().max() < 5 * 0.5 / math.sqrt(4000)


def test_descrambled_logits_are_flipped_sionna_logits():
    mod = "16qam"
    x = qk.scrambled_symbols((8, 30), mod, key=99)
    s = qk.scrambling_bits((8, 30), mod, key=99)
    y = x + 0.3 * torch.randn(x.shape, dtype=torch.complex64)
    ref = QAM(mod).demodulate(y, 0.2) * (1 - 2 * s)
    torch.testing.assert_close(qk.demap(y, 0.2, mod, key=99), ref, rtol=2e-5, atol=2e-4)


def test_bad_input():
    y = torch.zeros(2, 4, dtype=torch.complex64)
    with pytest.raises(ValueError, match="method"):
        qk.demap(y, 1.0, "16qam", "exact")
    with pytest.raises(TypeError, match="complex64"):
        qk.demap(y.to(torch.complex128), 1.0, "16qam")
    with pytest.raises(ValueError, match="> 0"):
        qk.demap(y, 0.0, "16qam")
    with pytest.raises(ValueError, match="no of shape"):
        qk.demap(y, torch.ones(3, 1), "16qam")
    with pytest.raises(ValueError, match="modulation"):
        qk.pam_tables("8psk")
    with pytest.raises(ValueError, match="key"):
        qk.scrambled_symbols((2, 4), "qpsk", key=-1)
