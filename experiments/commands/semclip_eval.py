"""``semcom semclip-eval``: the experiments of the SemCLIP paper, SemCLIP against its baselines.

Studies (``--studies snr,bandwidth,cross,complexity``, default all), every one writing CSVs and
figures into ``--out`` and resumable (a finished row is never recomputed):

1. ``snr`` -- accuracy vs SNR (the paper's fig. 3 and table I). For each system and SNR
   (``--snr-db``, default ``-10:10:2.5`` dB): zero-shot top-1 / top-5 on the *unseen* classes and
   text-to-image retrieval top-1. ``accuracy_vs_snr.csv`` has the columns
   ``system,channel,snr_db,channel_uses,bandwidth_ratio,top1,top5,retrieval_top1,psnr,ssim,ms_ssim,note``
   (PSNR/SSIM/MS-SSIM of the reconstructed image vs the input for the systems that output one,
   DJSCC-IR and BT-IR -- BT-IR's over its delivered images --, NaN otherwise; MS-SSIM needs sides of
   at least 161 px);
   ``fig3_top1_vs_snr.png`` (one curve per system), ``fig3_retrieval_vs_snr.png`` (``--format pdf|svg``
   for vector files), and
   ``table_i.csv`` / ``table_i.md`` (top-1 at ``--table-snrs``).
2. ``bandwidth`` -- accuracy vs bandwidth ratio at ``--bandwidth-snr`` (0 dB; the paper's fig. 4)
   for ``--channel-uses 48,96,192,384``: ``accuracy_vs_bandwidth.csv`` (same columns) and
   ``fig4_top1_vs_bandwidth.png``. The ratio of every point is computed from the channel uses the
   system actually spent, ``L / (C*H*W)`` with the CLIP input shape
   (:func:`phy.utils.conventions.bandwidth_compression_ratio`). CLIP-FT has one point (its ``L = N/2``).
3. ``cross`` -- the cross-dataset table (the paper's table II): ``--datasets NAME=PATH,...`` (NAME a
   layout of :data:`semantic.datasets.DATASETS`, e.g. ``oxford_pets``, ``food101``, ``caltech101``;
   any other name reads an ImageNet-style folder). Every class of such a data set is unseen. A data
   set that is not present is recorded with a note and skipped. ``cross_dataset.csv`` /
   ``table_ii.md``.
4. ``complexity`` -- the paper's table III: parameters and the measured execution time of each
   module for ``--complexity-images`` images on the current device (``complexity.csv`` / ``.md``).

Systems (``--systems``)
    ``upper-bound`` (the paper's "direct task performance based on the original CLIP vectors without
    transmission errors": the clean CLIP token with CLIP's own zero-shot classifier, plain ``"a photo of a
    {class}."`` prompts; no channel, so ``channel_uses`` 0 and the same value at every SNR: fig. 3's
    upper-bound line, table II's row), ``upper-bound-tapl`` (the clean token through the TAPL trained for the
    channel: TAPL's own ceiling),
    ``semclip`` (JSCC + TAPL), ``semclip-notapl`` (same JSCC, plain ``"a photo of a {class}."``
    prompts), ``semclip-noaf`` (JSCC trained with ``use_af=False``, plain prompts; table I's "w/o
    TAPL and AF": by default, ``--ablation-per-snr``, one such JSCC trained at each evaluated SNR, as
    the paper, and in the SNR study evaluated at the table-I SNRs only; ``--no-ablation-per-snr``:
    one JSCC over ``--snr-train-range``; the note column says which), ``clip-ft``
    (the token sent analog, ``L = N/2``: :class:`baselines.clip_ft.CLIPFT`), ``djscc-ft``
    (:class:`baselines.djscc_ft.DJSCCFT`, a head over the *seen* classes only: it cannot name an
    unseen class, and has no text encoder, so its retrieval is not defined: NaN),
    ``djscc-ir`` (the transformer DeepJSCC :class:`baselines.djscc_vit.ViTJSCCCodec`, ``--djscc-ir-arch vit``,
    or the convolutional ADJSCC :class:`baselines.djscc.ImageJSCCCodec`, ``adjscc``; then CLIP on the
    reconstruction) and ``bt-ir`` (:class:`baselines.bt_ir.BTIR`: the learned hyperprior/GMM codec of
    :mod:`baselines.learned_codec` (``--btir-codec learned``, default), JPEG, WebP or CompressAI's
    cheng2020-attn, fitted into the capacity budget of ``L`` uses; an image that does not fit is not
    delivered and its task falls to chance: its classification is a uniform guess (expected accuracy
    ``k/G``) and it ranks below every delivered image in retrieval -- the note column says how many).

Models
    Each trained model is loaded from a checkpoint (``--semclip-jscc``, ``--semclip-noaf-jscc``,
    ``--tapl``, ``--djscc-ir``, ``--djscc-ft``, ``--btir-model``; a path may contain ``{L}``, replaced by
    the channel uses; ``--semclip-noaf-jscc`` must contain ``{snr}`` with ``--ablation-per-snr``, replaced by the
    SNR as ``-5``, ``2.5``) or, when not given, trained in the run with the small budget ``--train-steps`` (default
    500 steps each, batch ``--train-batch-size``) on the seen classes and kept under
    ``<out>/models/`` (``semclip-jscc-L{L}``, ``semclip-noaf-jscc-L{L}[-snr{snr}]``, ``semclip-tapl-L{L}``,
    ``djscc-ir-vit-L{L}``, ``djscc-ft-L{L}``, ``btir-codec``; ``-rayleigh`` before ``-L`` on that channel)
    so that a rerun reuses it. These quick budgets are far from the paper's
    (JSCC 20k steps, TAPL 5k): for the paper's numbers train with ``semcom semclip train-jscc /
    train-tapl`` and pass the folders. The real CLIP is open_clip ViT-L-14-336 (``--clip-model``,
    ``--pretrained``); offline without its weights the loader fails with a message saying how to
    provide them.

Data
    ``--data ROOT`` is an image-folder data set (``--layout``); its classes are split into seen and
    unseen (``--unseen-fraction``, ``--split-seed``). Trained models use the seen classes of
    ``--train-data`` (default: the same root; at most ``--train-images`` images are held in memory
    for the image baselines); the evaluation uses the unseen classes of ``--data`` (at most
    ``--max-images``, a seeded subset). CLIP tokens are extracted once into ``<out>/features/``.

Example
-------
::

    semcom semclip-eval --data ~/imagenet/val --layout imagenet --train-data ~/imagenet/train \\
        --out runs/semclip-eval --semclip-jscc runs/jscc-L{L} --tapl runs/tapl-L{L} \\
        --channel-uses 48,96,192,384 --datasets oxford_pets=~/data/pets,food101=~/data/food-101
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from experiments.core.args import snr_pair_arg
from experiments.semclip_eval.context import Context, check_noaf_template
from experiments.semclip_eval.studies import study_bandwidth, study_complexity, study_cross, study_snr
from experiments.semclip_eval.systems import SYSTEMS

__all__ = ["add_arguments", "main", "parse_int_list", "parse_datasets", "run"]

#: The studies ``--studies`` may name.
STUDIES = ("snr", "bandwidth", "cross", "complexity")


# ------------------------------------------------------------------------------------------------
# argument parsing
# ------------------------------------------------------------------------------------------------
def parse_int_list(text: str, name: str = "--channel-uses") -> List[int]:
    """``"48,96,192"`` -> ``[48, 96, 192]`` (positive, no duplicates).

    Examples
    --------
    >>> parse_int_list("48,96,192")
    [48, 96, 192]
    >>> parse_int_list("48,0")
    Traceback (most recent call last):
    ...
    ValueError: ...
    """
    out = []
    for item in (p.strip() for p in str(text).split(",")):
        if not item:
            continue
        try:
            v = int(item)
        except ValueError:
            raise ValueError(f"{name} must be comma-separated positive integers, got {item!r} in {text!r}") from None
        if v < 1:
            raise ValueError(f"{name} values must be positive, got {v}")
        if v in out:
            raise ValueError(f"{name} has the value {v} twice")
        out.append(v)
    if not out:
        raise ValueError(f"{name} is empty")
    return out


def parse_datasets(text: Optional[str]) -> List[Tuple[str, str]]:
    """``"oxford_pets=/d/pets,food101=/d/food"`` -> ``[("oxford_pets", "/d/pets"), ...]``.

    Examples
    --------
    >>> parse_datasets("oxford_pets=/d/pets,food101=/d/food")
    [('oxford_pets', '/d/pets'), ('food101', '/d/food')]
    """
    if not text:
        return []
    out = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        if "=" not in item:
            raise ValueError(f"--datasets entries must be NAME=PATH, got {item!r}")
        name, path = (s.strip() for s in item.split("=", 1))
        if not name or not path:
            raise ValueError(f"--datasets entries must be NAME=PATH, got {item!r}")
        out.append((name, path))
    return out


def _names(text: str, allowed: Sequence[str], name: str) -> List[str]:
    out = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in out if s not in allowed]
    if bad or not out:
        raise ValueError(f"{name} must be a comma-separated subset of {list(allowed)}, got {text!r}")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``semcom semclip-eval`` to ``parser`` (``semcom semclip-eval --help`` lists them).

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["--data", "data/pets", "--out", "runs/eval"])
    >>> (args.data, args.layout)
    ('data/pets', 'folder')
    """
    p = parser
    p.add_argument("--data", required=True, help="image-folder data set; its unseen classes are evaluated")
    p.add_argument("--layout", default="folder", help="layout of --data (folder, imagenet, oxford_pets, food101, "
                                                      "caltech101)")
    p.add_argument("--train-data", default=None, help="data set whose seen classes train the models "
                                                      "(default: --data; same class folders required)")
    p.add_argument("--out", required=True, help="output folder (CSVs, figures, models, feature caches)")
    from experiments.core.figstyle import add_format_argument

    add_format_argument(p)
    p.add_argument("--studies", default=",".join(STUDIES), help=f"comma-separated subset of {list(STUDIES)}")
    p.add_argument("--systems", default=",".join(SYSTEMS),
                   help=f"comma list of the systems of the SNR and cross-dataset studies, from {', '.join(SYSTEMS)} "
                        "(default: all)")
    p.add_argument("--bandwidth-systems", default="semclip,clip-ft,djscc-ft,djscc-ir,bt-ir",
                   help=f"comma list of the systems of the bandwidth study, from {', '.join(SYSTEMS)} "
                        "(default: semclip,clip-ft,djscc-ft,djscc-ir,bt-ir)")
    p.add_argument("--snr-db", default="-10:10:2.5",
                   help="SNR points [dB], e.g. --snr-db=-10:10:2.5 or --snr-db=0,5 (use = before a leading minus)")
    p.add_argument("--table-snrs", default="-10,0,10", help="SNRs of table I (those that were run)")
    p.add_argument("--snr-channel-uses", type=int, default=None,
                   help="L of the SNR study (default N/2, the token's own size)")
    p.add_argument("--channel-uses", default="48,96,192,384", help="L values of the bandwidth study")
    p.add_argument("--bandwidth-snr", type=float, default=0.0, help="SNR of the bandwidth study [dB]")
    p.add_argument("--datasets", default=None, help="cross-dataset study: NAME=PATH,... (absent ones are noted)")
    p.add_argument("--cross-snrs", default="0", help="SNRs of the cross-dataset study")
    p.add_argument("--complexity-images", type=int, default=100)
    p.add_argument("--channel", default="awgn", choices=["awgn", "rayleigh"])
    p.add_argument("--equalizer", default="mmse", choices=["mmse", "zf"])
    p.add_argument("--unseen-fraction", type=float, default=0.2)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--max-images", type=int, default=None, help="cap on evaluated images (seeded subset)")
    p.add_argument("--train-images", type=int, default=2000, help="cap on seen images held for image baselines")
    p.add_argument("--batch-size", type=int, default=64, help="evaluation batch size")
    # models
    p.add_argument("--clip-model", default="ViT-L-14-336", help="open_clip name or local-dir:/path")
    p.add_argument("--pretrained", default="openai", help="open_clip tag or checkpoint file")
    p.add_argument("--semclip-jscc", default=None, help="SemCLIP JSCC folder (may contain {L})")
    p.add_argument("--semclip-noaf-jscc", default=None,
                   help="JSCC folder trained with --no-af (may contain {L}; with --ablation-per-snr it must contain "
                        "{snr}, replaced by the SNR as in '-5', '2.5')")
    p.add_argument("--ablation-per-snr", action=argparse.BooleanOptionalAction, default=True,
                   help="semclip-noaf (table I's 'w/o TAPL and AF'): one no-AF JSCC trained at each evaluated SNR, "
                        "as the paper (default); --no-ablation-per-snr: one no-AF JSCC over --snr-train-range")
    p.add_argument("--tapl", default=None, help="TAPL folder (may contain {L})")
    p.add_argument("--djscc-ir", default=None, help="DJSCC-IR codec folder (may contain {L})")
    p.add_argument("--djscc-ft", default=None, help="DJSCC-FT model folder (may contain {L})")
    p.add_argument("--btir-codec", default="learned", choices=["learned", "jpeg", "webp", "cheng2020-attn"],
                   help="BT-IR's source codec: learned (default; the hyperprior/GMM codec of baselines.learned_codec, "
                        "after the paper's [21]), jpeg, webp, or cheng2020-attn (CompressAI's pretrained model)")
    p.add_argument("--btir-model", default=None, help="learned BT-IR codec folder (`semcom semclip train-codec`; "
                                                      "default: trained in the run)")
    p.add_argument("--train-steps", type=int, default=500, help="steps of every model trained in the run")
    p.add_argument("--tapl-steps", type=int, default=None,
                   help="steps of TAPL trained in the run (default: --train-steps; the paper: 5000 vs JSCC 20000)")
    p.add_argument("--train-batch-size", type=int, default=64)
    p.add_argument("--snr-train-range", default="-10,10", type=snr_pair_arg, help="training SNR range 'low,high' [dB]")
    p.add_argument("--temperature", type=float, default=0.07,
                   help="temperature of the JSCC's contrastive loss (eq. 4) in in-run training (default 0.07; the "
                        "paper's eq. 4 has none: 1)")
    p.add_argument("--tapl-loss", default="i2t", choices=["i2t", "both"],
                   help="TAPL loss (eq. 5) in in-run training: image-to-text cross entropy (default) or the mean "
                        "of both directions (text-to-image over the classes present in the batch)")
    p.add_argument("--hidden-dim", type=int, default=1024, help="hidden width of the dense JSCCs")
    p.add_argument("--linear-skip", action=argparse.BooleanOptionalAction, default=True,
                   help="linear input-to-output shortcut in SemCLIP's JSCC encoder and decoder (default on; the "
                        "paper's JSCC has none: --no-linear-skip --hidden-dim 512 gives its ~1.3M per side)")
    p.add_argument("--djscc-hidden", type=int, default=64, help="conv width of DJSCC-IR (adjscc) / DJSCC-FT; token "
                                                                  "width of DJSCC-IR (vit) trained in the run")
    p.add_argument("--djscc-ir-arch", default="vit", choices=["vit", "adjscc"],
                   help="DJSCC-IR trained in the run: vit (default; the transformer DeepJSCC the paper cites, 2 blocks "
                        "per side) or adjscc (the convolutional ADJSCC); a --djscc-ir folder is loaded as it was saved")
    p.add_argument("--djscc-bottleneck", default="auto", choices=["auto", "dense", "conv"],
                   help="DJSCC-IR's bottleneck: dense (a Linear to 2L reals), conv (ADJSCC's fully convolutional one; "
                        "needs 2L divisible by the feature map's positions) or auto (default: dense unless its "
                        "weights exceed --djscc-dense-limit, then conv; a point neither can carry is recorded "
                        "with the reason, not skipped silently)")
    p.add_argument("--djscc-dense-limit", type=float, default=50e6,
                   help="parameters of DJSCC-IR's dense bottleneck above which auto switches to conv (default 50e6)")
    p.add_argument("--extra-channel-uses", default=None,
                   help="bandwidth study: more L values for single systems, SYSTEM=L[+L...],... e.g. "
                        "djscc-ir=28224,bt-ir=47078 (the SemCLIP paper's R = 0.0833 and 0.139 at 336 px)")
    p.add_argument("--tapl-classes-per-step", type=int, default=100)
    p.add_argument("--device", default=None, help="torch device: auto (default: cuda if available, else cpu), cpu, cuda, cuda:1 ...")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")



def parse_extra_channel_uses(text: Optional[str], allowed: Sequence[str]) -> Dict[str, List[int]]:
    """``"djscc-ir=28224,bt-ir=47078+60000"`` -> ``{"djscc-ir": [28224], "bt-ir": [47078, 60000]}``."""
    out: Dict[str, List[int]] = {}
    for item in (p.strip() for p in (text or "").split(",")):
        if not item:
            continue
        name, sep, vals = item.partition("=")
        if not sep or name.strip() not in allowed:
            raise ValueError(f"--extra-channel-uses entries must be SYSTEM=L[+L...] with SYSTEM one of "
                             f"{list(allowed)}, got {item!r}")
        out.setdefault(name.strip(), []).extend(parse_int_list(vals.replace("+", ","), "--extra-channel-uses"))
    return out


# ------------------------------------------------------------------------------------------------
# entry points
# ------------------------------------------------------------------------------------------------
# options that are row keys or choose what runs (studies, systems, SNRs, L values -- --extra-channel-uses only
# adds (system, L) points whose rows are those --channel-uses would give --, data sets, the device of the
# complexity table); every other option defines the rows and the models trained under <out>/models. The
# semclip-* reproduction configs share one folder, so they give the same defining options.
_NOT_SETTINGS = ("command", "out", "studies", "systems", "bandwidth_systems", "snr_db", "table_snrs",
                 "snr_channel_uses", "channel_uses", "extra_channel_uses", "bandwidth_snr", "datasets", "cross_snrs",
                 "complexity_images", "channel", "device", "no_progress")
_PATH_SETTINGS = ("data", "train_data", "semclip_jscc", "semclip_noaf_jscc", "tapl", "djscc_ir", "djscc_ft",
                  "btir_model")
# settings added later: the value a folder written before them was run with
_SETTINGS_BEFORE = {"djscc_ir_arch": "adjscc", "btir_model": None}
RESULT_FILES = ("accuracy_vs_snr.csv", "accuracy_vs_bandwidth.csv", "cross_dataset.csv", "complexity.csv", "models")


def run(args: argparse.Namespace) -> Dict[str, int]:
    """Run the selected studies; returns the number of new rows per study.

    Examples
    --------
    Needs CLIP weights and an image data set, so the example is not run by the test-suite
    (``tests/test_semclip_eval.py`` runs the studies on a tiny random CLIP):

    >>> import argparse
    >>> parser = argparse.ArgumentParser(); add_arguments(parser)
    >>> args = parser.parse_args(["--data", "data/imagenet/val", "--out", "runs/eval"])
    >>> run(args)                                            # doctest: +SKIP
    {'snr': 24, 'bandwidth': 0, 'cross': 0, 'complexity': 0}
    """
    from experiments.core.args import parse_snr_list
    from experiments.core.results import RunManifest

    studies = _names(args.studies, STUDIES, "--studies")
    systems = _names(args.systems, SYSTEMS, "--systems")
    bw_systems = _names(args.bandwidth_systems, SYSTEMS, "--bandwidth-systems")
    snrs = parse_snr_list(args.snr_db)
    table_snrs = parse_snr_list(args.table_snrs)
    cross_snrs = parse_snr_list(args.cross_snrs)
    Ls = parse_int_list(args.channel_uses)
    extra_Ls = parse_extra_channel_uses(args.extra_channel_uses, bw_systems)
    datasets = parse_datasets(args.datasets)
    for name in ("complexity_images", "batch_size", "train_steps", "train_batch_size"):
        v = getattr(args, name)
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive int, got {v!r}")
    if args.tapl_steps is not None and (not isinstance(args.tapl_steps, int) or args.tapl_steps < 1):
        raise ValueError(f"--tapl-steps must be a positive int, got {args.tapl_steps!r}")
    if args.snr_channel_uses is not None and args.snr_channel_uses < 1:  # 0 must not silently mean "N/2"
        raise ValueError(f"--snr-channel-uses must be a positive int, got {args.snr_channel_uses!r}")
    if args.ablation_per_snr:  # checked before anything is written
        check_noaf_template(args.semclip_noaf_jscc)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from experiments.core.results import claim_result_settings, settings_of

    claim_result_settings(out, settings_of(args, [k for k in vars(args) if not k.startswith("_") and k not in
                                                  _NOT_SETTINGS], paths=_PATH_SETTINGS), RESULT_FILES,
                          record="semclip-eval.settings.json", added_later=_SETTINGS_BEFORE)
    ctx = Context(args)
    added: Dict[str, int] = {}
    with RunManifest(out, args=args, seed=args.seed, command="semcom semclip-eval",
                     extra={"image_shape": list(ctx.image_shape), "token_dim": ctx.token_dim,
                            "device": str(ctx.device)}) as man:
        if "snr" in studies:
            added["snr"] = study_snr(ctx, systems, snrs, table_snrs)
        if "bandwidth" in studies:
            added["bandwidth"] = study_bandwidth(ctx, bw_systems, Ls, args.bandwidth_snr, extra_Ls)
        if "cross" in studies:
            if datasets:
                added["cross"] = study_cross(ctx, systems, datasets, cross_snrs)
            else:
                print("[semclip-eval] cross-dataset study: no --datasets given, skipped", flush=True)
        if "complexity" in studies:
            added["complexity"] = study_complexity(ctx, args.complexity_images)
        man.update(rows_added=added)
    return added


def main(args: argparse.Namespace) -> int:
    """Run ``semcom semclip-eval`` with the parsed ``args`` (the options of :func:`add_arguments`); returns
    the exit status (0 on success, 2 for bad input, reported as one line).

    Examples
    --------
    Not run by the test-suite: it needs CLIP weights and image data; ``tests/test_semclip_eval.py`` runs it on a tiny random CLIP.

    >>> from experiments.cli import main as semcom
    >>> semcom(["semclip-eval"] + ["--data", "data/pets", "--out", "runs/eval"])                                # doctest: +SKIP
    0
    """
    import semantic  # noqa: F401  (torchvision shim before open_clip)

    run(args)
    return 0
