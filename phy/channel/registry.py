"""The channel registry: a name or a spec ``name(key=value, ...)`` selects and builds a channel.

:func:`make_channel` builds a registered channel; :func:`canonical_channel_spec` gives the text that keys
CSV rows and manifests (every parameter, defaults filled in, keys sorted); :func:`register_channel` lets
code outside the package add its own channel under a name.

Example
-------
>>> from phy.channel.registry import make_channel, canonical_channel_spec
>>> make_channel("rayleigh(block_length=64)", seed=0).block_length
64
>>> canonical_channel_spec("rician(k_db=10)")
'rician(block_length=1,corr_rx=0.0,corr_tx=0.0,k_db=10.0,los_phase=0.0,num_rx=1,num_tx=1)'
"""
from __future__ import annotations

from typing import Dict, List, Tuple, Type, Union


from phy.channel.spec import check_spec_kwargs, format_spec, parse_spec, split_channel_list
from phy.channel.impairments import (IMPAIRMENT_PARAMS, PhaseImpairment, attach_impairment, resolve_symbol_rate,
                          split_impairment_kwargs)
from phy.channel.base import Channel
from phy.channel.flat import AWGN, Rayleigh, Rician
from phy.channel.tdl import SionnaTDL

__all__ = ["CHANNELS", "register_channel", "make_channel", "parse_channel_spec", "canonical_channel_spec", "canonical_channel_list"]


#: Channel registry: spec name -> :class:`Channel` subclass (:func:`register_channel` adds to it).
CHANNELS: Dict[str, Type[Channel]] = {}


def register_channel(name: str, override: bool = False):
    """Class decorator: make ``make_channel(name, ...)`` build this class. A name already registered to another
    class (a built-in such as ``awgn``, or another plug-in's) is refused (``ValueError``) unless ``override``.

    Examples
    --------
    >>> @register_channel("doc-awgn")
    ... class DocAWGN(AWGN):
    ...     name = "doc-awgn"
    >>> type(make_channel("doc-awgn", seed=0)).__name__
    'DocAWGN'
    >>> del CHANNELS["doc-awgn"]
    """

    def deco(cls):
        old = CHANNELS.get(name)
        if old is not None and old is not cls and not override:
            raise ValueError(f"channel {name!r} is already registered ({getattr(old, '__qualname__', old)}); a plug-in "
                             "may not replace it silently: register it under another name, or pass override=True "
                             "to replace it on purpose")
        CHANNELS[name] = cls
        return cls

    return deco


for _cls in (AWGN, Rayleigh, Rician, SionnaTDL):
    register_channel(_cls.name)(_cls)


def parse_channel_spec(spec: str) -> Tuple[str, Dict[str, object]]:
    """A channel spec ``name(key=value, ...)`` -> ``(name, canonical kwargs)``: every parameter of the
    registered class (its ``spec_params``), defaults filled in, values checked and converted.

    Raises ``ValueError`` for an unknown name, an unknown key or a bad value, listing the valid keys
    with their types, ranges and defaults. The impairment keys of :mod:`phy.channel.impairments`
    (``phase_noise_linewidth``, ``cfo``, ``symbol_rate``, ``phase_offset``) are valid on every channel
    and appear in the kwargs only when the impairment is on (so the canonical spec of an unimpaired
    channel is unchanged).

    Example
    -------
    >>> parse_channel_spec("rayleigh(block_length=64)")[1]["block_length"]
    64
    """
    name, raw = parse_spec(spec)
    if name not in CHANNELS:
        raise ValueError(f"unknown channel {name!r} in spec {spec!r}; expected one of {sorted(CHANNELS)}")
    raw, raw_imp = split_impairment_kwargs(raw)
    params = CHANNELS[name].spec_params
    own = {}
    if params is None:
        if raw:
            raise ValueError(f"channel {name!r} declares no spec parameters (spec_params); give the bare name, "
                             f"got {spec!r}")
    else:
        try:
            own = check_spec_kwargs(name, raw, params, spec)
        except ValueError as e:
            extra = "; ".join(p.describe() for p in IMPAIRMENT_PARAMS)
            raise ValueError(f"{e}; every channel also takes the impairment keys (phy.channel.impairments): {extra}") \
                from None
    imp = {}
    if raw_imp:
        imp_kw = check_spec_kwargs(name, raw_imp, IMPAIRMENT_PARAMS, spec)
        rate_of = getattr(CHANNELS[name], "symbol_rate_of", None)  # a channel with its own time base (a grid)
        try:
            if rate_of is not None:
                imp_kw = resolve_symbol_rate(imp_kw, rate_of(own))
            imp = PhaseImpairment(**imp_kw).spec_kwargs()
        except ValueError as e:
            raise ValueError(f"channel spec {spec!r}: {e}") from None
    return name, {**own, **imp}


def canonical_channel_spec(spec: str) -> str:
    """The canonical text of a channel spec: every parameter, defaults filled in, keys sorted, numbers
    in shortest round-trip form. It is the CSV ``channel`` key and the manifest entry.

    Examples
    --------
    >>> canonical_channel_spec("RICIAN(k_db=10)")
    'rician(block_length=1,corr_rx=0.0,corr_tx=0.0,k_db=10.0,los_phase=0.0,num_rx=1,num_tx=1)'
    >>> canonical_channel_spec("awgn")
    'awgn'
    """
    return format_spec(*parse_channel_spec(spec))


def canonical_channel_list(channels) -> List[str]:
    """Canonical specs of a comma list (a string, or a list whose items may have been split at commas
    inside parentheses: they are rejoined, :func:`phy.channel.spec.split_channel_list`).

    Raises ``ValueError`` for an empty list, a bad spec or two specs with the same canonical text.

    Examples
    --------
    >>> canonical_channel_list("awgn,rayleigh(block_length=4)")
    ['awgn', 'rayleigh(block_length=4,corr_rx=0.0,corr_tx=0.0,num_rx=1,num_tx=1)']
    """
    specs = split_channel_list(channels)
    if not specs:
        raise ValueError(f"no channel given: {channels!r}; expected one or more of {sorted(CHANNELS)} "
                         "(with parameters, e.g. rician(k_db=10))")
    out = [canonical_channel_spec(s) for s in specs]
    dup = sorted({c for c in out if out.count(c) > 1})
    if dup:
        raise ValueError(f"the channel list {channels!r} names {dup[0]!r} twice")
    return out


def make_channel(name: Union[str, Channel], **kwargs) -> Channel:
    """Build a registered channel from a name or a spec (``awgn``, ``rayleigh(block_length=64)``,
    ``rician(k_db=10)``, ``tdl(model=C,delay_spread=100e-9,speed=30)``, ``rayleigh(num_tx=2,num_rx=2)``,
    ``rayleigh(phase_noise_linewidth=100e3,cfo=500,symbol_rate=1e6)``: impairments of
    :mod:`phy.channel.impairments` on any channel, also as keyword arguments).

    A spec with parentheses is checked by :func:`parse_channel_spec`; ``kwargs`` (``seed``, ``device``,
    ``backend``, or constructor arguments with a bare name) are passed on and must not repeat a key
    of the spec. A :class:`Channel` instance is returned unchanged.

    Example
    -------
    >>> make_channel("rayleigh", block_length=4, seed=0).block_length
    4
    >>> make_channel("rician(k_db=10)", seed=0).k_factor
    10.0
    """
    if isinstance(name, Channel):
        return name
    if not isinstance(name, str):
        raise TypeError(f"channel must be a name or a Channel, got {type(name).__name__}")
    kwargs, imp = split_impairment_kwargs(kwargs)
    if "(" not in name:
        key = name.strip().lower()
        if key not in CHANNELS:
            raise ValueError(f"unknown channel {name!r}; expected one of {sorted(CHANNELS)}")
        return attach_impairment(CHANNELS[key](**kwargs), **imp)
    key, spec_kwargs = parse_channel_spec(name)
    spec_kwargs, spec_imp = split_impairment_kwargs(spec_kwargs)
    both = sorted(set(spec_kwargs) & set(kwargs)) + sorted(set(spec_imp) & set(imp))
    if both:
        raise ValueError(f"channel spec {name!r} and the keyword arguments both set {both}")
    return attach_impairment(CHANNELS[key](**spec_kwargs, **kwargs), **spec_imp, **imp)
