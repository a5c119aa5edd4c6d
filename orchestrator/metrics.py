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
