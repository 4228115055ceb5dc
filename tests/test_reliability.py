"""Replays that run no unexpected code, settings records that hold every number-changing option, resume keys
compared as numbers, checked numbers on every option, plug-ins that cannot silently replace built-ins."""
import argparse
import contextlib
import csv
import io
import json
import math
from pathlib import Path

import pytest
import torch

from experiments.cli import _subparsers, build_parser, main


def _run(argv):
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            return main(argv)
        except SystemExit as exc:
            return exc.code


BER = ["ber", "--code", "none", "--modulation", "qpsk", "--snr-db", "0,2", "--max-bits", "4000", "--no-progress"]


# -- rerun and plug-ins ---------------------------------------------------------------------------------
def _plugin(tmp_path, name, marker):
    """A plug-in file that registers a channel and leaves ``marker`` when it runs."""
    f = tmp_path / f"{name}.py"
    f.write_text(f"open({str(marker)!r}, 'a').write('ran\\n')\n"
                 "from phy.channel import AWGN, register_channel\n"
                 f"register_channel({name!r})(type({name!r}.title().replace('_', ''), (AWGN,), {{'name': {name!r}}}))\n")
    return f


def test_rerun_loads_no_plugin_the_manifest_names(tmp_path, capsys):
    """A manifest whose command line names a plug-in: the replay is refused and the file never runs, unless the
    user names it again (--plugin) or passes --allow-plugins (which says what it loads)."""
    from phy.channel.registry import CHANNELS

    marker = tmp_path / "ran.txt"
    evil = _plugin(tmp_path, "rel_rerun_chan", marker)
    first = tmp_path / "first"
    try:
        assert _run(BER + ["--channel", "awgn", "--out", str(first)]) == 0
        manifest = json.load(open(first / "manifest.json"))
        manifest["semcom_argv"] = manifest["semcom_argv"] + [f"--plugin={evil}"]   # as someone sent it
        (first / "manifest.json").write_text(json.dumps(manifest))
        assert _run(["rerun", str(first), "--out", str(tmp_path / "a")]) == 2
        assert "runs no code a manifest names" in capsys.readouterr().err
        assert not marker.exists() and not (tmp_path / "a").exists()
        assert _run(["rerun", str(first), "--out", str(tmp_path / "b"), "--plugin", str(evil)]) == 0
        assert marker.read_text() == "ran\n"                                # the user named it: loaded once
        said = io.StringIO()
        with contextlib.redirect_stdout(said):
            assert main(["rerun", str(first), "--out", str(tmp_path / "c"), "--allow-plugins"]) == 0
        assert f"loading the plug-in(s) the manifest records: {evil}" in said.getvalue()
        rows = lambda d: open(tmp_path / d / "ber.csv").read()  # noqa: E731
        assert rows("b") == rows("c") == open(first / "ber.csv").read()
        settings = json.load(open(tmp_path / "b" / "ber.settings.json"))
        assert settings["plugins"] == [str(evil.resolve())]                # recorded with the results
    finally:
        CHANNELS.pop("rel_rerun_chan", None)


@pytest.mark.parametrize("argv, message", [
    (["--version"], "not a study command"),
    (["--plugin=x.py", "rerun", "m.json", "--out", "o"], "starts with a rerun"),
    (["ber", "--out", "x", "-h"], "does not run"),
    (["ber", "--out", "x", "--conf=a.toml"], "does not run"),
])
def test_replay_argv_refuses_what_would_not_run_a_study(argv, message):
    from experiments.commands.rerun import replay_argv

    with pytest.raises(ValueError, match=message):
        replay_argv({"semcom_argv": argv}, "new")
    with pytest.raises(ValueError, match="cannot be set on a replay"):
        replay_argv({"semcom_argv": ["ber", "--out", "x"]}, "new", ["plugin=evil.py"])


def test_a_plugin_cannot_replace_a_builtin_silently():
    from experiments.schemes.registry import SCHEMES, register_scheme
    from experiments.core.sources import SOURCES, register_source
    from phy.channel import AWGN
    from phy.channel.registry import CHANNELS, register_channel
    from phy.fec.codes import CODES, Uncoded, register_code

    for registry, register, name, obj in ((CHANNELS, register_channel, "awgn", type("A", (AWGN,), {})),
                                          (CODES, register_code, "none", type("U", (Uncoded,), {})),
                                          (SCHEMES, register_scheme, "analog", lambda: None),
                                          (SOURCES, register_source, "gaussian", lambda **kw: None)):
        old = registry[name]
        with pytest.raises(ValueError, match="already registered"):
            register(name)(obj)
        assert registry[name] is old
        register(name)(old)                       # the same object again: fine
        try:
            register(name, override=True)(obj)    # said on purpose
            assert registry[name] is obj
        finally:
            registry[name] = old


def test_settings_record_refuses_another_plugin(tmp_path):
    from experiments.core import plugins
    from experiments.core.results import SettingsMismatchError, claim_result_settings, open_table

    claim_result_settings(tmp_path, {"seed": 0}, ["r.csv"])
    assert json.load(open(tmp_path / "r.settings.json"))["plugins"] == []
    open_table(tmp_path / "r.csv", ["k"], ["v"]).append({"k": 1, "v": 2})
    with plugins.command_plugins([str(tmp_path / "other_plugin.py")]):
        with pytest.raises(SettingsMismatchError, match="plugins"):
            claim_result_settings(tmp_path, {"seed": 0}, ["r.csv"])


# -- the settings record holds every option that changes a number ---------------------------------------
def _dests(command):
    parser = _subparsers(build_parser())[command]
    return {a.dest for a in parser._actions if a.option_strings and a.dest not in ("help", "_config")}


def test_every_ber_option_is_recorded_or_harmless():
    from experiments.commands.ber import _RESULT_SETTINGS, HARMLESS_OPTIONS

    left = _dests("ber") - set(_RESULT_SETTINGS) - set(HARMLESS_OPTIONS)
    assert not left, f"options of semcom ber neither in the settings record nor listed as harmless: {sorted(left)}"
    assert "snr_batch" in _RESULT_SETTINGS


def test_every_compare_option_is_recorded_or_harmless():
    from experiments.commands.compare import HARMLESS_OPTIONS, CompareConfig
    from experiments.core.sources import load_source

    recorded = set(CompareConfig().settings(load_source("gaussian", n_items=8, dim=4)))
    left = _dests("compare") - recorded - set(HARMLESS_OPTIONS)
    assert not left, f"options of semcom compare neither in the settings record nor listed as harmless: {sorted(left)}"


def test_resume_with_another_snr_batch_is_refused(tmp_path, capsys):
    out = tmp_path / "ber"
    assert _run(BER + ["--out", str(out)]) == 0
    assert json.load(open(out / "ber.settings.json"))["snr_batch"] == 1
    assert _run(BER + ["--snr-batch", "2", "--out", str(out)]) == 2
    assert "snr_batch: 1 -> 2" in capsys.readouterr().err


# -- resume keys are numbers ----------------------------------------------------------------------------
def test_resume_matches_keys_as_numbers(tmp_path):
    """A spreadsheet rewrote 0.0 as 0 and 2.0 as 2e0: the resume finds both points and appends nothing."""
    out = tmp_path / "ber"
    assert _run(BER + ["--out", str(out)]) == 0
    text = (out / "ber.csv").read_text()
    edited = text.replace(",0.0,esno,", ",0,esno,").replace(",2.0,esno,", ",2e0,esno,")
    assert edited != text
    (out / "ber.csv").write_text(edited)
    assert _run(BER + ["--out", str(out)]) == 0
    assert (out / "ber.csv").read_text() == edited          # nothing appended, nothing rewritten
    assert json.load(open(out / "manifest.json"))["rows_resumed"] == 2


def test_result_table_keys_compare_numbers_by_value(tmp_path):
    from phy.sim.resultstore import ResumableCSV

    path = tmp_path / "t.csv"
    path.write_text("scheme,snr,v\na,0,1\nb,1e-1,2\n")
    t = ResumableCSV(path, ["scheme", "snr", "v"], ["scheme", "snr"])
    assert t.get(("a", 0.0))["v"] == "1" and t.get(("b", 0.1))["v"] == "2"
    assert ("a", "0.0") in t.finished_keys() and ("b", "0.1") in t.finished_keys()
    assert sorted(t.finished_keys()) == [("a", "0"), ("b", "1e-1")]      # the file's own text
    with pytest.raises(ValueError, match="already holds"):
        t.append({"scheme": "a", "snr": 0.0, "v": 3})
    path.write_text("scheme,snr,v\na,0,1\na,0.0,2\n")
    with pytest.raises(ValueError, match="two rows with the key"):
        ResumableCSV(path, ["scheme", "snr", "v"], ["scheme", "snr"])


# -- numbers on every option of every command ------------------------------------------------------------
def _all_parsers(parser=None, prefix=""):
    parser = parser or build_parser()
    for name, sub in _subparsers(parser).items():
        yield f"{prefix}{name}", sub
        yield from _all_parsers(sub, f"{prefix}{name} ")


def test_every_numeric_option_refuses_nonfinite_overflow_and_fractions():
    checked = 0
    for command, parser in _all_parsers():
        for action in parser._actions:
            if not action.option_strings or action.type in (None, str):
                continue
            bounds = getattr(action.type, "bounds", None)
            name = getattr(action.type, "__name__", "")
            if name == "integer":
                for bad in ("2.5e0", "1e400", "nan", "inf", "9" * 40):
                    with pytest.raises(argparse.ArgumentTypeError):
                        action.type(bad)
                if action.option_strings[-1] not in ("--seed", "--split-seed"):
                    assert bounds[1] is not None and f"(at most {bounds[1]})" in (action.help or ""), \
                        (command, action.option_strings)
                checked += 1
            elif name == "number":
                for bad in ("nan", "inf", "-inf", "1e400"):
                    with pytest.raises(argparse.ArgumentTypeError):
                        action.type(bad)
                checked += 1
            else:  # a command's own type: it must refuse these with an argparse error too
                for bad in ("nan", "1e400"):
                    try:
                        action.type(bad)
                    except (argparse.ArgumentTypeError, ValueError, TypeError):
                        pass
    assert checked > 100


def test_integers_written_with_an_exponent():
    from experiments.core.args import parse_int

    assert parse_int("1e6") == 10 ** 6 and parse_int("2.0e3") == 2000 and parse_int("-7") == -7
    for bad in ("2.5e0", "1.9e0", "1e400", "nan", "", "0x10", "1.0000000000000001e3"):
        with pytest.raises(ValueError):
            parse_int(bad)


# -- silent wrong results -------------------------------------------------------------------------------
def test_compare_text_scheme_on_a_source_without_text_writes_a_skipped_row(tmp_path):
    out = tmp_path / "cmp"
    assert _run(["compare", "--source", "gaussian", "--schemes", "ascii-hamming74-16qam", "--snr-db", "0,10",
                 "--realizations", "1", "--no-progress", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "compare.csv")))
    assert len(rows) == 2 and all(r["status"].startswith("skipped:") for r in rows), rows


@pytest.mark.parametrize("spec, kw", [("rayleigh(num_tx=2,num_rx=2)", {"precoding": "svd"}),
                                     ("ofdm(estimator=ls)", {}), ("ofdm(csi=perfect)", {})])
def test_noiseless_links_give_finite_outputs(spec, kw):
    from phy.channel.registry import make_channel
    from phy.link.analog import AnalogLink

    x = torch.randn(2, 64)
    for arg in ({"snr_db": math.inf}, {"snr_db": 1e308}, {"no": 0.0}):
        out = AnalogLink(make_channel(spec, seed=0), **kw)(x, **arg)
        assert torch.isfinite(out.x_hat).all(), arg
        assert torch.allclose(out.x_hat, x, atol=1e-4), arg


def test_noiseless_ofdm_lmmse_estimate_stays_finite():
    """The LMMSE grid estimator at N0 = 0 (its filter 1 / (lambda + N0) floored): finite, and close to the
    data; not exact (the floor regularises the rank-deficient covariance)."""
    from phy.channel.registry import make_channel
    from phy.link.analog import AnalogLink

    x = torch.randn(2, 64)
    for arg in ({"snr_db": math.inf}, {"no": 0.0}):
        out = AnalogLink(make_channel("ofdm(estimator=lmmse)", seed=0))(x, **arg)
        assert torch.isfinite(out.x_hat).all(), arg
        assert float((out.x_hat - x).pow(2).mean() / x.pow(2).mean()) < 0.05, arg


@pytest.mark.parametrize("build, spec", [
    (lambda: __import__("phy.channel").channel.Rayleigh(block_length=2 ** 21), "rayleigh(block_length=2097152)"),
    (lambda: __import__("phy.channel").channel.Rician(los_phase=1e300), "rician(los_phase=1e300)"),
    (lambda: __import__("phy.channel.tdl").channel.tdl.SionnaTDL(speed=2000.0), "tdl(speed=2000)"),
    (lambda: __import__("phy.channel.tdl").channel.tdl.SionnaTDL(carrier_frequency=1e12), "tdl(carrier_frequency=1e12)"),
    (lambda: __import__("phy.channel").channel.make_channel("awgn", phase_noise_linewidth=2e6, symbol_rate=1e6),
     "awgn(phase_noise_linewidth=2e6,symbol_rate=1e6)"),
])
def test_constructors_and_specs_share_the_physical_ranges(build, spec):
    from phy.channel.registry import make_channel

    with pytest.raises(ValueError):
        build()
    with pytest.raises(ValueError):
        make_channel(spec)


def test_feature_cache_with_a_nan_token_is_refused_whole(tmp_path):
    from safetensors.torch import save_file

    from semantic.clip_tokens import load_features

    feats = torch.randn(50, 8)
    feats[49, 0] = float("inf")
    save_file({"features": feats, "labels": torch.zeros(50, dtype=torch.long)}, str(tmp_path / "s.safetensors"))
    (tmp_path / "manifest.json").write_text(json.dumps({"complete": True, "shards": ["s.safetensors"],
                                                        "class_names": ["a"]}))
    with pytest.raises(ValueError, match=r"1 token\(s\) with NaN or inf values \(rows \[49\]\)"):
        load_features(tmp_path)


def test_memory_estimates_refuse_before_allocating(monkeypatch):
    from phy.utils.memory import InsufficientMemoryError, check_memory

    monkeypatch.setenv("SEMCOM_MEMORY_LIMIT", str(2 ** 30))
    check_memory(2 ** 20, "a small table")
    with pytest.raises(InsufficientMemoryError, match=r"needs about 4\.0 GiB, more than this machine can give it "
                                                       r"\(1\.0 GiB available\)"):
        check_memory(4 * 2 ** 30, "a big table")
    from phy.mimo.detection import MIMODetector

    MIMODetector("ml", "qpsk", 2)                 # 16 candidates: fine
    with pytest.raises(InsufficientMemoryError, match="64qam"):
        MIMODetector("ml", "64qam", 6)            # 64^6 candidates
