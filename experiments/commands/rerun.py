"""``semcom rerun DIR/manifest.json --out NEW``: replay a finished run with the same settings into a new folder.

Every command started from the ``semcom`` command line records its arguments in ``manifest.json``
(``semcom_argv``: the command line as parsed, ``--config`` files expanded). ``rerun`` runs that command line
again with ``--out`` replaced by ``NEW``; the seed is part of it, so the new CSV equals the old one (every
study writes the same rows for the same seed). ``--set OPTION=VALUE`` changes one option of the replay.

A replay runs no code that the manifest names: plug-ins recorded in it (``--plugin``) are loaded only when the
user names them again on the ``rerun`` command line (``--plugin FILE``) or passes ``--allow-plugins`` (which
prints what it loads); otherwise the replay is refused, naming them. A recorded command line that would not run
a study (``--version``, ``--help``, another ``rerun``, a ``--plugin`` before the command) is refused, as is a
manifest that is not a JSON object with a list of strings as ``semcom_argv``.

Example
-------
``semcom compare --source gaussian --snr-db 0,10 --out runs/a``, then
``semcom rerun runs/a/manifest.json --out runs/b`` writes the same ``compare.csv`` into ``runs/b``.
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Any, Dict, List, Sequence

from experiments.core.args import read_user_file

#: The largest manifest read (bytes): a run's manifest is a few kilobytes.
MAX_MANIFEST_BYTES = 16 << 20
#: Options a replay may not carry or change (they load code, read other files or stop the command).
_NOT_REPLAYED = ("--plugin", "--config", "--help", "--version")

__all__ = ["add_arguments", "main", "replay_argv", "read_manifest", "MAX_MANIFEST_BYTES"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``semcom rerun`` to ``parser`` (``semcom rerun --help`` lists them).

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["runs/ber/manifest.json", "--out", "runs/ber-again"])
    >>> (args.manifest, args.out)
    ('runs/ber/manifest.json', 'runs/ber-again')
    """
    parser.add_argument("manifest", metavar="DIR/manifest.json", help="the finished run's manifest (or its folder)")
    parser.add_argument("--out", required=True,
                        help="the new run folder (must differ from the recorded one; relative to the current "
                             "folder)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="OPTION=VALUE",
                        help="change one option of the replayed command (repeatable), e.g. --set seed=3; the "
                             "replay runs in the recorded working directory, so relative paths of the recorded "
                             "command line (and of --set values) are taken from there")
    parser.add_argument("--allow-plugins", action="store_true",
                        help="load the plug-ins (--plugin code) the manifest records, listing them first; without "
                             "it a replay loads only the plug-ins named again with --plugin on this command line")


def _drop_option(argv: List[str], opt: str) -> List[str]:
    out, i = [], 0
    while i < len(argv):
        if argv[i] == opt:
            i += 2
            continue
        if argv[i].startswith(opt + "="):
            i += 1
            continue
        out.append(argv[i])
        i += 1
    return out


def replay_argv(manifest: dict, out: str, overrides: List[str] = ()) -> List[str]:
    """The recorded command line with ``--out`` set to ``out`` and each ``OPTION=VALUE`` of ``overrides``
    replacing that option (``ValueError`` when the manifest holds no command line).

    Examples
    --------
    >>> replay_argv({"semcom_argv": ["ber", "--out", "old", "--k", "4"]}, "new", ["--k=8"])
    ['ber', '--k=8', '--out', 'new']
    >>> replay_argv({}, "new")
    Traceback (most recent call last):
    ...
    ValueError: ...
    """
    from experiments.core.plugins import pop_plugin_args

    argv = manifest.get("semcom_argv") if isinstance(manifest, dict) else None
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError("the manifest records no semcom command line (semcom_argv): it was written by a run "
                         "not started from the semcom command line, or by an older version")
    _, argv = pop_plugin_args(argv)  # plug-ins are the caller's decision (main), never the manifest's
    _check_replayable(argv)
    argv = _drop_option(list(argv), "--out")
    for item in overrides:
        key, sep, value = str(item).partition("=")
        key = key.strip().lstrip("-")
        if not sep or not key:
            raise ValueError(f"--set expects OPTION=VALUE, got {item!r}")
        if _refused_option("--" + key) or key == "out":
            raise ValueError(f"--set {item!r}: --{key} cannot be set on a replay" +
                             (" (give --out to rerun itself)" if key == "out" else ""))
        argv = _drop_option(argv, "--" + key) + [f"--{key}={value}"]
    return argv + ["--out", out]


def _refused_option(word: str) -> bool:
    """Whether ``word`` is (an abbreviation argparse would accept of) an option a replay may not carry."""
    if word == "-h" or (word.startswith("-") and not word.startswith("--") and "h" in word[1:2]):
        return True
    name = word.split("=", 1)[0]
    return name.startswith("--") and len(name) > 2 and any(opt.startswith(name) for opt in _NOT_REPLAYED)


def _check_replayable(argv: Sequence[str]) -> None:
    """``ValueError`` unless ``argv`` runs one study command: a known command other than ``rerun`` first, and no
    word that would load code, read a config, print help or the version instead."""
    from experiments.cli import SUBCOMMANDS

    if not argv or argv[0] not in SUBCOMMANDS or argv[0] == "rerun":
        what = "a rerun" if argv and argv[0] == "rerun" else repr(argv[0]) if argv else "nothing"
        raise ValueError(f"the manifest's command line starts with {what}, not a study command "
                         f"({', '.join(c for c in SUBCOMMANDS if c != 'rerun')}); a replay runs one study; "
                         "replay the original run's manifest")
    bad = [a for a in argv[1:] if _refused_option(a)]
    if bad:
        raise ValueError(f"the manifest's command line holds {bad[0]!r}, which a replay does not run (it would "
                         "load code, read another file or stop without running)")


def read_manifest(path: str, shown: str = None) -> Dict[str, Any]:
    """The manifest at ``path`` (a run folder or its ``manifest.json``), checked: a JSON object of at most
    :data:`MAX_MANIFEST_BYTES`, ``semcom_argv`` a list of strings, ``cwd`` and ``status`` strings, ``args`` an
    object (each when present). ``ValueError`` naming what is wrong.

    Examples
    --------
    >>> import json, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "manifest.json")
    >>> _ = open(path, "w").write(json.dumps(["ber"]))
    >>> read_manifest(path)
    Traceback (most recent call last):
    ...
    ValueError: manifest '...manifest.json' is a JSON list; expected an object (a run's manifest.json)
    """
    shown = shown or path
    if os.path.isdir(path):
        path = os.path.join(path, "manifest.json")
    text = read_user_file(path, name=f"manifest {shown!r}", expected="a run's manifest.json",
                          limit=MAX_MANIFEST_BYTES)
    try:
        manifest = json.loads(text)
    except RecursionError:
        raise ValueError(f"manifest {shown!r} nests too deeply; not a run's manifest") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"manifest {shown!r} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        kind = {list: "list", str: "string", type(None): "null", bool: "boolean"}.get(type(manifest), "number")
        raise ValueError(f"manifest {shown!r} is a JSON {kind}; expected an object (a run's manifest.json)")
    for key, types, what in (("cwd", (str,), "a string"), ("status", (str,), "a string"),
                             ("args", (dict,), "an object"), ("semcom_argv", (list,), "a list of strings")):
        if manifest.get(key) is not None and not isinstance(manifest[key], types):
            raise ValueError(f"manifest {shown!r}: {key!r} must be {what}, got {type(manifest[key]).__name__}")
    return manifest


def main(args: argparse.Namespace) -> int:
    """Run ``semcom rerun`` with the parsed ``args`` (the options of :func:`add_arguments`); returns
    the exit status (0 on success, 2 for bad input, reported as one line).

    Examples
    --------
    A small ``semcom ber`` run replayed into a new folder: the same seed gives the same CSV (``--set
    OPTION=VALUE`` would change an option of the replay):

    >>> import contextlib, io, os, tempfile
    >>> from experiments.cli import main as semcom
    >>> root = tempfile.mkdtemp()
    >>> first, again = os.path.join(root, "ber"), os.path.join(root, "ber-again")
    >>> with contextlib.redirect_stdout(io.StringIO()):
    ...     rc1 = semcom(["ber", "--out", first, "--code", "none", "--modulation", "qpsk", "--snr-db", "0",
    ...                   "--max-bits", "20000"])
    ...     rc2 = semcom(["rerun", os.path.join(first, "manifest.json"), "--out", again])
    >>> rc1, rc2, open(os.path.join(first, "ber.csv")).read() == open(os.path.join(again, "ber.csv")).read()
    (0, 0, True)
    """
    from experiments.cli import main as cli_main
    from experiments.core.plugins import plugin_key, pop_plugin_args

    manifest = read_manifest(args.manifest)
    if manifest.get("status") not in ("finished", None):
        print(f"semcom rerun: note: the recorded run's status is {manifest.get('status')!r}")
    recorded = manifest.get("args", {}).get("out") if isinstance(manifest.get("args"), dict) else None
    recorded_at = os.path.join(manifest.get("cwd") or os.getcwd(), os.path.expanduser(str(recorded or "")))
    if recorded and os.path.abspath(recorded_at) == os.path.abspath(os.path.expanduser(args.out)):
        raise ValueError(f"--out {args.out!r} is the recorded run's own folder; rerun writes into a new one")
    out = os.path.abspath(os.path.expanduser(args.out))   # given here: relative to the current folder
    argv = replay_argv(manifest, out, args.overrides)
    # plug-ins: those the manifest records run only if named again here (loaded by the CLI already) or allowed
    recorded_plugins, _ = pop_plugin_args(manifest["semcom_argv"])
    named = list(getattr(args, "_plugins", None) or [])
    named_keys = {plugin_key(p) for p in named}
    cwd = manifest.get("cwd")
    unnamed = [p for p in recorded_plugins if plugin_key(p, cwd) not in named_keys and plugin_key(p) not in named_keys]
    if unnamed and not getattr(args, "allow_plugins", False):
        raise ValueError(f"the manifest's command line loads the plug-in(s) {', '.join(map(repr, unnamed))}; a replay "
                         "runs no code a manifest names: check them and name them again (--plugin FILE_OR_MODULE), "
                         "or pass --allow-plugins")
    if unnamed:
        print(f"semcom rerun: --allow-plugins: loading the plug-in(s) the manifest records: {', '.join(unnamed)}")
    argv = argv + [f"--plugin={p}" for p in named] + [f"--plugin={plugin_key(p, cwd)}" for p in unnamed]
    here = os.getcwd()
    if cwd and not os.path.isdir(cwd):
        print(f"semcom rerun: note: the recorded working directory {cwd} does not exist; relative paths of the "
              "command line are taken from the current folder")
        cwd = None
    print("semcom rerun: semcom " + " ".join(argv) + (f"  (in {cwd})" if cwd and cwd != here else ""))
    if not cwd or cwd == here:
        return cli_main(argv)
    os.chdir(cwd)   # the recorded command line's relative paths are the recorded folder's
    try:
        return cli_main(argv)
    finally:
        os.chdir(here)
