"""``semcom run``: the quick version writes every output file; reruns resume; bad arguments fail cleanly."""
import json

import pytest
import torch

import semantic  # noqa: F401  (CPU shim first)
from experiments.cli import main
from experiments.core.results import read_rows
from experiments.commands.run import QUICK, RUN_SCHEMES
from phy.channel.registry import canonical_channel_spec

RAY = canonical_channel_spec("rayleigh")  # the CSV key of the bare name: every parameter, defaults filled in

EXPECTED = ["manifest.json", "summary.txt", "ber/ber.csv", "ber/ber.png", "ber/bler.png", "ber/manifest.json",
            "compare/compare.csv", "compare/manifest.json"] + [
    f"compare/{m}_{ch}.png" for m in ("nmse", "retrieval", "cosine", "bleu") for ch in ("awgn", "rayleigh")]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "results"
    assert main(["run", "--quick", "--out", str(out), "--no-progress"]) == 0
    return out


def test_quick_run_writes_every_output(quick_run):
    for name in EXPECTED:
        assert (quick_run / name).is_file() and (quick_run / name).stat().st_size > 0, name
    man = json.load(open(quick_run / "manifest.json"))
    assert man["status"] == "finished" and man["quick"] is True and man["wall_time_s"] > 0
    assert set(EXPECTED) - {"manifest.json"} <= set(man["files"])
    # BER step: 3 codes x 2 channels x the quick SNR points, from the `semcom ber` machinery
    ber = read_rows(quick_run / "ber" / "ber.csv")
    n_snr = len(QUICK["ber_snr_db"].split(","))
    assert {(r["scheme"], r["channel"]) for r in ber} == {(c, ch) for c in ("none", "hamming74", "ldpc5g")
                                                         for ch in ("awgn", RAY)}
    assert len(ber) == 6 * n_snr
    # comparison: every scheme x channel x SNR, matched to the analog budget (ceil(384/2))
    rows = read_rows(quick_run / "compare" / "compare.csv")
    keys = {(r["scheme"], r["channel"], float(r["snr_db"])) for r in rows}
    assert keys == {(s, ch, snr) for s in RUN_SCHEMES for ch in ("awgn", RAY) for snr in QUICK["compare_snr_db"]}
    for r in rows:
        assert int(r["channel_uses"]) <= int(r["budget"]) == 192
        assert int(r["n_items"]) == QUICK["max_items"]
        assert r["status"] in ("ok", "nothing delivered"), (r["scheme"], r["status"])
        assert float(r["retrieval_top1_ci_lo"]) <= float(r["retrieval_top1"]) <= float(r["retrieval_top1_ci_hi"])
        assert float(r["nmse"]) >= 0.97 * float(r["opta_nmse"]) and r["gap_db"] != ""
    text = [r for r in rows if r["scheme"].startswith("ascii")]
    assert all(int(r["n_examples"]) == QUICK["text_max_items"] and r["bleu"] != "" for r in text)
    summary = (quick_run / "summary.txt").read_text()
    assert "NMSE gap to the Gaussian OPTA [dB], awgn" in summary and "transform-ldpc5g-amc" in summary
    analog = {float(r["snr_db"]): float(r["retrieval_top1"]) for r in rows
              if r["scheme"] == "analog-mmse" and r["channel"] == "awgn"}
    assert analog[10.0] >= 0.9


def test_quick_run_resumes_without_changes(quick_run):
    before = (quick_run / "compare" / "compare.csv").read_bytes()
    ber_before = (quick_run / "ber" / "ber.csv").read_bytes()
    assert main(["run", "--quick", "--out", str(quick_run), "--no-progress"]) == 0
    assert (quick_run / "compare" / "compare.csv").read_bytes() == before
    assert (quick_run / "ber" / "ber.csv").read_bytes() == ber_before
    man = json.load(open(quick_run / "compare" / "manifest.json"))
    assert man["rows_resumed"] == man["rows"] == len(RUN_SCHEMES) * 2 * len(QUICK["compare_snr_db"])


def test_bad_arguments(tmp_path, capsys):
    assert main(["run", "--quick", "--max-items", "1", "--out", str(tmp_path / "r")]) == 2
    assert "--max-items" in capsys.readouterr().err
    assert main(["run", "--quick", "--skip-ber", "--source", "nope", "--out", str(tmp_path / "r")]) == 2
    assert "unknown source 'nope'" in capsys.readouterr().err


def test_rerun_with_other_settings_is_refused(quick_run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(quick_run, copy)
    before = (copy / "compare" / "compare.csv").read_bytes()
    assert main(["run", "--quick", "--skip-ber", "--text-max-items", "4", "--out", str(copy), "--no-progress"]) == 2
    assert "other settings" in capsys.readouterr().err
    assert (copy / "compare" / "compare.csv").read_bytes() == before


@pytest.mark.parametrize("device", ["nodevice"] + ([] if torch.cuda.is_available() else ["cuda"]))
def test_bad_device_exits_2_before_writing(tmp_path, capsys, device):
    assert main(["run", "--quick", "--skip-ber", "--device", device, "--out", str(tmp_path / "r"),
                 "--no-progress"]) == 2
    assert f"--device {device!r}" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_full_run_ber_step_uses_the_adaptive_grid():
    """The full run's BER step is `semcom ber` on the adaptive grid down to BER 1e-5 / BLER 1e-4."""
    import argparse

    from experiments.commands import ber
    from experiments.commands.run import FULL, ber_argv

    p = argparse.ArgumentParser()
    ber.add_arguments(p)
    args = p.parse_args(ber_argv(FULL, "/tmp/unused", 0, "cpu", p))
    assert isinstance(args.snr_db, ber.AutoGrid) and (args.snr_db.start, args.snr_db.stop) == (0.0, 40.0)
    assert (args.min_ber, args.min_bler, args.target_block_errors) == (1e-5, 1e-4, 100)
    assert args.ldpc_decoder == "layered" and args.codeword == "scrambled-zero"
    assert ber._validate(args)["snrs"] == args.snr_db
