"""The papers' figures, drawn with matplotlib from computed metrics only (no file reading, no
MLflow): each function takes data frames or dicts and writes one PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

SIZE_IN = (6.4, 3.6)
DPI = 150  # 960 x 540 pixels
APPROACH_COLORS = {
    "diffserve": "#1b9e77",
    "static": "#7570b3",
    "all_light": "#d95f02",
    "all_heavy": "#e7298a",
    "spotserve": "#1b9e77",
    "reparallelization": "#d95f02",
    "rerouting": "#7570b3",
}


def _smooth(values: np.ndarray, k: int) -> np.ndarray:
    """Trailing moving average that ignores NaN (k = 1: unchanged)."""
    s = pd.Series(values)
    return s.rolling(k, min_periods=1).mean().to_numpy()


def _finish(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def threshold_over_time(series: pd.DataFrame, title: str, path: Path) -> Path:
    """Figure 5 (left): the controller's threshold over time, with the demand it planned for."""
    fig, ax = plt.subplots(figsize=SIZE_IN)
    ax.step(series["second"], series["threshold"], where="post", color="#1b9e77", label="threshold")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("confidence threshold")
    ax.set_title(title)
    ax2 = ax.twinx()
    ax2.plot(
        series["second"],
        _smooth(series["arrivals"].to_numpy(float), 5),
        color="#999999",
        lw=1,
        label="arrivals (5 s mean)",
    )
    if "demand" in series:
        ax2.plot(series["second"], series["demand"], color="#d95f02", lw=1, ls="--", label="estimated demand")
    ax2.set_ylabel("queries / s")
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    labels = ax.get_legend_handles_labels()[1] + ax2.get_legend_handles_labels()[1]
    ax.legend(lines, labels, loc="upper right", fontsize=8)
    return _finish(fig, path)


def slo_violation_over_time(series: pd.DataFrame, overall: float, title: str, path: Path, window_s: float) -> Path:
    """Figure 5 (middle): SLO violation ratio of the queries arriving in each trailing window."""
    fig, ax = plt.subplots(figsize=SIZE_IN)
    ratio = _smooth(series["slo_violation_ratio_window"].to_numpy(float), 5)
    ax.plot(series["second"], ratio, color="#e7298a", label=f"{window_s:g}-s windows, 5-point mean")
    ax.axhline(overall, color="#444444", ls="--", lw=1, label=f"whole run {overall:.3f}")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("SLO violation ratio")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    return _finish(fig, path)


def fid_over_time(series: pd.DataFrame, overall: float, title: str, path: Path, window_s: float) -> Path:
    """Figure 5 (right): FID over time, estimated from the published FID-vs-light-fraction table."""
    fig, ax = plt.subplots(figsize=SIZE_IN)
    fid = _smooth(series["fid_estimate_window"].to_numpy(float), 5)
    ax.plot(series["second"], fid, color="#7570b3", label=f"{window_s:g}-s windows, 5-point mean")
    ax.axhline(overall, color="#444444", ls="--", lw=1, label=f"whole run {overall:.2f}")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("FID (table-based estimate)")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    return _finish(fig, path)


def grouped_bars(
    rows: list[dict[str, Any]], metrics: list[tuple[str, str]], group: str, path: Path, title: str
) -> Path:
    """Figure 6: one panel per metric, bars per approach, grouped by `group` (e.g. cascade).
    `rows` hold `approach`, `group` and the metric keys; missing values are left out."""
    groups = sorted({str(r[group]) for r in rows})
    approaches = [a for a in APPROACH_COLORS if any(r["approach"] == a for r in rows)]
    approaches += sorted({str(r["approach"]) for r in rows} - set(approaches))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    width = 0.8 / max(1, len(approaches))
    for ax, (key, label) in zip(axes[0], metrics, strict=True):
        for a_i, approach in enumerate(approaches):
            xs, ys = [], []
            for g_i, g in enumerate(groups):
                vals = [
                    r[key] for r in rows if r["approach"] == approach and str(r[group]) == g and r.get(key) is not None
                ]
                vals = [v for v in vals if not np.isnan(v)]
                if vals:
                    xs.append(g_i + (a_i - (len(approaches) - 1) / 2) * width)
                    ys.append(float(np.mean(vals)))
            ax.bar(xs, ys, width=width, label=approach, color=APPROACH_COLORS.get(approach))
        ax.set_xticks(range(len(groups)), groups)
        ax.set_ylabel(label)
        ax.set_xlabel(group)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    return _finish(fig, path)
