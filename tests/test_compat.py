"""The torchvision shim: PyPI's CUDA-linked torchvision wheel must import on a CPU-only torch."""
import os
import subprocess
import sys

import pytest


def _run(code: str, **env) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def test_torchvision_imports_after_semantic():
    r = _run("import semantic, torchvision, torch; print(hasattr(torch.ops.torchvision, 'nms'))")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().endswith("True")


def test_shim_acts_only_when_needed():
    # Without the shim: either torchvision imports by itself (its extension loads, so nothing to do) or it
    # fails on the missing operator (pytorch/vision#9085) - the case the shim exists for.
    plain = _run("import torchvision", SEMCOM_TORCHVISION_HOOK="0")   # the start-up hook off
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


def test_start_up_hook_is_installed_and_imports_nothing():
    """The package ships semcom-torchvision.pth into site-packages: Python runs it at start-up; it adds a
    finder and imports no torch."""
    import site

    pth = [os.path.join(d, "semcom-torchvision.pth") for d in site.getsitepackages()]
    assert any(os.path.isfile(p) for p in pth), f"semcom-torchvision.pth missing from {site.getsitepackages()}: " \
        "reinstall the package (pip install --no-deps --no-build-isolation -e .)"
    r = _run("import sys, semcom_torchvision as h; print('torch' in sys.modules, "
             "any(type(f).__name__ == '_TorchvisionFinder' for f in sys.meta_path))")
    assert r.returncode == 0 and r.stdout.split() == ["False", "True"], r.stderr[-2000:]
    off = _run("import sys; print(any(type(f).__name__ == '_TorchvisionFinder' for f in sys.meta_path))",
               SEMCOM_TORCHVISION_HOOK="0")
    assert off.stdout.strip() == "False"


@pytest.mark.parametrize("module", ["torchvision", "open_clip"])
def test_model_libraries_import_on_their_own(module):
    r = _run(f"import {module}")
    assert r.returncode == 0, r.stderr[-2000:]


def test_explain_names_what_to_install():
    import semcom_torchvision

    text = semcom_torchvision.explain()
    assert "pip install torchvision" in text and "torch" in text
