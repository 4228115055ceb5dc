"""SemCLIP end to end on a tiny open_clip model: weights loading, token extraction cache, datasets,
zero-shot upper bound, metrics and the ``semcom semclip`` CLI."""
import csv
import math

import semantic  # noqa: F401  (torchvision shim before open_clip)
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from phy.channels import AWGN
from semantic.checkpoints import CheckpointNotFoundError
from semantic.clip_tokens import (CLIPImageEncoder, CLIPWeightsUnavailableError, FeatureSet, extract_features,
                                  load_open_clip)
from semantic.datasets import caltech101, food101, image_folder, make_dataset, oxford_pets, split_classes
from semantic.jscc import JSCCCodec
from semantic.semclip import (SemCLIP, SemCLIPConfig, classification_topk, evaluate_zeroshot,
                              text_to_image_retrieval)
from test_tapl import TINY_CLIP_CFG, save_tiny_clip
from tiny_models import write_digit_folder

FOLDER_CLASSES = ["golden_retriever", "tabby_cat", "sports_car", "airliner", "daisy"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return load_open_clip(f"local-dir:{tiny_dir}")


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    return write_digit_folder(tmp_path_factory.mktemp("imgs"), FOLDER_CLASSES, per_class=3, size=40)


# ---------------------------------------------------------------------------------------------- weights
def test_local_dir_round_trip_and_offline_error(tiny_dir, tiny):
    import open_clip

    model, preprocess, tokenizer = tiny
    torch.manual_seed(0)
    ref = open_clip.CLIP(**TINY_CLIP_CFG)  # same seed as save_tiny_clip
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(model.encode_image(x), ref.encode_image(x))
    assert not any(p.requires_grad for p in model.parameters())
    with pytest.raises(CLIPWeightsUnavailableError) as err:
        load_open_clip("ViT-B-32", "openai")  # not in the (offline) cache
    msg = str(err.value)
    assert "ViT-B-32" in msg and "openai" in msg and "--pretrained" in msg
    assert isinstance(err.value, CheckpointNotFoundError)
    with pytest.raises(ValueError, match="not a built-in open_clip model"):
        load_open_clip("no-such-model", None)
    with pytest.raises(ValueError, match="tag"):
        load_open_clip("ViT-B-32", "no-such-tag")


# ---------------------------------------------------------------------------------------------- extraction
def test_extraction_is_cached_and_matches_the_encoder(tiny, image_root, tmp_path):
    model, preprocess, _ = tiny
    ds = image_folder(image_root, transform=preprocess)
    assert ds.class_names == sorted(c.replace("_", " ") for c in FOLDER_CLASSES)
    enc = CLIPImageEncoder(model, key="tiny")
    calls = []
    original = enc.forward

    def counting(images):
        calls.append(images.shape[0])
        return original(images)

    enc.forward = counting
    fs = extract_features(enc, ds, tmp_path / "feats", batch_size=4, shard_size=8, progress=False)
    assert sum(calls) == len(ds) == 15 and len(fs.meta["shards"]) == 2
    direct = model.encode_image(torch.stack([ds[i][0] for i in range(len(ds))]))
    torch.testing.assert_close(fs.features, direct, rtol=1e-4, atol=1e-5)
    assert fs.labels.tolist() == ds.labels and fs.paths == ds.paths
    assert fs.meta["image_shape"] == [3, 32, 32]
    calls.clear()
    again = extract_features(enc, ds, tmp_path / "feats", batch_size=4, shard_size=8, progress=False)
    assert calls == []  # the encoder is not run again
    torch.testing.assert_close(again.features, fs.features)
    # an interrupted extraction resumes at the missing shard only
    (tmp_path / "feats" / "shard-00001.safetensors").unlink()
    m = (tmp_path / "feats" / "manifest.json")
    m.write_text(m.read_text().replace('"complete": true', '"complete": false'))
    extract_features(enc, ds, tmp_path / "feats", batch_size=4, shard_size=8, progress=False)
    assert sum(calls) == 15 - 8
    with pytest.raises(ValueError, match="another encoder"):
        extract_features(enc, ds, tmp_path / "feats", encoder_key="other", batch_size=4, shard_size=8)


def test_feature_set_subset_and_split():
    fs = FeatureSet(torch.arange(12.0).reshape(6, 2), torch.tensor([0, 1, 2, 0, 1, 2]), ["a", "b", "c"])
    sub = fs.subset_classes([2, 0])
    assert sub.class_names == ["c", "a"] and sub.labels.tolist() == [1, 0, 1, 0]
    assert sub.features[:, 0].tolist() == [0.0, 4.0, 6.0, 10.0]
    seen, unseen = split_classes(1000, 0.2, seed=0)
    assert (len(seen), len(unseen)) == (800, 200) and not set(seen) & set(unseen)
    assert split_classes(1000, 0.2, seed=0) == (seen, unseen) and split_classes(1000, 0.2, seed=1) != (seen, unseen)
    with pytest.raises(ValueError, match="unseen_fraction"):
        split_classes(10, 1.5)


def test_dataset_layouts(tmp_path):
    from PIL import Image

    img = Image.new("RGB", (8, 8))
    # Oxford-IIIT Pet
    pets = tmp_path / "pets"
    (pets / "images").mkdir(parents=True)
    (pets / "annotations").mkdir()
    for name in ("Abyssinian_1", "Abyssinian_2", "american_bulldog_10", "Bengal_3"):
        img.save(pets / "images" / f"{name}.jpg")
    (pets / "annotations" / "test.txt").write_text("Abyssinian_1 1 1 1\namerican_bulldog_10 2 2 1\n")
    ds = oxford_pets(pets, split="test")
    assert ds.class_names == ["abyssinian", "american bulldog"] and ds.labels == [0, 1]
    assert len(oxford_pets(pets, split=None)) == 4
    # Food-101
    food = tmp_path / "food"
    for c in ("apple_pie", "sushi"):
        (food / "images" / c).mkdir(parents=True)
        img.save(food / "images" / c / "1.jpg")
    (food / "meta").mkdir()
    (food / "meta" / "classes.txt").write_text("apple_pie\nsushi\n")
    (food / "meta" / "test.txt").write_text("sushi/1\n")
    ds = food101(food, split="test")
    assert ds.class_names == ["apple pie", "sushi"] and ds.labels == [1]
    # Caltech-101
    cal = tmp_path / "cal" / "101_ObjectCategories"
    for c in ("BACKGROUND_Google", "Faces_easy", "accordion"):
        (cal / c).mkdir(parents=True)
        img.save(cal / c / "image_0001.jpg")
    ds = caltech101(tmp_path / "cal")
    assert ds.class_names == ["face", "accordion"] and len(ds) == 2
    # the real archive has both Faces and Faces_easy: one class "face" only (no duplicate prompt)
    (cal / "Faces").mkdir()
    img.save(cal / "Faces" / "image_0001.jpg")
    ds = caltech101(tmp_path / "cal")
    assert ds.class_names == ["face", "accordion"] and len(ds) == 2
    assert ds.paths[0].endswith("Faces_easy/image_0001.jpg")
    # ImageNet-style folder with a classnames.txt
    inet = tmp_path / "inet"
    for d in ("n01440764", "n01443537"):
        (inet / d).mkdir(parents=True)
        img.save(inet / d / "a.JPEG")
    (inet / "classnames.txt").write_text("n01440764 tench\nn01443537 goldfish\n")
    ds = make_dataset("imagenet", inet)
    assert ds.class_names == ["tench", "goldfish"] and ds.labels == [0, 1]
    with pytest.raises(ValueError, match="dataset must be one of"):
        make_dataset("mnist", inet)
    with pytest.raises(FileNotFoundError):
        image_folder(tmp_path / "nothing")


# ---------------------------------------------------------------------------------------------- metrics
def test_topk_and_text_to_image_retrieval_hand_cases():
    logits = torch.tensor([[3.0, 1.0, 2.0], [0.0, 1.0, 2.5], [5.0, 4.0, 0.0], [0.0, 0.1, 0.2]])
    labels = torch.tensor([0, 1, 1, 2])
    acc = classification_topk(logits, labels, (1, 2))
    assert acc[1] == pytest.approx(2 / 4) and acc[2] == pytest.approx(4 / 4)  # rows 0, 3 top-1; rows 1, 2 top-2
    ret = text_to_image_retrieval(logits, labels, (1, 2))
    # class 0 ranks image 2 (label 1) first -> miss, image 0 second; class 1: image 2 first -> hit;
    # class 2: image 1 first (label 1) -> miss, image 0 second (label 0) -> miss
    assert ret[1] == pytest.approx(1 / 3) and ret[2] == pytest.approx(2 / 3)


# ---------------------------------------------------------------------------------------------- zero-shot
def test_noiseless_zero_shot_equals_direct_clip_classifier(tiny):
    model, _, tokenizer = tiny
    g = torch.Generator().manual_seed(1)
    tokens = torch.randn(40, 32, generator=g)
    names = ["cat", "dog", "car", "plane", "flower", "tree"]
    labels = torch.randint(0, len(names), (40,), generator=g)
    w = F.normalize(model.encode_text(tokenizer([f"a photo of a {c}." for c in names])), dim=-1)
    direct = (F.normalize(tokens, dim=-1) @ w.T)
    cfg = SemCLIPConfig(token_dim=32, channel_uses=8)
    from semantic.tapl import TAPL

    for tapl in (None, TAPL(token_dim=32, ctx_dim=32, n_ctx=4)):  # plain classifier / TAPL at init (pi = 0)
        system = SemCLIP.from_clip(cfg, model, tokenizer, codec=None, tapl=tapl)
        if tapl is not None:
            tapl.init_context(system.tower, tokenizer, "a photo of a")
        r = evaluate_zeroshot(system, tokens, labels, names, None, math.inf)
        assert r["top1"] == pytest.approx(classification_topk(direct, labels, (1,))[1])
        assert r["top5"] == pytest.approx(classification_topk(direct, labels, (5,))[5])
        assert r["retrieval_top1"] == pytest.approx(text_to_image_retrieval(direct, labels, (1,))[1])
    # through a JSCC the result is a probability too, and the bandwidth ratio is L / (3*32*32)
    codec = JSCCCodec.build(token_dim=32, channel_uses=8, hidden_dim=16)
    system = SemCLIP.from_clip(cfg, model, tokenizer, codec=codec)
    r = evaluate_zeroshot(system, tokens, labels, names, AWGN(seed=0), 0.0)
    assert 0.0 <= r["top1"] <= r["top5"] <= 1.0
    assert system.bandwidth_ratio((3, 32, 32)) == pytest.approx(8 / 3072)


def test_config_round_trip_and_validation(tmp_path):
    cfg = SemCLIPConfig(token_dim=32, channel_uses=8, snr_train_range=(-5, 5), use_af=False)
    cfg.save(tmp_path / "c.json")
    assert SemCLIPConfig.load(tmp_path / "c.json") == cfg
    with pytest.raises(ValueError, match="channel_uses"):
        SemCLIPConfig(channel_uses=0)
    with pytest.raises(ValueError, match="snr_train_range"):
        SemCLIPConfig(snr_train_range=(5, -5))
    with pytest.raises(ValueError, match="unknown"):
        SemCLIPConfig.from_dict({"bogus": 1})
    for bad in (0, -3, 2.5):  # None means "all seen classes"; anything else must be a positive int
        with pytest.raises(ValueError, match="tapl_classes_per_step"):
            SemCLIPConfig(tapl_classes_per_step=bad)


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_extract_train_eval(tiny_dir, image_root, tmp_path):
    from experiments.cli import main

    clip = ["--clip-model", f"local-dir:{tiny_dir}", "--device", "cpu", "--no-progress"]
    feats, jscc, tapl, out = (str(tmp_path / n) for n in ("feats", "jscc", "tapl", "eval"))
    assert main(["semclip", "extract", "--data", str(image_root), "--out", feats, "--batch-size", "8",
                 "--num-workers", "0"] + clip) == 0
    split = ["--unseen-fraction", "0.4"]
    assert main(["semclip", "train-jscc", "--features", feats, "--out", jscc, "--channel-uses", "8",
                 "--hidden-dim", "16", "--steps", "4", "--batch-size", "4", "--device", "cpu", "--no-progress"]
                + split) == 0
    with pytest.raises(ValueError, match="channel_uses"):  # --channel-uses 0 is refused, not read as "default"
        main(["semclip", "train-jscc", "--features", feats, "--out", str(tmp_path / "jscc0"), "--channel-uses", "0",
              "--steps", "1", "--device", "cpu", "--no-progress"] + split)
    assert main(["semclip", "train-tapl", "--features", feats, "--jscc", jscc, "--out", tapl, "--steps", "2",
                 "--batch-size", "4", "--classes-per-step", "2"] + clip + split) == 0
    for extra in ([], ["--jscc", jscc, "--tapl", tapl, "--snr-db", "-5", "5"],
                  ["--jscc", jscc, "--channel", "rayleigh", "--snr-db", "0"]):
        assert main(["semclip", "eval", "--features", feats, "--out", out] + extra + clip + split) == 0
    with open(tmp_path / "eval" / "zeroshot.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["system", "channel", "snr_db", "channel_uses", "bandwidth_ratio", "top1", "top5",
                             "retrieval_top1"]
    assert [(r["system"], r["channel"], r["snr_db"]) for r in rows] == [
        ("clip-zeroshot", "ideal", "inf"), ("semclip", "awgn", "-5.0"), ("semclip", "awgn", "5.0"),
        ("semclip-notapl", "rayleigh", "0.0")]
    assert float(rows[1]["bandwidth_ratio"]) == pytest.approx(8 / (3 * 32 * 32))
    assert rows[0]["channel_uses"] == "16"
    # a rerun skips the finished rows
    assert main(["semclip", "eval", "--features", feats, "--out", out, "--jscc", jscc, "--tapl", tapl,
                 "--snr-db", "-5", "5"] + clip + split) == 0
    with open(tmp_path / "eval" / "zeroshot.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 4
    with pytest.raises(ValueError, match="channel-uses"):
        main(["semclip", "eval", "--features", feats, "--out", out, "--jscc", jscc, "--channel-uses", "9"]
             + clip + split)
