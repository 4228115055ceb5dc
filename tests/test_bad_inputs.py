"""The bad-input catalogue: every public entry point, given inputs a hostile or careless user gives.

Each CLI row must end with exit status 2 and one error line that names what was expected and what came
(no traceback, nothing written where the run was refused); each API row must raise the named exception
with a message naming the argument. The tables' sizes are recorded in docs/reliability.md ("Bad-input
catalogue"); :func:`test_reliability_page_records_the_catalogue_size` keeps the two in step, and
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
    _hostile_inputs(root)
    with socket.socket() as s:  # an unused loopback port: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return {"root": str(root), "file": str(root / "afile"), "empty_npy": str(root / "empty.npy"),
            "text_npy": str(root / "text.npy"), "garbage_npy": str(root / "garbage.npy"),
            "broken_images": str(broken), "images": str(tiny_image_dir),
            "captions": str(Path(tiny_image_dir) / "captions.csv"), "minilm_cache": str(cache),
            "address": f"127.0.0.1:{port}", "out": str(root / "out"), "missing": str(root / "missing")}


def _hostile_inputs(root: Path) -> None:
    """Files of the hostile rows: configs, manifests, CSVs, feature files and caches that try to break in."""
    import json
    import pickle

    from safetensors.torch import save_file

    (root / "list_out.toml").write_text('out = ["/a", "/b"]\n')
    (root / "plugin_key.toml").write_text('plugin = "evil.py"\n')
    (root / "deep.toml").write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    (root / "one.toml").write_text('code = "none"\n')
    argv = ["ber", "--code", "none", "--out", str(root / "old")]
    for name, manifest in (("list", [argv]), ("string", "ber"), ("null", None),
                           ("cwd", {"semcom_argv": argv, "cwd": 5}),
                           ("plugin", {"semcom_argv": argv + ["--plugin=" + str(root / "evil.py")]}),
                           ("version", {"semcom_argv": ["--version"]}),
                           ("leading_plugin", {"semcom_argv": ["--plugin=evil.py", "rerun", "x", "--out", "y"]}),
                           ("help", {"semcom_argv": argv + ["--he"]})):
        (root / f"manifest_{name}.json").write_text(json.dumps(manifest))
    (root / "manifest_deep.json").write_text("[" * 100000 + "]" * 100000)
    (root / "evil.py").write_text(f"open({str(root / 'evil_ran')!r}, 'w').close()\n")
    plots = {"bigcell": "scheme,channel,snr_db,ber\na,awgn,0," + "1" * 200000 + "\n",
             "extracells": "scheme,channel,snr_db,ber\na,awgn,0,0.1,9,9\n",
             "nanonly": "scheme,channel,snr_db,ber\na,awgn,0,nan\na,awgn,5,nan\n"}
    for name, text in plots.items():
        (root / f"plot_{name}").mkdir()
        (root / f"plot_{name}" / "ber.csv").write_text(text)
    np.save(root / "feats.npy", np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32))
    with open(root / "pickled.pt", "wb") as fh:
        pickle.dump({"features": object()}, fh)
    cache = root / "nanfeatures"  # a complete feature cache with one NaN token no batch may happen to draw
    cache.mkdir()
    feats = torch.randn(40, 16)
    feats[37, 3] = float("nan")
    save_file({"features": feats, "labels": torch.arange(40) % 4}, str(cache / "s0.safetensors"))
    (cache / "manifest.json").write_text(json.dumps({"complete": True, "shards": ["s0.safetensors"],
                                                    "class_names": ["a", "b", "c", "d"]}))
    good = root / "goodfeatures"
    good.mkdir()
    save_file({"features": torch.randn(40, 16), "labels": torch.arange(40) % 4}, str(good / "s0.safetensors"))
    (good / "manifest.json").write_text((cache / "manifest.json").read_text())


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
# numbers: overflow, non-integers, non-finite values, counts beyond what finishes, SNRs beyond any physics
CLI_CASES += [
    ("ber-k-overflow", ["ber", "--k", "1e400", "--out", "{out}"], "expected an integer from 1 to 1048576"),
    ("ber-target-errors-fraction", ["ber", "--target-errors", "2.5e0", "--out", "{out}"],
     "expected an integer, got '2.5e0'"),
    ("ber-batch-size-fraction", ["ber", "--batch-size", "1.9e0", "--out", "{out}"], "expected an integer"),
    ("ber-num-iter-unending", ["ber", "--code", "ldpc5g", "--num-iter", "100000000", "--out", "{out}"],
     "from 1 to 1000"),
    ("ber-max-bits-unending", ["ber", "--max-bits", "1e300", "--out", "{out}"], "at most 1e+13"),
    ("ber-snr-overflow", ["ber", "--snr-db=-1e308:1e308:1e308", "--out", "{out}"], "outside the SNR range"),
    ("ber-device-meta", ["ber", "--device", "meta", "--out", "{out}"], "not a device that computes"),
    ("ber-ml-candidates", ["ber", "--detector", "ml", "--modulation", "256qam", "--code", "none", "--channel",
                           "rayleigh(num_tx=16,num_rx=16)", "--out", "{out}"], "256^16 candidate vectors"),
    ("ber-phase-offset-huge", ["ber", "--channel", "awgn(phase_offset=1e300)", "--out", "{out}"], "phase_offset"),
    ("ber-symbol-rate-tiny", ["ber", "--channel", "awgn(cfo=100,symbol_rate=1e-300)", "--out", "{out}"],
     "symbol_rate"),
    ("channel-snr-inf", ["channel", "--snr-db", "inf"], "expected a finite number >= -200 and <= 200"),
    ("channel-snr-huge", ["channel", "--snr-db", "1e308"], "expected a finite number >= -200 and <= 200"),
    ("channel-tolerance-nan", ["channel", "--tolerance-db", "nan"], "expected a finite number >= 0"),
    ("channel-tolerance-negative", ["channel", "--tolerance-db", "-1"], "expected a finite number >= 0"),
    ("channel-block-length-huge", ["channel", "--channel", "rayleigh(block_length=1e308)"], "block_length"),
    ("channel-delay-spread-huge", ["channel", "--channel", "tdl(delay_spread=1e300)"], "delay_spread"),
    ("channel-speed-huge", ["channel", "--channel", "tdl(speed=1e300)"], "speed"),
    ("channel-fft-size-huge", ["channel", "--channel", "tdl(fft_size=100000000)"], "fft_size"),
    ("channel-cdl-grid-memory", ["channel", "--channel",
                                 "ofdm(model=cdl-C,num_tx=16,num_rx=16,fft_size=4096,num_ofdm_symbols=128)"],
     "needs about"),
    ("semclip-train-jscc-channel-uses-huge", ["semclip", "train-jscc", "--features", "{root}/goodfeatures",
                                              "--channel-uses", "1000000000", "--out", "{out}"], "from 0 to 1048576"),
    ("semclip-train-jscc-model-memory", ["semclip", "train-jscc", "--features", "{root}/goodfeatures",
                                         "--hidden-dim", "65536", "--out", "{out}"], "needs about"),
    ("semclip-train-jscc-nan-token", ["semclip", "train-jscc", "--features", "{root}/nanfeatures", "--out", "{out}"],
     "1 token(s) with NaN or inf values (rows [37])"),
    ("vlf-msc-eval-steps-fraction", ["vlf-msc-eval", "--images", "{images}", "--steps", "2.5", "--out", "{out}"],
     "expected an integer"),
]
# files: configs, manifests, CSVs and feature files that try to break in
CLI_CASES += [
    ("compare-config-folder", ["compare", "--config", "{root}", "--out", "{out}"], "is not a regular file"),
    ("compare-config-proc-mem", ["compare", "--config", "/proc/self/mem", "--out", "{out}"], "cannot be read"),
    ("compare-config-deep", ["compare", "--config", "{root}/deep.toml", "--out", "{out}"], "nests too deeply"),
    ("ber-config-list-out", ["ber", "--config", "{root}/list_out.toml"], "'out' names one file or folder"),
    ("ber-config-plugin-key", ["ber", "--config", "{root}/plugin_key.toml", "--out", "{out}"],
     "unknown option(s) 'plugin'"),
    ("ber-config-twice", ["ber", "--config", "{root}/one.toml", "--config", "{root}/one.toml", "--out", "{out}"],
     "--config given twice"),
    ("rerun-manifest-list", ["rerun", "{root}/manifest_list.json", "--out", "{out}"], "is a JSON list"),
    ("rerun-manifest-string", ["rerun", "{root}/manifest_string.json", "--out", "{out}"], "is a JSON string"),
    ("rerun-manifest-null", ["rerun", "{root}/manifest_null.json", "--out", "{out}"], "is a JSON null"),
    ("rerun-manifest-cwd-number", ["rerun", "{root}/manifest_cwd.json", "--out", "{out}"],
     "'cwd' must be a string"),
    ("rerun-manifest-deep", ["rerun", "{root}/manifest_deep.json", "--out", "{out}"], "nests too deeply"),
    ("rerun-manifest-plugin", ["rerun", "{root}/manifest_plugin.json", "--out", "{out}"],
     "a replay runs no code a manifest names"),
    ("rerun-manifest-version", ["rerun", "{root}/manifest_version.json", "--out", "{out}"], "not a study command"),
    ("rerun-manifest-leading-plugin", ["rerun", "{root}/manifest_leading_plugin.json", "--out", "{out}"],
     "starts with a rerun"),
    ("rerun-manifest-help", ["rerun", "{root}/manifest_help.json", "--out", "{out}"], "does not run"),
    ("rerun-manifest-proc-mem", ["rerun", "/proc/self/mem", "--out", "{out}"], "cannot be read"),
    ("plot-cell-too-large", ["plot", "{root}/plot_bigcell", "--metric", "ber", "--out", "{out}.png"],
     "not a readable result table"),
    ("plot-extra-cells-unknown-metric", ["plot", "{root}/plot_extracells", "--metric", "nope", "--out", "{out}.png"],
     "more cells than the header"),
    ("plot-nothing-to-draw", ["plot", "{root}/plot_nanonly", "--metric", "ber", "--out", "{out}.png"],
     "no finite 'ber' value to draw"),
    ("compare-key-with-npy", ["compare", "--source", "{root}/feats.npy", "--key", "x", "--out", "{out}"],
     "a .npy file holds one array"),
    ("compare-pickled-pt", ["compare", "--source", "{root}/pickled.pt", "--out", "{out}"],
     "unpickling them could run code"),
]


#: rows whose bad input shows only while the run reads its data: the run has started, and its folder holds a
#: manifest marked "failed" (and the rows finished before), which a rerun resumes
FOUND_WHILE_RUNNING = {"vlf-msc-corrupt-image"}


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input_exits_2_with_one_line(case, inputs, tiny_blip2_dir, capsys, monkeypatch):  # noqa: F811
    name, argv, expected = case
    if "cuda-absent" in name and not NO_CUDA:
        pytest.skip("checks the error of a machine without CUDA")
    monkeypatch.setenv("HF_HOME", str(Path(inputs["root"]) / "empty_hf"))  # offline, nothing cached
    monkeypatch.delenv("SEMCOM_ALLOW_DOWNLOAD", raising=False)
    monkeypatch.setenv("SEMCOM_MEMORY_LIMIT", "8e9")  # the memory rows refuse on any machine
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
    assert "weights_only=False" not in err     # never advise an unsafe load
    if name not in FOUND_WHILE_RUNNING:
        assert not Path(values["out"]).exists(), f"a refused run left {values['out']}"   # nothing written
    assert not (Path(inputs["root"]) / "evil_ran").exists()     # no code named by a file ran


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




def _over_builtin():
    from phy.channel import AWGN
    from phy.channel.registry import register_channel

    register_channel("awgn")(type("PluginAWGN", (AWGN,), {}))


def _big_grid(t):
    import os

    os.environ["SEMCOM_MEMORY_LIMIT"] = "8e9"
    try:
        from phy.ofdm.channel import OFDMChannel

        OFDMChannel(model="cdl-C", num_tx=16, num_rx=16, fft_size=4096, num_ofdm_symbols=128)
    finally:
        del os.environ["SEMCOM_MEMORY_LIMIT"]


def _pickled(t):
    import pickle

    from semantic.checkpoints import safe_torch_load

    with open(f"{t}/p.pt", "wb") as fh:
        pickle.dump(object(), fh)
    safe_torch_load(f"{t}/p.pt", what="checkpoint")


def _negative_blocks():
    from phy.sim.points import BER_COLUMNS, PointResult

    row = dict.fromkeys(BER_COLUMNS, "0")
    row.update(scheme="none", channel="awgn", snr_type="esno", status="ok", blocks="-5", block_errors="0")
    PointResult.from_row(row)


API_CASES += [
    ("PhaseImpairment-huge-phase", lambda t: __import__("phy.channel.impairments").channel.impairments
     .PhaseImpairment(phase_offset=1e300), ValueError, "phase_offset"),
    ("PhaseImpairment-cfo-beyond-nyquist", lambda t: __import__("phy.channel.impairments").channel.impairments
     .PhaseImpairment(cfo=1e6, symbol_rate=1e6), ValueError, "half the symbol_rate"),
    ("Rayleigh-huge-block", lambda t: __import__("phy.channel").channel.Rayleigh(block_length=10 ** 12), ValueError,
     "block_length"),
    ("SionnaTDL-huge-delay-spread", lambda t: _tdl(delay_spread=1e300), ValueError, "delay_spread"),
    ("SionnaTDL-huge-fft", lambda t: _tdl(fft_size=10 ** 8), ValueError, "fft_size"),
    ("check_device-meta", lambda t: __import__("phy.utils.conventions").utils.conventions.check_device("meta"),
     ValueError, "not a device that computes"),
    ("MIMODetector-ml-candidates", lambda t: __import__("phy.mimo.detection").mimo.detection.MIMODetector(
        "ml", "256qam", 16), ValueError, "256^16 candidate vectors"),
    ("OFDMChannel-grid-memory", _big_grid, ValueError, "needs about"),
    ("SemCLIPConfig-model-memory", lambda t: __import__("semantic.semclip").semclip.SemCLIPConfig(
        hidden_dim=10 ** 7), ValueError, "needs about"),
    ("register_channel-over-builtin", lambda t: _over_builtin(), ValueError, "'awgn' is already registered"),
    ("BSCEquivalentLink-impaired", lambda t: __import__("phy.link.digital").link.digital.BSCEquivalentLink(
        "qpsk", channel=__import__("phy.channel").channel.make_channel("awgn(phase_offset=0.5)")), ValueError,
     "closed form"),
    ("ResumableCSV-cell-too-large", lambda t: _csv_with(t, "k,v\n1," + "9" * 200000 + "\n"), ValueError,
     "not a readable result table"),
    ("PointResult-negative-blocks", lambda t: _negative_blocks(), ValueError, "blocks=-5: a count is >= 0"),
    ("safe_torch_load-pickle", _pickled, ValueError, "unpickling them could run code"),
    ("load_source-npy-key", lambda t: (np.save(f"{t}/f.npy", np.ones((4, 2))), __import__("experiments.core.sources")
                                       .core.sources.load_source(f"{t}/f.npy", key="x")), ValueError,
     "a .npy file holds one array"),
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


def test_reliability_page_records_the_catalogue_size():
    page = (Path(__file__).resolve().parents[1] / "docs" / "reliability.md").read_text()
    m = re.search(r"bad-input catalogue[^\n]*?(\d+) CLI inputs over (\d+) entry points[^\n]*?(\d+) API inputs", page,
                  re.IGNORECASE)
    assert m, "docs/reliability.md lost its 'Bad-input catalogue' line"
    entry_points = len({" ".join(c[1][:2]) if c[1][0] == "semclip" else c[1][0] for c in CLI_CASES})
    assert (int(m.group(1)), int(m.group(2)), int(m.group(3))) == (len(CLI_CASES), entry_points, len(API_CASES))
