"""`python -m orchestrator.report`: compare finished runs read back from MLflow.

    python -m orchestrator.report                           # the latest sweep of the experiment
    python -m orchestrator.report --parent RUN_ID           # one sweep (its MLflow parent run)
    python -m orchestrator.report --all --trace 2to16qps
    python -m orchestrator.report --experiment <system> --all

The runs' system draws its comparison figures (`System.report_figures`: DiffServe's Figure 6,
SpotServe's Figures 6-9) and names the table's grouping keys and columns. The same numbers are
printed as a table; runs of the same settings are averaged (the table says how many).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator import tracking
from orchestrator.systems import get_system, system_names
from orchestrator.systems.base import Column, System
from runtime.exceptions import ServelabError

SWEEP_TAG = "servelab.sweep"


def latest_sweep(client: Any, experiment_id: str) -> str | None:
    runs = client.search_runs(
        [experiment_id], f"tags.`{SWEEP_TAG}` = '1'", order_by=["attributes.start_time DESC"], max_results=1
    )
    return str(runs[0].info.run_id) if runs else None


def fetch_rows(uri: str, experiment: str, parent: str | None, trace: str | None) -> tuple[System, list[dict[str, Any]]]:
    """(system, one row per finished run: its grouping tags, summary metrics and run id)."""
    client = tracking.client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise ServelabError(f"--experiment: no MLflow experiment named {experiment!r} at {uri}")
    filters = ["attributes.status = 'FINISHED'"]
    if parent:
        filters.append(f"tags.`mlflow.parentRunId` = '{parent}'")
    if trace:
        filters.append(f"tags.trace = '{trace}'")
    runs = [
        r
        for r in client.search_runs([exp.experiment_id], " and ".join(filters), max_results=5000)
        if "approach" in r.data.tags and r.data.tags.get(SWEEP_TAG) != "1"
    ]
    systems = sorted({r.data.tags.get("system", "") for r in runs})
    if len(systems) > 1:
        raise ServelabError(f"--experiment {experiment}: the runs mix systems {systems}; pick one with --parent")
    system = get_system(systems[0] if systems else experiment if experiment in system_names() else system_names()[0])
    rows = []
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        row: dict[str, Any] = {k: tags.get(k, "") for k in system.report_keys}
        row.update({key: metrics.get(key, math.nan) for key, _ in system.report_columns})
        row["run_id"] = run.info.run_id
        rows.append(row)
    return system, rows


def average(rows: list[dict[str, Any]], keys: Sequence[str], columns: Sequence[Column]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[tuple(str(r[k]) for k in keys)].append(r)
    out = []
    for values, members in sorted(groups.items()):
        row: dict[str, Any] = dict(zip(keys, values, strict=True))
        row["runs"] = len(members)
        row["run_ids"] = [m["run_id"] for m in members]
        for key, _ in columns:
            vals = [m[key] for m in members if not math.isnan(m[key])]
            row[key] = sum(vals) / len(vals) if vals else math.nan
        out.append(row)
    return out


def print_table(rows: list[dict[str, Any]], keys: Sequence[str], columns: Sequence[Column], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for name in (*keys, "runs", *[label for _, label in columns]):
        table.add_column(name, justify="left" if name in keys else "right")
    for r in rows:
        table.add_row(*[str(r[k]) for k in keys], str(r["runs"]), *[f"{r[key]:.4g}" for key, _ in columns])
    Console(width=200).print(table)


# --------------------------------------------------------------------------- both


def compare(uri: str, experiment: str, parent: str | None, trace: str | None, out_dir: Path) -> list[Path]:
    """Print the table and draw the system's figures into out_dir; returns the figures."""
    system, fetched = fetch_rows(uri, experiment, parent, trace)
    keys, columns = system.report_keys, system.report_columns
    rows = average(fetched, keys, columns)
    if not rows:
        where = f"under parent run {parent}" if parent else f"in experiment {experiment!r}"
        raise ServelabError(f"no finished runs {where}")
    title = f"{experiment}{', sweep ' + parent[:8] if parent else ''}"
    print_table(rows, keys, columns, f"{system.name} runs ({title})")
    return system.report_figures(uri, rows, out_dir, title)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracking-uri", default="sqlite:///outputs/mlflow.db")
    parser.add_argument(
        "--experiment",
        default=system_names()[0],
        help=f"the MLflow experiment ({', '.join(system_names())} by default)",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--parent", help="MLflow run id of a sweep (default: the latest sweep)")
    group.add_argument("--all", action="store_true", help="every finished run, not one sweep")
    parser.add_argument("--trace", help="only runs of this trace")
    parser.add_argument("--out-dir", type=Path, default=Path("outputs/reports"), help="where the figures go")
    args = parser.parse_args(argv)
    uri = tracking.absolute_uri(args.tracking_uri)
    try:
        parent = args.parent
        if not parent and not args.all:
            client = tracking.client(uri)
            exp = client.get_experiment_by_name(args.experiment)
            parent = latest_sweep(client, exp.experiment_id) if exp is not None else None
        figures = compare(uri, args.experiment, parent, args.trace, args.out_dir)
    except ServelabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for figure in figures:
        print(f"Figure: {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
