"""Start-up hook: ``import torchvision`` works in this package's environment without importing ``semantic`` first.

The ``torchvision==0.28.0`` wheel on PyPI is CUDA-linked. Beside the CPU build of torch that this package
locks (``torch==2.13.0+cpu``) its ``_C`` extension does not load, and ``import torchvision`` then stops with
``RuntimeError: operator torchvision::nms does not exist`` (pytorch/vision#9085). No CPU build of that
torchvision exists on the package index this project installs from, so the lock cannot simply name one.

The package installs ``semcom-torchvision.pth`` into ``site-packages``; Python runs its one line at start-up,
which calls :func:`install`. That adds a finder that waits for the first ``import torchvision`` (of any
program in the environment: ``open_clip``, ``transformers``, ``diffusers``, ``lpips``, a user's script) and,
just before it, runs :func:`semantic.compat.ensure_torchvision_ops`: nothing when torchvision's own extension
loads (a matching build is installed), else the two operator schemas, without kernels (NMS then raises if
called; nothing in this package calls it). Nothing else is imported at start-up (no torch): the cost is
this module. ``SEMCOM_TORCHVISION_HOOK=0`` switches the hook off.

Where the hook cannot help (the ``semantic`` package is gone, or the schemas cannot be defined) the import
fails as before, and :func:`explain` says what to install: a torchvision built for the installed torch (for
torch 2.13.0+cpu: ``pip install torchvision==0.28.0 --index-url https://download.pytorch.org/whl/cpu``).

Example
-------
>>> import semcom_torchvision
>>> semcom_torchvision.install() in (True, False)      # idempotent: a second call adds nothing
True
>>> semcom_torchvision.install()
False
"""
from __future__ import annotations

import importlib.abc
import os
import sys

__all__ = ["install", "explain"]


class _TorchvisionFinder(importlib.abc.MetaPathFinder):
    """Runs the torchvision shim once, just before the first ``import torchvision``; finds nothing itself."""

    def find_spec(self, name, path=None, target=None):
        if name != "torchvision" and not name.startswith("torchvision."):
            return None
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass
        try:
            from semantic.compat import ensure_torchvision_ops

            ensure_torchvision_ops()
        except Exception:   # never break an import that might have worked: torchvision reports its own error
            pass
        return None


def install() -> bool:
    """Add the finder to ``sys.meta_path`` (first), unless torchvision is imported already, the finder is
    there, or ``SEMCOM_TORCHVISION_HOOK=0``. Returns True when it was added."""
    if os.environ.get("SEMCOM_TORCHVISION_HOOK", "1") == "0" or "torchvision" in sys.modules:
        return False
    if any(isinstance(f, _TorchvisionFinder) for f in sys.meta_path):
        return False
    sys.meta_path.insert(0, _TorchvisionFinder())
    return True


def explain() -> str:
    """What to install when torchvision does not import beside the installed torch."""
    try:
        from importlib.metadata import version

        torch_v = version("torch")
    except Exception:
        torch_v = "the installed torch"
    return (f"torchvision does not load beside torch {torch_v}: install a torchvision built for it, e.g. for a "
            "CPU torch 2.13.0: pip install torchvision==0.28.0 --index-url https://download.pytorch.org/whl/cpu "
            "(or import semantic before torchvision)")
