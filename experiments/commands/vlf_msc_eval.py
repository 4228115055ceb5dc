"""``semcom vlf-msc-eval``: VLF-MSC against its baselines, semantic metrics vs SNR (the paper's experiment).

Example
-------
``semcom vlf-msc-eval --images data/val --snr-db=-5:10:2.5 --channel awgn
--blip2-checkpoint Salesforce/blip2-opt-6.7b --image-decoder runs/imgdec/checkpoint-0010000
--deepsc-checkpoint runs/deepsc/model --out runs/vlf_msc_eval``

Systems (``--systems``, default all)
------------------------------------
==================  ==========  ===================================================================
system              modality    what is sent
==================  ==========  ===================================================================
``vlf-msc``         text+image  the VLF (analog, ``N*d/2`` complex uses); caption *and* image are
                                decoded from the *same* received VLF
``ascii-hamming``   text        the BLIP-2 caption, 7-bit ASCII + Hamming(7,4) + 16-QAM
                                (:class:`baselines.ascii_hamming.AsciiHamming`)
``deepsc``          text        the BLIP-2 caption through DeepSC (:class:`baselines.deepsc.DeepSC`,
                                needs ``--deepsc-checkpoint``)
``img2img-sc``      image       SD latent (b-bit quantised) + BLIP-2 caption through the bit-true
                                digital chain (uncoded 16-QAM by default), SD img2img at the receiver
``img2img-sc-bsc``  image       the same with i.i.d. bit flips instead of the modem; which flips is
                                ``--img2img-bsc-mode``: ``bsc`` (default; b-bit latent, 7-bit ASCII,
                                closed-form uncoded BER at Es/N0 = SNR) or ``public-code`` (the public
                                Img2Img-SC code's channel: posterior-sampled latent as float64 bits,
                                8-bit characters, its 16-QAM Pb with the SNR taken as Eb/N0, outlier
                                repair; AWGN and 16-QAM only; channel uses = ceil(bits / 4), which the
                                public code does not count). See :mod:`baselines.img2img_sc`
==================  ==========  ===================================================================

With ``--img2img-bsc-mode public-code`` the ``img2img-sc-bsc`` points are plotted on this run's Es/N0
axis although their SNR value was used as Eb/N0 (the public code's convention): at the same axis
value that channel is 10 log10(4) = 6.02 dB more favourable than uncoded 16-QAM at that Es/N0.

The "BLIP-2 caption" given to the baselines is produced once per image from the *noiseless* VLF:
``--baseline-caption blip2`` (default) decodes it the BLIP-2 way (all ``N`` query tokens through
BLIP-2's own ``language_projection``, kept also when ``--text-projection`` gives VLF-MSC a fine-tuned
``W_proj``); ``--baseline-caption vlf-msc`` uses VLF-MSC's text decoder.
The captions are cached in ``OUT/baseline_captions.csv``. Every image is encoded by BLIP-2 once
(:meth:`semantic.vlf_msc.VLFMSC.encode`, cached on disk in ``--vlf-cache``) for all SNR points.
One channel object (``--channel``, seeded with ``--seed``) is shared by all systems; each
(system, SNR value, batch) restarts its stream with a fixed seed, so a resumed run reproduces the same rows
(``--batch-size`` is one of the recorded settings: a resume with another batch size is refused).

Metrics
-------
* Text reference (``--reference``): ``blip2`` (default) is the clean-channel BLIP-2 caption of each
  image (the caption above, ``baseline_captions.csv`` mode ``blip2``): the paper's "original text", which
  VLF-MSC reproduces word for word at high SNR and which the text baselines transmit. ``csv`` scores
  against the ``--captions`` CSV instead; with the Open Images recipe those are Localized Narratives
  paragraphs, against which even a perfect BLIP-2-style caption scores BLEU-1 ~0.015 (1.000 against
  the BLIP-2 reference). ``metrics.csv`` records which in its ``reference`` column.
* Text (vs the reference): BLEU-1, BLEU-4 (sacrebleu sentence BLEU,
  reported on a 0-1 scale) and BERTScore F1 (``--bertscore-model``, default ``roberta-large`` layer 17).
  Hypotheses and references are both normalised with DeepSC's :func:`baselines.deepsc.preprocess_sentence`
  (lower case, punctuation split) so that no system is scored on casing (``--raw-text`` to disable).
* Image: LPIPS (AlexNet, vs the input image at ``--image-size``), CLIP score (generated image vs the
  reference caption; ``--clip-model``/``--clip-pretrained``), and PSNR, SSIM, MS-SSIM vs the input image
  (torchmetrics, :func:`semantic.metrics.image_quality`; MS-SSIM needs sides of >= 161 px and is left
  empty below, the manifest says so).
* Equaliser: VLF-MSC's analog VLF uses ``--equalizer`` (default ``mmse``: ZF's received-VLF NMSE on
  per-symbol Rayleigh is 16 at 0 dB; ``identity``, AWGN only, hands the decoders ``y`` as received: the
  paper's AWGN receiver, where MMSE would scale it by ``1 / (1 + N0)``), DeepSC ``--deepsc-equalizer``
  (default ``mmse``), the digital baselines ZF (what their demapper needs); ``metrics.csv`` records each
  row's in ``equalizer``.

Outputs (``--out``)
-------------------
* ``metrics.csv``: one row per (system, channel, SNR): ``system, modality, channel, snr_db, channel_uses,
  bleu1, bleu4, bertscore_f1, lpips, clip_score`` (empty where not applicable; ``channel_uses`` is the
  mean complex channel uses per image), then ``n_items`` and the 95 % CI bounds ``<metric>_ci_low``,
  ``<metric>_ci_high``, ``channel_uses_min``/``channel_uses_max``, ``equalizer`` and ``reference``
  (metrics: ``bleu1, bleu4, bertscore_f1, lpips, clip_score, psnr, ssim, ms_ssim``).
* ``items.csv``: one row per (system, SNR, image): the received caption (text systems and Img2Img-SC's
  prompt), the generated image file, the channel uses and per-item metrics.
* ``fig_text.png`` (BLEU-1, BLEU-4, BERTScore F1 vs SNR), ``fig_image.png`` (LPIPS, CLIP score vs SNR) and
  ``fig_image_quality.png`` (PSNR, SSIM, MS-SSIM),
  assembled from the single-metric plots ``fig_<metric>.png`` drawn by :mod:`experiments.core.plots`; the
  x axis is "Es/N0 per complex channel use [dB]".
* ``grid.png`` (VLF-MSC: input + one column per SNR, generated image with its caption) and
  ``grid_img2img-sc.png`` / ``grid_img2img-sc-bsc.png`` (Img2Img-SC images with the received prompt),
  drawn by :func:`experiments.commands.vlf_msc.write_grid`.
* ``images/<system>/snr_<snr>dB/<name>.png``; ``manifest.json`` (arguments, ledger, metric models, versions).

Resuming: ``metrics.csv`` is written one (system, SNR) row at a time (after that point's items);
a rerun skips finished rows and loads no model when nothing is left to compute. New SNR points or
systems may be added to a folder; other models or settings may not (``settings.json`` records them
and a mismatch exits with status 2).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional

from experiments.core.args import positive_int_arg
from experiments.vlf_msc_eval.budget import EvalRefused
from experiments.vlf_msc_eval.loop import evaluate_points
from experiments.vlf_msc_eval.outputs import _previous_outputs, items_table, metrics_table, write_figures, write_grids
from experiments.vlf_msc_eval.systems import SYSTEMS

__all__ = ["add_arguments", "main"]

#: The text references ``--reference`` may name.
REFERENCES = ("blip2", "csv")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``semcom vlf-msc-eval`` to ``parser`` (``semcom vlf-msc-eval --help`` lists them).

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["--images", "data/val", "--out", "runs/eval"])
    >>> (args.images, args.reference)
    ('data/val', 'blip2')
    """
    g = parser.add_argument_group("data")
    g.add_argument("--images", required=True, help="folder of input images")
    g.add_argument("--captions", default=None,
                   help="CSV with columns image,caption[,label]: the dataset's captions (the text reference and the "
                        "CLIP-score caption with --reference csv; required then)")
    g.add_argument("--reference", default="blip2", choices=REFERENCES,
                   help="text reference of BLEU/BERTScore and caption of the CLIP score: 'blip2' (default; the clean-"
                        "channel BLIP-2 caption of each image, the paper's 'original text', computed once and cached "
                        "in OUT/baseline_captions.csv) or 'csv' (the --captions CSV, e.g. Localized Narratives)")
    g.add_argument("--max-images", type=positive_int_arg, default=None, help="use only the first N images")
    g.add_argument("--image-size", type=positive_int_arg, default=256,
                   help="input resize/centre-crop side and generated image side in pixels (default 256)")
    g = parser.add_argument_group("channel")
    g.add_argument("--channel", default="awgn", choices=("awgn", "rayleigh"),
                   help="channel model shared by all systems (default awgn; Rayleigh: per-symbol)")
    g.add_argument("--equalizer", default="mmse", choices=("mmse", "zf", "identity"),
                   help="receiver of VLF-MSC's analog VLF (default mmse, as DeepSC's --deepsc-equalizer; identity: no "
                        "equaliser, the paper's AWGN receiver, AWGN only; the digital baselines always use ZF, the "
                        "unbiased estimate their demapper needs)")
    g.add_argument("--snr-db", default="-5:10:2.5",
                   help="Es/N0 per complex channel use in dB: start:stop:step (inclusive) or a comma list "
                        "(default -5:10:2.5); write negative starts as --snr-db=-5:10:2.5")
    g.add_argument("--seed", type=int, default=0, help="channel and diffusion seed (default 0)")
    g.add_argument("--systems", default=",".join(SYSTEMS),
                   help=f"comma list of systems to run (default all: {','.join(SYSTEMS)})")
    g = parser.add_argument_group("VLF-MSC models")
    g.add_argument("--blip2-checkpoint", "--checkpoint", dest="blip2_checkpoint", default="Salesforce/blip2-opt-6.7b",
                   help="BLIP-2 hub id or folder (default Salesforce/blip2-opt-6.7b)")
    g.add_argument("--sd-checkpoint", default="stable-diffusion-v1-5/stable-diffusion-v1-5",
                   help="Stable Diffusion 1.5 hub id or folder (VLF-MSC and Img2Img-SC)")
    g.add_argument("--image-decoder", default=None, help="trained VLF-MSC image-decoder folder (projection/ [+ unet/])")
    g.add_argument("--text-projection", default=None, help="fine-tuned VLF-MSC W_proj folder (default: BLIP-2's)")
    g.add_argument("--text-mode", default="pooled", choices=("pooled", "blip2"), help="VLF-MSC text decoder mode")
    g.add_argument("--baseline-caption", default="blip2", choices=("blip2", "vlf-msc"),
                   help="caption given to the baselines: BLIP-2's native captioning of the noiseless VLF (default; "
                        "BLIP-2's own language projection, also with --text-projection) or VLF-MSC's text decoder "
                        "on the noiseless VLF")
    g.add_argument("--steps", type=positive_int_arg, default=50, help="VLF-MSC DDIM steps (default 50)")
    g.add_argument("--guidance-scale", type=float, default=1.0, help="VLF-MSC classifier-free guidance (default 1)")
    g.add_argument("--max-new-tokens", type=positive_int_arg, default=30)
    g.add_argument("--num-beams", type=positive_int_arg, default=1)
    g = parser.add_argument_group("baselines")
    g.add_argument("--deepsc-checkpoint", default=None, help="trained DeepSC folder (save_pretrained layout)")
    g.add_argument("--deepsc-equalizer", default="mmse", choices=("mmse", "zf", "identity"),
                   help="DeepSC's receiver (default mmse; identity: no equaliser, AWGN only)")
    g.add_argument("--deepsc-min-coverage", type=float, default=0.9,
                   help="refuse a DeepSC checkpoint whose vocabulary covers less than this share of the baselines' "
                        "caption tokens (default 0.9; words outside it become <unk>); 0 disables the check")
    g.add_argument("--ascii-code", default="hamming74", help="code of the ASCII baseline (default hamming74)")
    g.add_argument("--ascii-modulation", default="16qam", help="modulation of the ASCII baseline (default 16qam)")
    g.add_argument("--img2img-steps", type=positive_int_arg, default=50, help="Img2Img-SC DDIM steps (default 50)")
    g.add_argument("--img2img-strength", type=float, default=0.6, help="Img2Img-SC strength (default 0.6)")
    g.add_argument("--img2img-guidance", type=float, default=9.0, help="Img2Img-SC guidance scale (default 9)")
    g.add_argument("--img2img-bits", type=positive_int_arg, default=8, help="latent quantiser bits (default 8)")
    g.add_argument("--budget", default="paper", choices=("paper", "matched"),
                   help="channel uses of the baselines: 'paper' (default; the paper's protocol, unmatched: Img2Img-SC "
                        "~8.3k, text 80-160 vs VLF-MSC's 12288 at 256 px) or 'matched' (Img2Img-SC's latent gets the "
                        "finest quantisation whose every image fits VLF-MSC's channel uses, replacing --img2img-bits; "
                        "ASCII sends every Hamming codeword r times and DeepSC every channel symbol r times, r the "
                        "largest repetition whose longest caption fits, the copies soft-combined; r and the uses "
                        "spent are in metrics.csv and the manifest)")
    g.add_argument("--img2img-code", default="none", help="code of bit-true Img2Img-SC (default none)")
    g.add_argument("--img2img-modulation", default="16qam", help="Img2Img-SC modulation (default 16qam)")
    g.add_argument("--img2img-bsc-mode", default="bsc", choices=("bsc", "public-code"),
                   help="channel of the img2img-sc-bsc system: 'bsc' (default: quantised latent, closed-form "
                        "uncoded BER at Es/N0) or 'public-code' (the public Img2Img-SC code's channel: float64 "
                        "latent bits, 8-bit ASCII, SNR taken as Eb/N0, outlier repair; AWGN and 16qam only)")
    g = parser.add_argument_group("metric models")
    g.add_argument("--bertscore-model", default="roberta-large",
                   help="BERTScore model: hub id in the local cache (default roberta-large) or a local folder")
    g.add_argument("--bertscore-layers", type=int, default=None,
                   help="BERTScore layer (required for a local folder; roberta-large: 17)")
    g.add_argument("--lpips-backbone", default=None, help="AlexNet weights file for LPIPS (default: torch hub cache)")
    g.add_argument("--allow-random-lpips", action="store_true",
                   help="TESTS ONLY: use a random LPIPS backbone when the AlexNet weights are missing")
    g.add_argument("--clip-model", default="ViT-B-32", help="open_clip architecture for the CLIP score")
    g.add_argument("--clip-pretrained", default="openai",
                   help="CLIP-score weights: an open_clip tag in the local cache, a file or a folder")
    g.add_argument("--clip-model-config", default=None,
                   help="JSON file with an open_clip model config (builds a custom CLIP; --clip-pretrained is "
                        "then its weights file)")
    g = parser.add_argument_group("runtime")
    g.add_argument("--device", default=None, help="torch device: auto (default: cuda if available, else cpu), cpu, cuda, cuda:1 ...")
    g.add_argument("--dtype", default="auto", help="auto (fp16 on CUDA) | float32 | float16 | bfloat16")
    g.add_argument("--device-map", default=None, help="transformers device_map for BLIP-2")
    g.add_argument("--allow-download", action="store_true", help="download missing checkpoints (online machines)")
    g.add_argument("--batch-size", type=positive_int_arg, default=4)
    g = parser.add_argument_group("output")
    g.add_argument("--out", required=True, help="output folder")
    g.add_argument("--vlf-cache", default=None, help="VLF cache folder (default OUT/vlf_cache; 'none' to disable)")
    g.add_argument("--grid-rows", type=positive_int_arg, default=6, help="input images in the grids (default 6)")
    g.add_argument("--raw-text", action="store_true", help="score text without DeepSC's normalisation")


_SETTINGS = ("images", "captions", "max_images", "image_size", "seed", "batch_size", "blip2_checkpoint", "sd_checkpoint",
             "image_decoder", "text_projection", "text_mode", "baseline_caption", "steps", "guidance_scale",
             "max_new_tokens", "num_beams", "deepsc_checkpoint", "deepsc_equalizer", "ascii_code", "ascii_modulation",
             "img2img_steps", "img2img_strength", "img2img_guidance", "img2img_bits", "img2img_code",
             "img2img_modulation", "img2img_bsc_mode", "bertscore_model", "bertscore_layers", "lpips_backbone",
             "allow_random_lpips", "clip_model", "clip_pretrained", "clip_model_config", "raw_text", "equalizer",
             "reference", "budget", "dtype")
# settings added later: the value a folder written before them was run with
_SETTINGS_BEFORE = {"img2img_bsc_mode": "bsc", "equalizer": "zf", "reference": "csv", "budget": "paper"}


def _check_settings(out: Path, args) -> Optional[str]:
    """Refuse to resume into a folder written with other models/settings (``OUT/settings.json``, via
    :func:`experiments.core.results.claim_result_settings`: rows without a readable record are refused too).

    Returns an error text, or None (the settings are recorded before the first row). The channel, the
    SNR points and the systems are row keys and may change between runs.
    """
    from experiments.core.results import claim_result_settings, settings_of

    try:
        claim_result_settings(out, settings_of(args, _SETTINGS), ["metrics.csv", "items.csv"], record="settings.json",
                              added_later=_SETTINGS_BEFORE)
    except ValueError as exc:
        return str(exc)
    return None


def main(args: argparse.Namespace) -> int:
    """Run ``semcom vlf-msc-eval`` with the parsed ``args`` (the options of :func:`add_arguments`); returns
    the exit status (0 on success, 2 for bad input, reported as one line).

    Examples
    --------
    Not run by the test-suite: it needs the BLIP-2 and Stable Diffusion weights; ``tests/test_vlf_msc_eval.py`` runs it on tiny random stand-ins.

    >>> from experiments.cli import main as semcom
    >>> semcom(["vlf-msc-eval"] + ["--images", "data/val", "--out", "runs/eval"])                                # doctest: +SKIP
    0
    """
    import semantic  # noqa: F401  (torchvision shim first)

    from experiments.core.args import parse_name_list, parse_snr_list
    from experiments.core.results import RunManifest, format_value
    from semantic.images import ImageCaptionDataset

    prog = "semcom vlf-msc-eval"
    try:
        snrs = parse_snr_list(args.snr_db)
        systems = parse_name_list(args.systems, SYSTEMS, "systems")
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    systems = [s for s in SYSTEMS if s in systems]  # canonical order
    if "deepsc" in systems and not args.deepsc_checkpoint:
        print(f"{prog}: system 'deepsc' needs --deepsc-checkpoint DIR (a trained DeepSC folder, e.g. from "
              "baselines.deepsc.train); or leave deepsc out of --systems", file=sys.stderr)
        return 2
    if not 0.0 <= args.deepsc_min_coverage <= 1.0:
        print(f"{prog}: --deepsc-min-coverage must be in [0, 1], got {args.deepsc_min_coverage}", file=sys.stderr)
        return 2
    if args.budget == "matched" and "img2img-sc-bsc" in systems and args.img2img_bsc_mode == "public-code":
        print(f"{prog}: --budget matched changes the latent quantisation, which the public code's channel "
              "(float64 latent bits) does not have; drop img2img-sc-bsc or use --img2img-bsc-mode bsc", file=sys.stderr)
        return 2
    if not 0.0 < args.img2img_strength <= 1.0:
        print(f"{prog}: --img2img-strength must be in (0, 1], got {args.img2img_strength}", file=sys.stderr)
        return 2
    if "img2img-sc-bsc" in systems and args.img2img_bsc_mode == "public-code" and (
            args.channel != "awgn" or args.img2img_modulation.lower().replace("-", "").replace("_", "") != "16qam"):
        print(f"{prog}: --img2img-bsc-mode public-code is the public code's AWGN 16-QAM formula; it needs "
              f"--channel awgn and --img2img-modulation 16qam, got {args.channel!r} and "
              f"{args.img2img_modulation!r}", file=sys.stderr)
        return 2
    if args.reference == "csv" and not args.captions:
        print(f"{prog}: --reference csv scores text against the --captions CSV; pass --captions FILE or use "
              "--reference blip2", file=sys.stderr)
        return 2
    ds = ImageCaptionDataset(args.images, args.captions, size=args.image_size, limit=args.max_images, unique=True)
    missing = [it["path"] for it in ds.items if not it["caption"]]
    if missing and args.reference == "csv":
        print(f"{prog}: the captions CSV gives no caption for {len(missing)} image(s), e.g. {missing[0]!r}; with "
              "--reference csv every image needs one", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    problem = _check_settings(out, args)
    if problem:
        print(f"{prog}: {problem}", file=sys.stderr)
        return 2
    try:  # a folder from before the equalizer/reference/image-quality columns has another header: named, refused
        table = metrics_table(out)
        items = items_table(out)
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    done = table.finished_keys()
    done_items = items.finished_keys()
    todo = [(si, snr, s) for si, snr in enumerate(snrs) for s in systems
            if (s, args.channel, format_value(float(snr))) not in done]
    n = len(ds)
    batches = [list(range(i, min(i + args.batch_size, n))) for i in range(0, n, args.batch_size)]
    written = 0
    try:  # a refused input (EvalRefused) is recorded as failed in the manifest and exits with status 2
        with RunManifest(out, args=vars(args), seed=args.seed, command=prog,
                         extra={"snr_db": snrs, "systems": systems, "num_images": n,
                                "snr_convention": "Es/N0 per complex channel use"}) as manifest:
            if todo:
                written, extra = evaluate_points(args, ds, snrs, systems, todo, batches, out, table, items,
                                                 done_items)
                manifest.update(**extra)
            manifest.update(rows_written=written, rows_resumed=len(snrs) * len(systems) - len(todo))
            prev = _previous_outputs(out)
            if written or not prev or not all(os.path.isfile(p) for p in prev.values()):
                rows = [r for r in table.rows() if r["channel"] == args.channel]
                figs = write_figures(rows, out)
                grids = write_grids([r for r in items.rows() if r["channel"] == args.channel], snrs, out,
                                    args.grid_rows, args.image_size)
                _previous_outputs(out, {**{f"fig_{k}": v for k, v in figs.items()},
                                        **{f"grid_{k}": v for k, v in grids.items()}})
            else:  # nothing new: the figures and grids on disk are up to date
                figs = {k[4:]: v for k, v in prev.items() if k.startswith("fig_")}
                grids = {k[5:]: v for k, v in prev.items() if k.startswith("grid_")}
            manifest.update(figures=figs, grids=grids)
    except EvalRefused as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out / 'metrics.csv'} ({written} new rows of {len(snrs) * len(systems)}), "
          f"{len(figs)} figure(s), {len(grids)} grid(s)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    p = argparse.ArgumentParser(prog="semcom vlf-msc-eval")
    add_arguments(p)
    sys.exit(main(p.parse_args()))
