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
   ``fig3_top1_vs_snr.png`` (one curve per system), ``fig3_retrieval_vs_snr.png``, and
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
    cheng2020-attn, fitted into the capacity budget of ``L`` uses; an image that does not fit is not delivered and its task falls to chance:
    its classification is a uniform guess (expected accuracy ``k/G``) and it ranks below every
    delivered image in retrieval -- the note column says how many).

Models
    Each trained model is loaded from a checkpoint (``--semclip-jscc``, ``--semclip-noaf-jscc``,
    ``--tapl``, ``--djscc-ir``, ``--djscc-ft``, ``--btir-model``; a path may contain ``{L}``, replaced by the channel
    uses; ``--semclip-noaf-jscc`` must contain ``{snr}`` with ``--ablation-per-snr``, replaced by the
    SNR as ``-5``, ``2.5``) or, when not given, trained in the run with the small budget ``--train-steps`` (default
    500 steps each, batch ``--train-batch-size``) on the seen classes and kept under
    ``<out>/models/`` (``semclip-jscc-L{L}``, ``semclip-noaf-jscc-L{L}[-snr{snr}]``, ``semclip-tapl-L{L}``,
    ``djscc-ir-vit-L{L}``, ``djscc-ft-L{L}``, ``btir-codec``; ``-rayleigh`` before ``-L`` on that channel) so that a
    rerun
    reuses it. These quick budgets are far from the paper's
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
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = ["SYSTEMS", "SYSTEM_LABELS", "COLUMNS", "add_arguments", "main", "parse_int_list", "parse_datasets",
           "chance_metrics", "run"]

#: The systems ``--systems`` may name (the upper bound, SemCLIP and its ablations, the baselines).
SYSTEMS = ("upper-bound", "upper-bound-tapl", "semclip", "semclip-notapl", "semclip-noaf", "clip-ft", "djscc-ft",
           "djscc-ir", "bt-ir")
#: The legend label of each system.
SYSTEM_LABELS = {"upper-bound": "Upper bound", "upper-bound-tapl": "Upper bound (TAPL)", "semclip": "SemCLIP", "semclip-notapl": "SemCLIP w/o TAPL",
                 "semclip-noaf": "SemCLIP w/o TAPL & AF",
                 "clip-ft": "CLIP-FT", "djscc-ft": "DJSCC-FT", "djscc-ir": "DJSCC-IR", "bt-ir": "BT-IR"}
KEYS = ["system", "channel", "snr_db", "channel_uses"]
VALUES = ["bandwidth_ratio", "top1", "top5", "retrieval_top1", "psnr", "ssim", "ms_ssim", "note"]
IMAGE_QUALITY = ("psnr", "ssim", "ms_ssim")
#: Columns of the result CSVs: the keys, then the values.
COLUMNS = KEYS + VALUES
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
    p.add_argument("--studies", default=",".join(STUDIES), help=f"comma-separated subset of {list(STUDIES)}")
    p.add_argument("--systems", default=",".join(SYSTEMS), help="systems of the SNR and cross-dataset studies")
    p.add_argument("--bandwidth-systems", default="semclip,clip-ft,djscc-ft,djscc-ir,bt-ir",
                   help="systems of the bandwidth study")
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
    p.add_argument("--snr-train-range", default="-10,10", help="training SNR range 'low,high' [dB]")
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


# ------------------------------------------------------------------------------------------------
# metrics helpers
# ------------------------------------------------------------------------------------------------
def chance_metrics(labels, num_classes: int) -> Dict[str, float]:
    """Expected metrics of a receiver with nothing: a uniform guess among ``num_classes``.

    Top-k accuracy is ``min(k, G) / G``; text-to-image retrieval top-1 with a random ranking is,
    for the query of class ``g``, the fraction of images of class ``g``, averaged over the
    classes present in ``labels``.

    Examples
    --------
    >>> import torch
    >>> m = chance_metrics(torch.tensor([0, 0, 1, 2]), num_classes=4)
    >>> m["top1"], m["top5"], round(m["retrieval_top1"], 4)     # classes 0, 1, 2 hold 1/2, 1/4, 1/4 of the images
    (0.25, 1.0, 0.3333)
    """
    import torch

    labels = torch.as_tensor(labels)
    present, counts = torch.unique(labels, return_counts=True)
    return {"top1": 1.0 / num_classes, "top5": min(5, num_classes) / num_classes,
            "retrieval_top1": float((counts.float() / labels.numel()).mean())}


def _metrics_from_logits(logits, labels) -> Dict[str, float]:
    from semantic.semclip import classification_topk, text_to_image_retrieval

    acc = classification_topk(logits, labels, (1, 5))
    return {"top1": acc[1], "top5": acc[5], "retrieval_top1": text_to_image_retrieval(logits, labels, (1,))[1]}


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------
@dataclass
class EvalSet:
    """Images of the evaluated classes: clean CLIP tokens, labels and the raw images.

    ``labels`` index ``class_names``; ``global_labels`` are the labels in the training data's class
    space (``None`` for another data set); ``dataset[indices[i]]`` is image ``i`` in ``[0, 1]``.
    """

    name: str
    features: "object"
    labels: "object"
    class_names: List[str]
    dataset: "object"
    indices: List[int]
    global_labels: "object" = None

    def __len__(self) -> int:
        return len(self.indices)

    def image_batches(self, batch_size: int):
        """Yield ``(images [b, 3, H, W] in [0, 1], labels [b], positions [b])``."""
        import torch

        for lo in range(0, len(self.indices), batch_size):
            pos = list(range(lo, min(lo + batch_size, len(self.indices))))
            imgs = torch.stack([self.dataset[self.indices[i]][0] for i in pos])
            yield imgs, self.labels[pos], torch.tensor(pos)


def _split_preprocess(preprocess):
    """open_clip's eval preprocess -> (to-tensor part giving [0, 1] images, the Normalize)."""
    from torchvision import transforms as T

    steps = list(getattr(preprocess, "transforms", []))
    if not steps or not isinstance(steps[-1], T.Normalize):
        raise ValueError("the CLIP preprocess must end with a Normalize transform (open_clip's eval preprocess)")
    return T.Compose(steps[:-1]), steps[-1]


# ------------------------------------------------------------------------------------------------
# the run context: CLIP, data, models (loaded or trained once, lazily)
# ------------------------------------------------------------------------------------------------
class Context:
    """Everything the studies share. Models are built on first use and cached on disk."""

    def __init__(self, args):
        import torch

        from semantic.checkpoints import resolve_device
        from semantic.clip_tokens import CLIPImageEncoder, load_open_clip, model_image_shape
        from semantic.tapl import CLIPTextTower

        self.args = args
        self.device = resolve_device(args.device)
        self.out = Path(args.out)
        self.progress = False if args.no_progress else None
        self.model, self.preprocess, self.tokenizer = load_open_clip(args.clip_model, args.pretrained,
                                                                     device=self.device)
        self.encoder = CLIPImageEncoder(self.model, key=f"{args.clip_model}|{args.pretrained}")
        self.to_tensor, self.normalize = _split_preprocess(self.preprocess)
        self.image_shape = model_image_shape(self.model)
        if self.image_shape[1] != self.image_shape[2]:
            raise ValueError(f"the image baselines need a square CLIP input, got {self.image_shape}")
        self.token_dim = int(self.model.visual.output_dim)
        self.tower = CLIPTextTower(self.model)
        self.logit_scale = float(self.model.logit_scale.exp())
        lo, hi = (float(v) for v in args.snr_train_range.split(","))
        self.snr_train_range = (lo, hi)
        self._cache: Dict[tuple, object] = {}
        self._zs: Dict[tuple, torch.Tensor] = {}
        self._data: Dict[str, object] = {}

    # -- data --------------------------------------------------------------------------------------
    def _dataset(self, layout: str, root: str, transform):
        from semantic.datasets import DATASETS, image_folder

        if layout in DATASETS:
            return DATASETS[layout](root, transform=transform)
        return image_folder(root, transform=transform)

    def features_of(self, name: str, layout: str, root: str):
        """Clean CLIP tokens of every image of a data set (extracted once into ``<out>/features/<name>``)."""
        from semantic.clip_tokens import extract_features

        if name not in self._data:
            ds = self._dataset(layout, root, self.preprocess)
            fs = extract_features(self.encoder, ds, self.out / "features" / name, batch_size=self.args.batch_size,
                                  num_workers=0, progress=self.progress)
            self._data[name] = (fs, self._dataset(layout, root, self.to_tensor))
        return self._data[name]

    def split(self):
        from semantic.datasets import split_classes

        fs, _ = self.features_of("eval", self.args.layout, self.args.data)
        return split_classes(len(fs.class_names), self.args.unseen_fraction, self.args.split_seed)

    def eval_set(self) -> EvalSet:
        """Unseen classes of ``--data`` (at most ``--max-images``, a seeded subset)."""
        if "eval_set" in self._cache:
            return self._cache["eval_set"]
        fs, raw = self.features_of("eval", self.args.layout, self.args.data)
        _, unseen = self.split()
        es = self._subset("unseen", fs, raw, unseen, self.args.max_images)
        self._cache["eval_set"] = es
        return es

    def _subset(self, name, fs, raw, classes, cap) -> EvalSet:
        import torch

        remap = torch.full((len(fs.class_names),), -1, dtype=torch.long)
        remap[torch.tensor(classes)] = torch.arange(len(classes))
        idx = (remap[fs.labels] >= 0).nonzero().squeeze(1)
        if cap is not None and idx.numel() > cap:
            g = torch.Generator().manual_seed(self.args.seed)
            idx = idx[torch.randperm(idx.numel(), generator=g)[:cap]].sort().values
        return EvalSet(name, fs.features[idx].float(), remap[fs.labels[idx]], [fs.class_names[c] for c in classes],
                       raw, idx.tolist(), global_labels=fs.labels[idx])

    def train_set(self) -> EvalSet:
        """Seen classes of ``--train-data`` (default ``--data``); labels are global class ids."""
        if "train_set" in self._cache:
            return self._cache["train_set"]
        a = self.args
        fs_eval, _ = self.features_of("eval", a.layout, a.data)
        if a.train_data and Path(a.train_data).resolve() != Path(a.data).resolve():
            fs, raw = self.features_of("train", a.layout, a.train_data)
            if fs.class_names != fs_eval.class_names:
                raise ValueError("--train-data must have the same classes (folders) as --data")
        else:
            fs, raw = self.features_of("eval", a.layout, a.data)
        seen, _ = self.split()
        ts = self._subset("seen", fs, raw, seen, None)
        self._cache["train_set"] = ts
        return ts

    def train_images(self):
        """``(images [n, 3, H, W] in [0, 1], global labels [n])`` of at most ``--train-images`` seen images."""
        import torch

        if "train_images" not in self._cache:
            ts = self.train_set()
            n = len(ts)
            pos = torch.arange(n)
            if self.args.train_images is not None and n > self.args.train_images:
                g = torch.Generator().manual_seed(self.args.seed + 1)
                pos = torch.randperm(n, generator=g)[: self.args.train_images].sort().values
            imgs = torch.stack([ts.dataset[ts.indices[i]][0] for i in pos.tolist()])
            self._cache["train_images"] = (imgs, ts.global_labels[pos])
        return self._cache["train_images"]

    # -- CLIP helpers ------------------------------------------------------------------------------
    def zeroshot_weights(self, class_names: Sequence[str]):
        from semantic.tapl import zeroshot_classifier

        key = tuple(class_names)
        if key not in self._zs:
            self.tower.to(self.device)
            self._zs[key] = zeroshot_classifier(self.tower, self.tokenizer, class_names).to(self.device)
        return self._zs[key]

    def plain_logits(self, tokens, class_names):
        import torch.nn.functional as F

        w = self.zeroshot_weights(class_names)
        return (self.logit_scale * F.normalize(tokens.float().to(self.device), dim=-1) @ w.T).cpu()

    def encode_images(self, images):
        """CLIP tokens of images in ``[0, 1]`` (the CLIP normalisation applied here)."""
        return self.encoder(self.normalize(images.clamp(0, 1).to(self.device))).float()

    def channel(self, offset: int = 0):
        from phy.channel.registry import make_channel

        return make_channel(self.args.channel, seed=self.args.seed + offset)

    # -- models ------------------------------------------------------------------------------------
    @property
    def _tag(self) -> str:
        """Model folders trained on a fading channel are kept apart from the AWGN ones."""
        return "" if self.args.channel == "awgn" else f"-{self.args.channel}"

    def _given(self, opt: Optional[str], L: int) -> Optional[Path]:
        if not opt:
            return None
        return Path(opt.replace("{L}", str(L)))

    def _semclip_config(self, L: int, use_af: bool, train_snr: Optional[float] = None):
        from semantic.semclip import SemCLIPConfig

        a = self.args
        steps = int(a.train_steps)
        snr_range = self.snr_train_range if train_snr is None else (float(train_snr), float(train_snr))
        return SemCLIPConfig(clip_model=a.clip_model, pretrained=a.pretrained, token_dim=self.token_dim,
                             channel_uses=L, hidden_dim=a.hidden_dim, linear_skip=a.linear_skip, use_af=use_af,
                             channel=a.channel,
                             equalizer=a.equalizer, snr_train_range=snr_range, temperature=a.temperature,
                             tapl_loss=a.tapl_loss,
                             jscc_batch_size=a.train_batch_size, jscc_steps=steps,
                             tapl_steps=steps if a.tapl_steps is None else int(a.tapl_steps),
                             tapl_batch_size=min(32, a.train_batch_size),
                             tapl_classes_per_step=a.tapl_classes_per_step or None,
                             checkpoint_every=max(1, min(500, steps)), unseen_fraction=a.unseen_fraction,
                             split_seed=a.split_seed, seed=a.seed)

    def jscc(self, L: int, use_af: bool = True, train_snr: Optional[float] = None):
        """SemCLIP's token JSCC with ``L`` channel uses (loaded, or trained into ``<out>/models``).

        ``train_snr``: the no-AF ablation trained at this one SNR (``{snr}`` in ``--semclip-noaf-jscc``,
        ``-snr<value>`` in the in-run folder name); ``None``: trained over ``--snr-train-range``.
        """
        import torch

        from semantic.jscc import JSCCCodec
        from semantic.semclip import train_jscc

        key = ("jscc", L, use_af, train_snr)
        if key in self._cache:
            return self._cache[key]
        opt = self.args.semclip_jscc if use_af else self.args.semclip_noaf_jscc
        if train_snr is not None:
            check_noaf_template(opt)
        given = self._given(opt.replace("{snr}", snr_tag(train_snr)) if (opt and train_snr is not None) else opt, L)
        codec = None
        if given is not None:
            codec = JSCCCodec.from_pretrained(given, equalizer=self.args.equalizer)
            if codec.channel_uses != L:
                print(f"[semclip-eval] {given} has L={codec.channel_uses}, not {L}: training one for L={L}")
                codec = None
            elif bool(codec.encoder.config.use_af) != use_af:
                raise ValueError(f"{given} has use_af={codec.encoder.config.use_af}, expected {use_af}")
        if codec is None:
            folder = self.out / "models" / f"{'semclip' if use_af else 'semclip-noaf'}-jscc{self._tag}-L{L}"
            if train_snr is not None:
                folder = folder.with_name(f"{folder.name}-snr{snr_tag(train_snr)}")
            if (folder / "train_history.json").is_file():
                codec = JSCCCodec.from_pretrained(folder, equalizer=self.args.equalizer)
            else:
                with torch.enable_grad():  # models are built lazily, possibly inside an evaluation's no_grad
                    codec, _ = train_jscc(self.train_set().features, self._semclip_config(L, use_af, train_snr),
                                          out_dir=folder, device=self.device, progress=self.progress)
        codec.to(self.device).eval().requires_grad_(False)
        self._cache[key] = codec
        return codec

    def tapl(self, L: int):
        """TAPL trained through the frozen ``L``-use JSCC on the seen classes."""
        import torch

        from semantic.semclip import train_tapl
        from semantic.tapl import TAPL

        key = ("tapl", L)
        if key in self._cache:
            return self._cache[key]
        given = self._given(self.args.tapl, L)
        if given is not None:
            sub = given / "tapl" if (given / "tapl" / "config.json").is_file() else given
            tapl = TAPL.from_pretrained(str(sub), low_cpu_mem_usage=False)
        else:
            folder = self.out / "models" / f"semclip-tapl{self._tag}-L{L}"
            if (folder / "train_history.json").is_file():
                tapl = TAPL.from_pretrained(str(folder / "tapl"), low_cpu_mem_usage=False)
            else:
                ts = self.train_set()
                seen_names = ts.class_names
                codec = self.jscc(L, True)
                with torch.enable_grad():
                    tapl, _ = train_tapl(ts.features, ts.labels, seen_names, codec, self.model, self.tokenizer,
                                         self._semclip_config(L, True), out_dir=folder, device=self.device,
                                         progress=self.progress)
        tapl.to(self.device).eval().requires_grad_(False)
        self._cache[key] = tapl
        return tapl

    def performer(self, L: int):
        from semantic.tapl import TaskPerformer

        key = ("performer", L)
        if key not in self._cache:
            self._cache[key] = TaskPerformer(self.tapl(L), self.tower, self.tokenizer, self.logit_scale).to(self.device)
        return self._cache[key]

    def _num_down(self) -> int:
        return djscc_num_down(self.image_shape[1])

    def _save_atomic(self, model, folder: Path, history) -> None:
        import json

        from semantic.checkpoints import commit_dir, staging_dir

        tmp = staging_dir(folder)
        model.save_pretrained(str(tmp))
        (tmp / "train_history.json").write_text(json.dumps(history))
        commit_dir(tmp, folder)

    def djscc_ir_bottleneck(self, L: int) -> Tuple[Optional[str], str]:
        """``(bottleneck, note)`` of DJSCC-IR at ``L`` uses (``--djscc-bottleneck``); ``(None, reason)`` when
        neither design can carry ``L`` within the limits."""
        from baselines.djscc import conv_bottleneck_fits

        a = self.args
        if a.djscc_ir:  # a trained folder: its own architecture decides (loading it checks L)
            return "given", ""
        if a.djscc_ir_arch == "vit":  # the ViT codec carries any L (puncturing)
            return "vit", ""
        H, nd = self.image_shape[1], self._num_down()
        dense = 16 * (H // 2 ** nd) ** 2 * 2 * L  # latent_channels * s^2 * 2L weights of the dense layer
        fits = conv_bottleneck_fits(H, nd, L)
        if a.djscc_bottleneck == "dense" or (a.djscc_bottleneck == "auto" and dense <= a.djscc_dense_limit):
            return "dense", ""
        if fits:
            return "conv", (f"DJSCC-IR: convolutional bottleneck (ADJSCC's design; a dense one would need "
                            f"{dense / 1e6:.0f}M weights)" if a.djscc_bottleneck == "auto" else "")
        return None, (f"DJSCC-IR not run at L={L}: a dense bottleneck would need {dense / 1e6:.0f}M weights "
                      f"(> --djscc-dense-limit) and 2L is not a multiple of the {(H // 2 ** nd) ** 2} positions "
                      "of the convolutional one")

    def djscc_ir(self, L: int, train: bool = True):
        """DJSCC-IR image codec with ``L`` channel uses at the CLIP input resolution."""
        import torch

        from baselines.djscc import ImageJSCCCodec, train_image_jscc
        from baselines.djscc_vit import ViTJSCCCodec, load_image_jscc

        key = ("djscc-ir", L)
        if key in self._cache:
            return self._cache[key]
        given = self._given(self.args.djscc_ir, L)
        bottleneck, why = self.djscc_ir_bottleneck(L)
        if bottleneck is None:
            raise ValueError(why)
        kind = {"conv": "-conv", "vit": "-vit"}.get(bottleneck, "")
        folder = given if given is not None else self.out / "models" / f"djscc-ir{kind}{self._tag}-L{L}"
        if given is not None or (folder / "train_history.json").is_file():
            codec = load_image_jscc(folder, equalizer=self.args.equalizer)
            if codec.channel_uses != L:
                raise ValueError(f"--djscc-ir {folder} has L={codec.channel_uses}, expected {L} (use {{L}})")
        else:
            with torch.random.fork_rng(devices=[]):  # seeded init (--seed), global stream untouched
                torch.manual_seed(self.args.seed)
                if bottleneck == "vit":
                    dim = 4 * max(4, -(-self.args.djscc_hidden // 4))
                    codec = ViTJSCCCodec.build(image_size=self.image_shape[1], channel_uses=L, dim=dim, depth=2,
                                               heads=4, equalizer=self.args.equalizer)
                else:
                    codec = ImageJSCCCodec.build(image_size=self.image_shape[1], channel_uses=L,
                                                 hidden=self.args.djscc_hidden, num_down=self._num_down(),
                                                 equalizer=self.args.equalizer, bottleneck=bottleneck)
            if not train:
                return codec
            imgs, _ = self.train_images()
            with torch.enable_grad():
                hist = train_image_jscc(codec, imgs, self.channel(11), self.snr_train_range, self.args.train_steps,
                                        batch_size=self.args.train_batch_size, seed=self.args.seed,
                                        device=self.device)
            self._save_atomic(codec, folder, hist)
        codec.to(self.device).eval().requires_grad_(False)
        self._cache[key] = codec
        return codec

    def djscc_ft(self, L: int, train: bool = True):
        """DJSCC-FT with ``L`` channel uses, a head over the seen classes (global ids)."""
        import torch

        from baselines.djscc_ft import DJSCCFT, train_djscc_ft

        key = ("djscc-ft", L)
        if key in self._cache:
            return self._cache[key]
        given = self._given(self.args.djscc_ft, L)
        folder = given if given is not None else self.out / "models" / f"djscc-ft{self._tag}-L{L}"
        if given is not None or (folder / "train_history.json").is_file():
            model = DJSCCFT.from_pretrained(str(folder), low_cpu_mem_usage=False)
            if model.channel_uses != L:
                raise ValueError(f"--djscc-ft {folder} has L={model.channel_uses}, expected {L} (use {{L}})")
        else:
            seen, _ = self.split()
            with torch.random.fork_rng(devices=[]):  # seeded init (--seed), global stream untouched
                torch.manual_seed(self.args.seed)
                model = DJSCCFT(image_size=self.image_shape[1], num_classes=len(seen), class_ids=list(seen),
                                feature_dim=self.token_dim, channel_uses=L, hidden=self.args.djscc_hidden,
                                num_down=self._num_down(), jscc_hidden=self.args.hidden_dim)
            if not train:
                return model
            imgs, labels = self.train_images()
            with torch.enable_grad():
                hist = train_djscc_ft(model, imgs, labels, self.channel(12), self.snr_train_range,
                                      self.args.train_steps, batch_size=self.args.train_batch_size,
                                      seed=self.args.seed, device=self.device)
            self._save_atomic(model, folder, hist)
        model.to(self.device).eval().requires_grad_(False)
        self._cache[key] = model
        return model

    def btir_codec(self):
        """BT-IR's source codec (``--btir-codec``); the learned one loaded from ``--btir-model`` or trained in the
        run into ``<out>/models/btir-codec`` (``--train-steps`` per quality level)."""
        import torch

        from baselines.bt_ir import CompressAICodec, PillowCodec
        from baselines.learned_codec import LearnedCodec, train_levels

        if "btir-codec" in self._cache:
            return self._cache["btir-codec"]
        name = self.args.btir_codec
        if name == "cheng2020-attn":
            codec = CompressAICodec(device=self.device)
        elif name != "learned":
            codec = PillowCodec(name)
        else:
            folder = Path(self.args.btir_model) if self.args.btir_model else self.out / "models" / "btir-codec"
            if self.args.btir_model or (folder / "codec.json").is_file():
                codec = LearnedCodec.from_pretrained(folder, device=self.device)
            else:
                with torch.enable_grad():
                    codec = train_levels(self.train_images()[0], steps=self.args.train_steps,
                                         channels=max(8, self.args.djscc_hidden), seed=self.args.seed,
                                         device=self.device)
                codec.save_pretrained(folder)
        self._cache["btir-codec"] = codec
        return codec

    def btir(self, L: int):
        from baselines.bt_ir import BTIR

        codec = self.btir_codec()
        capacity = "awgn" if self.args.channel == "awgn" else "rayleigh_ergodic"
        return BTIR(codec, channel_uses=L, capacity=capacity)

    def system_channel_uses(self, system: str, L: int) -> int:
        """The channel uses ``system`` spends per image when asked for ``L`` (CLIP-FT: always ``N/2``;
        the upper bounds: none, they have no channel)."""
        if system in ("upper-bound", "upper-bound-tapl"):
            return 0
        return math.ceil(self.token_dim / 2) if system == "clip-ft" else int(L)


def djscc_num_down(image_size: int) -> int:
    """Stride-2 stages of DJSCC-IR / DJSCC-FT for a square input: up to 4, as many as divide the side."""
    H, k = int(image_size), 4
    while k > 0 and H % (2 ** k):
        k -= 1
    return max(k, 1) if H % 2 == 0 else 1


def snr_tag(snr: float) -> str:
    """How an SNR is written in a ``{snr}`` path template and in-run folder names: ``-5``, ``2.5``, ``0``."""
    return f"{float(snr):g}"


# ------------------------------------------------------------------------------------------------
# one evaluation point
# ------------------------------------------------------------------------------------------------
def evaluate_point(ctx: Context, system: str, es: EvalSet, snr_db: float, L: int) -> Dict[str, object]:
    """Metrics of ``system`` on ``es`` at ``snr_db`` with ``L`` channel uses per image.

    Returns ``{"channel_uses", "top1", "top5", "retrieval_top1", "note"}``; ``channel_uses`` is the
    number the system actually sent (checked against each transmission).
    """
    import torch

    from semantic.semclip import transmit_tokens

    G = len(es.class_names)
    dev, bs = ctx.device, ctx.args.batch_size
    note = ""
    with torch.no_grad():
        if system == "upper-bound":  # the paper's: clean CLIP tokens, CLIP's own zero-shot prompts (fig. 3, table II)
            logits = ctx.plain_logits(es.features, es.class_names)
            return dict(channel_uses=0, note="ideal link: clean CLIP token, CLIP's zero-shot prompts; no channel",
                        **_metrics_from_logits(logits, es.labels))
        if system == "upper-bound-tapl":  # the clean CLIP token through the TAPL trained for the channel
            perf = ctx.performer(L)
            logits = torch.cat([perf(es.features[i:i + bs].to(dev), es.class_names).float().cpu()
                                for i in range(0, len(es), bs)])
            return dict(channel_uses=0, note=f"ideal link: clean CLIP token, TAPL trained through the L={L} JSCC; "
                                             "no channel", **_metrics_from_logits(logits, es.labels))
        if system in ("semclip", "semclip-notapl", "semclip-noaf"):
            per_snr = system == "semclip-noaf" and ctx.args.ablation_per_snr
            codec = ctx.jscc(L, use_af=system != "semclip-noaf", train_snr=snr_db if per_snr else None)
            if system == "semclip-noaf":
                note = (f"no-AF JSCC trained at a fixed {snr_tag(snr_db)} dB (per-SNR ablation)" if per_snr else
                        f"no-AF JSCC trained over {ctx.snr_train_range[0]:g}..{ctx.snr_train_range[1]:g} dB")
            used = codec.channel_uses
            received = transmit_tokens(es.features, codec, ctx.channel(), snr_db, batch_size=bs, device=dev)
            if system == "semclip":
                perf = ctx.performer(L)
                logits = torch.cat([perf(received[i:i + bs].to(dev), es.class_names).float().cpu()
                                    for i in range(0, received.shape[0], bs)])
            else:
                logits = ctx.plain_logits(received, es.class_names)
            return dict(channel_uses=used, note=note, **_metrics_from_logits(logits, es.labels))
        if system == "clip-ft":
            from baselines.clip_ft import CLIPFT

            ft = CLIPFT(ctx.channel(), equalizer=ctx.args.equalizer)
            used = ft.channel_uses(ctx.token_dim)
            outs = []
            for i in range(0, len(es), bs):
                o = ft(es.features[i:i + bs].to(dev), snr_db=snr_db)
                if o.channel_uses != used:
                    raise RuntimeError(f"CLIP-FT spent {o.channel_uses} channel uses, expected {used}")
                outs.append(o.x_hat.float().cpu())
            logits = ctx.plain_logits(torch.cat(outs), es.class_names)
            note = f"CLIP-FT: the raw token, L = N/2 = {used}" if used != L else ""
            return dict(channel_uses=used, note=note, **_metrics_from_logits(logits, es.labels))
        if system == "djscc-ir":
            bottleneck, why = ctx.djscc_ir_bottleneck(L)
            if bottleneck is None:  # recorded with the reason, never silently skipped
                return dict(channel_uses=L, note=why, top1=math.nan, top5=math.nan, retrieval_top1=math.nan)
            codec = ctx.djscc_ir(L)
            ch = ctx.channel()
            logits, quality = [], _QualityAccumulator()
            for imgs, _, _ in es.image_batches(bs):
                o = codec(imgs.to(dev), ch, snr_db)
                if o.channel_uses != L:
                    raise RuntimeError(f"DJSCC-IR spent {o.channel_uses} channel uses, expected {L}")
                logits.append(ctx.plain_logits(ctx.encode_images(o.x_hat.float()), es.class_names))
                quality.add(o.x_hat, imgs)
            note = "; ".join(n for n in (why, quality.note()) if n)
            return dict(channel_uses=L, note=note, **quality.means(),
                        **_metrics_from_logits(torch.cat(logits), es.labels))
        if system == "djscc-ft":
            from baselines.djscc_ft import predict_global_labels

            model = ctx.djscc_ft(L)
            ch = ctx.channel()
            seen_names = ctx.train_set().class_names
            hit1 = hit5 = 0
            for imgs, labels, pos in es.image_batches(bs):
                pred = predict_global_labels(model, model(imgs.to(dev), ch, snr_db), k=5).cpu()
                if es.global_labels is not None:  # same class space: compare global ids
                    target = es.global_labels[pos][:, None]
                    match = pred == target
                else:  # another data set: compare class names
                    ids = model.class_ids_t.cpu().tolist()
                    lut = {g: seen_names[i] for i, g in enumerate(ids)}
                    match = torch.tensor([[lut[int(p)] == es.class_names[int(y)] for p in row]
                                          for row, y in zip(pred, labels)], dtype=torch.bool)
                hit1 += int(match[:, :1].any(dim=1).sum())
                hit5 += int(match.any(dim=1).sum())
            n = len(es)
            note = (f"DJSCC-FT: head covers the {model.config.num_classes} seen classes only; "
                    "no text encoder, retrieval not defined")
            return dict(channel_uses=model.channel_uses, top1=hit1 / n, top5=hit5 / n, retrieval_top1=math.nan,
                        note=note)
        if system == "bt-ir":
            bt = ctx.btir(L)
            logits, delivered, bits, budget = [], [], [], None
            quality = _QualityAccumulator()
            for imgs, _, _ in es.image_batches(bs):
                res = bt.transmit(imgs, float(snr_db))
                budget = res.budget_bits
                ok = [im for im in res.images if im is not None]
                lg = torch.zeros(imgs.shape[0], G)
                if ok:
                    lg[res.delivered] = ctx.plain_logits(ctx.encode_images(torch.stack(ok)), es.class_names)
                    quality.add(torch.stack(ok), imgs[res.delivered])
                logits.append(lg)
                delivered.append(res.delivered)
                bits += [b for b in res.payload_bits if b is not None]
            m = _btir_metrics(torch.cat(logits), torch.cat(delivered), es.labels, G, budget, bits, bt.codec.name)
            if quality.n:
                m["note"] += f"; image metrics over the {quality.n} delivered images"
            if quality.note():
                m["note"] += f"; {quality.note()}"
            return dict(channel_uses=bt.channel_uses, **quality.means(), **m)
    raise ValueError(f"system must be one of {list(SYSTEMS)}, got {system!r}")


class _QualityAccumulator:
    """Per-image PSNR / SSIM / MS-SSIM of reconstructions vs inputs (torchmetrics), averaged over the images
    added; MS-SSIM only where the image sides reach :data:`semantic.metrics.MS_SSIM_MIN_SIDE`."""

    def __init__(self):
        self.values: Dict[str, List[float]] = {m: [] for m in IMAGE_QUALITY}
        self.skipped = ""

    @property
    def n(self) -> int:
        return len(self.values["psnr"])

    def add(self, images, references) -> None:
        from semantic.metrics import MS_SSIM_MIN_SIDE, image_quality

        images = images.detach().float().cpu().clamp(0, 1)
        references = references.detach().float().cpu().clamp(0, 1)
        ms = min(images.shape[-2:]) >= MS_SSIM_MIN_SIDE
        if not ms:
            self.skipped = f"MS-SSIM not computed: {tuple(images.shape[-2:])} px < {MS_SSIM_MIN_SIDE} px"
        for m, r in image_quality(images, references, IMAGE_QUALITY if ms else ("psnr", "ssim")).items():
            self.values[m] += r.values

    def means(self) -> Dict[str, float]:
        return {m: (sum(v) / len(v) if v else math.nan) for m, v in self.values.items()}

    def note(self) -> str:
        return self.skipped


def _btir_metrics(logits, delivered, labels, G: int, budget: int, bits: List[int], codec: str) -> Dict:
    """BT-IR metrics: delivered images classified by CLIP, the others a uniform guess (expected value);
    in retrieval the undelivered images rank below every delivered one."""

    from semantic.semclip import classification_topk, text_to_image_retrieval

    n = labels.numel()
    nd = int(delivered.sum())
    chance = chance_metrics(labels, G)
    out = {}
    for k, name in ((1, "top1"), (5, "top5")):
        hits = classification_topk(logits[delivered], labels[delivered], (k,))[k] * nd if nd else 0.0
        out[name] = (hits + (n - nd) * chance[name]) / n
    if nd == 0:
        out["retrieval_top1"] = chance["retrieval_top1"]
    else:
        scores = logits.clone()
        scores[~delivered] = -math.inf
        out["retrieval_top1"] = text_to_image_retrieval(scores, labels, (1,))[1]
    note = (f"BT-IR ({codec}): {n - nd}/{n} images not delivered" + (" (chance)" if n - nd else "")
            + f"; budget {budget} bits, max payload {max(bits) if bits else 0} bits")
    out["note"] = note
    return out


# ------------------------------------------------------------------------------------------------
# studies
# ------------------------------------------------------------------------------------------------
def _table(path: Path, keys=KEYS, values=VALUES):
    from experiments.core.results import open_table

    return open_table(path, keys=keys, values=values)


def _sweep(ctx: Context, table, points, es: EvalSet, extra_keys: Optional[dict] = None) -> int:
    """Evaluate every (system, snr, L) of ``points`` whose row is not in ``table``; returns rows added."""
    from experiments.core.results import format_value
    from phy.utils.conventions import bandwidth_compression_ratio

    done = table.finished_keys()
    added = 0
    for system, snr, L in points:
        used = ctx.system_channel_uses(system, L)
        row_keys = dict(extra_keys or {}, system=system, channel=ctx.args.channel, snr_db=float(snr),
                        channel_uses=used)
        if tuple(format_value(row_keys[k]) for k in table.key_columns) in done:
            continue
        r = evaluate_point(ctx, system, es, float(snr), int(L))
        if r["channel_uses"] != used:
            raise RuntimeError(f"{system} spent {r['channel_uses']} channel uses, expected {used}")
        ratio = bandwidth_compression_ratio(r["channel_uses"], ctx.image_shape)
        table.append(dict(row_keys, bandwidth_ratio=ratio, top1=r["top1"], top5=r["top5"],
                          retrieval_top1=r["retrieval_top1"], note=r["note"],
                          **{m: r.get(m, math.nan) for m in IMAGE_QUALITY}))
        done.add(tuple(format_value(row_keys[k]) for k in table.key_columns))
        added += 1
        print(f"[semclip-eval] {extra_keys or ''} {system} snr={snr} dB L={used}: top1={r['top1']:.4f} "
              f"top5={r['top5']:.4f} retrieval@1={r['retrieval_top1']:.4f} {r['note']}", flush=True)
    return added


def _rows(path: Path):
    from experiments.core.results import read_rows

    return read_rows(path)


def _check_ablation_rows(path: Path, per_snr: bool) -> None:
    """Refuse to add semclip-noaf rows of one ablation protocol to a CSV holding the other's (the row key
    does not say which; the note does)."""
    mode = "per-SNR" if per_snr else "one model over the SNR range"
    for r in _rows(path):
        if r.get("system") == "semclip-noaf" and ("per-SNR ablation" in (r.get("note") or "")) != per_snr:
            other = "one model over the SNR range" if per_snr else "per-SNR"
            raise ValueError(f"{path} holds semclip-noaf rows of the {other} ablation, this run asks for the {mode} "
                             "one (--ablation-per-snr / --no-ablation-per-snr); use a new --out or delete those rows")


def _series(rows, x: str, y: str, systems: Sequence[str]):
    out = {}
    for s in systems:
        pts = sorted((float(r[x]), float(r[y]) if r[y] not in ("", None) else math.nan)
                     for r in rows if r["system"] == s)
        if pts:
            out[SYSTEM_LABELS.get(s, s)] = ([p[0] for p in pts], [p[1] for p in pts])
    return out


def _write_markdown(path: Path, header: List[str], body: List[List[str]]) -> None:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


def _fmt(v: str) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "n/a" if math.isnan(f) else f"{100 * f:.2f}"


def study_snr(ctx: Context, systems: Sequence[str], snrs: Sequence[float], table_snrs: Sequence[float]) -> int:
    """Accuracy vs SNR (fig. 3, table I)."""
    from experiments.core.plots import plot_metric_vs_snr
    from experiments.core.results import write_json_atomic

    out = ctx.out
    L = ctx.args.snr_channel_uses or max(1, ctx.token_dim // 2)
    table = _table(out / "accuracy_vs_snr.csv")
    _check_ablation_rows(out / "accuracy_vs_snr.csv", ctx.args.ablation_per_snr)
    es = ctx.eval_set()
    per_snr = ctx.args.ablation_per_snr
    points = [(s, snr, L) for s in systems for snr in snrs
              if not (per_snr and s == "semclip-noaf" and float(snr) not in {float(t) for t in table_snrs})]
    if per_snr and "semclip-noaf" in systems:
        print("[semclip-eval] semclip-noaf (per-SNR ablation): one no-AF JSCC per table-I SNR "
              f"({', '.join(snr_tag(t) for t in table_snrs)} dB), evaluated there only", flush=True)
    added = _sweep(ctx, table, points, es)
    rows = [r for r in _rows(out / "accuracy_vs_snr.csv") if r["channel"] == ctx.args.channel]
    plot_metric_vs_snr(_series(rows, "snr_db", "top1", systems), out / "fig3_top1_vs_snr.png",
                       ylabel="zero-shot top-1 accuracy (unseen classes)",
                       title=f"accuracy vs SNR ({ctx.args.channel})")
    rs = _series(rows, "snr_db", "retrieval_top1", [s for s in systems if s != "djscc-ft"])
    if rs:
        plot_metric_vs_snr(rs, out / "fig3_retrieval_vs_snr.png", ylabel="text-to-image retrieval top-1",
                           title=f"retrieval vs SNR ({ctx.args.channel})")
    # table I: top-1 / top-5 at the selected SNRs (those that were run)
    have = sorted({float(r["snr_db"]) for r in rows})
    cols = [s for s in table_snrs if float(s) in have]
    header = ["system"] + [f"top1@{s:g}dB" for s in cols] + [f"top5@{s:g}dB" for s in cols]
    body = []
    for s in systems:
        by = {float(r["snr_db"]): r for r in rows if r["system"] == s}
        if by:
            body.append([SYSTEM_LABELS[s]] + [_fmt(by[c]["top1"]) if c in by else "" for c in cols]
                        + [_fmt(by[c]["top5"]) if c in by else "" for c in cols])
    _write_markdown(out / "table_i.md", header, body)
    _write_csv(out / "table_i.csv", header, body)
    write_json_atomic(out / "accuracy_vs_snr.meta.json", {"channel_uses": L, "image_shape": ctx.image_shape,
                                                          "n_images": len(es), "classes": es.class_names})
    return added


def _write_csv(path: Path, header, body) -> None:
    import csv

    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(body)
    tmp.replace(path)


def check_noaf_template(opt: Optional[str]) -> None:
    """``ValueError`` unless ``--semclip-noaf-jscc`` (``opt``) is absent or holds ``{snr}``: the per-SNR ablation
    (``--ablation-per-snr``) loads one fixed-SNR no-AF JSCC per SNR."""
    if opt and "{snr}" not in opt:
        raise ValueError(f"--semclip-noaf-jscc {opt!r} names one checkpoint, but --ablation-per-snr needs one "
                         "no-AF JSCC per SNR: put {snr} in the path (e.g. runs/noaf-L{L}-snr{snr}) or pass "
                         "--no-ablation-per-snr")


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


def study_bandwidth(ctx: Context, systems: Sequence[str], Ls: Sequence[int], snr: float,
                    extra: Optional[Dict[str, List[int]]] = None) -> int:
    """Accuracy vs bandwidth ratio at one SNR (fig. 4); ``extra``: more L values for single systems."""
    from experiments.core.plots import plot_metric_vs_snr

    out = ctx.out
    table = _table(out / "accuracy_vs_bandwidth.csv")
    points = []
    for s in systems:
        for L in (Ls if s != "clip-ft" else Ls[:1]):  # CLIP-FT has a single point (L = N/2)
            points.append((s, snr, L))
        points += [(s, snr, L) for L in (extra or {}).get(s, []) if L not in Ls]
    added = _sweep(ctx, table, points, ctx.eval_set())
    rows = [r for r in _rows(out / "accuracy_vs_bandwidth.csv")
            if r["channel"] == ctx.args.channel and float(r["snr_db"]) == float(snr)]
    plot_metric_vs_snr(_series(rows, "bandwidth_ratio", "top1", systems), out / "fig4_top1_vs_bandwidth.png",
                       xlabel="bandwidth ratio L / (C H W)", ylabel="zero-shot top-1 accuracy (unseen classes)",
                       title=f"accuracy vs bandwidth ratio at {snr:g} dB ({ctx.args.channel})")
    return added


def study_cross(ctx: Context, systems: Sequence[str], datasets, snrs: Sequence[float]) -> int:
    """Cross-dataset zero-shot table (table II); absent data sets get a row saying so."""
    import torch

    from experiments.core.results import format_value

    out = ctx.out
    keys = ["dataset"] + KEYS
    table = _table(out / "cross_dataset.csv", keys=keys, values=VALUES)
    _check_ablation_rows(out / "cross_dataset.csv", ctx.args.ablation_per_snr)
    L = ctx.args.snr_channel_uses or max(1, ctx.token_dim // 2)
    added = 0
    for name, path in datasets:
        layout = name if name in ("oxford_pets", "food101", "caltech101", "imagenet", "folder") else "folder"
        if not Path(path).expanduser().exists():
            k = tuple(format_value(v) for v in (name, "absent", ctx.args.channel, math.nan, 0))
            if k not in table.finished_keys():
                table.append({"dataset": name, "system": "absent", "channel": ctx.args.channel, "snr_db": math.nan,
                              "channel_uses": 0, "bandwidth_ratio": math.nan, "top1": math.nan, "top5": math.nan,
                              "retrieval_top1": math.nan, "note": f"dataset not found at {path}: skipped",
                              **{m: math.nan for m in IMAGE_QUALITY}})
                added += 1
            print(f"[semclip-eval] cross-dataset: {name} not found at {path}: skipped", flush=True)
            continue
        fs, raw = ctx.features_of(f"cross-{name}", layout, str(Path(path).expanduser()))
        idx = torch.arange(len(fs))
        if ctx.args.max_images is not None and len(fs) > ctx.args.max_images:
            g = torch.Generator().manual_seed(ctx.args.seed)
            idx = torch.randperm(len(fs), generator=g)[: ctx.args.max_images].sort().values
        es = EvalSet(name, fs.features[idx].float(), fs.labels[idx], list(fs.class_names), raw, idx.tolist(), None)
        added += _sweep(ctx, table, [(s, snr, L) for s in systems for snr in snrs], es, {"dataset": name})
    rows = [r for r in _rows(out / "cross_dataset.csv") if r["system"] != "absent"]
    names = [n for n, _ in datasets if any(r["dataset"] == n for r in rows)]
    body = []
    for s in systems:
        for snr in snrs:
            by = {r["dataset"]: r for r in rows if r["system"] == s and float(r["snr_db"]) == float(snr)}
            if by:
                body.append([SYSTEM_LABELS[s], f"{snr:g}"] + [_fmt(by[n]["top1"]) if n in by else "" for n in names])
    _write_markdown(out / "table_ii.md", ["system", "snr_db"] + [f"{n} top1" for n in names], body)
    return added


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _timed(fn, device, repeats: int = 1) -> float:
    import torch

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()  # warm-up (kernel selection, caches)
    sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - t0) / repeats


def study_complexity(ctx: Context, n_images: int) -> int:
    """Parameters and measured time of each module for ``n_images`` images (table III)."""
    import torch

    from experiments.core.results import format_value

    out = ctx.out
    table = _table(out / "complexity.csv", keys=["module", "device", "images"],
                   values=["system", "params", "time_s", "ms_per_image", "note"])
    dev, bs = ctx.device, ctx.args.batch_size
    es = ctx.eval_set()
    reps = -(-n_images // len(es))
    pick = (list(range(len(es))) * reps)[:n_images]
    images = torch.stack([es.dataset[es.indices[i]][0] for i in pick]).to(dev)
    tokens = es.features[pick].to(dev)
    L = ctx.args.snr_channel_uses or max(1, ctx.token_dim // 2)
    snr = torch.zeros(n_images, device=dev)
    done = table.finished_keys()
    names = es.class_names

    def batched(fn, x):
        return [fn(x[i:i + bs]) for i in range(0, x.shape[0], bs)]

    entries = []
    with torch.no_grad():
        entries.append(("CLIP image encoder", "all CLIP-based", _count(ctx.model.visual),
                        lambda: batched(lambda x: ctx.encode_images(x), images), "on the CLIP input size"))
        codec = ctx.jscc(L, True)
        syms = codec.encoder(tokens, snr)
        entries.append(("SemCLIP JSCC encoder", "semclip", _count(codec.encoder),
                        lambda: codec.encoder(tokens, snr), f"L={codec.channel_uses}"))
        entries.append(("SemCLIP JSCC decoder", "semclip", _count(codec.decoder),
                        lambda: codec.decoder(syms, snr), f"L={codec.channel_uses}"))
        tapl = ctx.tapl(L)
        perf = ctx.performer(L)
        entries.append(("TAPL meta-net + context", "semclip", _count(tapl), lambda: tapl(tokens), ""))
        entries.append(("TAPL + CLIP text encoder", "semclip", _count(tapl) + _count(ctx.tower),
                        lambda: batched(lambda x: perf(x, names), tokens),
                        f"{len(names)} class prompts per image"))
        entries.append(("CLIP text encoder (zero-shot prompts)", "semclip-notapl/clip-ft/djscc-ir/bt-ir",
                        _count(ctx.tower), lambda: ctx.tower.encode_ids(ctx.tokenizer(
                            [f"a photo of a {c}." for c in names]).to(dev)),
                        f"once per class set ({len(names)} prompts), not per image"))
        ir = ctx.djscc_ir(L, train=False).to(dev).eval()
        isyms = ir.encoder(images[:bs], snr[:bs])
        entries.append(("DJSCC-IR encoder", "djscc-ir", _count(ir.encoder),
                        lambda: batched(lambda x: ir.encoder(x, snr[:x.shape[0]]), images), f"L={L}"))
        entries.append(("DJSCC-IR decoder", "djscc-ir", _count(ir.decoder),
                        lambda: [ir.decoder(isyms[: min(bs, n_images - i)], snr[: min(bs, n_images - i)])
                                 for i in range(0, n_images, bs)], f"L={L}"))
        ft = ctx.djscc_ft(L, train=False).to(dev).eval()
        ch = ctx.channel()
        entries.append(("DJSCC-FT (CNN + JSCC + head)", "djscc-ft", _count(ft),
                        lambda: batched(lambda x: ft(x, ch, snr[:x.shape[0]]), images), f"L={L}, with the channel"))
        bt = ctx.btir(L)
        cpu_imgs = images.cpu()
        entries.append((f"BT-IR codec ({bt.codec.name})", "bt-ir",  # learned codecs load their models lazily
                        lambda: sum(_count(m) for m in getattr(bt.codec, "_models", {}).values()),
                        lambda: bt.transmit(cpu_imgs, 0.0), f"fit to the budget of L={L} at 0 dB + decode"))
    added = 0
    for module, system, params, fn, note in entries:
        key = (module, str(dev), n_images)
        if tuple(format_value(v) for v in key) in done:
            continue
        with torch.no_grad():
            t = _timed(fn, dev)
        params = params() if callable(params) else params
        table.append({"module": module, "device": str(dev), "images": n_images, "system": system, "params": params,
                      "time_s": t, "ms_per_image": 1000 * t / n_images, "note": note})
        added += 1
        print(f"[semclip-eval] complexity {module}: {params} params, {t * 1000:.2f} ms / {n_images} images",
              flush=True)
    rows = [r for r in _rows(out / "complexity.csv") if r["device"] == str(dev)]
    _write_markdown(out / "complexity.md", ["module", "system", "params", f"time [s] / {n_images} images", "note"],
                    [[r["module"], r["system"], r["params"], f"{float(r['time_s']):.4f}", r["note"]] for r in rows
                     if int(r["images"]) == n_images])
    return added


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
