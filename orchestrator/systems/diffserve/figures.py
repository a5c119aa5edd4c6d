"""DiffServe's figures: Figure 5's trio for one run (threshold, SLO violation ratio and FID over
time) and Figure 6's bars for a comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from orchestrator.plots import RUN_MARGINS, SIZE_IN, finish, smooth

APPROACH_COLORS = {
    "diffserve": "#1b9e77",
    "static": "#7570b3",
    "all_light": "#d95f02",
    "all_heavy": "#e7298a",
    "proteus": "#66a61e",
}


# Run figures keep their legend below the axes, off the data.
LEGEND_MARGINS = {**RUN_MARGINS, "left": 0.15, "bottom": 0.3}


def _legend_below(fig: Any, handles: list[Any], labels: list[str]) -> None:
    wide = max(len(label) for label in labels) > 40  # long labels take a row each
    fig.legend(handles, labels, loc="lower center", ncol=1 if wide else len(labels), fontsize=7, frameon=False)


def threshold_over_time(series: pd.DataFrame, title: str, path: Path) -> Path:
    """Figure 5 (left): the controller's threshold over time, with the demand it planned for."""
    fig, ax = plt.subplots(figsize=SIZE_IN)
    if "threshold" in series:
        ax.step(series["second"], series["threshold"], where="post", color="#1b9e77", label="threshold")
    else:  # the controller left no tick log (it was killed): the arrivals alone
        ax.text(0.5, 0.5, "no controller log: the threshold is unknown", transform=ax.transAxes, ha="center")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("confidence threshold\n(1.0: every query to heavy)", fontsize=8)
    ax.set_title(title)
    ax2 = ax.twinx()
    ax2.plot(
        series["second"],
        smooth(series["arrivals"].to_numpy(float), 5),
        color="#999999",
        lw=1,
        label="arrivals (5 s mean)",
    )
    if "demand" in series:
        ax2.plot(
            series["second"],
            series["demand"],
            color="#d95f02",
            lw=1,
            ls="--",
            label="estimated demand (smoothed arrival rate x approach.demand_factor)",
        )
    ax2.set_ylabel("queries / s")
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    labels = ax.get_legend_handles_labels()[1] + ax2.get_legend_handles_labels()[1]
    _legend_below(fig, lines, labels)
    return finish(fig, path, LEGEND_MARGINS)


def slo_violation_over_time(series: pd.DataFrame, overall: float, title: str, path: Path, window_s: float) -> Path:
    """Figure 5 (middle): SLO violation ratio of the queries arriving in each trailing window."""
    column, label = "slo_violation_ratio_window", "SLO violation ratio"
    return _window_line(series, column, "#e7298a", label, f"{overall:.3f}", overall, title, path, window_s, True)


def fid_over_time(series: pd.DataFrame, overall: float, title: str, path: Path, window_s: float) -> Path:
    """Figure 5 (right): FID over time, estimated from the published FID-vs-light-fraction table."""
    column, label = "fid_estimate_window", "FID, table estimate\n(lower is better)"
    # The table is U-shaped: the whole run's light share can sit nearer its bottom than any window's.
    note = f"{overall:.2f} (all its queries; can sit below every window: the table is U-shaped)"
    return _window_line(series, column, "#7570b3", label, note, overall, title, path, window_s, False)


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
    values = smooth(series[column].to_numpy(float), 5)
    ax.plot(series["second"], values, color=color, label=f"{window_s:g}-s windows, 5-point mean")
    ax.axhline(overall, color="#444444", ls="--", lw=1, label=f"whole run {overall_text}")
    if from_zero:
        ax.set_ylim(bottom=0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title)
    _legend_below(fig, *ax.get_legend_handles_labels())
    return finish(fig, path, LEGEND_MARGINS)


RUN_FIGURES = ("threshold.png", "slo_violation_ratio.png", "fid.png")


def run_figures(
    series: pd.DataFrame, summary: dict[str, Any], title: str, out_dir: Path, window_s: float
) -> list[Path]:
    """Figure 5's trio for one run."""
    return [
        threshold_over_time(series, title, out_dir / RUN_FIGURES[0]),
        slo_violation_over_time(series, summary["slo_violation_ratio"], title, out_dir / RUN_FIGURES[1], window_s),
        fid_over_time(series, summary["fid"], title, out_dir / RUN_FIGURES[2], window_s),
    ]


def comparison_figures(rows: list[dict[str, Any]], out_dir: Path, title: str, prefix: str = "") -> list[Path]:
    """Figure 6 (the SLO violation ratio and FID per approach, grouped by cascade), one figure
    per trace setting (trace, duration, clock, time_scale): runs of different traces are never
    averaged into one bar. Error bars: the std over the runs (seeds) of a bar."""
    from orchestrator.plots import grouped_bars

    metrics = [
        ("slo_violation_ratio", "SLO violation ratio"),
        ("fid", "FID, table estimate (lower is better)"),
        (
            "fid_artifact_recipe",
            "FID, the artifact's script (lower is better;\nall_light: the script's 0/0, its all-heavy end)",
        ),
    ]

    def setting(r: dict[str, Any]) -> tuple[str, ...]:
        return tuple(str(r.get(k, "")) for k in ("trace", "trace_duration_s", "clock", "time_scale", "execution"))

    settings = sorted({setting(r) for r in rows})
    paths = []
    for trace, duration, clock, scale, execution in settings:
        mine = [r for r in rows if setting(r) == (trace, duration, clock, scale, execution)]
        present = [m for m in metrics if any(not np.isnan(r.get(m[0], np.nan)) for r in mine)]
        n = max(r["runs"] for r in mine)
        clock_note = f"{clock} clock" + (f", time_scale {scale}" if clock == "wall" else "")
        clock_note += ", real execution" if execution == "real" else ""
        name = trace if len(settings) == len({s[0] for s in settings}) else f"{trace}-{duration}s-{clock}-x{scale}"
        name += "-real" if execution == "real" and name != trace else ""
        paths.append(
            grouped_bars(
                mine,
                present,
                "cascade",
                out_dir / f"{prefix}figure6-{name}.png",
                f"DiffServe Figure 6: trace {trace} ({duration} s, {clock_note}); {n} run(s) per bar\n{title}",
                APPROACH_COLORS,
                from_zero=("slo_violation_ratio",),
            )
        )
    return paths
