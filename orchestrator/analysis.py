"""A finished run's results, from the files its roles wrote: the records, the accounting, the
summary, the per-second series and the figures. Reads files and writes files; every number
comes from `orchestrator.metrics`."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator import plots
from orchestrator.config.validate import workers_wanted
from orchestrator.metrics import (
    fid_from_table,
    latency_stats,
    per_second,
    spot_cost,
    spot_per_second,
    summarize,
    windowed_slo_ratio,
)
from orchestrator.results import accounting_problems, merge_records
from runtime.schema import Config
from traces.spotserve import AvailabilityEvent, instance_hours, load_availability

FIGURES = ("threshold.png", "slo_violation_ratio.png", "fid.png")


@dataclass(frozen=True)
class Analysis:
    records: pd.DataFrame
    decisions: pd.DataFrame
    series: pd.DataFrame
    summary: dict[str, Any]


def _read_parquet(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.exists() else pd.DataFrame()


def _role_files(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], pd.DataFrame, pd.DataFrame]:
    roles = run_dir / "roles"
    client = _read_parquet(roles / "client" / "client.parquet")
    sink = _read_parquet(roles / "sink" / "sink.parquet")
    if sink.empty:
        sink = pd.DataFrame({"query_id": pd.Series(dtype="int64")})
    meta_path = roles / "client" / "client_meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    decisions = _read_parquet(roles / "controller" / "decisions.parquet")
    ticks = _read_parquet(roles / "controller" / "ticks.parquet")
    return client, sink, meta, decisions, ticks


def analyze(run_dir: Path, config: Config, queries_in_trace: int, partial: bool) -> Analysis:
    if config.system.name == "spotserve":
        return _analyze_spotserve(run_dir, config, queries_in_trace, partial)
    cascade = config.cascade
    assert cascade is not None
    client, sink, meta, decisions, ticks = _role_files(run_dir)
    records = merge_records(client, sink, cascade.slo_s)
    records["served_model"] = records["path"].map({"light": cascade.light.name, "heavy": cascade.heavy.name}).fillna("")
    problems = accounting_problems(client, sink, meta)
    base = summarize(records)
    _, windowed = windowed_slo_ratio(records, config.metrics.window_s, config.metrics.smooth)
    summary: dict[str, Any] = {
        "system": config.system.name,
        "approach": config.approach.name,
        "cascade": cascade.name,
        "trace": config.trace.name,
        "workers": workers_wanted(config),
        "seed": config.seed,
        "time_scale": config.time_scale,
        "slo_s": cascade.slo_s,
        "queries_in_trace": queries_in_trace,
        **base,
        "slo_violation_ratio_windowed": windowed,
        "fid": float(fid_from_table(base["light_fraction"], cascade.fid_table.x, cascade.fid_table.y)),
        "fid_method": "table-based estimate from the light-served fraction",
        "plans": len(decisions),
        "infeasible_plans": int((~decisions["feasible"]).sum()) if len(decisions) else 0,
        "partial": partial,
        "accounting_ok": not problems,
        "accounting_problems": problems,
    }
    series = per_second(records, ticks, cascade.fid_table.x, cascade.fid_table.y, config.metrics.window_s)
    return Analysis(records=records, decisions=decisions, series=series, summary=summary)


def trace_kind(events: list[AvailabilityEvent], rates_per_minute: list[float] | None) -> str:
    """How the report groups a SpotServe trace: `ondemand` (no spot instance: Figure 7's
    line), `workload` (a changing target or request rate: Figure 8), else `spot`."""
    if not any(e.op == "add" and not e.ondemand for e in events):
        return "ondemand"
    if rates_per_minute or any(e.op == "tpt" and e.at_s > 0 for e in events):
        return "workload"
    return "spot"


def _analyze_spotserve(run_dir: Path, config: Config, queries_in_trace: int, partial: bool) -> Analysis:
    model = config.model
    assert model is not None
    client, sink, meta, decisions, ticks = _role_files(run_dir)
    records = merge_records(client, sink, math.inf)  # no SLO: a request completes or not
    problems = accounting_problems(client, sink, meta)
    counts = summarize(records)
    events = load_availability(config.trace)
    spot_h, od_h = instance_hours(events)
    completed = counts["completed_on_time"] + counts["completed_late"]
    summary: dict[str, Any] = {
        "system": config.system.name,
        "approach": config.approach.name,
        "ablation": config.ablation,
        "model": model.name,
        "trace": config.trace.name,
        "trace_kind": trace_kind(events, config.trace.requests.rates_per_minute),
        "trace_duration_s": config.trace.duration_s,
        "workers": workers_wanted(config),
        "seed": config.seed,
        "time_scale": config.time_scale,
        "queries_in_trace": queries_in_trace,
        "queries_sent": counts["queries_sent"],
        "completed": completed,
        "dropped": counts["dropped"],
        "unfinished": counts["unfinished"],
        **latency_stats(records),
        "latency_percentiles": "nearest-rank over completed requests",
        "restarted_requests": int((records.get("restarts", pd.Series(dtype=float)).fillna(0) > 0).sum()),
        "resumed_requests": int(decisions["resumed_requests"].sum()) if len(decisions) else 0,
        **spot_cost(
            spot_h,
            od_h,
            config.spot.price_spot_per_hour,
            config.spot.price_ondemand_per_hour,
            completed * (model.input_len + model.output_len),
        ),
        "reconfigurations": max(0, len(decisions) - 1),
        "migration_s_total": float(decisions["migration_s"].sum()) if len(decisions) else 0.0,
        "moved_gb_total": float(decisions["moved_gb"].sum()) if len(decisions) else 0.0,
        "partial": partial,
        "accounting_ok": not problems,
        "accounting_problems": problems,
    }
    series = spot_per_second(records, ticks, config.trace.duration_s)
    return Analysis(records=records, decisions=decisions, series=series, summary=summary)


def measure_fid(analysis: Analysis, run_dir: Path, config: Config) -> pd.DataFrame | None:
    """Measured FID (real execution with quality.reference): into summary.json and the
    returned per-window table, next to the table-based estimate."""
    if config.execution.mode != "real" or not config.quality.reference:
        return None
    from orchestrator.fid import write as write_fid
    from orchestrator.quality.measure import measure

    result = measure(run_dir, analysis.records, config.quality, config.quality.reference)
    analysis.summary.update({k: v for k, v in write_fid(run_dir, result).items() if k.startswith("fid_")})
    return result.windows


def write(analysis: Analysis, run_dir: Path, config: Config) -> list[Path]:
    """records.parquet, timeseries.parquet, summary.json and the Figure 5 trio; returns the figures."""
    analysis.records.to_parquet(run_dir / "records.parquet", index=False)
    analysis.series.to_parquet(run_dir / "timeseries.parquet", index=False)
    (run_dir / "summary.json").write_text(json.dumps(analysis.summary, indent=1), encoding="utf-8")
    s, w = analysis.summary, config.metrics.window_s
    if analysis.records.empty:
        return []
    figures = run_dir / "figures"
    if config.system.name == "spotserve":
        label = s["approach"] + (f" (ablation {s['ablation']})" if s.get("ablation") else "")
        title = f"{label} / {s['model']} / {s['trace']}"
        return [plots.latency_over_time(analysis.records, analysis.series, title, figures / "latency_over_time.png")]
    title = f"{s['approach']} / {s['cascade']} / {s['trace']}"
    return [
        plots.threshold_over_time(analysis.series, title, figures / FIGURES[0]),
        plots.slo_violation_over_time(analysis.series, s["slo_violation_ratio"], title, figures / FIGURES[1], w),
        plots.fid_over_time(analysis.series, s["fid"], title, figures / FIGURES[2], w),
    ]
