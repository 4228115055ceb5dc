"""Channel specs: one grammar, ``name(key=value, ...)``, for every command and config that names a channel.

A spec string such as ``rician(k_db=10)`` or ``rayleigh(block_length=64,num_tx=2,num_rx=2)`` is parsed
into ``(name, raw key/value strings)`` here (pure text handling) and checked against the channel's
declared parameters (:class:`Param`, the ``spec_params`` of each registered channel class): unknown keys
and bad values raise ``ValueError`` listing the valid keys with their types, ranges and defaults. The
**canonical spec** lists every parameter, defaults filled in, keys sorted, numbers in their shortest
round-trip form, e.g. ``rician(block_length=1,k_db=10.0,los_phase=0.0,num_rx=1,num_tx=1)``; it is the
CSV ``channel`` key and the manifest entry, so two runs with different parameters never share a resume
key. :func:`phy.channel.registry.canonical_channel_spec` and :func:`phy.channel.registry.make_channel` apply it to the
channel registry.

Units: SI numbers (seconds, hertz, metres per second, radians); a key ending in ``_db`` is in dB and the
channel converts it (``k_db=10`` is a linear K factor of 10).

Example
-------
>>> parse_spec("rician(k_db=10, block_length=4)")
('rician', {'k_db': '10', 'block_length': '4'})
>>> split_channel_list("awgn, rayleigh(num_tx=2,num_rx=2)")
['awgn', 'rayleigh(num_tx=2,num_rx=2)']
>>> p = Param("block_length", int, 1, low=1)
>>> p.convert("64"), p.describe()
(64, 'block_length (int >= 1, default 1)')
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

__all__ = ["Param", "parse_spec", "split_channel_list", "check_spec_kwargs", "check_values", "format_spec",
           "format_value", "TWO_PI"]

#: The bound of every angle a spec takes [rad] (any angle is one of [-2 pi, 2 pi]).
TWO_PI = 2.0 * math.pi

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


@dataclass(frozen=True)
class Param:
    """One parameter of a channel spec.

    Parameters
    ----------
    name : str
        The key (also the keyword of the channel's constructor).
    kind : ``int``, ``float`` or ``str``
    default : the value used when the key is absent (shown in the canonical spec)
    low, high : float, optional
        Range bounds; ``low_open`` / ``high_open`` make them strict.
    choices : tuple of str, optional
        Allowed values of a ``str`` parameter (matched case-insensitively, stored as listed).
    unit : str
        Shown in messages (``"s"``, ``"Hz"``, ``"m/s"``, ``"dB"``, ``"rad"``).
    aliases : mapping str -> str, optional
        Other spellings of ``choices`` (matched case-insensitively), stored as the choice they name: the
        canonical spec has one spelling.

    Examples
    --------
    >>> p = Param("block_length", int, 1, low=1)
    >>> check_spec_kwargs("rayleigh", {"block_length": "4"}, [p])
    {'block_length': 4}
    """

    name: str
    kind: type
    default: Any
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False
    choices: Optional[Tuple[str, ...]] = None
    unit: str = ""
    aliases: Optional[Tuple[Tuple[str, str], ...]] = None

    def describe(self) -> str:
        """``name (type range, default d)`` for error messages and help texts."""
        if self.choices is not None:
            what = "one of " + "|".join(self.choices)
            if self.aliases:
                what += ", also written " + "|".join(a for a, _ in self.aliases)
        else:
            what = {int: "int", float: "number", str: "text"}[self.kind]
            parts = []
            if self.low is not None:
                parts.append(f"{'>' if self.low_open else '>='} {format_value(self.low)}")
            if self.high is not None:
                parts.append(f"{'<' if self.high_open else '<='} {format_value(self.high)}")
            if parts:
                what += " " + " and ".join(parts)
            if self.unit:
                what += f" [{self.unit}]"
        return f"{self.name} ({what}, default {format_value(self.default)})"

    def convert(self, value: Union[str, int, float]) -> Any:
        """Check and convert one value (a spec string or a Python number); ``ValueError`` if bad."""
        bad = ValueError(f"bad value {value!r} for {self.describe()}")
        if self.choices is not None:
            text = str(value).strip()
            for c in self.choices:
                if c.lower() == text.lower():
                    return c
            for alias, c in self.aliases or ():
                if alias.lower() == text.lower():
                    return c
            raise bad
        if isinstance(value, bool):
            raise bad
        if isinstance(value, str):
            try:
                num = float(value.strip())
            except ValueError:
                raise bad from None
        elif isinstance(value, (int, float)):
            num = float(value)
        else:
            raise bad
        if not math.isfinite(num):
            raise bad
        if self.kind is int:
            if num != int(num):
                raise bad
            num = int(num)
        if self.low is not None and (num < self.low or (self.low_open and num == self.low)):
            raise bad
        if self.high is not None and (num > self.high or (self.high_open and num == self.high)):
            raise bad
        return num


def format_value(value: Any) -> str:
    """Canonical text of a value: ints as ints, floats by their shortest round-trip ``repr``.

    Examples
    --------
    >>> format_value(4), format_value(0.1), format_value(1e-07)
    ('4', '0.1', '1e-07')
    """
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return repr(value + 0.0)  # -0.0 -> 0.0
    return str(value)


def parse_spec(spec: str) -> Tuple[str, Dict[str, str]]:
    """``"name(key=value, ...)"`` -> ``(name lower-cased, {key: value text})`` (no type checks).

    ``"name"`` and ``"name()"`` have no parameters. Keys are lower-cased; duplicate keys, empty
    items and text after the closing parenthesis raise ``ValueError``.

    Examples
    --------
    >>> parse_spec("Rician(K_dB=10, block_length=4)")
    ('rician', {'k_db': '10', 'block_length': '4'})
    """
    if not isinstance(spec, str):
        raise TypeError(f"channel spec must be a string such as 'rician(k_db=10)', got {type(spec).__name__}")
    text = spec.strip()
    if "(" in text:
        head, _, rest = text.partition("(")
        if not rest.rstrip().endswith(")") or ")" in rest.rstrip()[:-1] or "(" in rest:
            raise ValueError(f"channel spec {spec!r} must look like name(key=value, ...) with one pair of "
                             "parentheses")
        body = rest.rstrip()[:-1]
    else:
        head, body = text, ""
    name = head.strip().lower()
    if not _NAME.match(name):
        raise ValueError(f"channel spec {spec!r}: {head.strip()!r} is not a channel name")
    kwargs: Dict[str, str] = {}
    if body.strip():
        for item in body.split(","):
            key, eq, value = item.partition("=")
            key = key.strip().lower()
            if not eq or not _NAME.match(key) or not value.strip():
                raise ValueError(f"channel spec {spec!r}: {item.strip()!r} is not key=value")
            if key in kwargs:
                raise ValueError(f"channel spec {spec!r} sets {key!r} twice")
            kwargs[key] = value.strip()
    return name, kwargs


def split_channel_list(text: Union[str, Sequence[str]]) -> List[str]:
    """Split a comma list of channel specs, ignoring commas inside parentheses.

    A sequence is joined with commas first, so a list already split naively at every comma (e.g.
    ``["rayleigh(num_tx=2", "num_rx=2)"]``) is put back together. Empty items are dropped;
    unbalanced parentheses raise ``ValueError``.

    Examples
    --------
    >>> split_channel_list("rician(k_db=10,block_length=4),awgn")
    ['rician(k_db=10,block_length=4)', 'awgn']
    """
    if not isinstance(text, str):
        if isinstance(text, (bytes, bytearray)) or not isinstance(text, Sequence) or \
                not all(isinstance(t, str) for t in text):
            raise TypeError(f"channels must be a string or a list of strings, got {text!r}")
        text = ",".join(text)
    out, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"channel list {text!r} has a ')' without its '('")
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise ValueError(f"channel list {text!r} has a '(' without its ')'")
    out.append("".join(cur).strip())
    return [s for s in out if s]


def check_spec_kwargs(name: str, kwargs: Mapping[str, Any], params: Sequence[Param], spec: str = "") -> Dict[str, Any]:
    """Check ``kwargs`` against ``params``; return every parameter (defaults filled in), keys sorted.

    Examples
    --------
    >>> params = [Param("k_db", float, 10.0), Param("block_length", int, 1, low=1)]
    >>> check_spec_kwargs("rician", {"block_length": 4}, params)
    {'block_length': 4, 'k_db': 10.0}
    >>> check_spec_kwargs("rician", {"block_length": 0}, params)
    Traceback (most recent call last):
    ...
    ValueError: ...block_length...
    """
    by_name = {p.name: p for p in params}
    valid = "; ".join(p.describe() for p in sorted(params, key=lambda p: p.name)) or "no parameters"
    where = f"channel spec {spec!r}" if spec else f"channel {name!r}"
    unknown = [k for k in kwargs if k not in by_name]
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}; {name} takes: {valid}")
    out: Dict[str, Any] = {}
    for p in sorted(params, key=lambda p: p.name):
        if p.name in kwargs:
            try:
                out[p.name] = p.convert(kwargs[p.name])
            except ValueError as e:
                raise ValueError(f"{where}: {e}; {name} takes: {valid}") from None
        else:
            out[p.name] = p.default
    return out


def check_values(params: Sequence[Param], where: str, **values: Any) -> None:
    """Check constructor arguments against the spec parameters of the same names (their types and physical
    ranges), so a channel built in Python takes exactly what its spec takes; ``ValueError`` naming the
    argument and its range. Arguments without a parameter of that name are not checked.

    Examples
    --------
    >>> check_values([Param("block_length", int, 1, low=1, high=1 << 20)], "Rayleigh", block_length=64)
    >>> check_values([Param("block_length", int, 1, low=1, high=1 << 20)], "Rayleigh", block_length=1e308)
    Traceback (most recent call last):
    ...
    ValueError: Rayleigh: bad value 1e+308 for block_length (int >= 1 and <= 1048576, default 1)
    """
    by_name = {p.name: p for p in params}
    for name, value in values.items():
        p = by_name.get(name)
        if p is None:
            continue
        if p.kind is int and isinstance(value, float):
            raise ValueError(f"{where}: bad value {value!r} for {p.describe()}")
        try:
            p.convert(value)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None


def format_spec(name: str, kwargs: Mapping[str, Any]) -> str:
    """``name(k1=v1,k2=v2)`` with sorted keys (just ``name`` without parameters).

    Examples
    --------
    >>> format_spec("rician", {"k_db": 10.0, "block_length": 4})
    'rician(block_length=4,k_db=10.0)'
    >>> format_spec("awgn", {})
    'awgn'
    """
    if not kwargs:
        return name
    return f"{name}(" + ",".join(f"{k}={format_value(kwargs[k])}" for k in sorted(kwargs)) + ")"
