"""Schemes by name: :data:`SCHEMES` (exact names -> factories), :func:`register_scheme` (also for plug-ins:
a ``--plugin`` module or the ``semcom.schemes`` entry-point group, :mod:`experiments.core.plugins`) and
:func:`make_scheme`, which also parses the families ``quant-<code>-<mod>``, ``ascii-<code>-<mod>`` and
``transform-<code>-amc``.
"""
from __future__ import annotations

from typing import Callable, Dict

from experiments.core.plugins import check_new_name, register_group
from experiments.schemes.analog import AnalogKLTScheme, AnalogScheme
from experiments.schemes.ideal import IdealQuantizedScheme
from experiments.schemes.protocol import Scheme
from experiments.schemes.quantized import QuantizedDigitalScheme
from experiments.schemes.references import FBLSeparationScheme, OptaScheme
from experiments.schemes.text import TextScheme
from experiments.schemes.transform import TransformAMCScheme, TransformIdealScheme

__all__ = ["SCHEMES", "register_scheme", "make_scheme"]


#: exact scheme name -> factory (no argument) returning a :class:`Scheme`; the families
#: ``quant-<code>-<mod>``, ``ascii-<code>-<mod>`` and ``transform-<code>-amc`` are parsed by :func:`make_scheme`.
SCHEMES: Dict[str, Callable[[], Scheme]] = {}


def register_scheme(name: str, override: bool = False):
    """Decorator (or call ``register_scheme(name)(factory)``): make ``make_scheme(name)`` (and so
    ``--schemes name``) build ``factory()`` -- a :class:`Scheme` subclass or any callable returning a
    Scheme. Code outside the package registers its own schemes this way, from a ``--plugin`` module
    or the ``semcom.schemes`` entry-point group (:mod:`experiments.core.plugins`). A name already registered
    to another factory (a built-in such as ``analog``) is refused (``ValueError``) unless ``override``.

    Example
    -------
    >>> @register_scheme("doc-analog-zf")
    ... class DocScheme(AnalogScheme):
    ...     def __init__(self):
    ...         super().__init__("zf")
    >>> make_scheme("doc-analog-zf").equalizer(None)
    'zf'
    >>> del SCHEMES["doc-analog-zf"]
    """
    if not isinstance(name, str) or not name.strip() or name != name.strip().lower():
        raise ValueError(f"a scheme name must be a non-empty lower-case str without spaces, got {name!r}")

    def deco(factory):
        if not callable(factory):
            raise TypeError(f"scheme {name!r}: the factory must be callable, got {type(factory).__name__}")
        check_new_name(SCHEMES, name, factory, "scheme", override)
        SCHEMES[name] = factory
        return factory

    return deco


register_group("semcom.schemes", register_scheme)   # installed plug-ins' schemes register here
register_scheme("analog")(AnalogScheme)
register_scheme("analog-zf")(lambda: AnalogScheme("zf"))
register_scheme("analog-mmse")(lambda: AnalogScheme("mmse"))
register_scheme("analog-svd")(lambda: AnalogScheme(precoding="svd"))   # needs CSIT (phy.mimo.precoding)
register_scheme("opta")(OptaScheme)
register_scheme("fbl-separation")(FBLSeparationScheme)
register_scheme("analog-klt")(AnalogKLTScheme)
register_scheme("transform-ideal")(TransformIdealScheme)
register_scheme("quant-ideal")(IdealQuantizedScheme)


def make_scheme(spec: str) -> Scheme:
    """A scheme from its name: a registered one (:data:`SCHEMES`, see :mod:`experiments.commands.compare`) or a
    family member ``quant-<code>-<mod>``, ``ascii-<code>-<mod>``, ``transform-<code>-amc``.

    Examples
    --------
    >>> make_scheme("quant-ldpc5g-16qam").name
    'quant-ldpc5g-16qam'
    """
    if not isinstance(spec, str):
        raise TypeError(f"scheme must be a str, got {type(spec).__name__}")
    s = spec.strip().lower()
    if s in SCHEMES:
        scheme = SCHEMES[s]()
        if not isinstance(scheme, Scheme):
            raise TypeError(f"scheme {s!r}: its registered factory returned {type(scheme).__name__}, not a "
                            f"experiments.schemes.Scheme")
        if not getattr(scheme, "name", None) or scheme.name == Scheme.name:
            scheme.name = s
        return scheme
    if s.startswith("transform-") and s.endswith("-amc") and s.count("-") == 2:
        return TransformAMCScheme(s.split("-")[1])
    parts = s.split("-")
    if len(parts) == 3 and parts[0] in ("quant", "ascii"):
        from phy.mapping.modulation import MODULATIONS

        if parts[2] not in MODULATIONS:
            raise ValueError(f"scheme {spec!r}: unknown modulation {parts[2]!r}; expected one of {sorted(MODULATIONS)}")
        return (QuantizedDigitalScheme if parts[0] == "quant" else TextScheme)(parts[1], parts[2])
    raise ValueError(f"unknown scheme {spec!r}: expected one of {sorted(SCHEMES)}, transform-ldpc5g-amc, "
                     f"quant-<code>-<mod> (code none/hamming74/ldpc5g) or ascii-<code>-<mod>")
