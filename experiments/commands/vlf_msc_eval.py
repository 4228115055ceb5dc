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
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from experiments.core.args import positive_int_arg

__all__ = ["SYSTEMS", "MODALITY", "METRICS", "METRIC_COLUMNS", "ITEM_COLUMNS", "add_arguments", "main",
           "EvalRefused",
           "metrics_table", "write_figures", "write_grids"]

#: The systems ``--systems`` may name.
SYSTEMS = ("vlf-msc", "ascii-hamming", "deepsc", "img2img-sc", "img2img-sc-bsc")
#: What each system transmits: text, image, or both.
MODALITY = {"vlf-msc": "text+image", "ascii-hamming": "text", "deepsc": "text", "img2img-sc": "image",
            "img2img-sc-bsc": "image"}
LABELS = {"vlf-msc": "VLF-MSC", "ascii-hamming": "ASCII + Hamming(7,4) + 16-QAM", "deepsc": "DeepSC",
          "img2img-sc": "Img2Img-SC (bit-true)", "img2img-sc-bsc": "Img2Img-SC (BSC shortcut)"}
TEXT_METRICS = ("bleu1", "bleu4", "bertscore_f1")
IMAGE_METRICS = ("lpips", "clip_score", "psnr", "ssim", "ms_ssim")
REFERENCES = ("blip2", "csv")
#: Every metric column: the text metrics, then the image metrics.
METRICS = TEXT_METRICS + IMAGE_METRICS
_KEYS = ("system", "channel", "snr_db")
#: Columns of ``metrics.csv``: keys, the metrics, their 95 % intervals and the run's settings.
METRIC_COLUMNS = (("system", "modality", "channel", "snr_db", "channel_uses") + METRICS + ("n_items",)
                  + tuple(f"{m}_{b}" for m in METRICS for b in ("ci_low", "ci_high"))
                  + ("channel_uses_min", "channel_uses_max", "equalizer", "reference", "budget", "repetition"))
_ITEM_KEYS = ("system", "channel", "snr_db", "image")
#: Columns of ``items.csv``: one row per (system, channel, SNR, item).
ITEM_COLUMNS = _ITEM_KEYS + ("name", "reference", "sent_caption", "caption", "image_file", "channel_uses") + METRICS
_AXIS = {"bleu1": "BLEU-1 (0-1)", "bleu4": "BLEU-4 (0-1)", "bertscore_f1": "BERTScore F1",
         "lpips": "LPIPS (AlexNet; lower is better)", "clip_score": "CLIP score (100 x cosine)",
         "psnr": "PSNR [dB]", "ssim": "SSIM", "ms_ssim": "MS-SSIM"}


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


# ------------------------------------------------------------------------------------------------
# Tables, figures, grids (work from the CSVs alone)
# ------------------------------------------------------------------------------------------------
def metrics_table(out: Path):
    """The resumable ``out/metrics.csv`` (:class:`phy.sim.resultstore.ResumableCSV`, columns :data:`METRIC_COLUMNS`),
    one row per (system, channel, SNR).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> table = metrics_table(Path(tempfile.mkdtemp()))
    >>> table.key_columns, len(table)
    (('system', 'channel', 'snr_db'), 0)
    """
    from experiments.core.results import ResumableCSV

    return ResumableCSV(out / "metrics.csv", METRIC_COLUMNS, _KEYS)


def items_table(out: Path):
    from experiments.core.results import ResumableCSV

    return ResumableCSV(out / "items.csv", ITEM_COLUMNS, _ITEM_KEYS)


def _num(v) -> float:
    try:
        return float(v) if v not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _compose(paths: Sequence[str], path: Path) -> str:
    """Paste single-metric PNGs side by side into one figure (a multi-panel figure of the paper)."""
    from PIL import Image

    ims = [Image.open(p).convert("RGB") for p in paths]
    h = max(im.height for im in ims)
    canvas = Image.new("RGB", (sum(im.width for im in ims), h), "white")
    x = 0
    for im in ims:
        canvas.paste(im, (x, 0))
        x += im.width
    tmp = path.with_name(path.stem + f".tmp.{os.getpid()}.png")
    canvas.save(tmp)
    os.replace(tmp, path)
    return str(path)


def write_figures(rows: Sequence[Dict[str, str]], out: Path) -> Dict[str, str]:
    """``fig_<metric>.png`` for every metric with data, and ``fig_text.png`` / ``fig_image.png``.

    Examples
    --------
    >>> import os, tempfile
    >>> from pathlib import Path
    >>> rows = []
    >>> for snr, b in ((0.0, "0.2"), (10.0, "0.5")):
    ...     row = dict.fromkeys(METRIC_COLUMNS, "")
    ...     row.update(system="vlf-msc", modality="text+image", channel="awgn", snr_db=str(snr), bleu1=b,
    ...                bleu1_ci_low=b, bleu1_ci_high=b)
    ...     rows.append(row)
    >>> figs = write_figures(rows, Path(tempfile.mkdtemp()))
    >>> sorted(figs), all(os.path.isfile(p) for p in figs.values())
    (['bleu1', 'text'], True)
    """
    from experiments.core.plots import plot_metric_vs_snr

    written: Dict[str, str] = {}
    for metric in METRICS:
        series, errors = {}, {}
        for system in SYSTEMS:
            pts = sorted((_num(r["snr_db"]), _num(r[metric]), _num(r[f"{metric}_ci_high"]))
                         for r in rows if r["system"] == system)
            pts = [p for p in pts if math.isfinite(p[1])]
            if not pts:
                continue
            label = LABELS[system]
            series[label] = ([p[0] for p in pts], [p[1] for p in pts])
            errors[label] = [p[2] - p[1] if math.isfinite(p[2]) else 0.0 for p in pts]
        if not series:
            continue
        written[metric] = plot_metric_vs_snr(series, out / f"fig_{metric}.png", snr_type="esno",
                                             ylabel=_AXIS[metric], errors=errors,
                                             title=f"{_AXIS[metric].split(' (')[0]} vs SNR (95% CI)")
    for name, group in (("text", TEXT_METRICS), ("image", ("lpips", "clip_score")),
                        ("image_quality", ("psnr", "ssim", "ms_ssim"))):
        parts = [written[m] for m in group if m in written]
        if parts:
            written[name] = _compose(parts, out / f"fig_{name}.png")
    return written


def write_grids(item_rows: Sequence[Dict[str, str]], snrs: Sequence[float], out: Path, max_rows: int,
                input_size: int) -> Dict[str, str]:
    """``grid.png`` (VLF-MSC) and ``grid_<system>.png`` for the Img2Img-SC variants, via VLF-MSC's grid.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> write_grids([], [0.0], Path(tempfile.mkdtemp()), max_rows=4, input_size=64)      # no items: no grid
    {}
    """
    from experiments.commands.vlf_msc import write_grid

    grids: Dict[str, str] = {}
    for system in ("vlf-msc", "img2img-sc", "img2img-sc-bsc"):
        rows = [r for r in item_rows if r["system"] == system and r["image_file"]]
        if not rows:
            continue
        path = out / ("grid.png" if system == "vlf-msc" else f"grid_{system}.png")
        g = write_grid(rows, snrs, str(out), str(path), max_rows, input_size)
        if g:
            grids[system] = g
    return grids


# ------------------------------------------------------------------------------------------------
# Metrics
# ------------------------------------------------------------------------------------------------
class _Scorers:
    """Metric models, loaded on first use."""

    def __init__(self, args, device: str):
        self.args = args
        self.device = device
        self._bs = self._lp = self._cs = None
        self.skipped: Dict[str, str] = {}

    def _norm(self, texts: Sequence[str]) -> List[str]:
        if self.args.raw_text:
            return list(texts)
        from baselines.deepsc import preprocess_sentence

        return [preprocess_sentence(t) for t in texts]

    def text(self, hyps: Sequence[str], refs: Sequence[str]):
        from semantic.metrics import BERTScore, bleu

        h, r = self._norm(hyps), self._norm(refs)
        res = bleu(h, r, orders=(1, 4))
        if self._bs is None:
            self._bs = BERTScore(self.args.bertscore_model, num_layers=self.args.bertscore_layers,
                                 device=self.device, allow_download=self.args.allow_download)
        # an empty candidate scores 0 (bert-score's own convention; its empty-string path fails with
        # transformers 5, so empty candidates are not passed to it)
        keep = [i for i, t in enumerate(h) if t.strip()]
        f1 = [0.0] * len(h)
        if keep:
            vals = self._bs([h[i] for i in keep], [r[i] for i in keep])["f1"].values
            for i, v in zip(keep, vals):
                f1[i] = float(v)
        return {"bleu1": [v / 100.0 for v in res["bleu1"].values],
                "bleu4": [v / 100.0 for v in res["bleu4"].values], "bertscore_f1": f1}

    def image(self, images, references, captions: Sequence[str]):
        import torch

        from semantic.metrics import IMAGE_QUALITY_METRICS, LPIPS, MS_SSIM_MIN_SIDE, ClipScore, image_quality

        if self._lp is None:
            self._lp = LPIPS(device=self.device, backbone_path=self.args.lpips_backbone,
                             allow_random_backbone=self.args.allow_random_lpips)
        if self._cs is None:
            cfg = None
            if self.args.clip_model_config:
                cfg = json.loads(Path(self.args.clip_model_config).read_text())
            pre = self.args.clip_pretrained
            pre = None if (cfg is not None and str(pre).lower() == "none") else pre
            self._cs = ClipScore(self.args.clip_model, pre, model_cfg=cfg, device=self.device)
        if tuple(images.shape[-2:]) != tuple(references.shape[-2:]):  # explicit: LPIPS at the input size
            images = torch.nn.functional.interpolate(images, size=tuple(references.shape[-2:]), mode="bicubic",
                                                     align_corners=False, antialias=True).clamp(0, 1)
        lp = self._lp(images.float().cpu(), references.float().cpu())
        cs = self._cs(images.float().cpu(), list(captions))
        out = {"lpips": list(lp.values), "clip_score": list(cs.values)}
        qual = [m for m in IMAGE_QUALITY_METRICS if m != "ms_ssim" or min(images.shape[-2:]) >= MS_SSIM_MIN_SIDE]
        self.skipped = {} if "ms_ssim" in qual else {
            "ms_ssim": f"not computed: images of {tuple(images.shape[-2:])} px, MS-SSIM needs sides >= "
                       f"{MS_SSIM_MIN_SIDE} px"}
        out.update({m: list(r.values) for m, r in image_quality(images.float().cpu(), references.float().cpu(),
                                                                  qual).items()})
        return out

    def details(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {}
        if self._bs is not None:
            d["bertscore"] = self._bs.details
        if self._lp is not None:
            d["lpips"] = self._lp.details
        if self._cs is not None:
            d["clip_score"] = self._cs.details
            d["psnr_ssim_ms_ssim"] = {"library": "torchmetrics", "data_range": 1.0, "vs": "the input image",
                                      **self.skipped}
        return d


def _summary_row(system: str, channel: str, snr: float, uses: Sequence[int],
                 per_item: Dict[str, List[float]], equalizer: str = "", reference: str = "", budget: str = "",
                 repetition: int = 1) -> Dict[str, Any]:
    from semantic.metrics import summarize

    row: Dict[str, Any] = {"system": system, "modality": MODALITY[system], "channel": channel, "snr_db": snr,
                           "channel_uses": sum(uses) / len(uses), "n_items": len(uses),
                           "channel_uses_min": min(uses), "channel_uses_max": max(uses), "equalizer": equalizer,
                           "reference": reference, "budget": budget, "repetition": repetition}
    for m in METRICS:
        if m in per_item:
            s = summarize(per_item[m], m)
            row[m], row[f"{m}_ci_low"], row[f"{m}_ci_high"] = s.mean, s.ci_low, s.ci_high
        else:
            row[m] = row[f"{m}_ci_low"] = row[f"{m}_ci_high"] = None
    return row


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------
def _save_png(img, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    arr = (img.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype("uint8")
    tmp = path.with_name(path.stem + f".tmp.{os.getpid()}.png")
    Image.fromarray(arr).save(tmp)
    os.replace(tmp, path)


def matched_latent_bits(max_uses: Callable[[int], int], target: int, max_bits: int = 16) -> Optional[int]:
    """The largest latent quantiser resolution ``b`` in ``1..max_bits`` whose most expensive image costs at
    most ``target`` channel uses (``max_uses(b)``, non-decreasing in ``b``); None if not even 1 bit fits.

    Example
    -------
    >>> matched_latent_bits(lambda b: 1024 * b + 40, 12288)  # 11 bits: 11304 uses; 12 bits: 12328
    11
    """
    best = None
    for b in range(1, int(max_bits) + 1):
        if max_uses(b) > target:
            break
        best = b
    return best


def matched_repetition(max_uses: Callable[[int], int], target: int) -> Optional[int]:
    """The largest repetition factor ``r >= 1`` whose most expensive item costs at most ``target`` channel uses
    (``max_uses(r)``, non-decreasing in ``r`` and at most ``r * max_uses(1)``, as for a frame sent ``r`` times);
    None if not even one copy fits; 1 if nothing is sent at all.

    Example
    -------
    >>> matched_repetition(lambda r: -(-r * 357 // 4), 12288)  # ceil(r * 357 / 4): 137 -> 12228, 138 -> 12317
    137
    """
    one = max_uses(1)
    if one > target:
        return None
    if one <= 0:  # nothing is sent (every caption empty): repeating it changes nothing
        return 1
    r = max(1, int(target) // max(1, one))  # max_uses(r) <= r * max_uses(1) <= target
    while max_uses(r) > target and r > 1:   # guards a ledger that is not sub-linear
        r -= 1
    while max_uses(r + 1) <= target:
        r += 1
    return r


class EvalRefused(ValueError):
    """An input that would make a system's numbers meaningless (the message says which and why).

    Examples
    --------
    >>> issubclass(EvalRefused, ValueError)
    True
    """


def _deepsc_sentence(caption: str, max_words: int) -> str:
    """The words DeepSC sends for ``caption``: normalised, tokenised, cut to the model's ``max_words``."""
    from baselines.deepsc import preprocess_sentence, tokenize

    return " ".join(tokenize(preprocess_sentence(caption))[:max_words])


def _equalizer_of(system: str, args) -> str:
    """The receiver equaliser of ``system`` (recorded in ``metrics.csv``): VLF-MSC's ``--equalizer``,
    DeepSC's ``--deepsc-equalizer``, ZF for the digital baselines (the demapper's unbiased estimate)."""
    return {"vlf-msc": args.equalizer, "deepsc": args.deepsc_equalizer}.get(system, "zf")


def _vlf_config(args, systems: Sequence[str]):
    from semantic.vlf_msc import VLFMSCConfig

    cache = args.vlf_cache if args.vlf_cache is not None else os.path.join(args.out, "vlf_cache")
    if isinstance(cache, str) and cache.lower() == "none":
        cache = None
    return VLFMSCConfig(
        blip2_checkpoint=args.blip2_checkpoint, sd_checkpoint=args.sd_checkpoint, image_decoder=args.image_decoder,
        text_projection=args.text_projection, text_mode=args.text_mode, channel=args.channel,
        equalizer=args.equalizer, channel_seed=args.seed,
        device=args.device, dtype=args.dtype, device_map=args.device_map, decode_text=True,
        decode_images="vlf-msc" in systems, num_inference_steps=args.steps, guidance_scale=args.guidance_scale,
        image_size=args.image_size, seed=args.seed, max_new_tokens=args.max_new_tokens, num_beams=args.num_beams,
        vlf_cache_dir=cache, allow_download=True if args.allow_download else None)


def _baseline_captioner(system, mode: str):
    """The decoder that writes a caption from the noiseless VLF: ``"blip2"`` BLIP-2's native captioning (its
    own ``language_projection``, whatever ``--text-projection`` is), ``"vlf-msc"`` VLF-MSC's text decoder."""
    return system.text_decoder if mode == "vlf-msc" else system.blip2_captioner()


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


def _previous_outputs(out: Path, outputs: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Read (or, with ``outputs``, write) ``OUT/outputs.json``: the figures and grids last drawn."""
    from experiments.core.results import write_json_atomic

    path = out / "outputs.json"
    if outputs is not None:
        write_json_atomic(path, outputs)
        return outputs
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


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
                written, extra = _run(args, ds, snrs, systems, todo, batches, out, table, items, done_items)
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


def _run(args, ds, snrs, systems, todo, batches, out: Path, table, items, done_items) -> Tuple[int, dict]:
    import torch

    from experiments.core.results import format_value, open_table
    from experiments.commands.vlf_msc import snr_dirname
    from phy.channel.registry import make_channel
    from phy.sim.points import point_seed
    from semantic.checkpoints import resolve_device
    from semantic.images import collate_images, file_sha1
    from semantic.vlf_msc import VLFMSC, link_equalizer

    channel = make_channel(args.channel, seed=args.seed)  # ONE channel object for every system
    device = resolve_device(args.device)
    need = {s for _, _, s in todo}
    system = VLFMSC.from_config(_vlf_config(args, sorted(need)), channel=channel)  # SD only if VLF-MSC runs
    ledger: Dict[str, Any] = {"vlf-msc": system.ledger((3, args.image_size, args.image_size))}
    scorers = _Scorers(args, str(device))
    print(f"{len(ds)} images x {len(snrs)} SNR points x {len(systems)} systems over {args.channel}; "
          f"{len(todo)} (system, SNR) points to compute")

    # -- transmitter side, once per image: VLFs, ground truth, the baselines' caption ---------------
    vlfs: Dict[int, torch.Tensor] = {}
    inputs: Dict[int, torch.Tensor] = {}
    paths = [it["path"] for it in ds.items]
    for bi, idx in enumerate(batches):
        batch = collate_images([ds[i] for i in idx])
        inputs[bi] = batch["image"]
        vlfs[bi] = system.encode(batch["image"], keys=[file_sha1(p) for p in batch["path"]])
    cap_table = None
    cached_caps: Dict[str, Dict[str, str]] = {}

    def clean_captions(mode: str) -> List[str]:
        """One caption per image from its noiseless VLF (``mode``: blip2 | vlf-msc), computed once and cached
        in ``OUT/baseline_captions.csv``."""
        nonlocal cap_table
        if cap_table is None:
            cap_table = open_table(out / "baseline_captions.csv", ("image", "mode"), ("name", "caption"))
            for r in cap_table.rows():
                cached_caps.setdefault(r["mode"], {})[r["image"]] = r["caption"]
        cached = cached_caps.setdefault(mode, {})
        captioner = None
        for bi, idx in enumerate(batches):
            if all(paths[i] in cached for i in idx):
                continue
            captioner = captioner or _baseline_captioner(system, mode)
            caps = captioner.generate(vlfs[bi])
            for k, i in enumerate(idx):
                if paths[i] in cached:  # keep a cached caption (never two rows per image)
                    continue
                cap_table.append({"image": paths[i], "mode": mode, "name": ds.name(i), "caption": caps[k]})
                cached[paths[i]] = caps[k]
        return [cached[p] for p in paths]

    base_caps: List[str] = []
    if need & {"ascii-hamming", "deepsc", "img2img-sc", "img2img-sc-bsc"}:
        base_caps = clean_captions(args.baseline_caption)
    # the text reference (and CLIP-score caption): the clean BLIP-2 caption, or the dataset's CSV caption
    refs = clean_captions("blip2") if args.reference == "blip2" else [it["caption"] for it in ds.items]

    # -- baselines ---------------------------------------------------------------------------------
    ascii_tx = deepsc = None
    img2img: Dict[str, Any] = {}
    extra: Dict[str, Any] = {}
    repetition: Dict[str, int] = {}  # --budget matched: copies of the text baselines' frames
    target = system.channel_uses()   # VLF-MSC's channel uses per image (what --budget matched gives everyone)

    def refuse_unfit(s: str, what: str, uses_one: int) -> None:
        raise EvalRefused(f"--budget matched: {s} cannot fit VLF-MSC's {target} channel uses per image even with "
                          f"{what} ({uses_one} uses); use --budget paper")

    if "ascii-hamming" in need:
        from baselines.ascii_hamming import AsciiHamming, AsciiHammingConfig

        def ascii_build(r: int) -> "AsciiHamming":
            return AsciiHamming(channel, AsciiHammingConfig(code=args.ascii_code, modulation=args.ascii_modulation,
                                                            repeat=r), device=device)

        r = 1
        if args.budget == "matched":
            r = matched_repetition(lambda k: max(ascii_build(k).channel_uses(base_caps), default=0), target)
            if r is None:
                refuse_unfit("ascii-hamming", "one copy of each codeword", max(ascii_build(1).channel_uses(base_caps)))
        ascii_tx = ascii_build(r)
        repetition["ascii-hamming"] = r
        if args.budget == "matched":
            extra.setdefault("budget", {})["ascii-hamming"] = {
                "repetition": r, "target_channel_uses": target,
                "max_channel_uses": max(ascii_tx.channel_uses(base_caps), default=0),
                "method": "every Hamming codeword sent r times, the r LLRs of each code bit summed before decoding "
                          "(phy.fec.codes.Repetition)"}
    if "deepsc" in need:
        from baselines.deepsc import DeepSC, vocabulary_coverage
        from semantic.checkpoints import resolve_checkpoint

        link_equalizer(args.deepsc_equalizer, channel)  # an identity receiver on fading: refused before loading
        path = resolve_checkpoint(args.deepsc_checkpoint, what="DeepSC", required_files=("config.json",),
                                  option="--deepsc-checkpoint")
        deepsc = DeepSC.from_pretrained(str(path)).to(device).eval()
        share = vocabulary_coverage(deepsc.vocab, base_caps)
        extra["deepsc_vocabulary_coverage"] = share
        if share < args.deepsc_min_coverage:
            raise EvalRefused(
                f"the DeepSC checkpoint {str(path)!r} covers {100 * share:.1f} % of the baselines' caption tokens "
                f"(< --deepsc-min-coverage {100 * args.deepsc_min_coverage:g} %): the other words would be sent as "
                "<unk>. Train DeepSC on the BLIP-2 captions of the training images (`semcom blip2-captions`, then "
                "`semcom train-deepsc`; `semcom reproduce vlf-msc-fig3` does both), or lower --deepsc-min-coverage")
        r = 1
        if args.budget == "matched":
            sent_all = [_deepsc_sentence(c, deepsc.max_words) for c in base_caps]
            r = matched_repetition(lambda k: max(deepsc.channel_uses(sent_all, repeat=k), default=0), target)
            if r is None:
                refuse_unfit("deepsc", "one copy of each symbol", max(deepsc.channel_uses(sent_all)))
            extra.setdefault("budget", {})["deepsc"] = {
                "repetition": r, "target_channel_uses": target,
                "max_channel_uses": max(deepsc.channel_uses(sent_all, repeat=r), default=0),
                "method": "every channel symbol sent r times, maximum-ratio combined with perfect CSI before the "
                          "equaliser: an r-fold SNR gain (the trained model unchanged; retraining DeepSC at the "
                          "larger width would be the stronger matched baseline, not done)"}
        repetition["deepsc"] = r
    if need & {"img2img-sc", "img2img-sc-bsc"}:
        from baselines.img2img_sc import Img2ImgSC, Img2ImgSCConfig, load_sd_components

        dec = system.image_decoder
        trained = Path(args.image_decoder) if args.image_decoder else None
        shared = dec is not None and dec.tokenizer is not None and not (
            trained is not None and ((trained / "unet").is_dir() or (trained / "text_encoder").is_dir()))
        parts = (dict(vae=dec.vae, unet=dec.unet, text_encoder=dec.text_encoder, tokenizer=dec.tokenizer,
                      scheduler=dec.scheduler) if shared else
                 load_sd_components(args.sd_checkpoint, device=args.device, dtype=args.dtype,
                                    allow_download=True if args.allow_download else None))
        for s, mode in (("img2img-sc", "bit-true"), ("img2img-sc-bsc", args.img2img_bsc_mode)):
            if s in need:
                def build(bits, mode=mode):
                    cfg = Img2ImgSCConfig(sd_checkpoint=args.sd_checkpoint, mode=mode, latent_bits=bits,
                                          modulation=args.img2img_modulation,
                                          code=args.img2img_code if mode == "bit-true" else "none",
                                          strength=args.img2img_strength, guidance_scale=args.img2img_guidance,
                                          num_inference_steps=args.img2img_steps, image_size=args.image_size,
                                          seed=args.seed)
                    return Img2ImgSC(**parts, channel=channel, config=cfg)

                bits = args.img2img_bits
                if args.budget == "matched":
                    bits = matched_latent_bits(lambda b: max(build(b).channel_uses(base_caps)), target)
                    if bits is None:
                        raise EvalRefused(
                            f"--budget matched: {s} cannot fit VLF-MSC's {target} channel uses per image even with "
                            f"1-bit latents ({max(build(1).channel_uses(base_caps))} uses); use --budget paper")
                    extra.setdefault("budget", {})[s] = {"latent_bits": bits, "target_channel_uses": target,
                                                         "max_channel_uses": max(build(bits).channel_uses(base_caps))}
                img2img[s] = build(bits)
        lat_cache: Dict[Tuple[int, bool], torch.Tensor] = {}  # (batch, posterior sampled)
    truncated = 0

    # -- one (SNR, system) point at a time -----------------------------------------------------------
    written = 0
    for _si, snr, s in todo:
        snr_key = format_value(float(snr))
        outs_caps: List[Optional[str]] = [None] * len(paths)
        sent_caps: List[str] = [""] * len(paths)
        out_imgs: Dict[int, torch.Tensor] = {}
        uses: List[int] = [0] * len(paths)
        for bi, idx in enumerate(batches):
            # fixed per (system, channel, SNR value, batch); the batch size is a recorded setting
            cseed = point_seed(args.seed, s, args.channel, float(snr), bi)
            if s == "vlf-msc":
                received = system.transmit(vlfs[bi], snr_db=snr, seed=cseed)
                caps = system.decode_text(received)
                imgs = system.decode_image(received, seed=args.seed + bi)
                for k, i in enumerate(idx):
                    outs_caps[i], out_imgs[i], uses[i] = caps[k], imgs[k], system.channel_uses()
            elif s == "ascii-hamming":
                sent = [base_caps[i] for i in idx]
                rx, u = ascii_tx.transmit(sent, snr, seed=cseed)
                for k, i in enumerate(idx):
                    outs_caps[i], sent_caps[i], uses[i] = rx[k], sent[k], u[k]
            elif s == "deepsc":
                from baselines.deepsc import preprocess_sentence, tokenize

                sent = []
                for i in idx:
                    truncated += len(tokenize(preprocess_sentence(base_caps[i]))) > deepsc.max_words  # counted
                    sent.append(_deepsc_sentence(base_caps[i], deepsc.max_words))
                channel.reset(cseed)
                rx = deepsc.transmit(sent, channel, float(snr), equalizer=link_equalizer(args.deepsc_equalizer, channel),
                                     repeat=repetition["deepsc"])
                u = deepsc.channel_uses(sent, repeat=repetition["deepsc"])
                for k, i in enumerate(idx):
                    outs_caps[i], sent_caps[i], uses[i] = rx[k], sent[k], u[k]
            else:
                sc = img2img[s]
                key = (bi, sc.sample_latent)
                if key not in lat_cache:
                    lat_cache[key] = sc.encode_latents(inputs[bi], seed=args.seed + bi)
                sent = [base_caps[i] for i in idx]
                o = sc(inputs[bi], sent, float(snr), channel_seed=cseed, seed=args.seed + bi, latents=lat_cache[key])
                for k, i in enumerate(idx):
                    outs_caps[i], sent_caps[i], out_imgs[i], uses[i] = o.captions[k], sent[k], o.images[k], \
                        o.channel_uses[k]
        per_item: Dict[str, List[float]] = {}
        if MODALITY[s] in ("text", "text+image"):
            per_item.update(scorers.text([c or "" for c in outs_caps], refs))
        if MODALITY[s] in ("image", "text+image"):
            gen = torch.stack([out_imgs[i] for i in range(len(paths))]).float().cpu()
            ref_imgs = torch.cat([inputs[bi] for bi in range(len(batches))]).float()
            per_item.update(scorers.image(gen, ref_imgs, refs))
        for i, p in enumerate(paths):
            if (s, args.channel, snr_key, p) in done_items:
                continue
            rel = ""
            if i in out_imgs:
                rel = os.path.join("images", s, snr_dirname(snr), f"{ds.name(i)}.png")
                _save_png(out_imgs[i], out / rel)
            items.append({"system": s, "channel": args.channel, "snr_db": snr, "image": p, "name": ds.name(i),
                          "reference": refs[i], "sent_caption": sent_caps[i],
                          "caption": outs_caps[i] if outs_caps[i] is not None else "", "image_file": rel,
                          "channel_uses": uses[i],
                          **{m: per_item[m][i] if m in per_item else None for m in METRICS}})
        table.append(_summary_row(s, args.channel, snr, uses, per_item, equalizer=_equalizer_of(s, args),
                                  reference=args.reference, budget=args.budget, repetition=repetition.get(s, 1)))
        written += 1
        print(f"  {LABELS[s]} @ {snr:g} dB: " + ", ".join(f"{m}={sum(v) / len(v):.4g}" for m, v in per_item.items())
              + f", channel uses/image={sum(uses) / len(uses):.1f}")
        if s in ledger or s == "vlf-msc":
            continue
        ledger[s] = {"mean_channel_uses": sum(uses) / len(uses), "min": min(uses), "max": max(uses)}
    if args.text_projection:  # what W_proj was trained towards, beside the reference scored against
        from experiments.commands.train_text_projection import projection_reference

        extra["text_projection_reference"] = projection_reference(args.text_projection)
    extra.update(ledger=ledger, metric_models=scorers.details(), deepsc_truncated_captions=truncated,
                 baseline_caption=args.baseline_caption, reference=args.reference,
                 equalizers={s: _equalizer_of(s, args) for s in systems})
    return written, extra


if __name__ == "__main__":  # pragma: no cover
    p = argparse.ArgumentParser(prog="semcom vlf-msc-eval")
    add_arguments(p)
    sys.exit(main(p.parse_args()))
