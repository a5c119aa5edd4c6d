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
    lag = summary.get("client_send_lag_p99_s")
    if summary.get("clock") == "wall" and lag is not None:
        table.add_row("client send lag p50 / p99 (s)", f"{summary['client_send_lag_p50_s']:.3f} / {lag:.3f}")
    console = Console(stderr=False)
    console.print(table)
    if summary.get("client_fell_behind"):
        console.print(
            f"[yellow]warning: the client fell behind: it sent its queries up to {lag:.2f} trace seconds late (p99; "
            "run.send_lag_limit_s). This machine could not replay the trace as written: the numbers describe a "
            "lighter, later load. Lower time_scale or the rate, or use clock=virtual.[/yellow]"
        )
    console.print(f"Run directory: {run_dir}")
