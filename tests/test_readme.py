"""README.md is the first screen a user reads: short, facts only, and every link and command in it works.

It holds one paragraph and one figure, the two fresh-machine commands, a quick start whose commands are the
ones that made its figures (``docs/figures/make_figures.py``), a table of every ``semcom`` command, the
conventions in five lines and links into the documentation; everything else lives in ``docs/``.
"""
from __future__ import annotations

import re
import runpy
from pathlib import Path

from experiments import cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert m, f"README.md has no '## {title}' section"
    return m.group(1)


def test_readme_fits_on_a_few_screens():
    assert len(README.splitlines()) <= 250


def test_readme_has_no_history_and_no_path_outside_the_repository():
    assert not re.search(r"\bissue[ -]?#?\d+", README, re.IGNORECASE)
    for word in ("session", "lever", "agent"):
        assert not re.search(rf"\b{word}s?\b", README, re.IGNORECASE), word
    assert "../" not in README and not re.search(r"(?<![\w.])/(work|home|tmp|opt)/", README)


def test_every_relative_link_and_image_resolves():
    targets = re.findall(r"\]\(([^)\s]+)\)", README) + re.findall(r'<img src="([^"]+)"', README)
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+://", t) and not t.startswith("#")]
    assert local, "no links into the documentation"
    for t in local:
        assert (ROOT / t).exists(), f"README.md links to a missing {t}"
    assert any(t.startswith("docs/guide/conventions.md") for t in local)


def test_the_two_commands_and_their_make_targets():
    assert "make run " in README and "make test " in README
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run", "test", "docs"):
        assert re.search(rf"^{target}:", makefile, re.M), target


def test_quick_start_commands_are_the_ones_that_made_its_figures():
    figures = runpy.run_path(str(ROOT / "docs" / "figures" / "make_figures.py"), run_name="figures")
    quick = " ".join(_section("Quick start").replace("\\\n", " ").split())
    for command in figures["COMMANDS"]:
        line = " ".join(command.format(out="runs").split())
        assert line in quick, f"the README's quick start lacks the command that made its figure: {line}"
    for name in figures["FIGURES"].values():
        assert (ROOT / "docs" / "figures" / name).is_file()
        assert f"docs/figures/{name}" in README


def test_command_table_lists_every_command_once():
    names = sorted(cli.build_parser()._subparsers._group_actions[0].choices)
    table = _section("Commands")
    rows = [line for line in table.splitlines() if line.startswith("| `semcom ")]
    listed = [n for row in rows for n in re.findall(r"`(?:semcom )?([a-z][a-z0-9-]*)`", row.split("|")[1])]
    assert sorted(listed) == names, (sorted(listed), names)


def test_conventions_in_five_lines_with_the_full_page_linked():
    section = _section("Conventions")
    bullets = [line for line in section.splitlines() if line.startswith("* ")]
    assert len(bullets) == 5
    for word in ("SNR", "Es/N0", "channel use", "per example", "seed"):
        assert word in section, word
    assert "(docs/guide/conventions.md)" in section
