"""The torchvision shim: PyPI's CUDA-linked torchvision wheel must import on a CPU-only torch."""
import subprocess
import sys

import pytest


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_torchvision_imports_after_semantic():
    r = _run("import semantic, torchvision, torch; print(hasattr(torch.ops.torchvision, 'nms'))")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().endswith("True")


def test_shim_acts_only_when_needed():
    # Without the shim: either torchvision imports by itself (its extension loads, so nothing to do) or it
    # fails on the missing operator (pytorch/vision#9085) - the case the shim exists for.
    plain = _run("import torchvision")
    # ``import semantic`` (run by importing semantic.compat) applies the shim once
    fixed = _run("import semantic.compat as c, torchvision; print(c._LIB is not None, c.ensure_torchvision_ops())")
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    installed, again = fixed.stdout.split()[-2:]
    assert again == "False"  # never twice, never after torchvision is imported
    if plain.returncode == 0:
        assert installed == "False"  # torchvision's own ops load: the shim must leave them alone
    else:
        assert "torchvision::nms" in plain.stderr
        assert installed == "True"


@pytest.mark.parametrize("module", ["transformers", "diffusers", "open_clip", "lpips"])
def test_model_libraries_import_after_semantic(module):
    r = _run(f"import semantic, {module}")
    assert r.returncode == 0, r.stderr[-2000:]
