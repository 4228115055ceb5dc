"""Argument types shared by the ``semcom`` commands: SNR lists, name lists, devices, positive ints.

Every command parses these the same way (``--snr-db start:stop:step`` with an inclusive stop, comma
lists, ``--device`` checked against the machine), and no study module owns them.

Example
-------
>>> parse_snr_list("-5:10:5")
[-5.0, 0.0, 5.0, 10.0]
"""
from __future__ import annotations

import argparse
import math
from typing import Dict, List, Optional, Sequence

__all__ = ["parse_snr_list", "snr_list_arg", "parse_name_list", "parse_device", "positive_int_arg", "OPTION_HELP",
           "complete_help"]


def _float(text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(v):
        raise ValueError(f"{what}: {text!r} must be finite")
    return v


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
            start = _float(parts[0], "--snr-db start")
            stop = _float(parts[1], "--snr-db stop")
            step = _float(parts[2], "--snr-db step") if len(parts) == 3 else 1.0
            if step == 0:
                raise ValueError(f"--snr-db range {item!r} has step 0")
            if (stop - start) * step < 0:
                raise ValueError(f"--snr-db range {item!r}: step {step} never reaches stop {stop} from {start}")
            count = int(math.floor((stop - start) / step + 1e-9)) + 1
            if count > 10_000:
                raise ValueError(f"--snr-db range {item!r} has {count} points; at most 10000")
            out.extend(round(start + i * step, 10) + 0.0 for i in range(count))
        else:
            out.append(_float(item, "--snr-db value") + 0.0)
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
        v = int(float(text)) if allow_exponent and text.strip().lower().count("e") else int(text)
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
        text = action.help
        if not text:
            text = next((OPTION_HELP[o] for o in action.option_strings if o in OPTION_HELP), None)
            if text is None:
                continue
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
