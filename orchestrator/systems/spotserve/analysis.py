"""A SpotServe run's results from its roles' files: one record per request, the accounting,
the summary (latency mean and tail, completed and unfinished, cost) and the per-second series."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from orchestrator.analysis import completeness, read_role_files, run_summary, testbed_stats
from orchestrator.metrics import latency_stats, summarize
from orchestrator.results import Accounting, account, merge_records
from orchestrator.systems.base import Analysis
from orchestrator.systems.spotserve.metrics import spot_cost, spot_per_second, trace_kind
from runtime import rolefiles
from runtime.records import Outcome
from runtime.traces.spotserve import AvailabilityEvent, instance_hours

if TYPE_CHECKING:
    from orchestrator.systems.base import RunPlan
    from runtime.schema.spotserve import SpotServeConfig


def analyze(run_dir: Path, plan: RunPlan[SpotServeConfig], partial: bool) -> Analysis:
    config = plan.config
    model = config.model
    events: list[AvailabilityEvent] = plan.resolved.details
    files = read_role_files(run_dir, plan)
    records = merge_records(files.client, files.sink, math.inf)  # no SLO: a request completes or not
    books = account(files.client, files.sink, files.meta).merged(pool_accounting(run_dir, records, files.meta))
    counts = summarize(records)
    spot_h, od_h = instance_hours(events)
    completed = counts["completed_on_time"] + counts["completed_late"]
    decisions = files.decisions
    summary: dict[str, Any] = {
        **run_summary(plan),
        "ablation": config.ablation,
        "trace_kind": trace_kind(events, config.trace.requests.rates_per_minute),
        "queries_in_trace": len(plan.trace),
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
        "reconfigurations": max(0, decisions["change"].nunique() - 1) if len(decisions) else 0,
        "migration_s_total": float(decisions["migration_s"].sum()) if len(decisions) else 0.0,
        "moved_gb_total": float(decisions["moved_gb"].sum()) if len(decisions) else 0.0,
        **testbed_stats(files, plan),
        **completeness(run_dir, plan, partial, files, books, records),
    }
    series = spot_per_second(records, files.ticks, config.trace.duration_s)
    return Analysis(records=records, decisions=decisions, series=series, summary=summary)


def pool_accounting(run_dir: Path, records: pd.DataFrame, meta: dict[str, Any]) -> Accounting:
    """The unfinished requests must be exactly those the pool still holds at the end (waiting,
    pinned, leased or held): any other is lost on the way, or counted twice. A request whose
    notice came after the client closed its books finished, and is unfinished only for the run."""
    path = run_dir / "roles" / "load_balancer" / rolefiles.POOL_FILE
    books = Accounting()
    if not path.exists():
        return books  # the run is partial, and says so
    held = set(json.loads(path.read_text())["held_ids"])
    unfinished = set(records.loc[records["outcome"] == Outcome.UNFINISHED.value, "query_id"].astype(int))
    lost = unfinished - held - set(meta.get("after_close", []))
    books.add(lost, "{n} unfinished requests are not in the pool: lost on the way (e.g. id {first})")
    books.add(held - unfinished, "{n} requests the pool still holds were also noticed as done (e.g. id {first})")
    return books
