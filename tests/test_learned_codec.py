"""BT-IR's learned codec (hyperprior + Gaussian-mixture likelihoods after Cheng et al.): the payload size is the
ideal code length of the rounded latents, the deployment pair decodes what the model reconstructs, training
trades rate for distortion, and BT-IR sends each image at the highest quality that fits the capacity budget."""
import math

import pytest
import torch

from baselines.bt_ir import BTIR, pil_to_tensor, tensor_to_pil
from baselines.learned_codec import STREAM_OVERHEAD_BITS, GMMHyperpriorCodec, LearnedCodec, rd_loss
from experiments.cli import main


def _images(n=8, size=32):
    g = torch.Generator().manual_seed(0)
    base = torch.rand(n, 3, 1, 1, generator=g)  # flat colours with a little texture: compressible
    return (base + 0.05 * torch.rand(n, 3, size, size, generator=g)).clamp(0, 1)


def test_payload_bits_are_the_ideal_code_length_of_the_rounded_latents():
    model = GMMHyperpriorCodec(channels=8, mixtures=2).eval()
    x = _images(1, 40)
    payload = model.compress(x)
    with torch.no_grad():
        out = model(x)  # eval mode: rounded latents, the same likelihoods
    info = sum(float(-torch.log2(v).sum()) for v in out["likelihoods"].values())
    assert payload.bits == math.ceil(info) + 2 * STREAM_OVERHEAD_BITS
    torch.testing.assert_close(model.decompress(payload), out["x_hat"])
    assert payload.shape == (40, 40) and payload.y.dtype == torch.int32  # padded to 64 px inside, cropped back
    assert payload.y.shape[-2:] == (4, 4) and payload.z.shape[-2:] == (1, 1)


def test_training_lowers_the_rate_distortion_loss_and_lambda_trades_rate_for_quality():
    torch.manual_seed(0)
    imgs = _images(16)
    bits = {}
    for lmbda in (0.001, 0.1):
        model = GMMHyperpriorCodec(channels=8, mixtures=2, lmbda=lmbda)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        losses = []
        for _ in range(60):
            loss = rd_loss(model(imgs), imgs, lmbda)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert sum(losses[-10:]) < 0.7 * sum(losses[:10]), lmbda
        model.eval()
        bits[lmbda] = sum(model.compress(imgs[i:i + 1]).bits for i in range(4))
    assert bits[0.001] < bits[0.1]  # a small lambda buys a smaller payload


def test_btir_sends_each_image_at_the_highest_quality_that_fits(tmp_path):
    low, high = GMMHyperpriorCodec(channels=4, mixtures=1, lmbda=0.001), GMMHyperpriorCodec(channels=8, mixtures=2)
    codec = LearnedCodec({1: low, 2: high})
    img = tensor_to_pil(_images(1)[0])
    sizes = {q: codec._models[q].compress(pil_to_tensor(img)[None]).bits for q in (1, 2)}
    assert codec.encode_to_budget(img, max(sizes.values()))[1] == max(sizes, key=sizes.get)
    assert codec.encode_to_budget(img, min(sizes.values()) - 1) is None
    res = BTIR(codec, channel_uses=10_000).transmit(_images(2), snr_db=10.0)
    assert res.delivered.tolist() == [True, True] and all(b <= res.budget_bits for b in res.payload_bits)
    assert res.images[0].shape == (3, 32, 32)
    back = LearnedCodec.from_pretrained(codec.save_pretrained(tmp_path / "codec"))
    assert back.qualities == (2, 1) and back.encode_to_budget(img, 10 ** 6)[0].bits == sizes[2]
    with pytest.raises(FileNotFoundError, match="train-codec"):
        LearnedCodec.from_pretrained(tmp_path / "nothing")
    with pytest.raises(TypeError, match="encode_to_budget"):
        BTIR(object(), channel_uses=8)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="channels must be a positive int"):
        GMMHyperpriorCodec(channels=0)
    with pytest.raises(ValueError, match="lmbda must be a positive number"):
        GMMHyperpriorCodec(lmbda=0.0)
    model = GMMHyperpriorCodec(channels=4, mixtures=1)
    with pytest.raises(ValueError, match=r"\[batch, 3, H, W\]"):
        model(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="one image"):
        model.compress(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="at least one quality"):
        LearnedCodec({})


def test_train_codec_command_trains_every_level_resumably_and_feeds_semclip_eval(tmp_path):
    """`semcom semclip train-codec` trains one model per lambda on the seen-class images, writes codec.json, a
    rerun trains nothing, another setting is refused, and semclip-eval loads it instead of training its own."""
    from semantic.tiny import save_tiny_open_clip, write_class_folders

    clip = save_tiny_open_clip(tmp_path / "clip")
    data = tmp_path / "data"
    write_class_folders(data, num_classes=10, per_class=2)
    out = tmp_path / "codec"
    argv = ["semclip", "train-codec", "--data", str(data), "--out", str(out), "--clip-model", f"local-dir:{clip}",
            "--lambdas", "0.001,0.01", "--channels", "4", "--mixtures", "1", "--steps", "2", "--batch-size", "2",
            "--device", "cpu", "--no-progress"]
    assert main(argv) == 0
    codec = LearnedCodec.from_pretrained(out)
    assert codec.qualities == (2, 1)
    assert [codec._models[q].config.lmbda for q in (1, 2)] == [0.001, 0.01]
    state = (out / "q1" / "train_state.pt").stat().st_mtime_ns
    assert main(argv) == 0 and (out / "q1" / "train_state.pt").stat().st_mtime_ns == state  # nothing retrained
    assert main(argv + ["--lr", "0.5"]) == 2  # another setting into the same folder: refused
    ev = tmp_path / "eval"
    import experiments.commands.semclip_eval as se

    assert main(["semclip-eval", "--data", str(data), "--out", str(ev), "--clip-model", f"local-dir:{clip}",
                 "--device", "cpu", "--no-progress", "--studies", "bandwidth", "--bandwidth-systems", "bt-ir",
                 "--channel-uses", "20000", "--btir-model", str(out), "--train-steps", "2",
                 "--train-batch-size", "4", "--hidden-dim", "8"]) == 0
    assert not (ev / "models" / "btir-codec").exists() and se.SYSTEMS
    row = next(r for r in __import__("csv").DictReader(open(ev / "accuracy_vs_bandwidth.csv")))
    assert row["system"] == "bt-ir" and "learned-gmm" in row["note"]
