"""``semcom reproduce``: each figure and table of the VLF-MSC and SemCLIP papers as one command.

A result is a JSON file in ``experiments/configs/`` (one per figure or table): every setting of that result
(SNRs, L values, systems, seeds, training budgets: the paper's where it states them, the package's choices
otherwise, which its notes name with their reasons), the datasets it reads (paths relative to ``--data``), the
checkpoints it loads, and the ``semcom`` commands that produce it, in order (training, then the evaluation that
writes the CSVs and the figure).

Example
-------
``semcom reproduce --list``;
``semcom reproduce semclip-table1 --data ~/datasets --out runs/paper`` (``--dry-run`` prints the
commands only). Before any command runs, every dataset and checkpoint the result needs is checked, and
a missing one fails at once (exit code 2) with a message naming each missing input and how to provide
it. Every command is resumable, so a rerun of ``reproduce`` continues where it stopped; commands write
into ``OUT/<step>``, and results that share a step (e.g. ``semclip-fig3`` and ``semclip-table1``: one
``semclip-eval`` folder) share its models and rows.

Config format
-------------
``{"name", "paper", "result", "data": {KEY: {"path", "what", "how"}}, "models": {KEY: {"kind",
"value", "what", "how", ...}}, "steps": [{"name", "command", "args": [...]}], "outputs": [...],
"notes": [...], "smoke": {...}}``. In ``args``: ``{data:KEY}`` is the dataset's path (``--data ROOT`` joined with its
``path``, or ``--data-path KEY=PATH``), ``{model:KEY}`` the checkpoint (``--model KEY=VALUE``
overrides it; a ``"trained"`` model is the latest checkpoint of its training step, which is skipped
when the model is given), ``{step:NAME}`` the output folder of a step, ``{out}`` the output root (other
braces, such as the ``{L}`` of a ``semclip-eval`` path template, are left to the command). Model kinds: ``hf`` (a hub id
in the local Hugging Face cache, or a folder), ``open_clip`` (an open_clip name + ``pretrained`` tag
in the cache, or ``local-dir:PATH``), ``path`` (a file or folder that must exist),
``lpips-alexnet`` (torchvision's AlexNet weights in the torch hub cache), ``trained`` (the latest
``checkpoint-<step>`` of its training step, or with ``"path"`` that folder of the step's output). A model is
checked when a step names it, or always with ``"required": true`` (inputs a command finds by itself,
such as the LPIPS weights); with ``"unless": ["--option", ...]`` it is not checked when a step carries
one of those options (the command then checks what they name). ``open_clip_weights``: an open_clip
``pretrained`` tag (``"arch"`` names the model) or a weights file.

``notes`` say where each setting comes from: the paper, or the package (with the reason). A value a note
quotes is written ``{STEP:--option}`` and filled in from that step's arguments when the config is loaded
(:func:`render_notes`), so a note cannot name a value the config does not use.

``smoke`` (``semcom reproduce NAME --smoke``): for each dataset and checkpoint a recipe of
:mod:`experiments.core.smoke` (generated images, tiny models) and the ``--set`` options that shrink every
step; the run checks the whole pipeline in about a minute on two cores (its numbers mean nothing).

``--set [SCOPE:]OPTION[=VALUE]`` changes an option of every step (``SCOPE``: a step name or a
command): the value replaces the config's, an option no step has is added to the steps whose command
takes it; an option no step in scope takes is an error, a scope the result does not have is ignored (so
one list of ``--set`` serves several results). The tests use it to run every result end to end with tiny
models and data.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

__all__ = ["CONFIG_DIR", "ReproConfig", "list_configs", "load_config", "plan", "check_inputs", "add_arguments",
           "main", "render_notes", "step_option"]

#: The folder of the packaged result configs (``experiments/configs/*.json``).
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
MODEL_KINDS = ("hf", "open_clip", "open_clip_weights", "path", "lpips-alexnet", "trained")
_PLACEHOLDER = re.compile(r"\{(data|model|step):([A-Za-z0-9_.-]+)\}")
_NOTE_VALUE = re.compile(r"\{([A-Za-z0-9_.-]+):(--[A-Za-z0-9-]+)\}")
PROG = "semcom reproduce"


@dataclass
class ReproConfig:
    """One paper result: its inputs and the commands that produce it (see the module docstring).

    Examples
    --------
    >>> cfg = load_config("semclip-table1")
    >>> cfg.name, cfg.paper, "imagenet-val" in cfg.data
    ('semclip-table1', 'SemCLIP', True)
    """

    name: str
    paper: str
    result: str
    steps: List[Dict[str, Any]]
    data: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    models: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    outputs: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    smoke: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Dict[str, Any], source: str = "config") -> "ReproConfig":
        if not isinstance(d, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(d).__name__}")
        names = {"name", "paper", "result", "steps", "data", "models", "outputs", "notes", "smoke"}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"{source}: unknown keys {unknown} (expected {sorted(names)})")
        for k in ("name", "paper", "result", "steps"):
            if k not in d:
                raise ValueError(f"{source}: missing key {k!r}")
        cfg = cls(**d)
        from experiments.cli import SUBCOMMANDS

        seen = set()
        for i, st in enumerate(cfg.steps):
            if not isinstance(st, dict) or set(st) != {"name", "command", "args"}:
                raise ValueError(f"{source}: steps[{i}] must have exactly the keys name, command, args, got {st!r}")
            if st["command"] not in SUBCOMMANDS or st["command"] == "reproduce":
                raise ValueError(f"{source}: steps[{i}].command must be a semcom command, got {st['command']!r}")
            if st["name"] in seen:
                raise ValueError(f"{source}: two steps named {st['name']!r}")
            seen.add(st["name"])
            if not all(isinstance(a, str) for a in st["args"]):
                raise ValueError(f"{source}: steps[{i}].args must be a list of strings")
        for key, m in cfg.models.items():
            if m.get("kind") not in MODEL_KINDS:
                raise ValueError(f"{source}: models.{key}.kind must be one of {MODEL_KINDS}, got {m.get('kind')!r}")
            if m["kind"] == "trained" and m.get("step") not in seen:
                raise ValueError(f"{source}: models.{key} is trained by step {m.get('step')!r}, which is not a step")
            if "path" in m and (m["kind"] != "trained" or not isinstance(m["path"], str) or not m["path"]):
                raise ValueError(f"{source}: models.{key}.path (a folder inside its step's output) needs kind "
                                 f"'trained' and a non-empty string, got {m.get('path')!r}")
        for key, dd in cfg.data.items():
            if "path" not in dd:
                raise ValueError(f"{source}: data.{key} needs a 'path' (relative to --data)")
        if cfg.smoke:
            from experiments.core.smoke import check_smoke_section

            check_smoke_section(cfg.smoke, list(cfg.data), list(cfg.models), source)
        for i, st in enumerate(cfg.steps):
            for a in st["args"]:
                for kind, key in _PLACEHOLDER.findall(a):
                    table = {"data": cfg.data, "model": cfg.models, "step": seen}[kind]
                    if key not in table:
                        raise ValueError(f"{source}: steps[{i}] uses {{{kind}:{key}}}, which the config does not "
                                         "define")
        render_notes(cfg, source)  # every quoted value resolves
        return cfg


def step_option(cfg: "ReproConfig", step: str, option: str) -> Optional[str]:
    """The value ``option`` has in the arguments of step ``step`` of ``cfg`` as written in the config (its last
    occurrence; ``--opt v`` or ``--opt=v``), ``""`` for a flag, ``None`` when the step does not carry it.

    Examples
    --------
    >>> cfg = load_config("semclip-table1")
    >>> step_option(cfg, "semclip-eval", "--tapl-steps"), step_option(cfg, "semclip-eval", "--no-linear-skip")
    ('5000', '')
    """
    st = next((s for s in cfg.steps if s["name"] == step), None)
    if st is None:
        raise ValueError(f"{cfg.name}: no step named {step!r} (it has {[s['name'] for s in cfg.steps]})")
    args, value = st["args"], None
    for i, a in enumerate(args):
        if a == option:
            value = args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("--") else ""
        elif a.startswith(option + "="):
            value = a.split("=", 1)[1]
    return value


def render_notes(cfg: "ReproConfig", source: str = "config") -> List[str]:
    """``cfg.notes`` with every ``{STEP:--option}`` replaced by that step's value of the option (a
    ``ValueError`` names a note that quotes a step or option the config does not have, or a flag).

    Examples
    --------
    >>> any("5000 steps" in note for note in render_notes(load_config("semclip-table1")))
    True
    """
    def value(m: "re.Match") -> str:
        try:
            v = step_option(cfg, m.group(1), m.group(2))
        except ValueError as exc:
            raise ValueError(f"{source}: a note quotes {m.group(0)}: {exc}") from None
        if not v:
            raise ValueError(f"{source}: a note quotes {m.group(0)}, which step {m.group(1)!r} "
                             + ("does not carry" if v is None else "carries as a flag (no value)"))
        return v

    return [_NOTE_VALUE.sub(value, note) for note in cfg.notes]


def list_configs(config_dir: Path = CONFIG_DIR) -> List[str]:
    """Names of the results in ``config_dir`` (file names without ``.json``), sorted.

    Examples
    --------
    >>> names = list_configs()
    >>> "semclip-table1" in names, names == sorted(names)
    (True, True)
    """
    return sorted(p.stem for p in Path(config_dir).glob("*.json"))


def load_config(name: str, config_dir: Path = CONFIG_DIR) -> ReproConfig:
    """The result ``name`` (``semclip-table1``), or a JSON file given by its path.

    Examples
    --------
    >>> load_config("semclip-table1").steps[0]["name"]
    'semclip-eval'
    >>> load_config("no-such-result")
    Traceback (most recent call last):
    ...
    ValueError: ...
    """
    path = Path(name)
    if not (path.suffix == ".json" and path.is_file()):
        path = Path(config_dir) / f"{name}.json"
        if not path.is_file():
            raise ValueError(f"no result named {name!r}; `semcom reproduce --list` names them: "
                             f"{', '.join(list_configs(config_dir))}")
    cfg = ReproConfig.from_dict(json.loads(path.read_text()), str(path))
    if path.parent == Path(config_dir) and cfg.name != path.stem:
        raise ValueError(f"{path}: name {cfg.name!r} differs from the file name {path.stem!r}")
    return cfg


# ------------------------------------------------------------------------------------------------
# planning: overrides, placeholders
# ------------------------------------------------------------------------------------------------
_PARSERS: Dict[str, argparse.ArgumentParser] = {}


def _command_parser(command: str) -> argparse.ArgumentParser:
    import importlib

    from experiments.cli import SUBCOMMANDS

    if command not in _PARSERS:
        p = argparse.ArgumentParser(prog=f"semcom {command}", add_help=False)
        importlib.import_module(SUBCOMMANDS[command][0]).add_arguments(p)
        _PARSERS[command] = p
    return _PARSERS[command]


def _step_parser(command: str, args: Sequence[str]) -> argparse.ArgumentParser:
    """The parser of a step: the command's, or its sub-action's (``semclip train-djscc ...``)."""
    p = _command_parser(command)
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction) and args and args[0] in action.choices:
            return action.choices[args[0]]
    return p


def _takes_value(command: str, option: str, args: Sequence[str] = ()) -> Optional[bool]:
    """Whether ``option`` of the step ``command args`` takes a value (None: the step has no such option)."""
    action = _step_parser(command, args)._option_string_actions.get(option)
    return None if action is None else action.nargs != 0


def _parse_set(text: str) -> Tuple[Optional[str], str, Optional[str]]:
    scope = None
    if ":" in text.split("=", 1)[0]:
        scope, text = text.split(":", 1)
    opt, _, value = text.partition("=")
    opt = opt if opt.startswith("-") else f"--{opt}"
    if opt == "--" or not opt[2:]:
        raise ValueError(f"--set takes [SCOPE:]OPTION[=VALUE], got {text!r}")
    return scope, opt, (value if "=" in text else None)


def _apply_sets(steps: List[Dict[str, Any]], sets: Sequence[str]) -> List[Dict[str, Any]]:
    steps = [dict(st, args=list(st["args"])) for st in steps]
    for text in sets:
        scope, opt, value = _parse_set(text)
        used = False
        for st in steps:
            if scope is not None and scope not in (st["name"], st["command"]):
                continue
            takes = _takes_value(st["command"], opt, st["args"])
            if takes is None:
                continue
            if takes and value is None:
                raise ValueError(f"--set {text}: {opt} of `semcom {st['command']}` takes a value ({opt}=VALUE)")
            if not takes and value is not None:
                raise ValueError(f"--set {text}: {opt} of `semcom {st['command']}` is a flag; write it without =VALUE")
            args = st["args"]
            hits = [i for i, a in enumerate(args) if a == opt or a.startswith(opt + "=")]
            if hits:
                for i in reversed(hits):
                    if args[i] == opt and takes:
                        args[i + 1] = value
                    elif takes:
                        args[i] = f"{opt}={value}"
            else:
                args += [f"{opt}={value}"] if takes else [opt]
            used = True
        in_scope = scope is None or any(scope in (st["name"], st["command"]) for st in steps)
        if not used and in_scope:  # a scope this result does not have is not an error (shared --set lists)
            raise ValueError(f"--set {text}: no step{f' {scope!r}' if scope else ''} of this result takes {opt}")
    return steps


def _resolve_data(cfg: ReproConfig, root: Optional[str], overrides: Dict[str, str]) -> Dict[str, Optional[Path]]:
    out = {}
    for key, d in cfg.data.items():
        if key in overrides:
            out[key] = Path(overrides[key]).expanduser()
        elif root is not None:
            out[key] = Path(root).expanduser() / d["path"]
        else:
            out[key] = None
    return out


def _step_out(out: Path, name: str) -> Path:
    return out / name


def plan(cfg: ReproConfig, out: str, data_root: Optional[str] = None, data_paths: Optional[Dict[str, str]] = None,
         models: Optional[Dict[str, str]] = None, sets: Sequence[str] = ()) -> Dict[str, Any]:
    """The steps to run, with every option applied and every placeholder but trained models resolved.

    Returns ``{"steps": [{"name", "command", "argv", "skipped"}], "data": {KEY: Path|None}, "models":
    {KEY: value}, "used": {"data": set, "model": set}}``. A step that trains a model given with
    ``--model`` is marked ``skipped``.

    Examples
    --------
    >>> planned = plan(load_config("semclip-table1"), out="runs/table1")
    >>> [(s["name"], s["command"], s["skipped"]) for s in planned["steps"]]
    [('semclip-eval', 'semclip-eval', False)]
    """
    data_paths, models = dict(data_paths or {}), dict(models or {})
    for kind, given, table in (("--data-path", data_paths, cfg.data), ("--model", models, cfg.models)):
        bad = sorted(set(given) - set(table))
        if bad:
            raise ValueError(f"{kind} {', '.join(bad)}: not an input of {cfg.name} (it has {sorted(table)})")
    outp = Path(out)
    data = _resolve_data(cfg, data_root, data_paths)
    values = {k: models.get(k, m.get("value")) for k, m in cfg.models.items()}
    skip = {cfg.models[k]["step"] for k in models if cfg.models[k]["kind"] == "trained"}
    steps = _apply_sets(cfg.steps, sets)
    used: Dict[str, set] = {"data": set(), "model": set()}
    planned = []
    for st in steps:
        if st["name"] in skip:
            planned.append({"name": st["name"], "command": st["command"], "argv": [], "skipped": True})
            continue

        def sub(m):
            kind, key = m.group(1), m.group(2)
            if kind == "step":
                return str(_step_out(outp, key))
            used[kind].add(key)
            if kind == "data":
                return str(data[key]) if data[key] is not None else f"<{key}: missing>"
            if cfg.models[key]["kind"] == "trained" and key not in models:
                return m.group(0)  # the latest checkpoint of its step, known once that step has run
            return str(values[key])

        planned.append({"name": st["name"], "command": st["command"], "skipped": False,
                        "argv": [st["command"]] + [_PLACEHOLDER.sub(sub, a).replace("{out}", str(outp))
                                                   for a in st["args"]]})
    return {"steps": planned, "data": data, "models": values, "used": used, "given_models": set(models)}


# ------------------------------------------------------------------------------------------------
# input checks
# ------------------------------------------------------------------------------------------------
def _open_clip_cached(arch: str, tag: str) -> bool:
    """Whether open_clip's ``arch`` / ``tag`` weights are in the local Hugging Face cache."""
    import semantic  # noqa: F401  (torchvision shim before open_clip)
    from semantic.clip_tokens import CLIPWeightsUnavailableError, _resolve_tag

    try:
        path, _ = _resolve_tag(arch, tag, None)
    except CLIPWeightsUnavailableError:
        return False
    return bool(path)


def _model_problem(key: str, m: Dict[str, Any], value: Any, given: bool) -> Optional[str]:
    """Why checkpoint ``key`` is not available (None if it is)."""
    kind = m["kind"]
    try:
        if kind == "trained":
            if given and not Path(str(value)).expanduser().exists():
                return f"not found at {value}"
            return None
        if kind == "path" or (kind == "hf" and Path(str(value)).expanduser().exists()):
            return None if value and Path(str(value)).expanduser().exists() else f"not found at {value}"
        if kind == "hf":
            from semantic.checkpoints import CheckpointNotFoundError, resolve_checkpoint

            try:
                resolve_checkpoint(str(value), what=m.get("what"), allow_download=False)
            except CheckpointNotFoundError:
                return f"{value} is neither a folder nor in the Hugging Face cache"
            return None
        if kind == "open_clip":
            v = str(value)
            if v.startswith("local-dir:"):
                return None if Path(v[len("local-dir:"):]).expanduser().is_dir() else f"no folder {v}"
            pre = m.get("pretrained", "openai")
            ok = Path(str(pre)).expanduser().is_file() or _open_clip_cached(v, pre)
            return None if ok else f"open_clip {v} / {pre} is not in the Hugging Face cache"
        if kind == "open_clip_weights":
            v, arch = str(value), m.get("arch", "")
            ok = Path(v).expanduser().is_file() or _open_clip_cached(arch, v)
            return None if ok else f"open_clip {arch} / {v} is neither a file nor in the Hugging Face cache"
        if kind == "lpips-alexnet":
            import semantic  # noqa: F401
            from semantic.metrics import alexnet_cache_file

            p = Path(str(value)).expanduser() if value else alexnet_cache_file()
            return None if p.is_file() else f"AlexNet weights not found at {p}"
    except Exception as exc:  # a checker that cannot run is a missing input, named
        if isinstance(exc, ModuleNotFoundError) and exc.name:  # an extra not installed: say which, and how
            from experiments.core.extras import missing_extra_message

            text = missing_extra_message(exc.name, "reproduce")
            if text:
                return text
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


def check_inputs(cfg: ReproConfig, planned: Dict[str, Any]) -> List[str]:
    """One message per missing dataset or checkpoint the planned steps use (empty: all present).

    Examples
    --------
    >>> cfg = load_config("semclip-table1")
    >>> missing = check_inputs(cfg, plan(cfg, out="runs/table1"))      # no --data given: datasets missing
    >>> missing[0].split(":")[0]
    "dataset 'imagenet-train' (ImageNet-1k training set, one folder per class (same class folders as val))"
    """
    argv = [a for st in planned["steps"] for a in st["argv"]]
    problems = []
    for key in sorted(planned["used"]["data"]):
        d, p = cfg.data[key], planned["data"][key]
        if p is None:
            problems.append(f"dataset {key!r} ({d.get('what', '')}): no --data ROOT (expected at ROOT/{d['path']}) "
                            f"and no --data-path {key}=PATH; how: {d.get('how', 'see the config')}")
        elif not p.exists():
            problems.append(f"dataset {key!r} ({d.get('what', '')}): not found at {p}; how: "
                            f"{d.get('how', 'see the config')} (or --data-path {key}=PATH)")
    required = {k for k, m in cfg.models.items() if m.get("required")}
    for key in sorted(planned["used"]["model"] | required):
        m = cfg.models[key]
        unless = m.get("unless") or []
        unless = [unless] if isinstance(unless, str) else unless
        if any(a == u or a.startswith(u + "=") for u in unless for a in argv):
            continue
        why = _model_problem(key, m, planned["models"][key], key in planned["given_models"])
        if why:
            problems.append(f"checkpoint {key!r} ({m.get('what', '')}): {why}; how: {m.get('how', 'see the config')} "
                            f"(or --model {key}=VALUE)")
    return problems


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------
def _pairs(items: Sequence[str], option: str) -> Dict[str, str]:
    out = {}
    for it in items or ():
        key, sep, value = it.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"{option} takes KEY=VALUE, got {it!r}")
        out[key] = value
    return out


def _smoke_inputs(cfg: ReproConfig, out: Path, data_paths: Dict[str, str], models: Dict[str, str],
                  sets: Sequence[str], dry_run: bool) -> Tuple[Dict[str, str], Dict[str, str], List[str]]:
    """The smoke run's inputs (built in ``OUT/smoke-inputs``; given ``--data-path`` / ``--model`` win) and its
    ``--set`` list (the config's smoke settings, then the given ones)."""
    if not cfg.smoke:
        raise ValueError(f"{cfg.name} has no smoke section: it cannot run with --smoke")
    if dry_run:  # nothing is built: the plan shows where the inputs would be
        folder = out / "smoke-inputs"
        d = {k: str(folder / "data" / k) for k in cfg.smoke.get("data", {})}
        m = {k: str(folder / "models" / k) for k in cfg.smoke.get("models", {})}
        s = [t.replace("{smoke}", str(folder)) for t in cfg.smoke.get("set", [])]
    else:
        import torch

        from experiments.core.smoke import prepare

        # tiny models gain nothing from threads, and on busy cores spin-waiting threads cost 10-100x
        torch.set_num_threads(1)
        try:
            d, m, s = prepare(cfg.smoke, out / "smoke-inputs")
        except ModuleNotFoundError as exc:  # an extra not installed: say which, and how
            from experiments.core.extras import missing_extra_message

            raise ValueError(missing_extra_message(exc.name or "", "reproduce") or str(exc)) from None
    return {**d, **data_paths}, {**m, **models}, list(s) + list(sets)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``semcom reproduce`` to ``parser`` (``semcom reproduce --help`` lists them).

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["--list"])
    >>> args.list
    True
    """
    parser.add_argument("name", nargs="?", help="the result to reproduce (see --list), or a config JSON file")
    parser.add_argument("--list", action="store_true", help="list the results, one line each")
    parser.add_argument("--data", default=None, help="root folder under which the datasets' relative paths are found")
    parser.add_argument("--data-path", action="append", default=[], metavar="KEY=PATH",
                        help="the path of one dataset (overrides --data for it)")
    parser.add_argument("--model", action="append", default=[], metavar="KEY=VALUE",
                        help="a checkpoint (hub id, folder, file; for a trained model: skip its training step)")
    parser.add_argument("--set", action="append", default=[], metavar="[SCOPE:]OPTION[=VALUE]",
                        help="change an option of the steps (SCOPE: a step name or command)")
    parser.add_argument("--out", default=None, help="output folder (one subfolder per step; with --smoke default "
                                                    "results/smoke/NAME)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--smoke", action="store_true",
                        help="run on tiny models and generated data (built into OUT/smoke-inputs) with every step "
                             "shrunk by the config's smoke settings: checks the pipeline end to end in about a "
                             "minute, the numbers mean nothing")


def main(args: argparse.Namespace) -> int:
    """Run ``semcom reproduce`` with the parsed ``args`` (the options of :func:`add_arguments`); returns
    the exit status (0 on success, 2 for bad input, reported as one line).

    Examples
    --------
    >>> import contextlib, io
    >>> from experiments.cli import main as semcom
    >>> buf = io.StringIO()
    >>> with contextlib.redirect_stdout(buf):
    ...     rc = semcom(["reproduce", "--list"])
    >>> rc, buf.getvalue().split()[0]
    (0, 'semclip-fig3')
    """
    from experiments.core.results import write_json_atomic

    if args.list:
        for name in list_configs():
            cfg = load_config(name)
            print(f"{name:16s} {cfg.paper}: {cfg.result}")
        return 0
    try:
        if not args.name:
            raise ValueError("name a result (semcom reproduce --list) or pass --list")
        cfg = load_config(args.name)
        if not args.out and args.smoke:
            args.out = str(Path("results") / "smoke" / cfg.name)
        if not args.out:
            raise ValueError("--out DIR is required")
        data_paths, models, sets = _pairs(args.data_path, "--data-path"), _pairs(args.model, "--model"), args.set
        if args.smoke:
            data_paths, models, sets = _smoke_inputs(cfg, Path(args.out), data_paths, models, sets, args.dry_run)
        planned = plan(cfg, args.out, args.data, data_paths, models, sets)
    except ValueError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    problems = [] if (args.smoke and args.dry_run) else check_inputs(cfg, planned)  # smoke inputs: not built
    if problems:
        print(f"{PROG}: error: {cfg.name}: {len(problems)} missing input(s), nothing run: " + " | ".join(problems),
              file=sys.stderr)
        return 2
    if args.dry_run:
        for note in render_notes(cfg):
            print(f"# note: {note}")
        for st in planned["steps"]:
            line = "skipped (model given)" if st["skipped"] else "semcom " + " ".join(st["argv"])
            print(f"# {st['name']}: {line}")
        return 0
    from experiments.cli import main as cli_main
    from experiments.commands.train_image_decoder import latest_checkpoint

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"name": cfg.name, "paper": cfg.paper, "result": cfg.result, "smoke": bool(args.smoke),
              "notes": render_notes(cfg), "steps": []}
    trained: Dict[str, str] = {}
    for i, st in enumerate(planned["steps"], 1):
        if st["skipped"]:
            print(f"[reproduce] {cfg.name} step {i}/{len(planned['steps'])} {st['name']}: skipped (model given)")
            continue
        argv = []
        for a in st["argv"]:
            for kind, key in _PLACEHOLDER.findall(a):  # only trained models are left: their step has run
                if key not in trained:
                    m = cfg.models[key]
                    folder = _step_out(out, m["step"])
                    ck = ((folder / m["path"]) if (folder / m["path"]).exists() else None) if "path" in m \
                        else latest_checkpoint(folder)
                    if ck is None:
                        print(f"{PROG}: error: step {m['step']!r} left no checkpoint for model {key!r} in "
                              f"{folder / m.get('path', '')}", file=sys.stderr)
                        return 2
                    trained[key] = str(ck)
                a = a.replace(f"{{{kind}:{key}}}", trained[key])
            argv.append(a)
        print(f"[reproduce] {cfg.name} step {i}/{len(planned['steps'])} {st['name']}: semcom {' '.join(argv)}",
              flush=True)
        record["steps"].append({"name": st["name"], "argv": argv})
        write_json_atomic(out / f"reproduce-{cfg.name}.json", record)
        try:
            rc = int(cli_main(argv) or 0)
        except (ValueError, FileNotFoundError) as exc:
            print(f"{PROG}: error: {cfg.name}: step {st['name']!r} failed: {exc}", file=sys.stderr)
            return 2
        if rc != 0:
            print(f"{PROG}: error: {cfg.name}: step {st['name']!r} exited with {rc}", file=sys.stderr)
            return rc
    record["outputs"] = [str(out / o) for o in cfg.outputs]
    write_json_atomic(out / f"reproduce-{cfg.name}.json", record)
    print(f"[reproduce] {cfg.name} done: " + ", ".join(record["outputs"]))
    return 0


if __name__ == "__main__":  # pragma: no cover
    p = argparse.ArgumentParser(prog=PROG)
    add_arguments(p)
    sys.exit(main(p.parse_args()))
