"""Build the documentation site: ``python docs/build.py [OUT]`` (what ``make docs`` runs).

The sources in ``docs/`` are never written to. They are copied into ``OUT/src`` (only files that changed,
so the tutorials already executed for an unchanged script are not run again), Sphinx builds from there with
warnings as errors, and the site lands in ``OUT/html`` (``OUT/html/index.html``). ``OUT`` defaults to
``build/docs`` in the repository (ignored by git); any folder outside ``docs/`` works.

Generated in ``OUT/src`` during the build: the API pages (``api/generated``, by the ``semcom_api``
extension) and the executed tutorials (``tutorials``, by sphinx-gallery, from ``docs/tutorials/*.py``).

Options: ``--quick`` runs the tutorials with ``SEMCOM_TUTORIAL_QUICK=1`` (smaller budgets; the test suite
uses it for the site build and runs the tutorials as shipped separately); ``--no-tutorials`` renders the
tutorial pages without executing them (code only); anything after ``--`` goes to ``sphinx-build``.
"""
from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
#: folders of the staged source tree that the build generates (kept between builds, never copied from docs/)
GENERATED = ("api/generated", "tutorials")
#: what is not copied from docs/: the tutorials are read from docs/tutorials directly by sphinx-gallery
NOT_STAGED = ("tutorials", "build.py", "__pycache__")


def stage(src: Path, dst: Path) -> None:
    """Make ``dst`` a copy of ``src`` (files that differ are copied, files gone from ``src`` removed), leaving
    the generated folders of :data:`GENERATED` alone."""
    dst.mkdir(parents=True, exist_ok=True)
    wanted = set()
    for path in src.rglob("*"):
        rel = path.relative_to(src)
        if rel.parts[0] in NOT_STAGED or "__pycache__" in rel.parts or path.is_dir():
            continue
        wanted.add(rel)
        target = dst / rel
        if not target.exists() or not filecmp.cmp(path, target, shallow=False):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    for path in sorted(dst.rglob("*"), reverse=True):
        rel = path.relative_to(dst)
        if any(rel.as_posix() == g or rel.as_posix().startswith(g + "/") for g in GENERATED):
            continue
        if path.is_file() and rel not in wanted:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=str(ROOT / "build" / "docs"),
                        help="output folder (default: build/docs); the site goes to OUT/html")
    parser.add_argument("--quick", action="store_true", help="tutorials with SEMCOM_TUTORIAL_QUICK=1")
    parser.add_argument("--no-tutorials", action="store_true", help="do not execute the tutorials")
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []      # after --: passed to sphinx-build
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    out = Path(args.out).resolve()
    if out == DOCS or DOCS in out.parents:
        parser.error(f"OUT must be outside {DOCS} (the sources are never written to), got {out}")
    src = out / "src"
    stage(DOCS, src)
    # sphinx-gallery reruns a tutorial only when its source changed: outputs of the other mode must go
    mode, marker = ("quick" if args.quick else "shipped"), out / "tutorial-mode"
    if marker.is_file() and marker.read_text() != mode:
        shutil.rmtree(src / "tutorials", ignore_errors=True)
    marker.write_text(mode)
    env = dict(os.environ, SEMCOM_DOCS_ROOT=str(ROOT),
               PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    if args.quick:
        env["SEMCOM_TUTORIAL_QUICK"] = "1"
    if args.no_tutorials:
        extra += ["-D", "plot_gallery=0"]
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-d", str(out / "doctrees"),
           *extra, str(src), str(out / "html")]
    rc = subprocess.call(cmd, cwd=ROOT, env=env)
    if rc == 0:
        print(f"site: {out / 'html' / 'index.html'}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
