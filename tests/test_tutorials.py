"""The tutorials in docs/tutorials run end to end (quick settings), so they never rot; each checks its
own numbers against the theory it explains (closed forms, the OPTA, the budget)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("[0-9][0-9]_*.py"))


def test_there_are_four_tutorials():
    assert [t.stem.split("_", 1)[1] for t in TUTORIALS] == ["ber_curve", "analog_vs_digital", "your_channel",
                                                           "your_scheme"]


@pytest.mark.slow
@pytest.mark.parametrize("script", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs(script, tmp_path):
    env = dict(os.environ, SEMCOM_TUTORIAL_OUT=str(tmp_path), SEMCOM_TUTORIAL_QUICK="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.strip()
