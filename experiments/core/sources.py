"""Feature sources for the analog-vs-digital comparison: a registry of named sources and tensor files.

A *source* is a set of real feature vectors ``[n_items, d]`` (one row per example) and, where it
has them, the original items the features were computed from (sentences), plus an encoder that
maps items into the same feature space (used to re-encode a received sentence).

Sources
-------
``"pydoc-minilm"`` (the embedded default)
    The sentences of :func:`semantic.sentences.load_pydoc_corpus` (about 1.6k real sentences shipped
    with CPython) embedded by MiniLM (``all-MiniLM-L6-v2``, 384-d, unit norm; cached on disk).
    ``items`` are the sentences; ``encoder`` re-encodes text with the same MiniLM.
``"gaussian"``
    Synthetic i.i.d. ``N(0, 1)`` features (``n_items x dim``, seeded); no items. For quick checks.
A path to a tensor file
    ``.npy`` (``numpy.load``, no pickles), ``.pt``/``.pth`` (``torch.load(weights_only=True)``: a
    tensor, or a dict with a ``"features"`` tensor and optionally ``"items"``: a list of str) or
    ``.safetensors`` (the ``"features"`` tensor, or the file's only tensor). Features must be a real,
    finite ``[n, d]`` array (``[n, ...]`` is flattened per example, the original shape is recorded).
    Items for ``.npy``/``.safetensors`` come from an optional text file, one item per line.

Example
-------
>>> src = load_source("gaussian", n_items=8, dim=6)
>>> src.features.shape, src.items is None
(torch.Size([8, 6]), True)
"""
from __future__ import annotations

import hashlib
import json
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import torch

__all__ = [
    "FeatureSource",
    "SOURCES",
    "register_source",
    "load_source",
    "load_feature_file",
    "load_items_file",
    "FEATURE_FILE_SUFFIXES",
    "DEFAULT_SOURCE",
]

#: The source of ``semcom compare`` by default: MiniLM embeddings of the pydoc corpus.
DEFAULT_SOURCE = "pydoc-minilm"
#: File suffixes :func:`load_source` reads as feature tensors.
FEATURE_FILE_SUFFIXES = (".npy", ".pt", ".pth", ".safetensors")


@dataclass
class FeatureSource:
    """Real feature vectors and (optionally) the items they describe.

    Attributes
    ----------
    name : str
        Registered name or file path.
    features : Tensor, ``[n_items, d]``, float32
        One feature vector per example.
    items : list of str, optional
        The original items (sentences), aligned with ``features``.
    encoder : callable, optional
        ``encoder(list_of_str) -> Tensor [len, d]``: maps items into the feature space (for text
        schemes whose received sentence must be re-encoded). ``None`` when not available.
    info : dict
        Provenance recorded in manifests (size, hash, original shape, file path ...).

    Examples
    --------
    >>> src = FeatureSource("demo", torch.zeros(3, 4), items=["a", "b", "c"])
    >>> src.features.shape, src.items, src.encoder is None
    (torch.Size([3, 4]), ['a', 'b', 'c'], True)
    """

    name: str
    features: torch.Tensor
    items: Optional[List[str]] = None
    encoder: Optional[Callable[[Sequence[str]], torch.Tensor]] = None
    info: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        f = self.features
        if not isinstance(f, torch.Tensor):
            raise TypeError(f"features must be a torch.Tensor, got {type(f).__name__}")
        if f.dim() != 2 or f.shape[0] < 2 or f.shape[1] < 1:
            raise ValueError(f"features must be a [n_items >= 2, d >= 1] tensor, got shape {tuple(f.shape)}")
        if f.is_complex() or not f.is_floating_point():
            raise TypeError(f"features must be real floating point, got dtype {f.dtype}")
        if not torch.isfinite(f).all():
            raise ValueError(f"features of source {self.name!r} contain NaN/Inf values")
        if self.items is not None:
            if isinstance(self.items, str) or not all(isinstance(s, str) for s in self.items):
                raise TypeError("items must be a list of str")
            if len(self.items) != f.shape[0]:
                raise ValueError(f"source {self.name!r}: {len(self.items)} items but {f.shape[0]} feature rows")
            self.items = list(self.items)
        self.features = f.detach().float().contiguous()

    @property
    def n_items(self) -> int:
        return int(self.features.shape[0])

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    @property
    def has_text(self) -> bool:
        """True when the items are sentences that can be re-encoded (text schemes apply)."""
        return self.items is not None and self.encoder is not None

    def feature_hash(self) -> str:
        """Short SHA-256 of the feature values (recorded in manifests)."""
        return hashlib.sha256(self.features.numpy().tobytes()).hexdigest()[:16]

    def subset(self, max_items: Optional[int]) -> "FeatureSource":
        """The first ``max_items`` examples (all of them for ``None``)."""
        if max_items is None or max_items >= self.n_items:
            return self
        _check_max_items(max_items)
        info = dict(self.info, n_items_total=self.n_items)
        return FeatureSource(self.name, self.features[:max_items],
                             None if self.items is None else self.items[:max_items], self.encoder, info)

    def describe(self) -> Dict[str, Any]:
        """Provenance for a manifest."""
        return {"name": self.name, "n_items": self.n_items, "dim": self.dim, "has_items": self.items is not None,
                "feature_hash": self.feature_hash(), **self.info}


def _check_max_items(max_items):
    if max_items is not None and (isinstance(max_items, bool) or not isinstance(max_items, numbers.Integral)
                                  or max_items < 2):
        raise ValueError(f"max_items must be an int >= 2 or None, got {max_items!r}")


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------
#: Source registry: name -> builder (:func:`register_source` adds to it).
SOURCES: Dict[str, Callable[..., FeatureSource]] = {}


def register_source(name: str, override: bool = False):
    """Decorator: ``@register_source("name")`` on ``builder(max_items=None, **kw) -> FeatureSource``. A name
    already registered to another builder (a built-in such as ``gaussian``) is refused (``ValueError``) unless
    ``override``.

    Examples
    --------
    >>> @register_source("doc-ones")
    ... def _ones(max_items=None, n=4, dim=2, **_):
    ...     return FeatureSource("doc-ones", torch.ones(n, dim)[:max_items])
    >>> load_source("doc-ones", max_items=3).features.shape
    torch.Size([3, 2])
    >>> del SOURCES["doc-ones"]
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"source name must be a non-empty str, got {name!r}")

    def deco(fn):
        from experiments.core.plugins import check_new_name

        check_new_name(SOURCES, name, fn, "source", override)
        SOURCES[name] = fn
        return fn

    return deco


class _LazyMiniLM:
    """MiniLM encoder loaded on first use; each call's embeddings are kept in the MiniLM cache folder
    (:func:`semantic.sentences.encode_cached`: keyed by the call's exact texts, so a seeded run that makes the
    same calls again -- the text scheme's received sentences -- encodes nothing and gets the same numbers)."""

    def __init__(self, device: str = "cpu", cache_dir: Optional[Union[str, Path]] = None):
        self.device = device
        self.cache_dir = cache_dir
        self._enc = None

    def encode(self, sentences: Sequence[str]) -> torch.Tensor:
        if self._enc is None:
            from semantic.sentences import MiniLMEncoder

            self._enc = MiniLMEncoder(device=self.device)
        return self._enc.encode(list(sentences))

    def __call__(self, sentences: Sequence[str]) -> torch.Tensor:
        from semantic.sentences import encode_cached

        return encode_cached(list(sentences), self, self.cache_dir)


@register_source("pydoc-minilm")
def _pydoc_minilm(max_items: Optional[int] = None, cache_dir: Optional[Union[str, Path]] = None,
                  device: str = "cpu", **_: Any) -> FeatureSource:
    """The embedded default: pydoc sentences + their (cached) MiniLM embeddings."""
    _check_max_items(max_items)
    from semantic.sentences import corpus_features, corpus_hash, load_pydoc_corpus

    sentences = load_pydoc_corpus(max_sentences=max_items)
    feats = corpus_features(sentences, cache_dir=cache_dir, device=device)
    return FeatureSource("pydoc-minilm", feats, sentences, _LazyMiniLM(device, cache_dir),
                         {"corpus": "pydoc_data.topics", "corpus_hash": corpus_hash(sentences),
                          "encoder": "sentence-transformers/all-MiniLM-L6-v2"})


@register_source("gaussian")
def _gaussian(max_items: Optional[int] = None, n_items: int = 512, dim: int = 64, seed: int = 0,
              **_: Any) -> FeatureSource:
    """Synthetic i.i.d. N(0, 1) features (no items)."""
    _check_max_items(max_items)
    for v, nm in ((n_items, "n_items"), (dim, "dim")):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{nm} must be a positive int, got {v!r}")
    g = torch.Generator().manual_seed(int(seed))
    src = FeatureSource("gaussian", torch.randn(int(n_items), int(dim), generator=g),
                        info={"distribution": "N(0,1) iid", "seed": int(seed)})
    return src.subset(max_items)  # the first rows of the full draw, whatever max_items is


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------
def _as_matrix(t, path: str) -> tuple:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{path}: expected a tensor of features, found {type(t).__name__}")
    if t.is_complex() or not (t.is_floating_point() or t.dtype in (torch.int8, torch.int16, torch.int32,
                                                                     torch.int64, torch.uint8)):
        raise TypeError(f"{path}: features must be real numbers, got dtype {t.dtype}")
    if t.dim() < 2:
        raise ValueError(f"{path}: features must have shape [n_items, d] (or [n_items, ...]), got {tuple(t.shape)}")
    shape = tuple(t.shape)
    return t.reshape(t.shape[0], -1).float(), shape


def _pick(tensors: Dict[str, Any], path: str, key: Optional[str]):
    if key is not None:
        if key not in tensors:
            raise KeyError(f"{path}: no entry {key!r}; available: {sorted(tensors)}")
        return tensors[key]
    if "features" in tensors:
        return tensors["features"]
    cands = [k for k, v in tensors.items() if isinstance(v, torch.Tensor)]
    if len(cands) == 1:
        return tensors[cands[0]]
    raise ValueError(f"{path}: found tensors {sorted(cands)}; name the one to use (key=...) or store it as "
                     "'features'")


def load_items_file(path: Union[str, os.PathLike]) -> List[str]:
    """Items from a text file (one per line, trailing newline stripped) or a JSON list of str.

    Examples
    --------
    >>> import json, tempfile
    >>> f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    >>> json.dump(["a dog", "a cat"], f); f.close()
    >>> load_items_file(f.name)
    ['a dog', 'a cat']
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"items file {str(p)!r} does not exist")
    if p.suffix == ".json":
        items = json.loads(p.read_text(encoding="utf-8"))
        if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
            raise ValueError(f"{p}: expected a JSON list of strings")
        return items
    return p.read_text(encoding="utf-8").splitlines()


def load_feature_file(path: Union[str, os.PathLike], key: Optional[str] = None,
                      items_path: Optional[Union[str, os.PathLike]] = None,
                      max_items: Optional[int] = None) -> FeatureSource:
    """A :class:`FeatureSource` from a ``.npy``, ``.pt``/``.pth`` or ``.safetensors`` file.

    Parameters
    ----------
    path : str or PathLike
    key : str, optional
        Entry to read from a dict-like file (default ``"features"`` or the only tensor).
    items_path : str, optional
        Text file (one item per line) or JSON list with the items aligned to the rows.
    max_items : int, optional
        Keep the first ``max_items`` rows.

    Examples
    --------
    >>> import os, tempfile
    >>> from safetensors.torch import save_file
    >>> folder = tempfile.mkdtemp()
    >>> save_file({"features": torch.arange(6.0).reshape(3, 2)}, os.path.join(folder, "f.safetensors"))
    >>> with open(os.path.join(folder, "items.txt"), "w") as f:
    ...     _ = f.write("one" + chr(10) + "two" + chr(10) + "three" + chr(10))
    >>> src = load_feature_file(os.path.join(folder, "f.safetensors"), items_path=os.path.join(folder, "items.txt"),
    ...                         max_items=2)
    >>> src.features.tolist(), src.items
    ([[0.0, 1.0], [2.0, 3.0]], ['one', 'two'])
    """
    _check_max_items(max_items)
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in FEATURE_FILE_SUFFIXES:
        raise ValueError(f"unsupported feature file {str(p)!r}: expected one of {FEATURE_FILE_SUFFIXES}")
    if not p.is_file():
        raise FileNotFoundError(f"feature file {str(p)!r} does not exist")
    items = None
    if suffix == ".npy" and key is not None:
        raise ValueError(f"{p}: --key {key!r} names a tensor inside a .pt/.safetensors file; a .npy file holds one "
                         "array (give no --key)")
    if suffix == ".npy":
        import numpy as np

        try:
            arr = np.load(str(p), allow_pickle=False)
        except Exception as e:  # empty or foreign file (EOFError, ValueError...), an object array (pickles)
            raise ValueError(f"{p}: cannot read the .npy file with numpy.load(allow_pickle=False) "
                             f"({type(e).__name__}: {' '.join(str(e).split())})") from None
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "iufc":  # complex: refused below, naming it
            raise ValueError(f"{p}: features must be a numeric array (int/float), got "
                             f"{getattr(arr, 'dtype', type(arr).__name__)}")
        if arr.size == 0:
            raise ValueError(f"{p}: the array is empty (shape {arr.shape}); expected features [n_items, d]")
        raw = torch.from_numpy(np.ascontiguousarray(arr))
    elif suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            tensors = load_file(str(p))
        except Exception as e:  # SafetensorError: not a ValueError
            raise ValueError(f"{p}: cannot read the .safetensors file ({type(e).__name__}: {e})") from None
        raw = _pick(tensors, str(p), key)
    else:
        try:
            obj = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as e:  # pickle.UnpicklingError, RuntimeError (not a zip), ...
            from semantic.checkpoints import load_refusal

            raise ValueError(f"{p}: cannot read the {suffix} file with torch.load(weights_only=True) "
                             f"({load_refusal(e)})") from None
        if isinstance(obj, dict):
            raw = _pick(obj, str(p), key)
            items = obj.get("items", obj.get("sentences"))
        else:
            raw = obj
    feats, shape = _as_matrix(raw, str(p))
    if items_path is not None:
        items = load_items_file(items_path)
    src = FeatureSource(str(p), feats, items, None, {"path": str(p.resolve()), "shape": list(shape)})
    return src.subset(max_items)


def load_source(spec: Union[str, os.PathLike], max_items: Optional[int] = None, *, key: Optional[str] = None,
                items_path: Optional[Union[str, os.PathLike]] = None, **kwargs: Any) -> FeatureSource:
    """A registered source by name (``SOURCES``) or a tensor file by path.

    Raises ``ValueError`` for an unknown name (listing the registered ones) and
    ``FileNotFoundError`` for a missing file.

    Examples
    --------
    >>> src = load_source("gaussian", n_items=10, dim=4)
    >>> src.name, src.features.shape, src.info
    ('gaussian', torch.Size([10, 4]), {'distribution': 'N(0,1) iid', 'seed': 0})
    >>> load_source("no-such-source")
    Traceback (most recent call last):
    ...
    ValueError: ...
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"source must be a registered name or a file path, got {type(spec).__name__}")
    _check_max_items(max_items)
    s = os.fspath(spec)
    if s in SOURCES:
        return SOURCES[s](max_items=max_items, **kwargs)
    if Path(s).suffix.lower() in FEATURE_FILE_SUFFIXES or os.path.exists(s):
        return load_feature_file(s, key=key, items_path=items_path, max_items=max_items)
    raise ValueError(f"unknown source {s!r}: expected a registered source {sorted(SOURCES)} or a path to a "
                     f"{'/'.join(FEATURE_FILE_SUFFIXES)} file")
