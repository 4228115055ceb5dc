"""Executors: the Ray executor (local instance, 2 CPUs) gives the same result rows as the local one.

* ``semcom ber --executor ray`` vs the default sequential engine: identical rows (sorted), with early
  stop and skipped points; a resumed Ray run keeps the stored rows and recomputes nothing else.
* :func:`experiments.commands.ber.run_ber_sweeps` with :class:`LocalExecutor` against
  :func:`phy.sim.montecarlo.simulate_ber` directly (non-ascending SNR list, early stop), and the
  points it never submits.
* :func:`run_points` and the per-shard feature extraction on Ray against the in-process versions.
"""
import csv
import json
import os

import pytest

ray = pytest.importorskip("ray")

import semantic  # noqa: E402,F401  (torchvision shim first)
import torch  # noqa: E402

from experiments.commands import ber as ber_study  # noqa: E402
from experiments.commands import clip_extraction  # noqa: E402
from experiments.core import executors as ex  # noqa: E402
from experiments.cli import main  # noqa: E402
from tiny_models import write_digit_folder  # noqa: E402
from phy.sim.montecarlo import simulate_ber  # noqa: E402
from phy.sim.points import BER_COLUMNS, BER_KEY_COLUMNS
from phy.sim.resultstore import ResumableCSV  # noqa: E402

ARGS = ["ber", "--modulation", "16qam", "--code", "none,ldpc5g", "--k", "64", "--n", "128",
        "--channel", "awgn", "--snr-db", "0,4,16,20", "--target-errors", "30", "--max-bits", "2000",
        "--seed", "3", "--device", "cpu", "--no-progress", "--snr-type", "ebno"]


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    """One local Ray instance (2 CPUs) for the module; workers run one thread each."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    # tasks defined in this test module travel by value (tests/ is not importable in the workers)
    import sys

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    if started:
        ray.shutdown()


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ber_local")
    assert main(ARGS + ["--out", str(out)]) == 0
    return out


def test_ray_ber_rows_equal_local_rows(local_run, tmp_path):
    local = _rows(local_run / "ber.csv")
    # the budget makes the sweep exercise early stop: uncoded 16-QAM at 16 dB Eb/N0 has BER
    # 3/4 Q(sqrt(0.8 Eb/N0)) ~ 6e-9 (no error in 2000 bits), so 20 dB is skipped; 0 and 4 dB
    # (BER ~ 0.1 and ~ 0.03) reach the 30 target errors
    status = {(r["scheme"], r["snr_db"]): r["status"] for r in local}
    assert status[("none", "0.0")] == "target_errors" and status[("none", "16.0")] == "no_errors"
    assert status[("none", "20.0")].startswith("skipped")
    assert main(ARGS + ["--executor", "ray", "--num-cpus", "2", "--out", str(tmp_path)]) == 0
    rows = _rows(tmp_path / "ber.csv")
    assert len(rows) == len(local) == 8
    # the same file, line for line: rows appended as points finished, put in sweep order at the end
    assert (tmp_path / "ber.csv").read_text() == (local_run / "ber.csv").read_text()
    m = json.load(open(tmp_path / "manifest.json"))
    assert m["executor"]["executor"] == "ray" and m["status"] == "finished"


def test_resume_under_ray_skips_finished_points(local_run, tmp_path):
    lines = (local_run / "ber.csv").read_text().splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    kept = lines[1:4]  # the first three finished points (header excluded)
    # tamper with a kept row: a resumed run must keep it verbatim, not recompute it
    cells = kept[0].rstrip("\n").split(",")
    cells[header.index("bit_errors")] = "123456"
    kept[0] = ",".join(cells) + "\n"
    (tmp_path / "ber.csv").write_text(lines[0] + "".join(kept) + lines[4][:15])  # + a torn row
    (tmp_path / "ber.settings.json").write_text((local_run / "ber.settings.json").read_text())
    assert main(ARGS + ["--executor", "ray", "--out", str(tmp_path)]) == 0
    rows = _rows(tmp_path / "ber.csv")
    assert json.load(open(tmp_path / "manifest.json"))["rows_resumed"] == 3
    keys = [tuple(r[c] for c in BER_KEY_COLUMNS) for r in rows]
    assert len(keys) == len(set(keys)) == 8
    assert rows[0]["bit_errors"] == "123456"
    ref = _rows(local_run / "ber.csv")
    ref[0]["bit_errors"] = "123456"
    assert rows == ref


def _cfg(code, channel="awgn", snr_type="esno", **kw):
    cfg = dict(code=code, channel=channel, modulation="qpsk", k=64, n=128, ldpc_iter=10, demapping="app",
               device="cpu", ldpc_decoder="bp", hamming_decoder="syndrome", seed=5, snr_type=snr_type,
               batch_size=20, target_errors=40, target_block_errors=None, max_bits=1500)
    cfg.update(kw)
    return cfg


def test_local_executor_sweeps_equal_the_engine_and_skip_without_running(tmp_path, monkeypatch):
    # non-ascending list: 3 dB comes after the error-free 14 dB point and is still simulated
    snrs = [0.0, 14.0, 20.0, 3.0, 30.0]
    sweeps = [(_cfg("none"), snrs), (_cfg("hamming74", channel="rayleigh"), [0.0, 6.0])]
    ran = []
    original = ber_study.ber_point

    def counting(config, snr):
        ran.append((config["code"], snr))
        return original(config, snr)

    monkeypatch.setattr(ber_study, "ber_point", counting)
    table = ResumableCSV(tmp_path / "ber.csv", BER_COLUMNS, BER_KEY_COLUMNS)
    got = ber_study.run_ber_sweeps(ex.LocalExecutor(), sweeps, table)
    ref = []
    for cfg, s in sweeps:
        trial, cr, bps = ber_study._ber_trial(json.dumps({k: cfg.get(k) for k in ber_study._BUILD_KEYS}, sort_keys=True))
        ref += simulate_ber(trial, s, snr_type="esno", coderate=cr, bits_per_symbol=bps, batch_size=20,
                            target_errors=40, max_bits=1500, seed=5, scheme=cfg["code"], channel=cfg["channel"],
                            progress=False)
    assert got == ref
    by = {(r.scheme, r.snr_db): r.status for r in got}
    assert by[("none", 14.0)] == "no_errors" and by[("none", 3.0)] == "target_errors"
    assert by[("none", 20.0)].startswith("skipped") and by[("none", 30.0)].startswith("skipped")
    # the local executor runs lazily: skipped points are never computed
    assert sorted(ran) == sorted([("none", 0.0), ("none", 14.0), ("none", 3.0), ("hamming74", 0.0),
                                  ("hamming74", 6.0)])
    assert [r.snr_db for r in got[:5]] == snrs and len(table) == 7
    # everything stored: nothing runs again
    ran.clear()
    again = ber_study.run_ber_sweeps(ex.LocalExecutor(), sweeps, ResumableCSV(tmp_path / "ber.csv", BER_COLUMNS,
                                                                        BER_KEY_COLUMNS))
    assert ran == [] and again == got


def _row_task(method, snr):
    g = torch.Generator().manual_seed(int(snr * 10) + len(method))
    return {"method": method, "snr_db": snr, "value": float(torch.rand(1, generator=g))}


def test_run_points_ray_equals_local_and_resumes(tmp_path):
    tasks = [((m, s), _row_task, (m, s)) for m in ("a", "bb") for s in (0.0, 1.5, 3.0)]
    cols, keys = ["method", "snr_db", "value"], ["method", "snr_db"]
    t_local = ResumableCSV(tmp_path / "local.csv", cols, keys)
    ex.run_points(ex.LocalExecutor(), tasks, t_local)
    t_ray = ResumableCSV(tmp_path / "ray.csv", cols, keys)
    t_ray.append({"method": "a", "snr_db": 1.5, "value": -1.0})  # "finished" before: must be skipped
    with ex.make_executor("ray", num_cpus=2) as rex:
        done = ex.run_points(rex, tasks, t_ray)
    assert ("a", 1.5) not in done and len(done) == 5
    ref, got = t_local.rows(), t_ray.rows()
    assert got[1] == {"method": "a", "snr_db": "1.5", "value": "-1.0"} and ref[1]["value"] != "-1.0"
    del got[1], ref[1]
    assert got == ref  # and in task order, as the local run wrote them
    assert ray.is_initialized()  # the executor did not shut down the session it did not start


def test_executor_errors_and_bad_arguments():
    with pytest.raises(ValueError, match="executor must be one of"):
        ex.make_executor("dask")
    with pytest.raises(ValueError, match="--address only applies"):
        ex.make_executor("local", address="auto")
    with pytest.raises(TypeError, match="fn must be callable"):
        ex.LocalExecutor().submit("k", 3, ())
    with pytest.raises(ValueError, match="appears twice"):
        list(ex.LocalExecutor().map([("k", abs, (1,)), ("k", abs, (2,))]))
    with ex.make_executor("ray") as rex:  # a failing task raises in the driver
        with pytest.raises(Exception, match="math domain error"):
            list(rex.map([("ok", abs, (-1.0,)), ("bad", __import__("math").sqrt, (-1.0,))]))


def test_cli_rejects_ray_options_with_local_executor(tmp_path, capsys):
    assert main(ARGS + ["--num-cpus", "2", "--out", str(tmp_path)]) == 2
    assert "--executor ray only" in capsys.readouterr().err


def _write_images(root, n_per_class=5):
    write_digit_folder(root, ["cat", "dog"], per_class=n_per_class, size=8)


def test_feature_extraction_on_ray_equals_in_process(tmp_path):
    from torchvision.transforms import ToTensor

    from semantic.clip_tokens import extract_features
    from semantic.datasets import image_folder

    root = tmp_path / "img"
    _write_images(root)
    ds_factory = (image_folder, (str(root),), {"transform": ToTensor()})
    enc_factory = (torch.nn.Flatten, ())
    ref = extract_features(torch.nn.Flatten(), image_folder(str(root), transform=ToTensor()), tmp_path / "ref",
                           encoder_key="flatten", batch_size=2, shard_size=4, progress=False)
    with ex.make_executor("ray") as rex:
        got = clip_extraction.extract_features_parallel(rex, enc_factory, ds_factory, tmp_path / "ray", "flatten",
                                           batch_size=2, shard_size=4)
    assert len(got.meta["shards"]) == 3 and got.meta["complete"]
    torch.testing.assert_close(got.features, ref.features, rtol=0, atol=0)
    assert got.labels.tolist() == ref.labels.tolist() and got.paths == ref.paths
    # the features are the pixels: independent check of one example
    torch.testing.assert_close(got.features[3], ToTensor()(__import__("PIL.Image").Image.open(ref.paths[3])
                                                          .convert("RGB")).flatten())
    # resume: a missing shard is recomputed alone; another key is refused before any work
    (tmp_path / "ray" / "shard-00001.safetensors").unlink()
    m = tmp_path / "ray" / "manifest.json"
    m.write_text(m.read_text().replace('"complete": true', '"complete": false'))
    again = clip_extraction.extract_features_parallel(ex.LocalExecutor(), enc_factory, ds_factory, tmp_path / "ray", "flatten",
                                         batch_size=2, shard_size=4)
    torch.testing.assert_close(again.features, ref.features, rtol=0, atol=0)
    with pytest.raises(ValueError, match="another encoder"):
        clip_extraction.extract_features_parallel(ex.LocalExecutor(), enc_factory, ds_factory, tmp_path / "ray", "other",
                                     batch_size=2, shard_size=4)


def test_compare_on_ray_equals_local(tmp_path):
    args = ["compare", "--source", "gaussian", "--max-items", "40", "--channel", "awgn,rayleigh", "--equalizer",
            "zf", "--snr-db=-5,10", "--schemes", "analog,quant-hamming74-qpsk,quant-ideal", "--no-progress"]
    assert main(args + ["--out", str(tmp_path / "local")]) == 0
    local = _rows(tmp_path / "local" / "compare.csv")
    assert main(args + ["--executor", "ray", "--out", str(tmp_path / "ray")]) == 0
    rows = _rows(tmp_path / "ray" / "compare.csv")
    assert len(rows) == len(local) == 12
    assert (tmp_path / "ray" / "compare.csv").read_text() == (tmp_path / "local" / "compare.csv").read_text()
    assert json.load(open(tmp_path / "ray" / "manifest.json"))["executor"]["executor"] == "ray"


def test_semclip_extract_cli_on_ray_equals_local(tmp_path):
    from test_tapl import save_tiny_clip  # tests/ is on sys.path under pytest

    tiny = save_tiny_clip(tmp_path / "clip")
    root = tmp_path / "img"
    _write_images(root, n_per_class=3)
    common = ["semclip", "extract", "--data", str(root), "--batch-size", "2", "--shard-size", "2",
              "--num-workers", "0", "--clip-model", f"local-dir:{tiny}", "--device", "cpu", "--no-progress"]
    assert main(common + ["--out", str(tmp_path / "local")]) == 0
    assert main(common + ["--out", str(tmp_path / "ray"), "--executor", "ray"]) == 0
    from semantic.clip_tokens import load_features

    a, b = load_features(tmp_path / "local"), load_features(tmp_path / "ray")
    assert len(b.meta["shards"]) == 3 and b.meta["encoder_key"] == a.meta["encoder_key"]
    torch.testing.assert_close(b.features, a.features, rtol=0, atol=0)
    assert b.labels.tolist() == a.labels.tolist() and b.paths == a.paths


def _unused_loopback_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(120)  # a hang guard (the old code never returned), not a speed check
@pytest.mark.parametrize("fmt", ["127.0.0.1:{port}", "ray://127.0.0.1:{port}"])
def test_ray_address_without_a_cluster_fails_within_seconds(tmp_path, capsys, fmt):
    """``--executor ray --address HOST:PORT`` with nothing listening there used to wait for ever in
    ``ray.init``; now: exit 2, one line naming the address, within seconds, nothing written.
    (Loopback only: an unused port on 127.0.0.1.)"""
    address = fmt.format(port=_unused_loopback_port())
    rc = main(ARGS + ["--executor", "ray", "--address", address, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and f"--address {address}" in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match="no Ray cluster"):
        ex.RayExecutor(address=address)
    with pytest.raises(ValueError, match="HOST:PORT"):
        ex.check_ray_address("127.0.0.1")
