"""phy.utils.conventions: SNR/noise/power/bandwidth conventions and argument checks."""
import math

import pytest
import torch

from phy.utils.conventions import (bandwidth_compression_ratio, check_complex, check_finite, check_no, check_no_type,
                             check_real, check_snr, db_to_lin, ebno_db_to_esno_db, esno_db_to_ebno_db,
                             lin_to_db, no_to_snr_db, normalize_power, normalize_power_batchwide,
                             snr_db_to_no)


def test_snr_to_noise_power_numbers_and_tensors():
    for snr_db in (-10.0, 0.0, 3.0, 10.0, 27.5):
        assert snr_db_to_no(snr_db) == pytest.approx(10 ** (-snr_db / 10), rel=1e-12)
        assert snr_db_to_no(snr_db, power=2.0) == pytest.approx(2.0 * 10 ** (-snr_db / 10), rel=1e-12)
        assert no_to_snr_db(snr_db_to_no(snr_db, 3.0), 3.0) == pytest.approx(snr_db, abs=1e-9)
    snr = torch.tensor([0.0, 10.0, 20.0], dtype=torch.float64)
    torch.testing.assert_close(snr_db_to_no(snr), torch.tensor([1.0, 0.1, 0.01], dtype=torch.float64))
    torch.testing.assert_close(no_to_snr_db(snr_db_to_no(snr)), snr)
    # infinite SNR is the noiseless channel, and back
    assert snr_db_to_no(math.inf) == 0.0
    assert snr_db_to_no(torch.tensor(math.inf)).item() == 0.0
    assert no_to_snr_db(0.0) == math.inf


def test_db_helpers():
    assert db_to_lin(10.0) == pytest.approx(10.0)
    assert db_to_lin(-3.0) == pytest.approx(0.501187, rel=1e-5)
    assert lin_to_db(100.0) == pytest.approx(20.0)
    assert lin_to_db(0.0) == -math.inf
    torch.testing.assert_close(lin_to_db(db_to_lin(torch.tensor([1.5, -7.0]))), torch.tensor([1.5, -7.0]))


def test_ebno_esno_conversion():
    # Es = k * R * Eb
    assert ebno_db_to_esno_db(4.0, bits_per_symbol=4) == pytest.approx(4.0 + 10 * math.log10(4))
    assert ebno_db_to_esno_db(4.0, 4, 0.5) == pytest.approx(4.0 + 10 * math.log10(2))
    assert esno_db_to_ebno_db(ebno_db_to_esno_db(1.25, 6, 0.75), 6, 0.75) == pytest.approx(1.25)
    assert ebno_db_to_esno_db(0.0, 2, 0.5) == pytest.approx(0.0)  # QPSK at rate 1/2: Es = Eb
    with pytest.raises(ValueError, match="bits_per_symbol"):
        ebno_db_to_esno_db(1.0, bits_per_symbol=0)
    with pytest.raises(ValueError, match="coderate"):
        ebno_db_to_esno_db(1.0, bits_per_symbol=2, coderate=1.5)
    with pytest.raises(TypeError, match="ebno_db"):
        ebno_db_to_esno_db("3", bits_per_symbol=2)
    with pytest.raises(TypeError, match="esno_db"):
        esno_db_to_ebno_db([3.0], bits_per_symbol=2)


@pytest.mark.parametrize("power", [1.0, 2.5])
def test_normalize_power_per_example(power):
    g = torch.Generator().manual_seed(0)
    scales = torch.tensor([[0.01], [1.0], [250.0], [3.0]])
    x = torch.randn(4, 257, dtype=torch.complex64, generator=g) * scales
    xn, s = normalize_power(x, power)
    assert xn.shape == x.shape and xn.dtype == x.dtype and s.shape == (4, 1)
    torch.testing.assert_close(xn.abs().pow(2).mean(-1), torch.full((4,), power), rtol=1e-5, atol=0)
    torch.testing.assert_close(xn * s, x, rtol=1e-5, atol=1e-6)
    # independent computation of the scale
    ref = torch.sqrt(x.abs().pow(2).mean(-1, keepdim=True) / power)
    torch.testing.assert_close(s, ref, rtol=1e-5, atol=0)
    # an example's normalised symbols do not depend on the rest of the batch
    x2 = x.clone()
    x2[1:] *= 1000.0
    xn2, _ = normalize_power(x2, power)
    torch.testing.assert_close(xn2[0], xn[0], rtol=0, atol=0)


def test_normalize_power_zero_example_and_leading_dims():
    x = torch.zeros(2, 3, 8, dtype=torch.complex128)
    x[0, 1] = 1 + 1j
    xn, s = normalize_power(x)
    assert s.shape == (2, 3, 1)
    assert torch.count_nonzero(xn[1]) == 0 and torch.count_nonzero(s[1]) == 0
    torch.testing.assert_close(xn[0, 1].abs().pow(2).mean(), torch.tensor(1.0, dtype=torch.float64))


def test_normalize_power_batchwide_depends_on_batch():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 64, dtype=torch.complex64, generator=g) * torch.tensor([[1.0], [10.0], [0.1]])
    xn, s = normalize_power_batchwide(x)
    assert s.shape == (1, 1)
    assert xn.abs().pow(2).mean().item() == pytest.approx(1.0, rel=1e-5)
    per_example = xn.abs().pow(2).mean(-1)
    assert per_example.max() / per_example.min() > 100  # per-example powers differ wildly


def test_normalize_power_bad_input():
    with pytest.raises(TypeError, match="x must be complex"):
        normalize_power(torch.randn(2, 4))
    with pytest.raises(ValueError, match="power must be a positive number"):
        normalize_power(torch.ones(2, 4, dtype=torch.complex64), power=0.0)
    with pytest.raises(ValueError, match="power must be a positive number"):
        normalize_power_batchwide(torch.ones(2, 4, dtype=torch.complex64), power=-1)


def test_bandwidth_compression_ratio():
    n_ch = 32 * 768 // 2  # a 32x768 VLF as complex symbols
    assert n_ch == 12288
    assert bandwidth_compression_ratio(n_ch, (3, 256, 256)) == pytest.approx(1 / 16)
    assert bandwidth_compression_ratio(n_ch, (3, 256, 256), convention="real") == pytest.approx(1 / 8)
    assert bandwidth_compression_ratio(96, 3072) == pytest.approx(96 / 3072)
    with pytest.raises(ValueError, match="channel_uses"):
        bandwidth_compression_ratio(-1, (3, 32, 32))
    with pytest.raises(ValueError, match="source_shape"):
        bandwidth_compression_ratio(10, (3, 0, 32))
    with pytest.raises(ValueError, match="source_shape"):
        bandwidth_compression_ratio(10, ())
    with pytest.raises(ValueError, match="convention"):
        bandwidth_compression_ratio(10, (3, 32, 32), convention="bits")


def test_checks_name_the_argument():
    with pytest.raises(TypeError, match=r"snr_db must be a real number or a torch.Tensor, got str"):
        check_snr("10")
    with pytest.raises(TypeError, match=r"snr_db .* got list"):
        check_snr([10.0, 20.0])
    with pytest.raises(TypeError, match="snr_db"):
        check_snr(True)
    with pytest.raises(TypeError, match="snr_db must be a real tensor"):
        check_snr(torch.tensor([1j]))
    with pytest.raises(ValueError, match="snr_db must not be NaN"):
        check_snr(float("nan"))
    with pytest.raises(ValueError, match="snr_db must not contain NaN"):
        check_snr(torch.tensor([1.0, float("nan")]))
    assert check_snr(math.inf) == math.inf
    with pytest.raises(ValueError, match=r"no \(noise power N0\) must be >= 0"):
        check_no(-0.1)
    with pytest.raises(ValueError, match=r"no \(noise power N0\) must not be NaN"):
        check_no(torch.tensor([0.1, float("nan")]))
    with pytest.raises(TypeError, match=r"no \(noise power N0\) must be a real number"):
        check_no("0.1")
    with pytest.raises(TypeError, match=r"no \(noise power N0\) must be real"):
        check_no(torch.tensor([0.1j]))
    # finite=True also rejects +inf; NaN is reported as NaN wherever it sits (aminmax fast path)
    assert check_no(math.inf) == math.inf and check_no(torch.tensor([0.0, math.inf])) is not None
    for bad in (math.inf, torch.tensor([[0.1], [math.inf]])):
        with pytest.raises(ValueError, match=r"no \(noise power N0\) must be finite"):
            check_no(bad, finite=True)
    for bad in (torch.tensor([math.inf, float("nan")]), torch.tensor([float("nan"), -1.0]),
                torch.tensor([[0.2, float("nan")]])):
        with pytest.raises(ValueError, match="must not be NaN"):
            check_no(bad, finite=True)
    with pytest.raises(ValueError, match=r"must be >= 0, got min -2.0"):
        check_no(torch.tensor([3.0, -2.0, math.inf]), finite=True)
    assert check_no(torch.empty(0), finite=True).numel() == 0
    with pytest.raises(TypeError, match=r"N0\) must be a real number or tensor, got str"):
        check_no_type("0.1")
    assert check_no_type(-1.0) == -1.0  # types only: the value is check_no's job
    with pytest.raises(TypeError, match="x must be complex"):
        check_complex(torch.randn(3))
    with pytest.raises(TypeError, match="y must be a torch.Tensor of complex dtype, got list"):
        check_complex([1j], "y")
    with pytest.raises(TypeError, match="features must be a real floating-point tensor"):
        check_real(torch.ones(3, dtype=torch.complex64), "features")
    with pytest.raises(TypeError, match="features must be a real floating-point tensor"):
        check_real(torch.ones(3, dtype=torch.int64), "features")
    with pytest.raises(ValueError, match=r"x must be finite, got 2 NaN/Inf"):
        check_finite(torch.tensor([1.0, float("nan"), float("inf")]))


def test_normalize_power_gradient_finite_for_zero_example():
    x = torch.randn(3, 16, dtype=torch.complex64)
    x[2] = 0
    x.requires_grad_(True)
    xn, s = normalize_power(x)
    (xn.abs().pow(2).sum() + s.sum()).backward()
    assert torch.isfinite(torch.view_as_real(x.grad)).all()
    assert torch.count_nonzero(x.grad[2]) == 0


def test_normalize_power_batchwide_all_zero_stays_zero_not_nan():
    # an all-zero batch has no power to normalise: it must stay zero (as normalize_power does),
    # not become 0/0 = NaN
    x = torch.zeros(2, 4, dtype=torch.complex64)
    xn, s = normalize_power_batchwide(x)
    assert torch.isfinite(torch.view_as_real(xn)).all() and (xn == 0).all()
    assert s.shape == (1, 1) and float(s) == 0.0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), True])
def test_bandwidth_compression_ratio_rejects_nan_inf_bool_channel_uses(bad):
    # NaN used to pass the `< 0` check and give a NaN ratio silently (inf -> inf, True -> 1)
    with pytest.raises(ValueError, match="channel_uses"):
        bandwidth_compression_ratio(bad, (3, 32, 32))


@pytest.mark.parametrize("big", [1e20, 3e38])
def test_normalize_power_large_finite_values_in_float32(big):
    """Values whose squares overflow float32 (|x|^2 > 3.4e38) are normalised in a safe scale: the result
    equals the float64 computation, per example, instead of inf scales and NaN symbols."""
    g = torch.Generator().manual_seed(3)
    x64 = torch.randn(3, 33, dtype=torch.complex128, generator=g)
    x64 = x64 / x64.real.abs().amax() * torch.tensor([[big], [1.0], [big / 7]], dtype=torch.float64)
    x = x64.to(torch.complex64)
    xn, s = normalize_power(x, 2.0)
    ref_xn, ref_s = normalize_power(x.to(torch.complex128), 2.0)  # no overflow in float64
    assert torch.isfinite(torch.view_as_real(xn)).all() and torch.isfinite(s).all()
    torch.testing.assert_close(xn.to(torch.complex128), ref_xn, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(s.double(), ref_s, rtol=1e-5, atol=0)
    torch.testing.assert_close(xn[1], normalize_power(x[1:2], 2.0)[0][0])  # still per example
    bn, bs = normalize_power_batchwide(x)
    rb, rs = normalize_power_batchwide(x.to(torch.complex128))
    torch.testing.assert_close(bn.to(torch.complex128), rb, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bs.double(), rs, rtol=1e-5, atol=0)


def test_normalize_power_unrepresentable_scale_and_non_finite_input():
    x = torch.full((1, 4), 3e38, dtype=torch.complex64) * (1 + 1j)  # RMS 4.2e38 > float32 max
    with pytest.raises(ValueError, match="RMS amplitude exceeds the range of torch.complex64"):
        normalize_power(x)
    with pytest.raises(ValueError, match="x \\(real part\\) must be finite"):
        normalize_power(torch.tensor([[1.0 + 0j, float("inf")]], dtype=torch.complex64))


def test_analog_link_carries_large_features():
    """The analog link on float32 features of magnitude 1e25 (squares overflow float32): noiseless
    round trip exact up to float32 rounding, not inf/NaN."""
    from phy.channel.flat import AWGN
    from phy.link.analog import AnalogLink

    g = torch.Generator().manual_seed(0)
    f = torch.randn(4, 10, generator=g) * 1e25
    out = AnalogLink(AWGN(seed=0))(f, snr_db=float("inf"))
    torch.testing.assert_close(out.x_hat, f, rtol=1e-5, atol=0)


def test_snr_db_to_no_extremes():
    """``-inf`` dB is 'no signal' (N0 = inf), beyond the float range the limits (0 / inf), never a
    ZeroDivisionError or OverflowError; the tensor path agrees."""
    assert snr_db_to_no(float("-inf")) == math.inf and snr_db_to_no(-1e6) == math.inf
    assert snr_db_to_no(1e6) == 0.0 and snr_db_to_no(float("inf")) == 0.0
    assert snr_db_to_no(10.0, power=2.0) == pytest.approx(0.2)
    t = snr_db_to_no(torch.tensor([float("-inf"), 1e6, 10.0], dtype=torch.float64))
    assert t[0] == math.inf and t[1] == 0.0 and float(t[2]) == pytest.approx(0.1)


def test_check_device():
    from phy.utils.conventions import check_device

    assert check_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device 'nodevice' is not a torch device"):
        check_device("nodevice")
    with pytest.raises(TypeError, match="device must be a str"):
        check_device(3)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            check_device("cuda")
