"""``semcom train-image-decoder``: train VLF-MSC's image decoder (VLF -> CLIP projection [+ SD U-Net]).

Example
-------
``semcom train-image-decoder --images data/openimages/train --captions data/openimages/train.csv
--blip2-checkpoint Salesforce/blip2-opt-6.7b --sd-checkpoint stable-diffusion-v1-5/stable-diffusion-v1-5
--steps 20000 --batch-size 8 --grad-accum 4 --mixed-precision fp16 --t-range 0:100 --out runs/imgdec``

BLIP-Diffusion-style recipe: the frozen BLIP-2 transmitter gives the VLF of each 256x256 image; the
conditioning sequence is ``[BOS] c_i-tokens [N projected VLF tokens] [EOS]`` through the CLIP text encoder
(``c_i`` = the ``label`` column of the CSV, unless ``--no-labels``); the loss is the simplified
latent-diffusion MSE on the noise with DDPM timesteps uniform in ``--t-range`` (paper: 0:100).
``--train-snr-db lo:hi`` sends each VLF through the channel at a uniform random SNR first.

Writes ``OUT/checkpoint-<step>/`` every ``--save-every`` optimizer steps and at the end (``projection/``,
``unet/`` unless ``--freeze-unet``, optimizer state, ``trainer_state.json``); ``OUT/train_log.csv``
(step, loss); ``OUT/manifest.json``. Rerunning the same command resumes from the newest checkpoint.
Use a checkpoint folder as ``semcom vlf-msc --image-decoder OUT/checkpoint-<step>``.

Several GPUs (data parallel, one process per GPU)::

    torchrun --standalone --nproc_per_node 4 -m experiments.cli train-image-decoder ... --out runs/imgdec
    torchrun --standalone --nproc_per_node 4 "$(which semcom)" train-image-decoder ...   # same thing

Each process uses ``cuda:LOCAL_RANK`` (``--device cpu`` or no CUDA: CPU with the gloo backend), takes
its share of every epoch through a ``DistributedSampler`` and ``--batch-size`` images per micro-batch
(global batch = ``nproc x batch-size x grad-accum``); the trainable modules are wrapped in
``DistributedDataParallel``, so the ranks keep identical weights. Channel noise, train SNRs, DDPM
timesteps and latent noise come from per-rank seeds (``--seed`` + rank offset; rank 0 = one process).
Rank 0 alone writes checkpoints, ``train_log.csv`` (loss averaged over ranks) and the manifest; the
others wait at barriers. Several nodes need ``OUT`` on a shared file system. A plain ``semcom
train-image-decoder`` run is the single-process case.

Resuming
--------
Rerunning the command on the same ``--out`` continues from the newest complete checkpoint, and an
interrupted + resumed run takes exactly the steps of an uninterrupted one (same losses, same
weights): the checkpoint holds the data position (epoch, micro-batch in it) and, for every rank,
the generators used per step (train SNRs, the channel's fading/noise stream, DDPM timesteps,
latent noise, condition dropout). The epoch order is a seeded permutation of ``(--seed, epoch)``;
a fresh projection is initialised from ``--seed``.

The checkpoint also records the settings that *define* the run; a resume with another value of
any of them is refused (exit code 2, a message naming each setting with the checkpoint's and the
given value), rather than silently training on with the checkpoint's:

* must match: ``--blip2-checkpoint``, ``--sd-checkpoint``, ``--init-decoder``, ``--encoder-dtype``,
  ``--image-size``, ``--no-labels``, ``--limit``, ``--batch-size``, ``--grad-accum``, ``--lr``,
  ``--projection-lr``, ``--t-range``, ``--mixed-precision``, ``--freeze-unet``,
  ``--train-text-encoder``, ``--cond-drop-prob``, ``--train-snr-db``, ``--channel``, ``--equalizer``, ``--seed``, the
  number of processes (``torchrun --nproc_per_node`` x nodes) and the number of training images;
* may change, and are applied: ``--steps`` (the total; a larger value extends the run),
  ``--save-every``, ``--keep``, ``--device``, ``--allow-download``, ``--vlf-cache``, and the
  ``--images`` / ``--captions`` paths (the data may move; its size is checked). After a change of
  device type (CPU <-> CUDA) the channel's noise stream cannot be carried over: it restarts from
  ``seed + step`` (a note says so), so that resume is not bit-identical to an uninterrupted run.

Checkpoints written before these records existed are resumed with the trainer config checked and
the random streams restarted from ``seed + step`` (a note says so).
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import json
import math
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from experiments.core.results import SettingsMismatchError

__all__ = ["add_arguments", "add_channel_and_output_arguments", "main", "latest_checkpoint", "parse_range",
           "run_training_loop", "ResumeMismatchError", "check_resume_settings", "saved_run_settings", "run_settings"]

PROCESSES = "number of processes (WORLD_SIZE)"
IMAGES = "number of training images"


def parse_range(text: str, what: str, cast=float) -> Tuple:
    """``"lo:hi"`` -> ``(lo, hi)`` with ``lo <= hi``.

    Examples
    --------
    >>> parse_range("0:100", "--t-range", int), parse_range("-5:10", "--snr-range")
    ((0, 100), (-5.0, 10.0))
    >>> parse_range("10:0", "--t-range", int)
    Traceback (most recent call last):
    ...
    ValueError: ...
    """
    parts = str(text).split(":")
    if len(parts) != 2:
        raise ValueError(f"--{what} must be lo:hi, got {text!r}")
    try:
        lo, hi = cast(parts[0]), cast(parts[1])
    except ValueError:
        raise ValueError(f"--{what} must be lo:hi numbers, got {text!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"--{what} must be lo:hi finite numbers, got {text!r}")
    if "snr" in what:
        from experiments.core.args import SNR_DB_LIMIT

        if max(abs(lo), abs(hi)) > SNR_DB_LIMIT:
            raise ValueError(f"--{what} {text!r} lies outside the SNR range [-{SNR_DB_LIMIT:g}, {SNR_DB_LIMIT:g}] dB")
    if lo > hi:
        raise ValueError(f"--{what}: lo must be <= hi, got {text!r}")
    return lo, hi


def latest_checkpoint(out: Path) -> Optional[Path]:
    """The ``checkpoint-<step>`` folder with the largest step in ``out`` (complete ones only).

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> for step in (5, 12, 40):
    ...     (out / f"checkpoint-{step}").mkdir()
    >>> for step in (5, 12):                                   # checkpoint-40 is incomplete (no trainer_state.json)
    ...     _ = (out / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    >>> latest_checkpoint(out).name
    'checkpoint-12'
    """
    best = None
    for p in out.glob("checkpoint-*"):
        m = re.fullmatch(r"checkpoint-(\d+)", p.name)
        if m and (p / "trainer_state.json").is_file():
            if best is None or int(m.group(1)) > best[0]:
                best = (int(m.group(1)), p)
    return best[1] if best else None


class ResumeMismatchError(SettingsMismatchError):
    """A setting that defines a training run differs from the checkpoint it would resume.

    Examples
    --------
    >>> from experiments.core.results import SettingsMismatchError
    >>> issubclass(ResumeMismatchError, SettingsMismatchError), issubclass(ResumeMismatchError, ValueError)
    (True, True)
    """


def _canon(value: Any) -> Any:
    return json.loads(json.dumps(value))


def check_resume_settings(checkpoint: Path, saved: Mapping[str, Any], given: Mapping[str, Any]) -> None:
    """Refuse to resume ``checkpoint`` when a defining setting differs from the one it was trained with.

    Parameters
    ----------
    checkpoint : the checkpoint folder (named in the message).
    saved : the settings recorded in the checkpoint (``{"--lr": 1e-5, ...}``). A checkpoint that records
        none (``None``, ``{}``: an older or damaged checkpoint) is refused: nothing says what it was
        trained with; a setting it does not record counts as a difference.
    given : the settings of this invocation, same keys.

    Raises
    ------
    ResumeMismatchError
        Naming every differing setting with the checkpoint's value and the given one.

    Example
    -------
    >>> check_resume_settings(Path("ck"), {"--lr": 0.01, "--seed": 0}, {"--lr": 0.01, "--seed": 0})
    >>> check_resume_settings(Path("ck"), {"--lr": 0.01}, {"--lr": 0.001})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    experiments.commands.train_image_decoder.ResumeMismatchError: cannot resume from ck: --lr is 0.01 in the ... 0.001 ...
    """
    if not isinstance(saved, Mapping) or not saved:
        raise ResumeMismatchError(
            f"cannot resume from {checkpoint}: it records no settings of the run that wrote it, so resuming "
            "could mix two runs; train into another --out folder or delete the old checkpoints")
    diffs = [f"{name} is {json.dumps(_canon(saved[name])) if name in saved else '(not recorded)'} in the checkpoint "
             f"but {json.dumps(_canon(value))} was given"
             for name, value in given.items() if name not in saved or _canon(saved[name]) != _canon(value)]
    if diffs:
        raise ResumeMismatchError(
            f"cannot resume from {checkpoint}: {'; '.join(diffs)}. Settings that define the run must match the "
            f"checkpoint's; rerun with the checkpoint's values, or train into another --out folder")


def saved_run_settings(checkpoint: Path) -> Dict[str, Any]:
    """The defining settings recorded in ``checkpoint/trainer_state.json`` (``{}`` if none or unreadable:
    :func:`check_resume_settings` refuses that).

    Examples
    --------
    >>> import json, tempfile
    >>> ck = Path(tempfile.mkdtemp())
    >>> _ = (ck / "trainer_state.json").write_text(json.dumps({"extra": {"run": {"--lr": 1e-05}}}))
    >>> saved_run_settings(ck), saved_run_settings(ck / "missing")
    ({'--lr': 1e-05}, {})
    """
    try:
        state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
        run = (state.get("extra") or {}).get("run")
    except (OSError, ValueError, AttributeError):
        return {}
    return dict(run) if isinstance(run, dict) else {}


def run_settings(args: argparse.Namespace, options: Mapping[str, Any], world_size: int,
                 num_images: int) -> Dict[str, Any]:
    """``{"--option": value}`` of the defining ``options`` (``{"--lr": args.lr, ...}``), plus the
    number of processes and of training images; JSON values (tuples become lists).

    Examples
    --------
    >>> import argparse
    >>> run_settings(argparse.Namespace(), {"--lr": 1e-5, "--t-range": (0, 100)}, world_size=2, num_images=500)
    {'--lr': 1e-05, '--t-range': [0, 100], 'number of processes (WORLD_SIZE)': 2, 'number of training images': 500}
    """
    out = {k: _canon(v) for k, v in options.items()}
    out[PROCESSES] = int(world_size)
    out[IMAGES] = int(num_images)
    return out


def _rng_text(gen) -> str:
    return base64.b64encode(gen.get_state().numpy().tobytes()).decode("ascii")


def _rng_state(text: str):
    import torch

    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)


def _gather(obj: Any, info) -> List[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` without a process group)."""
    if not info.distributed:
        return [obj]
    import torch.distributed as dist

    out: List[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def run_training_loop(trainer, system, ds, args, info, out: Path, seed: int, step, command: str,
                      manifest_extra: dict) -> Optional[Path]:
    """The loop shared by the VLF-MSC trainers (``train-image-decoder``, ``train-text-projection``).

    Epochs over ``ds`` (each rank's share of the ``(args.seed, epoch)`` permutation of a
    ``DistributedSampler``; one process takes all of it), the VLF of each batch from
    ``system.encode`` (cached), ``step(batch, vlf, gen)`` for one micro-batch (``gen``: this rank's
    per-step generator, seeded with ``seed``), and after each optimiser step: the loss averaged
    over ranks appended to ``train_log.csv``, a checkpoint every ``args.save_every`` steps keeping
    the newest ``args.keep`` (rank 0 only, every rank waiting), a run manifest. Stops at
    ``args.steps``; returns the final checkpoint folder (``None`` on ranks other than 0).

    Each checkpoint stores in ``trainer.extra_state["loop"]`` the data position (epoch and
    micro-batches of it done) and every rank's generator states (``gen``, ``trainer.generator``
    and the channel stream of ``system.link``); a resumed trainer with that record continues
    exactly where the uninterrupted run would be.

    Examples
    --------
    Needs a trainer and a VLF-MSC system (BLIP-2 and Stable Diffusion weights), so the example is not run
    by the test-suite (``tests/test_vlf_msc_training.py`` trains tiny random stand-ins through it):

    >>> final = run_training_loop(trainer, system, ds, args, info, Path(args.out), args.seed, step,
    ...                           "train-image-decoder", {})                            # doctest: +SKIP
    >>> final.name                                                                       # doctest: +SKIP
    'checkpoint-1000'
    """
    import torch
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    from experiments.core.results import RunManifest, open_table
    from semantic.distributed import all_reduce_mean, distributed_sampler
    from semantic.images import collate_images, file_sha1

    main_rank = info.is_main
    say = print if main_rank else (lambda *a, **k: None)
    log = open_table(out / "train_log.csv", ["step"], ["loss"]) if main_rank else None
    logged = {int(k[0]) for k in log.finished_keys()} if log is not None else set()
    # the epoch's order depends on (args.seed, epoch) only, so a resume can rebuild it
    sampler = distributed_sampler(ds, info, shuffle=True, seed=args.seed)
    if sampler is None:
        sampler = DistributedSampler(ds, num_replicas=1, rank=0, shuffle=True, seed=args.seed)
    per_rank = len(sampler)
    if per_rank == 0:
        raise ValueError("the training set is empty")
    drop_last = per_rank > args.batch_size
    pos = _LoopPosition(torch.Generator().manual_seed(seed), system.link.channel,
                        torch.device(system.encoder.device),
                        per_epoch=per_rank // args.batch_size if drop_last else 1)
    pos.restore(trainer, info, seed, say)

    if trainer.global_step >= args.steps:
        say(f"already at step {trainer.global_step} >= --steps {args.steps}: nothing to train")
    manifest_cm = (RunManifest(out, args=vars(args), seed=args.seed, command=command, extra=manifest_extra)
                   if main_rank else contextlib.nullcontext())
    with manifest_cm as manifest:
        losses: List[float] = []
        while trainer.global_step < args.steps:
            if pos.done >= pos.per_epoch:
                pos.epoch, pos.done = pos.epoch + 1, 0
            sampler.set_epoch(pos.epoch)
            order = list(sampler)[pos.done * args.batch_size:]
            # a generator of its own: the loader's base-seed draw leaves the global stream alone
            loader = DataLoader(ds, batch_size=args.batch_size, sampler=order, collate_fn=collate_images,
                                drop_last=drop_last, generator=torch.Generator())
            for batch in loader:
                vlf = system.encode(batch["image"], keys=[file_sha1(p) for p in batch["path"]])
                before = trainer.global_step
                losses.append(step(batch, vlf, pos.gen))
                pos.done += 1
                if trainer.global_step > before:
                    loss = float(all_reduce_mean(sum(losses) / len(losses), info))  # mean over ranks
                    losses = []
                    if log is not None and trainer.global_step not in logged:
                        log.append({"step": trainer.global_step, "loss": loss})
                        logged.add(trainer.global_step)
                    if trainer.global_step % 10 == 0:
                        say(f"step {trainer.global_step}: loss {loss:.4f}")
                    if trainer.global_step % args.save_every == 0:
                        pos.save(trainer, out, args, info)
                if trainer.global_step >= args.steps:
                    break
            else:
                pos.done = pos.per_epoch
        final = pos.save(trainer, out, args, info)
        if manifest is not None:
            manifest.update(final_checkpoint=str(final), steps=trainer.global_step)
    return final


@dataclass
class _LoopPosition:
    """What a checkpoint of :func:`run_training_loop` records besides the model: the data position
    (``done`` micro-batches of ``epoch`` taken, ``per_epoch`` per epoch and rank) and the random streams
    (``gen``, this rank's per-step generator; the trainer's; ``channel``'s stream on ``ch_dev``)."""

    gen: Any
    channel: Any
    ch_dev: Any
    per_epoch: int
    epoch: int = 0
    done: int = 0

    def restore(self, trainer, info, seed: int, say) -> None:
        """Continue from ``trainer.extra_state["loop"]`` (the position and this rank's streams); without that
        record (an older checkpoint) the order and the streams restart from ``seed + global_step``."""
        import torch

        saved = trainer.extra_state.get("loop")
        if saved is not None and len(saved.get("rng", ())) == info.world_size:
            self.epoch, self.done = int(saved["epoch"]), int(saved["batch"])
            mine = saved["rng"][info.rank]
            self.gen.set_state(_rng_state(mine["step"]))
            trainer.generator.set_state(_rng_state(mine["trainer"]))
            if torch.device(mine["channel_device"]).type == self.ch_dev.type:
                self.channel.generator(self.ch_dev).set_state(_rng_state(mine["channel"]))
            else:
                self.channel.reset(seed + trainer.global_step)
                say(f"note: the checkpoint's channel stream is for {mine['channel_device']}, not {self.ch_dev}: it "
                    f"restarts from seed {seed + trainer.global_step}")
        elif trainer.global_step > 0:  # a checkpoint without the record (older version)
            self.gen.manual_seed(seed + trainer.global_step)
            self.channel.reset(seed + trainer.global_step)
            self.epoch = trainer.global_step
            say("note: the checkpoint has no data position / random-stream record: the epoch order and the random "
                f"streams restart from seed + {trainer.global_step}")

    def save(self, trainer, out: Path, args, info) -> Optional[Path]:
        """Checkpoint ``out/checkpoint-<step>`` with every rank's streams (rank 0 writes it and keeps the newest
        ``args.keep``; every rank waits); its folder on rank 0, ``None`` on the others."""
        from semantic.distributed import barrier

        mine = {"step": _rng_text(self.gen), "trainer": _rng_text(trainer.generator),
                "channel": _rng_text(self.channel.generator(self.ch_dev)), "channel_device": str(self.ch_dev)}
        states = _gather(mine, info)  # every rank takes part
        path = None
        if info.is_main:
            at = (self.epoch + 1, 0) if self.done >= self.per_epoch else (self.epoch, self.done)
            trainer.extra_state["loop"] = {"epoch": at[0], "batch": at[1], "batch_size": args.batch_size,
                                           "world_size": info.world_size, "rng": states}
            path = trainer.save(out / f"checkpoint-{trainer.global_step:07d}")
            ckpts = sorted(p for p in out.glob("checkpoint-*") if re.fullmatch(r"checkpoint-\d+", p.name))
            for old in ckpts[:-max(1, args.keep)]:
                shutil.rmtree(old, ignore_errors=True)
        barrier(info)
        return path


def add_channel_and_output_arguments(parser: argparse.ArgumentParser, training: argparse._ArgumentGroup) -> None:
    """The options both VLF-MSC trainers share: the training channel, equaliser and seed (into the
    ``training`` argument group) and the output group (folder, checkpoint cadence, VLF cache).

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_channel_and_output_arguments(parser, parser.add_argument_group("training"))
    >>> args = parser.parse_args(["--out", "runs/decoder", "--channel", "rayleigh"])
    >>> args.out, args.channel
    ('runs/decoder', 'rayleigh')
    """
    training.add_argument("--channel", default="awgn", choices=("awgn", "rayleigh", "rician"))
    training.add_argument("--equalizer", default="mmse", choices=("zf", "mmse", "identity"),
                          help="receiver of the analog VLF in training (default mmse, as vlf-msc-eval; identity: no "
                               "equaliser, AWGN only)")
    training.add_argument("--seed", type=int, default=0)
    g = parser.add_argument_group("output")
    g.add_argument("--out", required=True)
    g.add_argument("--save-every", type=int, default=500)
    g.add_argument("--keep", type=int, default=2, help="checkpoints kept (default 2)")
    g.add_argument("--vlf-cache", default=None, help="VLF cache folder (default OUT/vlf_cache; 'none' = off)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``semcom train-image-decoder`` to ``parser`` (``semcom train-image-decoder --help`` lists them).

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["--images", "data/train", "--out", "runs/decoder"])
    >>> (args.images, args.out)
    ('data/train', 'runs/decoder')
    """
    g = parser.add_argument_group("data")
    g.add_argument("--images", required=True, help="folder of training images")
    g.add_argument("--captions", default=None, help="CSV with image[,caption][,label] columns (labels = c_i)")
    g.add_argument("--no-labels", action="store_true", help="do not feed subject labels c_i")
    g.add_argument("--limit", type=int, default=None)
    g.add_argument("--image-size", type=int, default=256, help="training resolution (default 256)")
    g = parser.add_argument_group("models")
    g.add_argument("--blip2-checkpoint", "--checkpoint", dest="blip2_checkpoint", default="Salesforce/blip2-opt-6.7b")
    g.add_argument("--sd-checkpoint", default="stable-diffusion-v1-5/stable-diffusion-v1-5")
    g.add_argument("--init-decoder", default=None, help="start from a trained image-decoder folder")
    g.add_argument("--device", default=None, help="torch device: auto (default: cuda:LOCAL_RANK if available, else cpu), cpu, cuda ...")
    g.add_argument("--encoder-dtype", default="auto", help="BLIP-2 dtype (auto: fp16 on CUDA)")
    g.add_argument("--allow-download", action="store_true")
    g = parser.add_argument_group("training")
    g.add_argument("--steps", type=int, default=1000, help="optimizer steps in total (default 1000)")
    g.add_argument("--batch-size", type=int, default=4)
    g.add_argument("--grad-accum", type=int, default=1)
    g.add_argument("--lr", type=float, default=1e-5, help="U-Net (and text encoder) learning rate")
    g.add_argument("--projection-lr", type=float, default=1e-4)
    g.add_argument("--t-range", default="0:100", help="DDPM timesteps lo:hi, inclusive (paper 0:100)")
    g.add_argument("--mixed-precision", default="no", choices=("no", "fp16", "bf16"))
    g.add_argument("--freeze-unet", action="store_true", help="train the projection only")
    g.add_argument("--train-text-encoder", action="store_true")
    g.add_argument("--cond-drop-prob", type=float, default=0.0, help="condition dropout (for guidance)")
    g.add_argument("--train-snr-db", default=None, help="lo:hi: send VLFs through the channel at random SNR")
    add_channel_and_output_arguments(parser, g)


def main(args: argparse.Namespace) -> int:
    """Run ``semcom train-image-decoder`` with the parsed ``args`` (the options of :func:`add_arguments`); returns
    the exit status (0 on success, 2 for bad input, reported as one line).

    Examples
    --------
    Not run by the test-suite: it needs the Stable Diffusion and BLIP-2 weights; ``tests/test_vlf_msc_training.py`` runs it on tiny random stand-ins.

    >>> from experiments.cli import main as semcom
    >>> semcom(["train-image-decoder"] + ["--images", "data/train", "--out", "runs/decoder"])                                # doctest: +SKIP
    0
    """
    import semantic  # noqa: F401
    from semantic.distributed import cleanup, init_distributed
    from semantic.image_decoder import ImageDecoderTrainConfig

    try:
        t_lo, t_hi = parse_range(args.t_range, "t-range", int)
        snr_range = parse_range(args.train_snr_db, "train-snr-db") if args.train_snr_db else None
        tcfg = ImageDecoderTrainConfig(lr=args.lr, projection_lr=args.projection_lr, t_min=t_lo, t_max=t_hi,
                                       grad_accum=args.grad_accum, mixed_precision=args.mixed_precision,
                                       train_unet=not args.freeze_unet, train_text_encoder=args.train_text_encoder,
                                       cond_drop_prob=args.cond_drop_prob, seed=args.seed)
    except ValueError as exc:
        print(f"semcom train-image-decoder: {exc}", file=sys.stderr)
        return 2
    if args.steps <= 0 or args.batch_size <= 0 or args.save_every <= 0:
        print("semcom train-image-decoder: --steps, --batch-size and --save-every must be positive", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        info = init_distributed(device=args.device)
    except ValueError as exc:
        print(f"semcom train-image-decoder: {exc}", file=sys.stderr)
        return 2
    try:
        return _train(args, info, tcfg, snr_range, out)
    finally:
        cleanup(info)


def _defining_options(args: argparse.Namespace, tcfg, snr_range) -> Dict[str, Any]:
    """The options of ``train-image-decoder`` that define the run (see the module docstring)."""
    return {"--blip2-checkpoint": str(args.blip2_checkpoint), "--sd-checkpoint": str(args.sd_checkpoint),
            "--init-decoder": args.init_decoder, "--encoder-dtype": args.encoder_dtype,
            "--image-size": args.image_size, "--no-labels": bool(args.no_labels), "--limit": args.limit,
            "--batch-size": args.batch_size, "--grad-accum": args.grad_accum, "--lr": args.lr,
            "--projection-lr": args.projection_lr, "--t-range": [tcfg.t_min, tcfg.t_max],
            "--mixed-precision": args.mixed_precision, "--freeze-unet": bool(args.freeze_unet),
            "--train-text-encoder": bool(args.train_text_encoder), "--cond-drop-prob": args.cond_drop_prob,
            "--train-snr-db": list(snr_range) if snr_range is not None else None, "--channel": args.channel,
            "--equalizer": args.equalizer, "--seed": args.seed}


def _train(args, info, tcfg, snr_range, out: Path) -> int:
    import torch

    from semantic.checkpoints import CheckpointNotFoundError
    from semantic.distributed import barrier
    from semantic.image_decoder import ImageDecoderTrainer, VLFImageDecoder, rank_seed
    from semantic.images import ImageCaptionDataset
    from semantic.vlf import VLFEncoder, load_blip2
    from semantic.vlf_msc import VLFMSC, VLFMSCConfig

    main_rank = info.is_main
    say = print if main_rank else (lambda *a, **k: None)
    seed = rank_seed(args.seed, info.rank)  # args.seed itself on rank 0 / in one process
    resume_from = latest_checkpoint(out)
    try:
        ds = ImageCaptionDataset(args.images, args.captions, size=args.image_size, limit=args.limit)
        given = run_settings(args, _defining_options(args, tcfg, snr_range), info.world_size, len(ds))
        if resume_from is not None:  # before the models load: a refused resume fails fast
            check_resume_settings(resume_from, saved_run_settings(resume_from), given)
        model, processor = load_blip2(args.blip2_checkpoint, device=info.device, dtype=args.encoder_dtype,
                                      allow_download=True if args.allow_download else None)
        model.language_model = None  # the transmitter only
        encoder = VLFEncoder.from_blip2(model, processor, checkpoint=str(args.blip2_checkpoint))
        with torch.random.fork_rng(devices=[]):  # a fresh projection drawn from --seed, global stream untouched
            torch.default_generator.manual_seed(args.seed)
            decoder = VLFImageDecoder.from_pretrained(
                args.sd_checkpoint, args.init_decoder, vlf_dim=encoder.dim, num_queries=encoder.num_queries,
                device=encoder.device, dtype="float32", allow_download=True if args.allow_download else None,
                height=args.image_size, width=args.image_size)
    except (CheckpointNotFoundError, FileNotFoundError, ValueError) as exc:
        print(f"semcom train-image-decoder: {exc}", file=sys.stderr)
        return 2
    cache = args.vlf_cache if args.vlf_cache is not None else str(out / "vlf_cache")
    system = VLFMSC(encoder, image_decoder=decoder, channel=args.channel,
                    config=VLFMSCConfig(decode_text=False, channel=args.channel, channel_seed=seed,
                                        equalizer=args.equalizer,
                                        vlf_cache_dir=None if cache.lower() == "none" else cache))
    try:
        if resume_from is not None:
            trainer = ImageDecoderTrainer.resume(decoder, resume_from, dist_info=info, config=tcfg)
            say(f"resuming from {resume_from} (step {trainer.global_step})")
        else:
            trainer = ImageDecoderTrainer(decoder, tcfg, dist_info=info)
    except ValueError as exc:
        print(f"semcom train-image-decoder: {exc}", file=sys.stderr)
        return 2
    trainer.extra_state["run"] = given
    barrier(info)  # every rank has read the checkpoint before rank 0 writes new ones
    ledger = system.ledger((3, args.image_size, args.image_size))

    def step(batch, vlf, gen) -> float:
        if snr_range is not None:
            snr = snr_range[0] + (snr_range[1] - snr_range[0]) * torch.rand(vlf.shape[0], generator=gen)
            vlf = system.transmit(vlf, snr_db=snr.to(vlf.device))
        labels = None if args.no_labels else batch["label"]
        return trainer.step(batch["image"], vlf, labels=labels)

    final = run_training_loop(trainer, system, ds, args, info, out, seed, step, "semcom train-image-decoder",
                              {"ledger": ledger, "world_size": info.world_size})
    say(f"saved {final}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    p = argparse.ArgumentParser(prog="semcom train-image-decoder")
    add_arguments(p)
    sys.exit(main(p.parse_args()))
