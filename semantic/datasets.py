"""Image classification datasets read from local folders, and the seen/unseen class split.

No data set is downloaded: every loader reads a folder the user already has.

Layouts
-------
``"folder"`` / ``"imagenet"`` (ImageNet-style, torchvision ``ImageFolder`` layout)::

    ROOT/<class_dir>/<image>.{jpg,jpeg,png,bmp,webp}

  Classes are the sorted sub-directory names. Class *names* (used in the text prompts) come from,
  in this order: a ``classnames.txt`` next to the class folders (one name per line, in sorted
  folder order, or ``<dir_name> <name>`` / ``<dir_name>\\t<name>`` pairs); for ImageNet (exactly the
  1000 ``nXXXXXXXX`` WordNet folders) open_clip's ``IMAGENET_CLASSNAMES``; otherwise the folder
  name with ``_`` replaced by spaces. For ImageNet pass ``ROOT = .../train`` or ``.../val`` (the
  ``val`` folder must be re-arranged into class folders, as for torchvision).

``"oxford_pets"`` (Oxford-IIIT Pet, as distributed)::

    ROOT/images/<Breed_Name>_<number>.jpg
    ROOT/annotations/trainval.txt, test.txt     (``<image_id> <class_id> <species> <breed_id>``)

  ``split="trainval"|"test"`` reads the annotation list; ``split=None`` takes every image. The class
  is the file name without the trailing ``_<number>``, e.g. ``american_bulldog`` ->
  "american bulldog".

``"food101"`` (Food-101, as distributed)::

    ROOT/images/<class>/<id>.jpg
    ROOT/meta/classes.txt, train.txt, test.txt  (lines ``<class>/<id>``)

  ``split="train"|"test"`` reads ``meta/<split>.txt``; ``split=None`` every image.

``"caltech101"`` (Caltech-101, as distributed)::

    ROOT/101_ObjectCategories/<class>/image_XXXX.jpg     (or ROOT/<class>/... directly)

  The ``BACKGROUND_Google`` clutter class is dropped, and so is ``Faces`` when ``Faces_easy`` is
  present (both would be the class "face"); ``Faces_easy`` is named "face",
  ``Motorbikes`` "motorbike", ``airplanes`` "airplane" (their usual prompt names).

Example
-------
>>> from semantic.datasets import split_classes
>>> seen, unseen = split_classes(10, unseen_fraction=0.2, seed=0)
>>> len(seen), len(unseen), sorted(seen + unseen) == list(range(10))
(8, 2, True)
"""
from __future__ import annotations

import numbers
import re
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import torch

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageListDataset",
    "image_folder",
    "oxford_pets",
    "food101",
    "caltech101",
    "DATASETS",
    "make_dataset",
    "split_classes",
    "clean_class_name",
]

#: File suffixes read as images (lower-case; matched case-insensitively).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff")
_WNID = re.compile(r"^n\d{8}$")


def clean_class_name(name: str) -> str:
    """Folder/file class token -> prompt name: ``"american_bulldog"`` -> ``"american bulldog"``.

    Examples
    --------
    >>> clean_class_name("american_bulldog"), clean_class_name("Faces_easy")
    ('american bulldog', 'Faces easy')
    """
    return " ".join(name.replace("_", " ").split())


class ImageListDataset(torch.utils.data.Dataset):
    """A list of ``(path, label)`` pairs with class names; items are ``(image, label, index)``.

    Parameters
    ----------
    paths : sequence of str
    labels : sequence of int, values in ``[0, len(class_names))``
    class_names : sequence of str
        Prompt names of the classes (index = label).
    transform : callable, optional
        PIL image -> tensor (e.g. the CLIP preprocess). Without it the PIL image is returned.

    Examples
    --------
    >>> ds = ImageListDataset(["a.jpg", "b.jpg"], [1, 0], ["cat", "dog"])
    >>> len(ds), ds.labels, ds.class_names
    (2, [1, 0], ['cat', 'dog'])
    """

    def __init__(self, paths: Sequence[str], labels: Sequence[int], class_names: Sequence[str],
                 transform: Optional[Callable] = None):
        if len(paths) != len(labels):
            raise ValueError(f"paths and labels must have the same length, got {len(paths)} and {len(labels)}")
        if len(paths) == 0:
            raise ValueError("the dataset is empty: no images were found")
        bad = [l for l in labels if not 0 <= int(l) < len(class_names)]
        if bad:
            raise ValueError(f"labels must be in [0, {len(class_names)}), got e.g. {bad[:3]}")
        self.paths = [str(p) for p in paths]
        self.labels = [int(l) for l in labels]
        self.class_names = list(class_names)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            img = im.convert("RGB")
        if self.transform is not None:
            img = self.transform(img)
        return img, self.labels[i], i


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS


def _root(root) -> Path:
    if not isinstance(root, (str, Path)):
        raise TypeError(f"root must be a path (str or Path), got {type(root).__name__}")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"dataset root {str(path)!r} is not a directory")
    return path


def _read_classnames_file(path: Path, dirs: List[str]) -> List[str]:
    lines = [l.strip() for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]
    mapping = {}
    for line in lines:
        parts = re.split(r"\t| ", line, maxsplit=1)
        if len(parts) == 2 and parts[0] in dirs:
            mapping[parts[0]] = parts[1].strip()
    if len(mapping) == len(dirs):
        return [mapping[d] for d in dirs]
    if len(lines) == len(dirs):
        return lines
    raise ValueError(f"{path} must have one name per class folder ({len(dirs)}) or '<dir> <name>' pairs, "
                     f"got {len(lines)} lines")


def image_folder(root, transform: Optional[Callable] = None, split: Optional[str] = None,
                 class_names: Optional[Sequence[str]] = None) -> ImageListDataset:
    """ImageNet-style ``ROOT/<class>/<image>`` folder (``split`` selects ``ROOT/<split>`` if given).

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> for cls in ("golden_retriever", "tabby_cat"):
    ...     (root / cls).mkdir()
    ...     Image.new("RGB", (8, 8)).save(root / cls / "0.png")
    >>> ds = image_folder(root)
    >>> ds.class_names, ds.labels, ds[0][0].size       # no transform: PIL images
    (['golden retriever', 'tabby cat'], [0, 1], (8, 8))
    """
    base = _root(root)
    if split is not None:
        base = _root(base / split)
    dirs = sorted(d.name for d in base.iterdir() if d.is_dir())
    if not dirs:
        raise FileNotFoundError(f"no class folders under {str(base)!r} (expected ROOT/<class>/<image>)")
    if class_names is not None:
        if len(class_names) != len(dirs):
            raise ValueError(f"class_names has {len(class_names)} names for {len(dirs)} class folders")
        names = list(class_names)
    elif (base / "classnames.txt").is_file():
        names = _read_classnames_file(base / "classnames.txt", dirs)
    elif len(dirs) == 1000 and all(_WNID.match(d) for d in dirs):
        from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

        names = list(IMAGENET_CLASSNAMES)
    else:
        names = [clean_class_name(d) for d in dirs]
    return _class_folders(base, dirs, names, transform)


def _class_folders(base: Path, dirs: Sequence[str], names: List[str], transform) -> ImageListDataset:
    """The images of ``base/<dirs[i]>/`` (sorted) with label ``i``."""
    paths, labels = [], []
    for label, d in enumerate(dirs):
        for p in sorted((base / d).iterdir()):
            if _is_image(p):
                paths.append(str(p))
                labels.append(label)
    return ImageListDataset(paths, labels, names, transform)


def oxford_pets(root, transform: Optional[Callable] = None, split: Optional[str] = "test") -> ImageListDataset:
    """Oxford-IIIT Pet (see the module docstring for the layout).

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "images").mkdir(); (root / "annotations").mkdir()
    >>> for name in ("Abyssinian_1", "american_bulldog_7"):
    ...     Image.new("RGB", (8, 8)).save(root / "images" / f"{name}.jpg")
    >>> _ = (root / "annotations" / "test.txt").write_text("Abyssinian_1 1 1 1\\namerican_bulldog_7 2 2 1\\n")
    >>> ds = oxford_pets(root, split="test")
    >>> ds.class_names, ds.labels
    (['abyssinian', 'american bulldog'], [0, 1])
    """
    base = _root(root)
    img_dir = base / "images"
    if not img_dir.is_dir():
        raise FileNotFoundError(f"Oxford Pets layout needs {str(img_dir)!r}")
    if split is None:
        files = sorted(p for p in img_dir.iterdir() if _is_image(p))
    else:
        ann = base / "annotations" / f"{split}.txt"
        if not ann.is_file():
            raise FileNotFoundError(f"Oxford Pets split {split!r} needs {str(ann)!r}")
        ids = [l.split()[0] for l in ann.read_text().splitlines() if l.strip() and not l.startswith("#")]
        files = [img_dir / f"{i}.jpg" for i in ids]
    tokens = sorted({p.stem.rsplit("_", 1)[0] for p in files})
    index = {t.lower(): i for i, t in enumerate(sorted({t.lower() for t in tokens}))}
    names = [clean_class_name(t) for t in sorted(index, key=index.get)]
    labels = [index[p.stem.rsplit("_", 1)[0].lower()] for p in files]
    return ImageListDataset([str(p) for p in files], labels, names, transform)


def food101(root, transform: Optional[Callable] = None, split: Optional[str] = "test") -> ImageListDataset:
    """Food-101 (see the module docstring for the layout).

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "images" / "apple_pie").mkdir(parents=True); (root / "meta").mkdir()
    >>> Image.new("RGB", (8, 8)).save(root / "images" / "apple_pie" / "1.jpg")
    >>> _ = (root / "meta" / "classes.txt").write_text("apple_pie\\n")
    >>> _ = (root / "meta" / "test.txt").write_text("apple_pie/1\\n")
    >>> ds = food101(root, split="test")
    >>> len(ds), ds.class_names
    (1, ['apple pie'])
    """
    base = _root(root)
    if split is None:
        return image_folder(base / "images", transform)
    meta = base / "meta"
    classes_file, list_file = meta / "classes.txt", meta / f"{split}.txt"
    for f in (classes_file, list_file):
        if not f.is_file():
            raise FileNotFoundError(f"Food-101 split {split!r} needs {str(f)!r}")
    classes = [l.strip() for l in classes_file.read_text().splitlines() if l.strip()]
    index = {c: i for i, c in enumerate(classes)}
    entries = [l.strip() for l in list_file.read_text().splitlines() if l.strip()]
    paths = [str(base / "images" / f"{e}.jpg") for e in entries]
    labels = [index[e.split("/")[0]] for e in entries]
    return ImageListDataset(paths, labels, [clean_class_name(c) for c in classes], transform)


_CALTECH_RENAME = {"Faces_easy": "face", "Faces": "face", "Motorbikes": "motorbike", "airplanes": "airplane",
                   "Leopards": "leopard"}


def caltech101(root, transform: Optional[Callable] = None, split: Optional[str] = None) -> ImageListDataset:
    """Caltech-101 (see the module docstring); ``split`` is unused (no official split).

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> for cls in ("BACKGROUND_Google", "airplanes", "Faces_easy"):
    ...     (root / "101_ObjectCategories" / cls).mkdir(parents=True)
    ...     Image.new("RGB", (8, 8)).save(root / "101_ObjectCategories" / cls / "image_0001.jpg")
    >>> caltech101(root).class_names                      # clutter class dropped, prompt names
    ['face', 'airplane']
    """
    base = _root(root)
    if (base / "101_ObjectCategories").is_dir():
        base = base / "101_ObjectCategories"
    dirs = sorted(d.name for d in base.iterdir() if d.is_dir() and d.name != "BACKGROUND_Google")
    if "Faces" in dirs and "Faces_easy" in dirs:  # both would be the class "face": keep Faces_easy (as CoOp)
        dirs.remove("Faces")
    if not dirs:
        raise FileNotFoundError(f"no Caltech-101 class folders under {str(base)!r}")
    names = [clean_class_name(_CALTECH_RENAME.get(d, d)) for d in dirs]
    return _class_folders(base, dirs, names, transform)


#: Dataset layouts: name -> loader (:func:`make_dataset` picks one).
DATASETS = {"folder": image_folder, "imagenet": image_folder, "oxford_pets": oxford_pets, "food101": food101,
            "caltech101": caltech101}


def make_dataset(name: str, root, transform: Optional[Callable] = None, split: Optional[str] = None
                 ) -> ImageListDataset:
    """Build a dataset by layout name (one of :data:`DATASETS`).

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "zebra").mkdir()
    >>> Image.new("RGB", (8, 8)).save(root / "zebra" / "0.png")
    >>> make_dataset("folder", root).class_names
    ['zebra']
    >>> make_dataset("cifar", root)
    Traceback (most recent call last):
    ...
    ValueError: ...
    """
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {name!r}")
    return DATASETS[name](root, transform=transform, split=split)


def split_classes(num_classes: int, unseen_fraction: float = 0.2, seed: int = 0) -> Tuple[List[int], List[int]]:
    """Seeded split of class indices into seen (training) and unseen (zero-shot test) classes.

    ``round(num_classes * unseen_fraction)`` classes are unseen (200 of ImageNet's 1000 for the
    default 0.2); both lists are sorted. The permutation uses its own ``torch.Generator``.

    Examples
    --------
    >>> seen, unseen = split_classes(10, unseen_fraction=0.2, seed=0)
    >>> len(seen), len(unseen), sorted(seen + unseen) == list(range(10))
    (8, 2, True)
    >>> split_classes(10, seed=0) == (seen, unseen)        # seeded
    True
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    if not isinstance(unseen_fraction, numbers.Real) or not 0 < unseen_fraction < 1:
        raise ValueError(f"unseen_fraction must be in (0, 1), got {unseen_fraction!r}")
    n_unseen = min(max(1, int(round(num_classes * unseen_fraction))), num_classes - 1)
    g = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(int(num_classes), generator=g).tolist()
    return sorted(perm[n_unseen:]), sorted(perm[:n_unseen])
