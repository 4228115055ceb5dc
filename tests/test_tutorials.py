"""The tutorials in docs/tutorials run as shipped -- what a user gets from ``python docs/tutorials/NN_*.py`` --
in a fresh process, writing nothing but into a temporary folder; each checks its own numbers against the
theory it explains (closed forms with one joint test per curve, the OPTA, the budget) and fails otherwise.

The site build (``tests/test_docs_site.py``) executes them once more in their quick mode to render the pages.
"""
import ast
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("[0-9][0-9]_*.py"))


def test_there_are_five_tutorials():
    assert [t.stem.split("_", 1)[1] for t in TUTORIALS] == ["ber_curve", "analog_vs_digital", "your_channel",
                                                           "your_scheme", "mimo_ofdm_csi"]


@pytest.mark.parametrize("script", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_is_a_gallery_script_that_writes_only_where_it_is_told(script):
    text = script.read_text()
    doc = ast.get_docstring(ast.parse(text))
    assert doc and doc.splitlines()[1].startswith("===="), "sphinx-gallery needs a docstring with a title"
    assert "# %%" in text
    # outputs go to $SEMCOM_TUTORIAL_OUT or a new temporary folder, never into the working directory
    assert 'os.environ.get("SEMCOM_TUTORIAL_OUT") or tempfile.mkdtemp(' in text
    assert "tutorial-out" not in text
    assert "SEED = " in text


@pytest.mark.slow
@pytest.mark.parametrize("script", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs_as_shipped(script, tmp_path):
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEMCOM_TUTORIAL")}
    env.update(TMPDIR=str(tmp), PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p]))
    start = time.monotonic()
    r = subprocess.run([sys.executable, str(script)], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=1800)
    elapsed = time.monotonic() - start
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.strip()
    assert not any(cwd.iterdir()), f"the tutorial wrote into its working directory: {list(cwd.iterdir())}"
    written = [p for p in tmp.rglob("*") if p.is_file()]
    assert any(p.suffix == ".png" for p in written), "the tutorial saved no figure into its temporary folder"
    print(f"{script.name}: {elapsed:.1f} s")
