"""CLIP feature extraction in parallel: one executor task per safetensors shard of
:func:`semantic.clip_tokens.extract_features`' cache (``semcom semclip extract --executor ray``).

The encoder and the data set are rebuilt inside each task from picklable factories
(``(fn, args[, kwargs])`` tuples), so any :class:`experiments.core.executors.Executor` can run them.
"""
from __future__ import annotations

import functools
import json
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["extract_features_parallel", "extract_shard", "clip_image_encoder", "clip_dataset", "ClipPreprocess"]


# --------------------------------------------------------------------------------------------
# Feature extraction (semantic.clip_tokens cache), one task per shard
# --------------------------------------------------------------------------------------------
def _call(factory):
    """``(fn, args)`` / ``(fn, args, kwargs)`` / ``fn`` -> ``fn(*args, **kwargs)``."""
    if isinstance(factory, tuple):
        if len(factory) not in (2, 3):
            raise ValueError(f"a factory must be (fn, args) or (fn, args, kwargs), got {len(factory)} items")
        fn, args = factory[0], tuple(factory[1])
        kwargs = dict(factory[2]) if len(factory) == 3 else {}
    else:
        fn, args, kwargs = factory, (), {}
    if not callable(fn):
        raise TypeError(f"factory function must be callable, got {type(fn).__name__}")
    return fn(*args, **kwargs)


def extract_shard(encoder_factory, dataset_factory, cache_dir: str, shard: int, shard_size: int,
                  batch_size: int, num_workers: int = 0) -> str:
    """Encode shard ``shard`` (examples ``[shard*shard_size, (shard+1)*shard_size)``) and write it
    to ``cache_dir`` in :func:`semantic.clip_tokens.extract_features`' layout. Returns the file name.

    ``encoder_factory`` / ``dataset_factory``: ``(fn, args[, kwargs])`` tuples (or plain callables)
    building the encoder and the data set inside the worker.

    Examples
    --------
    >>> import tempfile, torch
    >>> from semantic.datasets import ImageListDataset
    >>> class Images(ImageListDataset):                          # 5 constant "images" instead of files
    ...     def __getitem__(self, i):
    ...         return torch.full((3, 4, 4), float(i)), self.labels[i], i
    >>> make_dataset = lambda: Images([f"{i}.png" for i in range(5)], [0, 1, 0, 1, 0], ["cat", "dog"])
    >>> make_encoder = lambda: (lambda x: x.mean(dim=(2, 3)))     # [B, 3, H, W] -> [B, 3]
    >>> from experiments.core.executors import LocalExecutor
    >>> cache = tempfile.mkdtemp()
    >>> _ = extract_features_parallel(LocalExecutor(), make_encoder, make_dataset, cache, "mean-rgb", shard_size=2)
    >>> extract_shard(make_encoder, make_dataset, cache, shard=1, shard_size=2, batch_size=2)   # rewrite shard 1
    'shard-00001.safetensors'
    """
    from pathlib import Path

    import torch

    from semantic.clip_tokens import _write_atomic

    encoder = _call(encoder_factory)
    dataset = _call(dataset_factory)
    name = f"shard-{shard:05d}.safetensors"
    path = Path(cache_dir) / name
    if path.is_file():
        return name
    n = len(dataset)
    lo, hi = shard * shard_size, min(n, (shard + 1) * shard_size)
    sub = torch.utils.data.Subset(dataset, range(lo, hi))
    loader = torch.utils.data.DataLoader(sub, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    feats, labels = [], []
    with torch.no_grad():
        for images, lab, _ in loader:
            feats.append(encoder(images).detach().float().cpu())
            labels.append(torch.as_tensor(lab, dtype=torch.long))
    _write_atomic(path, {"features": torch.cat(feats), "labels": torch.cat(labels)})
    return name


class _KeyOnlyEncoder:
    """Stands in for the encoder in the driver once every shard exists (never called)."""

    def __init__(self, key, image_shape):
        self.key = key
        self.image_shape = image_shape

    def __call__(self, images):  # pragma: no cover - only reached if a shard vanished meanwhile
        raise RuntimeError("a feature shard is missing after the parallel extraction; rerun to resume")


def extract_features_parallel(executor, encoder_factory, dataset_factory, cache_dir,
                              encoder_key: str, batch_size: int = 64, shard_size: int = 4096,
                              image_shape: Optional[Sequence[int]] = None, num_workers: int = 0):
    """:func:`semantic.clip_tokens.extract_features` with one executor task per shard.

    The driver builds the data set once (for its length, paths and class names; no image is read),
    each task rebuilds encoder and data set from the factories and writes its shard; the driver then
    finalises the manifest through ``extract_features`` itself (which finds every shard present
    and only writes ``complete = true``) and returns the :class:`~semantic.clip_tokens.FeatureSet`.
    Existing shards are skipped (resume). A cache of another encoder key or data set raises
    ``ValueError`` before any task is submitted.

    Examples
    --------
    >>> import tempfile, torch
    >>> from semantic.datasets import ImageListDataset
    >>> class Images(ImageListDataset):                          # 5 constant "images" instead of files
    ...     def __getitem__(self, i):
    ...         return torch.full((3, 4, 4), float(i)), self.labels[i], i
    >>> make_dataset = lambda: Images([f"{i}.png" for i in range(5)], [0, 1, 0, 1, 0], ["cat", "dog"])
    >>> make_encoder = lambda: (lambda x: x.mean(dim=(2, 3)))     # [B, 3, H, W] -> [B, 3]
    >>> from experiments.core.executors import LocalExecutor
    >>> cache = tempfile.mkdtemp()
    >>> fs = extract_features_parallel(LocalExecutor(), make_encoder, make_dataset, cache, "mean-rgb", batch_size=2,
    ...                                shard_size=2)                # 3 shards, one task each
    >>> fs.features[:, 0].tolist(), fs.labels.tolist()
    ([0.0, 1.0, 2.0, 3.0, 4.0], [0, 1, 0, 1, 0])
    """
    from pathlib import Path

    from semantic.clip_tokens import extract_features, load_features

    if not isinstance(encoder_key, str) or not encoder_key:
        raise ValueError(f"encoder_key must be a non-empty str, got {encoder_key!r}")
    if shard_size < 1 or batch_size < 1:
        raise ValueError(f"batch_size and shard_size must be >= 1, got {batch_size}, {shard_size}")
    shard_size = -(-shard_size // batch_size) * batch_size
    dataset = _call(dataset_factory)
    cache = Path(cache_dir)
    n = len(dataset)
    mpath = cache / "manifest.json"
    if mpath.is_file():
        old = json.loads(mpath.read_text())
        same = (old.get("encoder_key") == encoder_key and old.get("num_examples") == n
                and old.get("class_names") == list(dataset.class_names)
                and old.get("paths") == list(getattr(dataset, "paths", []))
                and old.get("shard_size") == shard_size)
        if not same:
            raise ValueError(f"cache_dir {str(cache)!r} holds features of another encoder or data set "
                             f"(encoder_key {old.get('encoder_key')!r}); use an empty folder")
        if old.get("complete"):
            return load_features(cache)
    cache.mkdir(parents=True, exist_ok=True)
    shards = -(-n // shard_size)
    tasks = [(s, extract_shard, (encoder_factory, dataset_factory, str(cache), s, shard_size, batch_size,
                                 num_workers))
             for s in range(shards) if not (cache / f"shard-{s:05d}.safetensors").is_file()]
    for _ in executor.map(tasks):
        pass
    return extract_features(_KeyOnlyEncoder(encoder_key, image_shape), dataset, cache, encoder_key=encoder_key,
                            batch_size=batch_size, shard_size=shard_size, image_shape=image_shape, progress=False)


@functools.lru_cache(maxsize=2)
def _clip_bundle(model_name: str, pretrained: Optional[str], device: str):
    """(model, preprocess) of an open_clip model, loaded once per worker process."""
    from semantic.clip_tokens import load_open_clip

    model, preprocess, _ = load_open_clip(model_name, pretrained, device=device)
    return model, preprocess


def clip_image_encoder(model_name: str, pretrained: Optional[str], device: str = "cpu"):
    """Encoder factory for :func:`extract_features_parallel`: a :class:`CLIPImageEncoder` keyed
    ``"<model>|<pretrained>"`` (the key ``semcom semclip extract`` uses).

    Examples
    --------
    >>> from semantic.clip_tokens import save_open_clip_local_dir   # first: the torchvision shim
    >>> import tempfile, torch, open_clip
    >>> cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "patch_size": 16, "width": 32, "layers": 1,
    ...        "head_width": 16}, "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
    ...        "layers": 1}}
    >>> path = save_open_clip_local_dir(open_clip.CLIP(**cfg), cfg, tempfile.mkdtemp(), {"size": 32})
    >>> model_name = "local-dir:" + str(path)                    # a tiny random CLIP instead of real weights
    >>> encoder = clip_image_encoder(model_name, None)
    >>> encoder(torch.rand(2, 3, 32, 32)).shape, encoder.key == model_name + "|None"
    (torch.Size([2, 32]), True)
    """
    from semantic.clip_tokens import CLIPImageEncoder

    model, _ = _clip_bundle(model_name, pretrained, str(device))
    return CLIPImageEncoder(model, key=f"{model_name}|{pretrained}")


class ClipPreprocess:
    """Picklable stand-in for an open_clip eval preprocess, built on first use in the process that
    reads images (the driver, which never reads one, does not load the model).

    Examples
    --------
    >>> from semantic.clip_tokens import save_open_clip_local_dir   # first: the torchvision shim
    >>> import tempfile, torch, open_clip
    >>> cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "patch_size": 16, "width": 32, "layers": 1,
    ...        "head_width": 16}, "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
    ...        "layers": 1}}
    >>> path = save_open_clip_local_dir(open_clip.CLIP(**cfg), cfg, tempfile.mkdtemp(), {"size": 32})
    >>> model_name = "local-dir:" + str(path)                    # a tiny random CLIP instead of real weights
    >>> from PIL import Image
    >>> pre = ClipPreprocess(model_name, None)                  # nothing loaded yet
    >>> pre(Image.new("RGB", (64, 48))).shape
    torch.Size([3, 32, 32])
    """

    def __init__(self, model_name: str, pretrained: Optional[str], device: str = "cpu"):
        self.args = (model_name, pretrained, str(device))

    def __call__(self, image):
        return _clip_bundle(*self.args)[1](image)


def clip_dataset(dataset: str, root: str, split: Optional[str], model_name: str, pretrained: Optional[str],
                 device: str = "cpu"):
    """Data set factory for :func:`extract_features_parallel`: :func:`semantic.datasets.make_dataset`
    with the CLIP model's preprocess (lazily built).

    Examples
    --------
    >>> from semantic.clip_tokens import save_open_clip_local_dir   # first: the torchvision shim
    >>> import tempfile, torch, open_clip
    >>> cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "patch_size": 16, "width": 32, "layers": 1,
    ...        "head_width": 16}, "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
    ...        "layers": 1}}
    >>> path = save_open_clip_local_dir(open_clip.CLIP(**cfg), cfg, tempfile.mkdtemp(), {"size": 32})
    >>> model_name = "local-dir:" + str(path)                    # a tiny random CLIP instead of real weights
    >>> from PIL import Image
    >>> root = tempfile.mkdtemp()
    >>> import os; os.makedirs(os.path.join(root, "cat"))
    >>> Image.new("RGB", (40, 40)).save(os.path.join(root, "cat", "0.png"))
    >>> ds = clip_dataset("folder", root, None, model_name, None)
    >>> ds.class_names, ds[0][0].shape                          # images preprocessed for the model
    (['cat'], torch.Size([3, 32, 32]))
    """
    from semantic.datasets import make_dataset

    return make_dataset(dataset, root, transform=ClipPreprocess(model_name, pretrained, device), split=split)

