"""``semcom rerun DIR/manifest.json --out NEW``: replay a finished run with the same settings into a new folder.

Every command started from the ``semcom`` command line records its arguments in ``manifest.json``
(``semcom_argv``: the command line as parsed, ``--config`` files expanded). ``rerun`` runs that command line
again with ``--out`` replaced by ``NEW``; the seed is part of it, so the new CSV equals the old one (every
study writes the same rows for the same seed). ``--set OPTION=VALUE`` changes one option of the replay.

Example
-------
``semcom compare --source gaussian --snr-db 0,10 --out runs/a``, then
``semcom rerun runs/a/manifest.json --out runs/b`` writes the same ``compare.csv`` into ``runs/b``.
"""
from __future__ import annotations

import argparse
import json
import os
from typing import List

__all__ = ["add_arguments", "main", "replay_argv"]


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
    argv = manifest.get("semcom_argv") if isinstance(manifest, dict) else None
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError("the manifest records no semcom command line (semcom_argv): it was written by a run "
                         "not started from the semcom command line, or by an older version")
    if argv[0] == "rerun":
        raise ValueError("the manifest records a rerun; replay the original run's manifest")
    argv = _drop_option(list(argv), "--out")
    for item in overrides:
        key, sep, value = str(item).partition("=")
        key = key.strip().lstrip("-")
        if not sep or not key:
            raise ValueError(f"--set expects OPTION=VALUE, got {item!r}")
        argv = _drop_option(argv, "--" + key) + [f"--{key}={value}"]
    return argv + ["--out", out]


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

    path = args.manifest
    if os.path.isdir(path):
        path = os.path.join(path, "manifest.json")
    try:
        with open(path, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except FileNotFoundError:
        raise ValueError(f"manifest {args.manifest!r} does not exist; expected a run's manifest.json") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"manifest {args.manifest!r} is not valid JSON ({exc})") from None
    if manifest.get("status") not in ("finished", None):
        print(f"semcom rerun: note: the recorded run's status is {manifest.get('status')!r}")
    recorded = manifest.get("args", {}).get("out") if isinstance(manifest.get("args"), dict) else None
    recorded_at = os.path.join(manifest.get("cwd") or os.getcwd(), os.path.expanduser(str(recorded or "")))
    if recorded and os.path.abspath(recorded_at) == os.path.abspath(os.path.expanduser(args.out)):
        raise ValueError(f"--out {args.out!r} is the recorded run's own folder; rerun writes into a new one")
    out = os.path.abspath(os.path.expanduser(args.out))   # given here: relative to the current folder
    argv = replay_argv(manifest, out, args.overrides)
    cwd = manifest.get("cwd")
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
