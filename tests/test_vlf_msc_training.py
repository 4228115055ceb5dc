"""VLF-MSC training under torchrun (DDP) and the W_proj fine-tuning command, with the tiny models.

* A gloo process group of one: the DDP-wrapped image-decoder trainer takes exactly the steps of the
  plain trainer and saves the same folders.
* ``torchrun --nproc_per_node 2`` (gloo, CPU) on ``semcom train-image-decoder``: both ranks end with
  identical weights although they train on different images with different noise, and rank 0
  alone wrote the checkpoint and the log (slow).
* ``semcom train-text-projection``: checkpoint, log, resume; the trainer's resume equals an
  uninterrupted run.
* Resume of both commands (one process, and the image decoder under ``torchrun``): a run stopped
  after ``k`` steps and resumed with a larger ``--steps`` gives the uninterrupted run's loss history
  and final checkpoint (weights and optimizer state); a resume with another value of a setting that
  defines the run exits with 2 and a message naming the setting with both values; ``--steps``,
  ``--save-every``, ``--keep``, ``--device`` may change.
"""
import csv
import json
import math

import pytest
import torch

import semantic  # noqa: F401
from launchers import run_torchrun
from tiny_models import (TINY_NUM_QUERIES, TINY_VLF_DIM, tiny_blip2_dir, tiny_image_dir,  # noqa: F401
                         tiny_sd_dir)

from semantic import distributed as D
from semantic.image_decoder import (ImageDecoderTrainConfig, ImageDecoderTrainer, VLFImageDecoder,
                                    VLFToCLIPProjection, rank_seed)
from semantic.text_decoder import (OPTTextDecoder, SoftPromptProjection, TextProjectionTrainConfig,
                                   TextProjectionTrainer)
from semantic.vlf import load_blip2

N, Dm = TINY_NUM_QUERIES, TINY_VLF_DIM
SIZE = 16







def _fresh_decoder(sd_dir, seed=0):
    torch.manual_seed(seed)  # the same fresh projection for every call
    return VLFImageDecoder.from_pretrained(sd_dir, vlf_dim=Dm, num_queries=N, device="cpu", dtype="float32",
                                           height=SIZE, width=SIZE)


# ------------------------------------------------------------------------------------------------
# Image decoder trainer in a process group
# ------------------------------------------------------------------------------------------------
def test_rank_seed_offsets():
    assert rank_seed(7, 0) == 7 and rank_seed(7, 1) != rank_seed(7, 0) != rank_seed(8, 0)
    assert len({rank_seed(0, r) for r in range(8)} | {rank_seed(1, r) for r in range(8)}) == 16


def test_image_trainer_ddp_group_of_one_matches_plain(tiny_sd_dir, group_of_one_env, tmp_path):
    """World size 1 with a real gloo group: the trainer wraps in DDP, uses no_sync on the first
    micro-batch, and gives the plain trainer's weights; saved folders have no ``module.`` prefix."""
    g = torch.Generator().manual_seed(3)
    images = torch.rand(2, 3, SIZE, SIZE, generator=g)
    vlf = torch.randn(2, N, Dm, generator=g)
    t = torch.tensor([5, 60])
    noise = torch.randn(2, 4, SIZE // 2, SIZE // 2, generator=g)
    cfg = ImageDecoderTrainConfig(lr=1e-3, projection_lr=1e-2, grad_accum=2)

    plain = ImageDecoderTrainer(_fresh_decoder(tiny_sd_dir), cfg)
    assert type(plain.model).__name__ == "_DiffusionLossModule"  # not wrapped without a group

    info = D.init_distributed(device="cpu", force=True)
    try:
        dec = _fresh_decoder(tiny_sd_dir)
        ddp = ImageDecoderTrainer(dec, cfg, dist_info=info)
        assert type(ddp.model).__name__ == "DistributedDataParallel" and D.unwrap(ddp.model).decoder is dec
        torch.testing.assert_close(dec.projection.linear.weight, plain.decoder.projection.linear.weight)
        for tr in (plain, ddp):
            for _ in range(4):
                tr.step(images, vlf, timesteps=t, noise=noise)
        assert ddp.global_step == plain.global_step == 2
        torch.testing.assert_close(dec.projection.linear.weight, plain.decoder.projection.linear.weight)
        for a, b in zip(dec.unet.parameters(), plain.decoder.unet.parameters()):
            torch.testing.assert_close(a, b)
        ck = ddp.save(tmp_path / "checkpoint-0000002")
        loaded = VLFToCLIPProjection.from_pretrained(ck / "projection")
        torch.testing.assert_close(loaded.linear.weight, dec.projection.linear.weight)
        # resume inside the group continues the step counter and the optimizer
        tr2 = ImageDecoderTrainer.resume(_fresh_decoder(tiny_sd_dir, seed=5), ck, dist_info=info)
        assert tr2.global_step == 2 and type(tr2.model).__name__ == "DistributedDataParallel"
        for tr in (plain, tr2):
            tr.step(images, vlf, timesteps=t, noise=noise)
            tr.step(images, vlf, timesteps=t, noise=noise)
        torch.testing.assert_close(tr2.decoder.projection.linear.weight, plain.decoder.projection.linear.weight)
    finally:
        D.cleanup(info)


_TORCHRUN_SCRIPT = r'''
import json, os, sys
import semantic
import torch
import semantic.image_decoder as M

records = []
_step = M.ImageDecoderTrainer.step


def step(self, *args, **kwargs):
    loss = _step(self, *args, **kwargs)
    unet = torch.cat([p.detach().flatten() for p in self.decoder.unet.parameters()])
    records.append({"loss": loss, "global_step": self.global_step, "model": type(self.model).__name__,
                    "w": self.decoder.projection.linear.weight.detach().flatten().tolist(),
                    "unet": unet[::101].tolist(), "images": args[0].flatten()[:8].tolist()})
    return loss


M.ImageDecoderTrainer.step = step
from experiments.cli import main

rc = main(sys.argv[2:])
with open(os.path.join(sys.argv[1], "rank%s.json" % os.environ["RANK"]), "w") as fh:
    json.dump({"rc": rc, "world": os.environ["WORLD_SIZE"], "records": records}, fh)
'''


def _torchrun_image_decoder(tmp_path, out, tiny_blip2_dir, tiny_sd_dir, tiny_image_dir, steps=2):
    """Launch ``torchrun --nproc_per_node 2 ... train-image-decoder`` (CPU/gloo) into ``out``; the
    per-rank records of every micro-batch land in ``tmp_path/rank<r>.json``."""
    script = tmp_path / "ddp_train.py"
    script.write_text(_TORCHRUN_SCRIPT)
    proc = run_torchrun(script, tmp_path, "train-image-decoder", "--images", tiny_image_dir, "--captions",
                        tiny_image_dir / "captions.csv", "--blip2-checkpoint", tiny_blip2_dir, "--sd-checkpoint",
                        tiny_sd_dir, "--out", out, "--steps", steps, "--batch-size", "1", "--grad-accum", "2",
                        "--image-size", SIZE, "--device", "cpu", "--save-every", "1", "--train-snr-db", "0:10",
                        "--channel", "rayleigh", "--lr", "1e-3", "--projection-lr", "1e-2", timeout=600,
                        cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]


@pytest.fixture(scope="module")
def torchrun_image_decoder_run(tmp_path_factory, tiny_blip2_dir, tiny_sd_dir, tiny_image_dir):
    """One uninterrupted 2-rank, 2-step ``train-image-decoder`` run: ``(out folder, per-rank records)``."""
    tmp = tmp_path_factory.mktemp("torchrun")
    out = tmp / "train"
    return out, _torchrun_image_decoder(tmp, out, tiny_blip2_dir, tiny_sd_dir, tiny_image_dir)


@pytest.mark.slow
def test_torchrun_two_ranks_train_image_decoder(torchrun_image_decoder_run):
    """``torchrun --nproc_per_node 2 ... train-image-decoder`` on CPU/gloo, 2 optimizer steps of 2
    micro-batches each (the first under ``no_sync``): the ranks see different images, yet hold the
    same projection and U-Net weights after every optimizer step; rank 0 wrote the checkpoint."""
    out, res = torchrun_image_decoder_run
    assert [r["rc"] for r in res] == [0, 0] and [r["world"] for r in res] == ["2", "2"]
    r0, r1 = res[0]["records"], res[1]["records"]
    assert len(r0) == len(r1) == 4
    assert [x["global_step"] for x in r0] == [x["global_step"] for x in r1] == [0, 1, 1, 2]
    assert {x["model"] for x in r0 + r1} == {"DistributedDataParallel"}
    # the ranks train on different shares of the data (DistributedSampler) with different noise
    assert any(a["images"] != b["images"] for a, b in zip(r0, r1))
    assert any(a["loss"] != b["loss"] for a, b in zip(r0, r1))
    # ... and stay synchronised after each optimizer step (micro-batches 2 and 4)
    for i in (1, 3):
        torch.testing.assert_close(torch.tensor(r0[i]["w"]), torch.tensor(r1[i]["w"]), rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(torch.tensor(r0[i]["unet"]), torch.tensor(r1[i]["unet"]), rtol=1e-6, atol=1e-7)
    assert torch.tensor(r0[3]["w"]).sub(torch.tensor(r0[0]["w"])).abs().max() > 0  # training moved them
    # rank 0 wrote the checkpoint (the ranks' common weights) and the log, once
    ck = out / "checkpoint-0000002"
    saved = VLFToCLIPProjection.from_pretrained(ck / "projection")
    torch.testing.assert_close(saved.linear.weight.flatten(), torch.tensor(r1[3]["w"]), rtol=1e-6, atol=1e-7)
    assert json.loads((ck / "trainer_state.json").read_text())["global_step"] == 2
    rows = list(csv.DictReader(open(out / "train_log.csv")))
    assert [r["step"] for r in rows] == ["1", "2"] and all(math.isfinite(float(r["loss"])) for r in rows)
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "finished" and man["world_size"] == 2
    assert not list(out.glob("*.tmp")) and not list(out.glob("*.old"))


@pytest.mark.slow
def test_torchrun_resume_equals_uninterrupted(torchrun_image_decoder_run, tiny_blip2_dir, tiny_sd_dir,
                                              tiny_image_dir, tmp_path):
    """Interrupt the 2-rank run after its step-1 checkpoint (a copy of the folder as it was then) and
    resume it under torchrun: both ranks' micro-batches (images, losses) and the final checkpoint
    equal the uninterrupted run's, so every rank got back its own data position and random streams
    (rank 1's included, which rank 0 saved)."""
    import shutil

    full, full_res = torchrun_image_decoder_run
    cut = tmp_path / "train"
    shutil.copytree(full / "checkpoint-0000001", cut / "checkpoint-0000001")
    shutil.copytree(full / "vlf_cache", cut / "vlf_cache")
    rows = list(csv.DictReader(open(full / "train_log.csv")))
    with open(cut / "train_log.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerow(rows[0])
    res = _torchrun_image_decoder(tmp_path, cut, tiny_blip2_dir, tiny_sd_dir, tiny_image_dir)
    for r in (0, 1):
        got, want = res[r]["records"], full_res[r]["records"][2:]  # micro-batches 3, 4 = optimizer step 2
        assert [x["global_step"] for x in got] == [1, 2]
        assert [x["images"] for x in got] == [x["images"] for x in want]
        torch.testing.assert_close(torch.tensor([x["loss"] for x in got]), torch.tensor([x["loss"] for x in want]),
                                   rtol=1e-6, atol=1e-9)
    _assert_same_checkpoint(cut / "checkpoint-0000002", full / "checkpoint-0000002")
    steps_full, loss_full = _log_losses(full)
    steps_cut, loss_cut = _log_losses(cut)
    assert steps_cut == steps_full == [1, 2]
    torch.testing.assert_close(loss_cut, loss_full, rtol=1e-6, atol=1e-9)


# ------------------------------------------------------------------------------------------------
# W_proj fine-tuning
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def text_decoder_parts(tiny_blip2_dir):
    model, processor = load_blip2(str(tiny_blip2_dir), device="cpu", dtype="float32")
    return model, processor


def _text_decoder(parts):
    model, processor = parts
    return OPTTextDecoder.from_blip2(model, processor.tokenizer, mode="pooled")


def test_text_projection_trainer_resume_equals_uninterrupted(text_decoder_parts, tmp_path):
    g = torch.Generator().manual_seed(2)
    vlf = torch.randn(2, N, Dm, generator=g)
    caps = ["a red car", "two dogs"]
    cfg = TextProjectionTrainConfig(lr=1e-2, snr_range_db=None, grad_accum=1)
    dec = _text_decoder(text_decoder_parts)
    init = dec.projection.linear.weight.detach().clone()
    tr = TextProjectionTrainer(dec, cfg)
    losses = [tr.step(vlf, caps) for _ in range(3)]
    assert tr.global_step == 3 and losses[-1] < losses[0]
    ck = tr.save(tmp_path / "checkpoint-0000003")
    assert (ck / "config.json").is_file() and list(ck.glob("*.safetensors"))
    dec2 = _text_decoder(text_decoder_parts)  # fresh copy of BLIP-2's projection
    torch.testing.assert_close(dec2.projection.linear.weight, init)
    tr2 = TextProjectionTrainer.resume(dec2, ck)
    assert tr2.global_step == 3 and tr2.config.snr_range_db is None
    torch.testing.assert_close(dec2.projection.linear.weight, dec.projection.linear.weight)
    tr.step(vlf, caps)
    tr2.step(vlf, caps)
    assert tr2.global_step == 4
    torch.testing.assert_close(dec2.projection.linear.weight, dec.projection.linear.weight)
    # a checkpoint is a valid --text-projection folder
    p = SoftPromptProjection.from_pretrained(ck)
    assert p.config.mode == "pooled" and p.linear.weight.shape == dec.projection.linear.weight.shape
    with pytest.raises(ValueError, match="needs a link"):
        TextProjectionTrainer(dec, TextProjectionTrainConfig(snr_range_db=(0, 10)))
    with pytest.raises(ValueError, match="lo <= hi"):
        TextProjectionTrainConfig(snr_range_db=(10, 0))


def test_text_projection_trainer_draws_snrs_in_range(text_decoder_parts):
    from phy.link.analog import AnalogLink

    calls = []

    class Spy(AnalogLink):
        def forward(self, x, snr_db):
            calls.append(snr_db.clone())
            return super().forward(x, snr_db=snr_db)

    dec = _text_decoder(text_decoder_parts)
    tr = TextProjectionTrainer(dec, TextProjectionTrainConfig(snr_range_db=(2.0, 4.0)), Spy("awgn"))
    tr.step(torch.randn(3, N, Dm), ["a", "b", "c"])
    tr.step(torch.randn(3, N, Dm), ["a", "b", "c"])
    snr = torch.cat(calls)
    assert snr.shape == (6,) and snr.min() >= 2.0 and snr.max() <= 4.0 and len(set(snr.tolist())) == 6


def test_cli_train_text_projection_and_resume(tiny_blip2_dir, tiny_image_dir, tmp_path):
    from experiments.cli import main

    out = tmp_path / "wproj"
    argv = ["train-text-projection", "--images", str(tiny_image_dir), "--captions",
            str(tiny_image_dir / "captions.csv"), "--blip2-checkpoint", str(tiny_blip2_dir), "--out", str(out),
            "--batch-size", "2", "--device", "cpu", "--save-every", "1", "--train-snr-db", "0:10",
            "--input-size", "32", "--lr", "1e-2", "--keep", "2"]
    assert main(argv + ["--steps", "2"]) == 0
    ck = out / "checkpoint-0000002"
    state = json.loads((ck / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and state["config"]["snr_range_db"] == [0.0, 10.0]
    rows = list(csv.DictReader(open(out / "train_log.csv")))
    assert [r["step"] for r in rows] == ["1", "2"] and all(math.isfinite(float(r["loss"])) for r in rows)
    model, _ = load_blip2(str(tiny_blip2_dir), device="cpu", dtype="float32")
    trained = SoftPromptProjection.from_pretrained(ck)
    assert (trained.linear.weight - model.language_projection.weight).abs().max() > 0  # W_proj moved
    # resume: continues the step count, appends to the log, keeps the 2 newest checkpoints
    assert main(argv + ["--steps", "3"]) == 0
    rows = list(csv.DictReader(open(out / "train_log.csv")))
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    assert json.loads((out / "checkpoint-0000003" / "trainer_state.json").read_text())["global_step"] == 3
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-0000002", "checkpoint-0000003"]
    assert json.loads((out / "manifest.json").read_text())["status"] == "finished"
    # the checkpoint feeds the text receiver (--text-projection)
    model, processor = load_blip2(str(tiny_blip2_dir), device="cpu", dtype="float32")
    dec = OPTTextDecoder.from_blip2(model, processor.tokenizer, projection=str(out / "checkpoint-0000003"),
                                    max_new_tokens=2)
    assert len(dec.generate(torch.randn(1, N, Dm))) == 1
    # bad input: a CSV without captions, a bad SNR range
    (tmp_path / "nocap.csv").write_text("image,label\nimg0.png,x\n")
    bad = ["train-text-projection", "--images", str(tiny_image_dir), "--captions", str(tmp_path / "nocap.csv"),
           "--blip2-checkpoint", str(tiny_blip2_dir), "--out", str(tmp_path / "bad"), "--device", "cpu"]
    assert main(bad) == 2
    assert main(argv[:-2] + ["--train-snr-db", "10:0"]) == 2


# ------------------------------------------------------------------------------------------------
# Resume: an interrupted + resumed run is the uninterrupted run; defining settings must match
# ------------------------------------------------------------------------------------------------
def _log_losses(out):
    rows = list(csv.DictReader(open(out / "train_log.csv")))
    return [int(r["step"]) for r in rows], torch.tensor([float(r["loss"]) for r in rows], dtype=torch.float64)


def _folder_tensors(folder):
    """Every safetensors tensor under ``folder`` (weights of each module + optimizer state), by relative name."""
    from safetensors.torch import load_file

    out = {}
    for f in sorted(folder.rglob("*.safetensors")):
        for k, v in load_file(str(f)).items():
            out[f"{f.relative_to(folder)}:{k}"] = v
    return out


def _assert_same_checkpoint(a, b):
    ta, tb = _folder_tensors(a), _folder_tensors(b)
    assert sorted(ta) == sorted(tb) and ta
    for k in ta:
        torch.testing.assert_close(ta[k], tb[k], rtol=1e-6, atol=1e-8, msg=lambda m, k=k: f"{k}: {m}")


def _image_argv(tiny_blip2_dir, tiny_sd_dir, tiny_image_dir, out):
    # batch 1 x grad-accum 2 over 3 images: optimizer step 2 ends in the middle of epoch 1, so the
    # resume has to continue inside an epoch; every random stream of a step is exercised (shuffle,
    # train SNRs, Rayleigh fading + noise, DDPM timesteps, latent noise, condition dropout)
    return ["train-image-decoder", "--images", str(tiny_image_dir), "--captions", str(tiny_image_dir / "captions.csv"),
            "--blip2-checkpoint", str(tiny_blip2_dir), "--sd-checkpoint", str(tiny_sd_dir), "--out", str(out),
            "--image-size", str(SIZE), "--device", "cpu", "--batch-size", "1", "--grad-accum", "2",
            "--train-snr-db", "0:10", "--channel", "rayleigh", "--cond-drop-prob", "0.3", "--lr", "1e-3",
            "--projection-lr", "1e-2", "--seed", "3"]


def test_cli_train_image_decoder_resume_equals_uninterrupted(tiny_blip2_dir, tiny_sd_dir, tiny_image_dir, tmp_path,
                                                             capsys):
    from experiments.cli import main

    full, cut = tmp_path / "full", tmp_path / "cut"
    assert main(_image_argv(tiny_blip2_dir, tiny_sd_dir, tiny_image_dir, full) + ["--steps", "4"]) == 0
    cut_argv = _image_argv(tiny_blip2_dir, tiny_sd_dir, tiny_image_dir, cut)
    assert main(cut_argv + ["--steps", "2", "--save-every", "1"]) == 0  # "interrupted" after step 2
    capsys.readouterr()
    # a changed setting that defines the run is refused, naming the setting and both values, and
    # leaves the folder as it was
    for opt, given, saved_txt, given_txt in (("--lr", "1e-4", "0.001", "0.0001"),
                                              ("--t-range", "0:50", "100", "50"),
                                              ("--channel", "awgn", "rayleigh", "awgn")):
        argv = cut_argv + [opt, given]  # argparse: the last occurrence wins
        assert main(argv + ["--steps", "4"]) == 2
        err = capsys.readouterr().err
        assert opt in err and saved_txt in err and given_txt in err and "checkpoint-0000002" in err, err
        assert sorted(p.name for p in cut.glob("checkpoint-*")) == ["checkpoint-0000001", "checkpoint-0000002"]
        assert _log_losses(cut)[0] == [1, 2]
    # more --steps extends the run; --save-every / --keep may change (and are applied)
    assert main(cut_argv + ["--steps", "4", "--save-every", "4", "--keep", "3"]) == 0
    assert sorted(p.name for p in cut.glob("checkpoint-*")) == [
        "checkpoint-0000001", "checkpoint-0000002", "checkpoint-0000004"]
    steps_full, loss_full = _log_losses(full)
    steps_cut, loss_cut = _log_losses(cut)
    assert steps_full == steps_cut == [1, 2, 3, 4]
    torch.testing.assert_close(loss_cut, loss_full, rtol=1e-6, atol=1e-9)
    assert len(set(loss_full.tolist())) == 4
    _assert_same_checkpoint(cut / "checkpoint-0000004", full / "checkpoint-0000004")
    for name in ("projection", "unet"):  # training moved the weights, so the comparison is not vacuous
        a = _folder_tensors(full / "checkpoint-0000004" / name)
        b = _folder_tensors(cut / "checkpoint-0000001" / name)
        assert any((a[k] - b[k]).abs().max() > 0 for k in a)
    state = json.loads((cut / "checkpoint-0000004" / "trainer_state.json").read_text())
    assert state["global_step"] == 4


def _text_argv(tiny_blip2_dir, tiny_image_dir, out):
    # batch 1 over 3 images: step 2 stops in the middle of epoch 0
    return ["train-text-projection", "--images", str(tiny_image_dir), "--captions",
            str(tiny_image_dir / "captions.csv"), "--blip2-checkpoint", str(tiny_blip2_dir), "--out", str(out),
            "--batch-size", "1", "--device", "cpu",
            "--train-snr-db", "0:10", "--channel", "rayleigh", "--input-size", "32", "--lr", "1e-2", "--seed", "5"]


def test_cli_train_text_projection_resume_equals_uninterrupted(tiny_blip2_dir, tiny_image_dir, tmp_path):
    from experiments.cli import main

    full, cut = tmp_path / "full", tmp_path / "cut"
    assert main(_text_argv(tiny_blip2_dir, tiny_image_dir, full) + ["--steps", "5", "--save-every", "1"]) == 0
    cut_argv = _text_argv(tiny_blip2_dir, tiny_image_dir, cut)
    assert main(cut_argv + ["--steps", "2", "--save-every", "1"]) == 0
    assert main(cut_argv + ["--steps", "5", "--save-every", "2", "--keep", "4"]) == 0
    assert sorted(p.name for p in cut.glob("checkpoint-*")) == [
        "checkpoint-0000001", "checkpoint-0000002", "checkpoint-0000004", "checkpoint-0000005"]
    steps_full, loss_full = _log_losses(full)
    steps_cut, loss_cut = _log_losses(cut)
    assert steps_full == steps_cut == [1, 2, 3, 4, 5]
    torch.testing.assert_close(loss_cut, loss_full, rtol=1e-6, atol=1e-9)
    _assert_same_checkpoint(cut / "checkpoint-0000005", full / "checkpoint-0000005")
    a = _folder_tensors(full / "checkpoint-0000005")
    b = _folder_tensors(cut / "checkpoint-0000001")
    assert any((a[k] - b[k]).abs().max() > 0 for k in a if "optimizer" not in k)


@pytest.mark.parametrize("opt,given,saved_txt,given_txt", [
    ("--lr", "1e-3", "0.01", "0.001"),
    ("--batch-size", "2", "1", "2"),
    ("--channel", "awgn", "rayleigh", "awgn"),
    ("--train-snr-db", "0:5", "10.0", "5.0"),
    ("--seed", "6", "5", "6"),
    ("--text-mode", "blip2", "pooled", "blip2"),
])
def test_cli_train_text_projection_refuses_changed_settings(tiny_blip2_dir, tiny_image_dir, tmp_path, capsys,
                                                            opt, given, saved_txt, given_txt):
    from experiments.cli import main

    out = tmp_path / "wproj"
    argv = _text_argv(tiny_blip2_dir, tiny_image_dir, out)
    assert main(argv + ["--steps", "1"]) == 0
    capsys.readouterr()
    assert main(argv + [opt, given, "--steps", "2"]) == 2  # argparse: the last occurrence wins
    err = capsys.readouterr().err
    assert opt in err and saved_txt in err and given_txt in err and "checkpoint-0000001" in err, err
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-0000001"]
    assert _log_losses(out)[0] == [1]
    # the same command with a changed --device spelling / --save-every / --steps resumes
    assert main(argv + ["--steps", "2", "--save-every", "7", "--device", "cpu:0"]) == 0
    assert _log_losses(out)[0] == [1, 2]


@pytest.mark.parametrize("damage", ["drop-run", "truncate"])
def test_cli_train_text_projection_refuses_checkpoint_without_settings(tiny_blip2_dir, tiny_image_dir, tmp_path,
                                                                       capsys, damage):
    """A checkpoint whose settings record is gone (an older or damaged ``trainer_state.json``) is refused,
    exit 2 and one line; it used to be accepted under any settings."""
    import json

    from experiments.cli import main

    out = tmp_path / "wproj"
    argv = _text_argv(tiny_blip2_dir, tiny_image_dir, out)
    assert main(argv + ["--steps", "1"]) == 0
    state_file = out / "checkpoint-0000001" / "trainer_state.json"
    if damage == "drop-run":
        state = json.loads(state_file.read_text())
        del state["extra"]["run"]
        state_file.write_text(json.dumps(state))
    else:
        state_file.write_text(state_file.read_text()[:10])
    capsys.readouterr()
    assert main(argv + ["--seed", "9", "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint-0000001" in err and "records no settings" in err and err.count("\n") == 1, err
    assert _log_losses(out)[0] == [1]


def test_trainer_resume_refuses_other_config(text_decoder_parts, tiny_sd_dir, tmp_path):
    dec = _text_decoder(text_decoder_parts)
    cfg = TextProjectionTrainConfig(lr=1e-2, snr_range_db=None)
    tr = TextProjectionTrainer(dec, cfg)
    tr.step(torch.randn(2, N, Dm), ["a", "b"])
    ck = tr.save(tmp_path / "t" / "checkpoint-0000001")
    with pytest.raises(ValueError, match=r"lr.*0\.01.*0\.001"):
        TextProjectionTrainer.resume(_text_decoder(text_decoder_parts), ck,
                                     config=TextProjectionTrainConfig(lr=1e-3, snr_range_db=None))
    assert TextProjectionTrainer.resume(_text_decoder(text_decoder_parts), ck, config=cfg).global_step == 1
    icfg = ImageDecoderTrainConfig(lr=1e-3, projection_lr=1e-2, t_max=50)
    itr = ImageDecoderTrainer(_fresh_decoder(tiny_sd_dir), icfg)
    ick = itr.save(tmp_path / "i" / "checkpoint-0000000")
    with pytest.raises(ValueError, match=r"t_max.*50.*100"):
        ImageDecoderTrainer.resume(_fresh_decoder(tiny_sd_dir), ick,
                                   config=ImageDecoderTrainConfig(lr=1e-3, projection_lr=1e-2))
