"""Img2Img-SC with the tiny SD 1.5-layout models of tests/tiny_models.py."""
import math

import pytest
import torch

import semantic  # noqa: F401
from tiny_models import TINY_IMAGE_SIZE, tiny_sd_dir  # noqa: F401  (module fixture)

from baselines.img2img_sc import Img2ImgSC, Img2ImgSCConfig, load_sd_components
from phy.channels import AWGN
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
