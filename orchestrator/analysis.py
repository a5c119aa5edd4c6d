"""A finished run's results, from the files its roles wrote (on either clock): the shared part.

Each system's registry entry builds its records, summary and series (`System.analyze`) from
`read_role_files`, starting from `run_summary` and adding `testbed_stats`; `write` puts the
records, the series and summary.json in the run directory. Every number comes from
`orchestrator.metrics` or the system's own metrics module.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from orchestrator.metrics import percentile
from orchestrator.results import Accounting
from runtime import rolefiles
from runtime.cores.client import ClientCore
from runtime.records import DropReason, Outcome
from runtime.spec import TRACE_FILE
from runtime.traces.arrivals import read_artifact

if TYPE_CHECKING:
    from orchestrator.systems.base import Analysis, RunPlan


@dataclass(frozen=True)
class RoleFiles:
    client: pd.DataFrame
    sink: pd.DataFrame
    meta: dict[str, Any]
    decisions: pd.DataFrame
    ticks: pd.DataFrame
    recovered: tuple[str, ...] = ()  # files rebuilt from a journal: their role was killed before its end


def _read_parquet(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.exists() else pd.DataFrame()


def has_client_records(run_dir: Path) -> bool:
    """Whether the client left anything to analyse (its file, or a journal with events)."""
    folder = run_dir / "roles" / "client"
    journal = folder / rolefiles.CLIENT_JOURNAL
    return (folder / rolefiles.CLIENT_FILE).exists() or (journal.exists() and journal.stat().st_size > 0)


def read_role_files(run_dir: Path, plan: RunPlan) -> RoleFiles:
    """The roles' files; the client's and the sink's books rebuilt from their journals when the
    role was killed before it wrote them (`recovered` names those)."""
    roles = run_dir / "roles"
    recovered: list[str] = []
    client_file, meta_file = roles / "client" / rolefiles.CLIENT_FILE, roles / "client" / rolefiles.CLIENT_META_FILE
    if client_file.exists():
        client = pd.read_parquet(client_file)
        meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    else:
        trace = read_artifact(run_dir / TRACE_FILE)
        core = ClientCore.for_run(plan.system.client_terms(plan.config), trace.arrival_s, trace.prompt_index)
        journal = roles / "client" / rolefiles.CLIENT_JOURNAL
        if journal.exists():
            rolefiles.replay_client(core, journal)
            recovered += [f"client/{rolefiles.CLIENT_FILE}", f"client/{rolefiles.CLIENT_META_FILE}"]
        client, meta = core.table().to_pandas(), core.meta()
    sink_file, sink_journal = roles / "sink" / rolefiles.SINK_FILE, roles / "sink" / rolefiles.SINK_JOURNAL
    if sink_file.exists():
        sink = pd.read_parquet(sink_file)
    elif sink_journal.exists():
        sink = pd.DataFrame(rolefiles.sink_rows(sink_journal))
        recovered.append(f"sink/{rolefiles.SINK_FILE}")
    else:
        sink = pd.DataFrame()
    if sink.empty:
        sink = pd.DataFrame({"query_id": pd.Series(dtype="int64")})
    decisions = _read_parquet(roles / "controller" / rolefiles.DECISIONS_FILE)
    ticks = _read_parquet(roles / "controller" / rolefiles.TICKS_FILE)
    return RoleFiles(client, sink, meta, decisions, ticks, tuple(recovered))


# Summary keys that say what ran, not what came out: MLflow params and tags, never metrics
# (a setting logged as a metric becomes the compare view's default axis).
SETTINGS = ("workers", "seed", "time_scale", "trace_duration_s", "slo_s", "ablation")


def run_summary(plan: RunPlan) -> dict[str, Any]:
    """What every run's summary starts with: what ran, on which clock, simulated or real."""
    c = plan.config
    return {
        "system": plan.system.name,
        "approach": c.approach.name,
        plan.system.subject_key: plan.subject,
        "trace": plan.trace.name,  # a trace file's own name when trace.path or availability_path is set
        "workers": plan.workers,
        "seed": c.seed,
        "clock": c.clock,
        "execution": c.execution.mode,
        "time_scale": c.time_scale if c.clock == "wall" else 1.0,
        "trace_duration_s": c.trace.duration_s,
    }


def completeness(
    run_dir: Path, plan: RunPlan, partial: bool, files: RoleFiles, books: Accounting, records: pd.DataFrame
) -> dict[str, Any]:
    """Whether the run is whole: `partial` when it was stopped early or a role left a file
    missing (it was killed before it wrote it: `missing_files` names those not rebuilt from a
    journal, `recovered_files` those that were), and the accounting: `queries_unaccounted`
    counts the queries whose records disagree or are missing, `queries_lost` those dropped
    because a call or a model failed (docs/metrics.md)."""
    absent = [f for f in plan.system.role_files if not (run_dir / "roles" / f).exists()]
    dropped = records.loc[records["outcome"] == Outcome.DROPPED.value, "drop_reason"] if len(records) else pd.Series()
    lost = {str(r): int(n) for r, n in dropped.value_counts().items() if r and DropReason(r).is_loss}
    return {
        "queries_lost": sum(lost.values()),
        "lost_reasons": lost,
        "partial": partial or bool(absent),
        "missing_files": [f"roles/{f}" for f in absent if f not in files.recovered],
        "recovered_files": [f"roles/{f}" for f in absent if f in files.recovered],
        "queries_unaccounted": len(books.unaccounted),
        "queries_after_client_ended": books.after_client_ended,
        "accounting_ok": not books.problems,
        "accounting_problems": books.problems,
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
    """records.parquet, timeseries.parquet, summary.json and the system's own tables; each
    written beside its place and renamed into it, so that a failed write (a full disk) leaves
    no half file behind."""

    def put(name: str, writer: Any) -> None:
        target = run_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        try:
            writer(tmp)
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)

    put("records.parquet", lambda p: analysis.records.to_parquet(p, index=False))
    for name, rows in analysis.tables.items():
        put(name, lambda p, rows=rows: rows.to_csv(p, index=False))
    put("timeseries.parquet", lambda p: analysis.series.to_parquet(p, index=False))
    put("summary.json", lambda p: p.write_text(json.dumps(analysis.summary, indent=1), encoding="utf-8"))
