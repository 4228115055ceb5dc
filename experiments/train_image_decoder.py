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
train-image-decoder`` run is the single-process case and behaves exactly as before.
"""
from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import sys
from pathlib import Path
from typing import List, Optional, Tuple

__all__ = ["add_arguments", "main", "latest_checkpoint", "parse_range"]


def parse_range(text: str, what: str, cast=float) -> Tuple:
    """``"lo:hi"`` -> ``(lo, hi)`` with ``lo <= hi``."""
    parts = str(text).split(":")
    if len(parts) != 2:
        raise ValueError(f"--{what} must be lo:hi, got {text!r}")
    try:
        lo, hi = cast(parts[0]), cast(parts[1])
    except ValueError:
        raise ValueError(f"--{what} must be lo:hi numbers, got {text!r}") from None
    if lo > hi:
        raise ValueError(f"--{what}: lo must be <= hi, got {text!r}")
    return lo, hi


def latest_checkpoint(out: Path) -> Optional[Path]:
    """The ``checkpoint-<step>`` folder with the largest step in ``out`` (complete ones only)."""
    best = None
    for p in out.glob("checkpoint-*"):
        m = re.fullmatch(r"checkpoint-(\d+)", p.name)
        if m and (p / "trainer_state.json").is_file():
            if best is None or int(m.group(1)) > best[0]:
                best = (int(m.group(1)), p)
    return best[1] if best else None


def run_training_loop(trainer, system, ds, args, info, out: Path, seed: int, step, command: str,
                      manifest_extra: dict) -> Optional[Path]:
    """The loop shared by the VLF-MSC trainers (``train-image-decoder``, ``train-text-projection``).

    Epochs over ``ds`` (a seeded shuffle in one process, a :func:`distributed_sampler` share per rank
    under ``torchrun``), the VLF of each batch from ``system.encode`` (cached), ``step(batch, vlf, gen)``
    for one micro-batch, and after each optimiser step: the loss averaged over ranks appended to
    ``train_log.csv``, a checkpoint every ``args.save_every`` steps keeping the newest ``args.keep``
    (rank 0 only, every rank waiting), a run manifest. Stops at ``args.steps``; returns the final
    checkpoint folder (``None`` on ranks other than 0).
    """
    import torch

    from experiments.results import RunManifest, open_table
    from semantic.distributed import all_reduce_mean, barrier, distributed_sampler
    from semantic.images import collate_images, file_sha1

    main_rank = info.is_main
    say = print if main_rank else (lambda *a, **k: None)
    log = open_table(out / "train_log.csv", ["step"], ["loss"]) if main_rank else None
    logged = {int(k[0]) for k in log.finished_keys()} if log is not None else set()
    gen = torch.Generator().manual_seed(seed + trainer.global_step)
    # one process: shuffled by ``gen``; several: each rank's share of a seeded permutation
    sampler = distributed_sampler(ds, info, shuffle=True, seed=args.seed)
    per_rank = len(sampler) if sampler is not None else len(ds)

    def save() -> Optional[Path]:
        path = None
        if main_rank:
            path = trainer.save(out / f"checkpoint-{trainer.global_step:07d}")
            ckpts = sorted(p for p in out.glob("checkpoint-*") if re.fullmatch(r"checkpoint-\d+", p.name))
            for old in ckpts[:-max(1, args.keep)]:
                shutil.rmtree(old, ignore_errors=True)
        barrier(info)
        return path

    manifest_cm = (RunManifest(out, args=vars(args), seed=args.seed, command=command, extra=manifest_extra)
                   if main_rank else contextlib.nullcontext())
    with manifest_cm as manifest:
        losses: List[float] = []
        epoch = trainer.global_step  # distinct per (re)start, as ``gen``'s seed
        while trainer.global_step < args.steps:
            if sampler is not None:
                sampler.set_epoch(epoch)
            epoch += 1
            loader = torch.utils.data.DataLoader(
                ds, batch_size=args.batch_size, shuffle=sampler is None, sampler=sampler,
                generator=gen if sampler is None else None, collate_fn=collate_images,
                drop_last=per_rank > args.batch_size)
            for batch in loader:
                vlf = system.encode(batch["image"], keys=[file_sha1(p) for p in batch["path"]])
                before = trainer.global_step
                losses.append(step(batch, vlf, gen))
                if trainer.global_step > before:
                    loss = float(all_reduce_mean(sum(losses) / len(losses), info))  # mean over ranks
                    losses = []
                    if log is not None and trainer.global_step not in logged:
                        log.append({"step": trainer.global_step, "loss": loss})
                        logged.add(trainer.global_step)
                    if trainer.global_step % 10 == 0:
                        say(f"step {trainer.global_step}: loss {loss:.4f}")
                    if trainer.global_step % args.save_every == 0:
                        save()
                if trainer.global_step >= args.steps:
                    break
        final = save()
        if manifest is not None:
            manifest.update(final_checkpoint=str(final), steps=trainer.global_step)
    return final


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
    g.add_argument("--device", default=None)
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
    g.add_argument("--channel", default="awgn", choices=("awgn", "rayleigh", "rician"))
    g.add_argument("--seed", type=int, default=0)
    g = parser.add_argument_group("output")
    g.add_argument("--out", required=True)
    g.add_argument("--save-every", type=int, default=500)
    g.add_argument("--keep", type=int, default=2, help="checkpoints kept (default 2)")
    g.add_argument("--vlf-cache", default=None, help="VLF cache folder (default OUT/vlf_cache; 'none' = off)")


def main(args: argparse.Namespace) -> int:
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
    try:
        ds = ImageCaptionDataset(args.images, args.captions, size=args.image_size, limit=args.limit)
        model, processor = load_blip2(args.blip2_checkpoint, device=info.device, dtype=args.encoder_dtype,
                                      allow_download=True if args.allow_download else None)
        model.language_model = None  # the transmitter only
        encoder = VLFEncoder.from_blip2(model, processor, checkpoint=str(args.blip2_checkpoint))
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
                                        vlf_cache_dir=None if cache.lower() == "none" else cache))
    resume_from = latest_checkpoint(out)
    if resume_from is not None:
        trainer = ImageDecoderTrainer.resume(decoder, resume_from, dist_info=info)
        say(f"resuming from {resume_from} (step {trainer.global_step})")
    else:
        trainer = ImageDecoderTrainer(decoder, tcfg, dist_info=info)
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
