"""SemCLIP baselines: each runs end to end and spends exactly its channel-use budget."""
import math

import numpy as np
import pytest
import torch

from baselines.bt_ir import BTIR, PillowCodec, pil_to_tensor, tensor_to_pil
from baselines.clip_ft import CLIPFT
from baselines.djscc import ImageJSCCCodec, train_image_jscc
from baselines.djscc_ft import DJSCCFT, predict_global_labels, train_djscc_ft
from phy.theory.capacity import awgn_capacity
from phy.channel.flat import AWGN, Rayleigh


@pytest.fixture(scope="module")
def digits():
    """Real images: scikit-learn's handwritten digits (8x8, 10 classes), upsampled to 16x16 RGB."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32) / 16.0
    x = torch.nn.functional.interpolate(x[:, None], size=16, mode="nearest").repeat(1, 3, 1, 1)
    return x, torch.tensor(d.target)


def _count_symbols_sent(channel, fn):
    """Independent count: wrap the channel's forward and record the symbols it actually carried."""
    seen = []
    orig = channel.forward

    def spy(x, no):
        seen.append(x.shape[-1])
        return orig(x, no)

    channel.forward = spy
    try:
        out = fn()
    finally:
        channel.forward = orig
    return out, seen


def test_clip_ft_budget_and_noiseless_identity():
    ch = AWGN(seed=0)
    ft = CLIPFT(ch)
    tok = torch.randn(5, 64)
    out, seen = _count_symbols_sent(ch, lambda: ft(tok, snr_db=0.0))
    assert seen == [32] and out.channel_uses == 32 == ft.channel_uses(64)
    assert torch.allclose(ft(tok, snr_db=float("inf")).x_hat, tok, atol=1e-5)


@pytest.mark.parametrize("bottleneck", ["dense", "conv"])
def test_image_jscc_budget_power_and_training(digits, bottleneck):
    x, _ = digits
    ch = AWGN(seed=1)
    codec = ImageJSCCCodec.build(image_size=16, channel_uses=24, hidden=16, num_down=2, latent_channels=4,
                                 bottleneck=bottleneck)
    out, seen = _count_symbols_sent(ch, lambda: codec(x[:8], ch, snr_db=5.0))
    assert seen == [24] and out.channel_uses == 24
    assert out.x_hat.shape == x[:8].shape
    p = out.info["symbols"].abs().pow(2).mean(-1)
    assert torch.allclose(p, torch.ones_like(p), atol=1e-5)
    with torch.no_grad():
        before = torch.nn.functional.mse_loss(codec(x[:64], ch, 10.0).x_hat, x[:64]).item()
    train_image_jscc(codec, x[:256], ch, (0.0, 20.0), steps=60, batch_size=32, lr=3e-3)
    with torch.no_grad():
        after = torch.nn.functional.mse_loss(codec.eval()(x[:64], ch, 10.0).x_hat, x[:64]).item()
    assert after < 0.7 * before


def test_image_jscc_bad_input():
    with pytest.raises(ValueError, match="image_size"):
        ImageJSCCCodec.build(image_size=18, channel_uses=8, num_down=2)
    codec = ImageJSCCCodec.build(image_size=16, channel_uses=8, hidden=8, num_down=2)
    with pytest.raises(ValueError, match="images must be"):
        codec(torch.rand(2, 3, 32, 32), AWGN(seed=0), 0.0)


def test_djscc_ft_learns_seen_classes_and_cannot_name_unseen(digits):
    x, y = digits
    seen_cls = [0, 1, 2, 3, 4]  # classes 5..9 are never shown to the model
    m_seen = torch.isin(y, torch.tensor(seen_cls))
    model = DJSCCFT(image_size=16, num_classes=5, class_ids=seen_cls, feature_dim=32, channel_uses=8, hidden=16,
                    num_down=2, jscc_hidden=64)
    ch = Rayleigh(seed=2)
    xs, ys = x[m_seen], y[m_seen]
    out, seen = _count_symbols_sent(ch, lambda: model.codec(torch.randn(3, 32), ch, 0.0))
    assert seen == [8] and out.channel_uses == 8 == model.channel_uses
    train_djscc_ft(model, xs[:600], ys[:600], ch, (10.0, 20.0), steps=150, batch_size=64, lr=3e-3)
    model.eval()
    with torch.no_grad():
        pred_seen = predict_global_labels(model, model(xs[600:], ch, 20.0), k=1)[:, 0]
        pred_unseen = predict_global_labels(model, model(x[~m_seen], ch, 20.0), k=1)[:, 0]
    acc_seen = (pred_seen == ys[600:]).float().mean().item()
    assert acc_seen > 0.5  # chance is 0.2
    assert (pred_unseen == y[~m_seen]).float().mean().item() == 0.0  # its head has no unseen class
    with pytest.raises(ValueError, match="class_ids"):
        train_djscc_ft(model, x[~m_seen][:4], y[~m_seen][:4], ch, (0, 1), steps=1)


def test_bt_ir_fits_budget_and_degrades_to_nothing():
    from sklearn.datasets import load_sample_image

    img = pil_to_tensor(tensor_to_pil(torch.zeros(3, 1, 1)))  # trivial round trip of the helpers
    assert img.shape == (3, 1, 1)
    china = torch.from_numpy(load_sample_image("china.jpg")[:128, :128].astype(np.float32) / 255).permute(2, 0, 1)
    for L, snr in [(8192, 10.0), (4096, 5.0)]:
        bt = BTIR(PillowCodec("jpeg"), channel_uses=L)
        res = bt.transmit(china[None], snr_db=snr)
        budget = math.floor(L * awgn_capacity(snr))
        assert res.budget_bits == budget and res.channel_uses == L
        if res.delivered[0]:
            assert res.payload_bits[0] <= budget
            assert res.images[0].shape == china.shape
            # a larger budget never gives a worse reconstruction than a smaller one
    big = BTIR(PillowCodec("jpeg"), channel_uses=8192).transmit(china[None], 10.0)
    small = BTIR(PillowCodec("jpeg"), channel_uses=3072).transmit(china[None], 10.0)
    assert big.delivered[0] and small.delivered[0]
    mse_big = (big.images[0] - china).pow(2).mean()
    mse_small = (small.images[0] - china).pow(2).mean()
    assert big.quality[0] > small.quality[0] and mse_big < mse_small
    tiny = BTIR(PillowCodec("jpeg"), channel_uses=64).transmit(china[None], 0.0)
    assert not tiny.delivered[0] and tiny.images[0] is None and tiny.payload_bits[0] is None
    assert "nothing delivered" in tiny.notes[0]
    with pytest.raises(ValueError, match="fmt"):
        PillowCodec("png")
    with pytest.raises(ValueError, match="finite"):  # not a garbage negative budget ("nothing delivered")
        BTIR(PillowCodec("jpeg"), channel_uses=64).transmit(china[None], float("inf"))


@pytest.fixture
def fake_compressai(monkeypatch):
    """A stand-in for the optional ``compressai`` package (not installed here): its zoo's URL table,
    an architecture whose ``from_state_dict`` keeps the weights, and a network fetch that records calls."""
    import sys
    import types

    urls = {q: f"https://example.invalid/models/v1/cheng2020_attn-mse-{q}-abc{q}.pth.tar" for q in range(1, 7)}

    class Arch(torch.nn.Module):
        @classmethod
        def from_state_dict(cls, sd):
            net = cls()
            net.w = torch.nn.Parameter(sd["w"].clone())
            return net

    image = types.ModuleType("compressai.zoo.image")
    image.model_urls = {"cheng2020-attn": {"mse": urls}}
    image.model_architectures = {"cheng2020-attn": Arch}
    pretrained = types.ModuleType("compressai.zoo.pretrained")
    pretrained.load_pretrained = lambda sd: sd
    zoo = types.ModuleType("compressai.zoo")
    zoo.image, zoo.pretrained = image, pretrained
    pkg = types.ModuleType("compressai")
    pkg.zoo = zoo
    for name, mod in (("compressai", pkg), ("compressai.zoo", zoo), ("compressai.zoo.image", image),
                      ("compressai.zoo.pretrained", pretrained)):
        monkeypatch.setitem(sys.modules, name, mod)
    fetched = []
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda url, dst, progress=True: (
        fetched.append(url), torch.save({"w": torch.ones(1)}, dst)))
    return fetched


def test_cheng2020_weights_are_local_only_and_never_unpickled(fake_compressai, tmp_path):
    """A missing quality level is an error naming it and --allow-download (it used to reach the network
    through torch.hub whenever *some* weights file existed); files load with weights_only=True."""
    from baselines.bt_ir import CompressAICodec

    torch.save({"w": torch.full((1,), 6.0)}, tmp_path / "cheng2020_attn-mse-6-abc6.pth.tar")
    with pytest.raises(FileNotFoundError, match=r"quality \[5\].*--allow-download"):
        CompressAICodec(qualities=(6, 5), weights_dir=tmp_path)
    codec = CompressAICodec(qualities=(6,), weights_dir=tmp_path)
    assert float(codec._model(6).w) == 6.0 and fake_compressai == []
    # with allow_download only the missing level is fetched, into weights_dir
    both = CompressAICodec(qualities=(6, 5), weights_dir=tmp_path, allow_download=True)
    both._model(6), both._model(5)
    assert fake_compressai == ["https://example.invalid/models/v1/cheng2020_attn-mse-5-abc5.pth.tar"]
    # a planted pickle in the weights folder is refused and does not run
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"w": Payload()}, tmp_path / "cheng2020_attn-mse-4-abc4.pth.tar")
    with pytest.raises(ValueError, match="refused to unpickle"):
        CompressAICodec(qualities=(4,), weights_dir=tmp_path)._model(4)
    assert not marker.exists()


def test_image_jscc_conv_bottleneck_layout_size_and_round_trip(digits, tmp_path):
    """ADJSCC's convolutional bottleneck (budget, power and training: the parametrised test above): 2L / s^2
    channels on the s x s map are the 2L reals (no dense layer); small at the SemCLIP paper's DJSCC-IR point
    (336 px, L = 28224) where the dense layer would hold 16 * 21^2 * 2L = 398M weights per side."""
    from baselines.djscc import conv_bottleneck_fits

    x, _ = digits
    codec = ImageJSCCCodec.build(image_size=16, channel_uses=24, hidden=16, num_down=2, bottleneck="conv")
    assert isinstance(codec.encoder.dense, torch.nn.Identity) and isinstance(codec.decoder.dense, torch.nn.Identity)
    assert codec.encoder.to_latent.out_channels == 2 * 24 // 4 ** 2
    codec.save_pretrained(tmp_path / "c")
    again = ImageJSCCCodec.from_pretrained(tmp_path / "c")
    assert again.encoder.config.bottleneck == "conv"
    torch.testing.assert_close(again.encoder(x[:4], 5.0), codec.encoder(x[:4], 5.0))
    big = ImageJSCCCodec.build(image_size=336, channel_uses=28224, hidden=64, num_down=4, bottleneck="conv")
    assert sum(q.numel() for q in big.encoder.parameters()) < 1e6 < 16 * 21 ** 2 * 2 * 28224 / 100
    assert conv_bottleneck_fits(336, 4, 28224) and not conv_bottleneck_fits(336, 4, 47078)
    with pytest.raises(ValueError, match="divisible"):
        ImageJSCCCodec.build(image_size=16, channel_uses=25, hidden=8, num_down=2, bottleneck="conv")
    with pytest.raises(ValueError, match="bottleneck"):
        ImageJSCCCodec.build(image_size=16, channel_uses=24, hidden=8, num_down=2, bottleneck="attention")


def test_train_resumable_never_unpickles_and_refuses_other_settings(tmp_path):
    """The DJSCC trainers' resume (train_resumable under the resume guard's rules): ``train_state.pt`` is read
    with ``weights_only=True`` (a planted pickle is refused and never runs) and only under the settings it
    records (another lr, or another recorded option, is refused naming it); the same settings resume exactly."""
    from baselines.djscc import train_resumable
    from test_jscc import _Payload  # a pickle whose loading would write a marker file

    images = torch.rand(6, 3, 16, 16)

    def run(out, stop_at=None, lr=1e-3, settings=None):
        torch.manual_seed(0)
        codec = ImageJSCCCodec.build(image_size=16, channel_uses=8, hidden=8, num_down=2)
        hist = train_resumable(codec, lambda m, x, y, s: ((m(x, AWGN(seed=1), s).x_hat - x) ** 2).mean(),
                               lambda idx: (images[idx], None), len(images), AWGN(seed=1), (0.0, 10.0), 4, out,
                               batch_size=3, lr=lr, checkpoint_every=2, stop_at=stop_at,
                               settings=settings or {"bottleneck": "dense"})
        return codec, hist

    full, hist = run(tmp_path / "full")
    run(tmp_path / "part", stop_at=2)
    for bad, match in ((dict(lr=1e-2), r"lr: 0\.001 -> 0\.01"),
                       (dict(settings={"bottleneck": "conv"}), "bottleneck: 'dense' -> 'conv'")):
        with pytest.raises(ValueError, match=match):
            run(tmp_path / "part", **bad)
    resumed, hist2 = run(tmp_path / "part")
    assert hist2 == hist and all(torch.equal(a, b) for a, b in zip(full.state_dict().values(),
                                                                   resumed.state_dict().values()))
    run(tmp_path / "planted", stop_at=2)
    state_file = tmp_path / "planted" / "train_state.pt"
    marker = tmp_path / "pwned"
    torch.save({**torch.load(state_file, weights_only=True), "evil": _Payload(marker)}, state_file)
    with pytest.raises(ValueError, match="train_state.pt.*refused to unpickle"):
        run(tmp_path / "planted")
    assert not marker.exists()
