"""phy.interop.bridge: DLPack zero-copy exchange and the TensorFlow channel adapter.

The misaligned/strided TensorFlow cases would abort the interpreter (not raise) if the bridge
handed them to TensorFlow unchanged; the bridge's alignment logic was checked in a separate
process before these tests were written, so here they run in-process.
"""
import importlib.util
import math

import numpy as np
import pytest
import torch

from phy.interop.bridge import (DLPACK_ALIGNMENT, TFChannelAdapter, aligned_contiguous, from_torch,
                        is_dlpack_aligned, to_torch)
from phy.channel.base import Channel
from phy.link.analog import AnalogLink

ALL_DTYPES = [torch.float32, torch.float64, torch.complex64, torch.complex128, torch.int32, torch.int64,
              torch.uint8, torch.bool]


def _sample(shape, dtype):
    g = torch.Generator().manual_seed(1)
    if dtype.is_complex or dtype.is_floating_point:
        return torch.randn(*shape, dtype=dtype, generator=g)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=g).bool()
    return torch.randint(0, 100, shape, generator=g).to(dtype)


def _misaligned(n, dtype):
    """A 1-D tensor whose data pointer is *not* 64-byte aligned."""
    base = torch.zeros(n + 1, dtype=dtype)
    t = base[1:]
    assert t.data_ptr() % DLPACK_ALIGNMENT != 0
    t.copy_(_sample((n,), dtype))
    return t


# --------------------------------------------------------------------------------------------
# NumPy
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_numpy_roundtrip_values_and_dtypes(dtype):
    t = _sample((3, 5), dtype)
    a = from_torch(t, "numpy")
    assert isinstance(a, np.ndarray) and a.shape == (3, 5)
    assert str(a.dtype) == str(dtype).replace("torch.", "")
    np.testing.assert_array_equal(a, t.numpy())
    back = to_torch(a)
    assert back.dtype == dtype and torch.equal(back, t)


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
def test_numpy_zero_copy_shares_memory_both_ways(dtype):
    t = torch.zeros(4, 6, dtype=dtype)
    a = from_torch(t, "np")
    a[1, 2] = 3.5
    assert t[1, 2].item() == 3.5  # numpy write visible in torch
    t[0, 0] = -2
    assert a[0, 0] == -2  # torch write visible in numpy
    a2 = np.zeros((5, 3), dtype=np.float32 if dtype == torch.float32 else np.complex64)
    t2 = to_torch(a2)
    t2[4, 2] = 7
    assert a2[4, 2] == 7
    assert t2.data_ptr() == a2.ctypes.data


def test_numpy_strided_and_transposed_views_share_memory():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    for view in (base[:, ::2], base.t(), base[1:, 3:]):
        a = from_torch(view, "numpy")
        np.testing.assert_array_equal(a, view.numpy())
        assert np.shares_memory(a, base.numpy())
    a = from_torch(base[:, ::2], "numpy")
    a[0, 1] = 100.0  # element (0, 2) of the base
    assert base[0, 2].item() == 100.0


def test_numpy_misaligned_views_convert_exactly():
    for dtype in (torch.float32, torch.complex64, torch.int64):
        t = _misaligned(257, dtype)
        np.testing.assert_array_equal(from_torch(t, "numpy"), t.numpy())


def test_numpy_to_torch_copies_only_what_dlpack_cannot_describe():
    # negative strides: torch would abort on them, the bridge copies
    a = np.arange(12.0).reshape(3, 4)[:, ::-1]
    t = to_torch(a)
    np.testing.assert_array_equal(t.numpy(), a)
    # non-native byte order: copied, values kept
    b = np.arange(5, dtype=">i4")
    assert to_torch(b).tolist() == [0, 1, 2, 3, 4]
    # read-only memory: copied, so a write through torch cannot touch it
    r = np.arange(3.0)
    r.flags.writeable = False
    tr = to_torch(r)
    tr[0] = 9.0
    assert r[0] == 0.0
    # strides that are not a multiple of the item size (a structured field)
    s = np.zeros(4, dtype=[("a", "<f4"), ("b", "<i2")])
    s["a"] = [1, 2, 3, 4]
    assert to_torch(s["a"]).tolist() == [1.0, 2.0, 3.0, 4.0]
    # a positive-strided view is shared
    c = np.arange(20.0).reshape(4, 5)[:, 1::2]
    tc = to_torch(c)
    tc[0, 0] = -1.0
    assert c[0, 0] == -1.0


def test_conjugate_and_grad_tensors_export_their_values():
    z = torch.tensor([1 + 2j, -3 - 1j], dtype=torch.complex64)
    np.testing.assert_array_equal(from_torch(z.conj(), "numpy"), np.array([1 - 2j, -3 + 1j], dtype=np.complex64))
    w = torch.randn(3, requires_grad=True)
    np.testing.assert_array_equal(from_torch(w, "numpy"), w.detach().numpy())


def test_torch_tensor_passes_through_to_torch():
    t = torch.randn(3)
    assert to_torch(t) is t


@pytest.mark.parametrize("framework", ["jax", "cupy"])
def test_optional_frameworks_convert_or_say_what_is_missing(framework):
    t = torch.arange(6, dtype=torch.float32)
    if importlib.util.find_spec(framework) is None:
        with pytest.raises(ImportError, match=framework):
            from_torch(t, framework)
        return
    if framework == "cupy" and not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            from_torch(t, framework)
        return
    if framework == "cupy":
        t = t.cuda()
    arr = from_torch(t, framework)
    assert torch.equal(to_torch(arr).to(t.device), t)


# --------------------------------------------------------------------------------------------
# alignment helpers
# --------------------------------------------------------------------------------------------
def test_alignment_detection_and_aligned_copy():
    t = torch.randn(1024)
    if t.data_ptr() % DLPACK_ALIGNMENT == 0:  # torch's CPU allocator aligns to 64 bytes
        assert is_dlpack_aligned(t)
        assert aligned_contiguous(t).data_ptr() == t.data_ptr()  # no copy
    for bad in (_misaligned(100, torch.float32), torch.randn(8, 8)[:, ::2], torch.randn(4, 6).t(),
                torch.tensor([[1.0]]).expand(4, 4), _misaligned(33, torch.complex128)):
        assert not is_dlpack_aligned(bad)
        fixed = aligned_contiguous(bad)
        assert fixed.data_ptr() % DLPACK_ALIGNMENT == 0 and fixed.is_contiguous()
        assert is_dlpack_aligned(fixed)
        assert torch.equal(fixed, bad)
    # compact with an odd stride on a size-1 dim: zero-copy view with canonical strides
    odd = torch.randn(1, 16).t()
    view = aligned_contiguous(odd)
    assert view.stride() == (1, 1) and view.data_ptr() == odd.data_ptr() and torch.equal(view, odd)
    assert is_dlpack_aligned(torch.empty(0, 3))


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------
def test_bad_input_raises_type_error_naming_argument():
    t = torch.randn(3)
    with pytest.raises(TypeError, match="framework must be one of"):
        from_torch(t, "pytorch")
    with pytest.raises(TypeError, match="framework must be a string"):
        from_torch(t, 3)
    with pytest.raises(TypeError, match=r"t must be a torch.Tensor, got ndarray"):
        from_torch(np.zeros(3), "numpy")
    with pytest.raises(TypeError, match=r"obj must be a torch.Tensor, numpy.ndarray.*got builtins.list"):
        to_torch([1.0, 2.0])
    with pytest.raises(TypeError, match="obj must be"):
        to_torch(1.5)
    with pytest.raises(TypeError, match="obj must hold numbers"):
        to_torch(np.array(["a", "b"]))
    with pytest.raises(TypeError, match="bfloat16"):
        from_torch(torch.zeros(2, dtype=torch.bfloat16), "numpy")
    with pytest.raises(TypeError, match="t must be a torch.Tensor"):
        is_dlpack_aligned([1, 2])
    with pytest.raises(TypeError, match="tf_callable must be callable"):
        TFChannelAdapter("not a function")


# --------------------------------------------------------------------------------------------
# TensorFlow (the `tf` extra; CI installs it)
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow")


@pytest.mark.tf
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_tf_roundtrip_values_and_dtypes(tf, dtype):
    t = _sample((4, 6), dtype)
    y = from_torch(t, "tensorflow")
    assert isinstance(y, tf.Tensor) and tuple(y.shape) == (4, 6)
    assert y.dtype.name == str(dtype).replace("torch.", "")
    np.testing.assert_array_equal(y.numpy(), t.numpy())
    back = to_torch(y)
    assert back.dtype == dtype and torch.equal(back, t)


@pytest.mark.tf
@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64, torch.complex128])
def test_tf_aligned_tensor_is_zero_copy(tf, dtype):
    t = torch.zeros(64, 16, dtype=dtype)
    assert is_dlpack_aligned(t)
    y = from_torch(t, "tf")
    t[3, 5] = 42
    t[0, 0] = -1
    assert y.numpy()[3, 5] == 42 and y.numpy()[0, 0] == -1  # torch write visible in TF
    # TF -> torch shares too
    a = tf.zeros((8, 8), dtype=tf.float32) + 1.0
    ta = to_torch(a)
    ta[2, 2] = 5.0
    assert a.numpy()[2, 2] == 5.0


@pytest.mark.tf
def test_tf_misaligned_and_strided_inputs_do_not_crash(tf):
    cases = [
        _misaligned(1024, torch.float32),          # 4-byte offset
        torch.zeros(1028)[4:].copy_(torch.randn(1024)),   # 16-byte offset
        _misaligned(1024, torch.complex64),
        _misaligned(511, torch.complex128),
        _misaligned(300, torch.int64),
        torch.randn(32, 64)[:, ::2],
        torch.randn(48, 32).t(),
        torch.randn(8, 16, dtype=torch.complex64).transpose(0, 1),
        torch.tensor([[0.5]]).expand(32, 32),
        torch.randn(1, 64).t(),
    ]
    for t in cases:
        y = from_torch(t, "tensorflow")
        # computing on the tensor is what aborts on misaligned DLPack buffers
        s = tf.reduce_sum(y * tf.cast(2, y.dtype)).numpy()
        np.testing.assert_allclose(s, (t * 2).sum().item(), rtol=1e-4)
        if y.shape.rank == 2 and y.dtype.is_floating:
            mm = tf.linalg.matmul(y, y, transpose_b=True).numpy()
            np.testing.assert_allclose(mm, (t @ t.T).numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(y.numpy(), t.numpy())


@pytest.mark.tf
def test_tf_complex_fallback_through_float_view(tf):
    from phy.interop.bridge import _torch_complex_to_tf_via_real

    for dtype, tfd in ((torch.complex64, tf.complex64), (torch.complex128, tf.complex128)):
        t = _misaligned(129, dtype)
        y = _torch_complex_to_tf_via_real(t)
        assert y.dtype == tfd
        np.testing.assert_array_equal(y.numpy(), t.numpy())


def _tf_awgn(tf):
    def awgn(x, no, seed):
        rdt = x.dtype.real_dtype
        std = tf.cast(tf.sqrt(tf.cast(no, rdt) / 2.0), x.dtype)
        shape = tf.shape(x)
        n = tf.complex(tf.random.stateless_normal(shape, seed, dtype=rdt),
                       tf.random.stateless_normal(shape, seed + 1, dtype=rdt))
        return x + std * n

    return awgn


@pytest.mark.tf
def test_tf_adapter_drives_analog_link_awgn(tf):
    ch = TFChannelAdapter(_tf_awgn(tf), name="tf-awgn", pass_seed=True, seed=3)
    assert isinstance(ch, Channel)
    link = AnalogLink(ch, equalizer="zf")
    feats = torch.randn(16, 8192)
    snr_db = 5.0
    out = link(feats, snr_db=snr_db)
    assert out.x_hat.shape == feats.shape and out.channel_uses == 4096
    # ZF on AWGN: per real element MSE = (p_s / P) * N0 / 2 per example
    z = torch.view_as_complex(feats.reshape(16, -1, 2))
    p_s = z.abs().pow(2).mean(-1)
    n0 = 10 ** (-snr_db / 10)
    mse = (out.x_hat - feats).pow(2).mean(-1)
    ratio = (mse / (p_s * n0 / 2)).mean().item()
    # 16*8192 real Gaussian errors: relative std of the mean ~ sqrt(2/131072) = 0.4 %
    assert abs(ratio - 1) < 0.02, ratio
    # same seed -> identical; the TF randomness follows the channel's stream
    ch.reset(3)
    again = link(feats, snr_db=snr_db)
    assert torch.equal(again.x_hat, out.x_hat)
    third = link(feats, snr_db=snr_db)
    assert not torch.equal(third.x_hat, out.x_hat)


@pytest.mark.tf
def test_tf_adapter_with_csi_and_misaligned_features(tf):
    def rayleigh(x, no, seed):
        rdt = x.dtype.real_dtype
        shape = tf.shape(x)
        h = tf.complex(tf.random.stateless_normal(shape, seed, dtype=rdt),
                       tf.random.stateless_normal(shape, seed + 1, dtype=rdt)) / math.sqrt(2.0)
        return h * x + _tf_awgn(tf)(tf.zeros_like(x), no, seed + 2), h

    ch = TFChannelAdapter(rayleigh, pass_seed=True, seed=0)
    link = AnalogLink(ch, equalizer="zf")
    feats = torch.randn(3, 303)  # odd length -> padding
    view = torch.zeros(3 * 303 + 1)[1:].view(3, 303)   # misaligned features buffer
    view.copy_(feats)
    out = link(view, no=0.0)
    assert out.x_hat.shape == (3, 303) and out.channel_uses == 152
    torch.testing.assert_close(out.x_hat, feats, atol=1e-4, rtol=1e-4)
    out_noisy = link(feats, snr_db=20.0)
    assert out_noisy.info["symbols"].shape == (3, 152)
    assert 0 < (out_noisy.x_hat - feats).pow(2).mean() < 1.0


@pytest.mark.tf
def test_tf_adapter_checks_callable_output(tf):
    ch = TFChannelAdapter(lambda x, no: tf.math.real(x))
    with pytest.raises(ValueError, match="must return complex y"):
        ch(torch.ones(2, 4, dtype=torch.complex64), no=0.1)
    ch3 = TFChannelAdapter(lambda x, no: (x, x, x))
    with pytest.raises(ValueError, match=r"must return y or \(y, h\)"):
        ch3(torch.ones(2, 4, dtype=torch.complex64), no=0.1)
