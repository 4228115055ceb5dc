"""DJSCC-IR as the transformer DeepJSCC the SemCLIP paper cites: exact channel uses at any L (puncturing),
per-example power, SNR adaptation, checkpoints of either architecture, training that learns."""
import pytest
import torch
import torch.nn.functional as F

from baselines.djscc import ImageJSCCCodec, train_image_jscc
from baselines.djscc_vit import ViTJSCCCodec, ViTJSCCDecoder, ViTJSCCEncoder, load_image_jscc, vit_patch_size
from phy.channel.flat import AWGN

KW = dict(image_size=32, patch_size=8, dim=16, depth=1, heads=2)


@pytest.mark.parametrize("L", [1, 7, 16, 40, 999])  # 16 tokens: 2L of 2 .. 1998 reals, punctured or not
def test_any_channel_uses_are_spent_exactly_at_unit_power(L):
    codec = ViTJSCCCodec.build(channel_uses=L, **KW).requires_grad_(False)
    x = codec.encoder(torch.rand(3, 3, 32, 32), torch.zeros(3))
    assert x.shape == (3, L) and x.dtype == torch.complex64
    torch.testing.assert_close(x.abs().pow(2).mean(dim=1), torch.ones(3))
    out = codec(torch.rand(3, 3, 32, 32), AWGN(seed=0), snr_db=5.0)
    assert out.channel_uses == L and out.x_hat.shape == (3, 3, 32, 32)
    assert 0 <= out.x_hat.min().item() and out.x_hat.max().item() <= 1


def test_power_is_per_example_and_the_snr_is_used():
    codec = ViTJSCCCodec.build(channel_uses=24, **KW).eval()
    imgs = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        alone = codec.encoder(imgs[:1], torch.zeros(1))
        batch = codec.encoder(imgs, torch.zeros(4))
        torch.testing.assert_close(alone, batch[:1])  # one image's symbols do not depend on the others
        assert not torch.allclose(codec.encoder(imgs, torch.full((4,), 10.0)), batch)  # SNR-adaptive
        plain = ViTJSCCCodec.build(channel_uses=24, use_af=False, **KW)
        torch.testing.assert_close(plain.encoder(imgs, torch.zeros(4)), plain.encoder(imgs, torch.full((4,), 10.0)))


def test_punctured_reals_are_not_sent_and_come_back_as_zeros():
    """16 tokens x ceil(2*7/16) = 1 real each: the first 14 are the 7 symbols sent, the last 2 punctured; the
    decoder sees zeros there."""
    from phy.link.base import real_to_complex
    from phy.utils.conventions import normalize_power

    enc = ViTJSCCEncoder(channel_uses=7, **KW)
    assert enc.head.out_features == 1
    head = []
    enc.head.register_forward_hook(lambda m, i, o: head.append(o))
    x = enc(torch.rand(2, 3, 32, 32), torch.zeros(2))
    reals = head[0].flatten(1)
    assert reals.shape == (2, 16)
    torch.testing.assert_close(x, normalize_power(real_to_complex(reals[:, :14])[0])[0])
    dec = ViTJSCCDecoder(channel_uses=7, **KW)
    seen = []
    dec.unhead.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    dec(x.detach(), torch.zeros(2))
    assert seen[0].shape == (2, 16, 1) and torch.equal(seen[0][:, 14:], torch.zeros(2, 2, 1))


def test_checkpoints_of_either_architecture_load_by_their_class(tmp_path):
    vit = ViTJSCCCodec.build(channel_uses=24, **KW)
    conv = ImageJSCCCodec.build(image_size=32, channel_uses=64, hidden=8, num_down=2)
    for codec, name in ((vit, "vit"), (conv, "adjscc")):
        back = load_image_jscc(codec.save_pretrained(tmp_path / name))
        assert type(back) is type(codec) and back.channel_uses == codec.channel_uses
        for p, q in zip(codec.parameters(), back.parameters()):
            assert torch.equal(p, q)
    with pytest.raises(FileNotFoundError, match="image JSCC checkpoint"):
        load_image_jscc(tmp_path / "nothing")


def test_training_lowers_the_reconstruction_error():
    torch.manual_seed(0)
    codec = ViTJSCCCodec.build(channel_uses=96, **KW)
    imgs = torch.rand(16, 3, 32, 32) * 0.2 + torch.linspace(0, 0.8, 16)[:, None, None, None]  # brightness levels
    hist = train_image_jscc(codec, imgs, AWGN(seed=0), (10.0, 10.0), steps=60, batch_size=8, lr=3e-3)
    assert sum(h["loss"] for h in hist[-10:]) < 0.5 * sum(h["loss"] for h in hist[:10])
    codec.eval()
    with torch.no_grad():
        mse = F.mse_loss(codec(imgs, AWGN(seed=1), 10.0).x_hat, imgs)
    assert float(mse) < float(((imgs - imgs.mean()) ** 2).mean())  # beats the best constant image


def test_bad_geometry_and_inputs_are_refused():
    with pytest.raises(ValueError, match="divisible by patch_size"):
        ViTJSCCEncoder(image_size=30, channel_uses=8, patch_size=8, dim=16, depth=1, heads=2)
    with pytest.raises(ValueError, match="divisible by heads"):
        ViTJSCCEncoder(image_size=32, channel_uses=8, patch_size=8, dim=18, depth=1, heads=4)
    with pytest.raises(ValueError, match="channel_uses must be a positive int"):
        ViTJSCCEncoder(image_size=32, channel_uses=0, patch_size=8, dim=16, depth=1, heads=2)
    enc = ViTJSCCEncoder(channel_uses=8, **KW)
    with pytest.raises(ValueError, match=r"images must be \[batch, 3, 32, 32\]"):
        enc(torch.rand(1, 3, 16, 16), 0.0)
    with pytest.raises(ValueError, match="symbols must be complex"):
        ViTJSCCDecoder(channel_uses=8, **KW)(torch.rand(1, 8), 0.0)
    assert vit_patch_size(336) == 16 and vit_patch_size(32) == 8 and vit_patch_size(7) == 1
