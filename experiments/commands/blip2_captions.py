"""``semcom blip2-captions``: the clean-channel BLIP-2 caption of every image of a folder.

Example
-------
``semcom blip2-captions --images data/openimages/train --blip2-checkpoint Salesforce/blip2-opt-6.7b
--out runs/train-captions``

Each image is encoded by the frozen BLIP-2 transmitter once (the VLF, cached in ``--vlf-cache``, default
``OUT/vlf_cache``) and captioned the BLIP-2 way from the *noiseless* VLF: all ``N`` query tokens through
BLIP-2's own ``language_projection`` into OPT, greedy (:meth:`semantic.vlf_msc.VLFMSC.blip2_captioner`).
That caption is the VLF-MSC paper's "original text": the reference ``semcom vlf-msc-eval --reference
blip2`` scores against and the sentence its text baselines send. Captioning the *training* images gives the
targets of ``train-text-projection`` (the same reference on the training split) and DeepSC's training
corpus (``train-deepsc``), so no evaluation caption is ever seen in training.

Writes ``OUT/captions.csv`` (``image,caption``; ``image`` relative to ``--images``, readable as the
``--captions`` CSV of the other commands), one row per image as it is done (a rerun resumes and skips
finished images), ``OUT/captions.json`` (what the captions are: ``{"reference": "blip2", ...}``, read by
``train-text-projection`` to record its targets) and ``OUT/manifest.json``. Images come from ``--captions``
when given (its rows, in order), else every image file under ``--images``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.core.args import positive_int_arg

__all__ = ["add_arguments", "main", "CAPTIONS_META"]

PROG = "semcom blip2-captions"
#: The file beside ``captions.csv`` that says what its captions are.
CAPTIONS_META = "captions.json"
_SETTINGS = ("images", "captions", "limit", "input_size", "blip2_checkpoint", "dtype", "max_new_tokens", "num_beams")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``semcom blip2-captions`` to ``parser`` (``semcom blip2-captions --help`` lists them).

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["--images", "data/train", "--out", "runs/caps"])
    >>> args.images, args.max_new_tokens
    ('data/train', 30)
    """
    g = parser.add_argument_group("data")
    g.add_argument("--images", required=True, help="folder of images")
    g.add_argument("--captions", default=None, help="CSV listing the images (image column; optional)")
    g.add_argument("--limit", type=positive_int_arg, default=None, help="only the first N images")
    g.add_argument("--input-size", type=positive_int_arg, default=256, help="resize/centre-crop side (default 256)")
    g = parser.add_argument_group("model")
    g.add_argument("--blip2-checkpoint", "--checkpoint", dest="blip2_checkpoint", default="Salesforce/blip2-opt-6.7b",
                   help="BLIP-2 hub id or folder (default Salesforce/blip2-opt-6.7b)")
    g.add_argument("--max-new-tokens", type=positive_int_arg, default=30)
    g.add_argument("--num-beams", type=positive_int_arg, default=1)
    g.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    g.add_argument("--dtype", default="auto", help="auto (fp16 on CUDA) | float32 | float16 | bfloat16")
    g.add_argument("--device-map", default=None, help="transformers device_map for BLIP-2")
    g.add_argument("--allow-download", action="store_true", help="download a missing checkpoint (online machines)")
    g = parser.add_argument_group("output")
    g.add_argument("--out", required=True, help="output folder (captions.csv, captions.json)")
    g.add_argument("--batch-size", type=positive_int_arg, default=8)
    g.add_argument("--vlf-cache", default=None, help="VLF cache folder (default OUT/vlf_cache; 'none' to disable)")


def main(args: argparse.Namespace) -> int:
    """Run ``semcom blip2-captions`` with the parsed ``args`` (the options of :func:`add_arguments`); returns the
    exit status (0 on success, 2 for bad input, reported as one line).

    Examples
    --------
    Not run by the test-suite: it needs the BLIP-2 weights; ``tests/test_reproduce.py`` runs it on a tiny stand-in.

    >>> from experiments.cli import main as semcom
    >>> semcom(["blip2-captions", "--images", "data/train", "--out", "runs/caps"])          # doctest: +SKIP
    0
    """
    import semantic  # noqa: F401  (torchvision shim first)

    from experiments.core.results import (RunManifest, claim_result_settings, open_table, settings_of,
                                          write_json_atomic)
    from semantic.checkpoints import CheckpointNotFoundError
    from semantic.images import ImageCaptionDataset, collate_images, file_sha1
    from semantic.vlf_msc import VLFMSC, VLFMSCConfig

    out = Path(args.out)
    try:
        ds = ImageCaptionDataset(args.images, args.captions, size=args.input_size, limit=args.limit, unique=True)
        out.mkdir(parents=True, exist_ok=True)
        claim_result_settings(out, settings_of(args, _SETTINGS, paths=("images", "captions")), ["captions.csv"])
        cache = args.vlf_cache if args.vlf_cache is not None else str(out / "vlf_cache")
        system = VLFMSC.from_config(VLFMSCConfig(
            blip2_checkpoint=args.blip2_checkpoint, device=args.device, dtype=args.dtype, device_map=args.device_map,
            decode_images=False, max_new_tokens=args.max_new_tokens, num_beams=args.num_beams,
            vlf_cache_dir=None if cache.lower() == "none" else cache,
            allow_download=True if args.allow_download else None))
    except (CheckpointNotFoundError, FileNotFoundError, ValueError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    root = Path(args.images).resolve()
    table = open_table(out / "captions.csv", ("image",), ("caption",))
    done = {r["image"] for r in table.rows()}
    rel = [str(Path(it["path"]).resolve().relative_to(root)) if Path(it["path"]).resolve().is_relative_to(root)
           else it["path"] for it in ds.items]
    todo = [i for i in range(len(ds)) if rel[i] not in done]
    captioner = system.blip2_captioner() if todo else None
    empty = 0
    with RunManifest(out, args=vars(args), seed=0, command=PROG, extra={"images": len(ds)}) as man:
        for lo in range(0, len(todo), args.batch_size):
            idx = todo[lo:lo + args.batch_size]
            batch = collate_images([ds[i] for i in idx])
            vlf = system.encode(batch["image"], keys=[file_sha1(p) for p in batch["path"]])
            for i, cap in zip(idx, captioner.generate(vlf)):
                empty += not cap.strip()
                table.append({"image": rel[i], "caption": cap})
        write_json_atomic(out / CAPTIONS_META, {
            "reference": "blip2", "blip2_checkpoint": str(args.blip2_checkpoint), "images": str(root),
            "captioner": "BLIP-2's own: all N query tokens of the noiseless VLF through its language_projection "
                         "into OPT", "max_new_tokens": args.max_new_tokens, "num_beams": args.num_beams})
        man.update(new_captions=len(todo), empty_captions=empty)
    print(f"{len(todo)} new BLIP-2 captions ({len(ds)} images) -> {out / 'captions.csv'}"
          + (f"; {empty} empty" if empty else ""))
    return 0


if __name__ == "__main__":  # pragma: no cover
    p = argparse.ArgumentParser(prog=PROG)
    add_arguments(p)
    sys.exit(main(p.parse_args()))
