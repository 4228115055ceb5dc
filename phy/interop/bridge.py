"""Zero-copy tensor exchange between PyTorch and NumPy, TensorFlow, JAX and CuPy through DLPack.

The package's channel core is PyTorch; this module lets tensors (and TensorFlow channel models)
from the other frameworks plug into it without copying memory where that is possible. Optional
frameworks are imported lazily, only when a conversion to or from them is asked for.

What is shared and what is copied
---------------------------------
* ``to_torch(obj)`` shares memory with ``obj`` (NumPy arrays, TensorFlow eager tensors, JAX and
  CuPy arrays, any object with ``__dlpack__``). Copies are made only where DLPack cannot
  describe the array: NumPy/CuPy arrays with negative strides (PyTorch *aborts the process* on
  those), non-native byte order, or read-only NumPy arrays (a writable torch view of read-only
  memory could crash on write). ``tf.Variable`` gives its current value.
* ``from_torch(t, "numpy")`` shares memory for CPU tensors of any layout; a tensor on another
  device is copied to the CPU first (NumPy only holds host memory).
* ``from_torch(t, "tensorflow")`` shares memory when ``t`` is C-contiguous and its data pointer
  is 64-byte aligned. TensorFlow *aborts the process* (it does not raise) when it computes on a
  DLPack tensor that is not 64-byte aligned, and rejects non-compact strides, so any other
  tensor (a slice such as ``x[1:]`` at an odd offset, ``x[:, ::2]``, a transpose, an
  ``expand``-ed view) is first copied into a fresh 64-byte-aligned contiguous buffer; see
  :func:`is_dlpack_aligned` and :func:`aligned_contiguous`. Complex tensors are exchanged
  directly (TensorFlow >= 2.x DLPack accepts complex64/complex128, zero-copy); if a TensorFlow
  build refuses complex DLPack tensors, the bridge falls back to the zero-copy float view
  ``torch.view_as_real`` followed by ``tf.bitcast`` (which may copy, depending on TensorFlow).
* ``from_torch(t, "jax")`` uses the same aligned-contiguous preparation as TensorFlow (XLA has the
  same layout requirements) and then shares memory; JAX without ``jax_enable_x64`` turns 64-bit
  dtypes into 32-bit ones (its own copy). Checked with JAX 0.10 on CPU, which is not a dependency.
  ``from_torch(t, "cupy")`` needs a CUDA tensor (untested here: no GPU/CuPy).
* Conjugate/negative "lazy" views (``t.conj()``) are materialised first (a copy): exporting
  them through DLPack would silently drop the conjugation. Tensors that require gradients are
  detached: no framework can carry PyTorch's autograd graph.

Supported dtypes: float16/32/64, complex64/128, signed and unsigned integers, bool (bfloat16
where the target framework has it; NumPy does not).

Example
-------
>>> import torch
>>> from phy.interop.bridge import from_torch, to_torch
>>> t = torch.zeros(4, dtype=torch.complex64)
>>> a = from_torch(t, "numpy")
>>> a[0] = 1 + 2j                       # same memory
>>> t[0]
tensor(1.+2.j)
>>> bool(to_torch(a).data_ptr() == t.data_ptr())
True
"""
from __future__ import annotations

import importlib
import math
import sys
from typing import Any, Callable, Optional

import numpy as np
import torch

from phy.channel.callable_channel import CallableChannel

__all__ = [
    "FRAMEWORKS",
    "DLPACK_ALIGNMENT",
    "to_torch",
    "from_torch",
    "is_dlpack_aligned",
    "aligned_contiguous",
    "TFChannelAdapter",
]

#: Frameworks :func:`from_torch` can target (``"np"`` and ``"tf"`` are accepted as aliases).
FRAMEWORKS = ("numpy", "tensorflow", "jax", "cupy")
_ALIASES = {"np": "numpy", "tf": "tensorflow"}
_PIP_NAMES = {"tensorflow": "tensorflow (pip install semcom[tf])", "jax": "jax", "cupy": "cupy"}

#: Byte alignment TensorFlow (and XLA) need for a DLPack tensor they compute on.
DLPACK_ALIGNMENT = 64


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _import(framework: str):
    try:
        return importlib.import_module(framework)
    except ImportError as exc:
        raise ImportError(
            f"framework={framework!r} is not installed; install {_PIP_NAMES.get(framework, framework)} "
            f"to convert to/from it"
        ) from exc


def _loaded(module: str):
    """The module if it was already imported (an object of that framework can only exist then)."""
    return sys.modules.get(module)


def _canonical_strides(shape) -> tuple:
    strides, acc = [], 1
    for size in reversed(tuple(shape)):
        strides.append(acc)
        acc *= int(size)
    return tuple(reversed(strides))


def _is_compact(t: torch.Tensor) -> bool:
    """Row-major compact layout (strides of size-1 dimensions are irrelevant)."""
    want = _canonical_strides(t.shape)
    return all(size == 1 or s == w for size, s, w in zip(t.shape, t.stride(), want))


def is_dlpack_aligned(t: torch.Tensor, alignment: int = DLPACK_ALIGNMENT) -> bool:
    """True when ``t`` can be handed to TensorFlow/XLA through DLPack without a copy.

    That is: row-major compact (``x[:, ::2]``, transposes and ``expand``-ed views are not) and the
    data pointer is a multiple of ``alignment`` bytes (``torch.empty(n + 1)[1:]`` is not).
    Empty tensors are always fine.

    Examples
    --------
    >>> x = torch.zeros(4, 4)
    >>> is_dlpack_aligned(x[:, ::2]), is_dlpack_aligned(x.t())
    (False, False)
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"t must be a torch.Tensor, got {type(t).__name__}")
    if t.numel() == 0:
        return True
    return _is_compact(t) and t.data_ptr() % alignment == 0


def _aligned_empty(shape, dtype: torch.dtype, device, alignment: int) -> torch.Tensor:
    """An uninitialised contiguous tensor whose data pointer is a multiple of ``alignment``."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    nbytes = math.prod(int(s) for s in shape) * itemsize
    buf = torch.empty(nbytes + alignment, dtype=torch.uint8, device=device)
    off = (-buf.data_ptr()) % alignment
    return buf[off:off + nbytes].view(dtype).view(tuple(shape))


def aligned_contiguous(t: torch.Tensor, alignment: int = DLPACK_ALIGNMENT) -> torch.Tensor:
    """``t`` itself if :func:`is_dlpack_aligned`, else a copy in a fresh aligned compact buffer.

    The result has ``t``'s shape and dtype.

    A compact tensor whose size-1 dimensions carry unusual strides gets a zero-copy view with
    canonical strides (some DLPack consumers reject such strides).

    Examples
    --------
    >>> x = torch.arange(8.0).reshape(2, 4)[:, ::2]
    >>> y = aligned_contiguous(x)
    >>> is_dlpack_aligned(y), torch.equal(x, y)
    (True, True)
    """
    if is_dlpack_aligned(t, alignment):
        want = _canonical_strides(t.shape)
        if t.numel() and tuple(t.stride()) != want:
            t = t.as_strided(t.shape, want, t.storage_offset())
        return t
    out = _aligned_empty(t.shape, t.dtype, t.device, alignment)
    out.copy_(t)
    return out


def _prepare(t, name: str = "t") -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    t = t.detach()
    if t.is_conj():
        t = t.resolve_conj()
    if t.is_neg():
        t = t.resolve_neg()
    return t


def _normalise_framework(framework) -> str:
    if not isinstance(framework, str):
        raise TypeError(f"framework must be a string, one of {FRAMEWORKS}, got {type(framework).__name__}: "
                        f"{framework!r}")
    key = _ALIASES.get(framework.lower(), framework.lower())
    if key not in FRAMEWORKS:
        raise TypeError(f"framework must be one of {FRAMEWORKS} (or 'np'/'tf'), got {framework!r}")
    return key


# --------------------------------------------------------------------------------------------
# torch -> other
# --------------------------------------------------------------------------------------------
def _torch_to_tf(t: torch.Tensor):
    tf = _import("tensorflow")
    from torch.utils.dlpack import to_dlpack

    t = aligned_contiguous(t)
    try:
        return tf.experimental.dlpack.from_dlpack(to_dlpack(t))
    except Exception:
        if not t.is_complex():
            raise
        return _torch_complex_to_tf_via_real(t)


def _torch_complex_to_tf_via_real(t: torch.Tensor):
    """Complex tensor -> TF through its float view ``[..., 2]`` and ``tf.bitcast``.

    For TensorFlow builds whose DLPack refuses complex dtypes. The float view is shared;
    ``tf.bitcast`` may or may not copy, depending on TensorFlow.
    """
    tf = _import("tensorflow")
    from torch.utils.dlpack import to_dlpack

    real = aligned_contiguous(torch.view_as_real(aligned_contiguous(t)))
    r = tf.experimental.dlpack.from_dlpack(to_dlpack(real))
    return tf.bitcast(r, tf.complex64 if t.dtype == torch.complex64 else tf.complex128)


def _torch_to_numpy(t: torch.Tensor):
    if t.device.type != "cpu":
        t = t.cpu()  # NumPy only holds host memory: this is a copy
    if t.dtype == torch.bfloat16:
        raise TypeError("t has dtype torch.bfloat16, which NumPy does not support; convert it first "
                        "(e.g. t.float())")
    return np.from_dlpack(t)


def _torch_to_jax(t: torch.Tensor):
    _import("jax")
    import jax.dlpack

    t = aligned_contiguous(t)
    try:
        return jax.dlpack.from_dlpack(t)  # recent JAX: any object with __dlpack__
    except TypeError:  # older JAX only takes a capsule
        from torch.utils.dlpack import to_dlpack

        return jax.dlpack.from_dlpack(to_dlpack(t))


def _torch_to_cupy(t: torch.Tensor):
    cupy = _import("cupy")
    if t.device.type != "cuda":
        raise ValueError(f"t must be a CUDA tensor to share memory with CuPy, got device {t.device}")
    return cupy.from_dlpack(t)


def from_torch(t: torch.Tensor, framework: str = "numpy"):
    """Convert a torch tensor to another framework, sharing memory where possible.

    Parameters
    ----------
    t : Tensor
        Any shape; float, complex, integer or bool dtype.
    framework : ``"numpy"`` (``"np"``), ``"tensorflow"`` (``"tf"``), ``"jax"`` or ``"cupy"``

    Returns
    -------
    numpy.ndarray, tf.Tensor, jax.Array or cupy.ndarray
        Same shape, dtype and values; see the module docstring for when a copy is made.

    Raises
    ------
    TypeError
        ``t`` is not a tensor, ``framework`` is unknown, or the dtype has no equivalent.
    ImportError
        The framework is not installed.

    Example
    -------
    >>> import torch
    >>> a = from_torch(torch.arange(3.0), "np")
    >>> a.tolist()
    [0.0, 1.0, 2.0]
    """
    key = _normalise_framework(framework)
    t = _prepare(t, "t")
    if key == "numpy":
        return _torch_to_numpy(t)
    if key == "tensorflow":
        return _torch_to_tf(t)
    if key == "jax":
        return _torch_to_jax(t)
    return _torch_to_cupy(t)


# --------------------------------------------------------------------------------------------
# other -> torch
# --------------------------------------------------------------------------------------------
def _has_negative_strides(obj) -> bool:
    strides = getattr(obj, "strides", None)
    return isinstance(strides, tuple) and any(s < 0 for s in strides)


def _numpy_to_torch(a: np.ndarray) -> torch.Tensor:
    if a.dtype.kind not in "biufc":
        raise TypeError(f"obj must hold numbers (bool, int, float or complex), got a NumPy array of dtype "
                        f"{a.dtype}")
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))  # copy: DLPack has no byte order
    if _has_negative_strides(a) or not a.flags.writeable:
        a = np.array(a, copy=True, order="C")  # copy: see module docstring
    try:
        return torch.from_dlpack(a)
    except BufferError:  # e.g. strides that are not a multiple of the item size
        return torch.from_dlpack(np.array(a, copy=True, order="C"))


def _tf_to_torch(obj, tf) -> torch.Tensor:
    if isinstance(obj, tf.Variable):
        obj = tf.convert_to_tensor(obj)
    if not hasattr(obj, "numpy"):  # a symbolic tensor inside tf.function has no buffer
        raise TypeError(f"obj must be an eager TensorFlow tensor, got a symbolic {type(obj).__name__}")
    return torch.from_dlpack(tf.experimental.dlpack.to_dlpack(obj))


def to_torch(obj: Any) -> torch.Tensor:
    """Convert a NumPy / TensorFlow / JAX / CuPy array (or any DLPack producer) to a torch tensor.

    The result has the input's shape and dtype.

    Memory is shared where DLPack allows (see the module docstring); the result lives on the
    producer's device. A torch tensor is returned unchanged.

    Raises
    ------
    TypeError
        ``obj`` is not an array/tensor of a supported framework (e.g. a list or a float).

    Example
    -------
    >>> import numpy as np
    >>> a = np.arange(4, dtype=np.float32)
    >>> t = to_torch(a)
    >>> t[0] = 7
    >>> float(a[0])
    7.0
    """
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, np.ndarray):
        return _numpy_to_torch(obj)
    tf = _loaded("tensorflow")
    if tf is not None and isinstance(obj, (tf.Tensor, tf.Variable)):
        return _tf_to_torch(obj, tf)
    cupy = _loaded("cupy")
    if cupy is not None and isinstance(obj, cupy.ndarray) and _has_negative_strides(obj):
        obj = cupy.ascontiguousarray(obj)  # copy: torch cannot describe negative strides
    if hasattr(obj, "__dlpack__") and hasattr(obj, "__dlpack_device__"):
        return torch.from_dlpack(obj)
    raise TypeError(
        "obj must be a torch.Tensor, numpy.ndarray, tf.Tensor, jax.Array, cupy.ndarray or another "
        f"DLPack-capable array, got {type(obj).__module__}.{type(obj).__name__}"
    )


# --------------------------------------------------------------------------------------------
# TensorFlow channel models as phy channels
# --------------------------------------------------------------------------------------------
class TFChannelAdapter(CallableChannel):
    """A TensorFlow channel callable as a :class:`phy.channel.base.Channel`, usable by every link.

    ``tf_callable(x, no)`` receives TF tensors (``x`` complex ``[..., n]``, ``no`` real and
    broadcastable to ``x``, both zero-copy views of the torch inputs where possible) and returns
    TF ``y`` or ``(y, h)``; ``h`` is the CSI the receiver may use (``None`` means 1). The noise is
    the callable's job and must follow the package convention ``CN(0, N0)``.

    With ``pass_seed=True`` the callable is called as ``tf_callable(x, no, seed)`` where ``seed``
    is an int64 TF tensor of shape ``[2]`` drawn from the channel's own torch generator: use it
    with TF's stateless random ops (``tf.random.stateless_normal(..., seed=seed)``) and the channel
    becomes reproducible through ``seed=``/:meth:`reset` like every other channel. Without it the
    randomness is TensorFlow's (global) own.

    Gradients do not flow through the TensorFlow call.

    Parameters
    ----------
    tf_callable : callable
    name : str
    pass_seed : bool
    seed : int, optional
        Seed of the channel's torch stream (only used with ``pass_seed=True``).

    Example
    -------
    >>> import tensorflow as tf                                         # doctest: +SKIP
    >>> def awgn(x, no, seed):                                          # doctest: +SKIP
    ...     s = tf.cast(tf.sqrt(no / 2), x.dtype.real_dtype)
    ...     n = tf.complex(tf.random.stateless_normal(tf.shape(x), seed, dtype=s.dtype),
    ...                    tf.random.stateless_normal(tf.shape(x), seed + 1, dtype=s.dtype))
    ...     return x + tf.cast(s, x.dtype) * n
    >>> ch = TFChannelAdapter(awgn, pass_seed=True, seed=0)             # doctest: +SKIP
    >>> AnalogLink(ch)(torch.randn(2, 64), snr_db=10.0)                 # doctest: +SKIP
    """

    name = "tensorflow"

    def __init__(self, tf_callable: Callable, name: str = "tensorflow", pass_seed: bool = False,
                 seed: Optional[int] = None, device=None):
        if not callable(tf_callable):
            raise TypeError(f"tf_callable must be callable, got {type(tf_callable).__name__}")
        super().__init__(self._call_tf, name=name, pass_generator=True, seed=seed, device=device)
        self.tf_callable = tf_callable
        self.pass_seed = bool(pass_seed)

    def _call_tf(self, x: torch.Tensor, no: torch.Tensor, generator: torch.Generator):
        tf = _import("tensorflow")
        x_tf = from_torch(x, "tensorflow")
        no_tf = from_torch(no, "tensorflow")
        if self.pass_seed:
            seed = torch.randint(0, 2**31 - 1, (2,), generator=generator, device=generator.device,
                                 dtype=torch.int64)
            out = self.tf_callable(x_tf, no_tf, tf.constant(seed.cpu().numpy()))
        else:
            out = self.tf_callable(x_tf, no_tf)
        if isinstance(out, (tuple, list)):
            if len(out) != 2:
                raise ValueError(f"channel callable {self.name!r} must return y or (y, h), got a "
                                 f"{type(out).__name__} of length {len(out)}")
            y, h = out
        else:
            y, h = out, None
        y = to_torch(y)
        h = to_torch(h) if h is not None else None
        return y, h

    def extra_repr(self) -> str:
        return f"name={self.name!r}, pass_seed={self.pass_seed}, seed={self._seed}"
