"""The README is a front door and the manual's pages hold together: the README stays short,
every page is in the table of contents, every relative link and image resolves, and every
marked table is the one its benchmark wrote (benchmarks/doc_tables.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks.doc_tables import BLOCK, TABLES, main, pages, shown, spliced
from tests.conftest import ROOT

LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert "bash scripts/setup.sh && .venv/bin/python -m orchestrator cascade=sdxs trace=3to24qps" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/setup.sh --test && .venv/bin/python -m pytest" in readme
    assert ".venv/bin/python -m pytest" in ci


def test_every_page_is_in_the_table_of_contents() -> None:
    toc = (ROOT / "docs" / "README.md").read_text()
    listed = {m.split("#")[0] for m in LINK.findall(toc)}
    assert {p.name for p in (ROOT / "docs").glob("*.md")} - {"README.md"} <= listed


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    text = page.read_text()
    broken = []
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        where = (page.parent / path).resolve() if path else page
        if not where.exists() or (anchor and where.suffix == ".md" and anchor not in _anchors(where)):
            broken.append(target)
    assert broken == []


def _anchors(page: Path) -> set[str]:
    found, fence = set(), False
    for line in page.read_text().splitlines():
        fence ^= line.startswith("```")
        if not fence and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def test_every_marked_table_is_the_one_its_benchmark_wrote() -> None:
    assert main(["--check"]) == 0
    sources = "\n".join(p.read_text() for p in (ROOT / "benchmarks").glob("*.py"))
    for name in shown():
        assert f'name="{name}"' in sources or f'"{name}":' in sources, f"no benchmark writes the table {name}"
        assert "written by `python -m benchmarks." in (TABLES / f"{name}.md").read_text()


def test_a_table_typed_into_a_marked_block_is_caught() -> None:
    name = next((n for n in shown() if (TABLES / f"{n}.md").is_file()), None) or pytest.skip("no table written")
    page = shown()[name][0].read_text()
    edited = BLOCK.sub(lambda m: m.group(1) + "| typed | 1 |\n" + m.group(4), page, count=1)
    assert spliced(edited) != edited


def test_no_measured_table_is_typed_by_hand() -> None:
    """A table outside a marked block holds no measured figure (a decimal number); the config
    reference tables, whose figures are defaults, are the exception."""
    typed = []
    for page in pages():
        lines = BLOCK.sub("", page.read_text()).splitlines()
        for i, line in enumerate(lines[:-1]):
            if not (line.startswith("|") and re.fullmatch(r"\|[-:| ]+\|", lines[i + 1])):
                continue
            if (i > 0 and lines[i - 1].startswith("|")) or line.startswith("| group"):
                continue
            body = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                body.append(row)
            if re.search(r"\b\d+\.\d+\b", "\n".join(body)):
                typed.append(f"{page.relative_to(ROOT)}: {line[:60]}")
    assert typed == []


def test_the_device_tables_are_rendered_from_the_runs_own_output() -> None:
    """docs/device-check.md's tables are what `--publish` renders from the kept H200 run."""
    from benchmarks.device_check import report_tables

    run = ROOT / "docs" / "device_check" / "nvidia_h200_2026-12-04"
    for name, text in report_tables(run).items():
        assert (TABLES / f"{name}.md").read_text().startswith(text + "\n\n<sub>written by")
