"""DiffServe's metrics, computed only from a run's records and the controller's tick log
(definitions: docs/metrics.md). Pure functions of data frames; no files, no MLflow."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from runtime.records import Outcome, Tier


def light_fraction(records: pd.DataFrame) -> float:
    """Share of completed queries whose image came from the light model."""
    done = records[records["outcome"].isin([o.value for o in Outcome if o.is_completed])]
    return float((done["path"] == Tier.LIGHT.value).mean()) if len(done) else math.nan


def fid_from_table(light_fraction: float | np.ndarray, table_x: list[float], table_y: list[float]) -> np.ndarray:
    """Table-based FID estimate: the cascade's published FID at this light-served fraction
    (docs/metrics.md, "FID (table-based estimate)"); NaN where the fraction is NaN."""
    frac = np.asarray(light_fraction, dtype=float)
    return np.where(np.isnan(frac), np.nan, np.interp(np.nan_to_num(frac), table_x, table_y))


def violations(outcomes: pd.Series) -> np.ndarray:
    """1.0 for each outcome that violates the SLO (`Outcome.is_violation`), else 0.0: a lookup
    per distinct outcome, not an enum made per row. An outcome that is no Outcome is an error."""
    flags = outcomes.map({o.value: float(o.is_violation) for o in Outcome})
    if flags.isna().any():
        raise ValueError(f"not an outcome: {outcomes[flags.isna()].iloc[0]!r}")
    return flags.to_numpy(dtype=float)


def window_index(times: pd.Series, window_s: float) -> pd.Series:
    return np.floor(times / window_s).astype("Int64")


def windowed_slo_ratio(records: pd.DataFrame, window_s: float = 5.0, smooth: int = 5) -> tuple[np.ndarray, float]:
    """The artifact's windowed SLO violation ratio (docs/metrics.md, "windowed SLO violation
    ratio"): per window of arrivals, violations / queries (0 for an empty window), then a
    `smooth`-window moving average; returns the smoothed series and its unweighted mean."""
    if records.empty:
        return np.zeros(0), math.nan
    idx = window_index(records["sent_at"], window_s)
    bad = violations(records["outcome"])
    n = int(idx.max()) + 1
    total = np.bincount(idx.to_numpy(dtype=int), minlength=n)
    viol = np.bincount(idx.to_numpy(dtype=int), weights=bad, minlength=n)
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
    bad = violations(records["outcome"])
    done = records["outcome"].isin([o.value for o in Outcome if o.is_completed]).to_numpy(dtype=float)
    light = (records["path"] == Tier.LIGHT.value).to_numpy(dtype=float)
    arrivals = np.bincount(sec, minlength=horizon)[:horizon]
    violated = np.bincount(sec, weights=bad, minlength=horizon)[:horizon]
    completed = np.bincount(sec, weights=done, minlength=horizon)[:horizon]
    light_done = np.bincount(sec, weights=light * done, minlength=horizon)[:horizon]
    w = max(1, round(window_s))
    kernel = np.ones(w)

    def trailing(x: np.ndarray) -> np.ndarray:
        return np.convolve(x, kernel)[:horizon]

    win_arr, win_viol = trailing(arrivals), trailing(violated)
    win_done, win_light = trailing(completed), trailing(light_done)
    out["arrivals"] = arrivals
    out["violations"] = violated
    out["slo_violation_ratio_window"] = np.where(win_arr > 0, win_viol / np.maximum(win_arr, 1), np.nan)
    out["light_fraction_window"] = np.where(win_done > 0, win_light / np.maximum(win_done, 1), np.nan)
    out["fid_estimate_window"] = fid_from_table(out["light_fraction_window"].to_numpy(), fid_x, fid_y)
    return out
