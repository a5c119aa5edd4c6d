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
) -> Path:
    """One panel per metric, bars per approach (in `order`, else the order of `colors`),
    grouped by `group` (e.g. cascade). `rows` hold `approach`, `group` and the metric keys;
    missing values are left out."""
    groups = sorted({str(r[group]) for r in rows})
    present = {str(r["approach"]) for r in rows}
    approaches = [a for a in (order or colors) if a in present]
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
            ax.bar(xs, ys, width=width, label=approach, color=colors.get(approach))
        ax.set_xticks(range(len(groups)), groups)
        ax.set_ylabel(label)
        ax.set_xlabel(group)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    return finish(fig, path)
