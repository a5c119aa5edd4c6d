"""What the command prints: the summary table of a finished run."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def print_summary(run_dir: object, summary: dict[str, Any]) -> None:
    table = Table(title=f"{summary['approach']} / {summary['cascade']} / {summary['trace']}", show_header=False)
    rows = [
        ("queries sent", summary["queries_sent"]),
        ("completed on time", summary["completed_on_time"]),
        ("completed late", summary["completed_late"]),
        ("dropped", summary["dropped"]),
        ("unfinished", summary["unfinished"]),
        ("SLO violation ratio", f"{summary['slo_violation_ratio']:.4f}"),
        ("latency p50 / p99 (s)", f"{summary['latency_p50_s']:.3f} / {summary['latency_p99_s']:.3f}"),
        ("light fraction", f"{summary['light_fraction']:.3f}"),
    ]
    for key, value in rows:
        table.add_row(key, str(value))
    console = Console(stderr=False)
    console.print(table)
    console.print(f"Run directory: {run_dir}")
