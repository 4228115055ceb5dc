"""Phase noise and CFO on the OFDM grid (phy.ofdm.impairments through phy.ofdm.channel.OFDMChannel): the Dirichlet
kernel of a CFO, the direct-coefficient power of Wiener phase noise and Parseval, an explicit DFT-matrix
computation of the bare grid and of the link layer, E|y|^2 = Es + N0, seeds, the off path, the time base, and
the link-level effect of a CFO on uncoded QPSK with LS and perfect CSI."""
import math

import numpy as np
import pytest
import torch

from phy.channel.registry import canonical_channel_spec, make_channel, parse_channel_spec
from phy.channel.impairments import PhaseImpairment, attach_impairment
from phy.ofdm.channel import OFDMChannel
from phy.ofdm.impairments import apply_grid_phase, grid_sample_rate, impair_grid

SCS = 15e3


def _grid_matrix(F: int, theta: np.ndarray) -> np.ndarray:
    """``M = P W^H diag(exp(j theta)) W P^T`` for one OFDM symbol: W the unitary DFT, P the centring (fftshift)."""
    n = np.arange(F)
    W = np.exp(-2j * np.pi * np.outer(n, n) / F) / math.sqrt(F)             # unitary DFT
    P = np.eye(F)[np.roll(n, F // 2)]                                       # natural -> centred order
    # received time samples y = W^H P^T Y; rotated; back: P W (rot * y)
    return P @ W @ np.diag(np.exp(1j * theta)) @ W.conj().T @ P.T


def _cfo_theta(n_samples: int, eps: float, F: int, phase0: float = 0.0) -> np.ndarray:
    return phase0 + 2 * np.pi * eps / F * np.arange(n_samples)             # cfo Ts = eps / F per sample


# --------------------------------------------------------------------------------------------------------------
# closed forms
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("eps,cp,k0", [(0.1, 0, 3), (-0.37, 4, 0), (0.5, 3, 15)])
def test_cfo_on_one_subcarrier_is_the_dirichlet_kernel(eps, cp, k0):
    """Y'[l] = exp(j 2 pi eps (s L + cp) / F) (1/F) sum_n exp(j 2 pi (k0 - l + eps) n / F) on every OFDM symbol s
    of every example (the walk restarts per example; cyclic prefixes advance it); |Y'[l]| is the Dirichlet kernel."""
    F, T = 16, 4
    ch = OFDMChannel(model="awgn", fft_size=F, num_ofdm_symbols=T, pilot_symbols=1, subcarrier_spacing=SCS,
                     cyclic_prefix=cp, seed=0)
    attach_impairment(ch, cfo=eps * SCS)
    x = torch.zeros(2, 2 * T, F, dtype=torch.complex64)                       # 2 examples x 2 slots
    x[..., k0] = 1
    y = ch(x.reshape(2, -1), no=0.0).y.reshape(2, 2 * T, F).to(torch.complex128)
    d = (k0 - np.arange(F) + eps)
    dirichlet = np.abs(np.sin(np.pi * d) / (F * np.sin(np.pi * d / F)))
    np.testing.assert_allclose(y.abs().numpy(), np.broadcast_to(dirichlet, (2, 2 * T, F)), atol=1e-5)
    s = np.arange(2 * T)[:, None]
    direct = np.exp(2j * np.pi * eps * (s * (cp + F) + cp) / F) * np.where(
        np.abs(d) < 1e-12, 1.0, (1 - np.exp(2j * np.pi * d)) / (F * (1 - np.exp(2j * np.pi * d / F)) + 1e-300))
    np.testing.assert_allclose(y.numpy(), np.broadcast_to(direct, (2, 2 * T, F)), atol=1e-5)


def test_wiener_phase_noise_direct_coefficient_and_parseval():
    """E|Y'[k0]|^2 = (1/F^2) sum_{m,n} exp(-sigma^2 |m - n| / 2), sigma^2 = 2 pi linewidth / sample rate; the power
    of each OFDM symbol over the subcarriers is exactly 1 (the transform is unitary)."""
    F, T, cp, lw = 32, 14, 8, 3000.0
    ch = OFDMChannel(model="awgn", fft_size=F, num_ofdm_symbols=T, subcarrier_spacing=SCS, cyclic_prefix=cp,
                     seed=1)
    attach_impairment(ch, phase_noise_linewidth=lw)
    k0 = 5
    x = torch.zeros(400, T, F, dtype=torch.complex64)
    x[..., k0] = 1
    y = ch(x.reshape(400, -1), no=0.0).y.reshape(400, T, F).to(torch.complex128)
    torch.testing.assert_close(y.abs().square().sum(-1), torch.ones(400, T, dtype=torch.float64), atol=1e-5, rtol=0)
    sigma2 = 2 * math.pi * lw / grid_sample_rate(F, SCS)
    m = np.arange(F)
    theory = float(np.exp(-sigma2 * np.abs(m[:, None] - m[None, :]) / 2).sum() / F**2)
    p = y[..., k0].abs().square().flatten()
    mean, se = float(p.mean()), float(p.std() / math.sqrt(p.numel()))
    assert theory < 0.95 and abs(mean - theory) < 5 * se, (mean, theory, se)   # a real loss, measured to 5 s.e.


def test_bare_grid_equals_an_explicit_dft_matrix_computation():
    """MIMO (1 x 2) Rayleigh grid, 2 examples x 2 slots, CFO + phase offset, cyclic prefix: y_on equals the
    DFT-matrix transform of the unimpaired y (same seed: same channel and noise) symbol by symbol, the phase common
    to both receive antennas and restarting per example; h is the unimpaired channel."""
    F, T, cp, eps, phi = 8, 3, 2, 0.23, 0.4
    kw = dict(model="rayleigh", num_rx=2, fft_size=F, num_ofdm_symbols=T, pilot_symbols=1, subcarrier_spacing=SCS,
              cyclic_prefix=cp)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 1, 2 * T * F, generator=g, dtype=torch.complex64)   # [example, num_tx, n]
    off = OFDMChannel(seed=4, **kw)(x, no=0.3)
    on = attach_impairment(OFDMChannel(seed=4, **kw), cfo=eps * SCS, phase_offset=phi)(x, no=0.3)
    assert torch.equal(on.h, off.h)
    theta = _cfo_theta(2 * T * (cp + F), eps, F, phi).reshape(2 * T, cp + F)[:, cp:]
    y_off = off.y.reshape(2, 2, 2 * T, F).to(torch.complex128).numpy()      # [example, rx, symbol, subcarrier]
    expect = np.einsum("sij,ersj->ersi", np.stack([_grid_matrix(F, th) for th in theta]), y_off)
    np.testing.assert_allclose(on.y.reshape(2, 2, 2 * T, F).numpy(), expect, atol=2e-5)
    # the pure function agrees with the matrices too
    th = torch.as_tensor(_cfo_theta(2 * T * (cp + F), eps, F, phi))
    got = apply_grid_phase(torch.as_tensor(y_off), th, cp).numpy()
    np.testing.assert_allclose(got, expect, atol=1e-10)


def test_send_symbols_rotates_before_the_receiver():
    """The link layer: awgn grid, no noise, perfect CSI, ZF: x_hat of each data OFDM symbol is the DFT-matrix
    transform of the sent row (global symbol index k T + t over the example's slots, pilots included)."""
    F, T, cp, eps = 8, 4, 3, -0.3
    ch = OFDMChannel(model="awgn", fft_size=F, num_ofdm_symbols=T, pilot_symbols=1, subcarrier_spacing=SCS,
                     cyclic_prefix=cp, csi="perfect", seed=0)
    attach_impairment(ch, cfo=eps * SCS)
    K = 2
    g = torch.Generator().manual_seed(0)
    s = torch.randn(3, K * ch.symbols_per_slot, generator=g, dtype=torch.complex128)
    out = ch.send_symbols(s, no=0.0, equalizer="zf")
    theta = _cfo_theta(K * T * (cp + F), eps, F).reshape(K * T, cp + F)[:, cp:]
    data_t = [t for t in range(T) if t not in ch.pilot_indices]
    rows = s.numpy().reshape(3, K, len(data_t), F)
    expect = np.stack([np.stack([rows[:, k, i] @ _grid_matrix(F, theta[k * T + t]).T for i, t in enumerate(data_t)],
                                1) for k in range(K)], 1).reshape(3, -1)
    np.testing.assert_allclose(out.x_hat.numpy(), expect, atol=1e-9)


@pytest.mark.parametrize("csi", ["perfect", "ls"])
def test_a_constant_phase_is_a_rotation_that_ls_absorbs(csi):
    """phase_offset only (no ICI): y' = exp(j phi) y. Same seed: with csi=perfect x_hat turns by phi; with csi=ls
    the estimate turns with it and x_hat is unchanged (the impairment is applied before estimation)."""
    kw = dict(model="rayleigh", num_rx=2, fft_size=12, num_ofdm_symbols=14, csi=csi, seed=6)
    s = torch.randn(4, 300, dtype=torch.complex64)
    ref = OFDMChannel(**kw).send_symbols(s, no=0.05)
    out = attach_impairment(OFDMChannel(**kw), phase_offset=0.7).send_symbols(s, no=0.05)
    rot = complex(math.cos(0.7), math.sin(0.7)) if csi == "perfect" else 1.0
    torch.testing.assert_close(out.x_hat, ref.x_hat * rot, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(out.no_eff, ref.no_eff, atol=1e-6, rtol=1e-5)


def test_receive_energy_is_es_plus_n0_per_antenna_with_impairments():
    """E|y|^2 = Es + N0 per receive antenna (Rayleigh 2 x 2 grid, Es = 1 split over the antennas), and the
    energy of every received OFDM symbol equals the unimpaired one exactly (same seed: same H and noise)."""
    kw = dict(model="rayleigh", num_tx=2, num_rx=2, fft_size=16, num_ofdm_symbols=14, subcarrier_spacing=SCS,
              cyclic_prefix=4)
    imp = dict(phase_noise_linewidth=2000.0, cfo=0.17 * SCS, random_phase=1)
    no = 0.5
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 2, 14 * 16, generator=g, dtype=torch.complex64) / math.sqrt(2)
    on = make_channel("ofdm", seed=7, **kw, **imp)(x, no=no)
    off = make_channel("ofdm", seed=7, **kw)(x, no=no)
    e_on = on.y.reshape(300, 2, 14, 16).abs().square().sum(-1)
    e_off = off.y.reshape(300, 2, 14, 16).abs().square().sum(-1)
    torch.testing.assert_close(e_on, e_off, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(on.y, off.y, atol=1e-2)
    per_ex = on.y.abs().square().mean(-1)                                   # [300, 2], one fade per example
    mean, se = per_ex.mean(0), per_ex.std(0) / math.sqrt(300)
    assert torch.all((mean - (1.0 + no)).abs() < 4 * se), (mean, se)


# --------------------------------------------------------------------------------------------------------------
# seeds, the off path, the time base
# --------------------------------------------------------------------------------------------------------------
def test_same_seed_same_output_and_the_off_path_is_bit_identical():
    spec = "ofdm(model=tdl-C,fft_size=12,num_ofdm_symbols=14,subcarrier_spacing=15e3,cyclic_prefix=2{})"
    imp = ",phase_noise_linewidth=500,cfo=300,random_phase=1"
    s = torch.randn(3, 200, dtype=torch.complex64)
    a, b = (make_channel(spec.format(imp), seed=9).send_symbols(s, no=0.1) for _ in range(2))
    assert torch.equal(a.x_hat, b.x_hat)
    ya, yb = (make_channel(spec.format(imp), seed=9)(s[:, :168], no=0.1).y for _ in range(2))
    assert torch.equal(ya, yb)
    # the off path: zero impairment keys give the unimpaired channel (no hook, same canonical spec, same bits)
    off = make_channel(spec.format(",cfo=0,phase_noise_linewidth=0"), seed=9)
    ref = OFDMChannel(model="tdl-C", fft_size=12, subcarrier_spacing=15e3, cyclic_prefix=2, seed=9)
    assert off.impairment is None and not off._forward_hooks
    assert canonical_channel_spec(spec.format(",cfo=0")) == canonical_channel_spec(spec.format(""))
    assert torch.equal(off.send_symbols(s, no=0.1).x_hat, ref.send_symbols(s, no=0.1).x_hat)
    assert torch.equal(off(s[:, :168], no=0.1).y, ref(s[:, :168], no=0.1).y)
    assert not torch.equal(a.x_hat, ref.send_symbols(s, no=0.1).x_hat)


def test_the_time_base_is_the_grid_sample_rate():
    rate = grid_sample_rate(16, 30e3)                                        # 480 kHz
    _, kw = parse_channel_spec("ofdm(model=awgn,fft_size=16,cfo=600)")       # symbol_rate omitted: filled in
    assert kw["symbol_rate"] == rate and kw["cfo"] == 600.0
    assert canonical_channel_spec("ofdm(model=awgn,fft_size=16,cfo=600)") == \
        canonical_channel_spec(f"ofdm(model=awgn,fft_size=16,cfo=600,symbol_rate={rate})")
    assert make_channel("ofdm(model=awgn,fft_size=16,cfo=600)", seed=0).impairment.symbol_rate == rate
    assert make_channel("ofdm", model="awgn", fft_size=16, cfo=600, seed=0).impairment.symbol_rate == rate
    for bad in ("ofdm(model=awgn,fft_size=16,cfo=600,symbol_rate=1e6)",):
        with pytest.raises(ValueError, match=r"symbol_rate must be .*fft_size \* subcarrier_spacing = 480000.0 Hz"):
            canonical_channel_spec(bad)
        with pytest.raises(ValueError, match="480000.0 Hz"):
            make_channel(bad, seed=0)
    with pytest.raises(ValueError, match="480000.0 Hz"):
        attach_impairment(OFDMChannel(model="awgn", fft_size=16, seed=0),
                          PhaseImpairment(cfo=600.0, symbol_rate=1e6))
    ch = attach_impairment(OFDMChannel(model="awgn", fft_size=16, seed=0), PhaseImpairment(phase_offset=0.3))
    assert ch.impairment.symbol_rate == rate
    with pytest.raises(TypeError, match="PhaseImpairment"):
        OFDMChannel(model="awgn", fft_size=16, seed=0).impairment = "cfo"
    with pytest.raises(ValueError, match="S \\* \\(cyclic_prefix \\+ F\\) = 24"):
        apply_grid_phase(torch.zeros(2, 8, dtype=torch.complex64), torch.zeros(20), cyclic_prefix=4)
    y = torch.ones(1, 1, 2, 8, dtype=torch.complex64)
    assert impair_grid(y, PhaseImpairment(), 0, None) is y


# --------------------------------------------------------------------------------------------------------------
# link level: uncoded QPSK over an awgn grid with a CFO
# --------------------------------------------------------------------------------------------------------------
def _qpsk_ber_per_example(csi, cfo_fraction, interpolation="lin", snr_db=10.0, n_ex=100, estimator="ls"):
    ch = OFDMChannel(model="awgn", fft_size=32, num_ofdm_symbols=14, pilot_symbols=2, subcarrier_spacing=SCS,
                     csi=csi, interpolation=interpolation, seed=5, estimator=estimator)
    if cfo_fraction:
        attach_impairment(ch, cfo=cfo_fraction * SCS)
    g = torch.Generator().manual_seed(0)
    b = torch.randint(0, 2, (n_ex, ch.symbols_per_slot, 2), generator=g)
    s = torch.complex(1.0 - 2 * b[..., 0].float(), 1.0 - 2 * b[..., 1].float()) / math.sqrt(2)
    x_hat = ch.send_symbols(s, no=10 ** (-snr_db / 10)).x_hat
    b_hat = torch.stack([x_hat.real < 0, x_hat.imag < 0], -1).long()
    return (b_hat != b).double().reshape(n_ex, -1).mean(1)                 # [n_ex], one slot each


@pytest.mark.parametrize("interpolation,cfo", [("nn", 0.02), ("lin", 0.03)])
def test_cfo_raises_the_ber_and_ls_tracks_the_common_phase(interpolation, cfo):
    """Same seed, so the noise is paired: BER(ls, CFO) > BER(ls, no CFO) by many standard errors of the paired
    difference, and BER(perfect CSI, CFO) > BER(ls, CFO) (perfect CSI excludes the impairment: the common phase
    error goes uncorrected, 2 pi eps (F + cp) / F per OFDM symbol)."""
    clean = _qpsk_ber_per_example("ls", 0.0, interpolation)
    ls = _qpsk_ber_per_example("ls", cfo, interpolation)
    perfect = _qpsk_ber_per_example("perfect", cfo)
    for worse, better in ((ls, clean), (perfect, ls)):
        d = worse - better
        se = float(d.std() / math.sqrt(d.numel()))
        assert float(d.mean()) > 8 * se > 0, (float(worse.mean()), float(better.mean()), se)
    assert float(perfect.mean()) > 0.2 > 0.05 > float(ls.mean())           # measured 0.28-0.42 vs 0.014-0.039


@pytest.mark.parametrize("cfo", [0.02, 0.03])
def test_the_default_lmmse_estimator_knows_the_oscillator_statistics(cfo):
    """The default LMMSE estimate uses the oscillator's statistics (a CFO within +-|cfo|) in its time covariance:
    with the CFO it is better than LS with either interpolation, paired by seed (measured 1.0e-3 / 1.5e-3
    against 1.4e-2 - 3.9e-2), and without it better still (all the slot's pilots averaged)."""
    lmmse = _qpsk_ber_per_example("ls", cfo, estimator="lmmse")
    for interpolation in ("nn", "lin"):
        d = _qpsk_ber_per_example("ls", cfo, interpolation) - lmmse
        se = float(d.std() / math.sqrt(d.numel()))
        assert float(d.mean()) > 5 * se > 0
    assert float(lmmse.mean()) < 0.005
    assert float(_qpsk_ber_per_example("ls", 0.0, estimator="lmmse").mean()) < float(lmmse.mean())
