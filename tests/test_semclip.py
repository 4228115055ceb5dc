"""SemCLIP end to end on a tiny open_clip model: weights loading, token extraction cache, datasets,
zero-shot upper bound, metrics and the ``semcom semclip`` CLI."""
import csv
import math

import semantic  # noqa: F401  (torchvision shim before open_clip)
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from phy.channel.flat import AWGN
from semantic.checkpoints import CheckpointNotFoundError
from semantic.clip_tokens import (CLIPImageEncoder, CLIPWeightsUnavailableError, FeatureSet, extract_features,
                                  load_open_clip)
from semantic.datasets import caltech101, food101, image_folder, make_dataset, oxford_pets, split_classes
from semantic.jscc import JSCCCodec
from semantic.semclip import (SemCLIP, SemCLIPConfig, classification_topk, evaluate_zeroshot,
                              text_to_image_retrieval)
from test_tapl import TINY_CLIP_CFG, save_tiny_clip
from tiny_models import write_digit_folder
from launchers import run_torchrun

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
def test_cli_extract_train_eval(tiny_dir, image_root, tmp_path, capsys):
    from experiments.cli import main

    clip = ["--clip-model", f"local-dir:{tiny_dir}", "--device", "cpu", "--no-progress"]
    feats, jscc, tapl, out = (str(tmp_path / n) for n in ("feats", "jscc", "tapl", "eval"))
    assert main(["semclip", "extract", "--data", str(image_root), "--out", feats, "--batch-size", "8",
                 "--num-workers", "0"] + clip) == 0
    split = ["--unseen-fraction", "0.4"]
    jscc_argv = ["semclip", "train-jscc", "--features", feats, "--out", jscc, "--channel-uses", "8",
                 "--hidden-dim", "16", "--steps", "4", "--batch-size", "4", "--device", "cpu", "--no-progress"] + split
    assert main(jscc_argv) == 0
    # a rerun under other settings is refused (exit 2, one line) and rewrites nothing
    before = {p.name: p.read_bytes() for p in (tmp_path / "jscc").iterdir() if p.is_file()}
    capsys.readouterr()
    for opt, value, key in (("--seed", "1", "seed"), ("--lr", "0.01", "jscc_lr"), ("--channel", "rayleigh", "channel"),
                            ("--unseen-fraction", "0.2", "unseen_fraction")):
        assert main(jscc_argv + [opt, value]) == 2
        err = capsys.readouterr().err
        assert "other settings" in err and f"{key}:" in err and err.count("\n") == 1, err
    assert {p.name: p.read_bytes() for p in (tmp_path / "jscc").iterdir() if p.is_file()} == before
    assert main(jscc_argv) == 0  # the same settings: nothing left to train, accepted
    capsys.readouterr()
    # --channel-uses 0 is refused (exit 2, one line), not read as "default"
    assert main(["semclip", "train-jscc", "--features", feats, "--out", str(tmp_path / "jscc0"), "--channel-uses",
                 "0", "--steps", "1", "--device", "cpu", "--no-progress"] + split) == 2
    err = capsys.readouterr().err
    assert err.startswith("semcom semclip train-jscc: error:") and "channel_uses" in err and err.count("\n") == 1
    assert main(["semclip", "train-tapl", "--features", feats, "--jscc", jscc, "--out", tapl, "--steps", "2",
                 "--batch-size", "4", "--classes-per-step", "2"] + clip + split) == 0
    for extra in ([], ["--jscc", jscc, "--tapl", tapl, "--snr-db", "-5,5"],
                  ["--jscc", jscc, "--channel", "rayleigh", "--snr-db", "0"]):
        assert main(["semclip", "eval", "--features", feats, "--out", out] + extra + clip + split) == 0
    with open(tmp_path / "eval" / "zeroshot.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["system", "channel", "snr_db", "channel_uses", "bandwidth_ratio", "top1", "top5",
                             "retrieval_top1", "retrieval_top5"]
    for r in rows:  # top-5 can only be at least as good as top-1
        assert float(r["retrieval_top1"]) <= float(r["retrieval_top5"]) <= 1.0
        assert float(r["top1"]) <= float(r["top5"]) <= 1.0
    assert [(r["system"], r["channel"], r["snr_db"]) for r in rows] == [
        ("clip-zeroshot", "ideal", "inf"), ("semclip", "awgn", "-5.0"), ("semclip", "awgn", "5.0"),
        ("semclip-notapl", "rayleigh", "0.0")]
    assert float(rows[1]["bandwidth_ratio"]) == pytest.approx(8 / (3 * 32 * 32))
    assert rows[0]["channel_uses"] == "16"
    # a system's rows are never extended under other settings (here the channel seed)
    capsys.readouterr()
    assert main(["semclip", "eval", "--features", feats, "--out", out, "--jscc", jscc, "--tapl", tapl,
                 "--snr-db", "0", "--seed", "3"] + clip + split) == 2
    assert "seed: 0 -> 3" in capsys.readouterr().err
    # a rerun skips the finished rows
    assert main(["semclip", "eval", "--features", feats, "--out", out, "--jscc", jscc, "--tapl", tapl,
                 "--snr-db", "-5,5"] + clip + split) == 0
    with open(tmp_path / "eval" / "zeroshot.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 4
    capsys.readouterr()
    assert main(["semclip", "eval", "--features", feats, "--out", out, "--jscc", jscc, "--channel-uses", "9"]
                + clip + split) == 2
    assert "--channel-uses 9" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- torchrun
_DDP_JSCC_SCRIPT = r'''
import json, sys
import torch
from semantic import distributed as D
from semantic import semclip as S
from torch.optim.optimizer import register_optimizer_step_pre_hook
from experiments.cli import main

out, feats_dir = sys.argv[1], sys.argv[2]
info = D.init_distributed(device="cpu")
grads, saves = [], []
register_optimizer_step_pre_hook(
    lambda opt, a, k: grads.append([p.grad.clone() for g in opt.param_groups for p in g["params"]]))
save_pretrained = S.JSCCCodec.save_pretrained
S.JSCCCodec.save_pretrained = lambda self, path: (saves.append(str(path)), save_pretrained(self, path))[1]
feats = torch.load(sys.argv[3])
cfg = S.SemCLIPConfig(**json.loads(sys.argv[4]))
codec, hist = S.train_jscc(feats, cfg, dist_info=info, progress=False)                     # AWGN, in memory
rcfg = S.SemCLIPConfig(**dict(json.loads(sys.argv[4]), channel="rayleigh"))
S.train_jscc(feats, rcfg, out_dir=out + "/run", dist_info=info, progress=False, stop_at=2)  # interrupted
final_present = (__import__("pathlib").Path(out) / "run" / "encoder").exists()
rcodec, rhist = S.train_jscc(feats, rcfg, out_dir=out + "/run", dist_info=info, progress=False)  # resumed
torch.save({"world": info.world_size, "params": codec.state_dict(), "hist": hist, "grads": grads,
            "rparams": rcodec.state_dict(), "rhist": rhist, "saves": saves, "final_after_stop": final_present},
           f"{out}/rank{info.rank}.pt")
# the CLI as torchrun starts it (it finds the process group initialised and destroys it at the end)
sys.exit(main(["semclip", "train-jscc", "--features", feats_dir, "--out", out + "/cli", "--channel-uses", "6",
               "--hidden-dim", "32", "--steps", "3", "--batch-size", "8", "--checkpoint-every", "2",
               "--all-classes", "--device", "cpu", "--no-progress"]))
'''


class _VectorSet(torch.utils.data.Dataset):
    """Items ``(vector, label, index)`` with ``paths``/``class_names``: a feature cache without CLIP."""

    def __init__(self, x, labels, class_names):
        self.x, self.labels, self.class_names = x, labels, class_names
        self.paths = [f"v{i}" for i in range(len(x))]

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], int(self.labels[i]), i


@pytest.mark.slow  # two torchrun processes: 14-22 s here, mostly imports (like the other torchrun tests)
def test_train_jscc_under_torchrun_equals_the_single_process_run(tmp_path):
    """``torchrun --nproc_per_node 2`` (gloo, CPU): ``train_jscc`` with each rank taking half of every
    global batch gives, step by step, the single-process run's gradients (so the all-gathered
    contrastive loss is rescaled correctly: DDP averages, the ranks' shares sum), losses and weights,
    on AWGN and Rayleigh channels at -5..5 dB (the noise of the global batch is drawn identically).
    Resume works under DDP, rank 0 alone writes, and ``semcom semclip train-jscc`` runs under torchrun."""
    import json
    import os

    from torch.optim.optimizer import register_optimizer_step_pre_hook

    import semantic.semclip as S
    from experiments.cli import main

    g = torch.Generator().manual_seed(3)
    feats = torch.randn(40, 16, generator=g)
    torch.save(feats, tmp_path / "feats.pt")
    extract_features(lambda x: x, _VectorSet(feats, torch.arange(40) % 4, ["a", "b", "c", "d"]),
                     tmp_path / "cache", encoder_key="identity", batch_size=16, progress=False)
    kw = dict(token_dim=16, channel_uses=6, hidden_dim=32, jscc_batch_size=8, jscc_steps=4, checkpoint_every=2,
              snr_train_range=(-5.0, 5.0), temperature=0.1, jscc_lr=5e-3)
    script = tmp_path / "ddp_jscc.py"
    script.write_text(_DDP_JSCC_SCRIPT)
    proc = run_torchrun(script, tmp_path, tmp_path / "cache", tmp_path / "feats.pt", json.dumps(kw))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("JSCC trained on 40 tokens") == 1 and "(2 processes)" in proc.stdout  # rank 0 prints

    # the single-process reference, gradients recorded before every optimizer step
    grads = []
    hook = register_optimizer_step_pre_hook(
        lambda opt, a, k: grads.append([p.grad.clone() for g in opt.param_groups for p in g["params"]]))
    try:
        ref, ref_hist = S.train_jscc(feats, SemCLIPConfig(**kw), progress=False)
    finally:
        hook.remove()
    rref, rref_hist = S.train_jscc(feats, SemCLIPConfig(**dict(kw, channel="rayleigh")), progress=False)
    assert len(grads) == 4

    def close(a, b):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)

    for r in (0, 1):
        res = torch.load(tmp_path / f"rank{r}.pt", weights_only=False)
        assert res["world"] == 2
        assert len(res["grads"]) == 8  # 4 steps in memory, 2 + 2 interrupted and resumed
        for step in range(4):
            for a, b in zip(res["grads"][step], grads[step]):
                close(a, b)
        close(torch.tensor(res["hist"]), torch.tensor(ref_hist))
        for a, b in zip(res["params"].values(), ref.state_dict().values()):
            close(a, b)
        # Rayleigh, interrupted at step 2 and resumed under DDP == uninterrupted single process
        assert not res["final_after_stop"]
        close(torch.tensor(res["rhist"]), torch.tensor(rref_hist))
        for a, b in zip(res["rparams"].values(), rref.state_dict().values()):
            close(a, b)
    saves = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False)["saves"] for r in (0, 1)]
    assert saves[1] == []  # rank 1 never writes
    assert [os.path.basename(p) for p in saves[0]] == ["checkpoint.tmp", "checkpoint.tmp", "run"]
    run = tmp_path / "run"
    assert json.loads((run / "train_history.json").read_text()) == pytest.approx(rref_hist, rel=1e-5)
    assert torch.load(run / "checkpoint" / "train_state.pt", weights_only=False)["step"] == 4
    # the CLI under torchrun == the CLI in one process
    assert main(["semclip", "train-jscc", "--features", str(tmp_path / "cache"), "--out", str(tmp_path / "cli1"),
                 "--channel-uses", "6", "--hidden-dim", "32", "--steps", "3", "--batch-size", "8",
                 "--checkpoint-every", "2", "--all-classes", "--device", "cpu", "--no-progress"]) == 0
    a, b = JSCCCodec.from_pretrained(tmp_path / "cli"), JSCCCodec.from_pretrained(tmp_path / "cli1")
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        close(x, y)


def test_train_jscc_distributed_argument_checks():
    from semantic.distributed import DistInfo
    from semantic.semclip import train_jscc

    cfg = SemCLIPConfig(token_dim=16, channel_uses=6, hidden_dim=32, jscc_batch_size=7, jscc_steps=1)
    with pytest.raises(TypeError, match="dist_info"):
        train_jscc(torch.randn(20, 16), cfg, dist_info="rank0", progress=False)
    # a two-rank job (no real group needed: the checks come first)
    two = DistInfo(rank=0, world_size=2, distributed=True)
    with pytest.raises(ValueError, match="multiple of the world size 2"):
        train_jscc(torch.randn(20, 16), cfg, dist_info=two, progress=False)
    with pytest.raises(ValueError, match="dist_info.device"):
        train_jscc(torch.randn(20, 16), cfg, dist_info=two, device="meta", progress=False)


@pytest.mark.parametrize("name", ["awgn", "rayleigh"])
def test_global_batch_rows_channel_gives_each_rank_its_rows_of_the_single_process_draw(name):
    """The channel wrapper of data-parallel ``train_jscc``: each rank's rows of ``y`` and ``h`` are the
    rows of one call on the whole batch with the same seed, the stream ends in the same state, and the
    gradient reaches the rank's symbols only through its rows."""
    from phy.channel.registry import make_channel
    from semantic.distributed import DistInfo, rank_slice
    from semantic.semclip import _GlobalBatchRows

    g = torch.Generator().manual_seed(5)
    x = torch.randn(6, 4, dtype=torch.complex64, generator=g)
    no = (torch.rand(6, generator=g) + 0.1).unsqueeze(-1)  # per example [B, 1], as JSCCCodec passes it
    full_ch = make_channel(name, seed=11)
    full = full_ch(x, no)
    for rank in range(3):
        rows = rank_slice(6, DistInfo(rank=rank, world_size=3))
        ch = make_channel(name, seed=11)
        xr = x[rows].clone().requires_grad_(True)
        out = _GlobalBatchRows(ch, 6, rows)(xr, no[rows])
        torch.testing.assert_close(out.y.detach(), full.y[rows])
        assert (out.h is None) == (full.h is None)
        if out.h is not None:
            torch.testing.assert_close(out.h, full.h[rows])
        torch.testing.assert_close(out.no, no[rows])
        assert torch.equal(ch.generator("cpu").get_state(), full_ch.generator("cpu").get_state())
        out.y.real.sum().backward()  # y = h x + n: torch's gradient of Re(sum y) w.r.t. x is conj(h)
        expected = torch.ones_like(xr) if full.h is None else full.h[rows].conj()
        torch.testing.assert_close(xr.grad, expected)
    with pytest.raises(ValueError, match="rows 2:4"):
        _GlobalBatchRows(make_channel(name, seed=1), 6, slice(2, 4))(x[:3], no[:3])
