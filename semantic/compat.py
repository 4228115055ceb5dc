"""Make the PyPI torchvision wheel importable on a CPU-only torch.

The ``torchvision==0.28.0`` wheel on PyPI is CUDA-linked; on a CPU build of torch its ``_C``
extension fails to load, and ``torchvision/_meta_registrations.py`` then aborts the import because
the ``torchvision::nms`` and ``torchvision::qnms`` operators it registers fake kernels for were never
defined (pytorch/vision#9085). ``transformers``, ``diffusers``, ``open_clip`` and ``lpips`` all
import torchvision, so this must run before the first import of any of them.

:func:`ensure_torchvision_ops` is applied by ``import semantic``, and by the start-up hook the package installs
(:mod:`semcom_torchvision`: ``semcom-torchvision.pth`` in ``site-packages`` runs it just before the first
``import torchvision`` of any program in the environment). It does nothing when torchvision
is already imported, when the operators exist, or when torchvision's own extension loads; only
otherwise does it define the two operator *schemas* (no kernels: NMS then raises if called, which
nothing in this package does).
"""
from __future__ import annotations

import glob
import importlib.util
import os
import sys

import torch

__all__ = ["ensure_torchvision_ops"]

_LIB = None  # keeps the torch.library.Library alive


def _op_exists(name: str) -> bool:
    try:
        return torch._C._dispatch_has_kernel(f"torchvision::{name}") or hasattr(torch.ops.torchvision, name)
    except (RuntimeError, AttributeError):
        return False


def ensure_torchvision_ops() -> bool:
    """Define ``torchvision::nms``/``qnms`` schemas if, and only if, torchvision needs them.

    Returns True when the schemas were defined by this call.

    Examples
    --------
    >>> ensure_torchvision_ops() in (True, False)      # idempotent: a second call defines nothing
    True
    >>> ensure_torchvision_ops()
    False
    """
    global _LIB
    if _LIB is not None or "torchvision" in sys.modules or _op_exists("nms"):
        return False
    spec = importlib.util.find_spec("torchvision")   # may run the start-up hook, which calls this function
    if spec is None or spec.origin is None or _LIB is not None or _op_exists("nms"):
        return False
    libs = glob.glob(os.path.join(os.path.dirname(spec.origin), "_C*.so"))
    if libs:
        try:
            torch.ops.load_library(libs[0])
            return False
        except (OSError, RuntimeError):
            pass
    _LIB = torch.library.Library("torchvision", "DEF")
    _LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIB.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    return True
