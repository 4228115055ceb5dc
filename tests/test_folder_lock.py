"""One writer per results folder: a second run into a folder another live process writes stops at once
(exit status 2, one line naming the holder's PID); the lock of a killed run never blocks the next one."""
import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.cli import main
from phy.sim.resultstore import LOCK_NAME, FolderBusyError, folder_lock

ROOT = Path(__file__).resolve().parents[1]
HOLD = ("import sys, time; from phy.sim.resultstore import folder_lock\n"
        "with folder_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(600)\n")


def _holder(folder):
    """A second process that takes ``folder``'s lock and keeps it."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True,
                            cwd=str(ROOT), env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.stdout.readline().strip() == "held"
    return proc


def _run(argv):
    with contextlib.redirect_stdout(io.StringIO()):
        return main(argv)


BER = ["ber", "--code", "none", "--modulation", "qpsk", "--snr-db", "0", "--max-bits", "2000", "--no-progress"]


def test_a_second_writer_is_refused_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "run"
    proc = _holder(out)
    try:
        t0 = time.monotonic()
        assert _run(BER + ["--out", str(out)]) == 2
        assert time.monotonic() - t0 < 30
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and f"PID {proc.pid}" in lines[0] and "another run" in lines[0], err
        assert sorted(os.listdir(out)) == [LOCK_NAME]     # the refused run wrote nothing
        with pytest.raises(FolderBusyError, match=f"PID {proc.pid}"):
            with folder_lock(out):
                pass
    finally:
        proc.kill()
        proc.wait()
    # the holder was killed: its lock is stale and never blocks; the run goes ahead and leaves no lock file
    assert _run(BER + ["--out", str(out)]) == 0
    assert (out / "ber.csv").is_file() and not (out / LOCK_NAME).exists()


def test_two_cli_runs_into_one_folder(tmp_path, capsys):
    """A live `semcom ber` (another process) holds its --out; a second `semcom ber` and a `semcom compare`
    into it are refused at once; after SIGKILL of the first, the folder resumes."""
    out = tmp_path / "ber"
    argv = ["ber", "--code", "ldpc5g", "--modulation", "qpsk", "--snr-db", "0:40:1", "--max-bits", "1e9",
            "--target-errors", "1000000000", "--no-progress", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "experiments.cli", *argv], cwd=str(ROOT),
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not (out / LOCK_NAME).exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        for second in (argv, ["compare", "--source", "gaussian", "--schemes", "analog", "--snr-db", "0",
                              "--no-progress", "--out", str(out)]):
            assert _run(second) == 2
            assert f"PID {proc.pid}" in capsys.readouterr().err
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert _run(argv[:-5] + ["--max-bits", "2000", "--target-errors", "10", "--snr-db", "0", "--no-progress",
                             "--out", str(out)]) in (0, 2)
    err = capsys.readouterr().err
    assert "another run" not in err, err


def test_a_refused_run_leaves_no_folder(tmp_path):
    out = tmp_path / "new" / "run"
    assert _run(["ber", "--code", "bogus", "--out", str(out)]) == 2
    assert not (tmp_path / "new").exists()
