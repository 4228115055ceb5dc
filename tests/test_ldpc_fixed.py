"""Tests of the fixed-point (int8 / int16) layered min-sum kernel against the float32 layered decoder,
of the SIMD lane intrinsics against numpy, and of the fused scrambled AWGN chain against the
three-kernel path."""
import math

import numpy as np
import pytest
import torch
from sionna.phy.fec.ldpc import LDPC5GEncoder

from phy.fec import ldpc_fixed
from phy.fec.ldpc_fast import LDPC5GFastDecoder, numba_available

pytestmark = pytest.mark.skipif(not numba_available(), reason="the fixed-point kernel needs numba")

PRECISIONS = ["int16", "int8"]


@pytest.fixture(scope="module")
def enc512():
    return LDPC5GEncoder(512, 1024)


@pytest.fixture(scope="module")
def noisy_16qam():
    """Descrambled 16-QAM logits of the all-zero (512, 1024) codeword over AWGN, 3 Es/N0 points."""
    from phy.channel.flat import AWGN
    from phy.fec.codes import LDPC5G
    from phy.link.digital import DigitalLink
    from phy.sim.trials import ScrambledZeroTrial

    trial = ScrambledZeroTrial(DigitalLink(AWGN(seed=0), code=LDPC5G(512, 1024, decoder="layered"), modulation="16qam"))
    trial.reset(7)
    return {snr: trial._llr((3072,), snr) for snr in (6.8, 7.0, 7.2)}


def _blocks_wrong(u):
    return int((u.sum(-1) > 0).sum())


# ------------------------------------------------------------------------------------------
# Agreement with the float decoder
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("precision", PRECISIONS)
def test_noiseless_random_codewords(precision):
    for k, n in ((400, 600), (1000, 1500)):   # BG2 with filler bits, BG1
        enc = LDPC5GEncoder(k, n)
        u = torch.randint(0, 2, (70, k), generator=torch.Generator().manual_seed(k)).float()
        llr = 8.0 * (2.0 * enc(u) - 1.0)
        for early in (True, False):
            dec = LDPC5GFastDecoder(enc, num_iter=8, precision=precision, early_stop=early)
            assert torch.equal(dec(llr), u)
            if early:  # a noiseless codeword satisfies every check after one iteration
                assert dec.last_iterations.tolist() == [1] * 70


@pytest.mark.parametrize("precision", PRECISIONS)
def test_hard_decisions_and_bler_match_float(precision, enc512, noisy_16qam):
    fl = LDPC5GFastDecoder(enc512, early_stop=True)
    fx = LDPC5GFastDecoder(enc512, early_stop=True, precision=precision)
    # the float decoder with the offset the fixed-point one uses (0.4 LLR rounds to 2 quanta = 0.5 in int8)
    fl_same = LDPC5GFastDecoder(enc512, early_stop=True, offset=round(0.4 * fx.qscale) / fx.qscale)
    for snr, llr in noisy_16qam.items():
        a, b, c = fl(llr), fx(llr), fl_same(llr)
        wrong_b, wrong_c = (b.sum(-1) > 0), (c.sum(-1) > 0)
        # identical hard decisions on every block that both decode (all zero), and few blocks that only one
        # of them gets wrong (McNemar's discordant pairs)
        assert torch.equal(b[~wrong_b & ~wrong_c], c[~wrong_b & ~wrong_c])
        discordant = float((wrong_b ^ wrong_c).float().mean())
        assert discordant <= (0.03 if precision == "int16" else 0.05), (snr, discordant)
        # BLER within Monte Carlo error of both float decoders (paired blocks)
        for ref in (a, c):
            ea, eb = _blocks_wrong(ref), _blocks_wrong(b)
            assert abs(ea - eb) <= 4 * math.sqrt(ea + eb + 1) + 2, (snr, ea, eb)
        if precision == "int16":  # int16 is float for practical purposes: about the same iterations
            assert abs(fx.mean_iterations - fl_same.mean_iterations) < 0.1


@pytest.mark.parametrize("precision", PRECISIONS)
def test_thread_count_and_batch_split_do_not_change_results(precision, enc512, noisy_16qam):
    llr = noisy_16qam[7.0][:700]
    dec = LDPC5GFastDecoder(enc512, early_stop=True, precision=precision, hard_out=False)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = dec(llr)
        it1 = dec.last_iterations.clone()
        torch.set_num_threads(2)
        two = dec(llr)
        it2 = dec.last_iterations.clone()
    finally:
        torch.set_num_threads(old)
    parts = torch.cat([dec(llr[:129]), dec(llr[129:])])   # the lanes filled in another order
    assert torch.equal(one, two) and torch.equal(one, parts) and torch.equal(it1, it2)
    assert dec.frames_decoded == 3 * 700


@pytest.mark.parametrize("precision", PRECISIONS)
def test_early_termination_does_not_change_results(precision, enc512, noisy_16qam):
    llr = noisy_16qam[7.2]
    early = LDPC5GFastDecoder(enc512, num_iter=20, early_stop=True, precision=precision)
    full = LDPC5GFastDecoder(enc512, num_iter=20, early_stop=False, precision=precision)
    a, b = early(llr), full(llr)
    stopped = early.last_iterations < 20   # codewords with a zero syndrome before the last iteration
    assert stopped.float().mean() > 0.95
    assert full.last_iterations.tolist() == [20] * llr.shape[0]
    # a codeword that reached a zero syndrome keeps its decisions in the extra iterations
    assert torch.equal(a[stopped], b[stopped])
    assert abs(_blocks_wrong(a) - _blocks_wrong(b)) <= 3


@pytest.mark.parametrize("precision", PRECISIONS)
def test_saturation(precision, enc512):
    """Logits far beyond the quantiser's range and many iterations: decisions stay right (the
    posteriors saturate instead of wrapping around) and the soft output is clipped to the range."""
    u = torch.randint(0, 2, (130, 512), generator=torch.Generator().manual_seed(1)).float()
    c = enc512(u)
    gen = torch.Generator().manual_seed(2)
    llr = (2.0 * c - 1.0) * (1e3 + 1e3 * torch.rand(c.shape, generator=gen))
    llr[:, ::97] = -0.5 * llr[:, ::97].sign()   # a few wrong, weak bits to correct
    dec = LDPC5GFastDecoder(enc512, num_iter=30, early_stop=False, precision=precision, llr_max=None,
                            hard_out=False)
    soft = dec(llr)
    assert torch.equal((soft > 0).float(), u)
    qm = ldpc_fixed.qmax(precision)
    assert float(soft.abs().max()) <= qm / dec.qscale
    assert float(soft.abs().min()) >= dec.qmsg / dec.qscale   # every bit confident after 30 iterations


def test_int8_message_saturation_must_stay_below_posterior_range(enc512):
    """The documented failure mode that fixes the default ``qmsg``: with messages saturating at 48 of the
    posterior's 127 quanta, converged codewords are lost again after many iterations; at 40 they are not."""
    gen = torch.Generator().manual_seed(0)
    llr = -20.0 + 10.0 * torch.randn(256, 1024, generator=gen)   # all-zero codeword, strong logits
    lost = {}
    for qmsg in (40, 48):   # at 4 quanta per LLR unit (the channel logits saturate at qclip = 63)
        dec = LDPC5GFastDecoder(enc512, num_iter=30, early_stop=False, precision="int8", qscale=4.0, qmsg=qmsg)
        lost[qmsg] = _blocks_wrong(dec(llr))
    assert lost[40] == 0 and lost[48] > 0
    # the defaults (2 quanta per unit, qmsg = 40) keep every codeword too
    assert _blocks_wrong(LDPC5GFastDecoder(enc512, num_iter=30, early_stop=False, precision="int8")(llr)) == 0


def test_soft_output_is_clipped_and_nan_rejected(enc512):
    dec = LDPC5GFastDecoder(enc512, num_iter=3, early_stop=False, precision="int8", qscale=4.0, qclip=63,
                            hard_out=False, return_infobits=False)
    out = dec(torch.full((1, 1024), -1e6))   # all-zero codeword: channel values saturate at qclip = 63
    # every posterior confident: at least the channel's 63 quanta (degree-1 parity bits: 63 + qmsg = 103),
    # at most the posterior range 127
    assert float(out.max()) <= -63 / 4.0 and float(out.min()) == -127 / 4.0
    assert float(out[0, -1]) == -(63 + 40) / 4.0
    with pytest.raises(ValueError, match="llr_ch must not contain NaN"):
        dec(torch.full((1, 1024), float("nan")))


def test_bad_arguments(enc512):
    with pytest.raises(ValueError, match="precision must be one of"):
        LDPC5GFastDecoder(enc512, precision="int4")
    with pytest.raises(ValueError, match="cn_update='oms' only"):
        LDPC5GFastDecoder(enc512, precision="int8", cn_update="nms")
    with pytest.raises(ValueError, match="numba backend"):
        LDPC5GFastDecoder(enc512, precision="int16", backend="torch")
    with pytest.raises(ValueError, match="qscale must be a positive finite number, got 0"):
        LDPC5GFastDecoder(enc512, precision="int8", qscale=0)
    with pytest.raises(ValueError, match=r"qclip must be an int in \[1, 127\] for precision='int8', got 200"):
        LDPC5GFastDecoder(enc512, precision="int8", qclip=200)
    with pytest.raises(ValueError, match=r"qmsg must be an int in \[1, 63\]"):
        LDPC5GFastDecoder(enc512, precision="int8", qmsg=64)
    with pytest.raises(ValueError, match="apply to precision='int8' or 'int16' only"):
        LDPC5GFastDecoder(enc512, qscale=2.0)
    dec = LDPC5GFastDecoder(enc512, precision="int8")
    with pytest.raises(ValueError, match="runs on CPU with numba only; got llr_ch on meta"):
        dec.resolve_backend("meta")


def test_code_and_cli_names():
    from phy.fec.codes import LDPC5G

    code = LDPC5G.from_options(k=512, n=1024, ldpc_decoder="layered-int8")
    dec = code._get("cpu", torch.float32)[1]
    assert dec.precision == "int8" and dec.early_stop
    u = torch.zeros(3, 512)
    assert torch.equal(code.decode(-10.0 * torch.ones(3, 1024)), u)
    with pytest.raises(ValueError, match="decoder must be one of"):
        LDPC5G(512, 1024, decoder="layered-int4")


# ------------------------------------------------------------------------------------------
# The SIMD lane intrinsics
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.int8, np.int16])
def test_simd_lane_ops_match_numpy(dtype):
    from numba import njit

    from phy.fec import simd_lanes as sl

    @njit
    def ops(a, b, out):
        x = sl.vload(a, 0)
        y = sl.vload(b, 0)
        sl.vstore(out, 0, sl.vadds(x, y))
        sl.vstore(out, 1, sl.vsubs(x, y))
        sl.vstore(out, 2, sl.vmin(x, y))
        sl.vstore(out, 3, sl.vmax(x, y))
        sl.vstore(out, 4, sl.vsel(sl.vlt(x, y), x, sl.vneg(y)))
        sl.vstore(out, 5, sl.vsel(sl.mxor(sl.vltz(x), sl.vle0(y)), sl.vsplat(x, 7), sl.vsplat(x, -3)))
        m = sl.mor(sl.veq(x, y), sl.bitsm(np.uint64(0x8000000000000001)))
        return sl.mbits(m), sl.mbits(sl.mnone())

    info = np.iinfo(dtype)
    rng = np.random.default_rng(0)
    a = rng.integers(info.min + 1, info.max, (1, 64)).astype(dtype)
    b = rng.integers(info.min + 1, info.max, (1, 64)).astype(dtype)
    b[0, :5] = a[0, :5]
    out = np.empty((6, 64), dtype)
    bits, none = ops(a, b, out)
    x, y = a[0].astype(np.int64), b[0].astype(np.int64)
    assert np.array_equal(out[0], np.clip(x + y, info.min, info.max))
    assert np.array_equal(out[1], np.clip(x - y, info.min, info.max))
    assert np.array_equal(out[2], np.minimum(x, y)) and np.array_equal(out[3], np.maximum(x, y))
    assert np.array_equal(out[4], np.where(x < y, x, -y))
    assert np.array_equal(out[5], np.where((x < 0) ^ (y <= 0), 7, -3))
    eq = (x == y)
    eq[0] = eq[63] = True
    assert int(bits) == sum(1 << i for i in range(64) if eq[i]) and int(none) == 0


def test_aligned_rows():
    from numba import njit

    from phy.fec import simd_lanes as sl

    @njit
    def make(rows, proto):
        a = sl.aligned_empty(rows, proto)
        return a, sl._address(a)

    for dtype in (np.int8, np.int16):
        a, addr = make(5, np.zeros(1, dtype))
        assert a.shape == (5, 64) and a.dtype == dtype and int(addr) % 64 == 0


# ------------------------------------------------------------------------------------------
# The fused scrambled AWGN chain
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("modulation,method", [("16qam", "app"), ("16qam", "maxlog"), ("qpsk", "app"),
                                               ("64qam", "maxlog"), ("256qam", "app")])
def test_fused_chain_equals_three_kernels(modulation, method):
    from phy.channel import kernels as ck
    from phy.mapping import qam_kernels as qk
    from phy.fec.scrambled_chain import scrambled_awgn_logits

    rows, nsym = 6, 50
    no = torch.tensor([0.05, 0.1, 0.3, 1.0, 0.02, 2.0])
    fused = scrambled_awgn_logits(rows, nsym, modulation, no, scrambling_key=11, noise_key=ck.split_key(99, 0),
                                  method=method)
    x = qk.scrambled_symbols((rows, nsym), modulation, 11)
    y, _ = ck.awgn(x, no.reshape(rows, 1), 99)
    ref = qk.demap(y, no.reshape(rows, 1), modulation, method, key=11)
    assert fused.shape == ref.shape
    assert torch.allclose(fused, ref, rtol=1e-5, atol=2e-5)
    # into a reused buffer: the same values
    buf = torch.full_like(fused, float("nan"))
    assert torch.equal(scrambled_awgn_logits(rows, nsym, modulation, no, 11, ck.split_key(99, 0), method, out=buf),
                       fused)


def test_fused_chain_bad_inputs():
    from phy.fec.scrambled_chain import scrambled_awgn_logits

    with pytest.raises(ValueError, match="no \\(noise power\\) must be finite and > 0"):
        scrambled_awgn_logits(2, 4, "16qam", torch.tensor([1.0, 0.0]), 1, 2)
    with pytest.raises(ValueError, match="method must be one of"):
        scrambled_awgn_logits(2, 4, "16qam", 1.0, 1, 2, method="exact")
    with pytest.raises(ValueError, match=r"out must be a contiguous float32 CPU tensor of shape \(2, 16\)"):
        scrambled_awgn_logits(2, 4, "16qam", 1.0, 1, 2, out=torch.empty(2, 15))
    with pytest.raises(ValueError, match="one value per row"):
        scrambled_awgn_logits(2, 4, "16qam", torch.ones(3), 1, 2)


def test_trial_uses_the_fused_chain_only_where_it_is_exact(monkeypatch):
    from phy.channel.flat import AWGN, Rayleigh
    from phy.fec.codes import LDPC5G
    from phy.link.digital import DigitalLink
    from phy.sim.trials import ScrambledZeroTrial

    code = LDPC5G(100, 200, decoder="layered")
    fused = ScrambledZeroTrial(DigitalLink(AWGN(seed=0), code=code, modulation="16qam"))
    assert fused._fused()
    assert not ScrambledZeroTrial(DigitalLink(Rayleigh(seed=0), code=code, modulation="16qam"))._fused()
    fused.reset(5)
    a = fused._llr((4,), 3.0).clone()
    b = fused(4, 3.0)
    monkeypatch.setattr(ScrambledZeroTrial, "_fused", lambda self: False)
    fused.reset(5)
    assert torch.allclose(fused._llr((4,), 3.0), a, rtol=1e-5, atol=2e-5)   # same keys, same logits
    assert torch.equal(fused(4, 3.0)[1], b[1])


# ------------------------------------------------------------------------------------------
# Lane refill and the fused trial (chain, decoder and error count in one pass)
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.int8, np.int16])
def test_transpose_blocks_matches_numpy(dtype):
    from phy.fec import simd_lanes as sl

    rng = np.random.default_rng(1)
    a = rng.integers(-100, 100, (8 * 5 + 3, 64)).astype(dtype)
    b = a.copy()
    sl.transpose_blocks(b, 5)
    # element (8c + r, 8g + e) -> (8c + e, 8g + r) for the first 5 blocks; the 3 rows after them untouched
    ref = a[:40].reshape(5, 8, 8, 8).transpose(0, 3, 2, 1).reshape(40, 64)
    assert np.array_equal(b[:40], ref) and np.array_equal(b[40:], a[40:])
    sl.transpose_blocks(b, 5)   # an involution
    assert np.array_equal(b, a)
    with pytest.raises(ValueError, match=r"nblocks must be in \[0, rows // 8\]"):
        sl.transpose_blocks(b, 6)   # 48 rows > 43


@pytest.mark.parametrize("precision", PRECISIONS)
def test_all_lanes_finishing_together_still_decode_every_codeword(precision, enc512):
    """Without early termination every lane finishes in the same iteration; the next 64 codewords must still
    be loaded (a stream of 200 codewords is 4 lane loads, the last one partly idle)."""
    u = torch.randint(0, 2, (200, 512), generator=torch.Generator().manual_seed(3)).float()
    llr = 6.0 * (2.0 * enc512(u) - 1.0)
    dec = LDPC5GFastDecoder(enc512, num_iter=3, precision=precision, early_stop=False)
    assert torch.equal(dec(llr), u) and dec.last_iterations.tolist() == [3] * 200


@pytest.mark.parametrize("precision", PRECISIONS)
def test_fused_counts_equal_decoding_the_fused_logits(precision, enc512):
    """``scrambled_awgn_errors`` (chain, quantisation, decoding and the count in one pass) gives exactly the
    counts and iterations of decoding ``scrambled_awgn_logits`` of the same keys; thread count and row
    split do not matter."""
    from phy.fec.scrambled_chain import scrambled_awgn_logits

    dec = LDPC5GFastDecoder(enc512, precision=precision, early_stop=True)
    for esno, rows in ((6.6, 700), (7.0, 3000)):
        no = 10 ** (-esno / 10)
        u = dec(scrambled_awgn_logits(rows, 256, "16qam", torch.full((rows,), no), 21, 22))
        iters = dec.last_iterations.clone()
        ref = (int(u.sum()), _blocks_wrong(u))
        for threads in (1, 2):
            torch.set_num_threads(threads)
            try:
                assert dec.scrambled_awgn_errors(rows, "16qam", no, 21, 22) == ref
            finally:
                torch.set_num_threads(1)
            assert torch.equal(dec.last_iterations, iters)
        assert ref[1] > 0
    with pytest.raises(ValueError, match="precision='int8' or 'int16'"):
        LDPC5GFastDecoder(enc512).scrambled_awgn_errors(4, "16qam", 0.1, 1, 2)
    with pytest.raises(ValueError, match="multiple of the 6 bits per symbol"):
        dec.scrambled_awgn_errors(4, "64qam", 0.1, 1, 2)
    with pytest.raises(ValueError, match="no \\(noise power\\) must be finite and > 0"):
        dec.scrambled_awgn_errors(4, "16qam", 0.0, 1, 2)


def test_layered_means_int8_on_cpu():
    from phy.fec.codes import LDPC5G, layered_precision

    code = LDPC5G(512, 1024, decoder="layered")
    _, dec = code._get(torch.device("cpu"), torch.float32)
    assert dec.precision == "int8" and layered_precision("cpu") == "int8"
    _, dec = LDPC5G(512, 1024, decoder="layered-float32")._get(torch.device("cpu"), torch.float32)
    assert dec.precision == "float32"
    _, dec = LDPC5G(512, 1024, decoder="layered", decoder_kwargs={"backend": "torch"})._get(torch.device("cpu"),
                                                                                            torch.float32)
    assert dec.precision == "float32"


@pytest.mark.slow
def test_int8_has_no_error_floor_against_int16(enc512):
    """Paired decoding of the same 3M codewords at Es/N0 8.2 dB (BLER about 3e-6): the int8 defaults (2 quanta
    per LLR unit, messages to +-20) make at most 1.5x int16's block errors plus 4. The earlier int8 defaults
    (4 quanta per unit, messages to +-10) floor here, with several times int16's errors."""
    no = 10 ** (-8.2 / 10)
    variants = {"int16": ("int16", {}), "int8": ("int8", {}),
                "int8, earlier defaults": ("int8", {"qscale": 4.0, "qclip": 63, "qmsg": 40})}
    errs = {}
    for name, (precision, kw) in variants.items():
        dec = LDPC5GFastDecoder(enc512, precision=precision, early_stop=True, **kw)
        errs[name] = sum(dec.scrambled_awgn_errors(16384, "16qam", no, 77, c)[1] for c in range(183))
    assert errs["int16"] > 0
    assert errs["int8"] <= 1.5 * errs["int16"] + 4, errs
    assert errs["int8, earlier defaults"] > 1.5 * errs["int16"] + 4, errs   # fails with the old defaults
