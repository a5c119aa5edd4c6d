"""A finished run's results, from the files its roles wrote (on either clock): the shared part.

Each system's registry entry builds its records, summary and series (`System.analyze`) from
`read_role_files`, starting from `run_summary` and adding `testbed_stats`; `write` puts the
records, the series and summary.json in the run directory. Every number comes from
`orchestrator.metrics` or the system's own metrics module.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from orchestrator.metrics import percentile
from runtime import rolefiles

if TYPE_CHECKING:
    from orchestrator.plan import RunPlan


@dataclass(frozen=True)
class Analysis:
    records: pd.DataFrame
    decisions: pd.DataFrame
    series: pd.DataFrame
    summary: dict[str, Any]
    step_metrics: list[tuple[str, float, int]] = field(default_factory=list)  # more MLflow step metrics


@dataclass(frozen=True)
class RoleFiles:
    client: pd.DataFrame
    sink: pd.DataFrame
    meta: dict[str, Any]
    decisions: pd.DataFrame
    ticks: pd.DataFrame


def _read_parquet(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.exists() else pd.DataFrame()


def read_role_files(run_dir: Path) -> RoleFiles:
    roles = run_dir / "roles"
    client = _read_parquet(roles / "client" / rolefiles.CLIENT_FILE)
    sink = _read_parquet(roles / "sink" / rolefiles.SINK_FILE)
    if sink.empty:
        sink = pd.DataFrame({"query_id": pd.Series(dtype="int64")})
    meta_path = roles / "client" / rolefiles.CLIENT_META_FILE
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    decisions = _read_parquet(roles / "controller" / rolefiles.DECISIONS_FILE)
    ticks = _read_parquet(roles / "controller" / rolefiles.TICKS_FILE)
    return RoleFiles(client, sink, meta, decisions, ticks)


def run_summary(plan: RunPlan) -> dict[str, Any]:
    """What every run's summary starts with: what ran, on which clock."""
    c = plan.config
    return {
        "system": plan.system.name,
        "approach": c.approach.name,
        plan.system.subject_key: plan.subject,
        "trace": c.trace.name,
        "workers": plan.workers,
        "seed": c.seed,
        "clock": c.clock,
        "time_scale": c.time_scale if c.clock == "wall" else 1.0,
    }


def completeness(run_dir: Path, plan: RunPlan, partial: bool, problems: list[str]) -> dict[str, Any]:
    """Whether the run is whole: `partial` when it was stopped early or a role left a file
    missing (it was killed before it wrote it; `missing_files` names them), and the accounting."""
    missing = [f"roles/{f}" for f in plan.system.role_files if not (run_dir / "roles" / f).exists()]
    return {
        "partial": partial or bool(missing),
        "missing_files": missing,
        "accounting_ok": not problems,
        "accounting_problems": problems,
    }


def testbed_stats(files: RoleFiles, plan: RunPlan) -> dict[str, Any]:
    """How well the testbed kept up: the client's send lag (sent_at - arrival, trace seconds)
    and the gaps between the controller's heartbeats. On the virtual clock both are exact."""
    out: dict[str, Any] = {}
    client = files.client
    if len(client) and "sent_at" in client:
        sent = client[client["sent_at"].notna()]
        lag = (sent["sent_at"] - sent["arrival_s"]).to_numpy(float)
        out["client_send_lag_p50_s"] = percentile(lag, 50)
        out["client_send_lag_p99_s"] = percentile(lag, 99)
        limit = plan.config.run.send_lag_limit_s
        out["client_fell_behind"] = bool(
            lag.size and not math.isnan(out["client_send_lag_p99_s"]) and out["client_send_lag_p99_s"] > limit
        )
    ticks = files.ticks
    if len(ticks) > 1 and "time" in ticks:
        gaps = np.diff(np.sort(ticks["time"].to_numpy(float)))
        out["heartbeat_gap_p50_s"] = percentile(gaps, 50)
        out["heartbeat_gap_max_s"] = float(gaps.max())
    return out


def write(analysis: Analysis, run_dir: Path) -> None:
    """records.parquet, timeseries.parquet and summary.json."""
    analysis.records.to_parquet(run_dir / "records.parquet", index=False)
    analysis.series.to_parquet(run_dir / "timeseries.parquet", index=False)
    (run_dir / "summary.json").write_text(json.dumps(analysis.summary, indent=1), encoding="utf-8")
