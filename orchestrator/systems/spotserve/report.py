"""SpotServe's comparison figures from finished runs read back from MLflow: Figure 6 (latency
mean and percentiles per approach, one panel per model and trace), Figure 7 (P99 and mean
latency against the cost per 1k tokens, with the on-demand fleets as a dashed line), Figure 8
(latency over time on the workload traces) and Figure 9 (the ablation levels), each when runs
for it exist."""

from __future__ import annotations

import math
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator import tracking
from orchestrator.plots import grouped_bars
from orchestrator.systems.spotserve.figures import latency_over_time_by_approach, latency_vs_cost, percentile_lines
from runtime.policies.spotserve.ablation import LABELS

# Figure 6 of SpotServe: the artifact's x axis (mean, then P90..P99; nearest rank).
FIG6_STATS = (
    ("latency_mean_s", "AVG"),
    ("latency_p90_s", "P90"),
    ("latency_p95_s", "P95"),
    ("latency_p96_s", "P96"),
    ("latency_p97_s", "P97"),
    ("latency_p98_s", "P98"),
    ("latency_p99_s", "P99"),
)
ABLATION_COLORS = dict(zip(LABELS, ("#1b9e77", "#66a61e", "#e6ab02", "#d95f02", "#7570b3"), strict=True))


def figure6_panels(rows: list[dict[str, Any]], suffix: str = "") -> dict[str, dict[str, list[float]]]:
    """Panel "model trace" -> approach -> the FIG6_STATS values (the spot traces, ablation level
    0); with suffix "_std", their spreads over the runs of each group (0 where none is known)."""
    panels: dict[str, dict[str, list[float]]] = defaultdict(dict)
    for r in rows:
        if str(r["ablation"]) in ("0", "") and r.get("trace_kind", "spot") == "spot":
            panels[f"{r['model']} {r['trace']}"][r["approach"]] = [r.get(key + suffix, 0.0) for key, _ in FIG6_STATS]
    return dict(sorted(panels.items()))


def figure7_points(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(spot points: every approach on spot traces, on-demand points: the on-demand fleets), of
    the models that have an on-demand line (all models when none has)."""
    level0 = [r for r in rows if str(r["ablation"]) in ("0", "") and not math.isnan(r["cost_per_1k_tokens_usd"])]
    with_line = {r["model"] for r in level0 if r["trace_kind"] == "ondemand"}
    spot, ondemand = [], []
    for r in level0:
        if with_line and r["model"] not in with_line:
            continue
        point = {k: r[k] for k in ("approach", "trace", "latency_mean_s", "latency_p99_s")}
        point["cost"] = r["cost_per_1k_tokens_usd"]
        if r["trace_kind"] == "ondemand":
            if r["approach"] == "spotserve":
                ondemand.append(point)
        elif r["trace_kind"] == "spot":
            spot.append(point)
    return spot, ondemand


def figure9_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """spotserve's runs on the (model, trace) pairs that have ablation runs, labelled by level."""
    pairs = {(r["model"], r["trace"]) for r in rows if str(r["ablation"]) not in ("0", "")}
    out = []
    for r in rows:
        if r["approach"] == "spotserve" and (r["model"], r["trace"]) in pairs:
            level = int(r["ablation"] or 0)
            out.append({**r, "approach": LABELS[level], "trace": f"{r['model']} {r['trace']}"})
    return out


def figure8_panels(uri: str, rows: list[dict[str, Any]]) -> dict[str, dict[str, pd.DataFrame]]:
    """Workload trace -> approach -> completed requests (completion time, latency), read from
    each run's records.parquet artifact (the first run of each group)."""
    workload = [r for r in rows if r["trace_kind"] == "workload" and str(r["ablation"]) in ("0", "")]
    if not workload:
        return {}
    client = tracking.client(uri)
    panels: dict[str, dict[str, pd.DataFrame]] = defaultdict(dict)
    with tempfile.TemporaryDirectory() as tmp:
        for r in workload:
            local = client.download_artifacts(r["run_ids"][0], "records.parquet", tmp)
            rec = pd.read_parquet(local, columns=["arrival_s", "latency_s"])
            rec = rec[rec["latency_s"].notna()]
            df = pd.DataFrame({"completed_at": rec["arrival_s"] + rec["latency_s"], "latency_s": rec["latency_s"]})
            panels[f"{r['model']} {r['trace']}"][r["approach"]] = df
    return dict(sorted(panels.items()))


def comparison_figures(uri: str, rows: list[dict[str, Any]], out_dir: Path, title: str, prefix: str = "") -> list[Path]:
    """Figures 6-9, one set per clock setting (clock, time_scale, execution): runs replayed
    differently are never drawn as one line. File names carry the setting when the rows hold
    more than one."""

    def setting(r: dict[str, Any]) -> tuple[str, str, str]:
        return str(r.get("clock", "")), str(r.get("time_scale", "")), str(r.get("execution", ""))

    settings = sorted({setting(r) for r in rows})
    figures = []
    for clock, scale, execution in settings:
        mine = [r for r in rows if setting(r) == (clock, scale, execution)]
        real = execution == "real"
        tag = f"-{clock}-x{scale}" + ("-real" if real else "") if len(settings) > 1 else ""
        note = f"{clock} clock" + (f", time_scale {scale}" if clock == "wall" else "") if clock else ""
        note += ", real execution" if real else ""
        figures += _figures(uri, mine, out_dir, f"{title}; {note}" if note else title, prefix, tag)
    return figures


def _figures(uri: str, rows: list[dict[str, Any]], out_dir: Path, title: str, prefix: str, tag: str) -> list[Path]:
    figures = []
    panels = figure6_panels(rows)
    if panels:
        labels = [label for _, label in FIG6_STATS]
        spread = figure6_panels(rows, suffix="_std")
        figures.append(
            percentile_lines(
                panels, labels, out_dir / f"{prefix}figure6{tag}.png", f"SpotServe Figure 6 ({title})", spread
            )
        )
    spot, ondemand = figure7_points(rows)
    if spot or ondemand:
        figures.append(
            latency_vs_cost(spot, ondemand, out_dir / f"{prefix}figure7{tag}.png", f"SpotServe Figure 7 ({title})")
        )
    workload = figure8_panels(uri, rows)
    if workload:
        figures.append(
            latency_over_time_by_approach(
                workload, out_dir / f"{prefix}figure8{tag}.png", f"SpotServe Figure 8 ({title})"
            )
        )
    ablation = figure9_rows(rows)
    if ablation:
        metrics = [("latency_p99_s", "P99 latency (s)"), ("latency_mean_s", "mean latency (s)")]
        figures.append(
            grouped_bars(
                ablation,
                metrics,
                "trace",
                out_dir / f"{prefix}figure9{tag}.png",
                f"SpotServe Figure 9 ({title})",
                ABLATION_COLORS,
                list(LABELS),
            )
        )
    return figures
