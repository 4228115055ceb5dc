"""Models that produce or consume semantic features (VLF-MSC and SemCLIP parts, metrics).

Importing this package first makes the PyPI torchvision wheel importable on a CPU-only torch
(see :mod:`semantic.compat`).
"""
from .compat import ensure_torchvision_ops as _ensure_torchvision_ops

_ensure_torchvision_ops()
