"""SpotServe's figures: latency over time for one run, and Figures 6 to 8 for a comparison
(Figure 9 is grouped bars, orchestrator.plots.grouped_bars)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from orchestrator.plots import DPI, RUN_MARGINS, SIZE_IN, finish

APPROACH_COLORS = {
    "spotserve": "#1b9e77",
    "reparallelization": "#d95f02",
    "rerouting": "#7570b3",
}


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
    return finish(fig, path, RUN_MARGINS)


def percentile_lines(
    panels: dict[str, dict[str, list[float]]],
    labels: list[str],
    path: Path,
    title: str,
    spread: dict[str, dict[str, list[float]]] | None = None,
) -> Path:
    """SpotServe's Figure 6: per panel (model and trace), one line per approach over the
    latency statistics `labels` (mean, then percentiles), as the artifact draws it; with
    `spread` (the same layout), error bars: the std over the runs (seeds) of each point."""
    n = max(1, len(panels))
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(max(3.4 * cols, 5.6), 3.0 * rows + 0.6), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, (name, lines) in zip(axes.flat, panels.items(), strict=False):
        for approach in [a for a in APPROACH_COLORS if a in lines] + sorted(set(lines) - set(APPROACH_COLORS)):
            err = (spread or {}).get(name, {}).get(approach)
            ax.errorbar(
                labels,
                lines[approach],
                yerr=err,
                marker="o",
                ms=4,
                capsize=2,
                label=approach,
                color=APPROACH_COLORS.get(approach),
            )
        ax.set_title(name, fontsize=10)
        ax.set_ylim(bottom=0)
        ax.set_ylabel("latency (s)")
        ax.tick_params(axis="x", labelsize=8)
    handles, names = axes[0][0].get_legend_handles_labels()  # below the panels, off the data
    fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize=8, frameon=False)
    fig.suptitle("\n".join(textwrap.wrap(title, 45 * cols)), fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


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
    return finish(fig, path)


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
    return finish(fig, path)
