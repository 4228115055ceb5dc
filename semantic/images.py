"""Image datasets from local files: an image folder plus an optional captions/labels CSV.

Images are loaded as RGB, resized so that the shorter side is ``size`` (bicubic) and centre-cropped to
``size x size`` (256 by default, the VLF-MSC input), and returned as float tensors ``[3, size, size]``
in ``[0, 1]``.

CSV format (UTF-8, header row; extra columns are ignored):

* image column: ``image`` (or ``image_id``, ``ImageID``, ``file``, ``filename``, ``path``): a path
  relative to the image folder, or an id whose file is ``<id>.jpg``/``.jpeg``/``.png`` in the folder;
* ``caption`` (or ``text``, ``caption_text``): a reference caption (optional);
* ``label`` (or ``subject``, ``class``, ``DisplayName``): a subject label ``c_i`` (optional).

Without a CSV every image file in the folder (sorted, recursively) is used, with no caption/label.
When a CSV lists one image several times (several captions), the rows are kept: one item per row.

Open Images V6 layout
---------------------
Download the validation images (``validation/<ImageID>.jpg``) and build a CSV with columns
``ImageID,caption,label``: captions from Localized Narratives
(``open_images_validation_captions.jsonl``: fields ``image_id`` and ``caption``), labels from
``validation-annotations-human-imagelabels-boxable.csv`` (``ImageID, LabelName, Confidence``) mapped
to names with ``oidv6-class-descriptions.csv`` (``LabelName, DisplayName``). Then
``ImageCaptionDataset("open-images/validation", "captions.csv")`` finds ``<ImageID>.jpg``.

Example
-------
>>> ds = ImageCaptionDataset("images/", "captions.csv", size=256)    # doctest: +SKIP
>>> item = ds[0]; item["image"].shape, item["caption"]              # doctest: +SKIP
(torch.Size([3, 256, 256]), 'a dog on a beach')
"""
from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch

__all__ = ["IMAGE_EXTENSIONS", "ImageCaptionDataset", "UnreadableImageError", "load_image", "collate_images",
           "file_sha1"]

#: File suffixes taken as images when no CSV lists the files (matched case-insensitively).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
_IMAGE_COLS = ("image", "image_id", "imageid", "file", "filename", "path")
_CAPTION_COLS = ("caption", "text", "caption_text")
_LABEL_COLS = ("label", "subject", "class", "displayname")
PathLike = Union[str, os.PathLike]


class UnreadableImageError(OSError, ValueError):
    """An image file that exists but cannot be decoded (truncated, not an image, too large).

    Examples
    --------
    >>> import tempfile
    >>> bad = Path(tempfile.mkdtemp()) / "broken.jpg"
    >>> _ = bad.write_bytes(b"not an image")
    >>> try:
    ...     load_image(bad)
    ... except UnreadableImageError as err:
    ...     print(type(err).__name__)
    UnreadableImageError
    """


def load_image(path: PathLike, size: Optional[int] = 256) -> torch.Tensor:
    """RGB image -> ``[3, size, size]`` float32 in [0, 1] (shorter side resized, centre crop).

    ``size=None`` keeps the original resolution.

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> path = Path(tempfile.mkdtemp()) / "red.png"
    >>> Image.new("RGB", (40, 20), (255, 0, 0)).save(path)
    >>> x = load_image(path, size=16)                   # shorter side 16, centre crop
    >>> x.shape, x.dtype, x[:, 0, 0].tolist()
    (torch.Size([3, 16, 16]), torch.float32, [1.0, 0.0, 0.0])
    """
    from PIL import Image

    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        raise ValueError(f"size must be a positive int or None, got {size!r}")
    try:
        im = Image.open(path)
        im.load()
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:  # truncated, foreign, huge
        raise UnreadableImageError(f"{str(path)!r} is not a readable image ({type(exc).__name__}: "
                                   f"{' '.join(str(exc).split())[:200]}); remove or replace the file") from None
    with im:
        im = im.convert("RGB")
        if size is not None:
            if not isinstance(size, int) or size <= 0:
                raise ValueError(f"size must be a positive int or None, got {size!r}")
            w, h = im.size
            s = size / min(w, h)
            nw, nh = max(size, round(w * s)), max(size, round(h * s))
            im = im.resize((nw, nh), Image.BICUBIC)
            left, top = (nw - size) // 2, (nh - size) // 2
            im = im.crop((left, top, left + size, top + size))
        arr = np.asarray(im, dtype=np.uint8).copy()
    return torch.from_numpy(arr).permute(2, 0, 1).float().div_(255.0)


def file_sha1(path: PathLike, chunk: int = 1 << 20) -> str:
    """SHA-1 of a file's bytes (cache keys that survive renames and moves).

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "x.txt"
    >>> _ = path.write_bytes(b"abc")
    >>> file_sha1(path)
    'a9993e364706816aba3e25717850c26c9cd0d89d'
    """
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _pick(cols: Dict[str, str], names: Sequence[str]) -> Optional[str]:
    for n in names:
        if n in cols:
            return cols[n]
    return None


class ImageCaptionDataset(torch.utils.data.Dataset):
    """Images of a folder with optional captions and subject labels (see the module docstring).

    Parameters
    ----------
    root : folder of images
    captions_csv : optional CSV (image, caption, label columns)
    size : output side in pixels (default 256), or None for the original size
    limit : keep only the first ``limit`` items
    unique : merge CSV rows of the same image into one item (first caption/label kept as
        ``caption``/``label``, all captions in ``captions``); default False (one item per row)

    Notes
    -----
    Items: ``{"image": Tensor [3, size, size] in [0, 1], "path": str, "name": str,
    "caption": str or None, "label": str or None, "captions": list of str}``. ``name`` is the path
    relative to ``root`` without extension, with ``/`` replaced by ``__`` (unique per file).

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> Image.new("RGB", (40, 20), (255, 0, 0)).save(root / "img1.png")
    >>> _ = (root / "captions.csv").write_text("image,caption,label\\nimg1,a red square,colour\\n")
    >>> ds = ImageCaptionDataset(root, root / "captions.csv", size=16)
    >>> item = ds[0]
    >>> item["image"].shape, item["caption"], item["label"]
    (torch.Size([3, 16, 16]), 'a red square', 'colour')
    """

    def __init__(self, root: PathLike, captions_csv: Optional[PathLike] = None, size: Optional[int] = 256,
                 limit: Optional[int] = None, unique: bool = False):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {str(self.root)!r} does not exist")
        self.size = size
        self.items: List[Dict[str, Optional[str]]] = []
        if captions_csv is None:
            files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
            self.items = [{"path": str(p), "caption": None, "label": None} for p in files]
        else:
            self.items = self._read_csv(Path(captions_csv))
        if unique:
            merged: Dict[str, Dict[str, object]] = {}
            for it in self.items:
                m = merged.setdefault(it["path"], dict(it, captions=[]))
                if it["caption"]:
                    m["captions"].append(it["caption"])
            self.items = list(merged.values())
        for it in self.items:
            it.setdefault("captions", [it["caption"]] if it["caption"] else [])
        if limit is not None:
            if not isinstance(limit, int) or limit <= 0:
                raise ValueError(f"limit must be a positive int, got {limit!r}")
            self.items = self.items[:limit]
        if not self.items:
            raise ValueError(f"no images found in {str(self.root)!r}"
                             + (f" for {str(captions_csv)!r}" if captions_csv else ""))

    def _resolve(self, ref: str) -> Path:
        p = Path(ref)
        cands = [p if p.is_absolute() else self.root / p]
        if not p.suffix:
            cands += [self.root / (ref + ext) for ext in (".jpg", ".jpeg", ".png")]
        for c in cands:
            if c.is_file():
                return c
        raise FileNotFoundError(f"image {ref!r} listed in the captions CSV is not in {str(self.root)!r}")

    def _read_csv(self, path: Path) -> List[Dict[str, Optional[str]]]:
        if not path.is_file():
            raise FileNotFoundError(f"captions CSV {str(path)!r} does not exist")
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            cols = {c.strip().lower(): c for c in (reader.fieldnames or [])}
            icol = _pick(cols, _IMAGE_COLS)
            if icol is None:
                raise ValueError(f"captions CSV {str(path)!r} needs an image column (one of {_IMAGE_COLS}), "
                                 f"got columns {reader.fieldnames}")
            ccol, lcol = _pick(cols, _CAPTION_COLS), _pick(cols, _LABEL_COLS)
            items = []
            for row in reader:
                ref = (row.get(icol) or "").strip()
                if not ref:
                    continue
                items.append({"path": str(self._resolve(ref)),
                              "caption": (row.get(ccol) or "").strip() or None if ccol else None,
                              "label": (row.get(lcol) or "").strip() or None if lcol else None})
        return items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        it = self.items[i]
        return {"image": load_image(it["path"], self.size), "path": it["path"], "name": self.name(i),
                "caption": it["caption"], "label": it["label"], "captions": list(it["captions"])}

    def name(self, i: int) -> str:
        """A file-name-safe unique name of item ``i`` (relative path without extension)."""
        p = Path(self.items[i]["path"])
        try:
            rel = p.relative_to(self.root)
        except ValueError:
            rel = Path(p.name)
        return str(rel.with_suffix("")).replace(os.sep, "__").replace("/", "__")


def collate_images(batch: Sequence[dict]) -> dict:
    """Stack ``image`` tensors ``[B, 3, S, S]``; other fields become lists.

    Examples
    --------
    >>> batch = collate_images([{"image": torch.zeros(3, 4, 4), "caption": "a"},
    ...                         {"image": torch.ones(3, 4, 4), "caption": "b"}])
    >>> batch["image"].shape, batch["caption"]
    (torch.Size([2, 3, 4, 4]), ['a', 'b'])
    """
    out = {"image": torch.stack([b["image"] for b in batch])}
    for k in batch[0]:
        if k != "image":
            out[k] = [b[k] for b in batch]
    return out
