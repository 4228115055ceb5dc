"""Sphinx extension: the API reference pages, generated from the package tree at build time.

Nothing is listed by hand. :func:`discover_modules` walks the four top-level packages (``phy``,
``semantic``, ``baselines``, ``experiments``) with :func:`pkgutil.walk_packages`; every module gets a page
``api/generated/<module>.rst`` that renders what its ``__all__`` exports (autodoc), and every package's page
adds an autosummary table of its subpackages and modules, so the reference reads as the package tree:
``phy`` -> ``phy.channel`` -> ``phy.channel.flat``. The pages are written into the source folder Sphinx
builds from, which ``docs/build.py`` stages outside the repository's tracked files (``build/docs/src`` by
default). A module whose import needs an optional extra that is not installed gets no page; the reason is
written to ``api/generated/skipped.json`` and listed on the index page.

The extension also checks the docstrings while they are rendered (:func:`check_fields`: prose after a numpy
``Parameters`` section without its own header is an error under ``-W``) and drops text that would describe
another library's object instead of ours (:func:`drop_type_docstring`, :func:`drop_foreign_inherited_doc`).
"""
from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from sphinx.util import logging

logger = logging.getLogger(__name__)

#: the documented packages, in layer order (each imports only the ones before it)
PACKAGES = ("phy", "semantic", "baselines", "experiments")
#: where the generated pages go, relative to the Sphinx source folder
GENERATED = "api/generated"


def missing_extra(exc: BaseException) -> Optional[str]:
    """The optional distribution whose absence made an import fail, or None for a real error."""
    from experiments.core.extras import EXTRAS, IMPORT_NAMES, MissingExtraError

    if isinstance(exc, MissingExtraError):
        return str(exc)
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        dist = IMPORT_NAMES.get(top, top).lower().replace("_", "-")
        optional = {d.lower().replace("_", "-") for e, ds in EXTRAS.items() if e != "all" for d in ds}
        if dist in optional:
            return f"needs the optional package {dist!r} (not installed)"
    return None


def discover_modules() -> List[Tuple[str, Optional[str], bool]]:
    """``(module name, skip reason or None, is a package)`` for every module of the four packages."""
    found = []
    for pkg_name in PACKAGES:
        pkg = importlib.import_module(pkg_name)
        found.append((pkg_name, None, True))
        for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg_name + "."):
            try:
                importlib.import_module(info.name)
            except Exception as exc:  # an optional extra is missing: skip with the reason; else re-raise
                reason = missing_extra(exc)
                if reason is None:
                    raise
                found.append((info.name, reason, info.ispkg))
                continue
            found.append((info.name, None, info.ispkg))
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


def _summary_table(names: List[str]) -> List[str]:
    if not names:
        return []
    return [".. autosummary::", ""] + [f"   {n}" for n in names] + [""]


def module_page(name: str, children: List[str], packages=frozenset()) -> str:
    """The reStructuredText of one module's page.

    A table of the module's own exports (autosummary), then ``automodule``, which renders the classes and
    functions of ``__all__``. Autodoc leaves out module-level data without a ``#:`` doc comment even with
    ``undoc-members``, so every constant of ``__all__`` gets its own ``autodata`` (its value shown when short)
    and is excluded from ``automodule``. A package's page ends with the table of its subpackages and modules
    (``children``) and a hidden toctree to their pages.
    """
    module = importlib.import_module(name)
    exported = list(getattr(module, "__all__", []))
    data = [n for n in exported if _is_data(getattr(module, n))]
    moved = {n: home_module(module, n) for n in exported if home_module(module, n) != name}
    own = [n for n in exported if n not in moved]
    title = f"``{name}``"
    lines = [title, "=" * len(title), "", f".. automodule:: {name}"]
    if data or moved:
        lines.append(f"   :exclude-members: {', '.join(data + list(moved))}")
    lines.append("")
    if children:
        head = "Subpackages" if all(c in packages for c in children) else (
            "Subpackages and modules" if any(c in packages for c in children) else "Modules")
        # names relative to the module automodule made current (autosummary refuses the full name there)
        lines += [head, "-" * len(head), ""] + _summary_table([c[len(name) + 1:] for c in children])
        lines += [".. toctree::", "   :hidden:", ""] + [f"   {c}" for c in children] + [""]
    if own:
        lines += ["Contents", "--------", ""] + _summary_table(own)
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


def _children(name: str, names: List[str]) -> List[str]:
    depth = name.count(".") + 1
    return [n for n in names if n.startswith(name + ".") and n.count(".") == depth]


def write_module_pages(srcdir: Path) -> Dict[str, str]:
    """Write every module's page and the index's package tables into ``srcdir/api/generated``; return the
    skipped modules with their reasons."""
    out = srcdir / GENERATED
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.rst"):
        old.unlink()
    found = discover_modules()
    skipped = {n: r for n, r, _ in found if r is not None}
    names = [n for n, r, _ in found if r is None]
    packages = frozenset(n for n, r, ispkg in found if r is None and ispkg)
    for name in names:
        (out / f"{name}.rst").write_text(module_page(name, _children(name, names), packages))
    (out / "skipped.json").write_text(json.dumps(skipped, indent=1, sort_keys=True))
    # the index: one section per top-level package with the table of its subpackages and modules
    lines = []
    for pkg in PACKAGES:
        doc = (importlib.import_module(pkg).__doc__ or "").strip().splitlines()
        head = f"``{pkg}``" + (f": {doc[0].rstrip('.')}" if doc else "")
        lines += [head, "-" * len(head), "", f"Package page: :doc:`generated/{pkg}`.", ""]
        lines += _summary_table(_children(pkg, names))
    lines += [".. toctree::", "   :hidden:", ""] + [f"   generated/{p}" for p in PACKAGES] + [""]
    if skipped:
        lines += ["Not rendered here (an optional extra is missing):", ""]
        lines += [f"- ``{n}``: {r}" for n, r in sorted(skipped.items())]
    (out / "packages.inc").write_text("\n".join(lines) + "\n")
    return skipped


_AUTOSUMMARY_SUMMARY = None

_FIELD = re.compile(r"^:(param|type|ivar|vartype)\s+([^:]*):")
_NAME = re.compile(r"^\*{0,2}[A-Za-z_][A-Za-z0-9_]*$")


def check_fields(app, what, name, obj, options, lines) -> None:
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


def drop_type_docstring(app, what, name, obj, options, lines) -> None:
    """A constant without a doc comment: show no text rather than the docstring of its type (``dict``)."""
    if what in ("data", "attribute") and _is_data(obj):
        type_doc = inspect.getdoc(type(obj)) or ""
        if type_doc and "\n".join(lines).strip() == type_doc.strip():
            lines[:] = []


def drop_foreign_inherited_doc(app, what, name, obj, options, lines) -> None:
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


def first_sentence(doc, settings=None) -> str:
    """The summary autosummary shows for a docstring: its first sentence, never cut inside an inline literal
    (autosummary's own split at ``". "`` cuts ``split off ``. ! ?```` in two and leaves markup open)."""
    from sphinx.ext import autosummary

    summary = _AUTOSUMMARY_SUMMARY(doc, settings)
    if summary.count("``") % 2 == 0:
        return summary
    para = []
    for line in doc:
        if not line.strip():
            if para:
                break
            continue
        para.append(line.strip())
    text, inside, i = " ".join(para), False, 0
    while i < len(text):
        if text.startswith("``", i):
            inside, i = not inside, i + 2
            continue
        if not inside and text[i] == "." and (i + 1 == len(text) or text[i + 1] == " "):
            return text[:i + 1]
        i += 1
    return autosummary.literal_re.sub(".", text)


def _on_builder_inited(app) -> None:
    write_module_pages(Path(app.srcdir))


def setup(app):
    from sphinx.ext import autosummary

    global _AUTOSUMMARY_SUMMARY
    if autosummary.extract_summary is not first_sentence:
        _AUTOSUMMARY_SUMMARY = autosummary.extract_summary
        autosummary.extract_summary = first_sentence
    app.connect("builder-inited", _on_builder_inited)
    app.connect("autodoc-process-docstring", drop_type_docstring, priority=100)  # before napoleon
    app.connect("autodoc-process-docstring", drop_foreign_inherited_doc, priority=100)
    app.connect("autodoc-process-docstring", check_fields, priority=900)  # after napoleon (500)
    return {"parallel_read_safe": True}
