"""Test helpers around the package's tiny models (:mod:`semantic.tiny`, which ``semcom reproduce --smoke``
uses too): the builders are re-exported from there; this module adds the module-scoped fixtures and the
real-photo helpers (scikit-learn's sample photos and handwritten digits).

Reuse from another test module (pytest puts ``tests/`` on ``sys.path``)::

    from tiny_models import save_tiny_sd, tiny_sd_dir      # builder + module-scoped fixture
    from tiny_models import save_tiny_blip2, tiny_blip2_dir, write_tiny_images

Constants :data:`TINY_IMAGE_SIZE`, :data:`TINY_NUM_QUERIES`, :data:`TINY_VLF_DIM` describe the shapes.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Sequence, Union

import semantic  # noqa: F401  (torchvision shim before transformers/diffusers)
import numpy as np
import pytest
import torch

__all__ = [
    "TINY_IMAGE_SIZE", "TINY_NUM_QUERIES", "TINY_VLF_DIM", "TINY_CLIP_WIDTH", "TINY_CLIP_POSITIONS",
    "byte_level_table", "tiny_opt_tokenizer", "tiny_clip_tokenizer",
    "build_tiny_blip2", "save_tiny_blip2", "build_tiny_sd_components", "save_tiny_sd",
    "write_tiny_images", "tiny_blip2_dir", "tiny_sd_dir", "tiny_image_dir",
]

from semantic.tiny import (TINY_CLIP_POSITIONS, TINY_CLIP_WIDTH, TINY_IMAGE_SIZE, TINY_NUM_QUERIES,  # noqa: F401
                           TINY_VLF_DIM, build_tiny_blip2, build_tiny_sd_components, byte_level_table,
                           save_tiny_blip2, save_tiny_sd, tiny_clip_tokenizer, tiny_opt_tokenizer)

PathLike = Union[str, os.PathLike]


# ------------------------------------------------------------------------------------------------
# Images
# ------------------------------------------------------------------------------------------------
def real_image(i: int, size: int):
    """A real photograph: the ``i``-th crop of scikit-learn's two sample photos, resized to ``size``."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images  # china.jpg, flower.jpg (427 x 640 RGB)
    photo = photos[i % len(photos)]
    step = i // len(photos)
    y0, x0 = (37 * step) % (photo.shape[0] - 200), (53 * step) % (photo.shape[1] - 200)
    return Image.fromarray(photo[y0:y0 + 200, x0:x0 + 200]).resize((size, size), Image.BILINEAR)


def write_tiny_images(path: PathLike, n: int = 3, size: int = 40, captions: Sequence[str] = None,
                      labels: Sequence[str] = None) -> Path:
    """Write ``n`` real RGB photos (``img0.png``...; :func:`real_image`) and a ``captions.csv`` (image,caption,label)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    captions = list(captions) if captions is not None else [f"a photo of thing {i}" for i in range(n)]
    labels = list(labels) if labels is not None else [f"thing {i}" for i in range(n)]
    rows: List[str] = ["image,caption,label"]
    for i in range(n):
        real_image(i, size).save(path / f"img{i}.png")
        rows.append(f"img{i}.png,{captions[i]},{labels[i]}")
    (path / "captions.csv").write_text("\n".join(rows) + "\n")
    return path


def write_digit_folder(root: PathLike, classes: Sequence[str], per_class: int = 5, size: int = 32) -> Path:
    """An ImageNet-style folder of real images: class ``j`` holds scikit-learn's handwritten digit ``j % 10``
    (8x8 scans), upsampled to ``size`` and saved as RGB PNGs."""
    from PIL import Image
    from sklearn.datasets import load_digits

    root = Path(root)
    d = load_digits()
    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for j, i in enumerate(np.flatnonzero(d.target == c % 10)[:per_class]):
            arr = (d.images[i] / 16.0 * 255).astype(np.uint8)
            Image.fromarray(arr, mode="L").resize((size, size), Image.BILINEAR).convert("RGB").save(folder / f"{j}.png")
    return root


# ------------------------------------------------------------------------------------------------
# Fixtures (import them into a test module to use them there)
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_blip2_dir(tmp_path_factory) -> Path:
    return save_tiny_blip2(tmp_path_factory.mktemp("blip2") / "tiny-blip2")


@pytest.fixture(scope="module")
def tiny_sd_dir(tmp_path_factory) -> Path:
    return save_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd")


@pytest.fixture(scope="module")
def tiny_image_dir(tmp_path_factory) -> Path:
    return write_tiny_images(tmp_path_factory.mktemp("images"))
