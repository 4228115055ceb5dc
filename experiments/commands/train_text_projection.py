"""``semcom train-text-projection``: fine-tune VLF-MSC's text soft-prompt projection ``W_proj``.

Example
-------
``semcom train-text-projection --images data/openimages/train --captions data/openimages/train.csv
--blip2-checkpoint Salesforce/blip2-opt-6.7b --text-mode pooled --train-snr-db=-5:10 --steps 2000
--batch-size 16 --lr 1e-4 --out runs/wproj``

Recipe: the frozen BLIP-2 transmitter gives the VLF ``[N, d]`` of each image (cached on disk in
``--vlf-cache``, default ``OUT/vlf_cache``); each VLF goes through the analog link (``--channel``) at an
SNR drawn uniformly in ``--train-snr-db lo:hi`` (Es/N0 per complex channel use, one SNR per example;
``none`` = clean VLFs); the loss is OPT's language-model loss of the target caption (the CSV's
``caption`` column) given the soft prompt ``W_proj(received VLF)``. Only ``W_proj`` is trained; it
starts from BLIP-2's ``language_projection`` (or ``--init-projection DIR``).

The targets should be the text the evaluation scores against: with ``semcom vlf-msc-eval --reference blip2``
(its default, the paper's "original text") that is the clean-channel BLIP-2 caption of each image, which
``semcom blip2-captions`` writes for the training images (its ``captions.csv``, with a ``captions.json`` beside
it saying so). The targets' kind is recorded in every checkpoint (``trainer_state.json``: ``extra.reference``,
``"blip2"`` for such a CSV, ``"csv"`` for any other) and in the manifest; ``vlf-msc-eval`` records it beside
its own ``--reference``.

Writes ``OUT/checkpoint-<step>/`` every ``--save-every`` optimizer steps and at the end: ``config.json`` +
safetensors of ``W_proj`` (so the folder is directly a ``semcom vlf-msc --text-projection`` folder),
the optimizer state and ``trainer_state.json``; ``OUT/train_log.csv`` (step, loss) and
``OUT/manifest.json``. Rerunning the same command resumes from the newest checkpoint (``--steps`` is
the total number of optimizer steps).

Several GPUs (one process per GPU; see :mod:`experiments.commands.train_image_decoder` for the details)::

    torchrun --standalone --nproc_per_node 4 -m experiments.cli train-text-projection ... --out runs/wproj

Each rank takes its share of every epoch (``DistributedSampler``), W_proj is wrapped in
``DistributedDataParallel`` and the train SNRs and channel noise come from per-rank seeds; rank 0 writes
the checkpoints, the log (loss averaged over ranks) and the manifest.

Resuming
--------
As for ``train-image-decoder`` (:func:`experiments.commands.train_image_decoder.run_training_loop`): a
resumed run continues at the checkpoint's data position with every rank's train-SNR and channel
streams restored, so it takes exactly the steps of an uninterrupted run. The settings that define
the run must match the checkpoint's; another value is refused (exit code 2, the message names the
setting, the checkpoint's value and the given one):

* must match: ``--blip2-checkpoint``, ``--text-mode``, ``--init-projection``, ``--dtype``,
  ``--input-size``, ``--limit``, ``--batch-size``, ``--grad-accum``, ``--lr``, ``--weight-decay``,
  ``--train-snr-db``, ``--channel``, ``--equalizer``, ``--seed``, the number of processes and the
  number of training images;
* may change, and are applied: ``--steps`` (the total; a larger value extends the run),
  ``--save-every``, ``--keep``, ``--device`` (a change of device type restarts the channel stream,
  with a note), ``--allow-download``, ``--vlf-cache`` and the ``--images`` / ``--captions`` paths.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, Optional

from experiments.commands.train_image_decoder import (add_channel_and_output_arguments, check_resume_settings,
                                                      latest_checkpoint, parse_range, run_settings,
                                                      run_training_loop, saved_run_settings)

__all__ = ["add_arguments", "main", "caption_reference", "projection_reference"]

PROG = "semcom train-text-projection"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``semcom train-text-projection`` to ``parser`` (``semcom train-text-projection --help`` lists them).

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["--images", "data/train", "--captions", "c.csv", "--out", "runs/wproj"])
    >>> (args.captions, args.input_size)
    ('c.csv', 256)
    """
    g = parser.add_argument_group("data")
    g.add_argument("--images", required=True, help="folder of training images")
    g.add_argument("--captions", required=True, help="CSV with image,caption[,label] columns")
    g.add_argument("--limit", type=int, default=None)
    g.add_argument("--input-size", type=int, default=256, help="image resize/centre-crop side (default 256)")
    g = parser.add_argument_group("models")
    g.add_argument("--blip2-checkpoint", "--checkpoint", dest="blip2_checkpoint", default="Salesforce/blip2-opt-6.7b")
    g.add_argument("--text-mode", default="pooled", choices=("pooled", "blip2"),
                   help="pooled: one soft prompt (paper); blip2: all N projected queries")
    g.add_argument("--init-projection", default=None, help="start from a W_proj folder (default: BLIP-2's)")
    g.add_argument("--device", default=None, help="torch device: auto (default: cuda:LOCAL_RANK if available, else cpu), cpu, cuda ...")
    g.add_argument("--dtype", default="auto", help="BLIP-2 dtype (auto: fp16 on CUDA); W_proj stays float32")
    g.add_argument("--allow-download", action="store_true")
    g = parser.add_argument_group("training")
    g.add_argument("--steps", type=int, default=1000, help="optimizer steps in total (default 1000)")
    g.add_argument("--batch-size", type=int, default=8)
    g.add_argument("--grad-accum", type=int, default=1)
    g.add_argument("--lr", type=float, default=1e-4)
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--train-snr-db", default="-5:10",
                   help="lo:hi Es/N0 range in dB, one uniform draw per example (default -5:10); 'none' = clean")
    add_channel_and_output_arguments(parser, g)


def main(args: argparse.Namespace) -> int:
    """Run ``semcom train-text-projection`` with the parsed ``args`` (the options of :func:`add_arguments`); returns
    the exit status (0 on success, 2 for bad input, reported as one line).

    Examples
    --------
    Not run by the test-suite: it needs the BLIP-2 weights; ``tests/test_vlf_msc_training.py`` runs it on tiny random stand-ins.

    >>> from experiments.cli import main as semcom
    >>> semcom(["train-text-projection"] + ["--images", "data/train", "--captions", "c.csv", "--out", "runs/wproj"])                                # doctest: +SKIP
    0
    """
    import semantic  # noqa: F401
    from semantic.distributed import cleanup, init_distributed
    from semantic.text_decoder import TextProjectionTrainConfig

    try:
        snr_range = None if str(args.train_snr_db).lower() == "none" else parse_range(args.train_snr_db,
                                                                                      "train-snr-db")
        tcfg = TextProjectionTrainConfig(lr=args.lr, weight_decay=args.weight_decay, snr_range_db=snr_range,
                                         grad_accum=args.grad_accum, seed=args.seed)
    except ValueError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    if args.steps <= 0 or args.batch_size <= 0 or args.save_every <= 0:
        print(f"{PROG}: --steps, --batch-size and --save-every must be positive", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        info = init_distributed(device=args.device)
    except ValueError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    try:
        return _train(args, info, tcfg, out)
    finally:
        cleanup(info)


def caption_reference(captions_csv) -> str:
    """What the captions of ``captions_csv`` are: ``"blip2"`` for a ``semcom blip2-captions`` CSV (its
    ``captions.json`` says so), ``"csv"`` for any other.

    Examples
    --------
    >>> import json, tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> caption_reference(d / "captions.csv")
    'csv'
    >>> _ = (d / "captions.json").write_text(json.dumps({"reference": "blip2"}))
    >>> caption_reference(d / "captions.csv")
    'blip2'
    """
    import json

    meta = Path(captions_csv).with_name("captions.json")
    try:
        ref = json.loads(meta.read_text()).get("reference") if meta.is_file() else None
    except (OSError, ValueError, AttributeError):
        ref = None
    return ref if ref == "blip2" else "csv"


def projection_reference(folder) -> Optional[str]:
    """The targets a ``W_proj`` checkpoint folder was trained towards (``"blip2"`` or ``"csv"``, see
    :func:`caption_reference`); ``None`` when it does not record them (a folder from elsewhere).

    Examples
    --------
    >>> import json, tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "trainer_state.json").write_text(json.dumps({"extra": {"reference": "blip2"}}))
    >>> projection_reference(d), projection_reference(d / "missing")
    ('blip2', None)
    """
    import json

    try:
        state = json.loads((Path(folder) / "trainer_state.json").read_text())
        ref = (state.get("extra") or {}).get("reference")
    except (OSError, ValueError, AttributeError):
        return None
    return ref if isinstance(ref, str) else None


def _defining_options(args: argparse.Namespace, tcfg) -> Dict[str, Any]:
    """The options of ``train-text-projection`` that define the run (see the module docstring)."""
    return {"--blip2-checkpoint": str(args.blip2_checkpoint), "--text-mode": args.text_mode,
            "--init-projection": args.init_projection, "--dtype": args.dtype, "--input-size": args.input_size,
            "--limit": args.limit, "--batch-size": args.batch_size, "--grad-accum": args.grad_accum,
            "--lr": args.lr, "--weight-decay": args.weight_decay,
            "--train-snr-db": list(tcfg.snr_range_db) if tcfg.snr_range_db is not None else None,
            "--channel": args.channel, "--equalizer": args.equalizer, "--seed": args.seed}


def _train(args, info, tcfg, out: Path) -> int:

    from semantic.checkpoints import CheckpointNotFoundError
    from semantic.distributed import barrier
    from semantic.image_decoder import rank_seed
    from semantic.images import ImageCaptionDataset
    from semantic.text_decoder import OPTTextDecoder, TextProjectionTrainer
    from semantic.vlf import VLFEncoder, load_blip2
    from semantic.vlf_msc import VLFMSC, VLFMSCConfig

    main_rank = info.is_main
    say = print if main_rank else (lambda *a, **k: None)
    seed = rank_seed(args.seed, info.rank)  # args.seed itself on rank 0 / in one process
    resume_from = latest_checkpoint(out)
    try:
        ds = ImageCaptionDataset(args.images, args.captions, size=args.input_size, limit=args.limit)
        missing = [ds.name(i) for i in range(len(ds)) if not ds.items[i]["caption"]]
        if missing:
            raise ValueError(f"{len(missing)} image(s) have no caption in {args.captions!r} (first: "
                             f"{missing[0]!r}); W_proj is trained on reference captions")
        reference = caption_reference(args.captions)
        given = run_settings(args, _defining_options(args, tcfg), info.world_size, len(ds))
        if resume_from is not None:  # before the models load: a refused resume fails fast
            check_resume_settings(resume_from, saved_run_settings(resume_from), given)
        model, processor = load_blip2(args.blip2_checkpoint, device=info.device, dtype=args.dtype,
                                      allow_download=True if args.allow_download else None)
        encoder = VLFEncoder.from_blip2(model, processor, checkpoint=str(args.blip2_checkpoint))
        decoder = OPTTextDecoder.from_blip2(model, processor.tokenizer, mode=args.text_mode,
                                            projection=args.init_projection)
    except (CheckpointNotFoundError, FileNotFoundError, ValueError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    cache = args.vlf_cache if args.vlf_cache is not None else str(out / "vlf_cache")
    system = VLFMSC(encoder, text_decoder=decoder, channel=args.channel,
                    config=VLFMSCConfig(decode_images=False, channel=args.channel, channel_seed=seed,
                                        equalizer=args.equalizer,
                                        vlf_cache_dir=None if cache.lower() == "none" else cache))
    try:
        if resume_from is not None:
            trainer = TextProjectionTrainer.resume(decoder, resume_from, system.link, dist_info=info, config=tcfg)
            say(f"resuming from {resume_from} (step {trainer.global_step})")
        else:
            trainer = TextProjectionTrainer(decoder, tcfg, system.link, dist_info=info)
    except ValueError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    trainer.extra_state["run"] = given
    trainer.extra_state["reference"] = reference
    barrier(info)  # every rank has read the checkpoint before rank 0 writes new ones
    final = run_training_loop(
        trainer, system, ds, args, info, out, seed, lambda batch, vlf, gen: trainer.step(vlf, batch["caption"]),
        PROG, {"ledger": system.ledger((3, args.input_size, args.input_size)), "world_size": info.world_size,
               "text_mode": args.text_mode, "reference": reference})
    say(f"saved {final}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    p = argparse.ArgumentParser(prog=PROG)
    add_arguments(p)
    sys.exit(main(p.parse_args()))
