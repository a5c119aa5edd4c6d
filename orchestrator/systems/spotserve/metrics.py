"""SpotServe's metrics: cost from the availability trace, and the per-second series
(definitions: docs/metrics.md). Pure functions; no files, no MLflow."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from runtime.records import Outcome
from runtime.traces.spotserve import AvailabilityEvent


def spot_cost(
    spot_hours: float, ondemand_hours: float, price_spot: float, price_ondemand: float, tokens: int
) -> dict[str, float]:
    """Cost of the instances alive over the trace, and per 1000 tokens of completed requests
    (docs/metrics.md, "cost")."""
    cost = spot_hours * price_spot + ondemand_hours * price_ondemand
    return {
        "spot_instance_hours": spot_hours,
        "ondemand_instance_hours": ondemand_hours,
        "cost_usd": cost,
        "tokens": float(tokens),
        "cost_per_1k_tokens_usd": cost / (tokens / 1000.0) if tokens else math.nan,
    }


def spot_per_second(records: pd.DataFrame, ticks: pd.DataFrame, horizon_s: float) -> pd.DataFrame:
    """Per trace second: arrivals, completions (by completion time), the mean latency of those
    completions, and the pool and fleet at the end of the second."""
    horizon = math.ceil(max(horizon_s, 0.0)) + 1
    out = pd.DataFrame({"second": np.arange(horizon)})
    sent = np.floor(records["sent_at"].to_numpy(float)).astype(int)
    out["arrivals"] = np.bincount(sent[(sent >= 0) & (sent < horizon)], minlength=horizon)[:horizon]
    done = records[records["outcome"].isin([o.value for o in Outcome if o.is_completed])]
    sec = np.floor(done["notice_at"].to_numpy(float)).astype(int)
    ok = (sec >= 0) & (sec < horizon)
    out["completions"] = np.bincount(sec[ok], minlength=horizon)[:horizon]
    total = np.bincount(sec[ok], weights=done["latency_s"].to_numpy(float)[ok], minlength=horizon)[:horizon]
    out["completion_latency_mean_s"] = np.where(
        out["completions"] > 0, total / np.maximum(out["completions"], 1), np.nan
    )
    if len(ticks):
        state = ticks[ticks["time"] >= 0].copy()
        state["second"] = np.floor(state["time"]).astype(int)
        cols = [
            c for c in ("waiting", "pinned", "alive_instances", "replicas", "dp", "tp", "pp", "batch") if c in state
        ]
        last = state.groupby("second")[cols].last()
        out = out.merge(last, left_on="second", right_index=True, how="left")
        out[cols] = out[cols].ffill()
    return out


def trace_kind(events: list[AvailabilityEvent], rates_per_minute: list[float] | None) -> str:
    """How the report groups a SpotServe trace: `ondemand` (no spot instance: Figure 7's
    line), `workload` (a changing target or request rate: Figure 8), else `spot`."""
    if not any(e.op == "add" and not e.ondemand for e in events):
        return "ondemand"
    if rates_per_minute or any(e.op == "tpt" and e.at_s > 0 for e in events):
        return "workload"
    return "spot"
