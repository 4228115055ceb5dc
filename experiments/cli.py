"""The ``semcom`` command line.

Each subcommand lives in its own module that defines ``add_arguments(parser)`` and
``main(args) -> int``; this file only lists them, so ``semcom --help`` stays fast (the modules
import heavy libraries inside ``main``).

Example
-------
``semcom --help``, ``semcom ber --help``, ``semcom run``.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from typing import Dict, List, Optional, Tuple

from experiments.core.args import complete_help, harden_parser, read_user_file
from phy import __version__

__all__ = ["SUBCOMMANDS", "USER_ERRORS", "CONFIG_PATH_OPTIONS", "CONFIG_NAME_OR_PATH_OPTIONS", "build_parser", "main",
           "error_line", "check_out_dir", "results_folder_lock", "sigterm_interrupts", "progress_bars_off",
           "join_negative_values", "config_argv", "expand_config"]

# what bad input raises on its way through a command (a bad value, a missing / unreadable / unwritable
# file or folder, a refused resume): reported as one line and exit status 2, not a traceback.
# SEMCOM_TRACEBACK=1 re-raises them (for debugging).
#: Exceptions reported as one error line with exit status 2 (bad values, missing or unwritable files, refused resumes).
USER_ERRORS = (ValueError, OSError)

#: The largest ``--config`` file read (bytes): a file of options is a few hundred bytes.
MAX_CONFIG_BYTES = 1 << 20

#: The ``semcom`` sub-commands: name -> (module, one-line help); modules are imported when the parser is built.
SUBCOMMANDS = {
    "channel": ("experiments.commands.channel_check", "measure a channel's SNR and fading statistics"),
    "ber": ("experiments.commands.ber", "BER/BLER Monte Carlo of the digital chain"),
    "compare": ("experiments.commands.compare", "analog vs digital at matched channel uses"),
    "run": ("experiments.commands.run", "the main job: BER curves + matched-bandwidth comparison"),
    "vlf-msc": ("experiments.commands.vlf_msc", "VLF-MSC: captions and images per SNR"),
    "train-image-decoder": ("experiments.commands.train_image_decoder", "VLF-MSC: train the VLF -> SD image decoder"),
    "train-text-projection": ("experiments.commands.train_text_projection", "VLF-MSC: fine-tune the text soft prompt W_proj"),
    "blip2-captions": ("experiments.commands.blip2_captions", "VLF-MSC: the clean-channel BLIP-2 caption of each image"),
    "train-deepsc": ("experiments.commands.train_deepsc", "VLF-MSC's text baseline: DeepSC trained on a caption corpus"),
    "vlf-msc-eval": ("experiments.commands.vlf_msc_eval", "VLF-MSC vs its baselines, metrics vs SNR"),
    "semclip": ("experiments.commands.semclip", "SemCLIP: extract | train-jscc | train-tapl | train-djscc | train-codec | eval"),
    "semclip-eval": ("experiments.commands.semclip_eval", "SemCLIP vs its baselines (accuracy vs SNR/bandwidth)"),
    "reproduce": ("experiments.commands.reproduce", "one figure or table of the VLF-MSC / SemCLIP papers, end to end"),
    "plot": ("experiments.commands.plot_runs", "one figure of a metric vs SNR from the CSVs of several runs"),
    "rerun": ("experiments.commands.rerun", "replay a finished run's command line (from its manifest.json) into a new folder"),
}


#: Options whose value is a file or folder: a relative path in a ``--config`` file is taken from the file's folder.
CONFIG_PATH_OPTIONS = frozenset({
    "out", "items", "cache-dir", "images", "captions", "data", "train-data", "data-path", "features", "style",
    "deepsc-checkpoint", "djscc-ft", "djscc-ir", "image-decoder", "init-decoder", "init-projection", "jscc",
    "semclip-jscc", "semclip-noaf-jscc", "tapl", "text-projection", "vlf-cache", "lpips-backbone",
    "clip-model-config"})
#: Options whose value is a name or a path (a source, a hub id, a tag): taken from the config file's folder
#: when a file or folder of that name is there, else as written.
CONFIG_NAME_OR_PATH_OPTIONS = frozenset({
    "source", "blip2-checkpoint", "checkpoint", "sd-checkpoint", "bertscore-model", "clip-pretrained",
    "pretrained", "model", "plugin"})


def _config_path(base: str, option: str, value: str) -> str:
    """``value`` of ``option`` from a config file in folder ``base``: relative paths taken from ``base``."""
    if not isinstance(value, str) or not value or os.path.isabs(os.path.expanduser(value)) or value == "none":
        return value
    here = os.path.normpath(os.path.join(base, value))
    if option in CONFIG_PATH_OPTIONS:
        return here
    if option in CONFIG_NAME_OR_PATH_OPTIONS and os.path.exists(here.replace("{L}", "")):
        return here
    return value


_PLUGIN_HELP = ("import a module or a .py file that registers channels, schemes, codes or sources "
                "(repeatable; installed semcom.* entry points load by themselves); see experiments.core.plugins")


class _Parser(argparse.ArgumentParser):
    """argparse with the package's error format: one line ``semcom CMD: error: ...`` (the usage is in ``--help``),
    exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {' '.join(str(message).split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``semcom`` argument parser: global options (``--version``, ``--plugin``) and one sub-command per
    entry of :data:`SUBCOMMANDS`, each with its module's ``add_arguments``.

    Examples
    --------
    >>> parser = build_parser()
    >>> args = parser.parse_args(["channel", "--snr-db", "3"])
    >>> args.command, args.snr_db
    ('channel', 3.0)
    """
    parser = _Parser(
        prog="semcom",
        description="Semantic communication research kit: one channel core for analog semantic and "
                    "digital separation links. SNR is Es/N0 per complex channel use.",
    )
    parser.add_argument("--version", action="version", version=f"semcom {__version__}")
    parser.add_argument("--plugin", action="append", metavar="MODULE_OR_FILE", help=_PLUGIN_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:  # a subcommand whose module is not installed/built
            if exc.name != module:
                raise
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_arguments(p)
        harden_parser(p, name)  # checked integer / number types, count bounds (experiments.core.args)
        p.add_argument("--plugin", action="append", metavar="MODULE_OR_FILE", help=_PLUGIN_HELP)
        if name != "rerun":
            p.add_argument("--config", dest="_config", metavar="FILE.toml", default=None,
                           help="take options from a TOML file (keys: this command's option names, e.g. "
                                "snr-db = \"0:10:2\"); options on the command line override it; relative paths "
                                "in it (out, data, items, ...) are taken from the file's folder")
        p.set_defaults(_main=mod.main)
        complete_help(p)   # every option's help line names its choices and default
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> Dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _innermost(parser: argparse.ArgumentParser, argv: List[str]):
    """The (sub)parser that parses the options of ``argv`` and the number of leading command words
    (``semclip eval ...``: the ``eval`` parser, 2)."""
    depth = 0
    while True:
        subs = _subparsers(parser)
        if not subs or depth >= len(argv) or argv[depth] not in subs:
            return parser, depth
        parser = subs[argv[depth]]
        depth += 1


def config_argv(parser: argparse.ArgumentParser, path: str) -> List[str]:
    """The options of the TOML file ``path`` as command-line words for ``parser``.

    Keys are the command's option names without the dashes (``snr-db``; ``snr_db`` works too). A value is
    written as on the command line: a string or number as it is, a list as its elements (options that take
    several values) or joined by commas (``snr-db = [0, 5, 10]`` -> ``--snr-db=0,5,10``), a boolean
    switches a flag on (``true``) or, for ``--x/--no-x`` flags, off. Unknown keys (``plugin`` too: code is
    loaded only from the command line), positional arguments, a list for an option that names a file or
    folder, nested values, a file that is not a regular file, larger than :data:`MAX_CONFIG_BYTES`, not UTF-8
    or nested too deeply are refused, naming them (``ValueError``).
    A relative path is taken from the config file's folder, not the working directory: always for the
    options of :data:`CONFIG_PATH_OPTIONS` (``out``, ``items``, ``data``, ``images``, ...), and for those of
    :data:`CONFIG_NAME_OR_PATH_OPTIONS` (``source``, checkpoints) when a file or folder of that name is there.

    Examples
    --------
    >>> import tempfile
    >>> path = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    >>> _ = path.write('snr-db = [0, 5, 10]' + chr(10) + 'code = "hamming74"' + chr(10)); path.close()
    >>> parser = build_parser()._subparsers._group_actions[0].choices["ber"]
    >>> config_argv(parser, path.name)
    ['--snr-db=0,5,10', '--code=hamming74']
    """
    try:
        import tomllib
    except ImportError:  # Python 3.10: the same parser as the tomli package
        try:
            import tomli as tomllib
        except ImportError:
            raise ValueError("--config needs Python 3.11+ (tomllib) or, on Python 3.10, the tomli package "
                             "(pip install tomli)") from None
    text = read_user_file(os.path.expanduser(path), name=f"--config {path!r}", expected="a TOML file of options",
                          limit=MAX_CONFIG_BYTES)
    try:
        table = tomllib.loads(text)
    except RecursionError:
        raise ValueError(f"--config {path!r} nests too deeply; expected a flat TOML file of options") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"--config {path!r} is not valid TOML: {exc}") from None
    refused = ("config", "help", "version", "plugin")
    by_name: Dict[str, Tuple[argparse.Action, str]] = {}
    for action in parser._actions:
        for opt in action.option_strings:
            if opt.startswith("--"):
                by_name.setdefault(opt[2:], (action, opt))
                by_name.setdefault(opt[2:].replace("-", "_"), (action, opt))
    unknown = [k for k in table if k not in by_name or by_name[k][1][2:] in refused]
    if unknown:
        known = sorted({o[2:] for a in parser._actions for o in a.option_strings
                        if o.startswith("--") and o[2:] not in refused})
        why = " (plug-ins load only from the command line: --plugin)" if any(
            k in by_name and by_name[k][1] == "--plugin" for k in unknown) else ""
        raise ValueError(f"--config {path!r}: unknown option(s) {', '.join(map(repr, unknown))} for "
                         f"'{parser.prog}'{why}; its options: {', '.join(known)}")
    words: List[str] = []
    base = os.path.dirname(os.path.abspath(os.path.expanduser(path)))
    for key, value in table.items():
        action, opt = by_name[key]
        value = [_config_path(base, opt[2:], v) for v in value] if isinstance(value, list) else \
            _config_path(base, opt[2:], value)
        if isinstance(value, dict):
            raise ValueError(f"--config {path!r}: {key!r} is a table; expected a value")
        if isinstance(value, list) and any(isinstance(v, (list, dict)) for v in value):
            raise ValueError(f"--config {path!r}: {key!r} holds nested lists or tables; expected a value or a list "
                             "of values")
        if isinstance(value, list) and _names_a_path(action) and not (
                action.nargs in ("+", "*") or isinstance(action.nargs, int) or isinstance(action, argparse._AppendAction)):
            raise ValueError(f"--config {path!r}: {key!r} names one file or folder; expected a string, got a list "
                             f"{value!r}")
        if action.nargs == 0:  # a flag
            if not isinstance(value, bool):
                raise ValueError(f"--config {path!r}: {key!r} is a flag; expected true or false, got {value!r}")
            if isinstance(action, argparse.BooleanOptionalAction):
                words.append(opt if value else "--no-" + opt[2:])
            elif value:
                words.append(opt)
            continue
        if isinstance(value, bool):
            value = str(value).lower()
        if isinstance(value, list):
            items = [str(v) for v in value]
            if action.nargs in ("+", "*") or isinstance(action.nargs, int):
                words += [opt] + items
            elif isinstance(action, argparse._AppendAction):
                for item in items:
                    words.append(f"{opt}={item}")
            else:
                words.append(f"{opt}={','.join(items)}")
        else:
            words.append(f"{opt}={value}")
    return words


def _names_a_path(action: argparse.Action) -> bool:
    """Whether the option's value is a file or folder (``--out``, ``--data``, a checkpoint, a cache, ...)."""
    text = " ".join(str(x) for x in (action.dest, action.metavar or "", action.help or "")).lower()
    return action.dest == "out" or any(w in text for w in ("file", "folder", "directory", "dir", "path",
                                                            "checkpoint", "cache"))


def expand_config(parser: argparse.ArgumentParser, argv: List[str]) -> List[str]:
    """``argv`` with ``--config FILE`` replaced by the file's options, placed before the command line's own
    options so that those override them (the last occurrence of an option wins).

    Examples
    --------
    >>> import tempfile
    >>> path = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    >>> _ = path.write('code = "hamming74"' + chr(10)); path.close()
    >>> parser = build_parser()._subparsers._group_actions[0].choices["ber"]
    >>> expand_config(parser, ["--config", path.name, "--k", "4"])     # the command line's options come last
    ['--code=hamming74', '--k', '4']
    """
    if "--config" not in argv and not any(a.startswith("--config=") for a in argv):
        return list(argv)
    inner, depth = _innermost(parser, argv)
    rest, path, i = [], None, depth
    while i < len(argv):
        a = argv[i]
        given = None
        if a == "--config" and i + 1 < len(argv):
            given, i = argv[i + 1], i + 2
        elif a.startswith("--config="):
            given, i = a.split("=", 1)[1], i + 1
        else:
            rest.append(a)
            i += 1
            continue
        if path is not None:
            raise ValueError(f"--config given twice ({path!r} and {given!r}); give one file (a later file would "
                             "silently replace the first)")
        path = given
    if path is None:
        return list(argv)
    return list(argv[:depth]) + config_argv(inner, path) + rest


def error_line(prog: str, exc: BaseException) -> str:
    """``"<prog>: error: <message>"`` on one line (newlines of the message folded into spaces).

    Examples
    --------
    >>> error_line("semcom ber", ValueError("bad" + chr(10) + "value"))
    'semcom ber: error: bad value'
    """
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError) and exc.filename and \
            str(exc.filename) not in text:
        text += f": {exc.filename}"
    return f"{prog}: error: {text}"


def check_out_dir(path, option: str = "--out") -> None:
    """``ValueError`` unless ``path`` is (or can become) a writable folder: not a file, no file on the
    way to it, not read-only. Creates nothing (a refused command leaves no folder behind).

    Examples
    --------
    >>> import os, tempfile
    >>> check_out_dir(os.path.join(tempfile.mkdtemp(), "new", "run"))    # may be created later: fine
    >>> f = tempfile.NamedTemporaryFile(delete=False)
    >>> check_out_dir(f.name)
    Traceback (most recent call last):
    ...
    ValueError: --out ...
    """
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ValueError(f"{option} must name a folder, got {path!r}")
    p = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if os.path.exists(p):
        if not os.path.isdir(p):
            raise ValueError(f"{option} {os.fspath(path)!r} is a file; expected a folder (a new or an existing one)")
        target = p
    else:
        target = os.path.dirname(p)
        while not os.path.exists(target):
            target = os.path.dirname(target)
        if not os.path.isdir(target):
            raise ValueError(f"{option} {os.fspath(path)!r} lies under the file {target!r}; expected a folder")
    if not os.access(target, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {os.fspath(path)!r}: the folder {target!r} is read-only; expected a writable one")


def _check_common_options(args: argparse.Namespace) -> None:
    """Checks every command shares: the output folder and a Ray cluster address."""
    if isinstance(getattr(args, "out", None), (str, os.PathLike)) and not getattr(args, "_out_is_file", False):
        check_out_dir(args.out)
    if getattr(args, "address", None) is not None and getattr(args, "executor", "ray") != "local":
        from experiments.core.executors import check_ray_address

        check_ray_address(args.address)


def _top_missing(path: str) -> Optional[str]:
    """The outermost folder of ``path`` (itself included) that does not exist yet, or ``None``."""
    top = None
    while path and not os.path.exists(path):
        top, parent = path, os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return top


def _unfinished(path: str) -> bool:
    """Whether the folder ``path`` holds no finished work: only manifests, settings records, result CSVs
    without a row and folders of the same (what a run refused before its first result writes)."""
    from experiments.core.results import _holds_results

    for entry in os.scandir(path):
        if entry.is_symlink():
            return False
        if entry.is_dir():
            if not _unfinished(entry.path):
                return False
        elif not (entry.name == "manifest.json" or entry.name.endswith("settings.json")
                  or (entry.name.endswith(".csv") and not _holds_results(entry.path))):
            return False
    return True


@contextlib.contextmanager
def results_folder_lock(args: argparse.Namespace):
    """Hold the writer lock of the command's ``--out`` folder inside the block
    (:func:`phy.sim.resultstore.folder_lock`: a second run into the same folder stops at once with exit
    status 2, naming the holder's PID). The block gets a dict; setting ``"ok"`` in it keeps what the command
    wrote. A folder the lock created is removed again when nothing was written to it, or when the command
    failed (``"ok"`` not set) before finishing any result (:func:`_unfinished`), so a refused run leaves no
    folder behind. Nothing is locked for a command without an output folder, an ``--out`` that names a file
    (``plot``) or a secondary rank of a ``torchrun`` group (rank 0 writes).

    Examples
    --------
    >>> import os, tempfile
    >>> out = os.path.join(tempfile.mkdtemp(), "run")
    >>> with results_folder_lock(argparse.Namespace(out=out)) as status:
    ...     os.path.isdir(out)
    True
    >>> os.path.exists(out)                 # nothing was written: the folder is gone again
    False
    """
    out = getattr(args, "out", None)
    world = os.environ.get("WORLD_SIZE", "1")
    secondary = world.isdigit() and int(world) > 1 and os.environ.get("RANK", "0") not in ("", "0")
    status = {"ok": False}
    if not isinstance(out, (str, os.PathLike)) or not os.fspath(out) or getattr(args, "_out_is_file", False) \
            or secondary:
        yield status
        return
    from phy.sim.resultstore import folder_lock

    path = os.path.abspath(os.fspath(out))
    created = _top_missing(path)
    try:
        with folder_lock(path):
            yield status
    except KeyboardInterrupt:  # interrupted, not refused: the folder (its manifest says so) is kept
        status["ok"] = True
        raise
    finally:
        if created is not None and not status["ok"] and os.path.isdir(path) and _unfinished(path):
            import shutil

            shutil.rmtree(path, ignore_errors=True)  # a failed run that finished nothing: no partial folder
        if created is not None:  # remove what the lock made, innermost first, where nothing was written
            cur = path
            while True:
                try:
                    os.rmdir(cur)
                except FileNotFoundError:
                    pass
                except OSError:
                    break
                if cur == created:
                    break
                cur = os.path.dirname(cur)


@contextlib.contextmanager
def sigterm_interrupts():
    """Within the block, SIGTERM raises ``KeyboardInterrupt`` in the main thread, as Ctrl-C does: a run stops at
    the next return to the interpreter (compiled loops work in bounded slices), writes its manifest as
    ``interrupted`` and releases its folder, whose finished rows a rerun resumes. The previous handler is
    restored on exit; outside the main thread nothing changes.

    Examples
    --------
    >>> import signal
    >>> with sigterm_interrupts():
    ...     signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    True
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    old = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def progress_bars_off(off: bool = True):
    """Within the block, no Hugging Face progress bars (transformers' "Loading weights", hub downloads):
    ``--no-progress`` means none at all. Restores the previous state on exit.

    Examples
    --------
    >>> from huggingface_hub import utils as hub_utils
    >>> with progress_bars_off():
    ...     hub_utils.are_progress_bars_disabled()
    True
    """
    if not off:
        yield
        return
    old_env = os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS")
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # for the libraries imported inside the block
    undo = []
    try:
        from huggingface_hub import utils as hub_utils

        if not hub_utils.are_progress_bars_disabled():
            hub_utils.disable_progress_bars()
            undo.append(hub_utils.enable_progress_bars)
    except ImportError:
        pass
    if "transformers" in sys.modules:  # read the setting at import: switch it off directly
        from transformers.utils import logging as tf_logging

        if tf_logging.is_progress_bar_enabled():
            tf_logging.disable_progress_bar()
            undo.append(tf_logging.enable_progress_bar)
    try:
        yield
    finally:
        for fn in undo:
            fn()
        if old_env is None:
            os.environ.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
        else:
            os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = old_env


def join_negative_values(argv: List[str]) -> List[str]:
    """``--snr-db -5:10:2.5`` -> ``--snr-db=-5:10:2.5``: argparse takes a value that starts with ``-``
    and is not a plain number for an option, so every ``--*snr*`` option gets its value attached.

    Examples
    --------
    >>> join_negative_values(["ber", "--snr-db", "-5:10:2.5", "--snr-train-range", "-10,10", "--k", "4"])
    ['ber', '--snr-db=-5:10:2.5', '--snr-train-range=-10,10', '--k', '4']
    """
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if (a.startswith("--") and "=" not in a and "snr" in a and nxt is not None and len(nxt) > 1
                and nxt[0] == "-" and (nxt[1].isdigit() or nxt[1] == ".")):
            out.append(f"{a}={nxt}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def main(argv: Optional[List[str]] = None) -> int:
    """The ``semcom`` entry point: parse ``argv`` (default ``sys.argv[1:]``; ``--config FILE`` and ``--plugin``
    expanded first), run the sub-command and return its exit status. Bad input (:data:`USER_ERRORS`) is
    reported as one ``semcom CMD: error: ...`` line on stderr with status 2.

    Examples
    --------
    >>> main(["channel", "--channel", "rayleigh(block_length=0)"])   # refused: reported on stderr, status 2
    2
    """
    from experiments.core.plugins import load_all, pop_plugin_args

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()  # imports the commands, which add their registries' entry-point groups
    try:  # then the plug-ins: what they register is known to every command's checks
        plugins, argv = pop_plugin_args(argv)
        load_all(plugins)
    except ValueError as exc:
        if os.environ.get("SEMCOM_TRACEBACK"):
            raise
        print(error_line("semcom", exc), file=sys.stderr)
        return 2
    try:
        argv = expand_config(parser, join_negative_values(argv))
    except ValueError as exc:
        inner, depth = _innermost(parser, argv)
        print(error_line(" ".join(["semcom"] + argv[:depth]), exc), file=sys.stderr)
        return 2
    args = parser.parse_args(argv)  # a refused option: one line and SystemExit(2)
    if not getattr(args, "_main", None):
        parser.print_help()
        return 0
    # the command line, config expanded and plug-ins kept: manifest.json's ``semcom_argv`` (``semcom rerun``)
    args._argv = argv + [f"--plugin={p}" for p in plugins]
    args._plugins = list(plugins)  # what this command line loaded (``semcom rerun`` loads nothing else)
    quiet = bool(getattr(args, "no_progress", False)) or getattr(args, "progress", None) is False
    prog = " ".join(["semcom", args.command] + ([args.action] if isinstance(getattr(args, "action", None), str)
                                                 else []))
    try:
        _check_common_options(args)
        from experiments.core.plugins import command_plugins

        with sigterm_interrupts(), command_plugins(plugins), results_folder_lock(args) as folder, \
                progress_bars_off(quiet):
            rc = int(args._main(args) or 0)
            folder["ok"] = rc == 0
            return rc
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the finished rows stay; the same command resumes
        if os.environ.get("SEMCOM_TRACEBACK"):
            raise
        term = str(exc) == "SIGTERM"
        print(f"{prog}: interrupted ({'SIGTERM' if term else 'Ctrl-C'}); the results written so far are kept and "
              "the same command resumes them", file=sys.stderr)
        return 143 if term else 130
    except ModuleNotFoundError as exc:  # an optional package (an extra) that is not installed
        from experiments.core.extras import MissingExtraError, missing_extra_message

        text = str(exc) if isinstance(exc, MissingExtraError) else (
            missing_extra_message(exc.name, args.command) if exc.name else None)
        if text is None or os.environ.get("SEMCOM_TRACEBACK"):
            raise
        print(error_line(prog, ValueError(text)), file=sys.stderr)
        return 2
    except USER_ERRORS as exc:
        if os.environ.get("SEMCOM_TRACEBACK"):
            raise
        print(error_line(prog, exc), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
