"""phy.channel.kernels: the counter-based generator against an independent float64 reference, its
statistics against the Gaussian law, the fused kernels against the torch formulas, and the kernel
path of phy.channel (backends, autograd, non-finite input)."""
import math

import numpy as np
import pytest
import torch
from scipy import special, stats

from phy.channel import kernels as ck
from phy.channel.flat import AWGN, FlatFading, Rayleigh, Rician
from phy.mimo.equalization import Equalizer, equalize

pytestmark = pytest.mark.skipif(not ck.available(), reason="numba not installed")


def reference_cn(key, n):
    """CN(0, 1) samples 0..n-1 of stream ``key``, computed independently in float64 with numpy."""
    i = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(key) + i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    a = (z >> np.uint64(24)).astype(np.float64)
    r = np.sqrt(-np.log((2 * a + 1) / 2.0 ** 41))
    t = (z & np.uint64(0xFFFFFF)).astype(np.int64)
    phi = ((t & 0x3FFFFF) + 0.5) * 2.0 ** -22 * np.pi / 2 - np.pi / 4 + (t >> 22) * np.pi / 2
    return r * np.exp(1j * phi)


@pytest.mark.parametrize("key", [0, 12345, 2**64 - 1])
def test_samples_match_float64_reference(key):
    n = 1 << 18
    got = ck.complex_normal((n,), key).numpy().astype(np.complex128)
    want = reference_cn(key, n)
    assert np.abs(got - want).max() < 2e-6  # float32 rounding of values up to ~5
    assert np.max(np.abs(got - want) / np.abs(want)) < 1e-6


def _edge_words():
    """64-bit words at every branch of the 32-bit range reduction: a zero high word (u < 2**-32),
    every leading-zero count of the high word, u next to 1 (tiny -ln u), the fold at 1/sqrt(2)."""
    lows = [0, 0x00ABCDEF, 0x7F000000, 0xFF000000, 0xFFFFFFFF]
    his = [0, 1, 2, 3, 0xB504F333, 0xB504F334, 0xB504F335, 0xFFFFFFFE, 0xFFFFFFFF]
    his += [(1 << k) + d for k in range(32) for d in (-1, 0, 1) if 0 <= (1 << k) + d < 1 << 32]
    rng = np.random.default_rng(7)
    words = [(h << 32) | lo for h in his for lo in lows] + [int(w) for w in rng.integers(0, 2**63, 2000)]
    return np.array(sorted(set(words)), dtype=np.uint64)


def test_exponential_draw_at_range_reduction_edges():
    from numba import njit

    @njit
    def draw(words, e, t):
        for i in range(words.size):
            e[i], t[i] = ck._exp1(words[i])

    words = _edge_words()
    e, t = np.empty(words.size, np.float32), np.empty(words.size, np.uint32)
    draw(words, e, t)
    for w, got, low in zip(words.tolist(), e.tolist(), t.tolist()):
        num = 2 * (w >> 24) + 1                                   # u = num / 2**41, exact integers
        want = -math.log1p((num - 2**41) / 2**41) if num > 2**40 else -math.log(num / 2**41)
        assert got == pytest.approx(want, rel=3e-7, abs=0), hex(w)  # relative: also for -ln u ~ 1e-12
        assert low == w & 0xFFFFFF


def test_gaussian_statistics():
    n = 1 << 21
    z = ck.complex_normal((n,), 987654321).to(torch.complex128)
    re, im = z.real.numpy(), z.imag.numpy()
    se = 1 / math.sqrt(n)
    assert abs(re.mean()) < 5 * se * math.sqrt(0.5) and abs(im.mean()) < 5 * se * math.sqrt(0.5)
    # E|z|^2 = 1 (variance of |z|^2 ~ Exp(1) is 1), 1/2 per real dimension
    assert abs((np.abs(z.numpy()) ** 2).mean() - 1) < 5 * se
    assert abs(re.var() - 0.5) < 5 * se and abs(im.var() - 0.5) < 5 * se
    assert abs(np.corrcoef(re, im)[0, 1]) < 5 * se                 # independent components
    assert abs(np.corrcoef(re[:-1], re[1:])[0, 1]) < 5 * se        # consecutive samples uncorrelated
    # Kolmogorov-Smirnov against N(0, 1/2) on both components
    for c in (re, im):
        assert stats.kstest(c[: 1 << 19], "norm", args=(0, math.sqrt(0.5))).pvalue > 1e-3
    # 3-sigma and 4-sigma tails against 2 Q(k) (binomial 5-sigma band)
    for k in (3.0, 4.0):
        p = special.erfc(k / math.sqrt(2))
        cnt = int((np.abs(re) > k * math.sqrt(0.5)).sum())
        assert abs(cnt - n * p) < 5 * math.sqrt(n * p) + 1
    # the radius is bounded by sqrt(41 ln 2) and never 0
    rad = np.abs(z.numpy())
    assert rad.max() <= math.sqrt(41 * math.log(2)) + 1e-5 and rad.min() > 0


def test_output_does_not_depend_on_thread_count():
    x = torch.randn(64, 5000, dtype=torch.complex64)
    no = torch.rand(64, 1) + 0.1
    old = torch.get_num_threads()
    outs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            outs.append(ck.flat_fading(x, no, 77))
    finally:
        torch.set_num_threads(old)
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


def test_awgn_kernel_is_x_plus_scaled_stream_per_row():
    x = torch.randn(3, 40000, dtype=torch.complex64)
    no = torch.tensor([[0.01], [1.0], [4.0]])
    y, finite = ck.awgn(x, no, key=5)
    assert finite
    n = ck.complex_normal(x.shape, ck.split_key(5, 0))
    torch.testing.assert_close(y, x + n * no.sqrt(), rtol=1e-5, atol=1e-5)
    measured = (y - x).abs().square().mean(-1)
    assert torch.allclose(measured, no.squeeze(-1), rtol=0.03)
    # a scalar N0 gives the same noise as a constant per-row N0
    y_s, _ = ck.awgn(x, 0.25, key=5)
    y_r, _ = ck.awgn(x, torch.full((3, 1), 0.25), key=5)
    assert torch.equal(y_s, y_r)


@pytest.mark.parametrize("k_factor", [0.0, 3.0])
def test_flat_fading_kernel_is_h_x_plus_n(k_factor):
    x = torch.randn(4, 30000, dtype=torch.complex64)
    scale = math.sqrt(1 / (k_factor + 1))
    los = math.sqrt(k_factor / (k_factor + 1)) * complex(math.cos(0.3), math.sin(0.3))
    y, h, finite = ck.flat_fading(x, 0.2, key=9, scale=scale, los=los)
    assert finite
    g = ck.complex_normal(x.shape, ck.split_key(9, 1))
    n = ck.complex_normal(x.shape, ck.split_key(9, 0))
    torch.testing.assert_close(h, g * scale + los, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y, h * x + n * math.sqrt(0.2), rtol=1e-5, atol=1e-5)
    assert abs(h.abs().square().mean().item() - 1) < 0.02            # E|h|^2 = 1 for every K
    assert abs(complex(h.mean().item()) - los) < 0.02


@pytest.mark.parametrize("method", ["zf", "mmse"])
def test_fused_equalizer_matches_equalize_of_channel_output(method):
    x = torch.randn(8, 20000, dtype=torch.complex64)
    no = torch.linspace(0.01, 2.0, 8).reshape(8, 1)
    y, h, _ = ck.flat_fading(x, no, key=3)
    want_x, want_no = equalize(y, h, no, method, power=1.5)
    x_hat, no_eff, finite = ck.flat_fading_equalized(x, no, key=3, method=method, power=1.5)
    assert finite
    # ZF divides by |h|^2 (tiny for deep fades): compare relative to the magnitude
    assert ((x_hat - want_x).abs() / (want_x.abs() + 1e-3)).max() < 1e-3
    assert ((no_eff - want_no).abs() / want_no).max() < 1e-3


def test_kernels_flag_non_finite_input():
    x = torch.zeros(2, 100, dtype=torch.complex64)
    x[1, 7] = complex(float("nan"), 0)
    assert ck.awgn(x, 0.1, 1)[1] is False
    assert ck.flat_fading(x, 0.1, 1)[2] is False
    x[1, 7] = complex(0, float("inf"))
    assert ck.flat_fading_equalized(x, 0.1, 1)[2] is False
    with pytest.raises(ValueError, match="x must be finite, got 1 NaN/Inf"):
        AWGN(seed=0)(x, 0.1)
    with pytest.raises(ValueError, match="x must be finite"):
        Rayleigh(seed=0).forward_equalized(x, 0.1)


def test_bad_arguments():
    x = torch.zeros(2, 8, dtype=torch.complex64)
    with pytest.raises(TypeError, match="complex64 CPU tensor"):
        ck.awgn(x.to(torch.complex128), 0.1, 1)
    with pytest.raises(ValueError, match=r"one value per example \(\[\.\.\., 1\]\)"):
        ck.awgn(x, torch.full((2, 8), 0.1), 1)
    with pytest.raises(ValueError, match="method must be 'zf' or 'mmse', got 'lmmse'"):
        ck.flat_fading_equalized(x, 0.1, 1, method="lmmse")
    with pytest.raises(ValueError, match="backend must be one of"):
        AWGN(backend="cuda")
    with pytest.raises(ValueError, match="backend='numba' needs complex64 CPU symbols"):
        AWGN(seed=0, backend="numba")(x.to(torch.complex128), 0.1)
    assert ck.noise_rows(torch.full((2, 8), 0.1), x.shape) is None
    for key in (-1, 2**64, 1.5, True):
        with pytest.raises(ValueError, match=r"key must be an int in \[0, 2\*\*64\)"):
            ck.complex_normal((4,), key)
        with pytest.raises(ValueError, match="key must be an int"):
            ck.awgn(x, 0.1, key)


def test_channel_uses_kernel_on_cpu_and_torch_elsewhere():
    x = torch.randn(4, 1000, dtype=torch.complex64)
    y_auto = AWGN(seed=1)(x, 0.5).y
    y_numba = AWGN(seed=1, backend="numba")(x, 0.5).y
    y_torch = AWGN(seed=1, backend="torch")(x, 0.5).y
    assert torch.equal(y_auto, y_numba) and not torch.allclose(y_auto, y_torch)
    # the kernel path: key drawn from the channel's generator, noise from the kernel stream
    key = ck.draw_key(torch.Generator().manual_seed(1))
    torch.testing.assert_close(y_auto, ck.awgn(x, 0.5, key)[0])
    # per-symbol N0 and complex128 fall back to torch under "auto"
    no_sym = torch.full((4, 1000), 0.5)
    assert AWGN(seed=1)(x, no_sym).y.shape == x.shape
    assert AWGN(seed=1)(x.to(torch.complex128), 0.5).y.dtype == torch.complex128
    # block fading draws h in torch and the noise in the kernel
    out = Rayleigh(block_length=10, seed=2)(x, 0.1)
    assert torch.equal(out.h[:, :10], out.h[:, :1].expand(4, 10))


def test_differentiable_input_sees_the_same_random_numbers():
    x = torch.randn(3, 500, dtype=torch.complex64)
    for ch_cls in (AWGN, Rayleigh):
        with torch.no_grad():
            ref = ch_cls(seed=4)(x, 0.3)
        xg = x.clone().requires_grad_(True)
        out = ch_cls(seed=4)(xg, 0.3)
        torch.testing.assert_close(out.y.detach(), ref.y, rtol=1e-5, atol=1e-5)
        (out.y.real.square().sum() + 2 * out.y.imag.sum()).backward()
        # independent autograd of the explicit formula y = h x + n with the same h, n
        h = ref.h if ref.h is not None else torch.ones_like(x)
        n = ref.y - h * x
        x2 = x.clone().requires_grad_(True)
        y2 = h * x2 + n
        (y2.real.square().sum() + 2 * y2.imag.sum()).backward()
        torch.testing.assert_close(xg.grad, x2.grad, rtol=1e-4, atol=1e-4)


def test_forward_equalized_matches_forward_then_equalize():
    x = torch.randn(16, 2048, dtype=torch.complex64)
    no = torch.full((16, 1), 0.2)
    for ch in (Rayleigh, lambda seed: Rician(k_factor=2.0, los_phase=1.0, seed=seed)):
        for method in ("zf", "mmse"):
            x_hat, no_eff, no_used = ch(seed=6).forward_equalized(x, no, method)
            out = ch(seed=6)(x, no)
            want_x, want_no = equalize(out.y, out.h, out.no, method)
            assert ((x_hat - want_x).abs() / (want_x.abs() + 1e-3)).max() < 1e-3
            assert ((no_eff - want_no).abs() / want_no).max() < 1e-3
            assert torch.equal(no_used, out.no)
    # AWGN (no fading) and estimated CSI take the unfused route with identical results
    eq = Equalizer("zf", csi="ls")
    x_hat, no_eff, _ = eq.transmit(Rayleigh(seed=8), x, no)
    ch = Rayleigh(seed=8)
    out = ch(x, no)
    want = eq(out, ch.generator("cpu"))
    assert torch.equal(x_hat, want[0]) and torch.equal(no_eff, want[1])


def test_rayleigh_zf_ber_of_qpsk_against_closed_form():
    """End to end through the fused kernel: uncoded QPSK over i.i.d. Rayleigh with ZF,
    BER = (1 - sqrt(g / (1 + g))) / 2 with g = Es/N0 / 2 per bit dimension."""
    n = 1 << 20
    gen = torch.Generator().manual_seed(0)
    bits = torch.randint(0, 2, (2, n), generator=gen)
    x = torch.complex(1 - 2 * bits[0].float(), 1 - 2 * bits[1].float()) / math.sqrt(2)
    for snr_db in (0.0, 10.0):
        no = 10 ** (-snr_db / 10)
        x_hat, _, _ = FlatFading(seed=1).forward_equalized(x.reshape(1, -1), no, "zf")
        err = ((x_hat.real < 0).long() != bits[0]).sum() + ((x_hat.imag < 0).long() != bits[1]).sum()
        ber = err.item() / (2 * n)
        g = 10 ** (snr_db / 10) / 2
        theory = 0.5 * (1 - math.sqrt(g / (1 + g)))
        assert abs(ber - theory) < 5 * math.sqrt(theory / (2 * n)) + 1e-5


def test_kernels_keep_torch_thread_count():
    """numba's OpenMP layer sets the process-wide thread count; torch's setting must survive."""
    old = torch.get_num_threads()
    x = torch.randn(4, 70000, dtype=torch.complex64)
    try:
        for threads in (1, 2, 1):
            torch.set_num_threads(threads)
            AWGN(seed=0)(x, 0.1)
            Rayleigh(seed=0).forward_equalized(x, 0.1)
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(old)


def test_subclass_fading_may_return_none_on_the_kernel_path():
    class Sometimes(Rayleigh):
        def fading(self, x, generator):
            return None if x.shape[-1] == 8 else super().fading(x, generator)

    x = torch.randn(2, 8, dtype=torch.complex64)
    out = Sometimes(seed=0)(x, 1e-8)
    assert out.h is None and torch.allclose(out.y, x, atol=1e-3)
    out = Sometimes(seed=0)(torch.randn(2, 6, dtype=torch.complex64), 0.1)
    assert out.h is not None and out.h.shape == (2, 6)


_CACHE_PROBE = """
import hashlib, torch
from phy.channel import kernels as ck
torch.manual_seed(0)
x = torch.randn(16, 3000, dtype=torch.complex64)
no = torch.full((16, 1), 0.3)
parts = [ck.flat_fading_equalized(x, no, 5, method=m)[:2] for m in ("mmse", "zf")]
parts += [ck.flat_fading(x, no, 5)[:2], ck.awgn(x, no, 5)[:1]]
print(hashlib.sha1(b"".join(t.numpy().tobytes() for p in parts for t in p)).hexdigest())
"""


@pytest.mark.slow
def test_kernels_give_the_same_bits_when_compiled_and_when_loaded_from_cache(tmp_path):
    """The first process compiles the kernels into an empty cache, the second loads them: same bits."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    digests = [subprocess.run([sys.executable, "-c", _CACHE_PROBE], env=env, capture_output=True, text=True,
                              check=True).stdout.strip() for _ in range(2)]
    assert len(digests[0]) == 40 and digests[0] == digests[1]
