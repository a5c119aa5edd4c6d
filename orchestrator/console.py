"""What the command prints: the summary table of a finished run, rows chosen by its system."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from orchestrator.systems import get_system


def print_summary(run_dir: Path, summary: Mapping[str, Any]) -> None:
    system = get_system(str(summary["system"]))
    title = system.title(summary)
    if summary.get("clock") == "virtual":
        title += " (virtual clock)"
    table = Table(title=title, show_header=False)
    for key, value in system.console_rows(summary):
        table.add_row(key, value)
    console = Console(stderr=False)
    console.print(table)
    console.print(f"Run directory: {run_dir}")
