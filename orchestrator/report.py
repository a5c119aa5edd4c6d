"""`python -m orchestrator.report`: compare finished runs read back from MLflow.

    python -m orchestrator.report                           # the latest sweep of the diffserve experiment
    python -m orchestrator.report --parent RUN_ID           # one sweep (its MLflow parent run)
    python -m orchestrator.report --all --trace 2to16qps
    python -m orchestrator.report --experiment spotserve --all

DiffServe runs: Figure 6 (average SLO violation ratio and FID per approach and cascade, as
grouped bars). SpotServe runs: Figure 6 (latency mean and percentiles per approach, one panel
per model and trace), Figure 7 (P99 and mean latency against the cost per 1k tokens, with the
on-demand fleets as a dashed line), Figure 8 (latency over time on the workload traces) and
Figure 9 (the ablation levels' P99 and mean), each when runs for it exist. The same numbers are
printed as a table; runs of the same settings are averaged (the table says how many).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator import plots, tracking
from runtime.exceptions import ServelabError
from runtime.policies.spotserve.ablation import LABELS

SWEEP_TAG = "servelab.sweep"
Column = tuple[str, str]  # summary key, table heading
DIFFSERVE_COLUMNS: tuple[Column, ...] = (
    ("slo_violation_ratio", "SLO viol."),
    ("slo_violation_ratio_windowed", "SLO viol. (windowed)"),
    ("fid", "FID (table est.)"),
    ("latency_p99_s", "p99 (s)"),
    ("light_fraction", "light frac."),
)
SPOTSERVE_COLUMNS: tuple[Column, ...] = (
    ("latency_mean_s", "mean (s)"),
    ("latency_p50_s", "P50"),
    ("latency_p90_s", "P90"),
    ("latency_p95_s", "P95"),
    ("latency_p96_s", "P96"),
    ("latency_p97_s", "P97"),
    ("latency_p98_s", "P98"),
    ("latency_p99_s", "P99 (s)"),
    ("completed", "completed"),
    ("unfinished", "unfinished"),
    ("cost_usd", "cost ($)"),
    ("cost_per_1k_tokens_usd", "$ / 1k tok."),
)
# Figure 6 of SpotServe: the artifact's x axis (mean, then P90..P99; nearest rank).
FIG6_STATS = (
    ("latency_mean_s", "AVG"),
    ("latency_p90_s", "P90"),
    ("latency_p95_s", "P95"),
    ("latency_p96_s", "P96"),
    ("latency_p97_s", "P97"),
    ("latency_p98_s", "P98"),
    ("latency_p99_s", "P99"),
)
KEYS = {
    "diffserve": ("approach", "cascade", "trace"),
    "spotserve": ("approach", "ablation", "model", "trace", "trace_kind"),
}
COLUMNS = {"diffserve": DIFFSERVE_COLUMNS, "spotserve": SPOTSERVE_COLUMNS}


def latest_sweep(client: Any, experiment_id: str) -> str | None:
    runs = client.search_runs(
        [experiment_id], f"tags.`{SWEEP_TAG}` = '1'", order_by=["attributes.start_time DESC"], max_results=1
    )
    return str(runs[0].info.run_id) if runs else None


def fetch_rows(uri: str, experiment: str, parent: str | None, trace: str | None) -> tuple[str, list[dict[str, Any]]]:
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
    systems = sorted({r.data.tags.get("system", "diffserve") for r in runs})
    if len(systems) > 1:
        raise ServelabError(f"--experiment {experiment}: the runs mix systems {systems}; pick one with --parent")
    system = systems[0] if systems else "diffserve"
    rows = []
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        row: dict[str, Any] = {k: tags.get(k, "") for k in KEYS[system]}
        row.update({key: metrics.get(key, math.nan) for key, _ in COLUMNS[system]})
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


# --------------------------------------------------------------------------- DiffServe


def diffserve_figures(rows: list[dict[str, Any]], out_dir: Path, title: str) -> list[Path]:
    metrics = [("slo_violation_ratio", "SLO violation ratio"), ("fid", "FID (table-based estimate)")]
    return [plots.grouped_bars(rows, metrics, "cascade", out_dir / "figure6.png", f"DiffServe Figure 6 ({title})")]


# --------------------------------------------------------------------------- SpotServe


def figure6_panels(rows: list[dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """Panel "model trace" -> approach -> the FIG6_STATS values (ablation level 0 only)."""
    panels: dict[str, dict[str, list[float]]] = defaultdict(dict)
    for r in rows:
        if str(r["ablation"]) in ("0", ""):
            panels[f"{r['model']} {r['trace']}"][r["approach"]] = [r[key] for key, _ in FIG6_STATS]
    return dict(sorted(panels.items()))


def figure7_points(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(spot points: every approach on spot traces, on-demand points: the on-demand fleets)."""
    spot, ondemand = [], []
    for r in rows:
        if str(r["ablation"]) not in ("0", "") or math.isnan(r["cost_per_1k_tokens_usd"]):
            continue
        point = {k: r[k] for k in ("approach", "trace", "latency_mean_s", "latency_p99_s")}
        point["cost"] = r["cost_per_1k_tokens_usd"]
        if r["trace_kind"] == "ondemand":
            if r["approach"] == "spotserve":
                ondemand.append(point)
        elif r["trace_kind"] == "spot":
            spot.append(point)
    return spot, ondemand


def figure9_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """spotserve's runs on the traces that have ablation runs, labelled by level."""
    traces = {r["trace"] for r in rows if str(r["ablation"]) not in ("0", "")}
    out = []
    for r in rows:
        if r["approach"] == "spotserve" and r["trace"] in traces:
            level = int(r["ablation"] or 0)
            out.append({**r, "approach": LABELS[level], "trace": f"{r['model']} {r['trace']}"})
    return out


def figure8_panels(uri: str, rows: list[dict[str, Any]]) -> dict[str, dict[str, pd.DataFrame]]:
    """Workload trace -> approach -> completed requests (completion time, latency), read from
    each run's records.parquet artifact (the first run of each group)."""
    workload = [r for r in rows if r["trace_kind"] == "workload" and str(r["ablation"]) in ("0", "")]
    if not workload:
        return {}
    client = tracking.client(uri)
    panels: dict[str, dict[str, pd.DataFrame]] = defaultdict(dict)
    with tempfile.TemporaryDirectory() as tmp:
        for r in workload:
            local = client.download_artifacts(r["run_ids"][0], "records.parquet", tmp)
            rec = pd.read_parquet(local, columns=["arrival_s", "latency_s"])
            rec = rec[rec["latency_s"].notna()]
            df = pd.DataFrame({"completed_at": rec["arrival_s"] + rec["latency_s"], "latency_s": rec["latency_s"]})
            panels[f"{r['model']} {r['trace']}"][r["approach"]] = df
    return dict(sorted(panels.items()))


def spotserve_figures(uri: str, rows: list[dict[str, Any]], out_dir: Path, title: str) -> list[Path]:
    figures = []
    panels = figure6_panels(rows)
    if panels:
        labels = [label for _, label in FIG6_STATS]
        figures.append(plots.percentile_lines(panels, labels, out_dir / "figure6.png", f"SpotServe Figure 6 ({title})"))
    spot, ondemand = figure7_points(rows)
    if spot or ondemand:
        figures.append(plots.latency_vs_cost(spot, ondemand, out_dir / "figure7.png", f"SpotServe Figure 7 ({title})"))
    workload = figure8_panels(uri, rows)
    if workload:
        figures.append(
            plots.latency_over_time_by_approach(workload, out_dir / "figure8.png", f"SpotServe Figure 8 ({title})")
        )
    ablation = figure9_rows(rows)
    if ablation:
        metrics = [("latency_p99_s", "P99 latency (s)"), ("latency_mean_s", "mean latency (s)")]
        figures.append(
            plots.grouped_bars(
                ablation, metrics, "trace", out_dir / "figure9.png", f"SpotServe Figure 9 ({title})", list(LABELS)
            )
        )
    return figures


# --------------------------------------------------------------------------- both


def compare(uri: str, experiment: str, parent: str | None, trace: str | None, out_dir: Path) -> list[Path]:
    """Print the table and draw the system's figures into out_dir; returns the figures."""
    system, fetched = fetch_rows(uri, experiment, parent, trace)
    keys, columns = KEYS[system], COLUMNS[system]
    rows = average(fetched, keys, columns)
    if not rows:
        where = f"under parent run {parent}" if parent else f"in experiment {experiment!r}"
        raise ServelabError(f"no finished runs {where}")
    title = f"{experiment}{', sweep ' + parent[:8] if parent else ''}"
    print_table(rows, keys, columns, f"{system} runs ({title})")
    if system == "spotserve":
        return spotserve_figures(uri, rows, out_dir, title)
    return diffserve_figures(rows, out_dir, title)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracking-uri", default="sqlite:///outputs/mlflow.db")
    parser.add_argument("--experiment", default="diffserve", help="diffserve or spotserve (tracking.experiment)")
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
