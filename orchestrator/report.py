"""`python -m orchestrator.report`: compare finished runs read back from MLflow.

    python -m orchestrator.report                      # the latest sweep of the diffserve experiment
    python -m orchestrator.report --parent RUN_ID      # one sweep (its MLflow parent run)
    python -m orchestrator.report --all --trace 2to16qps

Draws Figure 6 of DiffServe (average SLO violation ratio and FID per approach and cascade, as
grouped bars) and prints the same numbers as a table. Runs of the same approach, cascade and
trace are averaged (the table says how many).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from orchestrator import plots, tracking
from runtime.exceptions import ServelabError

SWEEP_TAG = "servelab.sweep"
COLUMNS = (  # summary key, table heading
    ("slo_violation_ratio", "SLO viol."),
    ("slo_violation_ratio_windowed", "SLO viol. (windowed)"),
    ("fid", "FID (table est.)"),
    ("latency_p99_s", "p99 (s)"),
    ("light_fraction", "light frac."),
)


def latest_sweep(client: Any, experiment_id: str) -> str | None:
    runs = client.search_runs(
        [experiment_id], f"tags.`{SWEEP_TAG}` = '1'", order_by=["attributes.start_time DESC"], max_results=1
    )
    return str(runs[0].info.run_id) if runs else None


def fetch_rows(uri: str, experiment: str, parent: str | None, trace: str | None) -> list[dict[str, Any]]:
    """One row per finished run: approach, cascade, trace and the summary metrics."""
    client = tracking.client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise ServelabError(f"--experiment: no MLflow experiment named {experiment!r} at {uri}")
    filters = ["attributes.status = 'FINISHED'"]
    if parent:
        filters.append(f"tags.`mlflow.parentRunId` = '{parent}'")
    if trace:
        filters.append(f"tags.trace = '{trace}'")
    runs = client.search_runs([exp.experiment_id], " and ".join(filters), max_results=5000)
    rows = []
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        if "approach" not in tags or tags.get(SWEEP_TAG) == "1":
            continue
        row: dict[str, Any] = {k: tags.get(k, "") for k in ("approach", "cascade", "trace")}
        row.update({key: metrics.get(key, math.nan) for key, _ in COLUMNS})
        row["run_id"] = run.info.run_id
        rows.append(row)
    return rows


def average(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["approach"], r["cascade"], r["trace"])].append(r)
    out = []
    for (approach, cascade, trace), members in sorted(groups.items()):
        row: dict[str, Any] = {"approach": approach, "cascade": cascade, "trace": trace, "runs": len(members)}
        for key, _ in COLUMNS:
            vals = [m[key] for m in members if not math.isnan(m[key])]
            row[key] = sum(vals) / len(vals) if vals else math.nan
        out.append(row)
    return out


def print_table(rows: list[dict[str, Any]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for name in ("approach", "cascade", "trace", "runs", *[label for _, label in COLUMNS]):
        table.add_column(name, justify="left" if name in ("approach", "cascade", "trace") else "right")
    for r in rows:
        table.add_row(r["approach"], r["cascade"], r["trace"], str(r["runs"]), *[f"{r[key]:.4g}" for key, _ in COLUMNS])
    Console(width=160).print(table)


def figure6(rows: list[dict[str, Any]], path: Path, title: str) -> Path:
    return plots.grouped_bars(
        rows,
        [("slo_violation_ratio", "SLO violation ratio"), ("fid", "FID (table-based estimate)")],
        "cascade",
        path,
        title,
    )


def compare(uri: str, experiment: str, parent: str | None, trace: str | None, out: Path) -> list[dict[str, Any]]:
    rows = average(fetch_rows(uri, experiment, parent, trace))
    if not rows:
        where = f"under parent run {parent}" if parent else f"in experiment {experiment!r}"
        raise ServelabError(f"no finished runs {where}")
    title = f"DiffServe Figure 6 ({experiment}{', sweep ' + parent[:8] if parent else ''})"
    print_table(rows, title)
    figure6(rows, out, title)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracking-uri", default="sqlite:///outputs/mlflow.db")
    parser.add_argument("--experiment", default="diffserve")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--parent", help="MLflow run id of a sweep (default: the latest sweep)")
    group.add_argument("--all", action="store_true", help="every finished run, not one sweep")
    parser.add_argument("--trace", help="only runs of this trace")
    parser.add_argument("--out", type=Path, default=Path("outputs/reports/figure6.png"))
    args = parser.parse_args(argv)
    uri = tracking.absolute_uri(args.tracking_uri)
    try:
        parent = args.parent
        if not parent and not args.all:
            client = tracking.client(uri)
            exp = client.get_experiment_by_name(args.experiment)
            parent = latest_sweep(client, exp.experiment_id) if exp is not None else None
        compare(uri, args.experiment, parent, args.trace, args.out)
    except ServelabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Figure: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
