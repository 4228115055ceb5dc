"""The bad-input catalogue: every public entry point, given inputs a hostile or careless user gives.

Each CLI row must end with exit status 2 and one error line that names what was expected and what came
(no traceback, nothing written where the run was refused); each API row must raise the named exception
with a message naming the argument. The tables' sizes are recorded in README.md ("Bad-input
catalogue"); :func:`test_readme_records_the_catalogue_size` keeps the two in step, and
:func:`test_every_cli_entry_point_is_in_the_catalogue` checks that no subcommand is left out.
Narrower tables live beside their modules (tests/test_cli_ber.py, test_montecarlo.py, ...).
"""
import re
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

import semantic  # noqa: F401  (torchvision shim first)
from experiments.cli import SUBCOMMANDS, main
from tiny_models import tiny_blip2_dir, tiny_image_dir  # noqa: F401  (fixtures)

NO_CUDA = not torch.cuda.is_available()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_image_dir):  # noqa: F811
    """Files the catalogue refers to (``{name}`` in a row's arguments)."""
    root = tmp_path_factory.mktemp("bad")
    (root / "afile").write_text("not a folder")
    np.save(root / "empty.npy", np.zeros((0, 4), np.float32))
    np.save(root / "text.npy", np.array([["a", "b"], ["c", "d"]]))
    (root / "garbage.npy").write_bytes(b"\x93NUMPY garbage")
    broken = root / "broken_images"
    broken.mkdir()
    for p in sorted(Path(tiny_image_dir).glob("*.png"))[:2]:
        shutil.copy(p, broken / p.name)
    (broken / "zz_broken.png").write_bytes(b"this is not a png")
    from semantic.sentences import corpus_hash, load_pydoc_corpus

    cache = root / "minilm_cache"  # a corrupt cache file for the corpus `compare --max-items 8` uses
    cache.mkdir()
    (cache / f"minilm-{corpus_hash(load_pydoc_corpus(max_sentences=8))}.safetensors").write_bytes(b"torn")
    (root / "listfeatures").mkdir()  # a feature cache whose manifest is not a dict
    (root / "listfeatures" / "manifest.json").write_text("[1, 2]")
    (root / "tornfeatures").mkdir()  # complete by its manifest, but the shard is torn
    (root / "tornfeatures" / "manifest.json").write_text('{"complete": true, "shards": ["s0.safetensors"], '
                                                        '"class_names": ["a"]}')
    (root / "tornfeatures" / "s0.safetensors").write_bytes(b"\x10\x00")
    with socket.socket() as s:  # an unused loopback port: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return {"root": str(root), "file": str(root / "afile"), "empty_npy": str(root / "empty.npy"),
            "text_npy": str(root / "text.npy"), "garbage_npy": str(root / "garbage.npy"),
            "broken_images": str(broken), "images": str(tiny_image_dir),
            "captions": str(Path(tiny_image_dir) / "captions.csv"), "minilm_cache": str(cache),
            "address": f"127.0.0.1:{port}", "out": str(root / "out"), "missing": str(root / "missing")}


# (id, argv with {placeholders}, text the error line must contain); "{blip2}" is the tiny BLIP-2 folder
CLI_CASES = [
    ("plot-missing-run", ["plot", "{missing}", "--metric", "ber", "--out", "{out}.png"], "does not exist"),
    ("plot-out-format", ["plot", "{missing}", "--metric", "ber", "--out", "{out}.jpg"], "--out must end in one of"),
    ("rerun-missing-manifest", ["rerun", "{missing}/manifest.json", "--out", "{out}"], "does not exist"),
    ("compare-config-unknown-key", ["compare", "--config", "{file}", "--out", "{out}"], "--config"),
    ("channel-cuda-absent", ["channel", "--device", "cuda"], "CUDA is not available"),
    ("channel-device-name", ["channel", "--device", "nodevice"], "'nodevice' is not a torch device"),
    ("ber-out-is-file", ["ber", "--out", "{file}"], "is a file; expected a folder"),
    ("ber-out-under-file", ["ber", "--out", "{file}/sub"], "lies under the file"),
    ("ber-ray-no-cluster", ["ber", "--executor", "ray", "--address", "{address}", "--out", "{out}"],
     "--address {address}: no Ray cluster there"),
    ("ber-cuda-absent", ["ber", "--device", "cuda", "--out", "{out}"], "CUDA is not available"),
    ("compare-out-is-file", ["compare", "--out", "{file}"], "is a file; expected a folder"),
    ("compare-empty-npy", ["compare", "--source", "{empty_npy}", "--out", "{out}"], "empty.npy: the array is empty"),
    ("compare-text-npy", ["compare", "--source", "{text_npy}", "--out", "{out}"],
     "text.npy: features must be a numeric array"),
    ("compare-garbage-npy", ["compare", "--source", "{garbage_npy}", "--out", "{out}"],
     "garbage.npy: cannot read the .npy file"),
    ("compare-corrupt-minilm-cache", ["compare", "--cache-dir", "{minilm_cache}", "--max-items", "8", "--out",
                                      "{out}"], "delete that file"),
    ("compare-ray-no-cluster", ["compare", "--executor", "ray", "--address", "{address}", "--out", "{out}"],
     "no Ray cluster there"),
    ("run-out-is-file", ["run", "--out", "{file}"], "is a file; expected a folder"),
    ("vlf-msc-out-is-file", ["vlf-msc", "--images", "{images}", "--out", "{file}"], "is a file; expected a folder"),
    ("vlf-msc-corrupt-image", ["vlf-msc", "--images", "{broken_images}", "--blip2-checkpoint", "{blip2}",
                               "--no-images", "--device", "cpu", "--snr-db", "0", "--max-new-tokens", "2",
                               "--out", "{out}"], "zz_broken.png' is not a readable image"),
    ("vlf-msc-cuda-absent", ["vlf-msc", "--images", "{images}", "--blip2-checkpoint", "{blip2}", "--device",
                             "cuda", "--out", "{out}"], "CUDA is not available"),
    ("vlf-msc-images-missing", ["vlf-msc", "--images", "{missing}", "--out", "{out}"], "does not exist"),
    ("vlf-msc-eval-blip2-missing", ["vlf-msc-eval", "--images", "{images}", "--captions", "{captions}",
                                    "--systems", "vlf-msc", "--blip2-checkpoint", "{missing}", "--device", "cpu",
                                    "--out", "{out}"], "was not found"),
    ("vlf-msc-eval-out-is-file", ["vlf-msc-eval", "--images", "{images}", "--captions", "{captions}", "--out",
                                  "{file}"], "is a file; expected a folder"),
    ("train-image-decoder-negative-lr", ["train-image-decoder", "--images", "{images}", "--captions", "{captions}",
                                         "--lr", "-1", "--out", "{out}"], "lr (learning rate) must be a finite"),
    ("train-image-decoder-out-is-file", ["train-image-decoder", "--images", "{images}", "--captions",
                                         "{captions}", "--out", "{file}"], "is a file; expected a folder"),
    ("train-text-projection-negative-lr", ["train-text-projection", "--images", "{images}", "--captions",
                                           "{captions}", "--lr", "-1", "--out", "{out}"], "lr must be > 0"),
    ("train-text-projection-out-under-file", ["train-text-projection", "--images", "{images}", "--captions",
                                              "{captions}", "--out", "{file}/x"], "lies under the file"),
    ("semclip-extract-clip-weights-missing", ["semclip", "extract", "--data", "{images}", "--device", "cpu",
                                              "--out", "{out}"], "could not be loaded"),
    ("semclip-extract-ray-no-cluster", ["semclip", "extract", "--data", "{images}", "--executor", "ray",
                                        "--address", "{address}", "--out", "{out}"], "no Ray cluster there"),
    ("semclip-train-jscc-features-missing", ["semclip", "train-jscc", "--features", "{missing}", "--out", "{out}"],
     "no feature cache"),
    ("semclip-train-jscc-features-manifest-not-a-dict", ["semclip", "train-jscc", "--features", "{root}/listfeatures",
                                                         "--out", "{out}"], "is incomplete"),
    ("semclip-eval-features-shard-torn", ["semclip", "eval", "--features", "{root}/tornfeatures", "--out", "{out}"],
     "has an unreadable shard"),
    ("semclip-train-tapl-features-missing", ["semclip", "train-tapl", "--features", "{missing}", "--out", "{out}"],
     "no feature cache"),
    ("semclip-eval-features-missing", ["semclip", "eval", "--features", "{missing}", "--out", "{out}"],
     "no feature cache"),
    ("semclip-eval-out-is-file", ["semclip", "eval", "--features", "{missing}", "--out", "{file}"],
     "is a file; expected a folder"),
    ("semclip-train-djscc-zero-channel-uses", ["semclip", "train-djscc", "--model", "ir", "--data", "{images}",
                                               "--channel-uses", "0", "--out", "{out}"],
     "--channel-uses must be a positive int, got 0"),
    ("semclip-train-djscc-clip-weights-missing", ["semclip", "train-djscc", "--model", "ft", "--data", "{images}",
                                                  "--channel-uses", "8", "--device", "cpu", "--out", "{out}"],
     "could not be loaded"),
    ("semclip-train-codec-bad-lambdas", ["semclip", "train-codec", "--data", "{images}", "--lambdas", "0.01,x",
                                         "--out", "{out}"], "--lambdas must be comma-separated positive numbers"),
    ("blip2-captions-images-missing", ["blip2-captions", "--images", "{missing}", "--out", "{out}"],
     "does not exist"),
    ("train-deepsc-corpus-missing", ["train-deepsc", "--corpus", "{missing}.csv", "--out", "{out}"],
     "is not a file"),
    ("semclip-eval-study-clip-missing", ["semclip-eval", "--data", "{images}", "--device", "cpu", "--out", "{out}"],
     "could not be loaded"),
    ("semclip-eval-systems", ["semclip-eval", "--data", "{images}", "--systems", "bogus", "--out", "{out}"],
     "--systems must be"),
    ("reproduce-unknown-name", ["reproduce", "semclip-fig99", "--out", "{out}"],
     "no result named 'semclip-fig99'; `semcom reproduce --list` names them"),
    ("reproduce-out-missing", ["reproduce", "semclip-table1"], "--out DIR is required"),
    ("reproduce-out-is-file", ["reproduce", "semclip-table1", "--out", "{file}"], "is a file; expected a folder"),
    ("reproduce-set-unknown-option", ["reproduce", "semclip-table1", "--set", "no-such-option=1", "--out", "{out}"],
     "--set no-such-option=1: no step of this result takes --no-such-option"),
    ("reproduce-data-path-not-a-pair", ["reproduce", "semclip-table1", "--data-path", "imagenet-val", "--out",
                                        "{out}"], "--data-path takes KEY=VALUE, got 'imagenet-val'"),
    ("reproduce-model-unknown", ["reproduce", "semclip-table1", "--model", "blip2={blip2}", "--out", "{out}"],
     "--model blip2: not an input of semclip-table1"),
    ("reproduce-dataset-missing", ["reproduce", "semclip-table1", "--data", "{missing}", "--out", "{out}"],
     "dataset 'imagenet-val' (ImageNet-1k validation set"),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input_exits_2_with_one_line(case, inputs, tiny_blip2_dir, capsys, monkeypatch):  # noqa: F811
    name, argv, expected = case
    if "cuda-absent" in name and not NO_CUDA:
        pytest.skip("checks the error of a machine without CUDA")
    monkeypatch.setenv("HF_HOME", str(Path(inputs["root"]) / "empty_hf"))  # offline, nothing cached
    monkeypatch.delenv("SEMCOM_ALLOW_DOWNLOAD", raising=False)
    values = dict(inputs, blip2=str(tiny_blip2_dir), out=str(Path(inputs["out"]) / name))
    argv = [a.format(**values) for a in argv]
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse
        rc = exc.code
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("semcom ")]
    assert rc == 2, err
    assert "Traceback" not in err and len(lines) == 1, err
    assert expected.format(**values) in lines[0], err


def _run_ber_trial(shape):
    from phy.sim.montecarlo import simulate_ber
    from phy.sim.trials import FunctionTrial

    simulate_ber(FunctionTrial(lambda b, s: (torch.zeros(*shape), torch.zeros(*shape)), k=4), [0.0],
                 batch_size=3, max_bits=100, progress=False)


def _csv_with(tmp, body):
    from experiments.core.results import open_table

    p = Path(tmp) / "t.csv"
    p.write_text(body)
    return open_table(p, ["k"], ["v"])


def _rows_without_record(tmp):
    from experiments.core.results import claim_result_settings, open_table

    open_table(Path(tmp) / "r.csv", ["k"], ["v"]).append({"k": 1, "v": 2})
    claim_result_settings(tmp, {"seed": 0}, ["r.csv"])


def _big_features():
    from phy.utils.conventions import normalize_power

    normalize_power(torch.full((1, 4), 3e38, dtype=torch.complex64) * (1 + 1j))


def _tdl(**kw):
    from phy.channel.tdl import SionnaTDL

    SionnaTDL(**kw)


def _decode_nan(code):
    llr = torch.zeros(1, code.n)
    llr[0, 0] = float("nan")
    code.decode(llr)


def _codes():
    from phy.fec.codes import LDPC5G, Hamming74

    return Hamming74(), LDPC5G(64, 128)


# (id, call taking a temporary folder, exception, text of the message)
API_CASES = [
    ("normalize_power-unrepresentable", lambda t: _big_features(), ValueError, "RMS amplitude exceeds the range"),
    ("SionnaTDL-negative-delay-spread", lambda t: _tdl(delay_spread=-1.0), ValueError, "delay_spread"),
    ("SionnaTDL-zero-carrier", lambda t: _tdl(carrier_frequency=0.0), ValueError, "carrier_frequency"),
    ("Hamming74-nan-llr", lambda t: _decode_nan(_codes()[0]), ValueError, "must not contain NaN"),
    ("LDPC5G-nan-llr", lambda t: _decode_nan(_codes()[1]), ValueError, "must not contain NaN"),
    ("simulate_ber-more-rows", lambda t: _run_ber_trial((5, 4)), ValueError, "batch_size=3"),
    ("simulate_ber-more-columns", lambda t: _run_ber_trial((3, 6)), ValueError, "k=4"),
    ("simulate_ber-repeated-snr", lambda t: __import__("phy.sim").sim.simulate_ber(
        __import__("phy.sim").sim.FunctionTrial(lambda b, s: (torch.zeros(b, 4),) * 2, k=4),
        [1.0, 1.0], progress=False), ValueError, "must not repeat"),
    ("ResumableCSV-duplicate-key", lambda t: _csv_with(t, "k,v\n1,2\n1,3\n"), ValueError, "two rows with the key"),
    ("ResumableCSV-extra-cell", lambda t: _csv_with(t, "k,v\n1,2,3\n"), ValueError, "malformed"),
    ("claim_result_settings-no-record", _rows_without_record, ValueError, "no settings record"),
    ("load_source-empty-npy", lambda t: (np.save(f"{t}/e.npy", np.zeros((0, 3))),
                                         __import__("experiments.core.sources").core.sources.load_source(f"{t}/e.npy")),
     ValueError, "e.npy: the array is empty"),
    ("load_image-corrupt", lambda t: (Path(t, "x.png").write_bytes(b"no"),
                                      __import__("semantic.images").images.load_image(f"{t}/x.png")),
     ValueError, "is not a readable image"),
    ("ImageDecoderTrainConfig-negative-lr", lambda t: __import__("semantic.image_decoder").image_decoder
     .ImageDecoderTrainConfig(lr=-1.0), ValueError, "lr (learning rate)"),
    ("SemCLIPConfig-zero-lr", lambda t: __import__("semantic.semclip").semclip.SemCLIPConfig(jscc_lr=0.0),
     ValueError, "jscc_lr"),
    ("check_ray_address-no-port", lambda t: __import__("experiments.core.executors").core.executors
     .check_ray_address("127.0.0.1"), ValueError, "HOST:PORT"),
    ("check_device-name", lambda t: __import__("phy.utils.conventions").utils.conventions.check_device("gpu9"), ValueError,
     "'gpu9' is not a torch device"),
]
API_CASES += [
    ("AWGN-cuda-absent", lambda t: __import__("phy.channel").channel.AWGN(device="cuda"), ValueError,
     "CUDA is not available"),
    ("LinkTrial-cuda-absent", lambda t: __import__("phy.sim").sim.LinkTrial(
        lambda b, snr_db: b, k=4, device="cuda"), ValueError, "CUDA is not available"),
]


@pytest.mark.parametrize("case", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_bad_input_raises_clear_error(case, tmp_path):
    name, call, exc, text = case
    if "cuda-absent" in name and not NO_CUDA:
        pytest.skip("checks the error of a machine without CUDA")
    with pytest.raises(exc) as info:
        call(tmp_path)
    assert text in str(info.value)


def _semclip_actions():
    """The ``semcom semclip`` actions, read from the parser (a new action cannot be left out unnoticed)."""
    import argparse

    from experiments.commands import semclip

    parser = argparse.ArgumentParser()
    semclip.add_arguments(parser)
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(sub.choices)


def test_every_cli_entry_point_is_in_the_catalogue():
    covered = {" ".join(c[1][:2]) if c[1][0] == "semclip" else c[1][0] for c in CLI_CASES}
    actions = _semclip_actions()
    assert {"extract", "train-jscc", "train-tapl", "train-djscc", "eval"} <= actions
    expected = {f"semclip {a}" for a in actions} | (set(SUBCOMMANDS) - {"semclip"})
    assert "reproduce" in expected
    assert expected <= covered, sorted(expected - covered)


def test_cli_refusals_leave_no_output_folder(inputs, capsys):
    """Bad input found before a run starts leaves nothing behind (no half-made --out)."""
    out = Path(inputs["root"]) / "refused"
    for argv in (["reproduce", "semclip-fig99", "--out", str(out)],
                 ["reproduce", "semclip-table1", "--set", "no-such-option=1", "--out", str(out)],
                 ["semclip", "train-djscc", "--model", "ir", "--data", inputs["images"], "--channel-uses", "0",
                  "--out", str(out)]):
        assert main(argv) == 2 and not out.exists(), argv


def test_readme_records_the_catalogue_size():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    m = re.search(r"bad-input catalogue[^\n]*?(\d+) CLI inputs over (\d+) entry points[^\n]*?(\d+) API inputs", readme,
                  re.IGNORECASE)
    assert m, "README.md lost its 'Bad-input catalogue' line"
    entry_points = len({" ".join(c[1][:2]) if c[1][0] == "semclip" else c[1][0] for c in CLI_CASES})
    assert (int(m.group(1)), int(m.group(2)), int(m.group(3))) == (len(CLI_CASES), entry_points, len(API_CASES))
