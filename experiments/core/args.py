"""Argument types shared by the ``semcom`` commands: SNR lists, name lists, devices, integers, numbers, and
the bounded read of a file a user names.

Every command parses these the same way (``--snr-db start:stop:step`` with an inclusive stop, comma
lists, ``--device`` checked against the machine), and no study module owns them.

Numbers: an integer option takes an integer, also written ``1e6`` when that is one exactly (``2.5e0`` is
refused, never truncated); every count option has an upper bound that a run can reach
(:data:`COUNT_LIMITS`, said in its help); a number option takes a finite number (no ``nan``/``inf``); an SNR
lies within :data:`SNR_DB_LIMIT` dB. :func:`harden_parser` puts these types on every ``int``/``float``
option of a parser, so a command cannot forget them.

Example
-------
>>> parse_snr_list("-5:10:5")
[-5.0, 0.0, 5.0, 10.0]
"""
from __future__ import annotations

import argparse
import math
import os
from typing import Dict, List, Optional, Sequence

__all__ = ["parse_snr_list", "snr_list_arg", "parse_name_list", "parse_device", "positive_int_arg", "parse_int",
           "int_arg", "float_arg", "snr_db_arg", "snr_pair_arg", "harden_parser", "COUNT_LIMITS", "SNR_DB_LIMIT", "INT_LIMIT",
           "OPTION_HELP", "complete_help", "AutoGrid", "parse_snr_grid", "snr_grid_arg"]

#: Every SNR a command takes lies in [-SNR_DB_LIMIT, SNR_DB_LIMIT] dB (N0 from 1e-20 to 1e20 times Es).
SNR_DB_LIMIT = 200.0
#: Integers that are not counts (seeds) lie in the int64 range.
INT_LIMIT = 2 ** 63 - 1
#: The largest value of each count option (``--name`` or ``command --name``), one a run can finish; an
#: integer option not listed here has :data:`DEFAULT_COUNT_LIMIT`.
COUNT_LIMITS: Dict[str, int] = {
    "--k": 1 << 20, "--n": 1 << 20, "--num-iter": 1000, "--ldpc-iter": 1000, "--target-errors": 10 ** 9,
    "--target-block-errors": 10 ** 9, "--batch-size": 1 << 20, "--snr-batch": 64, "--num-cpus": 4096,
    "--symbols": 10 ** 9, "--max-items": 10 ** 8, "--text-max-items": 10 ** 8, "--budget": 1 << 24,
    "--bits": 24, "--max-bits-per-element": 24, "--realizations": 10000, "--limit": 10 ** 8,
    "--max-images": 10 ** 8, "--train-images": 10 ** 8, "--complexity-images": 10 ** 6, "--input-size": 4096,
    "--image-size": 4096, "--steps": 10 ** 7, "vlf-msc --steps": 1000, "vlf-msc-eval --steps": 1000,
    "--img2img-steps": 1000, "--max-new-tokens": 4096, "--num-beams": 64, "--grid-rows": 1000,
    "--save-every": 10 ** 9, "--keep": 10 ** 6, "--checkpoint-every": 10 ** 9, "--grad-accum": 1 << 16,
    "--channel-uses": 1 << 20, "--snr-channel-uses": 1 << 20, "--hidden-dim": 1 << 16, "--hidden": 1 << 16,
    "--jscc-hidden": 1 << 16, "--djscc-hidden": 1 << 16, "--n-ctx": 64, "--classes-per-step": 10 ** 6,
    "--tapl-classes-per-step": 10 ** 6, "--shard-size": 10 ** 7, "--num-workers": 256, "--train-steps": 10 ** 7,
    "--tapl-steps": 10 ** 7, "--train-batch-size": 1 << 20, "--img2img-bits": 24, "--bertscore-layers": 1000,
}
#: The bound of an integer option missing from :data:`COUNT_LIMITS`.
DEFAULT_COUNT_LIMIT = 10 ** 9
#: Integer options that are not counts (any value of the int64 range).
_NOT_COUNTS = ("--seed", "--split-seed")


def _float(text: str, what: str) -> float:
    try:
        v = float(text)
    except (ValueError, TypeError):
        raise ValueError(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(v):
        raise ValueError(f"{what}: {text!r} must be finite")
    return v


def open_unit_arg(what: str, example: str):
    """argparse ``type=`` for a number strictly between 0 and 1 (a probability, an error rate), named ``what``
    in its messages with ``example`` as an example.

    Examples
    --------
    >>> rate = open_unit_arg("an error rate", "1e-5")
    >>> rate("1e-5")
    1e-05
    >>> rate("1")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be an error rate in (0, 1), got '1'
    """
    def convert(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} such as {example}, got {text!r}") from None
        if not 0 < v < 1:
            raise argparse.ArgumentTypeError(f"must be {what} in (0, 1), got {text!r}")
        return v

    convert.__name__ = "number"
    return convert


def read_user_file(path: str, *, name: str, expected: str, limit: int) -> str:
    """The UTF-8 text of a small file a user names (a config, a manifest), read at most ``limit`` bytes.

    Every refusal is a ``ValueError`` that starts with ``name`` (e.g. ``--config 'run.toml'``) and ends with
    ``expected``: a missing path, a folder or device, an unreadable file, one larger than ``limit`` (nothing
    past ``limit + 1`` bytes is read, so ``/dev/zero`` cannot hang it), text that is not UTF-8.

    Examples
    --------
    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "a.toml")
    >>> _ = open(p, "w").write("seed = 1")
    >>> read_user_file(p, name="--config", expected="a TOML file", limit=1 << 10)
    'seed = 1'
    >>> read_user_file(os.path.dirname(p), name="--config", expected="a TOML file", limit=1 << 10)
    Traceback (most recent call last):
    ...
    ValueError: --config is not a regular file (a folder or a device); expected a TOML file
    """
    if not os.path.exists(path):
        raise ValueError(f"{name} does not exist; expected {expected}")
    if not os.path.isfile(path):
        raise ValueError(f"{name} is not a regular file (a folder or a device); expected {expected}")
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise ValueError(f"{name} cannot be read ({exc.strerror or exc}); expected {expected}") from None
    if len(data) > limit:
        size = f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit >> 10} KiB"
        raise ValueError(f"{name} is larger than {size}; expected {expected}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{name} is not UTF-8 text; expected {expected}") from None


def _snr(text: str, what: str) -> float:
    v = _float(text, what)
    if abs(v) > SNR_DB_LIMIT:
        raise ValueError(f"{what}: {text!r} dB is outside the SNR range [-{SNR_DB_LIMIT:g}, {SNR_DB_LIMIT:g}] dB")
    return v


def parse_int(text, what: str = "value", low: Optional[int] = None, high: Optional[int] = None) -> int:
    """An integer from ``text``: ``12``, ``-3``, or ``1e6`` / ``2.0e3`` when exactly an integer; ``ValueError``
    for anything else (``2.5e0``, ``nan``, ``1e400``), or outside ``[low, high]``.

    Examples
    --------
    >>> parse_int("12"), parse_int("1e6"), parse_int("-4")
    (12, 1000000, -4)
    >>> parse_int("2.5e0", "--target-errors")
    Traceback (most recent call last):
    ...
    ValueError: --target-errors: expected an integer, got '2.5e0'
    >>> parse_int("1e400", "--k", 1, 1 << 20)
    Traceback (most recent call last):
    ...
    ValueError: --k: expected an integer from 1 to 1048576, got '1e400'
    """
    t = str(text).strip()
    rng = (f" from {low} to {high}" if low is not None and high is not None else
           f" >= {low}" if low is not None else f" <= {high}" if high is not None else "")
    try:
        v = int(t, 10)
    except ValueError:
        try:
            f = float(t)
        except ValueError:
            raise ValueError(f"{what}: expected an integer{rng}, got {text!r}") from None
        if not math.isfinite(f) or abs(f) > 2.0 ** 63:
            raise ValueError(f"{what}: expected an integer{rng}, got {text!r}") from None
        if f != int(f):
            raise ValueError(f"{what}: expected an integer, got {text!r}") from None
        from decimal import Decimal, InvalidOperation

        try:  # exact: 1e6 -> 1000000, 1.0000000000000001e3 (not an integer) refused
            d = Decimal(t)
        except InvalidOperation:
            raise ValueError(f"{what}: expected an integer{rng}, got {text!r}") from None
        if d != d.to_integral_value():
            raise ValueError(f"{what}: expected an integer, got {text!r}")
        v = int(d)
    if abs(v) > INT_LIMIT or (low is not None and v < low) or (high is not None and v > high):
        raise ValueError(f"{what}: expected an integer{rng}, got {text!r}")
    return v


def int_arg(low: Optional[int] = 1, high: Optional[int] = None, what: str = "value"):
    """argparse ``type=`` for an integer in ``[low, high]`` (:func:`parse_int`; errors as argparse errors).

    Examples
    --------
    >>> int_arg(1, 64)("8")
    8
    >>> int_arg(1, 64)("65")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected an integer from 1 to 64, got '65'
    """
    def convert(text):
        try:
            return parse_int(text, what, low, high)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).split(": ", 1)[1] if what == "value" else str(e)) from None

    convert.__name__ = "integer"
    convert.bounds = (low, high)
    return convert


def float_arg(low: Optional[float] = None, high: Optional[float] = None, *, low_open: bool = False,
              what: str = "value"):
    """argparse ``type=`` for a finite number in ``[low, high]`` (``low_open``: ``> low``); ``nan`` and ``inf``
    are refused.

    Examples
    --------
    >>> float_arg(0.0)("1.5")
    1.5
    >>> float_arg(0.0)("nan")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected a finite number >= 0, got 'nan'
    """
    rng = " and ".join(x for x in ((f"{'>' if low_open else '>='} {low:g}" if low is not None else ""),
                                    (f"<= {high:g}" if high is not None else "")) if x)

    def convert(text):
        try:
            v = float(text)
        except (ValueError, TypeError):
            v = math.nan
        if not math.isfinite(v) or (low is not None and (v < low or (low_open and v == low))) or \
                (high is not None and v > high):
            raise argparse.ArgumentTypeError(f"expected a finite number{' ' + rng if rng else ''}, got {text!r}")
        return v

    convert.__name__ = "number"
    convert.bounds = (low, high)
    return convert


_snr_db = float_arg(-SNR_DB_LIMIT, SNR_DB_LIMIT)


def snr_db_arg(text: str) -> float:
    """argparse ``type=`` for one SNR in dB: finite, within :data:`SNR_DB_LIMIT`.

    Examples
    --------
    >>> snr_db_arg("-5.5")
    -5.5
    >>> snr_db_arg("inf")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected a finite number >= -200 and <= 200, got 'inf'
    """
    return _snr_db(text)


snr_db_arg.__name__ = "number"
snr_db_arg.bounds = (-SNR_DB_LIMIT, SNR_DB_LIMIT)


def snr_pair_arg(text: str) -> str:
    """argparse ``type=`` for an SNR range ``"low,high"`` [dB]: both finite, within :data:`SNR_DB_LIMIT`,
    ``low <= high``; returns the text unchanged.

    Examples
    --------
    >>> snr_pair_arg("-10,10")
    '-10,10'
    >>> snr_pair_arg("0,inf")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected 'low,high' SNRs [dB] within [-200, 200] with low <= high, got '0,inf'
    """
    parts = str(text).split(",")
    try:
        lo, hi = (_snr(p, "snr") for p in parts) if len(parts) == 2 else (None, None)
    except ValueError:
        lo = hi = None
    if lo is None or lo > hi:
        raise argparse.ArgumentTypeError(f"expected 'low,high' SNRs [dB] within [-{SNR_DB_LIMIT:g}, {SNR_DB_LIMIT:g}] "
                                         f"with low <= high, got {text!r}")
    return text


def _is_snr_option(action: argparse.Action) -> bool:
    return any("snr" in o for o in action.option_strings)


def harden_parser(parser: argparse.ArgumentParser, command: str = "") -> None:
    """Give every ``type=int`` / ``type=float`` option of ``parser`` (and of its sub-parsers) the checked types:
    an integer option refuses non-integers and values beyond its bound (:data:`COUNT_LIMITS`, or the int64 range
    for seeds), a number option refuses ``nan``/``inf`` (an SNR option also values beyond :data:`SNR_DB_LIMIT`);
    a count option's help says its bound. Options with their own type are left as they are (they check
    themselves), apart from the bound of integer types made by :func:`positive_int_arg`.

    Examples
    --------
    >>> p = argparse.ArgumentParser(prog="demo")
    >>> _ = p.add_argument("--steps", type=int, default=10, help="training steps")
    >>> harden_parser(p)
    >>> p.parse_args(["--steps", "1e3"]).steps
    1000
    >>> [a.help for a in p._actions if a.dest == "steps"]
    ['training steps (at most 10000000)']
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                harden_parser(sub, f"{command} {name}".strip())
            continue
        if not action.option_strings:
            continue
        opt = next((o for o in action.option_strings if o.startswith("--")), action.option_strings[0])
        kind = action.type
        if kind is int or getattr(kind, "positive_int", False):
            if opt in _NOT_COUNTS:
                action.type = int_arg(-INT_LIMIT, INT_LIMIT)
                continue
            high = COUNT_LIMITS.get(f"{command} {opt}", COUNT_LIMITS.get(opt, DEFAULT_COUNT_LIMIT))
            low = 1 if getattr(kind, "positive_int", False) else 0
            action.type = int_arg(low, high)
            if action.help is not argparse.SUPPRESS:
                action.help = (action.help or "").rstrip() + f" (at most {high})"
                action.help = action.help.lstrip()
        elif kind is float:
            action.type = snr_db_arg if _is_snr_option(action) else float_arg()


def parse_snr_list(text: str) -> List[float]:
    """``"0:12:2"`` (inclusive stop), ``"0,3,7.5"`` or a mix ``"0:4:2,10"`` -> list of floats.

    Raises ``ValueError`` for an empty list, a zero step, a step pointing away from ``stop`` or
    duplicate points.

    Examples
    --------
    >>> parse_snr_list("0:12:4"), parse_snr_list("-1,2.5"), parse_snr_list("0:1:0.25,3")
    ([0.0, 4.0, 8.0, 12.0], [-1.0, 2.5], [0.0, 0.25, 0.5, 0.75, 1.0, 3.0])
    """
    if not isinstance(text, str):
        raise TypeError(f"snr-db must be a string such as '0:12:2' or '0,2,4', got {type(text).__name__}")
    out: List[float] = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        if ":" in item:
            parts = item.split(":")
            if len(parts) not in (2, 3):
                raise ValueError(f"--snr-db range {item!r} must be start:stop or start:stop:step")
            start = _snr(parts[0], "--snr-db start")
            stop = _snr(parts[1], "--snr-db stop")
            step = _float(parts[2], "--snr-db step") if len(parts) == 3 else 1.0
            if step == 0:
                raise ValueError(f"--snr-db range {item!r} has step 0")
            if (stop - start) * step < 0:
                raise ValueError(f"--snr-db range {item!r}: step {step} never reaches stop {stop} from {start}")
            ratio = (stop - start) / step
            count = int(math.floor(ratio + 1e-9)) + 1 if math.isfinite(ratio) and ratio < 1e7 else 10 ** 7
            if count > 10_000:
                raise ValueError(f"--snr-db range {item!r} has {count} points; at most 10000")
            out.extend(round(start + i * step, 10) + 0.0 for i in range(count))
        else:
            out.append(_snr(item, "--snr-db value") + 0.0)
    if not out:
        raise ValueError(f"--snr-db gave no SNR points: {text!r}")
    dup = sorted({v for v in out if out.count(v) > 1})
    if dup:
        raise ValueError(f"--snr-db has duplicate points {dup}")
    return out


def parse_name_list(text: str, allowed: Sequence[str], what: str, aliases: Optional[Dict[str, str]] = None
                    ) -> List[str]:
    """Comma list of names, lower-cased, checked against ``allowed`` (no duplicates, non-empty).

    Examples
    --------
    >>> parse_name_list("AWGN,rayleigh", ["awgn", "rayleigh", "rician"], "channels")
    ['awgn', 'rayleigh']
    >>> parse_name_list("awgn,tdl", ["awgn", "rayleigh"], "channels")
    Traceback (most recent call last):
    ...
    ValueError: ...tdl...
    """
    aliases = aliases or {}
    names = [aliases.get(p.strip().lower(), p.strip().lower()) for p in text.split(",") if p.strip()]
    if not names:
        raise ValueError(f"--{what} gave no names: {text!r}; expected one or more of {sorted(allowed)}")
    bad = [n for n in names if n not in allowed]
    if bad:
        raise ValueError(f"unknown --{what} {bad[0]!r}; expected one of {sorted(allowed)}")
    if len(set(names)) != len(names):
        raise ValueError(f"--{what} lists a name twice: {text!r}")
    return names


def snr_list_arg(text: str) -> List[float]:
    """argparse ``type=`` for an SNR list (:func:`parse_snr_list`), errors as argparse errors.

    Examples
    --------
    >>> import argparse
    >>> snr_list_arg("0:10:5")
    [0.0, 5.0, 10.0]
    >>> snr_list_arg("0:10:0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: ...
    """
    try:
        return parse_snr_list(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parse_device(name: str, option: str = "--device"):
    """``torch.device`` for a CLI device name (``auto``: CUDA when available, else the CPU);
    ``ValueError`` for a bad name or CUDA on a machine without it.

    Examples
    --------
    >>> parse_device("cpu")
    device(type='cpu')
    >>> parse_device("gpu")
    Traceback (most recent call last):
    ...
    ValueError: ...
    """
    from phy.utils.conventions import check_device

    return check_device(name, option)


def positive_int_arg(text: str, allow_exponent: bool = False) -> int:
    """argparse ``type=`` for a positive integer (``allow_exponent``: also ``1e6``-style numbers).

    Examples
    --------
    >>> positive_int_arg("12"), positive_int_arg("1e6", allow_exponent=True)
    (12, 1000000)
    >>> positive_int_arg("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: ...
    """
    try:
        v = parse_int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return v


# --------------------------------------------------------------------------------------------
# Help texts: one per concept, and every help line with its choices and default
# --------------------------------------------------------------------------------------------
#: The help line of an option that means the same on every command that has it (used where a command's
#: parser gives none: one concept, one name, one explanation).
OPTION_HELP: Dict[str, str] = {
    "--seed": "master seed (every random stream of the run derives from it)",
    "--split-seed": "seed of the seen/unseen class split",
    "--out": "output folder (created; reruns resume)",
    "--no-progress": "no progress bars or per-point progress lines",
    "--batch-size": "examples per batch",
    "--train-batch-size": "examples per training batch",
    "--steps": "training steps",
    "--lr": "learning rate",
    "--weight-decay": "AdamW weight decay",
    "--grad-accum": "batches accumulated per optimiser step",
    "--projection-lr": "learning rate of the VLF projection",
    "--checkpoint-every": "training steps between checkpoints",
    "--save-every": "training steps between checkpoints",
    "--limit": "use only the first N images",
    "--channel": "channel of the transmission",
    "--equalizer": "equaliser of the analog link: MMSE (biased, for features) or ZF",
    "--deepsc-equalizer": "equaliser of DeepSC's analog link",
    "--unseen-fraction": "share of the classes held out as unseen (zero-shot evaluation)",
    "--snr-min": "training SNR range, low end [dB] (Es/N0 per complex channel use)",
    "--snr-max": "training SNR range, high end [dB] (Es/N0 per complex channel use)",
    "--hidden-dim": "hidden width of the JSCC MLP",
    "--n-ctx": "learnable prompt context tokens (TAPL)",
    "--ctx-init": "text the prompt context is initialised from",
    "--max-new-tokens": "longest generated caption, in tokens",
    "--num-beams": "beam width of the caption decoder (1: greedy)",
    "--blip2-checkpoint": "BLIP-2 checkpoint (hub id or local folder)",
    "--sd-checkpoint": "Stable Diffusion checkpoint (hub id or local folder)",
    "--allow-download": "allow downloading missing checkpoints (never when HF_HUB_OFFLINE is set)",
    "--mixed-precision": "mixed-precision training",
    "--train-text-encoder": "also train the diffusion model's text encoder",
    "--dataset": "layout of --data",
    "--shard-size": "features per safetensors shard",
    "--num-workers": "data-loader worker processes",
    "--complexity-images": "images timed per module in the complexity study",
    "--btir-codec": "image codec of BT-IR",
    "--tapl-classes-per-step": "classes per TAPL training step (0: all seen classes)",
    "--max-bits-per-element": "largest quantiser resolution a matched budget may choose, bits per element",
}


def _shown(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def complete_help(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give every option of ``parser`` (and of its sub-parsers) a help line that lists its choices and its
    default: an option without help takes :data:`OPTION_HELP`'s line for its name, and ``(choices: ...)``
    / ``(default: ...)`` are appended where the line does not already say them. Flags (no value) and
    ``None`` defaults show no default. Returns ``parser``.

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> _ = p.add_argument("--seed", type=int, default=0)
    >>> _ = p.add_argument("--mode", default="a", choices=("a", "b"), help="the mode")
    >>> _ = complete_help(p)
    >>> [a.help for a in p._actions[1:]]
    ['master seed (every random stream of the run derives from it) (default: 0)', 'the mode (choices: a, b; default: a)']
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                complete_help(sub)
            continue
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        text = (action.help or "").strip()
        if not text or text.startswith("("):   # none, or only a bound (harden_parser's "(at most N)")
            line = next((OPTION_HELP[o] for o in action.option_strings if o in OPTION_HELP), None)
            if line is None:
                continue
            text = f"{line} {text}".strip()
        adds = []
        if action.choices is not None and not all(str(c) in text for c in action.choices):
            adds.append("choices: " + ", ".join(str(c) for c in action.choices))
        flag = action.nargs == 0
        default = action.default
        if (not flag and default is not None and default is not argparse.SUPPRESS and default != []
                and "default" not in text.lower()):
            adds.append(f"default: {_shown(default)}")
        if adds:
            text = f"{text} ({'; '.join(adds).replace('%', '%%')})"
        action.help = text
    return parser


positive_int_arg.positive_int = True  # harden_parser bounds the options that use it


class AutoGrid:
    """``--snr-db auto[:START:STOP[:STEP]]``: the adaptive grid of
    :func:`phy.sim.adaptive.simulate_ber_adaptive` from ``start`` to ``stop`` dB (coarse step ``step``).

    Examples
    --------
    >>> grid = parse_snr_grid("auto:-2:12:0.5")
    >>> isinstance(grid, AutoGrid), grid.start, grid.stop, grid.step
    (True, -2.0, 12.0, 0.5)
    """

    DEFAULT = (0.0, 40.0, 1.0)

    def __init__(self, start: float, stop: float, step: float):
        self.start, self.stop, self.step = float(start), float(stop), float(step)

    def __repr__(self) -> str:
        return f"auto:{self.start:g}:{self.stop:g}:{self.step:g}"

    def __eq__(self, other) -> bool:
        return isinstance(other, AutoGrid) and repr(self) == repr(other)


def parse_snr_grid(text: str):
    """``auto``, ``auto:START:STOP`` or ``auto:START:STOP:STEP`` -> :class:`AutoGrid`; anything else
    -> :func:`parse_snr_list`.

    Examples
    --------
    >>> parse_snr_grid("auto"), parse_snr_grid("auto:-2:12:0.5"), parse_snr_grid("0:4:2")
    (auto:0:40:1, auto:-2:12:0.5, [0.0, 2.0, 4.0])
    """
    if isinstance(text, str) and text.strip().lower().startswith("auto"):
        parts = text.strip().split(":")
        if parts[0].lower() != "auto" or len(parts) not in (1, 3, 4):
            raise ValueError(f"--snr-db {text!r}: expected auto, auto:START:STOP or auto:START:STOP:STEP")
        vals = list(AutoGrid.DEFAULT)
        for i, part in enumerate(parts[1:]):
            vals[i] = _float(part, ("--snr-db auto start", "--snr-db auto stop", "--snr-db auto step")[i])
        if not vals[0] < vals[1]:
            raise ValueError(f"--snr-db {text!r}: START must be below STOP")
        if not vals[2] > 0:
            raise ValueError(f"--snr-db {text!r}: STEP must be > 0")
        return AutoGrid(*vals)
    return parse_snr_list(text)


def snr_grid_arg(text: str):
    """argparse ``type=`` for :func:`parse_snr_grid`: the same grid, or ``ArgumentTypeError`` with its message.

    Examples
    --------
    >>> snr_grid_arg("-2:4:2")
    [-2.0, 0.0, 2.0, 4.0]
    """
    try:
        return parse_snr_grid(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
