"""Metrics of a run, computed only from its records (definitions: docs/metrics.md).

Pure functions of data frames; no files, no MLflow. Percentiles are nearest-rank (the
smallest latency with at least p% of the completed queries at or below it), the rule the
SpotServe paper uses, so that every system in this project reports tails the same way.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from orchestrator.results import count_outcomes
from runtime.records import Outcome, Tier


def percentile(values: pd.Series | np.ndarray, q: float) -> float:
    """Nearest-rank percentile (docs/metrics.md, "percentile"); NaN for no values."""
    arr = np.asarray(values, dtype=float)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return math.nan
    return float(np.percentile(arr, q, method="inverted_cdf"))


def slo_violation_ratio(counts: dict[str, int]) -> float:
    """(late + dropped + unfinished) / sent (docs/metrics.md, "SLO violation ratio")."""
    sent = sum(counts.values())
    bad = sum(n for o, n in counts.items() if Outcome(o).is_violation)
    return bad / sent if sent else math.nan


def light_fraction(records: pd.DataFrame) -> float:
    """Share of completed queries whose image came from the light model."""
    done = records[records["outcome"].isin([o.value for o in Outcome if o.is_completed])]
    return float((done["path"] == Tier.LIGHT.value).mean()) if len(done) else math.nan


def summarize(records: pd.DataFrame) -> dict[str, Any]:
    """The run's headline numbers (summary.json)."""
    counts = count_outcomes(records)
    latency = records["latency_s"]
    drops = records.loc[records["outcome"] == Outcome.DROPPED.value, "drop_reason"].value_counts()
    return {
        "queries_sent": len(records),
        **counts,
        "slo_violation_ratio": slo_violation_ratio(counts),
        "latency_mean_s": float(latency.mean()) if latency.notna().any() else math.nan,
        "latency_p50_s": percentile(latency, 50),
        "latency_p90_s": percentile(latency, 90),
        "latency_p99_s": percentile(latency, 99),
        "light_fraction": light_fraction(records),
        "drop_reasons": {str(k): int(v) for k, v in drops.items()},
    }


def fid_from_table(light_fraction: float | np.ndarray, table_x: list[float], table_y: list[float]) -> np.ndarray:
    """Table-based FID estimate: the cascade's published FID at this light-served fraction
    (docs/metrics.md, "FID (table-based estimate)"); NaN where the fraction is NaN."""
    frac = np.asarray(light_fraction, dtype=float)
    return np.where(np.isnan(frac), np.nan, np.interp(np.nan_to_num(frac), table_x, table_y))


def window_index(times: pd.Series, window_s: float) -> pd.Series:
    return np.floor(times / window_s).astype("Int64")


def windowed_slo_ratio(records: pd.DataFrame, window_s: float = 5.0, smooth: int = 5) -> tuple[np.ndarray, float]:
    """The artifact's windowed SLO violation ratio (docs/metrics.md, "windowed SLO violation
    ratio"): per window of arrivals, violations / queries (0 for an empty window), then a
    `smooth`-window moving average; returns the smoothed series and its unweighted mean."""
    if records.empty:
        return np.zeros(0), math.nan
    idx = window_index(records["sent_at"], window_s)
    bad = records["outcome"].map(lambda o: Outcome(o).is_violation)
    n = int(idx.max()) + 1
    total = np.bincount(idx.to_numpy(dtype=int), minlength=n)
    viol = np.bincount(idx.to_numpy(dtype=int), weights=bad.to_numpy(dtype=float), minlength=n)
    ratio = np.divide(viol, np.maximum(total, 1))
    k = min(smooth, ratio.size)
    smoothed = np.convolve(ratio, np.ones(k) / k, mode="valid")
    return smoothed, float(smoothed.mean())


def per_second(
    records: pd.DataFrame, ticks: pd.DataFrame, fid_x: list[float], fid_y: list[float], window_s: float = 5.0
) -> pd.DataFrame:
    """Per trace-second series (docs/metrics.md, "time series"): the controller's state at the
    end of each second, and trailing-window quality of the queries that arrived."""
    horizon = math.ceil(max(records["sent_at"].max() if len(records) else 0.0, 0.0)) + 1
    seconds = np.arange(horizon)
    out = pd.DataFrame({"second": seconds})
    if len(ticks):
        state = ticks[ticks["time"] >= 0].copy()
        state["second"] = np.floor(state["time"]).astype(int)
        cols = ["threshold", "light_workers", "heavy_workers", "light_batch", "heavy_batch", "demand"]
        last = state.groupby("second")[cols].last()
        out = out.merge(last, left_on="second", right_index=True, how="left")
        out[cols] = out[cols].ffill()
    sec = np.floor(records["sent_at"]).astype(int).to_numpy()
    bad = records["outcome"].map(lambda o: Outcome(o).is_violation).to_numpy(dtype=float)
    done = records["outcome"].isin([o.value for o in Outcome if o.is_completed]).to_numpy(dtype=float)
    light = (records["path"] == Tier.LIGHT.value).to_numpy(dtype=float)
    arrivals = np.bincount(sec, minlength=horizon)[:horizon]
    violations = np.bincount(sec, weights=bad, minlength=horizon)[:horizon]
    completed = np.bincount(sec, weights=done, minlength=horizon)[:horizon]
    light_done = np.bincount(sec, weights=light * done, minlength=horizon)[:horizon]
    w = max(1, round(window_s))
    kernel = np.ones(w)

    def trailing(x: np.ndarray) -> np.ndarray:
        return np.convolve(x, kernel)[:horizon]

    win_arr, win_viol = trailing(arrivals), trailing(violations)
    win_done, win_light = trailing(completed), trailing(light_done)
    out["arrivals"] = arrivals
    out["violations"] = violations
    out["slo_violation_ratio_window"] = np.where(win_arr > 0, win_viol / np.maximum(win_arr, 1), np.nan)
    out["light_fraction_window"] = np.where(win_done > 0, win_light / np.maximum(win_done, 1), np.nan)
    out["fid_estimate_window"] = fid_from_table(out["light_fraction_window"].to_numpy(), fid_x, fid_y)
    return out


# SpotServe's percentiles: the artifact's stat_latency (mean, P90, P95..P99) plus the median.
SPOT_PERCENTILES = (50, 90, 95, 96, 97, 98, 99)


def latency_stats(records: pd.DataFrame) -> dict[str, float]:
    """Mean and nearest-rank percentiles of completed requests' latency (docs/metrics.md)."""
    latency = records["latency_s"]
    out = {"latency_mean_s": float(latency.mean()) if latency.notna().any() else math.nan}
    for q in SPOT_PERCENTILES:
        out[f"latency_p{q}_s"] = percentile(latency, q)
    return out


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
