"""The API reference (``docs/api``: Sphinx autodoc + napoleon) builds with warnings as errors, and every name
exported by the ``__all__`` of every module of ``phy``, ``semantic``, ``baselines`` and ``experiments`` has its
entry on its module's page.

The modules are discovered here the way ``docs/api/conf.py`` discovers them (:func:`pkgutil.walk_packages`),
never listed by hand, so a module that is moved or added is checked without editing this file. A module whose
import needs an optional extra that is not installed is skipped (the build leaves it out and says why).
The build runs once, in a fresh process, into a temporary folder (about 20 s: it imports every module).
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from api_modules import module_names

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "api"
MODULES = module_names()


def _load_conf():
    pytest.importorskip("sphinx", reason="the API reference needs Sphinx (the docs or test extra)")
    spec = importlib.util.spec_from_file_location("_semcom_docs_conf", DOCS / "conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    return conf


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Build the reference (``-W --keep-going``) from a copy of ``docs/api``; the completed process and the
    output folder."""
    pytest.importorskip("sphinx", reason="the API reference needs Sphinx (the docs or test extra)")
    tmp = tmp_path_factory.mktemp("api_docs")
    src, out = tmp / "src", tmp / "html"
    src.mkdir()
    for name in ("conf.py", "index.rst"):
        shutil.copy(DOCS / name, src / name)
    env = dict(os.environ, SEMCOM_DOCS_ROOT=str(ROOT),
               PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q",
                           "-d", str(tmp / "doctrees"), str(src), str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    skipped = json.loads((src / "_modules" / "skipped.json").read_text()) if proc.returncode == 0 else {}
    return proc, out, skipped


@pytest.mark.slow
def test_api_reference_builds_with_warnings_as_errors(built):
    proc, out, _ = built
    assert proc.returncode == 0, f"sphinx -W failed:\n{proc.stderr[-6000:]}"
    assert (out / "index.html").is_file()


def _exported(module):
    return list(getattr(module, "__all__", []))


@pytest.mark.slow
@pytest.mark.parametrize("name", MODULES)
def test_every_exported_name_is_rendered(built, name):
    proc, out, skipped = built
    if proc.returncode != 0:
        pytest.fail("the reference did not build (see test_api_reference_builds_with_warnings_as_errors)")
    if name in skipped:
        pytest.skip(f"{name}: {skipped[name]}")
    module = importlib.import_module(name)
    page = out / "_modules" / f"{name}.html"
    assert page.is_file(), f"no page for {name}"
    html = page.read_text(encoding="utf-8")
    assert f'id="module-{name}"' in html
    conf = _load_conf()
    own = [n for n in _exported(module) if conf.home_module(module, n) == name]
    missing = [n for n in own if f'id="{name}.{n}"' not in html]
    assert not missing, f"{name}: exported but not rendered: {missing}"
    for n in set(_exported(module)) - set(own):  # a re-export: rendered on the page of its own module
        home = conf.home_module(module, n)
        assert f'id="{home}.{n}"' in (out / "_modules" / f"{home}.html").read_text(encoding="utf-8"), (name, n)
        assert f"{home}.html#{home}.{n}" in html, f"{name}: no link to the re-exported {n}"
    # every example of the module's and its exported names' docstrings is rendered as a console session
    # (a lower bound: methods' examples add more prompts to the page)
    docs = [module.__doc__ or ""] + [getattr(module, n).__doc__ or "" for n in own
                                     if inspect.isclass(getattr(module, n)) or
                                     inspect.isroutine(getattr(module, n))]
    prompts = sum(line.lstrip().startswith(">>>") for d in docs for line in d.splitlines())
    assert html.count("&gt;&gt;&gt;") >= prompts, f"{name}: examples not rendered as code"


def test_field_check_flags_prose_after_a_parameters_section(monkeypatch):
    # the check the build adds: napoleon turns the lines of a paragraph that follows a numpy section without
    # its own header into bogus parameters, which docutils often renders without a warning
    from sphinx.ext.napoleon import Config
    from sphinx.ext.napoleon.docstring import NumpyDocstring

    conf = _load_conf()
    seen = []
    monkeypatch.setattr(conf.logger, "warning", lambda msg, *args, **kw: seen.append(msg % args))
    cfg = Config(napoleon_use_ivar=True, napoleon_google_docstring=False)
    body = "Parameters\n----------\nx : int\n    Width.\n\n"
    prose = "Call with ``y [B, N]``, returns ``[B, M]``.\n"

    def check(text):
        seen.clear()
        lines = str(NumpyDocstring(text, cfg, what="class")).splitlines()
        conf._check_fields(None, "class", "demo.Block", None, {}, lines)
        return list(seen)

    bad = check("A block.\n\n" + body + prose)
    assert len(bad) == 1 and "demo.Block" in bad[0] and "Call with" in bad[0]
    assert check("A block.\n\n" + body + "Notes\n-----\n" + prose) == []
    # several names on one line and ``**kwargs`` are parameter names
    assert check("A block.\n\nParameters\n----------\na, b : int\n\\*\\*kwargs\n    More.\n") == []


def test_missing_extra_is_a_skip_reason_and_any_other_import_error_is_not():
    conf = _load_conf()
    from experiments.core.extras import MissingExtraError

    reason = conf._missing_extra(ModuleNotFoundError("No module named 'diffusers'", name="diffusers"))
    assert reason is not None and "diffusers" in reason
    assert "open-clip-torch" in conf._missing_extra(ModuleNotFoundError("x", name="open_clip.model"))
    assert conf._missing_extra(MissingExtraError("needs the package 'ray'")) == "needs the package 'ray'"
    # a package no extra provides, and errors other than a missing module, are real errors: the build fails
    assert conf._missing_extra(ModuleNotFoundError("No module named 'nosuchpkg'", name="nosuchpkg")) is None
    assert conf._missing_extra(ImportError("cannot import name 'x'")) is None
    assert conf._missing_extra(SyntaxError("bad")) is None
