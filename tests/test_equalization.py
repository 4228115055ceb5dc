"""phy.mimo.equalization: ZF/MMSE against their error formulas, CSI estimation, input checks."""
import math

import pytest
import torch

from phy.channel.base import ChannelOutput
from phy.channel.flat import AWGN, Rayleigh, Rician
from phy.mimo.csi import estimate_csi
from phy.mimo.equalization import Equalizer, equalize

N = 400_000


def qpsk(n, power=1.0, seed=0, dtype=torch.complex64):
    g = torch.Generator().manual_seed(seed)
    bits = torch.randint(0, 2, (n, 2), generator=g).to(torch.float64)
    z = torch.complex(1 - 2 * bits[:, 0], 1 - 2 * bits[:, 1]) * math.sqrt(power / 2)
    return z.to(dtype)


@pytest.mark.parametrize("channel", [AWGN(seed=0), Rayleigh(seed=0), Rician(k_factor=2.0, seed=0),
                                     Rayleigh(block_length=4, seed=0)])
def test_zf_recovers_x_without_noise(channel):
    x = qpsk(4096).reshape(4, 1024)
    out = channel(x, no=0.0)
    x_hat, no_eff = Equalizer("zf")(out)
    torch.testing.assert_close(x_hat, x, rtol=1e-5, atol=1e-5)
    assert torch.count_nonzero(torch.as_tensor(no_eff)) == 0
    # MMSE is ZF when N0 = 0
    x_mmse, mse = Equalizer("mmse")(out)
    torch.testing.assert_close(x_mmse, x, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("no", [0.05, 0.5])
def test_zf_noise_is_n0_over_h2(no):
    x = qpsk(N).reshape(4, -1)
    out = Rayleigh(seed=1)(x, no)
    x_hat, no_eff = equalize(out.y, out.h, out.no, "zf")
    h2 = out.h.abs().pow(2)
    torch.testing.assert_close(no_eff, no / h2)
    # E|x_hat - x|^2 |h|^2 / N0 = 1 (E[1/|h|^2] itself is infinite for Rayleigh)
    ratio = ((x_hat - x).abs().pow(2) / no_eff).mean().item()
    assert abs(ratio - 1) < 5 * math.sqrt(1 / N)
    # the ZF error is unbiased: E[x_hat - x | x] = 0
    assert abs(((x_hat - x) * out.h.abs() / math.sqrt(no)).mean().item()) < 5 / math.sqrt(N)


@pytest.mark.parametrize("power", [1.0, 2.0])
@pytest.mark.parametrize("no", [0.1, 1.0])
def test_mmse_mse_matches_formula_rayleigh(power, no):
    x = qpsk(N, power=power).reshape(4, -1)
    out = Rayleigh(seed=2)(x, no)
    x_hat, mse = Equalizer("mmse", power=power)(out)
    h2 = out.h.abs().pow(2)
    torch.testing.assert_close(mse, power * no / (power * h2 + no))
    err = (x_hat - x).abs().pow(2)
    # with |x|^2 = P the conditional MSE is exactly P N0 / (P|h|^2 + N0); its average over h
    # is compared with the measured error (relative std of the estimate < 1 / sqrt(N))
    assert err.mean().item() == pytest.approx(mse.mean().item(), rel=5 * math.sqrt(2 / N) + 0.005)
    # closed-form average over |h|^2 ~ Exp(1): N0 e^a E1(a), a = N0 / P
    from scipy.special import exp1

    a = no / power
    assert err.mean().item() == pytest.approx(no * math.exp(a) * exp1(a), rel=0.02)
    # MMSE beats ZF in mean-square error
    x_zf, _ = equalize(out.y, out.h, out.no, "zf")
    assert err.mean() < (x_zf - x).abs().pow(2).mean()


def test_mmse_awgn_formula():
    power, no = 1.0, 0.25
    x = qpsk(N).reshape(2, -1)
    out = AWGN(seed=3)(x, no)
    x_hat, mse = equalize(out.y, out.h, out.no, "mmse", power)
    torch.testing.assert_close(x_hat, out.y * power / (power + no))
    assert float(mse) == pytest.approx(power * no / (power + no))
    assert (x_hat - x).abs().pow(2).mean().item() == pytest.approx(power * no / (power + no), rel=0.01)


def test_csi_estimation_error_statistics():
    g = torch.Generator().manual_seed(4)
    h = Rayleigh(seed=4)(torch.ones(4, 100_000, dtype=torch.complex64), 0.0).h
    no = torch.full((4, 1), 0.2)
    for pilots in (1, 4):
        e = estimate_csi(h, no, "ls", g, num_pilots=pilots) - h
        assert e.abs().pow(2).mean().item() == pytest.approx(0.2 / pilots, rel=0.02)
    e = estimate_csi(h, no, "noisy", g, pilot_snr_db=10.0) - h
    assert e.abs().pow(2).mean().item() == pytest.approx(0.1, rel=0.02)
    assert estimate_csi(h, no, "perfect", g) is h
    assert estimate_csi(None, no, "ls", g) is None  # AWGN: nothing to estimate


def test_imperfect_csi_increases_error_as_expected():
    x = qpsk(N).reshape(4, -1)
    ch = Rayleigh(seed=5)
    out = ch(x, 0.05)
    gen = ch.generator("cpu")
    errs = {}
    for key, eq in {
        "perfect": Equalizer("mmse"),
        "ls8": Equalizer("mmse", csi="ls", num_pilots=8),
        "ls1": Equalizer("mmse", csi="ls", num_pilots=1),
        "noisy0": Equalizer("mmse", csi="noisy", pilot_snr_db=0.0),
    }.items():
        x_hat, _ = eq(out, gen)
        errs[key] = (x_hat - x).abs().pow(2).mean().item()
    assert errs["perfect"] < errs["ls8"] < errs["ls1"] < errs["noisy0"]
    # ZF with a noisy estimate: x_hat = (h x + n) / (h + e); the error is lower-bounded by
    # the mismatch |e x|^2 / |h + e|^2, which grows as the pilot SNR falls
    zf_hi, _ = Equalizer("zf", csi="noisy", pilot_snr_db=30.0)(out, gen)
    zf_lo, _ = Equalizer("zf", csi="noisy", pilot_snr_db=10.0)(out, gen)
    med = lambda a: (a - x).abs().pow(2).median().item()  # noqa: E731 (median: ZF errors are heavy-tailed)
    assert med(zf_hi) < med(zf_lo)
    with pytest.raises(ValueError, match="needs the channel's generator"):
        Equalizer("zf", csi="ls")(out)


def test_equalizer_bad_arguments():
    with pytest.raises(ValueError, match=r"equalizer must be one of \('zf', 'mmse'\), got 'lmmse'"):
        Equalizer("lmmse")
    with pytest.raises(ValueError, match="csi must be one of"):
        Equalizer("zf", csi="blind")
    with pytest.raises(ValueError, match="num_pilots must be a positive int"):
        Equalizer("zf", csi="ls", num_pilots=0)
    with pytest.raises(ValueError, match="csi='noisy' needs pilot_snr_db"):
        Equalizer("zf", csi="noisy")
    y = torch.ones(2, 8, dtype=torch.complex64)
    with pytest.raises(ValueError, match="equalizer must be one of"):
        equalize(y, None, torch.tensor(0.1), "ml")
    with pytest.raises(TypeError, match="y must be complex"):
        equalize(torch.ones(2, 8), None, torch.tensor(0.1))
    with pytest.raises(ValueError, match=r"h of shape \(2, 4\) must broadcast to y of shape \(2, 8\)"):
        equalize(y, torch.ones(2, 4, dtype=torch.complex64), torch.tensor(0.1))
    with pytest.raises(TypeError, match="h \\(channel coefficients\\) must be complex"):
        equalize(y, torch.ones(2, 8), torch.tensor(0.1))
    with pytest.raises(ValueError, match=r"no of shape \(3, 1\) must broadcast to y"):
        equalize(y, None, torch.full((3, 1), 0.1))
    with pytest.raises(ValueError, match=r"no \(noise power N0\) must be >= 0"):
        equalize(y, None, torch.tensor(-0.1))
    out = ChannelOutput(y=y, h=torch.ones(2, 3, dtype=torch.complex64), no=torch.tensor(0.1))
    with pytest.raises(ValueError, match=r"h of shape \(2, 3\)"):
        Equalizer("mmse")(out)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), True])
def test_equalizer_rejects_bad_power(bad):
    # power=NaN used to give NaN MMSE estimates silently, power<=0 a meaningless prior
    with pytest.raises(ValueError, match="power"):
        Equalizer("mmse", power=bad)


# --------------------------------------------------------------------------------------------
# csi="ls" on block fading: one estimate per coherence block, pilots counted
# --------------------------------------------------------------------------------------------
def test_ls_estimate_is_drawn_once_per_coherence_block(monkeypatch):
    """Through the path the links use (``Equalizer.transmit``): the estimate is constant inside each
    coherence block and its error variance is N0 / num_pilots (over the independent blocks)."""
    import phy.mimo.csi as csimod

    seen = []
    real = csimod.estimate_csi
    monkeypatch.setattr(csimod, "estimate_csi", lambda h, *a, **k: seen.append((h, real(h, *a, **k))) or seen[-1][1])
    L, blocks, no = 16, 2000, 0.3
    x = torch.ones(4, L * blocks, dtype=torch.complex64)
    for pilots in (1, 4):
        seen.clear()
        Equalizer("zf", csi="ls", num_pilots=pilots).transmit(Rayleigh(block_length=L, seed=1), x,
                                                             torch.full((4, 1), no))
        h, h_est = seen[0]
        e = (h_est - h).reshape(4, blocks, L)
        assert torch.equal(e, e[..., :1].expand_as(e))  # one estimate per block
        var = e[..., 0].abs().pow(2).double().mean().item()
        assert var == pytest.approx(no / pilots, rel=5 / math.sqrt(4 * blocks))


def test_ls_block_fading_bler_matches_an_independent_simulation():
    """Uncoded QPSK blocks of one coherence block each (L = 8 symbols): the block error rate with an LS
    estimate per block equals an independent NumPy simulation of the same system (per-symbol estimation
    errors, the old behaviour, give a clearly different BLER)."""
    import numpy as np

    from phy.link.digital import DigitalLink

    L, nblk, snr_db = 8, 20_000, 6.0
    no = 10 ** (-snr_db / 10)
    link = DigitalLink(Rayleigh(block_length=L, seed=3), code="none", code_kwargs={"k": 2 * L}, csi="ls")
    bits = torch.randint(0, 2, (nblk, 2 * L), generator=torch.Generator().manual_seed(0)).float()
    out = link(bits, snr_db=snr_db)
    bler = out.info["block_errors"].double().mean().item()

    def numpy_bler(per_block: bool, seed: int) -> float:
        rng = np.random.default_rng(seed)
        cn = lambda *s: (rng.standard_normal(s) + 1j * rng.standard_normal(s)) / np.sqrt(2)  # noqa: E731
        h = np.repeat(cn(nblk, 1), L, axis=1)
        e = np.sqrt(no) * (np.repeat(cn(nblk, 1), L, axis=1) if per_block else cn(nblk, L))
        b = rng.integers(0, 2, (nblk, L, 2))
        s = ((1 - 2 * b[..., 0]) + 1j * (1 - 2 * b[..., 1])) / np.sqrt(2)
        z = (h * s + np.sqrt(no) * cn(nblk, L)) * np.conj(h + e)  # ZF decision statistic (same signs)
        wrong = ((z.real < 0) != (b[..., 0] == 1)) | ((z.imag < 0) != (b[..., 1] == 1))
        return wrong.any(-1).mean()

    ref, per_symbol = numpy_bler(True, 1), numpy_bler(False, 2)
    tol = 4.5 * math.sqrt(2 * ref * (1 - ref) / nblk)  # two independent estimates
    assert abs(bler - ref) < tol, (bler, ref, per_symbol)
    assert abs(per_symbol - ref) > 2 * tol  # the check can tell the two models apart


def test_ls_pilots_are_counted_in_the_ledger():
    from phy.channel.flat import AWGN
    from phy.link.analog import AnalogLink
    from phy.link.digital import DigitalLink

    f = torch.randn(3, 64)  # 32 complex data symbols
    a = AnalogLink(Rayleigh(block_length=16, seed=0), equalizer="mmse", csi="ls", num_pilots=2)
    out = a(f, snr_db=10.0)
    assert a.channel_uses((64,)) == out.channel_uses == 32 + 2 * 2
    assert out.info["pilot_uses"] == 4 and out.info["data_uses"] == 32
    assert AnalogLink(Rayleigh(seed=0), csi="ls").channel_uses((64,)) == 32 + 32  # one coefficient per symbol
    assert AnalogLink(AWGN(seed=0), csi="ls").channel_uses((64,)) == 32           # nothing to estimate
    assert AnalogLink(Rayleigh(block_length=16, seed=0)).channel_uses((64,)) == 32  # perfect CSI: no pilots
    d = DigitalLink(Rayleigh(block_length=8, seed=0), code="none", code_kwargs={"k": 64}, csi="ls", num_pilots=3)
    o = d(torch.zeros(2, 64), snr_db=10.0)
    assert d.channel_uses(64) == o.channel_uses == 32 + 3 * 4
