"""Sphinx configuration of the documentation site (built by ``make docs`` = ``python docs/build.py``).

The site is built from a staged copy of ``docs/`` outside the tracked files (``build/docs/src``), because
two extensions write pages into the folder they build from: ``semcom_api`` (``_ext/semcom_api.py``: the API
reference, one page per module, grouped by package) and sphinx-gallery (the tutorials of
``docs/tutorials``, executed, with their printed output and figures). Building ``docs/`` in place is
refused for that reason.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _find_root(start: Path) -> Path:
    for folder in (start, *start.parents):
        if (folder / "setup.cfg").is_file() and (folder / "phy" / "__init__.py").is_file():
            return folder
    raise RuntimeError(f"no semcom checkout above {start}; set SEMCOM_DOCS_ROOT")


ROOT = Path(os.environ.get("SEMCOM_DOCS_ROOT") or _find_root(HERE)).resolve()
if HERE == ROOT / "docs":
    raise RuntimeError("build the site with `make docs` (python docs/build.py): it stages docs/ into "
                       "build/docs/src, so that nothing is generated inside the source tree")
# the checkout being documented comes first (a worktree next to an editable install of another checkout)
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE / "_ext"))

from semcom_figures import scrape_returned_figures  # noqa: E402

import phy  # noqa: E402

project = "semcom"
author = "semcom developers"
release = version = phy.__version__
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "semcom_api",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_ext", "figures/*.py", "tutorials/*.py", "**/*.ipynb", "**/*.py.md5",
                    "**/*.codeobj.json", "tutorials/*.zip"]
root_doc = "index"

# -- API reference (autodoc + napoleon, numpy style) ------------------------------------------------------
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
# dataclass fields are documented by autodoc (undoc-members): render numpy "Attributes" as :ivar: fields so
# they are not described twice
napoleon_use_ivar = True
# the section headers the class docstrings use besides numpy's own (inputs/outputs with shapes)
napoleon_custom_sections = [("Input", "params_style"), ("Inputs", "params_style"), "Output", "Outputs",
                            "Inputs/outputs"]
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True,
                           "member-order": "bysource"}
autodoc_typehints = "description"
autodoc_preserve_defaults = True
# the tables link to the entries of the module pages; they generate no pages of their own
autosummary_generate = False
# resolving every type named in a signature would need intersphinx (network); do not warn about them
nitpicky = False
# "more than one target found" for a bare attribute name in a type field (e.g. ``n``): not a docstring error
suppress_warnings = ["ref.python", "config.cache"]

# -- pages written in Markdown (MyST): $...$ and $$...$$ math, tables, anchors for headings ---------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# -- tutorials: sphinx-gallery executes docs/tutorials/NN_*.py and shows code, output and figures ---------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "docs" / "tutorials"),
    "gallery_dirs": "tutorials",
    "filename_pattern": r"/\d\d_[^/]*\.py$",
    "image_scrapers": ("matplotlib", scrape_returned_figures),
    "capture_repr": (),
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,
    "show_memory": False,
    "min_reported_time": 1,
}

# -- HTML ----------------------------------------------------------------------------------------------------
html_theme = "alabaster"
html_title = f"semcom {release}"
html_static_path = []
html_theme_options = {
    "description": "A PHY simulator for semantic communication: analog and digital schemes over one channel.",
    "fixed_sidebar": True,
    "page_width": "1180px",
    "sidebar_width": "250px",
}
html_sidebars = {"**": ["about.html", "navigation.html", "relations.html", "searchbox.html"]}
html_show_sourcelink = False


def _no_process_words(app, docname, source) -> None:
    """Development history has no place in the user's documentation: fail on an issue number."""
    m = re.search(r"\bissue[ -]?#?\d+", source[0], re.IGNORECASE)
    if m:
        from sphinx.util import logging

        logging.getLogger(__name__).warning("%s: %r (the documentation states facts, not history)",
                                            docname, m.group(0), type="semcom", subtype="history")


def setup(app):
    app.connect("source-read", _no_process_words)
