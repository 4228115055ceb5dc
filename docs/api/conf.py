"""Sphinx configuration of the API reference (``make docs``; built by ``tests/test_api_docs.py``).

The module list is not written by hand: :func:`write_module_pages` walks the four top-level packages
(``phy``, ``semantic``, ``baselines``, ``experiments``) recursively with :func:`pkgutil.walk_packages` and
writes one page per module into ``_modules/`` (generated, not committed), rendering what the module's
``__all__`` exports (autodoc's default). A module whose import needs an optional extra that is not installed
gets no page; the reason is written to ``_modules/skipped.json`` and listed on the index page.
"""
from __future__ import annotations

import importlib
import inspect
import json
import os
import pkgutil
import re
import sys
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# the checkout being documented comes first (a worktree next to an editable install of another checkout)
sys.path.insert(0, os.environ.get("SEMCOM_DOCS_ROOT", str(ROOT)))

PACKAGES = ("phy", "semantic", "baselines", "experiments")
PAGES = "_modules"

project = "semcom"
author = "semcom developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax"]
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
# dataclass fields are documented by autodoc (undoc-members): render numpy "Attributes" as :ivar: fields so
# they are not described twice
napoleon_use_ivar = True
# the section headers the class docstrings use besides numpy's own (STYLE.md: inputs/outputs with shapes)
napoleon_custom_sections = [("Input", "params_style"), ("Inputs", "params_style"), "Output", "Outputs",
                            "Inputs/outputs"]
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True,
                           "member-order": "bysource"}
autodoc_typehints = "description"
autodoc_preserve_defaults = True
# resolving every type named in a signature would need intersphinx (network); do not warn about them
nitpicky = False
html_theme = "alabaster"
html_title = "semcom API reference"
exclude_patterns = ["_build"]
# "more than one target found" for a bare attribute name in a type field (e.g. ``n``): not a docstring error
suppress_warnings = ["ref.python"]


def _missing_extra(exc: BaseException):
    """The optional distribution whose absence made an import fail, or None for a real error."""
    from experiments.core.extras import IMPORT_NAMES, EXTRAS, MissingExtraError

    if isinstance(exc, MissingExtraError):
        return str(exc)
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        dist = IMPORT_NAMES.get(top, top).lower().replace("_", "-")
        optional = {d.lower().replace("_", "-") for e, ds in EXTRAS.items() if e != "all" for d in ds}
        if dist in optional:
            return f"needs the optional package {dist!r} (not installed)"
    return None


def discover_modules():
    """``(module name, skip reason or None)`` for every module of the four packages, in walk order."""
    found = []
    for pkg_name in PACKAGES:
        pkg = importlib.import_module(pkg_name)
        found.append((pkg_name, None))
        for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg_name + "."):
            try:
                importlib.import_module(info.name)
            except Exception as exc:  # an optional extra is missing: skip with the reason; else re-raise
                reason = _missing_extra(exc)
                if reason is None:
                    raise
                found.append((info.name, reason))
                continue
            found.append((info.name, None))
    return found


def _is_data(obj) -> bool:
    return not (inspect.isclass(obj) or inspect.isroutine(obj) or inspect.ismodule(obj))


def home_module(module, attr: str) -> str:
    """The module whose page documents ``module.attr``: where a class or function is defined (a package
    re-exports the names of its modules; they are documented once, on their own module's page)."""
    obj = getattr(module, attr)
    if _is_data(obj):
        return module.__name__
    home = getattr(obj, "__module__", None) or module.__name__
    return home if home.split(".")[0] in PACKAGES else module.__name__


def module_page(name: str) -> str:
    """The reStructuredText of one module's page.

    ``automodule`` renders the classes and functions of ``__all__``; autodoc leaves out module-level data
    without a ``#:`` doc comment even with ``undoc-members``, so every constant of ``__all__`` gets its own
    ``autodata`` (its value shown when short) and is excluded from ``automodule``.
    """
    module = importlib.import_module(name)
    exported = list(getattr(module, "__all__", []))
    data = [n for n in exported if _is_data(getattr(module, n))]
    moved = {n: home_module(module, n) for n in exported if home_module(module, n) != name}
    title = f"``{name}``"
    lines = [title, "=" * len(title), "", f".. automodule:: {name}"]
    if data or moved:
        lines.append(f"   :exclude-members: {', '.join(data + list(moved))}")
    lines.append("")
    if moved:  # documented on the page of the module that defines them; listed here as links
        lines += ["Re-exported here (documented where they are defined):", ""]
        lines += [f"* :{'class' if inspect.isclass(getattr(module, n)) else 'func'}:`~{h}.{n}`"
                  for n, h in moved.items()]
        lines.append("")
    for n in data:
        lines += [f".. autodata:: {name}.{n}"]
        if len(repr(getattr(module, n))) > 100:
            lines.append("   :no-value:")
        lines.append("")
    return "\n".join(lines)


def write_module_pages(srcdir: Path) -> None:
    out = srcdir / PAGES
    out.mkdir(exist_ok=True)
    for old in out.glob("*.rst"):
        old.unlink()
    skipped = {}
    for name, reason in discover_modules():
        if reason is not None:
            skipped[name] = reason
            continue
        (out / f"{name}.rst").write_text(module_page(name))
    (out / "skipped.json").write_text(json.dumps(skipped, indent=1, sort_keys=True))
    lines = []
    if skipped:
        lines += ["Not rendered here (an optional extra is missing):", ""]
        lines += [f"- ``{n}``: {r}" for n, r in sorted(skipped.items())]
    (out / "skipped.inc").write_text("\n".join(lines) + "\n")


_FIELD = re.compile(r"^:(param|type|ivar|vartype)\s+([^:]*):")
_NAME = re.compile(r"^\*{0,2}[A-Za-z_][A-Za-z0-9_]*$")


def _check_fields(app, what, name, obj, options, lines) -> None:
    """Warn (an error under ``-W``) about a napoleon field whose name is not an identifier.

    That is prose after a numpy ``Parameters``/``Attributes`` section with no new section header: napoleon
    turns each of its lines into a bogus parameter, which docutils often renders without any warning.
    """
    for line in lines:
        m = _FIELD.match(line)
        names = m.group(2).replace("\\", "").split(",") if m else []
        if m and not all(_NAME.match(n.strip()) for n in names):
            logger.warning("docstring of %s: %r is not a parameter name (prose after a numpy section "
                           "needs its own header, e.g. Notes)", name, m.group(2).strip(),
                           type="semcom", subtype="docstring")
            return


def _drop_type_docstring(app, what, name, obj, options, lines) -> None:
    """A constant without a doc comment: show no text rather than the docstring of its type (``dict``)."""
    if what in ("data", "attribute") and _is_data(obj):
        type_doc = inspect.getdoc(type(obj)) or ""
        if type_doc and "\n".join(lines).strip() == type_doc.strip():
            lines[:] = []


def _drop_foreign_inherited_doc(app, what, name, obj, options, lines) -> None:
    """A method without its own docstring that overrides a method of another library (``forward`` and
    ``extra_repr`` of :class:`torch.nn.Module`): no text rather than that library's generic docstring.
    Docstrings inherited from a class of the four packages are kept."""
    if what != "method" or getattr(obj, "__doc__", None):
        return
    cls_path, attr = name.rsplit(".", 1)
    mod_name, _, cls_name = cls_path.rpartition(".")
    cls = getattr(sys.modules.get(mod_name), cls_name, None)
    if not inspect.isclass(cls):
        return
    for base in cls.__mro__[1:]:
        inherited = base.__dict__.get(attr)
        if inherited is not None and getattr(inherited, "__doc__", None):
            if base.__module__.split(".")[0] not in PACKAGES:
                lines[:] = []
            return


def _on_builder_inited(app) -> None:
    write_module_pages(Path(app.srcdir))


def setup(app):
    app.connect("builder-inited", _on_builder_inited)
    app.connect("autodoc-process-docstring", _drop_type_docstring, priority=100)  # before napoleon
    app.connect("autodoc-process-docstring", _drop_foreign_inherited_doc, priority=100)
    app.connect("autodoc-process-docstring", _check_fields, priority=900)  # after napoleon (500)
    return {"parallel_read_safe": True}
