"""The frozen CLIP semantic encoder (open_clip) and the cache of extracted image tokens.

SemCLIP transmits the CLIP *image token* (the projected image embedding, ``N`` = the model's
``embed_dim``: 768 for ViT-L-14-336). The encoder is frozen, so the tokens of a data set are
extracted once and stored as safetensors shards; JSCC/TAPL training and SNR sweeps read the shards
and never run the image encoder again.

Weights (offline)
-----------------
:func:`load_open_clip` accepts

* a built-in open_clip model name and a ``pretrained`` tag (``"openai"``...), resolved through the
  Hugging Face cache (it only works offline if the weights are already cached);
* a built-in model name and ``pretrained`` = a local checkpoint file (``.bin``/``.pt``/``.safetensors``);
* ``"local-dir:/path"`` (or a plain directory path): a folder holding ``open_clip_config.json``
  (``{"model_cfg": {...}, "preprocess_cfg": {...}}``) and ``open_clip_model.safetensors``, the
  format :func:`save_open_clip_local_dir` writes (used by the tests with a tiny model);
* ``pretrained=None``: random weights (for tests only).

A tag is resolved to its file in the Hugging Face cache with :func:`semantic.checkpoints.resolve_file`
(no network; downloads only with ``SEMCOM_ALLOW_DOWNLOAD=1``). If the weights cannot be obtained,
:class:`CLIPWeightsUnavailableError` (a :class:`semantic.checkpoints.CheckpointNotFoundError`) names the
model and tag and lists the ways to provide them.

Shard format
------------
``<cache_dir>/manifest.json`` + ``<cache_dir>/shard-00000.safetensors`` ...; each shard holds
``features`` ``[n, N]`` float32 (raw, *not* L2-normalised) and ``labels`` ``[n]`` int64, the
manifest holds the encoder key, class names, image paths, image size and shard list, and
``"complete": true`` once every shard is written. Shards are written atomically, so an
interrupted extraction resumes at the first missing shard.

Example
-------
>>> import torch
>>> from semantic.clip_tokens import FeatureSet
>>> fs = FeatureSet(torch.randn(4, 8), torch.tensor([0, 1, 1, 0]), ["cat", "dog"])
>>> fs.subset_classes([1]).labels.tolist()      # relabelled to the kept classes
[0, 0]
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .checkpoints import CheckpointNotFoundError, downloads_allowed, hub_cache_dir, resolve_file

__all__ = [
    "CLIPWeightsUnavailableError",
    "load_open_clip",
    "save_open_clip_local_dir",
    "CLIPImageEncoder",
    "FeatureSet",
    "extract_features",
    "load_features",
    "model_image_shape",
]


class CLIPWeightsUnavailableError(CheckpointNotFoundError):
    """open_clip weights could not be found (the message names the model/tag and how to provide them).

    Examples
    --------
    >>> import tempfile
    >>> try:
    ...     load_open_clip("ViT-B-32", pretrained="openai", cache_dir=tempfile.mkdtemp())   # an empty cache
    ... except CLIPWeightsUnavailableError as err:
    ...     print(type(err).__name__, err.checkpoint)
    CLIPWeightsUnavailableError ...
    """


def _weights_help(model_name: str, pretrained, cause: str = "") -> str:
    return (
        f"open_clip model {model_name!r} with pretrained={pretrained!r} could not be loaded"
        + (f" ({cause})" if cause else "") + ". Provide the weights locally in one of these ways: "
        f"(1) a checkpoint file: pretrained='/path/to/open_clip_pytorch_model.bin' (CLI: --pretrained PATH), e.g. "
        f"the file of the open_clip tag {pretrained!r} for {model_name!r} copied from a connected machine; "
        "(2) a folder with open_clip_config.json + open_clip_model.safetensors passed as model_name="
        "'local-dir:/path' (CLI: --clip-model local-dir:/path; see semantic.clip_tokens.save_open_clip_local_dir); "
        f"(3) on a connected machine run open_clip.create_model({model_name!r}, pretrained={pretrained!r}) once "
        "and copy the Hugging Face cache (HF_HOME) here, then use the same tag; "
        "(4) allow downloads with SEMCOM_ALLOW_DOWNLOAD=1 on a connected machine."
    )


def _resolve_tag(model_name: str, tag: str, cache_dir) -> Tuple[Optional[str], dict]:
    """Local file of an open_clip pretrained tag (from the HF cache) and the tag's config.

    Returns ``(None, cfg)`` when the tag has to be fetched by open_clip itself (downloads allowed).
    """
    from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model

    cfg = get_pretrained_cfg(model_name, tag)
    if not cfg:
        raise ValueError(f"pretrained {tag!r} is neither an existing file nor a tag of {model_name!r}; "
                         f"tags: {list_pretrained_tags_by_model(model_name)}")
    repo = (cfg.get("hf_hub") or "").strip("/")
    if repo:
        for fname in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
            try:
                return str(resolve_file(repo, fname, what=f"open_clip {model_name} / {tag}", cache_dir=cache_dir,
                                        option="--pretrained", allow_download=False)), cfg
            except CheckpointNotFoundError:
                continue
    if downloads_allowed():
        return None, cfg
    raise CLIPWeightsUnavailableError(
        _weights_help(model_name, tag, f"not in the Hugging Face cache ({hub_cache_dir(cache_dir)}) and "
                                       "downloads are off"), f"{model_name}/{tag}")


def load_open_clip(model_name: str = "ViT-L-14-336", pretrained: Optional[str] = "openai",
                   device: Union[str, torch.device] = "cpu", cache_dir: Optional[str] = None
                   ) -> Tuple[nn.Module, Callable, Callable]:
    """Build a frozen open_clip model (eval mode, no grad) with its eval preprocess and tokenizer.

    The weights are located through :mod:`semantic.checkpoints` (local file / local folder / the
    Hugging Face cache; downloads only when ``SEMCOM_ALLOW_DOWNLOAD=1``), so an offline machine
    fails at once with :class:`CLIPWeightsUnavailableError`.

    Parameters
    ----------
    model_name : str
        Built-in open_clip name (``open_clip.list_models()``), ``"local-dir:/path"`` or a directory.
    pretrained : str or None
        Tag (``open_clip.list_pretrained_tags_by_model(model_name)``), checkpoint file, or None
        (random init, for tests). Ignored for ``local-dir:``.
    device : str or torch.device
    cache_dir : str, optional
        Hugging Face cache to look in.

    Returns
    -------
    model, preprocess, tokenizer

    Examples
    --------
    A tiny random model written as a ``local-dir:`` folder stands in for real weights here:

    >>> import tempfile, open_clip
    >>> cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "patch_size": 16, "width": 32, "layers": 1,
    ...        "head_width": 16}, "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
    ...        "layers": 1}}
    >>> path = save_open_clip_local_dir(open_clip.CLIP(**cfg), cfg, tempfile.mkdtemp(), {"size": 32})
    >>> model, preprocess, tokenizer = load_open_clip("local-dir:" + str(path))   # a tiny random CLIP
    >>> model.visual.image_size, tokenizer(["a photo of a cat"]).shape
    ((32, 32), torch.Size([1, 16]))
    """
    import open_clip

    if not isinstance(model_name, str) or not model_name:
        raise TypeError(f"model_name must be a non-empty str, got {model_name!r}")
    if not model_name.startswith(("local-dir:", "hf-hub:")) and Path(model_name).is_dir():
        model_name = f"local-dir:{model_name}"
    kw = dict(pretrained_text=False, pretrained_image=False)
    if model_name.startswith("local-dir:"):
        folder = Path(model_name[len("local-dir:"):])
        if not (folder / "open_clip_config.json").is_file():
            raise CLIPWeightsUnavailableError(
                _weights_help(model_name, pretrained, f"{str(folder)!r} has no open_clip_config.json"), model_name)
        pretrained = None
    elif model_name.startswith("hf-hub:"):
        if not downloads_allowed():
            raise CLIPWeightsUnavailableError(_weights_help(model_name, pretrained, "hf-hub: needs downloads"),
                                              model_name)
    else:
        if model_name.replace("/", "-") not in open_clip.list_models():
            raise ValueError(f"model_name {model_name!r} is not a built-in open_clip model; choose one of "
                             f"open_clip.list_models() (e.g. 'ViT-L-14-336', 'ViT-B-32') or 'local-dir:/path'")
        if pretrained is not None and not isinstance(pretrained, (str, os.PathLike)):
            raise TypeError(f"pretrained must be a tag, a file path or None, got {type(pretrained).__name__}")
        if pretrained is not None and not Path(pretrained).expanduser().is_file():
            path, cfg = _resolve_tag(model_name, str(pretrained), cache_dir)
            if path is not None:  # load the cached file with the tag's activation and preprocessing
                kw["force_quick_gelu"] = bool(cfg.get("quick_gelu", False))
                kw["force_preprocess_cfg"] = {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode")
                                              if k in cfg}
                pretrained = path
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=pretrained, device=device, cache_dir=cache_dir, **kw)
        tokenizer = open_clip.get_tokenizer(model_name)
    except (RuntimeError, OSError) as exc:
        raise CLIPWeightsUnavailableError(_weights_help(model_name, pretrained, f"{type(exc).__name__}: {exc}"),
                                          model_name) from exc
    model.eval().requires_grad_(False)
    return model, preprocess, tokenizer


def save_open_clip_local_dir(model: nn.Module, model_cfg: dict, path: Union[str, Path],
                             preprocess_cfg: Optional[dict] = None) -> Path:
    """Write ``model`` as an open_clip ``local-dir:`` folder (config + safetensors weights).

    ``model_cfg`` is the dict open_clip builds the model from (``embed_dim``, ``vision_cfg``,
    ``text_cfg``...); load it back with ``load_open_clip("local-dir:" + str(path))``.

    Examples
    --------
    >>> import tempfile, open_clip
    >>> cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "patch_size": 16, "width": 32, "layers": 1,
    ...        "head_width": 16}, "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
    ...        "layers": 1}}
    >>> path = save_open_clip_local_dir(open_clip.CLIP(**cfg), cfg, tempfile.mkdtemp(), {"size": 32})
    >>> model, preprocess, tokenizer = load_open_clip("local-dir:" + str(path))   # a tiny random CLIP
    >>> sorted(p.name for p in path.iterdir())
    ['open_clip_config.json', 'open_clip_model.safetensors']
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    cfg = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg or {}}
    (path / "open_clip_config.json").write_text(json.dumps(cfg, indent=2))
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path / "open_clip_model.safetensors"))
    return path


def model_image_shape(model: nn.Module) -> Tuple[int, int, int]:
    """``(C, H, W)`` of the images the CLIP vision tower takes (for the bandwidth ratio).

    Examples
    --------
    >>> import tempfile, open_clip
    >>> cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "patch_size": 16, "width": 32, "layers": 1,
    ...        "head_width": 16}, "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
    ...        "layers": 1}}
    >>> path = save_open_clip_local_dir(open_clip.CLIP(**cfg), cfg, tempfile.mkdtemp(), {"size": 32})
    >>> model, preprocess, tokenizer = load_open_clip("local-dir:" + str(path))   # a tiny random CLIP
    >>> model_image_shape(model)
    (3, 32, 32)
    """
    size = getattr(getattr(model, "visual", None), "image_size", None)
    if size is None:
        raise ValueError("the model has no visual.image_size; pass the image shape explicitly")
    if isinstance(size, int):
        return (3, size, size)
    return (3, int(size[0]), int(size[1]))


class CLIPImageEncoder(nn.Module):
    """Frozen CLIP image encoder: images -> image tokens ``[batch, N]`` (raw projected embedding).

    Parameters
    ----------
    model : open_clip CLIP / CustomTextCLIP model
    key : str
        Identifier of model + weights, stored in the feature cache's manifest (a cache made with a
        different key is not reused).

    Examples
    --------
    >>> import tempfile, open_clip
    >>> cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "patch_size": 16, "width": 32, "layers": 1,
    ...        "head_width": 16}, "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
    ...        "layers": 1}}
    >>> path = save_open_clip_local_dir(open_clip.CLIP(**cfg), cfg, tempfile.mkdtemp(), {"size": 32})
    >>> model, preprocess, tokenizer = load_open_clip("local-dir:" + str(path))   # a tiny random CLIP
    >>> encoder = CLIPImageEncoder(model, key="tiny-random")
    >>> encoder(torch.rand(2, 3, 32, 32)).shape, encoder.image_shape
    (torch.Size([2, 32]), (3, 32, 32))
    """

    def __init__(self, model: nn.Module, key: str):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.key = str(key)

    @property
    def token_dim(self) -> int:
        return int(self.model.visual.output_dim)

    @property
    def image_shape(self) -> Tuple[int, int, int]:
        return model_image_shape(self.model)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` ``[batch, 3, H, W]`` (preprocessed) -> ``[batch, N]`` float32."""
        if not isinstance(images, torch.Tensor) or images.dim() != 4:
            raise ValueError(f"images must be a [batch, 3, H, W] tensor, got "
                             f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
        dev = next(self.model.parameters()).device
        with torch.autocast(device_type=dev.type, enabled=dev.type == "cuda"):
            feats = self.model.encode_image(images.to(dev))
        return feats.float()


@dataclass
class FeatureSet:
    """Extracted image tokens with labels.

    Attributes
    ----------
    features : Tensor ``[n, N]`` float32 (raw CLIP image embeddings)
    labels : Tensor ``[n]`` int64, indices into ``class_names``
    class_names : list of str
    paths : list of str (may be empty)
    meta : dict (the manifest)

    Examples
    --------
    >>> fs = FeatureSet(torch.zeros(4, 8), torch.tensor([0, 1, 1, 0]), ["cat", "dog"])
    >>> fs.features.shape, fs.labels.tolist(), fs.class_names
    (torch.Size([4, 8]), [0, 1, 1, 0], ['cat', 'dog'])
    """

    features: torch.Tensor
    labels: torch.Tensor
    class_names: List[str]
    paths: List[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.features.dim() != 2 or self.labels.shape != (self.features.shape[0],):
            raise ValueError(f"features must be [n, N] and labels [n], got {tuple(self.features.shape)} and "
                             f"{tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return int(self.features.shape[0])

    @property
    def token_dim(self) -> int:
        return int(self.features.shape[1])

    def subset_classes(self, classes: Sequence[int]) -> "FeatureSet":
        """Keep the examples of ``classes`` and relabel them ``0..len(classes)-1`` (in that order)."""
        classes = [int(c) for c in classes]
        remap = torch.full((len(self.class_names),), -1, dtype=torch.long)
        remap[torch.tensor(classes, dtype=torch.long)] = torch.arange(len(classes))
        keep = remap[self.labels] >= 0
        idx = keep.nonzero().squeeze(1)
        return FeatureSet(self.features[idx], remap[self.labels[idx]], [self.class_names[c] for c in classes],
                          [self.paths[i] for i in idx.tolist()] if self.paths else [],
                          dict(self.meta, classes=classes))


def _write_atomic(path: Path, tensors: dict) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def _progress(iterable, total: int, desc: str, enabled: Optional[bool]):
    from tqdm.auto import tqdm

    disable = not sys.stderr.isatty() if enabled is None else not enabled
    return tqdm(iterable, total=total, desc=desc, disable=disable)


def extract_features(encoder: Callable[[torch.Tensor], torch.Tensor], dataset, cache_dir: Union[str, Path],
                     encoder_key: Optional[str] = None, batch_size: int = 64, shard_size: int = 4096,
                     num_workers: int = 0, image_shape: Optional[Sequence[int]] = None,
                     progress: Optional[bool] = None) -> FeatureSet:
    """Run ``encoder`` once over ``dataset`` and store the tokens as shards (or reuse the cache).

    Parameters
    ----------
    encoder : callable ``[batch, 3, H, W] -> [batch, N]``, e.g. :class:`CLIPImageEncoder`
    dataset : :class:`semantic.datasets.ImageListDataset` (items ``(image, label, index)``; it needs
        ``paths`` and ``class_names`` attributes and a transform producing tensors)
    cache_dir : path
        Folder of the shards; a complete cache with the same encoder key and images is loaded
        without calling the encoder.
    encoder_key : str, optional
        Defaults to ``encoder.key``.
    shard_size : int
        Examples per shard (a multiple of ``batch_size`` is rounded up to).

    Returns
    -------
    FeatureSet

    Examples
    --------
    Any callable ``[batch, 3, H, W] -> [batch, N]`` works as the encoder; a second call reuses the cache:

    >>> import tempfile
    >>> from semantic.datasets import ImageListDataset
    >>> class Images(ImageListDataset):                 # 4 random "images" instead of files
    ...     def __getitem__(self, i):
    ...         return torch.rand(3, 8, 8), self.labels[i], i
    >>> ds = Images([f"{i}.png" for i in range(4)], [0, 1, 0, 1], ["cat", "dog"])
    >>> mean_rgb = lambda images: images.mean(dim=(2, 3))            # [batch, 3, H, W] -> [batch, 3]
    >>> cache = tempfile.mkdtemp()
    >>> fs = extract_features(mean_rgb, ds, cache, encoder_key="mean-rgb", batch_size=2, progress=False)
    >>> fs.features.shape, fs.labels.tolist()
    (torch.Size([4, 3]), [0, 1, 0, 1])
    >>> torch.equal(load_features(cache).features, fs.features)
    True
    """
    cache = Path(cache_dir)
    key = encoder_key if encoder_key is not None else getattr(encoder, "key", None)
    if key is None:
        raise ValueError("encoder_key is required when the encoder has no .key attribute")
    if shard_size < 1 or batch_size < 1:
        raise ValueError(f"batch_size and shard_size must be >= 1, got {batch_size}, {shard_size}")
    shard_size = -(-shard_size // batch_size) * batch_size
    paths = list(getattr(dataset, "paths", []))
    n = len(dataset)
    if image_shape is None:
        image_shape = getattr(encoder, "image_shape", None)
    manifest = {
        "encoder_key": key,
        "num_examples": n,
        "class_names": list(dataset.class_names),
        "paths": paths,
        "shard_size": shard_size,
        "image_shape": list(image_shape) if image_shape is not None else None,
        "shards": [f"shard-{i:05d}.safetensors" for i in range(-(-n // shard_size))],
        "complete": False,
    }
    mpath = cache / "manifest.json"
    if mpath.is_file():
        old = json.loads(mpath.read_text())
        same = all(old.get(k) == manifest[k] for k in ("encoder_key", "num_examples", "class_names", "paths",
                                                       "shard_size"))
        if same and old.get("complete"):
            return load_features(cache)
        if not same:
            raise ValueError(f"cache_dir {str(cache)!r} holds features of another encoder or data set "
                             f"(encoder_key {old.get('encoder_key')!r}); use an empty folder")
    cache.mkdir(parents=True, exist_ok=True)
    mpath.write_text(json.dumps(manifest))
    for s, name in enumerate(manifest["shards"]):
        if (cache / name).is_file():
            continue
        lo, hi = s * shard_size, min(n, (s + 1) * shard_size)
        sub = torch.utils.data.Subset(dataset, range(lo, hi))
        loader = torch.utils.data.DataLoader(sub, batch_size=batch_size, shuffle=False, num_workers=num_workers)
        feats, labels = [], []
        for images, lab, _ in _progress(loader, len(loader), f"extract shard {s + 1}/{len(manifest['shards'])}",
                                        progress):
            feats.append(encoder(images).detach().float().cpu())
            labels.append(torch.as_tensor(lab, dtype=torch.long))
        _write_atomic(cache / name, {"features": torch.cat(feats), "labels": torch.cat(labels)})
    manifest["complete"] = True
    tmp = mpath.with_name("manifest.json.tmp")
    tmp.write_text(json.dumps(manifest))
    os.replace(tmp, mpath)
    return load_features(cache)


def load_features(cache_dir: Union[str, Path]) -> FeatureSet:
    """Load a complete feature cache written by :func:`extract_features`. Every token is checked once: a
    NaN or inf anywhere refuses the cache (``ValueError``), whichever rows a training run would sample.

    Examples
    --------
    >>> import tempfile
    >>> from semantic.datasets import ImageListDataset
    >>> class Images(ImageListDataset):
    ...     def __getitem__(self, i):
    ...         return torch.full((3, 4, 4), float(i)), self.labels[i], i
    >>> cache = tempfile.mkdtemp()
    >>> _ = extract_features(lambda x: x.mean(dim=(2, 3)), Images(["a", "b"], [0, 1], ["cat", "dog"]), cache,
    ...                      encoder_key="mean", progress=False)
    >>> fs = load_features(cache)
    >>> fs.features[:, 0].tolist(), fs.class_names
    ([0.0, 1.0], ['cat', 'dog'])
    """
    from safetensors.torch import load_file

    cache = Path(cache_dir)
    mpath = cache / "manifest.json"
    if not mpath.is_file():
        raise FileNotFoundError(f"no feature cache at {str(cache)!r} (missing manifest.json); run "
                                "`semcom semclip extract` first")
    try:
        meta = json.loads(mpath.read_text())
    except ValueError as exc:
        raise ValueError(f"the feature cache manifest {str(mpath)!r} is unreadable ({exc}); delete the folder and "
                         "rerun `semcom semclip extract`") from None
    if not isinstance(meta, dict) or not meta.get("complete"):
        raise ValueError(f"the feature cache at {str(cache)!r} is incomplete; rerun the extraction to resume it")
    try:
        parts = [load_file(str(cache / s)) for s in meta["shards"]]
        feats = torch.cat([p["features"] for p in parts])
        labels = torch.cat([p["labels"] for p in parts])
    except Exception as exc:  # a missing / torn shard (SafetensorError, FileNotFoundError), a missing key
        raise ValueError(f"the feature cache at {str(cache)!r} has an unreadable shard ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:200]}); delete the folder and rerun the extraction") from None
    if feats.is_floating_point():  # every token, once, here: a batch that never samples a bad row hides it
        bad = (~torch.isfinite(feats)).reshape(len(feats), -1).any(1)
        if bad.any():
            rows = bad.nonzero().flatten()
            raise ValueError(f"the feature cache at {str(cache)!r} holds {len(rows)} token(s) with NaN or inf values "
                             f"(rows {rows[:5].tolist()}{'...' if len(rows) > 5 else ''}); delete the folder and "
                             "rerun the extraction")
    return FeatureSet(feats, labels, list(meta["class_names"]), list(meta.get("paths", [])), meta)
