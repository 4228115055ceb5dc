"""Tiny inputs for smoke runs: generated data sets and tiny models, built by recipe name.

``semcom reproduce NAME --smoke`` runs a paper result end to end on these instead of the real data and
checkpoints: a config's ``"smoke"`` section names, for each dataset and checkpoint it reads, a recipe of
:data:`DATA_RECIPES` / :data:`MODEL_RECIPES`, and the ``--set`` options that shrink every step (steps, widths,
images). The recipes know nothing of the commands; they write folders in the layouts the real inputs have
(:mod:`semantic.tiny`), so each command's ordinary loading code reads them.

Data recipes
    ``class-folders`` (ImageNet layout: the 50 generated classes of :func:`semantic.tiny.class_names`, three
    images each; with ``--unseen-fraction 0.2`` that is 10 unseen classes), ``oxford_pets`` / ``food101`` /
    ``caltech101`` (those layouts, two classes), ``caption-images`` (twenty generated images and their
    ``captions.csv``), ``captions-csv:KEY`` (the ``captions.csv`` of data set ``KEY``).
Model recipes
    ``tiny-open-clip`` (``local-dir:`` folder), ``tiny-blip2`` (taught the generated captions, so that it writes
    words: non-empty captions for BLEU and BERTScore), ``tiny-sd``, ``minilm`` (the MiniLM weights shipped
    with the package's dependencies, a real sentence encoder for BERTScore), ``tiny-clip-score`` (a weights
    file; its JSON config is ``{smoke}/models/<key>/clip_score.json``).

In ``--set`` values, ``{smoke}`` is the folder of the smoke inputs. Every input is built once per folder (a
rerun reuses it).

Example
-------
>>> import tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> path = build_data("caption-images", "train", folder)
>>> sorted(p.name for p in path.iterdir())[:2]
['captions.csv', 'img0.png']
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

__all__ = ["DATA_RECIPES", "MODEL_RECIPES", "build_data", "build_model", "prepare", "check_smoke_section"]

#: Generated images per class of the ``class-folders`` recipe.
PER_CLASS = 3


def _seed(key: str) -> int:
    """A fixed seed per input name (so that a validation and a training set differ)."""
    import zlib

    return zlib.crc32(key.encode()) % 10_000


def _class_folders(folder: Path, key: str) -> Path:
    from semantic.tiny import write_class_folders

    write_class_folders(folder, num_classes=50, per_class=PER_CLASS, seed=_seed(key))
    return folder


def _cross(layout: str) -> Callable[[Path, str], Path]:
    def build(folder: Path, key: str) -> Path:
        from semantic.tiny import write_cross_datasets

        return write_cross_datasets(folder, seed=_seed(key))[layout]
    return build


def _caption_images(folder: Path, key: str) -> Path:
    from semantic.tiny import write_caption_images

    return write_caption_images(folder, n=20, seed=_seed(key))


#: Data recipes: name -> ``build(folder, key) -> path`` (``captions-csv:KEY`` is resolved by :func:`prepare`).
DATA_RECIPES: Dict[str, Callable[[Path, str], Path]] = {
    "class-folders": _class_folders, "oxford_pets": _cross("oxford_pets"), "food101": _cross("food101"),
    "caltech101": _cross("caltech101"), "caption-images": _caption_images}


def _tiny_open_clip(folder: Path) -> str:
    from semantic.tiny import save_tiny_open_clip

    return f"local-dir:{save_tiny_open_clip(folder)}"


def _tiny_blip2(folder: Path) -> str:
    import torch

    from semantic.images import ImageCaptionDataset
    from semantic.tiny import TINY_IMAGE_SIZE, save_tiny_blip2, write_caption_images

    data = write_caption_images(folder.with_name(folder.name + "-captions"), n=20, seed=1)
    ds = ImageCaptionDataset(data, data / "captions.csv", size=TINY_IMAGE_SIZE)
    images = torch.stack([ds[i]["image"] for i in range(len(ds))])
    return str(save_tiny_blip2(folder, images=images, captions=[it["caption"] for it in ds.items]))


def _tiny_sd(folder: Path) -> str:
    from semantic.tiny import save_tiny_sd

    return str(save_tiny_sd(folder))


def _minilm(folder: Path) -> str:
    from semantic.sentences import minilm_model_dir

    return str(minilm_model_dir())


def _tiny_clip_score(folder: Path) -> str:
    from semantic.tiny import save_tiny_clip_score

    return str(save_tiny_clip_score(folder)[0])


#: Model recipes: name -> ``build(folder) -> the value given as --model KEY=VALUE``.
MODEL_RECIPES: Dict[str, Callable[[Path], str]] = {
    "tiny-open-clip": _tiny_open_clip, "tiny-blip2": _tiny_blip2, "tiny-sd": _tiny_sd, "minilm": _minilm,
    "tiny-clip-score": _tiny_clip_score}


def _cached(folder: Path, recipe: str, build: Callable[[], str]) -> str:
    """Build into ``folder`` unless a finished build of the same recipe is there (``folder.smoke.json``)."""
    marker = folder.with_name(folder.name + ".smoke.json")
    if marker.is_file():
        rec = json.loads(marker.read_text())
        if rec.get("recipe") == recipe:
            return rec["value"]
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    value = build()
    marker.write_text(json.dumps({"recipe": recipe, "value": value}))
    return value


def build_data(recipe: str, key: str, folder: Path) -> Path:
    """The data set ``key`` by ``recipe`` (:data:`DATA_RECIPES`), in ``folder/data/<key>``.

    Examples
    --------
    >>> import tempfile
    >>> path = build_data("class-folders", "val", Path(tempfile.mkdtemp()))
    >>> len([p for p in path.iterdir() if p.is_dir()])
    50
    """
    if recipe not in DATA_RECIPES:
        raise ValueError(f"unknown smoke data recipe {recipe!r} for {key!r} (known: {sorted(DATA_RECIPES)} and "
                         "captions-csv:KEY)")
    target = Path(folder) / "data" / key
    return Path(_cached(target, recipe, lambda: str(DATA_RECIPES[recipe](target, key))))


def build_model(recipe: str, key: str, folder: Path) -> str:
    """The ``--model KEY=VALUE`` value of checkpoint ``key`` by ``recipe`` (:data:`MODEL_RECIPES`), built in
    ``folder/models/<key>``.

    Examples
    --------
    >>> import tempfile
    >>> build_model("tiny-open-clip", "clip", Path(tempfile.mkdtemp())).startswith("local-dir:")
    True
    """
    if recipe not in MODEL_RECIPES:
        raise ValueError(f"unknown smoke model recipe {recipe!r} for {key!r} (known: {sorted(MODEL_RECIPES)})")
    target = Path(folder) / "models" / key
    return _cached(target, recipe, lambda: MODEL_RECIPES[recipe](target))


def check_smoke_section(smoke: Any, data: Sequence[str], models: Sequence[str], source: str = "config") -> None:
    """``ValueError`` unless ``smoke`` is ``{"data": {KEY: RECIPE}, "models": {KEY: RECIPE}, "set": [str]}`` over
    the config's ``data`` and ``models`` keys with known recipes.

    Examples
    --------
    >>> check_smoke_section({"data": {"val": "class-folders"}, "set": ["steps=2"]}, ["val"], [])
    >>> check_smoke_section({"data": {"val": "imagenet"}}, ["val"], [])
    Traceback (most recent call last):
    ...
    ValueError: config: smoke.data.val: unknown recipe 'imagenet' ...
    """
    if not isinstance(smoke, dict) or set(smoke) - {"data", "models", "set"}:
        raise ValueError(f"{source}: smoke must be an object with the keys data, models, set; got {smoke!r}")
    for kind, keys, recipes in (("data", data, DATA_RECIPES), ("models", models, MODEL_RECIPES)):
        table = smoke.get(kind, {})
        if not isinstance(table, dict):
            raise ValueError(f"{source}: smoke.{kind} must map input names to recipes, got {table!r}")
        for key, recipe in table.items():
            if key not in keys:
                raise ValueError(f"{source}: smoke.{kind}.{key}: not an input of the config (it has {sorted(keys)})")
            ok = recipe in recipes or (kind == "data" and isinstance(recipe, str) and recipe.startswith("captions-csv:")
                                       and table.get(recipe.split(":", 1)[1]) == "caption-images")
            if not ok:
                raise ValueError(f"{source}: smoke.{kind}.{key}: unknown recipe {recipe!r} (known: {sorted(recipes)}"
                                 + (", captions-csv:KEY of a caption-images data set)" if kind == "data" else ")"))
    sets = smoke.get("set", [])
    if not isinstance(sets, list) or not all(isinstance(s, str) for s in sets):
        raise ValueError(f"{source}: smoke.set must be a list of strings, got {sets!r}")


def prepare(smoke: Dict[str, Any], folder: Path, say: Callable[[str], None] = print
            ) -> Tuple[Dict[str, str], Dict[str, str], List[str]]:
    """Build every input a config's ``smoke`` section names into ``folder``.

    Returns ``(data_paths, models, sets)``: ``--data-path KEY=PATH`` and ``--model KEY=VALUE`` pairs and the
    ``--set`` texts with ``{smoke}`` replaced by ``folder``.

    Examples
    --------
    >>> import tempfile
    >>> data, models, sets = prepare({"data": {"val": "class-folders"}, "set": ["out-dir={smoke}/x"]},
    ...                              Path(tempfile.mkdtemp()), say=lambda text: None)
    >>> sorted(data), models, sets[0].endswith("/x")
    (['val'], {}, True)
    """
    folder = Path(folder).resolve()
    data: Dict[str, str] = {}
    tables = smoke.get("data", {})
    for key, recipe in tables.items():
        if not recipe.startswith("captions-csv:"):
            say(f"[smoke] dataset {key}: {recipe}")
            data[key] = str(build_data(recipe, key, folder))
    for key, recipe in tables.items():
        if recipe.startswith("captions-csv:"):
            data[key] = str(Path(data[recipe.split(":", 1)[1]]) / "captions.csv")
    models: Dict[str, str] = {}
    for key, recipe in smoke.get("models", {}).items():
        say(f"[smoke] checkpoint {key}: {recipe}")
        models[key] = build_model(recipe, key, folder)
    sets = [s.replace("{smoke}", str(folder)) for s in smoke.get("set", [])]
    return data, models, sets
