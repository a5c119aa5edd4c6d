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
    column, label = "slo_violation_ratio_window", "SLO violation ratio"
    return _window_line(series, column, "#e7298a", label, f"{overall:.3f}", overall, title, path, window_s, True)


def fid_over_time(series: pd.DataFrame, overall: float, title: str, path: Path, window_s: float) -> Path:
    """Figure 5 (right): FID over time, estimated from the published FID-vs-light-fraction table."""
    column, label = "fid_estimate_window", "FID (table-based estimate)"
    return _window_line(series, column, "#7570b3", label, f"{overall:.2f}", overall, title, path, window_s, False)


def _window_line(
    series: pd.DataFrame,
    column: str,
    color: str,
    ylabel: str,
    overall_text: str,
    overall: float,
    title: str,
    path: Path,
    window_s: float,
    from_zero: bool,
) -> Path:
    """A windowed per-second series (5-point mean) with the whole run's value as a dashed line."""
    fig, ax = plt.subplots(figsize=SIZE_IN)
    values = _smooth(series[column].to_numpy(float), 5)
    ax.plot(series["second"], values, color=color, label=f"{window_s:g}-s windows, 5-point mean")
    ax.axhline(overall, color="#444444", ls="--", lw=1, label=f"whole run {overall_text}")
    if from_zero:
        ax.set_ylim(bottom=0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    return _finish(fig, path)


def grouped_bars(
    rows: list[dict[str, Any]],
    metrics: list[tuple[str, str]],
    group: str,
    path: Path,
    title: str,
    order: list[str] | None = None,
) -> Path:
    """DiffServe's Figure 6 and SpotServe's Figure 9: one panel per metric, bars per approach
    (in `order`, else the usual one), grouped by `group` (e.g. cascade). `rows` hold
    `approach`, `group` and the metric keys; missing values are left out."""
    groups = sorted({str(r[group]) for r in rows})
    present = {str(r["approach"]) for r in rows}
    approaches = [a for a in (order or APPROACH_COLORS) if a in present]
    approaches += sorted(present - set(approaches))
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


def latency_over_time(records: pd.DataFrame, series: pd.DataFrame, title: str, path: Path) -> Path:
    """SpotServe's Figure 8 (one run): each completed request's latency at its completion time,
    the run's mean, and the alive instances (right axis)."""
    fig, ax = plt.subplots(figsize=SIZE_IN)
    done = records[records["latency_s"].notna()]
    ax.scatter(done["notice_at"], done["latency_s"], s=6, color="#1b9e77", alpha=0.6, label="request")
    if len(done):
        ax.axhline(
            float(done["latency_s"].mean()),
            color="#444444",
            ls="-.",
            lw=1,
            label=f"mean {done['latency_s'].mean():.1f} s",
        )
    ax.set_xlabel("completion time (s)")
    ax.set_ylabel("latency (s)")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    lines, labels = ax.get_legend_handles_labels()
    if "alive_instances" in series:
        ax2 = ax.twinx()
        ax2.step(
            series["second"], series["alive_instances"], where="post", color="#d95f02", lw=1, label="alive instances"
        )
        ax2.set_ylabel("instances")
        ax2.set_ylim(bottom=0)
        more = ax2.get_legend_handles_labels()
        lines, labels = lines + more[0], labels + more[1]
    ax.legend(lines, labels, loc="upper left", fontsize=8)
    return _finish(fig, path)


def percentile_lines(panels: dict[str, dict[str, list[float]]], labels: list[str], path: Path, title: str) -> Path:
    """SpotServe's Figure 6: per panel (model and trace), one line per approach over the
    latency statistics `labels` (mean, then percentiles), as the artifact draws it."""
    n = max(1, len(panels))
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, (name, lines) in zip(axes.flat, panels.items(), strict=False):
        for approach in [a for a in APPROACH_COLORS if a in lines] + sorted(set(lines) - set(APPROACH_COLORS)):
            ax.plot(labels, lines[approach], marker="o", ms=4, label=approach, color=APPROACH_COLORS.get(approach))
        ax.set_title(name, fontsize=10)
        ax.set_ylim(bottom=0)
        ax.set_ylabel("latency (s)")
        ax.tick_params(axis="x", labelsize=8)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    return _finish(fig, path)


def latency_vs_cost(points: list[dict[str, Any]], ondemand: list[dict[str, Any]], path: Path, title: str) -> Path:
    """SpotServe's Figure 7: P99 and mean latency against the cost per 1k tokens, one marker
    per (trace, approach) run on spot traces and a dashed line through the on-demand fleets.
    Each point holds `approach`, `trace`, `cost`, `latency_mean_s` and `latency_p99_s`."""
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.8), squeeze=False)
    markers = ["o", "s", "^", "D", "v", "P", "X"]
    traces = sorted({str(p["trace"]) for p in points})
    for ax, (key, label) in zip(
        axes[0], (("latency_p99_s", "P99 latency (s)"), ("latency_mean_s", "mean latency (s)")), strict=True
    ):
        for p in points:
            ax.scatter(
                p["cost"],
                p[key],
                color=APPROACH_COLORS.get(str(p["approach"]), "#666666"),
                marker=markers[traces.index(str(p["trace"])) % len(markers)],
                s=36,
            )
        if ondemand:
            od = sorted(ondemand, key=lambda o: o["cost"])
            ax.plot([o["cost"] for o in od], [o[key] for o in od], ls="--", color="#444444", lw=1, marker=".")
            for o in od:
                ax.annotate(str(o["trace"]), (o["cost"], o[key]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("cost per 1k tokens (USD)")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
    handles = [
        plt.Line2D([], [], color=APPROACH_COLORS.get(a, "#666666"), marker="o", ls="", label=a)
        for a in dict.fromkeys(str(p["approach"]) for p in points)
    ]
    handles += [
        plt.Line2D([], [], color="#444444", marker=markers[i % len(markers)], ls="", label=t)
        for i, t in enumerate(traces)
    ]
    if ondemand:
        handles.append(plt.Line2D([], [], color="#444444", ls="--", label="on-demand only"))
    axes[0][1].legend(handles=handles, fontsize=7, loc="upper right")
    fig.suptitle(title)
    return _finish(fig, path)


def latency_over_time_by_approach(panels: dict[str, dict[str, pd.DataFrame]], path: Path, title: str) -> Path:
    """SpotServe's Figure 8: per workload trace, each approach's completed requests' latency
    at their completion time (`completed_at`, `latency_s`), with each approach's mean."""
    n = max(1, len(panels))
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 3.6), squeeze=False)
    for ax, (name, runs) in zip(axes[0], panels.items(), strict=False):
        for approach in [a for a in APPROACH_COLORS if a in runs] + sorted(set(runs) - set(APPROACH_COLORS)):
            df, color = runs[approach], APPROACH_COLORS.get(approach)
            ax.scatter(df["completed_at"], df["latency_s"], s=5, alpha=0.5, color=color, label=approach)
            if len(df):
                ax.axhline(float(df["latency_s"].mean()), color=color, ls="-.", lw=1)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("completion time (s)")
        ax.set_ylabel("latency (s)")
        ax.set_ylim(bottom=0)
    axes[0][0].legend(fontsize=8, markerscale=3)
    fig.suptitle(title)
    return _finish(fig, path)
