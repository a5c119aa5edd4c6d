"""What the command prints: the summary table of a finished run."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def print_summary(run_dir: object, summary: dict[str, Any]) -> None:
    if summary.get("system") == "spotserve":
        _print_spotserve(run_dir, summary)
        return
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


def _print_spotserve(run_dir: object, s: dict[str, Any]) -> None:
    label = s["approach"] + (f" (ablation {s['ablation']})" if s.get("ablation") else "")
    table = Table(title=f"{label} / {s['model']} / {s['trace']}", show_header=False)
    rows = [
        ("requests sent", s["queries_sent"]),
        ("completed", s["completed"]),
        ("unfinished", s["unfinished"]),
        ("latency mean (s)", f"{s['latency_mean_s']:.2f}"),
        ("latency P50 / P90 / P95 / P99 (s)", " / ".join(f"{s[f'latency_p{q}_s']:.2f}" for q in (50, 90, 95, 99))),
        ("instance-hours spot / on-demand", f"{s['spot_instance_hours']:.2f} / {s['ondemand_instance_hours']:.2f}"),
        ("cost (USD), per 1k tokens", f"{s['cost_usd']:.2f}, {s['cost_per_1k_tokens_usd']:.5f}"),
        ("reconfigurations", s["reconfigurations"]),
    ]
    for key, value in rows:
        table.add_row(key, str(value))
    console = Console(stderr=False)
    console.print(table)
    console.print(f"Run directory: {run_dir}")
