"""``semcom train-deepsc``: DeepSC trained on a caption corpus, its vocabulary built from that corpus only.

Example
-------
``semcom train-deepsc --corpus runs/train-captions/captions.csv --out runs/deepsc --steps 20000``

The VLF-MSC paper's text baseline sends each image's BLIP-2 caption through DeepSC (Xie et al., IEEE TSP
2021, :mod:`baselines.deepsc`). Trained here on the BLIP-2 captions of the *training* images (``semcom
blip2-captions``): the vocabulary is built from those sentences alone, so no evaluation caption reaches the
model (``vlf-msc-eval`` reports the share of the evaluation captions' words it covers, and refuses a model
below ``--deepsc-min-coverage``). Sentences are normalised as DeepSC's Europarl preprocessing and kept from 1
word (captions are short) to the model's ``max_len - 2`` words.

Writes ``OUT/model`` (the folder ``vlf-msc-eval --deepsc-checkpoint`` takes), ``OUT/trainer_state.pt``
(resumable: the same command continues where it stopped; other settings are refused), ``OUT/train.json``
(corpus, vocabulary size, losses) and ``OUT/manifest.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["add_arguments", "main"]

PROG = "semcom train-deepsc"
_SETTINGS = ("corpus", "steps", "batch_size", "lr", "snr_low", "snr_high", "channel", "equalizer", "seed", "deepsc_config",
             "max_sentences")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``semcom train-deepsc`` to ``parser`` (``semcom train-deepsc --help`` lists them).

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["--corpus", "caps.csv", "--out", "runs/deepsc"])
    >>> args.steps, args.snr_low, args.snr_high
    (20000, -5.0, 10.0)
    """
    parser.add_argument("--corpus", required=True,
                        help="training sentences: a CSV with a 'caption' column (e.g. blip2-captions' captions.csv) "
                             "or a text file, one sentence per line")
    parser.add_argument("--out", required=True, help="run folder (model in OUT/model)")
    parser.add_argument("--max-sentences", type=int, default=None, help="use only the first N sentences")
    parser.add_argument("--steps", type=int, default=20000, help="optimiser steps (default 20000)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default 1e-4, DeepSC's)")
    parser.add_argument("--snr-low", type=float, default=-5.0, help="training Es/N0 range low end [dB]")
    parser.add_argument("--snr-high", type=float, default=10.0, help="training Es/N0 range high end [dB]")
    parser.add_argument("--channel", default="awgn", help="phy.channel registry name (awgn, rayleigh, ...)")
    parser.add_argument("--equalizer", default="mmse", choices=("mmse", "zf", "identity"),
                        help="receiver in training (default mmse; identity: none, AWGN only)")
    parser.add_argument("--deepsc-config", default=None,
                        help="JSON object overriding DeepSCConfig fields, e.g. '{\"symbols_per_token\": 4}'")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-every", type=int, default=500)


def main(args: argparse.Namespace) -> int:
    """Run ``semcom train-deepsc`` with the parsed ``args`` (the options of :func:`add_arguments`); returns the exit
    status (0 on success, 2 for bad input, reported as one line).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from experiments.cli import main as semcom
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "caps.csv").write_text("image,caption\\na.png,a red circle\\nb.png,a blue square on grass\\n")
    >>> semcom(["train-deepsc", "--corpus", str(d / "caps.csv"), "--out", str(d / "run"), "--steps", "2",
    ...         "--batch-size", "2", "--device", "cpu",
    ...         "--deepsc-config", '{"d_model": 16, "num_heads": 2, "num_layers": 1, "d_ff": 32}'])
    DeepSC: 2 training sentences, vocabulary 11 (from the corpus only), 2 steps ... -> ...model
    0
    """
    import semantic  # noqa: F401
    from baselines.deepsc import DeepSC, DeepSCConfig, load_corpus, train
    from experiments.core.results import RunManifest, claim_result_settings, settings_of, write_json_atomic
    from phy.channel.registry import make_channel
    from semantic.checkpoints import resolve_device
    from semantic.vlf_msc import link_equalizer

    for name in ("steps", "batch_size", "checkpoint_every"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive int, got {getattr(args, name)}")
    if not args.snr_low <= args.snr_high:
        raise ValueError(f"--snr-low must not exceed --snr-high, got {args.snr_low} > {args.snr_high}")
    try:
        cfg = DeepSCConfig(**(json.loads(args.deepsc_config) if args.deepsc_config else {}))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--deepsc-config must be a JSON object of DeepSCConfig fields: {exc}") from None
    channel = make_channel(args.channel, seed=args.seed)
    equalizer = link_equalizer(args.equalizer, channel)
    sentences = load_corpus(args.corpus, min_words=1, max_words=cfg.max_len - 2, max_sentences=args.max_sentences)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    claim_result_settings(out, settings_of(args, _SETTINGS, paths=("corpus",)), ["trainer_state.pt", "model"],
                          record="train-deepsc.settings.json")
    device = resolve_device(args.device)
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        model = (DeepSC.from_pretrained(str(out / "model")) if (out / "model" / "config.json").is_file()
                 else DeepSC.from_corpus(sentences, cfg))
    with RunManifest(out, args=vars(args), seed=args.seed, command=PROG,
                     extra={"sentences": len(sentences), "vocabulary": len(model.vocab)}) as man:
        res = train(model, sentences, channel, snr_range=(args.snr_low, args.snr_high), steps=args.steps,
                    batch_size=args.batch_size, lr=args.lr, equalizer=equalizer, device=device, seed=args.seed,
                    checkpoint_dir=out, checkpoint_every=args.checkpoint_every)
        uses = model.channel_uses(sentences)
        info = {"corpus": str(Path(args.corpus).resolve()), "sentences": len(sentences),
                "vocabulary": len(model.vocab), "vocabulary_source": "the training corpus only",
                "steps": res.steps, "resumed_from": res.resumed_from, "final_loss": res.losses[-1] if res.losses else None,
                "mean_channel_uses": sum(uses) / len(uses)}
        write_json_atomic(out / "train.json", info)
        man.update(**{k: v for k, v in info.items() if k != "corpus"})
    print(f"DeepSC: {len(sentences)} training sentences, vocabulary {len(model.vocab)} (from the corpus only), "
          f"{res.steps} steps (resumed from {res.resumed_from}) -> {out / 'model'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    p = argparse.ArgumentParser(prog=PROG)
    add_arguments(p)
    sys.exit(main(p.parse_args()))
