"""Plug-ins: channels, schemes, codes and feature sources from code outside the package.

Two ways in, both read by every ``semcom`` command before it parses its options:

* **Entry points** of an installed distribution, one group per registry; each entry point names a
  class or factory that is registered under the entry point's name::

      [project.entry-points."semcom.channels"]     # or setup.cfg [options.entry_points]
      rotated = "mypkg.channels:RotatedAWGN"         # a phy.channel.base.Channel subclass
      [project.entry-points."semcom.schemes"]
      ridge = "mypkg.schemes:RidgeScheme"            # an experiments.schemes.Scheme (or a factory)
      [project.entry-points."semcom.codes"]
      rep3 = "mypkg.codes:Repetition3"               # a phy.fec.codes.Code subclass
      [project.entry-points."semcom.sources"]
      mine = "mypkg.sources:load_mine"               # a factory returning a FeatureSource

* ``--plugin MODULE_OR_FILE`` (repeatable, on any command): a module name or a ``.py`` file that
  registers what it defines when imported (``phy.channel.registry.register_channel``,
  ``experiments.schemes.register_scheme``, ``phy.fec.codes.register_code``,
  ``experiments.core.sources.register_source``).

Then ``semcom compare --channel rotated --schemes ridge,analog ...`` and ``semcom ber --channel
rotated --code rep3 ...`` use them like the built-in ones. A plug-in that fails to import is an
error naming it (exit 2). Entry points are loaded in every process (Ray workers too, through
:func:`load_entry_points`); ``--plugin`` files only in the process that was given them.

Example
-------
>>> pop_plugin_args(["compare", "--plugin", "a.py", "--out", "x", "--plugin=b"])
(['a.py', 'b'], ['compare', '--out', 'x'])
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
from typing import Callable, Dict, List, Sequence, Tuple, Union

__all__ = ["GROUPS", "register_group", "load_plugin", "load_entry_points", "pop_plugin_args", "load_all",
           "loaded_plugins", "command_plugins", "plugin_key", "check_new_name"]

#: entry-point group -> the registering function of the registry it feeds, as ``(module, name)`` for the
#: lower layers; a registry of the upper layers adds its group with :func:`register_group` when it is
#: imported (``semcom.schemes``: :func:`experiments.schemes.registry.register_scheme`), so this module
#: knows no command.
GROUPS: Dict[str, Union[Tuple[str, str], Callable]] = {
    "semcom.channels": ("phy.channel", "register_channel"),
    "semcom.codes": ("phy.fec.codes", "register_code"),
    "semcom.sources": ("experiments.core.sources", "register_source"),
}


def register_group(group: str, registrar: Callable) -> None:
    """Make entry points of ``group`` register through ``registrar(name)(obj)``.

    Examples
    --------
    >>> register_group("semcom.demo", lambda name: (lambda obj: obj))
    >>> "semcom.demo" in GROUPS
    True
    >>> del GROUPS["semcom.demo"]
    >>> register_group("demo", print)
    Traceback (most recent call last):
    ...
    ValueError: an entry-point group must be named 'semcom.<what>', got 'demo'
    """
    if not isinstance(group, str) or not group.startswith("semcom."):
        raise ValueError(f"an entry-point group must be named 'semcom.<what>', got {group!r}")
    if not callable(registrar):
        raise TypeError(f"registrar of {group!r} must be callable, got {type(registrar).__name__}")
    GROUPS[group] = registrar

_loaded_entry_points = False
#: ``--plugin`` specs loaded in this process: :func:`plugin_key` -> module (a plug-in is imported once)
_loaded_plugins: Dict[str, object] = {}


def plugin_key(spec: str, cwd: Union[str, None] = None) -> str:
    """How a ``--plugin`` spec is identified: a ``.py`` file by its real path (relative to ``cwd``, default the
    current folder), a module by its name.

    Examples
    --------
    >>> plugin_key("mypkg.channels")
    'mypkg.channels'
    >>> plugin_key("my.py", cwd="/runs") == os.path.realpath("/runs/my.py")
    True
    """
    spec = str(spec)
    if spec.endswith(".py") or os.sep in spec:
        return os.path.realpath(os.path.join(cwd or os.getcwd(), os.path.expanduser(spec)))
    return spec


#: the ``--plugin`` specs of the command line that runs now (:func:`command_plugins`)
_command_plugins: List[str] = []


def loaded_plugins() -> List[str]:
    """The ``--plugin`` specs of the command that runs now (:func:`plugin_key` form, sorted): part of every
    settings record (:func:`experiments.core.results.claim_result_settings`), so results of runs with other
    plug-ins are never mixed. Empty outside a ``semcom`` command (the Python API names no plug-ins).

    Examples
    --------
    >>> with command_plugins(["mypkg.channels"]):
    ...     loaded_plugins()
    ['mypkg.channels']
    >>> loaded_plugins()
    []
    """
    return sorted(_command_plugins)


@contextlib.contextmanager
def command_plugins(specs: Sequence[str]):
    """Within the block, :func:`loaded_plugins` is ``specs`` (the command line's ``--plugin`` values); the
    previous list is restored after it (a command that runs another, ``semcom rerun``, nests).

    Examples
    --------
    >>> with command_plugins(["a.module"]):
    ...     with command_plugins([]):
    ...         loaded_plugins()
    ...     loaded_plugins()
    []
    ['a.module']
    """
    global _command_plugins
    old = _command_plugins
    _command_plugins = sorted({plugin_key(s) for s in specs})
    try:
        yield
    finally:
        _command_plugins = old


def check_new_name(registry: Dict[str, object], name: str, obj: object, what: str, override: bool = False) -> None:
    """``ValueError`` when ``name`` is already in ``registry`` under another object and ``override`` is not set:
    a plug-in cannot replace a built-in (or another plug-in's) channel, code, scheme or source without saying so.
    Registering the same object again is allowed.

    Examples
    --------
    >>> check_new_name({"awgn": int}, "awgn", int, "channel")          # the same object: fine
    >>> check_new_name({"awgn": int}, "awgn", float, "channel")
    Traceback (most recent call last):
    ...
    ValueError: channel 'awgn' is already registered (int); ...
    """
    old = registry.get(name)
    if old is None or old is obj or override:
        return
    raise ValueError(f"{what} {name!r} is already registered ({getattr(old, '__qualname__', type(old).__name__)}); "
                     f"a plug-in may not replace it silently: register it under another name, or pass "
                     f"override=True to replace it on purpose")


def pop_plugin_args(argv: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Split ``--plugin X`` / ``--plugin=X`` (anywhere) from the other arguments.

    Examples
    --------
    >>> pop_plugin_args(["ber", "--plugin", "my.py", "--out", "x", "--plugin=mod2"])
    (['my.py', 'mod2'], ['ber', '--out', 'x'])
    """
    plugins, rest = [], []
    it = iter(list(argv))
    for a in it:
        if a == "--plugin":
            v = next(it, None)
            if v is None or v.startswith("--"):
                raise ValueError("--plugin needs a module name or a .py file, got nothing")
            plugins.append(v)
        elif a.startswith("--plugin="):
            plugins.append(a.split("=", 1)[1])
        else:
            rest.append(a)
    return plugins, rest


def load_plugin(spec: str):
    """Import a plug-in given as a module name or a path to a ``.py`` file; returns the module.
    ``ValueError`` naming the plug-in when it cannot be imported.

    Examples
    --------
    A plug-in file that registers a channel (the way ``semcom --plugin my_channel.py ...`` loads it):

    >>> import os, tempfile
    >>> from phy.channel.registry import CHANNELS
    >>> path = os.path.join(tempfile.mkdtemp(), "my_channel.py")
    >>> with open(path, "w") as f:
    ...     _ = f.write("from phy.channel import AWGN, register_channel" + chr(10)
    ...                 + "register_channel('doc-plugin-awgn')(type('DocAWGN', (AWGN,), {}))" + chr(10))
    >>> module = load_plugin(path)
    >>> "doc-plugin-awgn" in CHANNELS
    True
    >>> del CHANNELS["doc-plugin-awgn"]
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"--plugin must name a module or a .py file, got {spec!r}")
    key = plugin_key(spec)
    if key in _loaded_plugins:  # imported once per process (a replay names it again)
        return _loaded_plugins[key]
    try:
        if spec.endswith(".py") or os.sep in spec:
            if not os.path.isfile(spec):
                raise FileNotFoundError(f"no such file: {spec!r}")
            name = "semcom_plugin_" + os.path.splitext(os.path.basename(spec))[0].replace("-", "_")
            module_spec = importlib.util.spec_from_file_location(name, spec)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(spec)
        _loaded_plugins[key] = module
        return module
    except Exception as exc:  # the plug-in's own error, whatever it is, named with the plug-in
        raise ValueError(f"--plugin {spec!r} could not be loaded ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())})") from None


def _registrar(group: str) -> Callable:
    target = GROUPS[group]
    if callable(target):
        return target
    module, fn = target
    return getattr(importlib.import_module(module), fn)


def load_entry_points(force: bool = False) -> List[str]:
    """Register every entry point of the :data:`GROUPS` found in the installed distributions
    (once per process unless ``force``); returns ``"group:name"`` for each one loaded.

    Examples
    --------
    >>> loaded = load_entry_points()            # every installed ``semcom.*`` entry point (often none)
    >>> isinstance(loaded, list) and all(name.startswith("semcom.") for name in loaded)
    True
    """
    global _loaded_entry_points
    if _loaded_entry_points and not force:
        return []
    from importlib.metadata import entry_points

    done = []
    for group in GROUPS:
        for ep in entry_points(group=group):
            try:
                obj = ep.load()
            except Exception as exc:
                raise ValueError(f"entry point {ep.name!r} of group {group!r} ({ep.value}) could not be loaded "
                                 f"({type(exc).__name__}: {' '.join(str(exc).split())})") from None
            try:
                _registrar(group)(ep.name)(obj)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"entry point {ep.name!r} of group {group!r} ({ep.value}): {exc}") from None
            done.append(f"{group}:{ep.name}")
    _loaded_entry_points = True
    return done


def load_all(plugins: Sequence[str]) -> List[str]:
    """Entry points, then each ``--plugin`` in order; returns what was loaded.

    Examples
    --------
    >>> load_all(["phy.channel"])[-1]            # entry points first, then each --plugin
    '--plugin:phy.channel'
    """
    done = load_entry_points()
    for spec in plugins:
        load_plugin(spec)
        done.append(f"--plugin:{spec}")
    return done
