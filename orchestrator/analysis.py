"""A finished run's results, from the files its roles wrote: the records, the accounting, the
summary, the per-second series and the figures. Reads files and writes files; every number
comes from `orchestrator.metrics`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator import plots
from orchestrator.config.validate import workers_wanted
from orchestrator.metrics import fid_from_table, per_second, summarize, windowed_slo_ratio
from orchestrator.results import accounting_problems, merge_records
from runtime.schema import Config

FIGURES = ("threshold.png", "slo_violation_ratio.png", "fid.png")


@dataclass(frozen=True)
class Analysis:
    records: pd.DataFrame
    decisions: pd.DataFrame
    series: pd.DataFrame
    summary: dict[str, Any]


def _read_parquet(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.exists() else pd.DataFrame()


def analyze(run_dir: Path, config: Config, queries_in_trace: int, partial: bool) -> Analysis:
    cascade = config.cascade
    assert cascade is not None
    roles = run_dir / "roles"
    client = _read_parquet(roles / "client" / "client.parquet")
    sink = _read_parquet(roles / "sink" / "sink.parquet")
    if sink.empty:
        sink = pd.DataFrame({"query_id": pd.Series(dtype="int64")})
    meta_path = roles / "client" / "client_meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    decisions = _read_parquet(roles / "controller" / "decisions.parquet")
    ticks = _read_parquet(roles / "controller" / "ticks.parquet")
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
    title = f"{s['approach']} / {s['cascade']} / {s['trace']}"
    figures = run_dir / "figures"
    return [
        plots.threshold_over_time(analysis.series, title, figures / FIGURES[0]),
        plots.slo_violation_over_time(analysis.series, s["slo_violation_ratio"], title, figures / FIGURES[1], w),
        plots.fid_over_time(analysis.series, s["fid"], title, figures / FIGURES[2], w),
    ]
