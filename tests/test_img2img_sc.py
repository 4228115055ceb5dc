"""Img2Img-SC with the tiny SD 1.5-layout models of tests/tiny_models.py."""
import math
import struct

import mpmath as mp
import numpy as np
import pytest
import torch
from scipy.special import erfc

import semantic  # noqa: F401
from tiny_models import TINY_IMAGE_SIZE, tiny_sd_dir  # noqa: F401  (module fixture)

from baselines.img2img_sc import (Img2ImgSC, Img2ImgSCConfig, float64_bits, load_sd_components,
                                  public_code_bit_error_rate, public_code_caption_bits,
                                  public_code_caption_channel, public_code_flip, public_code_latent_channel,
                                  public_code_replace_outliers)
from phy.channel.flat import AWGN, Rayleigh
from semantic.checkpoints import CheckpointNotFoundError

SIZE = TINY_IMAGE_SIZE   # 32 px -> tiny VAE latent 4 x 16 x 16
STEPS = 3                # DDIM steps; strength 0.6 -> 1 denoising step
CAPS = ["a cat on a mat", "hello world, again"]


def _q(x: float) -> float:
    return 0.5 * math.erfc(x / math.sqrt(2))


def ber_16qam_awgn(snr_db: float) -> float:
    """Gray 16-QAM bit error rate on AWGN at Es/N0 = snr_db (independent closed form)."""
    a = math.sqrt(10 ** (snr_db / 10) / 5)  # half the distance between points over the noise std
    return 0.25 * (3 * _q(a) + 2 * _q(3 * a) - _q(5 * a))


@pytest.fixture(scope="module")
def parts(tiny_sd_dir):
    return load_sd_components(str(tiny_sd_dir), device="cpu", dtype="float32")


def _make(parts, mode="bit-true", **kw):
    cfg = Img2ImgSCConfig(mode=mode, num_inference_steps=STEPS, image_size=SIZE, device="cpu", **kw)
    return Img2ImgSC(**parts, channel=AWGN(seed=0), config=cfg)


@pytest.fixture(scope="module")
def images():
    return torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def test_end_to_end_both_modes(parts, images, tiny_sd_dir):
    for mode in ("bit-true", "bsc"):
        sc = Img2ImgSC.from_pretrained(Img2ImgSCConfig(sd_checkpoint=str(tiny_sd_dir), mode=mode,
                                                       num_inference_steps=STEPS, image_size=SIZE, device="cpu"),
                                       channel=AWGN(seed=0))
        out = sc(images, CAPS, snr_db=10.0, channel_seed=0)
        assert out.images.shape == (2, 3, SIZE, SIZE) and out.images.dtype == torch.float32
        assert 0.0 <= out.images.min() and out.images.max() <= 1.0
        assert out.latents.shape == (2, 4, SIZE // 2, SIZE // 2) == out.received_latents.shape
        assert len(out.captions) == 2 and len(out.channel_uses) == 2


def test_channel_uses_equal_an_independent_count(parts, images):
    values = 4 * (SIZE // 2) ** 2  # latent values per image
    for mode, code in (("bit-true", "none"), ("bit-true", "hamming74"), ("bsc", "none")):
        sc = _make(parts, mode, code=code)
        out = sc(images, CAPS, snr_db=30.0, channel_seed=0, generate=False)
        bits = values * 8
        if code == "hamming74":  # 7 code bits per 4 information bits; the caption with the same code
            lat = math.ceil(bits / 4 * 7 / 4)
            cap = [math.ceil(math.ceil(7 * len(c) / 4) * 7 / 4) for c in CAPS]
        else:
            lat = math.ceil(bits / 4)
            cap = [math.ceil(7 * len(c) / 4) for c in CAPS]
        assert out.channel_uses == [lat + c for c in cap], (mode, code)
        assert out.info["latent_uses"] == [lat, lat] and out.info["caption_uses"] == cap
        assert sc.channel_uses(CAPS) == out.channel_uses


def test_high_snr_delivers_quantised_latent_and_caption(parts, images):
    sc = _make(parts)
    out = sc(images, CAPS, snr_db=40.0, channel_seed=0, generate=False)
    assert out.captions == CAPS and out.info["latent_bit_errors"] == [0, 0]
    for z, zr in zip(out.latents, out.received_latents):
        step = (z.max() - z.min()).item() / 2 ** 8  # per-image min/max range, 8 bits
        assert (zr - z).abs().max().item() <= step / 2 + 1e-5


@pytest.mark.parametrize("snr_db", [0.0, 6.0])
def test_flip_rate_matches_closed_form(parts, images, snr_db):
    p = ber_16qam_awgn(snr_db)
    for mode in ("bsc", "bit-true"):  # BSC draws the closed form; the bit-true modem must agree on average
        sc = _make(parts, mode)
        lat = sc.encode_latents(images).repeat(4, 1, 1, 1)
        _, _, _, info = sc.transmit(lat, CAPS * 4, snr_db, seed=5)
        n = sum(info["latent_bits"])
        rate = sum(info["latent_bit_errors"]) / n
        sd = math.sqrt(p * (1 - p) / n)
        assert abs(rate - p) < 5 * sd, (mode, rate, p)


def test_outputs_change_with_snr_and_repeat_with_seed(parts, images):
    sc = _make(parts)
    a = sc(images, CAPS, snr_db=0.0, channel_seed=1, seed=0)
    b = sc(images, CAPS, snr_db=0.0, channel_seed=1, seed=0)
    c = sc(images, CAPS, snr_db=20.0, channel_seed=1, seed=0)
    assert torch.equal(a.images, b.images) and a.captions == b.captions
    assert not torch.allclose(a.images, c.images, atol=1e-4)
    assert not torch.equal(a.received_latents, c.received_latents)
    d = sc(images, CAPS, snr_db=0.0, channel_seed=2, seed=0)
    assert not torch.equal(a.received_latents, d.received_latents)


def test_bad_input_and_missing_checkpoint(parts, images, tmp_path):
    sc = _make(parts)
    with pytest.raises(ValueError):
        sc(images, CAPS[:1], snr_db=0.0)
    with pytest.raises(ValueError):
        sc(images[:, :2], CAPS, snr_db=0.0)
    with pytest.raises(ValueError):
        Img2ImgSCConfig(mode="analog")
    with pytest.raises(ValueError):
        Img2ImgSCConfig(mode="bsc", code="hamming74")
    with pytest.raises(CheckpointNotFoundError, match="Stable Diffusion"):
        Img2ImgSC.from_pretrained(Img2ImgSCConfig(sd_checkpoint=str(tmp_path / "nope")))


# ------------------------------------------------------------------------------------------------
# mode="public-code": the public Img2Img-SC code's channel model
# ------------------------------------------------------------------------------------------------
def _bits_of(v: float) -> str:
    """IEEE-754 float64 bit string, sign first (independent of the package: struct)."""
    return format(struct.unpack(">Q", struct.pack(">d", v))[0], "064b")


def _from_bits(b: str) -> float:
    return struct.unpack(">d", struct.pack(">Q", int(b, 2)))[0]


def _pb_mpmath(snr_db: float) -> float:
    """The public code's formula at Eb/N0 = snr_db, evaluated with 50 digits."""
    mp.mp.dps = 50
    ebno = mp.mpf(10) ** (mp.mpf(snr_db) / 10)
    k, m = mp.mpf(4), mp.mpf(16)
    pm = (1 - 1 / mp.sqrt(m)) * mp.erfc(mp.sqrt(mp.mpf(3) / 2 / (m - 1) * k * ebno))
    return float((1 - (1 - pm) ** 2) / k)


def _pb_scipy(snr_db: float) -> float:
    """The same formula in float64 as the public code evaluates it (numpy + scipy's erfc)."""
    ebno = 10 ** (snr_db / 10)
    k = np.sqrt(16)
    m = 2 ** k
    pm = (1 - 1 / np.sqrt(m)) * erfc(np.sqrt(3 / 2 / (m - 1) * k * ebno))
    return float((1 - (1 - pm) ** 2) / k)


@pytest.mark.parametrize("snr_db", [-3.0, 0.0, 5.0, 10.0, 15.0])
def test_public_code_pb_equals_independent_evaluations(snr_db):
    pb = public_code_bit_error_rate(snr_db)
    assert isinstance(pb, float)
    assert math.isclose(pb, _pb_scipy(snr_db), rel_tol=1e-12)
    # float64 cancellation in 1 - (1 - Pm)^2 costs relative precision ~1e-16 / Pm
    assert math.isclose(pb, _pb_mpmath(snr_db), rel_tol=1e-8)


def test_public_code_pb_convention_and_array_input():
    # SNR taken as Eb/N0: Pb(x) approximates the exact Gray 16-QAM BER at Es/N0 = x + 10 log10(4)
    assert math.isclose(public_code_bit_error_rate(10.0), ber_16qam_awgn(10.0 + 10 * math.log10(4)), rel_tol=5e-3)
    assert public_code_bit_error_rate(10.0) < ber_16qam_awgn(10.0) / 10
    # as written in float64 it rounds to 0 at high SNR, like the public code
    assert public_code_bit_error_rate(25.0) == 0.0 == _pb_scipy(25.0)
    arr = public_code_bit_error_rate([0.0, 10.0])
    assert isinstance(arr, np.ndarray) and arr.shape == (2,)
    assert np.allclose(arr, [_pb_scipy(0.0), _pb_scipy(10.0)], rtol=1e-12)
    with pytest.raises(TypeError):
        public_code_bit_error_rate("10")
    with pytest.raises(ValueError):
        public_code_bit_error_rate(float("nan"))


def test_float64_bits_and_flip_are_bit_exact():
    vals = [1.5, -2.0, 0.1, 3.4028234663852886e38, -7.25e-3, 0.0]
    bits = float64_bits(torch.tensor(vals, dtype=torch.float64))
    assert ["".join(str(int(b)) for b in row) for row in bits] == [_bits_of(v) for v in vals]
    # float32 inputs are widened exactly (as the public code's Python float of a float32)
    x32 = torch.randn(50)
    assert torch.equal(float64_bits(x32), float64_bits(x32.double()))
    # random masks: output bits = input bits XOR mask, in every position
    g = torch.Generator().manual_seed(3)
    x = torch.randn(40, dtype=torch.float64, generator=g)
    mask = torch.rand(40, 64, generator=g) < 0.3
    y = public_code_flip(x, mask)
    assert torch.equal(float64_bits(y) ^ float64_bits(x), mask)
    with pytest.raises(ValueError):
        public_code_flip(x, mask[:, :63])


def _rule(v: float, r) -> float:
    """The public code's bin2float repair, written out per value (reference)."""
    if math.isnan(v) or math.isinf(v):
        v = r[0]
    if v > 10:
        v = r[1]
    if v < -10:
        v = r[2]
    if -1e-2 < v < 1e-2:
        v = r[3]
    return v


def test_replacement_rule_on_injected_bit_patterns():
    src = 1.5
    targets = {"nan": _from_bits("0" + "1" * 11 + "1" + "0" * 51), "big": 1e3, "small": 1e-3, "neg_big": -11.0,
               "inf": float("inf"), "kept": 0.75, "kept_edge": 10.0, "kept_neg": -0.02}
    x = torch.full((len(targets),), src, dtype=torch.float64)
    flips = torch.stack([torch.tensor([a != b for a, b in zip(_bits_of(src), _bits_of(t))]) for t in targets.values()])
    y = public_code_flip(x, flips)
    got = [_bits_of(v) for v in y.tolist()]
    assert got == [_bits_of(t) for t in targets.values()]  # the injected patterns arrive
    assert math.isnan(y[0].item())
    out, replaced = public_code_replace_outliers(y, torch.Generator().manual_seed(7))
    r = torch.randn((4, len(targets)), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    expect = [_rule(v, r[:, i].tolist()) for i, v in enumerate(y.tolist())]
    assert out.tolist() == expect
    assert replaced.tolist() == [True, True, True, True, True, False, False, False]
    assert out[5].item() == 0.75 and out[6].item() == 10.0 and out[7].item() == -0.02


def test_replacement_rule_matches_reference_in_order():
    """Many values, so that replacements landing in (-0.01, 0.01) are drawn again (NaN/Inf/>10 first)."""
    g = torch.Generator().manual_seed(11)
    v = torch.cat([torch.full((3000,), float("nan")), torch.full((3000,), 50.0), torch.full((3000,), -float("inf")),
                   torch.linspace(-0.02, 0.02, 3001), 30 * torch.randn(3000, generator=g)]).double()
    out, replaced = public_code_replace_outliers(v, torch.Generator().manual_seed(5))
    r = torch.randn((4, v.numel()), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    expect = [_rule(x, r[:, i].tolist()) for i, x in enumerate(v.tolist())]
    assert out.tolist() == expect
    first = torch.cat([r[0, :3000], r[1, 3000:6000], r[0, 6000:9000]])  # NaN, 50, -Inf: first replacement
    assert ((first > -1e-2) & (first < 1e-2)).any()  # ... some landed in (-0.01, 0.01): redrawn once (r[3])
    assert torch.isfinite(out).all() and (out.abs() <= 10).all()
    assert replaced.sum().item() == sum(1 for x in v.tolist() if not (math.isfinite(x) and 1e-2 <= abs(x) <= 10))


def test_public_code_latent_round_trip_at_high_snr():
    assert public_code_bit_error_rate(40.0) == 0.0
    special = torch.tensor([1e-3, -5e-3, 0.01, 12.0, -11.0, 10.0, -10.0, float(np.nextafter(np.float32(10),
                                                                                              np.float32(20)))])
    x = torch.cat([3 * torch.randn(2000, generator=torch.Generator().manual_seed(2)), special]).reshape(2, -1)
    y, bit_errs, replaced = public_code_latent_channel(x, 40.0, torch.Generator().manual_seed(0))
    assert y.dtype == torch.float32 and y.shape == x.shape and bit_errs.tolist() == [0, 0]
    xd = x.double()  # float32(0.01) widens to 0.00999999977... < 0.01: replaced, as in the public code
    keep = (xd.abs() >= 0.01) & (xd.abs() <= 10)
    assert torch.equal(y[keep], x[keep])  # float32 -> float64 -> float32 exact
    assert not (y[~keep] == x[~keep]).any()
    assert replaced.tolist() == (~keep).sum(-1).tolist()
    assert (~keep[1, -8:]).tolist() == [True, True, True, True, True, False, False, True]


@pytest.mark.parametrize("snr_db", [0.0, 5.0, 10.0])
def test_public_code_flip_rate_matches_pb(parts, images, snr_db):
    p = public_code_bit_error_rate(snr_db)
    sc = _make(parts, "public-code")
    lat = sc.encode_latents(images).repeat(4, 1, 1, 1)
    caps = ["a photo of a cat sitting on the mat, next to a dog! " * 20] * 8
    _, rx, _, info = sc.transmit(lat, caps, snr_db, seed=9)
    n = sum(info["latent_bits"])
    assert n == 8 * lat[0].numel() * 64
    rate = sum(info["latent_bit_errors"]) / n
    assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / n), (rate, p)
    # captions: measured on the output, 8 bits per character
    flipped = sum(bin(ord(a) ^ ord(b)).count("1") for c, r in zip(caps, rx) for a, b in zip(c, r))
    nc = sum(8 * len(c) for c in caps)
    assert all(len(r) == len(c) for c, r in zip(caps, rx)) and all(ord(ch) < 256 for r in rx for ch in r)
    assert flipped == sum(info["caption_bit_errors"])
    assert abs(flipped / nc - p) < 5 * math.sqrt(p * (1 - p) / nc), (flipped / nc, p)
    assert info["bit_error_rate"] == p


def test_public_code_caption_bits_round_trip_and_flips():
    assert public_code_caption_bits("abc") == 24 == 8 * 3
    assert public_code_caption_bits("caf\u00e9") == 32                       # latin-1: still 8 bits
    assert public_code_caption_bits("\u2019") == len(format(0x2019, "08b")) == 14   # as '{0:08b}'.format
    g = torch.Generator().manual_seed(0)
    caps = ["a cat on a mat", "", "Caf\u00e9 \u2019s"]
    assert public_code_caption_channel(caps, 40.0, g) == (caps, [0, 0, 0])
    # a single flip of bit k (MSB first) of an 8-bit character is chr(ord ^ 2**(7-k)); at the lowest
    # SNR Pb = 0.234: flips stay inside each character's own bits
    rx, errs = public_code_caption_channel(["A" * 4000, "\u2019" * 500], -30.0, torch.Generator().manual_seed(1))
    assert all(ord(ch) < 256 for ch in rx[0]) and all(ord(ch) < 2 ** 14 for ch in rx[1])
    assert errs == [sum(bin(ord(ch) ^ 65).count("1") for ch in rx[0]),
                    sum(bin(ord(ch) ^ 0x2019).count("1") for ch in rx[1])]
    p = public_code_bit_error_rate(-30.0)
    assert abs(errs[0] / 32000 - p) < 5 * math.sqrt(p * (1 - p) / 32000)
    with pytest.raises(TypeError):
        public_code_caption_channel("a cat", 10.0)


def test_public_code_channel_uses(parts, images):
    sc = _make(parts, "public-code")
    out = sc(images, CAPS, snr_db=10.0, channel_seed=0, generate=False)
    values = 4 * (SIZE // 2) ** 2
    lat = math.ceil(values * 64 / 4)  # uncoded 16-QAM symbols of the float64 bits (uncounted in the public code)
    cap = [math.ceil(8 * len(c) / 4) for c in CAPS]
    assert out.channel_uses == [lat + c for c in cap] == sc.channel_uses(CAPS)
    assert out.info["latent_uses"] == [lat, lat] and out.info["caption_uses"] == cap
    assert out.info["latent_bits"] == [values * 64] * 2 and out.info["caption_bits"] == [8 * len(c) for c in CAPS]


def test_public_code_end_to_end_and_posterior_sample(parts, images, tiny_sd_dir):
    cfg = Img2ImgSCConfig(sd_checkpoint=str(tiny_sd_dir), mode="public-code", num_inference_steps=STEPS,
                          image_size=SIZE, device="cpu")
    sc = Img2ImgSC.from_pretrained(cfg, channel=AWGN(seed=0))
    assert sc.sample_latent and sc.bits_per_symbol == 4
    out = sc(images, CAPS, snr_db=5.0, channel_seed=0, seed=0)
    assert out.images.shape == (2, 3, SIZE, SIZE) and out.images.dtype == torch.float32
    assert 0.0 <= out.images.min() and out.images.max() <= 1.0
    assert out.received_latents.shape == out.latents.shape == (2, 4, SIZE // 2, SIZE // 2)
    assert torch.isfinite(out.received_latents).all() and out.received_latents.abs().max() <= 10
    assert sum(out.info["latent_replaced"]) > 0 and out.captions != CAPS
    again = sc(images, CAPS, snr_db=5.0, channel_seed=0, seed=0)
    assert torch.equal(out.images, again.images) and out.captions == again.captions
    # the posterior sample: seeded, differs from the mean; sample_latent=False gives the bit-true mode's mean
    mean = _make(parts, "bit-true").encode_latents(images)
    assert torch.equal(sc.encode_latents(images, seed=3), sc.encode_latents(images, seed=3))
    assert not torch.equal(sc.encode_latents(images, seed=3), sc.encode_latents(images, seed=4))
    assert not torch.allclose(sc.encode_latents(images, seed=3), mean)
    assert torch.equal(_make(parts, "public-code", sample_latent=False).encode_latents(images), mean)


def test_public_code_bad_configuration(parts):
    with pytest.raises(ValueError, match="mode"):
        Img2ImgSCConfig(mode="public")
    with pytest.raises(ValueError, match="code"):
        Img2ImgSCConfig(mode="public-code", code="hamming74")
    with pytest.raises(ValueError, match="16qam"):
        Img2ImgSCConfig(mode="public-code", modulation="qpsk")
    with pytest.raises(TypeError, match="sample_latent"):
        Img2ImgSCConfig(mode="public-code", sample_latent="yes")
    cfg = Img2ImgSCConfig(mode="public-code", num_inference_steps=STEPS, image_size=SIZE, device="cpu")
    with pytest.raises(ValueError, match="AWGN"):
        Img2ImgSC(**parts, channel=Rayleigh(seed=0), config=cfg)
