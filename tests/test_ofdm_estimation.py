"""Channel estimation on OFDM grids (phy.ofdm.estimation): the per-RE error variance of interpolated LS from the
interpolation weights, the joint LMMSE estimate against a direct matrix computation, the default estimator."""
import math

import numpy as np
import pytest
import torch

from phy.channel.registry import canonical_channel_spec, make_channel
from phy.link.digital import DigitalLink
from phy.ofdm.channel import OFDMChannel
from phy.ofdm.estimation import GridLMMSE, grid_covariances


def _qpsk(n_ex, m, seed=0):
    b = torch.randint(0, 2, (n_ex, m, 2), generator=torch.Generator().manual_seed(seed))
    return torch.complex(1.0 - 2 * b[..., 0].float(), 1.0 - 2 * b[..., 1].float()) / math.sqrt(2)


def _lin_weights(positions, n):
    """Linear interpolation (extrapolation beyond the ends) of samples at ``positions`` onto ``0..n-1``: ``[n, P]``."""
    W = np.zeros((n, len(positions)))
    for i in range(n):
        j = min(max(np.searchsorted(positions, i, side="right") - 1, 0), len(positions) - 2)
        a, b = positions[j], positions[j + 1]
        W[i, j], W[i, j + 1] = (b - i) / (b - a), (i - a) / (b - a)
    return W


@pytest.mark.parametrize("model,num_tx", [("awgn", 1), ("rayleigh", 2)])
def test_ls_error_variance_of_every_re_is_the_interpolation_weights(model, num_tx):
    """LS + linear interpolation on a flat, slot-constant grid: the error on RE (t, f) is sum_p |W_tp W_fp|^2 N0 /
    num_tx (the stream's pilots have energy num_tx), W the linear weights in time (pilot symbols 2 and 11) and
    frequency (a stream's pilots on every num_tx-th subcarrier), extrapolated at the edges: 0.51 N0 in the middle of
    the slot, 1.54 N0 on its first symbol. Reported err_var and the measured error agree with it (Sionna's
    interpolator reports N0 / num_tx everywhere)."""
    F, T, no = 12, 14, 0.2
    ch = OFDMChannel(model=model, num_tx=num_tx, fft_size=F, num_ofdm_symbols=T, pilot_symbols=2, csi="ls",
                     estimator="ls", interpolation="lin", seed=1)
    out = ch.send_symbols(_qpsk(400, ch.symbols_per_slot), no=no, return_csi=True)
    wt = _lin_weights(np.array(ch.pilot_indices), T)
    for s in range(num_tx):
        wf = _lin_weights(np.arange(s, F, num_tx), F)
        want = np.outer((wt ** 2).sum(1), (wf ** 2).sum(1)) * no / num_tx        # [T, F]
        got = out.err_var[:, 0, s].numpy()                                        # [B, T, F]
        np.testing.assert_allclose(got, np.broadcast_to(want, got.shape), rtol=1e-5)
        measured = (out.h_hat - out.h)[:, 0, s].abs().square().mean(0).numpy()   # 400 slots per RE
        assert np.abs(measured / want - 1).max() < 5 * math.sqrt(1 / 400) + 0.02
    mid, edge = (wt ** 2).sum(1)[6], (wt ** 2).sum(1)[0]
    assert mid == pytest.approx(41 / 81) and edge == pytest.approx(125 / 81)


def test_grid_lmmse_equals_the_direct_matrix_lmmse():
    """h_hat = R_rp (R_pp + s2 I)^-1 h_ls and err = diag(R - R_rp (R_pp + s2 I)^-1 R_pr) with R = P R_t (x) R_f built
    as explicit matrices and solved directly, for a two-stream Kronecker pattern over a TDL-A covariance with Doppler,
    one noise level per example."""
    ch = OFDMChannel(model="tdl-A", num_tx=2, fft_size=8, num_ofdm_symbols=6, pilot_symbols=2, speed=100.0,
                     delay_spread=300e-9, seed=0)
    blocks = ch._sionna(torch.device("cpu"), "double")
    ct, cf = grid_covariances(ch, "cpu", "double")
    pilot_grid = blocks["mapper"](torch.zeros(1, 1, 2, ch.data_res, dtype=torch.complex128))[0, 0]   # [2, T, F]
    est = GridLMMSE(pilot_grid, ct, cf, power=0.5)
    g = torch.Generator().manual_seed(1)
    y = torch.view_as_complex(torch.randn(3, 2, 6, 8, 2, generator=g, dtype=torch.float64))       # any grid
    no = torch.tensor([0.05, 0.3, 1.0], dtype=torch.float64)
    h_hat, err = est(y, no)
    R = 0.5 * np.kron(ct.numpy(), cf.numpy())                                                     # [TF, TF]
    for s in range(2):
        pg = pilot_grid[s].numpy().reshape(-1)
        p = np.nonzero(pg)[0]
        for b in range(3):
            s2 = no[b].item() / np.abs(pg[p]) ** 2
            A = np.linalg.solve(R[np.ix_(p, p)] + np.diag(s2), R[p, :]).conj().T                 # [TF, P]
            for r in range(2):
                h_ls = y[b, r].numpy().reshape(-1)[p] / pg[p]
                np.testing.assert_allclose(h_hat[b, r, s].numpy().reshape(-1), A @ h_ls, atol=1e-8)
            want = np.real(np.diag(R) - np.einsum("rp,pr->r", A, R[p, :]))
            np.testing.assert_allclose(err[b, 0, s].numpy().reshape(-1), want, atol=1e-10)


@pytest.mark.parametrize("spec,tol", [("ofdm(model=rayleigh,num_tx=2,num_rx=2,fft_size=12)", 0.02),
                                      ("ofdm(model=tdl-C,fft_size=24,speed=50,delay_spread=300e-9)", 0.08)])
def test_lmmse_error_variance_is_the_measured_error(spec, tol):
    """The reported per-RE error variance of the default estimator is the mean squared error of its estimate
    (300 slots; each RE within 5.5 standard errors, and the slot's average within ``tol``: the power of a TDL
    slot fluctuates by a few percent from draw to draw, which its estimation error follows)."""
    ch = make_channel(spec, seed=2)
    out = ch.send_symbols(_qpsk(300, ch.symbols_per_slot), no=0.1, return_csi=True)
    e = (out.h_hat - out.h).abs().square().double()
    want = out.err_var.double().mean(0)
    measured = e.mean(0)
    assert float(measured.mean() / want.mean()) == pytest.approx(1.0, abs=tol)
    assert float(((measured - want).abs() / (want / math.sqrt(300))).max()) < 5.5


def test_default_estimator_is_lmmse_and_smooths():
    """QPSK over ofdm(model=awgn) at 8 dB: per-RE LS with linear interpolation loses about 3 dB (BER 2.8e-2 against
    6.0e-3 with perfect CSI); the default LMMSE estimate is within Monte Carlo error of perfect CSI."""
    assert canonical_channel_spec("ofdm(model=awgn)").find("estimator=lmmse") > 0
    ber = {}
    for extra in ("csi=perfect", "estimator=ls", ""):
        ch = make_channel(f"ofdm(model=awgn{',' + extra if extra else ''})", seed=3)
        assert extra or ch.estimator == "lmmse"
        link = DigitalLink(ch, code="none", modulation="qpsk")
        bits = torch.randint(0, 2, (64, 2 * 4 * ch.symbols_per_slot), generator=torch.Generator().manual_seed(4))
        ber[extra] = float((link(bits.float(), snr_db=8.0).x_hat != bits).float().mean())
    n = 64 * 2 * 4 * 720
    assert ber["estimator=ls"] > 3 * ber["csi=perfect"]
    assert abs(ber[""] - ber["csi=perfect"]) < 5 * math.sqrt(2 * ber["csi=perfect"] / n * 2)


def test_estimator_spec_key_and_bad_input():
    with pytest.raises(ValueError, match="estimator"):
        make_channel("ofdm(estimator=mmse)")
    with pytest.raises(ValueError, match="estimator"):
        OFDMChannel(estimator="kalman")
    with pytest.raises(ValueError, match="product set"):
        pilots = torch.zeros(1, 4, 4, dtype=torch.complex64)
        pilots[0, 0, 0] = pilots[0, 1, 1] = 1
        GridLMMSE(pilots, torch.ones(4, 4), torch.ones(4, 4))
    with pytest.raises(ValueError, match="cov_t"):
        GridLMMSE(torch.ones(1, 4, 4, dtype=torch.complex64), torch.ones(3, 3), torch.ones(4, 4))
