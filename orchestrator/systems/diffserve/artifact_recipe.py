"""The DiffServe artifact's own numbers for one of our runs: the per-second logs its controller
would have written, and what its plotting script prints from them (docs/metrics.md, "The
artifact's recipe"). Pure functions of data frames; `read_logs` is the only I/O.

The artifact (qizhengyang98/DiffServe, commit 7f2e4d7) books its results in the controller,
once per controller second (`src/controller/controller.py`, `eventLoop`, period 1 s):

- `query_num_per_second.csv` (`sdturbo`, `sdv15`): the queries each tier's workers took into
  their queues since the last heartbeat (`queriesSinceHeartbeat`, summed by model). Every
  query enters a light worker first, so the light column counts *every* query and the heavy
  column the deferred ones;
- `slo_timeouts_per_second.csv` (`succeed`, `timeout`, `drop`, `total`): a query's start is
  when the first worker took it, its end when the sink got it; it is booked at the heartbeat
  that brings the later of the two, `timeout` when end - start > SLO; one that has not ended
  2 x SLO after its start is booked as `drop` at the first heartbeat past that, and a query no
  worker took is never booked;
- `thres_per_second.csv` (`threshold`): the threshold in effect.

Rows start at the first second with a query in flight (the controller writes only once its
demand estimate is positive) and go on, a row a second, until the controller is stopped: here
until the last query is booked, and at least the script's 355 rows (it fails on fewer), the
rows past the run's end with zero counts and the last threshold.

`plotting/plot_results.py` then prints "Mean SLO violation rate" and "Mean FID" from the first
355 rows in 5-row chunks. `script_means` is that computation, line for line, quirks included:
the FID's x is 1 - (heavy / light ratio of a chunk, divided by the run's largest ratio) + the
cascade's hand-tuned offset, looked up on a quadratic fit of the FID table. A run with no
heavy-served query divides 0 by 0 there, and the script's nearest-point search then returns
the first grid point, the all-heavy end of the fit; a run whose light column is empty makes
the script stop with an error (NaN here). `fid_note` says which case a run is in.
tests/conformance/ holds the script's own output on fixed logs, and the tests compare.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from runtime.records import Outcome

# plotting/plot_results.py: end_point = 355 rows, chunk_size = 5, 100 grid points for the fit.
END_ROWS = 355
CHUNK = 5
GRID = 100
# The artifact's controller: one row per heartbeat of this period; a query still unfinished
# `DROP_AFTER_SLO` x SLO after its start is booked as dropped.
PERIOD_S = 1.0
DROP_AFTER_SLO = 2.0

# The files and their headers, as the artifact writes them ("sdturbo" is the light slot and
# "sdv15" the heavy one in every cascade).
FILES: dict[str, tuple[str, ...]] = {
    "slo_timeouts_per_second.csv": ("succeed", "timeout", "drop", "total"),
    "thres_per_second.csv": ("threshold",),
    "query_num_per_second.csv": ("sdturbo", "sdv15"),
}
COLUMNS = tuple(c for cols in FILES.values() for c in cols)


@dataclass(frozen=True)
class ScriptMeans:
    """What plot_results.py prints for one run's logs."""

    slo_violation_ratio: float  # "Mean SLO violation rate"
    fid: float  # "Mean FID" (NaN where the script stops with an error)
    fid_note: str  # "" when the script's FID is well defined, else why it is not


def _heartbeat(t: np.ndarray) -> np.ndarray:
    """The controller second whose heartbeat brings news of an event at trace time t."""
    return np.ceil(np.asarray(t, dtype=float) / PERIOD_S).astype(np.int64)


def controller_logs(records: pd.DataFrame, decisions: pd.DataFrame, slo_s: float) -> pd.DataFrame:
    """The rows the artifact's controller would have written for this run (module docstring):
    one per controller second, columns `second` and COLUMNS."""
    light_in = records["light_enqueued_at"].to_numpy(dtype=float)
    heavy_in = records["heavy_enqueued_at"].to_numpy(dtype=float)
    start = np.where(np.isnan(light_in), heavy_in, light_in)
    seen = ~np.isnan(start)
    if not seen.any():
        return pd.DataFrame(columns=["second", *COLUMNS])
    completed = records["outcome"].isin([o.value for o in Outcome if o.is_completed]).to_numpy()
    end = np.where(completed, records["sink_at"].to_numpy(dtype=float), np.nan)
    start, end = start[seen], end[seen]
    ended = ~np.isnan(end)
    k_start = _heartbeat(start)
    k_end = np.where(ended, _heartbeat(np.where(ended, end, 0.0)), np.iinfo(np.int64).max)
    k_done = np.maximum(k_start, k_end)
    # First heartbeat strictly past start + 2 SLO (the controller checks after the heartbeats,
    # so a completion brought by the same heartbeat wins).
    k_drop = np.floor((start + DROP_AFTER_SLO * slo_s) / PERIOD_S).astype(np.int64) + 1
    dropped = k_done > k_drop
    late = ~dropped & (np.where(ended, end, 0.0) - start > slo_s)
    k_book = np.where(dropped, k_drop, k_done)
    first = int(k_start.min())
    last = max(int(k_book.max()), first + END_ROWS - 1)
    n = last - first + 1

    def count(k: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
        # Everything before the first row is in the first row (the counts reset only on a write).
        return np.bincount(np.clip(k - first, 0, None), weights=weight, minlength=n)[:n].astype(np.int64)

    rows = pd.DataFrame({"second": np.arange(first, last + 1)})
    rows["drop"] = count(k_book[dropped])
    rows["timeout"] = count(k_book[late])
    rows["succeed"] = count(k_book[~dropped & ~late])
    rows["total"] = rows["succeed"] + rows["timeout"] + rows["drop"]
    rows["threshold"] = _threshold_at(decisions, rows["second"].to_numpy(dtype=float))
    rows["sdturbo"] = count(_heartbeat(light_in[~np.isnan(light_in)]))
    rows["sdv15"] = count(_heartbeat(heavy_in[~np.isnan(heavy_in)]))
    return rows[["second", *COLUMNS]]


def _threshold_at(decisions: pd.DataFrame, seconds: np.ndarray) -> np.ndarray:
    """The threshold of the plan in effect at each second (the artifact's initial 1.0 before
    the first plan)."""
    if decisions.empty:
        return np.ones(seconds.size)
    times = decisions["time"].to_numpy(dtype=float)
    values = decisions["threshold"].to_numpy(dtype=float)
    i = np.searchsorted(times, seconds, side="right") - 1
    return np.where(i >= 0, values[np.clip(i, 0, None)], 1.0)


def script_means(logs: pd.DataFrame, fid_x: list[float], fid_y: list[float], offset: float) -> ScriptMeans:
    """plot_results.py's "Mean SLO violation rate" and "Mean FID" from the controller's logs."""
    logs = logs.iloc[:END_ROWS].reset_index(drop=True)
    chunk = logs.index // CHUNK
    sums = logs[["timeout", "drop", "total", "sdturbo", "sdv15"]].groupby(chunk).sum()
    ratio = (sums["timeout"] + sums["drop"]) / sums["total"].replace(0, 1)
    mean_slo = float(np.mean(np.convolve(ratio, np.ones(CHUNK) / CHUNK, mode="valid"))) if len(ratio) else math.nan
    light, heavy = sums["sdturbo"].to_numpy(dtype=float), sums["sdv15"].to_numpy(dtype=float)
    per_chunk = heavy[light > 0] / light[light > 0]
    if per_chunk.size == 0:
        return ScriptMeans(mean_slo, math.nan, "no light query: the script stops with an error (max of an empty list)")
    note = ""
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = per_chunk / np.max(per_chunk)
    if np.isnan(scaled).any():
        note = "no heavy query: the script divides 0 by 0 and reads the fit's first grid point (the all-heavy end)"
    x = 1.0 - scaled + offset
    grid = np.linspace(0.0, 1.0, GRID)
    with warnings.catch_warnings():  # a table of fewer than 3 points (the tiny cascade's) fits exactly
        warnings.simplefilter("ignore", np.exceptions.RankWarning)
        fitted = np.poly1d(np.polyfit(fid_x, fid_y, deg=2))(grid)
    # min(range, key=|grid - x|): the first nearest point; a NaN x compares false, so index 0.
    with np.errstate(invalid="ignore"):
        nearest = np.where(np.isnan(x), 0, np.abs(grid[None, :] - np.nan_to_num(x)[:, None]).argmin(axis=1))
    fid = fitted[nearest]
    return ScriptMeans(mean_slo, float(np.mean(np.convolve(fid, np.ones(CHUNK) / CHUNK, mode="valid"))), note)


def log_files(logs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The three CSV files, in the artifact's format (a folder its plot_results.py can read):
    file name -> its rows."""
    return {name: logs[list(cols)] for name, cols in FILES.items()}


def read_logs(folder: Path) -> pd.DataFrame:
    """The three CSV files of an artifact log folder, side by side (rows aligned by position)."""
    frames = [pd.read_csv(folder / name)[list(cols)] for name, cols in FILES.items()]
    rows = min(len(f) for f in frames)
    return pd.concat([f.iloc[:rows].reset_index(drop=True) for f in frames], axis=1)
