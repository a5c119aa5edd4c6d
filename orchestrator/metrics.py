"""Metrics every system shares, computed only from a run's records (definitions: docs/metrics.md);
each system's own metrics live in its package (orchestrator/systems/<system>/metrics.py).

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
from runtime.records import Outcome


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
        "drop_reasons": {str(k): int(v) for k, v in drops.items()},
    }


# The latency tail every system reports: SpotServe's artifact's stat_latency (mean, P90,
# P95..P99) plus the median.
SPOT_PERCENTILES = (50, 90, 95, 96, 97, 98, 99)


def latency_stats(records: pd.DataFrame) -> dict[str, float]:
    """Mean and nearest-rank percentiles of completed requests' latency (docs/metrics.md)."""
    latency = records["latency_s"]
    out = {"latency_mean_s": float(latency.mean()) if latency.notna().any() else math.nan}
    for q in SPOT_PERCENTILES:
        out[f"latency_p{q}_s"] = percentile(latency, q)
    return out
