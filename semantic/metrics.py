"""Semantic metrics wrapping the field's libraries: BLEU, BERTScore, LPIPS, CLIP score, PSNR/SSIM/MS-SSIM.

Every metric takes a batch, runs on any device, and returns per-item values with their mean and a
95 % confidence interval in a :class:`MetricResult` (composite metrics return a dict of them).

=============  =======================  ===========================================================
metric         library                  what is reported
=============  =======================  ===========================================================
BLEU-4/BLEU-1  ``sacrebleu``            sentence BLEU per item (0-100, ``effective_order``, ``exp``
                                        smoothing) and the corpus BLEU in ``details["corpus"]``;
                                        the DeepSC literature reports BLEU-1 on a 0-1 scale
BERTScore      ``bert-score``           precision / recall / F1 per item; the standard model is
                                        ``roberta-large`` at layer 17; any local model directory
                                        works offline with an explicit ``num_layers``
LPIPS          ``lpips`` (v0.1, alex)   per-image distance; AlexNet ImageNet trunk from the torch
                                        hub cache (never downloaded) + the linear layers shipped
                                        with ``lpips``
CLIP score     ``open_clip``            ``100 * max(cos(image, caption), 0)`` per item
PSNR, SSIM,    ``torchmetrics``         per image, RGB in [0, 1] (``data_range`` 1): PSNR in dB;
MS-SSIM                                 SSIM with an 11-px Gaussian window (sigma 1.5); MS-SSIM with
                                        5 scales and Wang et al.'s weights (needs sides >= 161 px)
=============  =======================  ===========================================================

Nothing here downloads: missing weights raise ``FileNotFoundError`` naming the model, where it was
looked for and how to provide it.

Example
-------
>>> from semantic.metrics import bleu
>>> r = bleu(["the cat sat on the mat ."], ["the cat sat on the mat ."])
>>> round(r["bleu4"].mean, 1), round(r["bleu1"].mean, 1)
(100.0, 100.0)
"""
from __future__ import annotations

import math
import numbers
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch

__all__ = [
    "MetricResult",
    "summarize",
    "bleu",
    "BERTScore",
    "bertscore",
    "DEFAULT_BERTSCORE_MODEL",
    "DEFAULT_BERTSCORE_LAYER",
    "LPIPS",
    "lpips_distance",
    "alexnet_cache_file",
    "ClipScore",
    "clip_score",
    "DEFAULT_CLIP_MODEL",
    "DEFAULT_CLIP_PRETRAINED",
    "image_quality",
    "IMAGE_QUALITY_METRICS",
    "MS_SSIM_MIN_SIDE",
]

PathLike = Union[str, os.PathLike]

#: BERTScore's default model (the ``bert_score`` default for English).
DEFAULT_BERTSCORE_MODEL = "roberta-large"
#: The layer of :data:`DEFAULT_BERTSCORE_MODEL` whose embeddings BERTScore compares.
DEFAULT_BERTSCORE_LAYER = 17
#: The open_clip architecture of :class:`ClipScore`.
DEFAULT_CLIP_MODEL = "ViT-B-32"
#: The open_clip weights tag of :class:`ClipScore`.
DEFAULT_CLIP_PRETRAINED = "openai"


# --------------------------------------------------------------------------------------------
# Result container and statistics
# --------------------------------------------------------------------------------------------
@dataclass
class MetricResult:
    """Per-item values of one metric with their mean and 95 % confidence interval.

    Attributes
    ----------
    values : list of float
        One value per item, in input order.
    mean : float
    ci_low, ci_high : float
        Student-t 95 % confidence interval of the mean (``NaN`` when ``n < 2``).
    n : int
    name : str
    details : dict
        What produced the numbers (model, layer, backbone, corpus-level score, ...).

    Examples
    --------
    >>> r = summarize([0.5, 0.7, 0.9], "bleu")
    >>> r.name, r.n, round(r.mean, 6), r.ci_low < r.mean < r.ci_high
    ('bleu', 3, 0.7, True)
    """

    values: List[float]
    mean: float
    ci_low: float
    ci_high: float
    n: int
    name: str
    details: Dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, Any]:
        """Summary (no per-item values) for CSV rows / manifests."""
        return {"name": self.name, "mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "n": self.n, **{k: v for k, v in self.details.items() if isinstance(v, (str, int, float, bool))}}


def summarize(values: Union[Sequence[float], torch.Tensor], name: str, details: Optional[Dict[str, Any]] = None,
              confidence: float = 0.95) -> MetricResult:
    """Mean and Student-t confidence interval of per-item ``values``.

    ``values`` is a sequence or a tensor of any shape (flattened: one value per item).

    Example
    -------
    >>> r = summarize([1.0, 2.0, 3.0], "x")
    >>> r.mean, round(r.ci_low, 3), round(r.ci_high, 3)
    (2.0, -0.484, 4.484)
    """
    if isinstance(values, torch.Tensor):
        values = values.detach().double().cpu().reshape(-1).tolist()
    vals = [float(v) for v in values]
    n = len(vals)
    if n == 0:
        raise ValueError(f"{name}: need at least one value to summarise, got none")
    mean = math.fsum(vals) / n
    if n < 2:
        lo = hi = float("nan")
    else:
        from scipy.stats import t as student_t

        var = math.fsum((v - mean) ** 2 for v in vals) / (n - 1)
        half = float(student_t.ppf(0.5 + confidence / 2.0, n - 1)) * math.sqrt(var / n)
        lo, hi = mean - half, mean + half
    return MetricResult(values=vals, mean=mean, ci_low=lo, ci_high=hi, n=n, name=name,
                        details=dict(details or {}))


def _check_texts(cands, refs, cand_name="hypotheses", ref_name="references") -> Tuple[List[str], List[str]]:
    for name, seq in ((cand_name, cands), (ref_name, refs)):
        if isinstance(seq, str) or not isinstance(seq, Sequence):
            raise TypeError(f"{name} must be a list of str, got {type(seq).__name__}")
        bad = [type(s).__name__ for s in seq if not isinstance(s, str)]
        if bad:
            raise TypeError(f"{name} must contain only str, got {bad[0]}")
    if len(cands) != len(refs):
        raise ValueError(f"{cand_name} and {ref_name} must have the same length, got {len(cands)} and {len(refs)}")
    if len(cands) == 0:
        raise ValueError(f"{cand_name} is empty: need at least one sentence")
    return list(cands), list(refs)


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


# --------------------------------------------------------------------------------------------
# BLEU (sacrebleu)
# --------------------------------------------------------------------------------------------
def bleu(hypotheses: Sequence[str], references: Sequence[str], orders: Sequence[int] = (4, 1),
         tokenize: Optional[str] = None, lowercase: bool = False,
         smooth_method: str = "exp") -> Dict[str, MetricResult]:
    """Sentence-level (per item) and corpus-level BLEU with sacrebleu.

    Parameters
    ----------
    hypotheses, references : list of str, same length
        One reference per hypothesis.
    orders : sequence of int
        Maximum n-gram orders to report; ``(4, 1)`` gives ``"bleu4"`` and ``"bleu1"``.
    tokenize : str, optional
        sacrebleu tokenizer (default ``"13a"``).
    lowercase : bool
    smooth_method : str
        Smoothing of the sentence-level scores (sacrebleu's ``"exp"`` by default); the corpus score
        is unsmoothed sacrebleu ``corpus_score`` as usual.

    Returns
    -------
    dict ``"bleu<N>" -> MetricResult``
        Values on sacrebleu's 0-100 scale; sentence scores use ``effective_order=True`` (a
        sentence shorter than N words is scored on the orders it has). ``details["corpus"]`` is
        the corpus BLEU of the whole batch (not the mean of sentence scores).

    Example
    -------
    >>> r = bleu(["a b c d"], ["a b c e"], orders=(1,))
    >>> [round(v, 6) for v in r["bleu1"].values]
    [75.0]
    """
    from sacrebleu.metrics import BLEU

    hyps, refs = _check_texts(hypotheses, references)
    out = {}
    for order in orders:
        if isinstance(order, bool) or not isinstance(order, numbers.Integral) or order < 1:
            raise ValueError(f"orders must contain positive ints, got {order!r}")
        kw = dict(lowercase=lowercase, max_ngram_order=int(order), tokenize=tokenize)
        sent = BLEU(effective_order=True, smooth_method=smooth_method, **kw)
        corpus = BLEU(**kw)
        values = [sent.sentence_score(h, [r]).score for h, r in zip(hyps, refs)]
        c = corpus.corpus_score(hyps, [refs])
        details = {"corpus": float(c.score), "max_ngram_order": int(order), "scale": 100,
                   "tokenize": corpus.tokenizer.signature(), "smooth_method": smooth_method,
                   "signature": str(corpus.get_signature())}
        out[f"bleu{order}"] = summarize(values, f"bleu{order}", details)
    return out


# --------------------------------------------------------------------------------------------
# BERTScore (bert-score)
# --------------------------------------------------------------------------------------------
def _hf_cache_dir() -> str:
    """The Hugging Face hub cache in use (read at call time, see :mod:`semantic.checkpoints`)."""
    from semantic.checkpoints import hub_cache_dir

    return str(hub_cache_dir())


def _hf_cached_file(repo_id: str, filename: str) -> Optional[str]:
    """Path of ``filename`` of ``repo_id`` in the local Hugging Face cache, or None (no network)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        p = try_to_load_from_cache(repo_id=repo_id.strip("/"), filename=filename, cache_dir=_hf_cache_dir())
    except Exception:  # invalid repo id, etc.
        return None
    return p if isinstance(p, str) and os.path.isfile(p) else None


def _hf_snapshot(repo_id: str) -> Optional[Path]:
    """Folder of the cached snapshot of ``repo_id`` (holding ``config.json``), or None; no network."""
    from huggingface_hub import snapshot_download

    try:
        p = Path(snapshot_download(repo_id, local_files_only=True, cache_dir=_hf_cache_dir()))
    except Exception:  # not cached / invalid id
        return None
    return p if (p / "config.json").is_file() else None


class BERTScore:
    """BERTScore (Zhang et al., 2020) through ``bert_score.BERTScorer``, loaded once, offline.

    Parameters
    ----------
    model : str or path, optional
        A Hugging Face model id (default ``"roberta-large"``, the standard English model) that
        must already be in the local Hugging Face cache, or a local model directory (config,
        weights and tokenizer files together), e.g. the MiniLM of
        :func:`semantic.sentences.minilm_model_dir`.
    num_layers : int, optional
        Layer whose representations are compared. Defaults to bert-score's tuned layer for a
        known model id (17 for roberta-large); **required** for a local directory (bert-score
        looks the default up by model name, which a path does not have).
    device : str or torch.device
    batch_size : int
    idf : bool
        Inverse-document-frequency weighting computed on the references of each call.
    allow_download : bool, optional
        A model id missing from the local cache raises
        :class:`semantic.checkpoints.CheckpointNotFoundError` (a ``FileNotFoundError``) instead of
        trying the network, unless downloads are allowed (``True``, or ``None`` with
        ``SEMCOM_ALLOW_DOWNLOAD=1``; never with ``HF_HUB_OFFLINE=1``), see
        :func:`semantic.checkpoints.downloads_allowed`.

    Notes
    -----
    The model and layer used are in every result's ``details`` (``model``, ``num_layers``).

    Example
    -------
    >>> from semantic.sentences import minilm_model_dir
    >>> bs = BERTScore(minilm_model_dir(), num_layers=6)              # doctest: +SKIP
    >>> bs(["a cat sits."], ["a cat sits."])["f1"].mean                # doctest: +SKIP
    1.0
    """

    def __init__(self, model: Optional[PathLike] = None, num_layers: Optional[int] = None,
                 device: Union[str, torch.device] = "cpu", batch_size: int = 64, idf: bool = False,
                 allow_download: Optional[bool] = None):
        import bert_score
        from bert_score.utils import model2layers

        model = DEFAULT_BERTSCORE_MODEL if model is None else model
        if not isinstance(model, (str, os.PathLike)):
            raise TypeError(f"model must be a Hugging Face model id or a local directory, got {type(model).__name__}")
        if num_layers is not None and (isinstance(num_layers, bool) or not isinstance(num_layers, numbers.Integral)
                                       or num_layers < 0):
            raise ValueError(f"num_layers must be a non-negative int, got {num_layers!r}")
        self.batch_size = _check_batch_size(batch_size)
        path = Path(model).expanduser()
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise FileNotFoundError(f"model directory {str(path)!r} has no config.json: it must hold a "
                                        "transformers model (config, weights and tokenizer files)")
            if num_layers is None:
                raise ValueError(f"num_layers must be given for a local model directory ({str(path)!r}); "
                                 "bert-score only knows default layers for model ids (e.g. roberta-large: 17). "
                                 "For the packaged MiniLM (6 layers) use num_layers=6.")
            model_type, source, load_from = str(path), "local directory", str(path)
        else:
            model_type = str(model)
            if model_type.startswith(("/", ".", "~")) or model_type.count("/") > 1 or "\\" in model_type:
                raise FileNotFoundError(f"model {model_type!r} looks like a path but is not a directory")
            if num_layers is None:
                if model_type not in model2layers:
                    raise ValueError(f"num_layers must be given for model {model_type!r} (no default layer known "
                                     "to bert-score)")
                num_layers = model2layers[model_type]
            from semantic.checkpoints import downloads_allowed

            snapshot = _hf_snapshot(model_type)
            if snapshot is None and not downloads_allowed(allow_download):
                from semantic.checkpoints import CheckpointNotFoundError

                raise CheckpointNotFoundError(
                    f"BERTScore model {model_type!r} is not in the local Hugging Face cache ({_hf_cache_dir()}) "
                    "and downloads are disabled. Provide it by running "
                    f"`huggingface-cli download {model_type}` on a machine with internet access and copying the "
                    "cache (or setting HF_HOME to it), or pass model=<local model directory> with num_layers=..., "
                    "e.g. semantic.sentences.minilm_model_dir() with num_layers=6 (then name that model in "
                    "the results: it is not comparable with roberta-large scores).", model_type
                )
            source = str(snapshot) if snapshot is not None else "hugging face hub (download)"
            load_from = str(snapshot) if snapshot is not None else model_type
        self.model_type = model_type
        self.num_layers = int(num_layers)
        self.device = str(torch.device(device))
        self.idf = bool(idf)
        # nthreads=0: the IDF counts in this process; bert-score's default forks a multiprocessing pool, which can
        # deadlock a process that already runs threads (torch, numba, a data loader)
        self._scorer = bert_score.BERTScorer(model_type=load_from, num_layers=self.num_layers, device=self.device,
                                             batch_size=self.batch_size, idf=self.idf, nthreads=0)
        self.details = {"model": model_type, "num_layers": self.num_layers, "source": source, "idf": self.idf,
                         "standard": model_type == DEFAULT_BERTSCORE_MODEL and self.num_layers == DEFAULT_BERTSCORE_LAYER}

    def __call__(self, candidates: Sequence[str], references: Sequence[str]) -> Dict[str, MetricResult]:
        """Per-item precision, recall and F1 (keys ``"precision"``, ``"recall"``, ``"f1"``).

        An empty (or whitespace-only) candidate or reference scores 0, and 1 when both are empty
        (bert-score cannot embed an empty string with transformers 5); ``details["n_empty"]``
        counts such items.
        """
        cands, refs = _check_texts(candidates, references, "candidates", "references")
        n = len(cands)
        keep = [i for i in range(n) if cands[i].strip() and refs[i].strip()]
        out = {k: [0.0] * n for k in ("precision", "recall", "f1")}
        for i in range(n):
            if not cands[i].strip() and not refs[i].strip():
                for k in out:
                    out[k][i] = 1.0
        if keep:
            kc, kr = [cands[i] for i in keep], [refs[i] for i in keep]
            if self.idf:
                self._scorer.compute_idf(kr)
            p, r, f = self._scorer.score(kc, kr, batch_size=self.batch_size)
            for k, v in (("precision", p), ("recall", r), ("f1", f)):
                for i, x in zip(keep, v.tolist()):
                    out[k][i] = float(x)
        details = {**self.details, "n_empty": n - len(keep)}
        return {k: summarize(v, f"bertscore_{k}", details) for k, v in out.items()}


def bertscore(candidates: Sequence[str], references: Sequence[str], model: Optional[PathLike] = None,
              num_layers: Optional[int] = None, device: Union[str, torch.device] = "cpu",
              batch_size: int = 64) -> Dict[str, MetricResult]:
    """One-shot :class:`BERTScore` (loads the model on every call; keep a ``BERTScore`` for loops).

    Examples
    --------
    The example needs the RoBERTa-large weights of BERTScore in the Hugging Face cache, so it is not run
    by the test-suite:

    >>> bertscore(["a dog runs"], ["a dog is running"])["f1"].mean   # doctest: +SKIP
    0.95...
    """
    return BERTScore(model, num_layers=num_layers, device=device, batch_size=batch_size)(candidates, references)


# --------------------------------------------------------------------------------------------
# LPIPS (lpips, AlexNet)
# --------------------------------------------------------------------------------------------
def alexnet_cache_file() -> Path:
    """Where torchvision keeps the ImageNet AlexNet weights: ``<torch hub dir>/checkpoints/<file>``.

    Examples
    --------
    >>> alexnet_cache_file().name, alexnet_cache_file().parent.name
    ('alexnet-owt-7be5be79.pth', 'checkpoints')
    """
    from torchvision.models import AlexNet_Weights

    name = os.path.basename(AlexNet_Weights.IMAGENET1K_V1.url)
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def _check_images(x, name: str, value_range: Tuple[float, float]) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [batch, 3, H, W], got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must have shape [batch, 3, H, W] (RGB), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor with values in {value_range}, got dtype {x.dtype}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch")
    lo, hi = value_range
    tol = 1e-4 * (hi - lo)
    if not torch.isfinite(x).all() or x.min().item() < lo - tol or x.max().item() > hi + tol:
        raise ValueError(f"{name} values must be finite and within value_range={value_range}, got "
                         f"[{x.min().item():.4g}, {x.max().item():.4g}]")
    return x


class LPIPS:
    """LPIPS distance (Zhang et al., 2018), v0.1 with the AlexNet trunk, through the ``lpips`` package.

    The trunk's ImageNet weights are read from torchvision's file in the torch hub cache
    (:func:`alexnet_cache_file`, ``~/.cache/torch/hub/checkpoints/alexnet-owt-7be5be79.pth`` by
    default, or ``$TORCH_HOME/hub/checkpoints/``) or from ``backbone_path``; nothing is downloaded.
    The calibrated linear layers ship inside ``lpips``.

    Parameters
    ----------
    device : str or torch.device
    backbone_path : path, optional
        Explicit AlexNet state-dict file (torchvision's ``alexnet-owt-7be5be79.pth``).
    allow_random_backbone : bool
        With no backbone weights, use a randomly initialised trunk instead of failing (for tests
        only; a warning is issued and results carry ``details["backbone"] = "random"``).
    value_range : (float, float)
        Range of the input images: ``(0, 1)`` (default) or ``(-1, 1)``.

    Example
    -------
    >>> import torch
    >>> m = LPIPS(allow_random_backbone=True)                        # doctest: +SKIP
    >>> x = torch.rand(2, 3, 64, 64)
    >>> m(x, x).values                                                # doctest: +SKIP
    [0.0, 0.0]
    """

    def __init__(self, device: Union[str, torch.device] = "cpu", backbone_path: Optional[PathLike] = None,
                 allow_random_backbone: bool = False, value_range: Tuple[float, float] = (0.0, 1.0),
                 batch_size: int = 32):
        if tuple(value_range) not in ((0.0, 1.0), (-1.0, 1.0)):
            raise ValueError(f"value_range must be (0, 1) or (-1, 1), got {value_range!r}")
        self.value_range = tuple(float(v) for v in value_range)
        self.batch_size = _check_batch_size(batch_size)
        self.device = torch.device(device)
        path = Path(backbone_path).expanduser() if backbone_path is not None else alexnet_cache_file()
        have = path.is_file()
        if not have and backbone_path is not None:
            raise FileNotFoundError(f"backbone_path {str(path)!r} does not exist")
        if not have and not allow_random_backbone:
            from semantic.checkpoints import CheckpointNotFoundError

            raise CheckpointNotFoundError(
                f"LPIPS (AlexNet) needs torchvision's ImageNet AlexNet weights, expected at {str(path)!r} (torch hub "
                "cache; set TORCH_HOME to move it). No download is attempted. Provide the file by running "
                "`python -c \"import torchvision; torchvision.models.alexnet(weights='IMAGENET1K_V1')\"` on a "
                f"machine with internet access and copying {path.name} into that directory, or pass "
                "backbone_path=<file>. (Tests may pass allow_random_backbone=True.)", str(path)
            )
        import lpips

        # pnet_rand=True: lpips builds the trunk without asking torchvision for (downloadable) weights;
        # the linear layers (pretrained=True) come from the lpips package itself.
        with warnings.catch_warnings():  # torchvision's deprecation notes about lpips' `pretrained=` call
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torchvision\.models")
            net = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
        if have:
            self._load_backbone(net, path)
            self.backbone = "imagenet"
        else:
            warnings.warn(f"LPIPS: no AlexNet weights at {str(path)!r}; using a RANDOM backbone "
                          "(allow_random_backbone=True). The numbers are not LPIPS.", stacklevel=2)
            self.backbone = "random"
        self.net = net.to(self.device).eval()
        self.details = {"net": "alex", "lpips_version": "0.1", "backbone": self.backbone,
                         "backbone_path": str(path) if have else None}

    @staticmethod
    def _load_backbone(net, path: Path) -> None:
        from semantic.checkpoints import safe_torch_load

        sd = safe_torch_load(path, what="AlexNet state dict")
        feats = {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")}
        if not feats:
            raise ValueError(f"{str(path)!r} is not an AlexNet state dict (no 'features.*' keys)")
        loaded = set()
        for i in range(1, net.net.N_slices + 1):
            for name, module in getattr(net.net, f"slice{i}").named_children():
                own = {k.split(".", 1)[1]: v for k, v in feats.items() if k.split(".", 1)[0] == name}
                if own:
                    module.load_state_dict(own)
                    loaded.update(f"{name}.{k}" for k in own)
        missing = set(feats) - loaded
        if missing:
            raise ValueError(f"AlexNet weights in {str(path)!r} do not match lpips' trunk: unused {sorted(missing)}")

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, references: torch.Tensor) -> MetricResult:
        """LPIPS between ``images`` and ``references``, both ``[batch, 3, H, W]`` float in ``value_range``.

        Returns a :class:`MetricResult` named ``"lpips"`` (lower is more similar; 0 for identical).
        """
        _check_images(images, "images", self.value_range)
        _check_images(references, "references", self.value_range)
        if images.shape != references.shape:
            raise ValueError(f"images and references must have the same shape, got {tuple(images.shape)} and "
                             f"{tuple(references.shape)}")
        normalize = self.value_range == (0.0, 1.0)
        vals = []
        for i in range(0, images.shape[0], self.batch_size):
            a = images[i:i + self.batch_size].to(self.device, torch.float32)
            b = references[i:i + self.batch_size].to(self.device, torch.float32)
            vals.append(self.net(a, b, normalize=normalize).reshape(-1).cpu())
        return summarize(torch.cat(vals), "lpips", self.details)


def lpips_distance(images: torch.Tensor, references: torch.Tensor, device: Union[str, torch.device] = "cpu",
                   allow_random_backbone: bool = False) -> MetricResult:
    """One-shot :class:`LPIPS`.

    ``images`` and ``references`` are ``[B, 3, H, W]`` in ``[0, 1]``; one distance per image.

    Examples
    --------
    The example needs torchvision's ImageNet AlexNet weights (:func:`alexnet_cache_file`) and the
    ``lpips`` package, so it is not run by the test-suite:

    >>> x = torch.rand(2, 3, 64, 64)
    >>> lpips_distance(x, x).values                                # doctest: +SKIP
    [0.0, 0.0]
    """
    return LPIPS(device=device, allow_random_backbone=allow_random_backbone)(images, references)


# --------------------------------------------------------------------------------------------
# PSNR, SSIM, MS-SSIM (torchmetrics)
# --------------------------------------------------------------------------------------------
#: The full-reference metrics of :func:`image_quality`.
IMAGE_QUALITY_METRICS = ("psnr", "ssim", "ms_ssim")
#: Smallest image side MS-SSIM accepts: 5 scales (4 halvings) of an 11-px window.
MS_SSIM_MIN_SIDE = 161  # 5 scales (4 halvings) of an 11-px window: (11 - 1) * 2**4 + 1


def image_quality(images: torch.Tensor, references: torch.Tensor,
                  metrics: Sequence[str] = IMAGE_QUALITY_METRICS) -> Dict[str, MetricResult]:
    """PSNR [dB], SSIM and MS-SSIM of each image against its reference (torchmetrics).

    Parameters
    ----------
    images, references : ``[B, 3, H, W]`` float in [0, 1], same shape.
    metrics : subset of ``("psnr", "ssim", "ms_ssim")``. MS-SSIM needs both sides of at least
        :data:`MS_SSIM_MIN_SIDE` (161) pixels; on smaller images it raises ``ValueError``.

    Returns
    -------
    ``{name: MetricResult}`` with one value per image. PSNR is ``10 log10(1 / MSE)`` per image
    (``inf`` for identical images); SSIM uses an 11-px Gaussian window with sigma 1.5, ``K1 = 0.01``,
    ``K2 = 0.03``; MS-SSIM the 5 scales and exponents of Wang, Simoncelli & Bovik (2003).

    Example
    -------
    >>> x = torch.full((1, 3, 32, 32), 0.5)
    >>> r = image_quality(x + 0.1, x, metrics=("psnr", "ssim"))
    >>> round(r["psnr"].mean, 4)                  # MSE 0.01 (up to float32 rounding of 0.6 - 0.5)
    20.0
    """
    bad = [m for m in metrics if m not in IMAGE_QUALITY_METRICS]
    if bad or not metrics:
        raise ValueError(f"metrics must be a non-empty subset of {IMAGE_QUALITY_METRICS}, got {tuple(metrics)}")
    images = _check_images(images, "images", (0.0, 1.0)).detach().float().cpu().clamp(0, 1)
    references = _check_images(references, "references", (0.0, 1.0)).detach().float().cpu().clamp(0, 1)
    if images.shape != references.shape:
        raise ValueError(f"images and references must have the same shape, got {tuple(images.shape)} and "
                         f"{tuple(references.shape)}")
    if "ms_ssim" in metrics and min(images.shape[-2:]) < MS_SSIM_MIN_SIDE:
        raise ValueError(f"MS-SSIM needs image sides of at least {MS_SSIM_MIN_SIDE} px (5 scales of an 11-px "
                         f"window), got {tuple(images.shape[-2:])}")
    from torchmetrics.functional.image import (multiscale_structural_similarity_index_measure,
                                               peak_signal_noise_ratio, structural_similarity_index_measure)

    out: Dict[str, MetricResult] = {}
    details = {"library": "torchmetrics", "data_range": 1.0}
    if "psnr" in metrics:
        v = peak_signal_noise_ratio(images, references, data_range=1.0, reduction="none", dim=(1, 2, 3))
        out["psnr"] = summarize(v, "psnr", details)
    if "ssim" in metrics:
        v = structural_similarity_index_measure(images, references, data_range=1.0, reduction="none")
        out["ssim"] = summarize(v, "ssim", dict(details, kernel_size=11, sigma=1.5))
    if "ms_ssim" in metrics:
        v = multiscale_structural_similarity_index_measure(images, references, data_range=1.0, reduction="none",
                                                           normalize="relu")
        out["ms_ssim"] = summarize(v, "ms_ssim", dict(details, kernel_size=11, sigma=1.5, scales=5))
    return out


# --------------------------------------------------------------------------------------------
# CLIP score (open_clip)
# --------------------------------------------------------------------------------------------
_OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def _resolve_clip_weights(model_name: str, pretrained: PathLike, cache_dir: Optional[PathLike]) -> Tuple[str, Dict]:
    """Local weights file for ``(model_name, pretrained)``: a path, or a known tag found in a cache."""
    import open_clip

    p = Path(pretrained).expanduser()
    if p.is_file():
        return str(p), {}
    if p.is_dir():
        for fn in _OPEN_CLIP_FILES:
            if (p / fn).is_file():
                return str(p / fn), {}
        raise FileNotFoundError(f"pretrained directory {str(p)!r} holds none of {_OPEN_CLIP_FILES}")
    tag = str(pretrained)
    cfg = open_clip.get_pretrained_cfg(model_name, tag)
    if not cfg:
        raise ValueError(f"pretrained {tag!r} is neither a file/directory nor a pretrained tag open_clip knows for "
                         f"{model_name!r}; known tags: {open_clip.list_pretrained_tags_by_model(model_name)}")
    looked = []
    hub = (cfg.get("hf_hub") or "").strip("/")
    if hub:
        for fn in _OPEN_CLIP_FILES:
            f = _hf_cached_file(hub, fn)
            if f:
                return f, cfg
        looked.append(f"Hugging Face cache {_hf_cache_dir()}, repo {hub!r}")
    url = cfg.get("url") or ""
    if url:
        root = Path(cache_dir).expanduser() if cache_dir else Path("~/.cache/clip").expanduser()
        f = root / os.path.basename(url)
        if f.is_file():
            return str(f), cfg
        looked.append(str(f))
    how = (f"`huggingface-cli download {hub} {_OPEN_CLIP_FILES[1]}` on a machine with internet access and copy the "
           "Hugging Face cache (or set HF_HOME), or " if hub else "")
    from semantic.checkpoints import CheckpointNotFoundError

    raise CheckpointNotFoundError(
        f"CLIP weights for {model_name!r} (pretrained={tag!r}) are not available locally (looked in: "
        f"{'; '.join(looked) or 'nowhere'}); no download is attempted. Provide them: run {how}pass "
        "pretrained=<path to the open_clip weights file>.", f"{model_name}/{tag}"
    )


def _pil_to_tensor(img) -> torch.Tensor:
    import numpy as np

    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1)


class ClipScore:
    """CLIP score ``100 * max(cos(E_img(image), E_txt(caption)), 0)`` with an ``open_clip`` model.

    This is the reference-free form used by torchmetrics (Hessel et al. 2021 scale it by 2.5
    instead of 100). The default model is ``ViT-B-32`` with OpenAI weights (the original CLIPScore
    choice); pass ``model_name="ViT-L-14-336"`` / ``"ViT-L-14"`` for larger encoders. We have not
    been able to confirm which CLIP encoder the VLF-MSC paper used; name the model with the numbers
    (``details["model"]``, ``details["pretrained"]``).

    Parameters
    ----------
    model_name : str
        An open_clip architecture name (ignored when ``model_cfg`` is given).
    pretrained : str or path or None
        A pretrained tag (``"openai"``; its weights must be in the local Hugging Face cache or
        ``~/.cache/clip``), a weights file, or a directory holding ``open_clip_model.safetensors``
        / ``open_clip_pytorch_model.bin``. ``None`` keeps random weights (only with ``model_cfg``,
        for tests).
    model_cfg : dict, optional
        An open_clip model config (``embed_dim``, ``vision_cfg``, ``text_cfg``, optional
        ``quick_gelu``) to build any (e.g. tiny) CLIP directly.
    device : str or torch.device
    batch_size : int
    cache_dir : path, optional
        Directory of OpenAI ``.pt`` files (default ``~/.cache/clip``).

    Example
    -------
    >>> cfg = dict(embed_dim=16, vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=16, head_width=16),
    ...            text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2, layers=1))
    >>> cs = ClipScore(model_cfg=cfg, pretrained=None)
    >>> import torch
    >>> r = cs(torch.rand(2, 3, 32, 32), ["a cat", "a dog"])
    >>> r.n, all(0 <= v <= 100 for v in r.values)
    (2, True)
    """

    def __init__(self, model_name: str = DEFAULT_CLIP_MODEL, pretrained: Optional[PathLike] = DEFAULT_CLIP_PRETRAINED,
                 model_cfg: Optional[Dict[str, Any]] = None, device: Union[str, torch.device] = "cpu",
                 batch_size: int = 32, cache_dir: Optional[PathLike] = None):
        import open_clip
        from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

        self.device = torch.device(device)
        self.batch_size = _check_batch_size(batch_size)
        mean, std = OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
        if model_cfg is not None:
            if not isinstance(model_cfg, dict):
                raise TypeError(f"model_cfg must be a dict (open_clip model config), got {type(model_cfg).__name__}")
            model = open_clip.CLIP(**model_cfg)
            if pretrained is not None:
                if not Path(pretrained).expanduser().exists():
                    raise FileNotFoundError(f"pretrained {str(pretrained)!r} must be an existing weights file or "
                                            "directory when model_cfg is given")
                wfile, _ = _resolve_clip_weights("custom", pretrained, cache_dir)
                open_clip.load_checkpoint(model, wfile)
            name = "custom"
            context_length = model_cfg["text_cfg"].get("context_length", 77)
            tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=context_length)
        else:
            if pretrained is None:
                raise ValueError(f"pretrained=None (random weights) is only allowed with model_cfg; for "
                                 f"{model_name!r} give a pretrained tag or a weights file")
            if model_name not in open_clip.list_models():
                raise ValueError(f"model_name {model_name!r} is not an open_clip architecture")
            wfile, cfg = _resolve_clip_weights(model_name, pretrained, cache_dir)
            mean, std = cfg.get("mean", mean), cfg.get("std", std)
            model = open_clip.create_model(model_name, pretrained=wfile, device="cpu",
                                           force_quick_gelu=bool(cfg.get("quick_gelu", False)))
            name = model_name
            tokenizer = open_clip.get_tokenizer(model_name)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        size = self.model.visual.image_size
        self.image_size = tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.details = {"model": name, "pretrained": None if pretrained is None else str(pretrained),
                         "image_size": self.image_size[0], "formula": "100*max(cos,0)"}

    def preprocess(self, images) -> torch.Tensor:
        """``[batch, 3, H, W]`` in [0, 1] (or a list of PIL images) -> normalised CLIP input.

        Resize the shorter side to the model's size (bicubic, antialiased), centre crop, then
        normalise with the model's mean/std; an image already at the model size is only normalised.
        """
        if isinstance(images, (list, tuple)):
            images = torch.stack([_pil_to_tensor(im) for im in images])
        x = _check_images(images, "images", (0.0, 1.0)).float()
        th, tw = self.image_size
        h, w = x.shape[-2:]
        if (h, w) != (th, tw):
            s = max(th / h, tw / w)
            nh, nw = max(th, round(h * s)), max(tw, round(w * s))
            x = torch.nn.functional.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False,
                                                antialias=True).clamp(0, 1)
            top, left = (nh - th) // 2, (nw - tw) // 2
            x = x[..., top:top + th, left:left + tw]
        return (x - self.mean) / self.std

    @torch.no_grad()
    def __call__(self, images, captions: Sequence[str]) -> MetricResult:
        """CLIP score of each image against its caption.

        Parameters
        ----------
        images : Tensor ``[batch, 3, H, W]`` float in [0, 1], or a list of PIL images
        captions : list of str, one per image (the *original* caption)
        """
        if isinstance(captions, str) or not all(isinstance(c, str) for c in captions):
            raise TypeError("captions must be a list of str")
        n_img = len(images) if isinstance(images, (list, tuple)) else (
            images.shape[0] if isinstance(images, torch.Tensor) else None)
        if n_img is None:
            raise TypeError(f"images must be a tensor [batch, 3, H, W] or a list of PIL images, got "
                            f"{type(images).__name__}")
        if n_img != len(captions):
            raise ValueError(f"images and captions must have the same length, got {n_img} and {len(captions)}")
        vals = []
        for i in range(0, n_img, self.batch_size):
            x = self.preprocess(images[i:i + self.batch_size]).to(self.device)
            t = self.tokenizer(list(captions[i:i + self.batch_size])).to(self.device)
            fi = torch.nn.functional.normalize(self.model.encode_image(x).float(), dim=-1)
            ft = torch.nn.functional.normalize(self.model.encode_text(t).float(), dim=-1)
            vals.append((100.0 * (fi * ft).sum(-1).clamp(min=0)).cpu())
        return summarize(torch.cat(vals), "clip_score", self.details)


def clip_score(images, captions: Sequence[str], model_name: str = DEFAULT_CLIP_MODEL,
               pretrained: Optional[PathLike] = DEFAULT_CLIP_PRETRAINED, device: Union[str, torch.device] = "cpu"
               ) -> MetricResult:
    """One-shot :class:`ClipScore`.

    Examples
    --------
    The example needs the OpenAI CLIP ViT-B-32 weights (open_clip) in the local cache, so it is not run by
    the test-suite:

    >>> images = torch.rand(1, 3, 224, 224)
    >>> clip_score(images, ["a photo of noise"]).n                 # doctest: +SKIP
    1
    """
    return ClipScore(model_name, pretrained, device=device)(images, captions)
