"""A DiffServe run's results from its roles' files: one record per query, the accounting, the
summary (SLO violations, FID estimate, light fraction, ...), the per-second series and, with
real execution and a reference folder, the measured FID."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.analysis import completeness, read_role_files, run_summary, testbed_stats
from orchestrator.metrics import summarize
from orchestrator.results import account, merge_records
from orchestrator.systems.base import Analysis
from orchestrator.systems.diffserve import artifact_recipe
from orchestrator.systems.diffserve.metrics import (
    fid_from_table,
    light_fraction,
    per_second,
    windowed_slo_ratio,
)

# The run directory's folder of the artifact's controller logs (its plot_results.py reads them).
ARTIFACT_LOGS = "artifact_logs"

if TYPE_CHECKING:
    from orchestrator.systems.base import RunPlan
    from runtime.schema.diffserve import DiffServeConfig


def analyze(run_dir: Path, plan: RunPlan[DiffServeConfig], partial: bool) -> Analysis:
    config = plan.config
    cascade = config.cascade
    files = read_role_files(run_dir, plan)
    records = merge_records(files.client, files.sink, cascade.slo_s)
    records["served_model"] = records["path"].map({"light": cascade.light.name, "heavy": cascade.heavy.name}).fillna("")
    books = account(files.client, files.sink, files.meta)
    base = summarize(records)
    light = light_fraction(records)
    _, windowed = windowed_slo_ratio(records, config.metrics.window_s, config.metrics.smooth)
    decisions = files.decisions
    # Plans made while the trace was replayed (the wall controller goes on until it is stopped).
    end = records["notice_at"].max() if len(records) else 0.0
    replay_plans = decisions[decisions["time"] <= end] if len(decisions) else decisions
    # What the artifact's controller would have logged, and what its plotting script prints.
    logs = artifact_recipe.controller_logs(records, decisions, cascade.slo_s)
    script = artifact_recipe.script_means(logs, cascade.fid_table.x, cascade.fid_table.y, cascade.fid_artifact_offset)
    summary: dict[str, Any] = {
        **run_summary(plan),
        "slo_s": cascade.slo_s,
        "queries_in_trace": len(plan.trace),
        **base,
        "light_fraction": light,
        "slo_violation_ratio_windowed": windowed,
        "fid": float(fid_from_table(light, cascade.fid_table.x, cascade.fid_table.y)),
        "fid_method": "table-based estimate from the light-served fraction",
        "fid_artifact_recipe": script.fid,
        "fid_artifact_recipe_note": script.fid_note,
        "slo_violation_ratio_artifact_recipe": script.slo_violation_ratio,
        "plans": len(replay_plans),
        "infeasible_plans": int((~replay_plans["feasible"]).sum()) if len(replay_plans) else 0,
        **testbed_stats(files, plan),
        **completeness(run_dir, plan, partial, files, books, records),
    }
    series = per_second(records, files.ticks, cascade.fid_table.x, cascade.fid_table.y, config.metrics.window_s)
    tables = {f"{ARTIFACT_LOGS}/{name}": rows for name, rows in artifact_recipe.log_files(logs).items()}
    analysis = Analysis(records=records, decisions=decisions, series=series, summary=summary, tables=tables)
    return _with_measured_fid(analysis, run_dir, plan)


def _with_measured_fid(analysis: Analysis, run_dir: Path, plan: RunPlan) -> Analysis:
    """Measured FID (real execution with quality.reference), next to the table-based estimate:
    into the summary, and per window as MLflow step metrics."""
    config = plan.config
    if config.execution.mode != "real" or not config.quality.reference:
        return analysis
    from orchestrator.fid import write as write_fid
    from orchestrator.quality.measure import measure

    result = measure(run_dir, analysis.records, config.quality, config.quality.reference)
    analysis.summary.update({k: v for k, v in write_fid(run_dir, result).items() if k.startswith("fid_")})
    w = result.windows
    points = [("fid_measured_window", float(v), int(t)) for t, v in zip(w["window_start_s"], w["fid"], strict=True)]
    return dataclasses.replace(analysis, step_metrics=points)
