"""`--config FILE.toml` on every command and `semcom rerun DIR/manifest.json --out NEW` (experiments/cli.py,
experiments/commands/rerun.py)."""
from __future__ import annotations

import argparse
import json
import os

import pytest

from experiments.cli import SUBCOMMANDS, _innermost, _subparsers, build_parser, config_argv, expand_config, main

CMP = ["--source", "gaussian", "--max-items", "40", "--channel", "awgn", "--schemes", "analog,quant-ldpc5g-16qam",
       "--no-progress"]


def _csv(path):
    return (path / "compare.csv").read_text()


@pytest.fixture(scope="module")
def flags_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cfg") / "flags"
    assert main(["compare"] + CMP + ["--snr-db=-10,10", "--out", str(out)]) == 0
    return out


def test_config_file_equals_the_same_flags(flags_run, tmp_path):
    cfg = tmp_path / "study.toml"
    cfg.write_text('source = "gaussian"\nmax-items = 40\nchannel = "awgn"\nsnr_db = [-10, 10]\n'
                   'schemes = ["analog", "quant-ldpc5g-16qam"]\nno-progress = true\n')
    out = tmp_path / "cfg"
    assert main(["compare", "--config", str(cfg), "--out", str(out)]) == 0
    assert _csv(out) == _csv(flags_run)
    m = json.loads((out / "manifest.json").read_text())
    assert "--snr-db=-10,10" in m["semcom_argv"] and "--config" not in m["semcom_argv"]


def test_command_line_overrides_the_config(tmp_path):
    cfg = tmp_path / "study.toml"
    cfg.write_text('source = "gaussian"\nmax-items = 40\nchannel = "awgn"\nsnr-db = [-10, 10]\nschemes = "analog"\n'
                   'no-progress = true\nseed = 1\n')
    out = tmp_path / "o"
    assert main(["compare", f"--config={cfg}", "--snr-db", "0", "--seed", "2", "--out", str(out)]) == 0
    rows = (out / "compare.csv").read_text().splitlines()[1:]
    assert [r.split(",")[2] for r in rows] == ["0.0"]
    assert json.loads((out / "manifest.json").read_text())["seed"] == 2


@pytest.mark.parametrize("text, message", [
    ('snr-db = "0"\nbogus = 1\nseeed = 2\n', "unknown option(s) 'bogus', 'seeed' for 'semcom compare'"),
    ("no-progress = 1\n", "'no-progress' is a flag; expected true or false"),
    ("snr-db = \n", "is not valid TOML"),
    ("seed = {a = 1}\n", "'seed' is a table"),
    ("help = true\n", "unknown option(s) 'help'"),
])
def test_bad_config_one_line_exit_2(tmp_path, capsys, text, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    assert main(["compare", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("semcom compare: error: --config") and message in err[0]
    assert not (tmp_path / "o").exists()
    assert main(["compare", "--config", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


def _value_options(parser):
    return [a for a in parser._actions if a.option_strings and a.nargs != 0 and a.option_strings[0].startswith("--")
            and a.dest not in ("_config", "help")]


def test_every_command_takes_a_config(tmp_path):
    parser = build_parser()
    commands = [[name] for name in SUBCOMMANDS if name not in ("rerun", "semclip")]  # semclip: per action
    commands += [["semclip", action] for action in _subparsers(_subparsers(parser)["semclip"])]
    assert len(commands) >= len(SUBCOMMANDS) + 2
    for words in commands:
        inner, depth = _innermost(parser, words)
        assert depth == len(words) and "--config" in (_subparsers(parser)[words[0]].format_help())
        from experiments.cli import CONFIG_NAME_OR_PATH_OPTIONS, CONFIG_PATH_OPTIONS

        paths = CONFIG_PATH_OPTIONS | CONFIG_NAME_OR_PATH_OPTIONS   # those are read from the file's folder
        action = next(a for a in _value_options(inner) if a.option_strings[0][2:] not in paths)
        opt = action.option_strings[0]
        cfg = tmp_path / f"{'-'.join(words)}.toml"
        cfg.write_text(f'{opt[2:]} = "v1"\n')
        assert expand_config(parser, words + ["--config", str(cfg), "X"]) == words + [f"{opt}=v1", "X"], words


def test_config_value_forms():
    p = argparse.ArgumentParser(prog="semcom t")
    p.add_argument("--snr-db")
    p.add_argument("--names", nargs="+")
    p.add_argument("--filter", action="append")
    p.add_argument("--logy", action=argparse.BooleanOptionalAction)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    import os
    import tempfile

    path = os.path.join(tempfile.mkdtemp(), "c.toml")
    with open(path, "w") as fh:
        fh.write('snr-db = [-5, 0, 2.5]\nnames = ["a", "b"]\nfilter = ["scheme=x", "channel=awgn"]\nlogy = false\n'
                 'quick = true\nno_progress = true\n')
    words = config_argv(p, path)
    assert words == ["--snr-db=-5,0,2.5", "--names", "a", "b", "--filter=scheme=x", "--filter=channel=awgn",
                     "--no-logy", "--quick", "--no-progress"]
    ns = p.parse_args(words)
    assert ns.snr_db == "-5,0,2.5" and ns.names == ["a", "b"] and ns.filter == ["scheme=x", "channel=awgn"]
    assert ns.logy is False and ns.quick and ns.progress is False


def test_rerun_replays_the_same_csv(flags_run, tmp_path, capsys):
    out = tmp_path / "again"
    assert main(["rerun", str(flags_run / "manifest.json"), "--out", str(out)]) == 0
    assert _csv(out) == _csv(flags_run)
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "finished" and m["seed"] == json.loads((flags_run / "manifest.json").read_text())["seed"]
    # another seed through --set: other numbers, same rows
    other = tmp_path / "seed5"
    assert main(["rerun", str(flags_run), "--out", str(other), "--set", "seed=5"]) == 0
    assert json.loads((other / "manifest.json").read_text())["seed"] == 5
    a, b = _csv(flags_run).splitlines(), _csv(other).splitlines()
    assert len(a) == len(b) and a[0] == b[0] and a[1:] != b[1:]
    capsys.readouterr()
    # refused: its own folder, a manifest without a command line, a missing manifest
    assert main(["rerun", str(flags_run / "manifest.json"), "--out", str(flags_run)]) == 2
    assert "own folder" in capsys.readouterr().err
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "manifest.json").write_text(json.dumps({"command": "semcom x", "args": {}}))
    assert main(["rerun", str(bare / "manifest.json"), "--out", str(tmp_path / "n")]) == 2
    assert "records no semcom command line" in capsys.readouterr().err
    assert main(["rerun", str(tmp_path / "nothing" / "manifest.json"), "--out", str(tmp_path / "n")]) == 2


def _features(folder):
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "feats.npy", np.random.default_rng(0).standard_normal((40, 8)).astype("float32"))


def test_config_paths_are_relative_to_the_config_file(tmp_path, monkeypatch):
    study = tmp_path / "study"
    _features(study / "data")
    (study / "s.toml").write_text('source = "data/feats.npy"\nout = "runs/a"\nschemes = "analog"\nsnr-db = [0]\n'
                                  'realizations = 1\nno-progress = true\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["compare", "--config", str(study / "s.toml")]) == 0
    assert (study / "runs" / "a" / "compare.csv").is_file() and not (elsewhere / "runs").exists()
    words = config_argv(_subparsers(build_parser())["compare"], str(study / "s.toml"))
    assert f"--source={study / 'data' / 'feats.npy'}" in words and f"--out={study / 'runs' / 'a'}" in words
    # a name that is not a file beside the config stays a name
    (study / "g.toml").write_text('source = "gaussian"\n')
    assert config_argv(_subparsers(build_parser())["compare"], str(study / "g.toml")) == ["--source=gaussian"]


def test_rerun_from_another_folder_uses_the_recorded_working_directory(tmp_path, monkeypatch):
    work = tmp_path / "work"
    _features(work)
    monkeypatch.chdir(work)
    assert main(["compare", "--source", "feats.npy", "--schemes", "analog", "--snr-db", "0", "--realizations", "1",
                 "--no-progress", "--out", "run"]) == 0
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    assert main(["rerun", str(work / "run" / "manifest.json"), "--out", "again"]) == 0
    assert (other / "again" / "compare.csv").read_text() == (work / "run" / "compare.csv").read_text()
    assert os.getcwd() == str(other)                  # back in the current folder
    # the recorded folder is gone: the replay says so and reads from the current one (which lacks feats.npy)
    import shutil

    shutil.copy(work / "run" / "manifest.json", other / "manifest.json")
    m = json.loads((other / "manifest.json").read_text())
    m["cwd"] = str(tmp_path / "gone")
    (other / "manifest.json").write_text(json.dumps(m))
    assert main(["rerun", str(other / "manifest.json"), "--out", "third"]) == 2


def test_help_says_where_relative_paths_are_read():
    parsers = _subparsers(build_parser())
    cfg = next(a for a in parsers["compare"]._actions if "--config" in a.option_strings)
    assert "file's folder" in cfg.help
    setopt = next(a for a in parsers["rerun"]._actions if "--set" in a.option_strings)
    assert "recorded working directory" in setopt.help
