"""What every figure shares: size, resolution, saving, smoothing and grouped bars. The papers'
figures are drawn by each system's package (orchestrator/systems/<system>/figures.py) from
computed metrics only (no file reading, no MLflow), one PNG per function."""

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


def smooth(values: np.ndarray, k: int) -> np.ndarray:
    """Trailing moving average that ignores NaN (k = 1: unchanged)."""
    s = pd.Series(values)
    return s.rolling(k, min_periods=1).mean().to_numpy()


# Fixed margins for the one-panel SIZE_IN figures every run draws: tight_layout costs a third
# of the drawing time, which a sweep of many runs pays for each figure.
RUN_MARGINS = {"left": 0.11, "right": 0.88, "bottom": 0.14, "top": 0.9}


def finish(fig: Any, path: Path, margins: dict[str, float] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if margins is None:
        fig.tight_layout()
    else:
        fig.subplots_adjust(**margins)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def grouped_bars(
    rows: list[dict[str, Any]],
    metrics: list[tuple[str, str]],
    group: str,
    path: Path,
    title: str,
    colors: dict[str, str],
    order: list[str] | None = None,
    from_zero: tuple[str, ...] | None = None,
) -> Path:
    """One panel per metric, bars per approach (in `order`, else the order of `colors`),
    grouped by `group` (e.g. cascade). `rows` are aggregated rows (orchestrator.report): one per
    approach and group, with the mean under the metric's key, `<key>_std` for the error bar and
    `runs`. Each bar is labelled with its value; the legend sits below the panels, off the data.
    Axes start at 0 only for the metrics in `from_zero` (all when None): a FID axis does not."""
    groups = sorted({str(r[group]) for r in rows})
    present = {str(r["approach"]) for r in rows}
    approaches = [a for a in (order or colors) if a in present]
    approaches += sorted(present - set(approaches))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 4.2), squeeze=False)
    width = 0.8 / max(1, len(approaches))
    for ax, (key, label) in zip(axes[0], metrics, strict=True):
        lows, highs = [], []
        for a_i, approach in enumerate(approaches):
            xs, ys, errs = [], [], []
            for g_i, g in enumerate(groups):
                match = [r for r in rows if r["approach"] == approach and str(r[group]) == g]
                vals = [float(r[key]) for r in match if r.get(key) is not None and not np.isnan(r[key])]
                if vals:
                    std = [float(r.get(f"{key}_std", 0.0)) for r in match]
                    xs.append(g_i + (a_i - (len(approaches) - 1) / 2) * width)
                    ys.append(float(np.mean(vals)))
                    errs.append(float(np.nanmax(std)) if std else 0.0)
            if not xs:
                continue
            bars = ax.bar(xs, ys, width=width, yerr=errs, capsize=2, label=approach, color=colors.get(approach))
            ax.bar_label(bars, fmt="%.3g", fontsize=6, padding=2, rotation=90)
            lows += [y - e for y, e in zip(ys, errs, strict=True)]
            highs += [y + e for y, e in zip(ys, errs, strict=True)]
        if highs:
            top, bottom = max(highs), min(lows)
            if from_zero is None or key in from_zero:
                ax.set_ylim(0, top * 1.25 if top > 0 else 1)
            else:
                span = max(top - bottom, 1e-9)
                ax.set_ylim(bottom - 0.15 * span, top + 0.35 * span)
        ax.set_xticks(range(len(groups)), groups)
        ax.set_ylabel(label)
        ax.set_xlabel(group)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=max(1, len(approaches)), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
