"""Ctrl-C / SIGTERM stop any run within seconds and leave a folder that resumes; compiled decoders work in
bounded slices (the interpreter, which handles signals, runs between them) with the same results."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_sigterm_stops_a_long_ldpc_run_and_leaves_a_resumable_folder(tmp_path):
    out = tmp_path / "ber"
    argv = ["ber", "--code", "ldpc5g", "--modulation", "qpsk", "--k", "512", "--n", "1024", "--num-iter", "1000",
            "--snr-db", "0", "--max-bits", "1e12", "--target-errors", "1000000000", "--no-progress",
            "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "experiments.cli", *argv], cwd=str(ROOT), text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not (out / "manifest.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        time.sleep(3)  # inside the decoder's compiled loop by now
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        waited = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert waited < 30, waited
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "interrupted (SIGTERM)" in lines[0], err
    assert json.load(open(out / "manifest.json"))["status"] == "interrupted"
    assert not (out / ".semcom.lock").exists()
    from experiments.commands.ber import NA_COLUMN, SETTING_COLUMNS
    from phy.sim.points import BER_COLUMNS, BER_KEY_COLUMNS
    from phy.sim.resultstore import ResumableCSV

    # a table the same command resumes
    ResumableCSV(out / "ber.csv", BER_COLUMNS + (NA_COLUMN,) + SETTING_COLUMNS, BER_KEY_COLUMNS)


def test_sliced_decoding_gives_the_same_bits_and_counts(monkeypatch):
    from sionna.phy.fec.ldpc import LDPC5GEncoder

    import phy.fec.ldpc_fast as lf

    for precision in ("int8", "float32"):
        dec = lf.LDPC5GFastDecoder(LDPC5GEncoder(k=64, n=128), precision=precision, early_stop=True)
        llr = torch.randn(300, 128) * 2 + 1.0
        whole = dec(llr)
        with monkeypatch.context() as m:
            m.setattr(lf, "WORK_PER_CALL", 1)      # 64 codewords per compiled call
            assert len(dec._slices(300, dec.num_iter)) == 5
            assert torch.equal(dec(llr), whole)
    dec = lf.LDPC5GFastDecoder(LDPC5GEncoder(k=64, n=128), precision="int8", early_stop=True)
    no = torch.linspace(0.5, 1.5, 300)
    whole = dec.scrambled_awgn_errors(300, "qpsk", no, 3, 4)
    monkeypatch.setattr(lf, "WORK_PER_CALL", 1)
    assert dec.scrambled_awgn_errors(300, "qpsk", no, 3, 4) == whole
    assert whole[1] > 0


def test_a_huge_iteration_count_is_refused(capsys):
    from experiments.cli import main

    try:
        rc = main(["ber", "--code", "ldpc5g", "--num-iter", "100000000", "--out", "unused"])
    except SystemExit as exc:
        rc = exc.code
    assert rc == 2 and "expected an integer from 1 to 1000" in capsys.readouterr().err
