"""The docs' measured tables, written by the benchmarks that measure them.

A benchmark that calls `table(..., name="X")` writes docs/tables/X.md (the table, and a line
saying which command wrote it and when) and splices it into every docs page that shows it,
between `<!-- table: X -->` and `<!-- /table -->`. `python -m benchmarks.doc_tables` splices
every table again (after a checkout, or after editing a page); `--check` exits 1 when a page
differs from its tables (tests/test_docs.py runs the same check).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TABLES = DOCS / "tables"
BLOCK = re.compile(r"(<!-- table: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)


def publish(name: str, text: str, command: str) -> Path:
    """Write table `name` from `command` and splice it into the pages that show it."""
    TABLES.mkdir(parents=True, exist_ok=True)
    path = TABLES / f"{name}.md"
    stamp = time.strftime("%Y-%m-%d")
    _write(path, f"{text}\n\n<sub>written by `{command}` on {stamp}</sub>\n")
    splice()
    return path


def _write(path: Path, text: str) -> None:
    """Whole or not at all: two benchmarks running at once each splice every page, and a page
    read half-written would lose its tail."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def pages() -> list[Path]:
    return sorted([ROOT / "README.md", *DOCS.glob("*.md")])


def spliced(page: str) -> str:
    """`page` with every table block replaced by its table file (a missing file: kept as is)."""

    def repl(m: re.Match[str]) -> str:
        path = TABLES / f"{m.group('name')}.md"
        body = path.read_text() if path.is_file() else m.group("body")
        return m.group(1) + body + m.group(4)

    return BLOCK.sub(repl, page)


def splice() -> list[Path]:
    """Splice every table into every page; returns the pages that changed."""
    changed = []
    for page in pages():
        old = page.read_text()
        new = spliced(old)
        if new != old:
            _write(page, new)
            changed.append(page)
    return changed


def shown() -> dict[str, list[Path]]:
    """Table name -> the pages that show it."""
    found: dict[str, list[Path]] = {}
    for page in pages():
        for m in BLOCK.finditer(page.read_text()):
            found.setdefault(m.group("name"), []).append(page)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.doc_tables", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a page differs from its tables")
    args = parser.parse_args(argv)
    if args.check:
        stale = [p for p in pages() if spliced(p.read_text()) != p.read_text()]
        missing = [n for n in shown() if not (TABLES / f"{n}.md").is_file()]
        for p in stale:
            print(f"{p.relative_to(ROOT)}: a table differs from docs/tables (python -m benchmarks.doc_tables)")
        for n in missing:
            print(f"docs/tables/{n}.md: no such table; run the benchmark that writes it")
        return 1 if stale or missing else 0
    for page in splice():
        print(f"updated {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
