"""The documentation site (``make docs`` = ``python docs/build.py``): it builds with warnings as errors from a
staged copy, writes nothing into ``docs/``, every user-guide topic is reachable from the index, every tutorial
page shows its code, printed output and figures, and every name exported by the ``__all__`` of every module of
``phy``, ``semantic``, ``baselines`` and ``experiments`` has its entry on its module's page.

The modules are discovered here the way the ``semcom_api`` extension discovers them
(:func:`pkgutil.walk_packages`), never listed by hand. A module whose import needs an optional extra that is not
installed is skipped (the build leaves it out and says why). The build runs once, in a fresh process, into a
temporary folder, with the tutorials in their quick mode (``--quick``; ``tests/test_tutorials.py`` runs them as
shipped).
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from api_modules import module_names

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MODULES = module_names()
TUTORIALS = sorted((DOCS / "tutorials").glob("[0-9][0-9]_*.py"))
#: the user-guide topics a reader must reach from the index page
GUIDE = ("conventions", "channels", "ber-curves", "analog-vs-digital", "papers", "plugins", "configs",
         "scale-out", "cli")


def _load_ext(name: str):
    pytest.importorskip("sphinx", reason="the documentation needs Sphinx (the docs or test extra)")
    spec = importlib.util.spec_from_file_location(f"_semcom_docs_{name}", DOCS / "_ext" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _snapshot(folder: Path):
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Build the site (``-W --keep-going``, tutorials in quick mode) into a temporary folder; the completed
    process, the HTML folder, the skipped modules and whether ``docs/`` was left untouched."""
    for dist in ("sphinx", "sphinx_gallery", "myst_parser"):
        pytest.importorskip(dist, reason="the documentation needs the docs extra")
    out = tmp_path_factory.mktemp("site")
    before = _snapshot(DOCS)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    proc = subprocess.run([sys.executable, str(DOCS / "build.py"), str(out), "--quick", "--", "-q"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=3000)
    untouched = _snapshot(DOCS) == before
    skipped_file = out / "src" / "api" / "generated" / "skipped.json"
    skipped = json.loads(skipped_file.read_text()) if skipped_file.is_file() else {}
    return proc, out / "html", skipped, untouched


@pytest.mark.slow
def test_site_builds_with_warnings_as_errors_and_writes_nothing_into_docs(built):
    proc, html, _, untouched = built
    assert proc.returncode == 0, f"the site build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    assert (html / "index.html").is_file()
    assert untouched, "the build wrote into docs/"
    assert "mathjax" in (html / "guide" / "conventions.html").read_text(encoding="utf-8").lower()


@pytest.mark.slow
def test_every_guide_topic_is_reachable_from_the_index(built):
    proc, html, _, _ = built
    assert proc.returncode == 0
    index = (html / "index.html").read_text(encoding="utf-8")
    for page in [f"guide/{g}.html" for g in GUIDE] + ["getting-started.html", "performance.html",
                                                      "reliability.html", "api/index.html", "tutorials/index.html"]:
        assert f'href="{page}' in index, f"the index page does not link to {page}"
        assert (html / page).is_file(), page


@pytest.mark.slow
@pytest.mark.parametrize("script", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_page_shows_code_output_and_figures(built, script):
    proc, html, _, _ = built
    assert proc.returncode == 0
    page = (html / "tutorials" / f"{script.stem}.html").read_text(encoding="utf-8")
    assert 'class="highlight-Python' in page or 'class="highlight-python' in page, "no code"
    assert "sphx-glr-script-out" in page, "no printed output"
    images = re.findall(r'<img[^>]+src="(_images/sphx_glr_[^"]+\.png)"', page)
    assert images, "no figure"
    assert all((html / "tutorials" / src).is_file() or (html / src).is_file() for src in images)


@pytest.mark.slow
def test_api_pages_are_grouped_by_package(built):
    proc, html, _, _ = built
    assert proc.returncode == 0
    index = (html / "api" / "index.html").read_text(encoding="utf-8")
    for sub in ("channel", "ofdm", "mimo", "mapping", "fec", "link", "source", "theory", "sim", "utils", "interop"):
        assert f"generated/phy.{sub}.html" in index, sub
    channel = (html / "api" / "generated" / "phy.channel.html").read_text(encoding="utf-8")
    assert "phy.channel.flat.html" in channel and "autosummary" in channel


@pytest.mark.slow
@pytest.mark.parametrize("name", MODULES)
def test_every_exported_name_is_rendered(built, name):
    proc, html, skipped, _ = built
    if proc.returncode != 0:
        pytest.fail("the site did not build (see test_site_builds_with_warnings_as_errors_and_writes_nothing_into_docs)")
    if name in skipped:
        pytest.skip(f"{name}: {skipped[name]}")
    module = importlib.import_module(name)
    pages = html / "api" / "generated"
    page = pages / f"{name}.html"
    assert page.is_file(), f"no page for {name}"
    text = page.read_text(encoding="utf-8")
    assert f'id="module-{name}"' in text
    api = _load_ext("semcom_api")
    exported = list(getattr(module, "__all__", []))
    own = [n for n in exported if api.home_module(module, n) == name]
    missing = [n for n in own if f'id="{name}.{n}"' not in text]
    assert not missing, f"{name}: exported but not rendered: {missing}"
    for n in set(exported) - set(own):  # a re-export: rendered on the page of its own module
        home = api.home_module(module, n)
        assert f'id="{home}.{n}"' in (pages / f"{home}.html").read_text(encoding="utf-8"), (name, n)
        assert f"{home}.html#{home}.{n}" in text, f"{name}: no link to the re-exported {n}"
    # every example of the module's and its exported names' docstrings is rendered as a console session
    # (a lower bound: methods' examples add more prompts to the page)
    docs = [module.__doc__ or ""] + [getattr(module, n).__doc__ or "" for n in own
                                     if inspect.isclass(getattr(module, n)) or
                                     inspect.isroutine(getattr(module, n))]
    prompts = sum(line.lstrip().startswith(">>>") for d in docs for line in d.splitlines())
    assert text.count("&gt;&gt;&gt;") >= prompts, f"{name}: examples not rendered as code"


# --------------------------------------------------------------------------------------------------------------
# without a build
# --------------------------------------------------------------------------------------------------------------
def test_the_index_source_links_every_topic():
    index = (DOCS / "index.md").read_text()
    guide = (DOCS / "guide" / "index.md").read_text()
    for g in GUIDE:
        assert (DOCS / "guide" / f"{g}.md").is_file(), g
        assert f"\n{g}\n" in guide, f"guide/index.md's toctree lacks {g}"
    for page in ("getting-started", "tutorials/index", "guide/index", "performance", "reliability", "api/index"):
        assert f"\n{page}\n" in index, f"index.md's toctree lacks {page}"


def test_pages_state_facts_not_history():
    pages = [p for p in DOCS.rglob("*") if p.suffix in (".md", ".rst", ".py") and "_ext" not in p.parts]
    for p in pages + [ROOT / "README.md"]:
        text = p.read_text(encoding="utf-8")
        assert not re.search(r"\bissue[ -]?#?\d+", text, re.IGNORECASE), p
        assert "../shared" not in text and "/work/" not in text, p


def test_build_refuses_an_output_folder_inside_docs(capsys):
    build = runpy.run_path(str(DOCS / "build.py"), run_name="semcom_docs_build")
    with pytest.raises(SystemExit) as exc:
        build["main"]([str(DOCS / "html")])
    assert exc.value.code == 2 and "outside" in capsys.readouterr().err


def test_conf_refuses_to_build_docs_in_place(monkeypatch):
    pytest.importorskip("sphinx_gallery", reason="the documentation needs the docs extra")
    monkeypatch.delenv("SEMCOM_DOCS_ROOT", raising=False)
    with pytest.raises(RuntimeError, match="make docs"):
        runpy.run_path(str(DOCS / "conf.py"))


def test_staging_copies_changes_and_drops_removed_files(tmp_path):
    build = runpy.run_path(str(DOCS / "build.py"), run_name="semcom_docs_build")
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "guide").mkdir(parents=True)
    (src / "tutorials").mkdir()
    (src / "index.md").write_text("a")
    (src / "guide" / "x.md").write_text("x")
    (src / "tutorials" / "01_t.py").write_text("t")
    build["stage"](src, dst)
    assert (dst / "guide" / "x.md").read_text() == "x" and not (dst / "tutorials").exists()
    (dst / "api" / "generated").mkdir(parents=True)
    (dst / "api" / "generated" / "m.rst").write_text("generated")
    (src / "guide" / "x.md").unlink()
    (src / "index.md").write_text("b")
    build["stage"](src, dst)
    assert (dst / "index.md").read_text() == "b" and not (dst / "guide").exists()
    assert (dst / "api" / "generated" / "m.rst").read_text() == "generated"   # generated pages are kept


def test_summary_never_cuts_an_inline_literal():
    pytest.importorskip("sphinx")
    api = _load_ext("semcom_api")
    from sphinx.ext import autosummary

    api._AUTOSUMMARY_SUMMARY = lambda doc, settings: "Split off ``."     # what autosummary returns
    doc = ["Split off ``. ! ?``, drop other symbols. More text."]
    assert api.first_sentence(doc) == "Split off ``. ! ?``, drop other symbols."
    api._AUTOSUMMARY_SUMMARY = lambda doc, settings: "A summary."
    assert api.first_sentence(["A summary. More."]) == "A summary."
    assert autosummary.extract_summary is not api.first_sentence       # loading the module patches nothing


def test_field_check_flags_prose_after_a_parameters_section(monkeypatch):
    # the check the build adds: napoleon turns the lines of a paragraph that follows a numpy section without
    # its own header into bogus parameters, which docutils often renders without a warning
    from sphinx.ext.napoleon import Config
    from sphinx.ext.napoleon.docstring import NumpyDocstring

    api = _load_ext("semcom_api")
    seen = []
    monkeypatch.setattr(api.logger, "warning", lambda msg, *args, **kw: seen.append(msg % args))
    cfg = Config(napoleon_use_ivar=True, napoleon_google_docstring=False)
    body = "Parameters\n----------\nx : int\n    Width.\n\n"
    prose = "Call with ``y [B, N]``, returns ``[B, M]``.\n"

    def check(text):
        seen.clear()
        lines = str(NumpyDocstring(text, cfg, what="class")).splitlines()
        api.check_fields(None, "class", "demo.Block", None, {}, lines)
        return list(seen)

    bad = check("A block.\n\n" + body + prose)
    assert len(bad) == 1 and "demo.Block" in bad[0] and "Call with" in bad[0]
    assert check("A block.\n\n" + body + "Notes\n-----\n" + prose) == []
    # several names on one line and ``**kwargs`` are parameter names
    assert check("A block.\n\nParameters\n----------\na, b : int\n\\*\\*kwargs\n    More.\n") == []


def test_missing_extra_is_a_skip_reason_and_any_other_import_error_is_not():
    api = _load_ext("semcom_api")
    from experiments.core.extras import MissingExtraError

    reason = api.missing_extra(ModuleNotFoundError("No module named 'diffusers'", name="diffusers"))
    assert reason is not None and "diffusers" in reason
    assert "open-clip-torch" in api.missing_extra(ModuleNotFoundError("x", name="open_clip.model"))
    assert api.missing_extra(MissingExtraError("needs the package 'ray'")) == "needs the package 'ray'"
    # a package no extra provides, and errors other than a missing module, are real errors: the build fails
    assert api.missing_extra(ModuleNotFoundError("No module named 'nosuchpkg'", name="nosuchpkg")) is None
    assert api.missing_extra(ImportError("cannot import name 'x'")) is None
    assert api.missing_extra(SyntaxError("bad")) is None
