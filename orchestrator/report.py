"""`python -m orchestrator.report`: compare finished runs read back from MLflow.

    python -m orchestrator.report                           # the latest sweep of the experiment
    python -m orchestrator.report --parent RUN_ID           # one sweep (its MLflow parent run)
    python -m orchestrator.report --all --trace 2to16qps
    python -m orchestrator.report --experiment <system> --all

Runs are grouped only with runs they can be compared with: the same system, approach, subject,
trace, trace duration, clock, time_scale and execution (and SpotServe's ablation level); repeats over seeds
fall into one group, which shows their count, mean and spread (std, min-max). Nothing is
averaged across traces. The runs' system draws its comparison figures (DiffServe's Figure 6 per
trace, SpotServe's Figures 6-9) with error bars, and the table goes to a CSV beside them; every
file is named by experiment and sweep, so two reports never overwrite each other.
"""

from __future__ import annotations

import argparse
import math
import statistics
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
# Runs differing in any of these are never averaged together (with the system's report_keys).
SETTING_KEYS = ("trace_duration_s", "clock", "time_scale", "execution")


def latest_sweep(client: Any, experiment_id: str) -> str | None:
    runs = client.search_runs(
        [experiment_id], f"tags.`{SWEEP_TAG}` = '1'", order_by=["attributes.start_time DESC"], max_results=1
    )
    return str(runs[0].info.run_id) if runs else None


def group_keys(system: System) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*system.report_keys, *SETTING_KEYS)))


def fetch_rows(uri: str, experiment: str, parent: str | None, trace: str | None) -> tuple[System, list[dict[str, Any]]]:
    """(system, one row per finished run: its grouping tags, summary metrics and run id)."""
    client = tracking.client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise ServelabError(f"--experiment: no MLflow experiment named {experiment!r} at {tracking.mask(uri)}")
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
        row: dict[str, Any] = {k: tags.get(k, "") for k in group_keys(system)}
        row.update({key: metrics.get(key, math.nan) for key, _ in system.report_columns})
        row["run_id"] = run.info.run_id
        rows.append(row)
    return system, rows


def aggregate(rows: list[dict[str, Any]], keys: Sequence[str], columns: Sequence[Column]) -> list[dict[str, Any]]:
    """One row per group of comparable runs: the keys, `runs`, and per column its mean (under the
    column's own key) with `<key>_std` (sample std; 0 for one run), `<key>_min`, `<key>_max`."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[tuple(str(r[k]) for k in keys)].append(r)
    out = []
    for values, members in sorted(groups.items()):
        row: dict[str, Any] = dict(zip(keys, values, strict=True))
        row["runs"] = len(members)
        row["run_ids"] = [m["run_id"] for m in members]
        for key, _ in columns:
            vals = [float(m[key]) for m in members if not math.isnan(m[key])]
            row[key] = statistics.fmean(vals) if vals else math.nan
            row[f"{key}_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0 if vals else math.nan
            row[f"{key}_min"] = min(vals) if vals else math.nan
            row[f"{key}_max"] = max(vals) if vals else math.nan
        out.append(row)
    return out


def cell(r: dict[str, Any], key: str) -> str:
    if math.isnan(r[key]):
        return "-"
    return f"{r[key]:.4g} ± {r[key + '_std']:.2g}" if r["runs"] > 1 else f"{r[key]:.4g}"


def print_table(rows: list[dict[str, Any]], keys: Sequence[str], columns: Sequence[Column], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    # A key every row shares goes in the caption: the columns stay for what tells the rows apart.
    same = [k for k in keys if len({str(r[k]) for r in rows}) == 1] if len(rows) > 1 else []
    varying = [k for k in keys if k not in same]
    shared = ", ".join(f"{k} {rows[0][k]}" for k in same)
    caption = "mean ± std over the runs of a group (runs: how many)" + (f"; every row: {shared}" if shared else "")
    table = Table(title=title, caption=caption)
    for name in (*varying, "runs", *[label for _, label in columns]):
        table.add_column(name, justify="left" if name in varying else "right")
    for r in rows:
        table.add_row(*[str(r[k]) for k in varying], str(r["runs"]), *[cell(r, key) for key, _ in columns])
    Console(width=240).print(table)


def write_csv(rows: list[dict[str, Any]], keys: Sequence[str], columns: Sequence[Column], path: Path) -> Path:
    import pandas as pd

    stats = [f"{key}{suffix}" for key, _ in columns for suffix in ("", "_std", "_min", "_max")]
    frame = pd.DataFrame([{k: r[k] for k in (*keys, "runs", *stats)} for r in rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


# --------------------------------------------------------------------------- both


def sweep_name(uri: str, parent: str) -> str:
    """The sweep's one name (its folder's, as the console and the MLflow run name give it), read
    from the parent run's `sweep` tag; a parent without one (an older store) by its id's prefix."""
    return str(tracking.client(uri).get_run(parent).data.tags.get("sweep") or parent[:8])


def compare(
    uri: str, experiment: str, parent: str | None, trace: str | None, out_dir: Path, label: str | None = None
) -> list[Path]:
    """Print the table, write it as CSV and draw the system's figures into out_dir, every file
    named `<experiment>-<label>-...` (label: the sweep, else "all"); returns the files."""
    system, fetched = fetch_rows(uri, experiment, parent, trace)
    keys, columns = group_keys(system), system.report_columns
    rows = aggregate(fetched, keys, columns)
    if not rows:
        where = f"under parent run {parent}" if parent else f"in experiment {experiment!r}"
        raise ServelabError(f"no finished runs {where}" + (f" with trace {trace!r}" if trace else ""))
    label = label or (sweep_name(uri, parent) if parent else "all")
    title = f"{experiment}, {'sweep ' + label if parent else 'all runs'}"
    print_table(rows, keys, columns, f"{system.name} runs ({title})")
    prefix = f"{experiment}-{label}-"
    table = write_csv(rows, keys, columns, out_dir / f"{prefix}table.csv")
    return [table, *system.report_figures(uri, rows, out_dir, title, prefix)]


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
            if exp is None:
                raise ServelabError(
                    f"--experiment: no MLflow experiment named {args.experiment!r} at {tracking.mask(uri)}"
                )
            parent = latest_sweep(client, exp.experiment_id)
            if parent is None:
                raise ServelabError(
                    f"--experiment {args.experiment}: it has no sweep; name one with --parent or compare every run with --all"
                )
        figures = compare(uri, args.experiment, parent, args.trace, args.out_dir)
    except ServelabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for figure in figures:
        print(f"{'Table' if figure.suffix == '.csv' else 'Figure'}: {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
