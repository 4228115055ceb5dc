"""Every public name of ``phy``, ``semantic``, ``baselines`` and ``experiments`` is documented, and every
example in the docstrings runs and prints what it says.

"Public" is what a module's ``__all__`` exports; the modules are discovered with
:func:`pkgutil.walk_packages` (as ``docs/api/conf.py`` does), never listed by hand. A module whose import
needs an optional extra that is not installed is skipped (as the API reference skips it).

* Classes and functions: a numpy-style docstring of their own (a dataclass's generated ``Name(field, ...)``
  text does not count) with an ``Examples`` section holding at least one ``>>>`` line. When the signature
  (``__init__``/``forward``/``__call__`` for a class) or a dataclass field involves a ``torch.Tensor``, the
  text outside the examples (or, for a class, the docstring of its ``forward``/``__call__``) must say what
  shape it has: a bracketed shape such as ``[batch, n]`` or the word "shape" (e.g. "keeps its shape" for an
  elementwise function).
* Constants: a ``#:`` doc comment (one line above the assignment, read by Sphinx's autodoc as the
  constant's docstring). No example: the rendered page shows the value itself, and a doctest that only
  echoes a constant's value would test nothing.
* Examples: every docstring of every module (module, classes, methods, functions) is run with
  :mod:`doctest` (``ELLIPSIS | NORMALIZE_WHITESPACE``), torch/numpy/random seeded with 0 before each
  docstring and torch on one thread, so the printed values are reproducible. An example that needs model
  weights, a dataset or a GPU is marked ``# doctest: +SKIP`` and its docstring says why.
"""
from __future__ import annotations

import doctest
import functools
import importlib
import inspect
import random
import re
import sys

import numpy as np
import pytest
import torch
from api_modules import PACKAGES, module_names

_EXAMPLES = re.compile(r"^[ \t]*Examples?[ \t]*\n[ \t]*-{3,}[ \t]*$", re.M)
_SHAPE = re.compile(r"\[[^\[\]\n]*\]|\bshapes?\b")


def _optional_missing(exc: BaseException) -> bool:
    from experiments.core.extras import EXTRAS, IMPORT_NAMES, MissingExtraError

    if isinstance(exc, MissingExtraError):
        return True
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        dist = IMPORT_NAMES.get(top, top).lower().replace("_", "-")
        return dist in {d.lower().replace("_", "-") for e, ds in EXTRAS.items() if e != "all" for d in ds}
    return False


MODULES = module_names()


def _import(name: str):
    try:
        return importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - an optional extra is missing: skip; anything else is an error
        if _optional_missing(exc):
            pytest.skip(f"{name}: {exc}")
        raise


def _is_api(obj) -> bool:
    return inspect.isclass(obj) or inspect.isroutine(obj)


def _own_doc(obj) -> str:
    """The object's own docstring ('' for none, for an inherited one and for a dataclass's generated one)."""
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    doc = doc or ""
    if inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("):  # dataclass: the signature only
        return ""
    return inspect.cleandoc(doc)


def _annotation_text(obj) -> str:
    """Every annotation of the signature(s) of ``obj`` (and of a class's fields), as one string."""
    funcs = [obj]
    if inspect.isclass(obj):
        funcs = [obj.__dict__[m] for m in ("__init__", "forward", "__call__", "call")
                 if inspect.isfunction(obj.__dict__.get(m))]
    parts = []
    for fn in funcs:
        parts += [str(a) for a in getattr(fn, "__annotations__", {}).values()]
    if inspect.isclass(obj):
        parts += [str(a) for a in obj.__dict__.get("__annotations__", {}).values()]
    return " ".join(parts)


def _problems(obj) -> list:
    doc = _own_doc(obj)
    if not doc:
        return ["no docstring"]
    out = []
    m = _EXAMPLES.search(doc)
    if m is None or ">>>" not in doc[m.end():]:
        out.append("no Examples section with a >>> line")
    body = doc[:m.start()] if m else doc
    if inspect.isclass(obj):  # a block's shapes may be documented on its forward/__call__
        body += "".join(getattr(obj, f).__doc__ or "" for f in ("forward", "__call__", "call")
                        if inspect.isfunction(obj.__dict__.get(f)))
    if "Tensor" in _annotation_text(obj) and not _SHAPE.search(body):
        out.append("takes or returns a torch.Tensor but no shape ([..., n] or 'shape') is documented")
    return out


@pytest.mark.parametrize("name", MODULES)
def test_every_public_class_and_function_has_a_docstring_with_an_example(name):
    module = _import(name)
    bad = {}
    for attr in getattr(module, "__all__", []):
        obj = getattr(module, attr)
        if not _is_api(obj) or not getattr(obj, "__module__", "").startswith(PACKAGES):
            continue
        problems = _problems(obj)
        if problems:
            bad[attr] = problems
    assert not bad, f"{name}: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in bad.items())


@functools.lru_cache(maxsize=None)
def _attr_docs(name: str) -> frozenset:
    """Names of the module-level variables of module ``name`` that have a ``#:`` doc comment."""
    from sphinx.pycode import ModuleAnalyzer

    return frozenset(key[1] for key, lines in ModuleAnalyzer.for_module(name).find_attr_docs().items()
                     if key[0] == "" and "".join(lines).strip())


@pytest.mark.parametrize("name", MODULES)
def test_every_public_constant_has_a_doc_comment(name):
    pytest.importorskip("sphinx", reason="the doc comments are read with Sphinx's analyser (test extra)")
    module = _import(name)
    data = [a for a in getattr(module, "__all__", [])
            if not _is_api(getattr(module, a)) and not inspect.ismodule(getattr(module, a))]

    def documented(a):  # here, or (a re-export) in the module of the packages it comes from
        return a in _attr_docs(name) or any(
            a in _attr_docs(m) and getattr(sys.modules[m], a, None) is getattr(module, a)
            for m in MODULES if m != name and m in sys.modules)

    missing = [a for a in data if not documented(a)]
    assert not missing, f"{name}: constants in __all__ without a '#:' doc comment: {missing}"


def _run_doctests(module):
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for test in sorted(finder.find(module, module.__name__), key=lambda t: t.name):
            random.seed(0)
            np.random.seed(0)
            torch.manual_seed(0)
            out = []
            res = runner.run(test, out=out.append, clear_globs=True)
            if res.failed:
                report.append("".join(out))
    finally:
        torch.set_num_threads(threads)
    return runner.summarize(verbose=False), report


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = _import(name)
    result, report = _run_doctests(module)
    assert not report, f"{name}: {result.failed} of {result.attempted} examples failed\n" + "\n".join(report)[-8000:]


def test_the_checks_flag_a_missing_example_a_missing_shape_and_a_wrong_example():
    import dataclasses
    import types

    def no_example(x: int) -> int:
        """Twice ``x``."""

    def no_shape(x: torch.Tensor) -> torch.Tensor:
        """Twice ``x``.

        Examples
        --------
        >>> 2 * 2
        4
        """

    def with_shape(x: torch.Tensor) -> torch.Tensor:
        """Twice ``x`` ``[..., n]``.

        Examples
        --------
        >>> 2 * 2
        4
        """

    @dataclasses.dataclass
    class Generated:
        x: torch.Tensor

    assert _problems(no_example) == ["no Examples section with a >>> line"]
    assert _problems(no_shape) == ["takes or returns a torch.Tensor but no shape ([..., n] or 'shape') is documented"]
    assert _problems(with_shape) == []
    assert _problems(Generated) == ["no docstring"]  # the dataclass's generated "Generated(x: ...)" text

    module = types.ModuleType("doc_demo")
    exec(compile('def f():\n    """One.\n\n    >>> 1 + 1\n    3\n    """\n', "doc_demo", "exec"), module.__dict__)
    module.f.__module__ = "doc_demo"
    result, report = _run_doctests(module)
    assert (result.failed, result.attempted) == (1, 1) and "Expected:\n    3\nGot:\n    2" in report[0]
