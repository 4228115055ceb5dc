"""Find model weights: a local folder, a Hugging Face hub id in the local cache, or (opt-in) the hub.

Every pretrained model of the package (BLIP-2, OPT, Stable Diffusion, CLIP/open_clip, trained
projections) is located through :func:`resolve_checkpoint` (a folder) or :func:`resolve_file` (one
file of a hub repository), so a missing checkpoint always fails the same way, at once and with one
message that names the checkpoint and says how to provide it::

    semantic.checkpoints.CheckpointNotFoundError: checkpoint 'Salesforce/blip2-opt-6.7b' (BLIP-2) was
    not found: it is not a local folder and is not in the Hugging Face cache (/root/.cache/huggingface/hub),
    and downloads are off. Provide it in one of these ways: ...

Resolution order for ``name_or_path``:

1. an existing local folder (or file) -> used as is;
2. a hub id (``owner/name``) -> the snapshot in the Hugging Face cache (``HF_HOME``/``HF_HUB_CACHE``,
   or ``cache_dir``), looked up with ``local_files_only=True`` (no network traffic);
3. only when downloads are allowed (``allow_download=True``, or the environment variable
   ``SEMCOM_ALLOW_DOWNLOAD=1``) and the hub is not switched off (``HF_HUB_OFFLINE=1``): a download into
   that cache. Downloads are off by default, so an offline machine never waits on a network timeout.

Example
-------
>>> import tempfile
>>> from semantic.checkpoints import resolve_checkpoint
>>> d = tempfile.mkdtemp()
>>> resolve_checkpoint(d) == __import__("pathlib").Path(d)
True
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

__all__ = [
    "staging_dir",
    "commit_dir",
    "CheckpointNotFoundError",
    "resolve_checkpoint",
    "resolve_file",
    "downloads_allowed",
    "hub_cache_dir",
    "is_hub_id",
    "missing_checkpoint_message",
    "resolve_device",
    "resolve_dtype",
    "load_refusal",
    "safe_torch_load",
]

PathLike = Union[str, os.PathLike]
_TRUE = {"1", "true", "yes", "on"}


def load_refusal(exc: BaseException) -> str:
    """Why ``torch.load(..., weights_only=True)`` refused a file, in words that do not pass on torch's advice
    to load it unsafely: a pickle of other objects is named as such, other errors by their first line.

    Examples
    --------
    >>> import pickle
    >>> load_refusal(pickle.UnpicklingError("Weights only load failed. ... weights_only=False ..."))
    'refused to unpickle it: it holds pickled Python objects besides tensors and plain containers (unpickling them could run code)'
    >>> load_refusal(RuntimeError("PytorchStreamReader failed reading zip archive"))
    'RuntimeError: PytorchStreamReader failed reading zip archive'
    """
    import pickle

    text = " ".join(str(exc).split())
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in text or "Weights only load failed" in text:
        return ("refused to unpickle it: it holds pickled Python objects besides tensors and plain containers "
                "(unpickling them could run code)")
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def safe_torch_load(path: PathLike, map_location="cpu", what: str = "file"):
    """``torch.load(path, weights_only=True)``; any failure is a ``ValueError`` naming ``path`` and
    :func:`load_refusal`'s reason (never an advice to unpickle).

    Examples
    --------
    >>> import pickle, tempfile, torch
    >>> path = Path(tempfile.mkdtemp()) / "evil.pt"
    >>> with open(path, "wb") as fh:
    ...     pickle.dump(object(), fh)
    >>> safe_torch_load(path, what="checkpoint")
    Traceback (most recent call last):
    ...
    ValueError: ...evil.pt: not a checkpoint this code can read (...)
    """
    import torch

    try:
        return torch.load(str(path), map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError, RuntimeError (not a zip), EOFError (torn), ...
        raise ValueError(f"{path}: not a {what} this code can read ({load_refusal(exc)})") from None


class CheckpointNotFoundError(FileNotFoundError):
    """Raised when a checkpoint is neither a local folder, nor cached, nor downloadable.

    Attributes
    ----------
    checkpoint : str
        The hub id or path that was asked for.

    Examples
    --------
    >>> import tempfile
    >>> missing = str(Path(tempfile.mkdtemp()) / "no-such-folder")
    >>> try:
    ...     resolve_checkpoint(missing, what="demo")
    ... except CheckpointNotFoundError as err:
    ...     err.checkpoint == missing, "was not found" in str(err)
    (True, True)
    """

    def __init__(self, message: str, checkpoint: str):
        super().__init__(message)
        self.checkpoint = checkpoint


def hub_cache_dir(cache_dir: Optional[PathLike] = None) -> Path:
    """The Hugging Face hub cache in use (``cache_dir``, else ``HF_HUB_CACHE`` / ``HF_HOME/hub``).

    Examples
    --------
    >>> hub_cache_dir("/data/hf-cache")
    PosixPath('/data/hf-cache')
    """
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _hub_offline() -> bool:
    return any(os.environ.get(k, "").lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def downloads_allowed(allow_download: Optional[bool] = None) -> bool:
    """Whether a missing checkpoint may be downloaded.

    ``allow_download`` wins when given; otherwise ``SEMCOM_ALLOW_DOWNLOAD=1`` enables downloads. The
    hub being switched off (``HF_HUB_OFFLINE=1``/``TRANSFORMERS_OFFLINE=1``) always disables them.

    Examples
    --------
    >>> downloads_allowed(False)
    False
    """
    if _hub_offline():
        return False
    if allow_download is not None:
        return bool(allow_download)
    return os.environ.get("SEMCOM_ALLOW_DOWNLOAD", "").lower() in _TRUE


def is_hub_id(name: str) -> bool:
    """``owner/name`` with no path syntax (``./``, ``~``, absolute, drive, more than one ``/``).

    Examples
    --------
    >>> is_hub_id("Salesforce/blip2-opt-2.7b"), is_hub_id("./runs/decoder"), is_hub_id("/abs/path")
    (True, False, False)
    """
    if not name or name.startswith((".", "/", "~", "\\")) or os.path.isabs(name):
        return False
    parts = name.split("/")
    return len(parts) == 2 and all(p and p not in (".", "..") for p in parts) and "\\" not in name


def missing_checkpoint_message(name: str, what: Optional[str] = None, cache_dir: Optional[PathLike] = None,
                               option: str = "--checkpoint", filename: Optional[str] = None,
                               reason: Optional[str] = None) -> str:
    """The one error text for a missing checkpoint (see the module docstring).

    Examples
    --------
    >>> msg = missing_checkpoint_message("/no/such/folder", what="decoder", cache_dir="/tmp/hub")
    >>> msg.startswith("checkpoint '/no/such/folder' (decoder) was not found: '/no/such/folder' does not exist")
    True
    """
    label = f"checkpoint {name!r}" + (f" ({what})" if what else "")
    cache = hub_cache_dir(cache_dir)
    if is_hub_id(name):
        where = f"it is not a local folder and is not in the Hugging Face cache ({cache})"
        if filename:
            where = f"its file {filename!r} is not in the Hugging Face cache ({cache}) and it is not a local path"
        why = reason or ("and the hub is switched off (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE)" if _hub_offline()
                         else "and downloads are off")
        include = f" --include {filename}" if filename else ""
        return (
            f"{label} was not found: {where}, {why}. Provide it in one of these ways: "
            f"(1) on a machine with internet access run `huggingface-cli download {name}{include}` "
            f"(or `hf download {name}`) and copy the cache to this machine, pointing HF_HOME (or HF_HUB_CACHE) "
            f"at it; (2) download it into a folder (`huggingface-cli download {name} --local-dir DIR`) and pass "
            f"{option} DIR; (3) on a connected machine rerun with --allow-download (in Python: allow_download=True; "
            f"or set SEMCOM_ALLOW_DOWNLOAD=1)."
        )
    return (
        f"{label} was not found: {str(Path(name).expanduser())!r} does not exist"
        + (f" ({reason})" if reason else "")
        + f". Pass {option} with an existing checkpoint folder, or a hub id such as 'owner/name' that is in "
          f"the Hugging Face cache ({cache}; set HF_HOME to use another cache)."
    )


def _check_required(path: Path, required: Sequence[str], name: str, what, option) -> None:
    missing = [r for r in required if not (path / r).exists()]
    if missing:
        raise CheckpointNotFoundError(
            missing_checkpoint_message(name, what, option=option,
                                       reason=f"the folder {str(path)!r} lacks {', '.join(missing)}"),
            name)


def resolve_checkpoint(name_or_path: PathLike, *, what: Optional[str] = None,
                       required_files: Iterable[str] = (), allow_download: Optional[bool] = None,
                       revision: Optional[str] = None, cache_dir: Optional[PathLike] = None,
                       allow_patterns: Optional[Sequence[str]] = None, option: str = "--checkpoint") -> Path:
    """Return the local folder of a checkpoint given a folder or a hub id.

    Parameters
    ----------
    name_or_path : str or PathLike
        A local folder, or a hub id such as ``"Salesforce/blip2-opt-6.7b"``.
    what : str, optional
        A human name used in the error message (``"BLIP-2"``, ``"Stable Diffusion 1.5"``).
    required_files : iterable of str
        Relative paths that must exist in the folder (e.g. ``("unet/config.json",)``).
    allow_download : bool, optional
        Download a missing hub checkpoint (see :func:`downloads_allowed`). Default: off.
    revision, cache_dir, allow_patterns :
        Passed to ``huggingface_hub.snapshot_download``.
    option : str
        The command-line option that provides this checkpoint, named in the error message.

    Raises
    ------
    CheckpointNotFoundError
        At once, when the checkpoint is nowhere on disk and may not be downloaded.
    TypeError
        If ``name_or_path`` is not a string or path.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "config.json").write_text("{}")
    >>> resolve_checkpoint(folder, required_files=("config.json",)) == folder
    True
    >>> resolve_checkpoint(folder, required_files=("unet/config.json",), what="Stable Diffusion")
    Traceback (most recent call last):
    ...
    semantic.checkpoints.CheckpointNotFoundError: checkpoint ... (Stable Diffusion) ...unet/config.json...
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a str or path (hub id or folder), got "
                        f"{type(name_or_path).__name__}: {name_or_path!r}")
    name = os.fspath(name_or_path)
    required = tuple(required_files)
    local = Path(name).expanduser()
    if local.exists():
        _check_required(local, required, name, what, option)
        return local
    if not is_hub_id(name):
        raise CheckpointNotFoundError(missing_checkpoint_message(name, what, cache_dir, option), name)

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    # the cache is read from the environment at call time (huggingface_hub reads it once, at import)
    kw = dict(revision=revision, cache_dir=os.fspath(hub_cache_dir(cache_dir)),
              allow_patterns=list(allow_patterns) if allow_patterns else None)
    try:
        path = Path(snapshot_download(name, local_files_only=True, **kw))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        path = None
    if path is None or not path.exists():
        if not downloads_allowed(allow_download):
            raise CheckpointNotFoundError(missing_checkpoint_message(name, what, cache_dir, option), name)
        try:
            path = Path(snapshot_download(name, **kw))
        except Exception as exc:  # network / auth / missing repo: one message, with the cause chained
            raise CheckpointNotFoundError(
                missing_checkpoint_message(name, what, cache_dir, option,
                                           reason=f"and the download failed ({type(exc).__name__}: {exc})"),
                name) from exc
    _check_required(path, required, name, what, option)
    return path


def resolve_file(name_or_path: PathLike, filename: str, *, what: Optional[str] = None,
                 allow_download: Optional[bool] = None, revision: Optional[str] = None,
                 cache_dir: Optional[PathLike] = None, option: str = "--checkpoint") -> Path:
    """Return the local path of one file of a checkpoint (e.g. open_clip's ``open_clip_model.safetensors``).

    ``name_or_path`` may be a file (returned as is), a folder holding ``filename``, or a hub id whose
    ``filename`` is in the cache (or downloadable when allowed). Raises
    :class:`CheckpointNotFoundError` otherwise.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "weights.safetensors").write_bytes(b"")
    >>> resolve_file(folder, "weights.safetensors") == folder / "weights.safetensors"
    True
    """
    if not isinstance(filename, str) or not filename:
        raise TypeError(f"filename must be a non-empty str, got {filename!r}")
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a str or path, got {type(name_or_path).__name__}")
    name = os.fspath(name_or_path)
    local = Path(name).expanduser()
    if local.is_file():
        return local
    if local.is_dir():
        _check_required(local, (filename,), name, what, option)
        return local / filename
    if not is_hub_id(name):
        raise CheckpointNotFoundError(missing_checkpoint_message(name, what, cache_dir, option), name)

    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    kw = dict(revision=revision, cache_dir=os.fspath(hub_cache_dir(cache_dir)))
    try:
        return Path(hf_hub_download(name, filename, local_files_only=True, **kw))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        pass
    if not downloads_allowed(allow_download):
        raise CheckpointNotFoundError(
            missing_checkpoint_message(name, what, cache_dir, option, filename=filename), name)
    try:
        return Path(hf_hub_download(name, filename, **kw))
    except Exception as exc:
        raise CheckpointNotFoundError(
            missing_checkpoint_message(name, what, cache_dir, option, filename=filename,
                                       reason=f"and the download failed ({type(exc).__name__}: {exc})"),
            name) from exc


# ------------------------------------------------------------------------------------------------
# Device and dtype arguments shared by the model loaders
# ------------------------------------------------------------------------------------------------
_DTYPES = {"float32": "float32", "fp32": "float32", "float": "float32", "float16": "float16",
           "fp16": "float16", "half": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float64": "float64", "fp64": "float64"}


def staging_dir(path: PathLike) -> Path:
    """A fresh, empty ``<path>.tmp`` folder to write a checkpoint into before :func:`commit_dir`.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> tmp = staging_dir(root / "ckpt")
    >>> tmp.name, tmp.is_dir(), list(tmp.iterdir())
    ('ckpt.tmp', True, [])
    """
    import shutil

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def commit_dir(tmp: PathLike, path: PathLike) -> Path:
    """Move a finished checkpoint folder ``tmp`` to ``path``, replacing an older one.

    The old folder is first renamed aside, so at every moment either the old or the new checkpoint
    is complete on disk: an interrupted save never leaves a half-written ``path``.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> tmp = staging_dir(root / "ckpt")
    >>> _ = (tmp / "config.json").write_text("{}")
    >>> final = commit_dir(tmp, root / "ckpt")
    >>> sorted(p.name for p in final.iterdir()), tmp.exists()
    (['config.json'], False)
    """
    import shutil

    tmp, path = Path(tmp), Path(path)
    if path.exists():
        old = path.with_name(path.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old)
    else:
        tmp.rename(path)
    return path


def resolve_device(device=None):
    """``torch.device`` from ``None`` (CUDA if available, else CPU), a string or a device.

    Examples
    --------
    >>> import torch
    >>> resolve_device("cpu"), resolve_device(torch.device("cpu"))
    (device(type='cpu'), device(type='cpu'))
    """
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, (str, torch.device)):
        from phy.utils.conventions import check_device

        return check_device(device)  # ValueError for a bad name or CUDA on a machine without it
    raise TypeError(f"device must be None, a str or a torch.device, got {type(device).__name__}: {device!r}")


def resolve_dtype(dtype=None, device=None):
    """``torch.dtype`` from ``None``/``"auto"`` (float16 on CUDA, float32 elsewhere), a name or a dtype.

    Accepted names: float32/fp32, float16/fp16/half, bfloat16/bf16, float64.

    Examples
    --------
    >>> import torch
    >>> resolve_dtype("fp16"), resolve_dtype(None, device="cpu"), resolve_dtype(torch.bfloat16)
    (torch.float16, torch.float32, torch.bfloat16)
    """
    import torch

    if dtype is None or (isinstance(dtype, str) and dtype.lower() == "auto"):
        kind = resolve_device(device).type if device is None else torch.device(device).type  # the kind only
        return torch.float16 if kind == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
        return dtype
    if isinstance(dtype, str) and dtype.lower() in _DTYPES:
        return getattr(torch, _DTYPES[dtype.lower()])
    raise ValueError(f"dtype must be 'auto', one of {sorted(_DTYPES)} or a torch.dtype, got {dtype!r}")
