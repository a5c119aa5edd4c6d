"""What the command prints: the summary table of a finished run, rows chosen by its system;
in a sweep, one line per finished job (the table goes to the job's orchestrator.log)."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from orchestrator.systems import get_system


def summary_table(summary: Mapping[str, Any]) -> Table:
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
    return table


def summary_text(summary: Mapping[str, Any]) -> str:
    """The summary table as plain text (for a log file)."""
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(summary_table(summary))
    return console.file.getvalue()  # type: ignore[attr-defined]


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and math.isnan(value):  # NaN: not measured (as the comparison table shows it)
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def job_line(num: int, overrides: list[str], summary: Mapping[str, Any], run_dir: Path) -> str:
    """A finished sweep job in one line: its number, its overrides, its system's headline numbers."""
    system = get_system(str(summary["system"]))
    numbers = " · ".join(f"{head} {_number(summary.get(key, '-'))}" for key, head in system.headline)
    flags = [f"{summary[k]} {k.replace('_', ' ')}" for k in ("queries_lost", "infeasible_plans") if summary.get(k)]
    note = f" · [{', '.join(flags)}]" if flags else ""
    return f"job {num} done: {' '.join(overrides) or '(defaults)'} · {numbers}{note} · {run_dir}"


def print_summary(run_dir: Path, summary: Mapping[str, Any]) -> None:
    console = Console(stderr=False)
    console.print(summary_table(summary))
    lag = summary.get("client_send_lag_p99_s") or 0.0
    if summary.get("client_fell_behind"):
        console.print(
            f"[yellow]warning: the client fell behind: it sent its queries up to {lag:.2f} trace seconds late (p99; "
            "run.send_lag_limit_s). This machine could not replay the trace as written: the numbers describe a "
            "lighter, later load. Lower time_scale or the rate, or use clock=virtual.[/yellow]"
        )
    console.print(f"Run directory: {run_dir}")
