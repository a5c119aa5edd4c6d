"""The SpotServe side of the report: which runs go into Figures 6, 7, 8 and 9, and the figures
drawn from them (real PNG files). The MLflow read-back is covered by the end-to-end tests."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from orchestrator.systems.spotserve.figures import latency_over_time_by_approach
from orchestrator.systems.spotserve.report import comparison_figures as spotserve_figures
from orchestrator.systems.spotserve.report import figure6_panels, figure7_points, figure9_rows
from runtime.policies.spotserve.ablation import LABELS


def row(approach: str, trace: str, kind: str, mean: float, ablation: int = 0, cost: float = 0.02) -> dict[str, Any]:
    r: dict[str, Any] = {"approach": approach, "ablation": str(ablation), "model": "20B", "trace": trace}
    r.update(trace_kind=kind, runs=1, run_ids=[f"{approach}-{trace}-{ablation}"], cost_per_1k_tokens_usd=cost)
    for i, q in enumerate((50, 90, 95, 96, 97, 98, 99)):
        r[f"latency_p{q}_s"] = mean * (1.0 + 0.1 * i)
    r["latency_mean_s"] = mean
    return r


@pytest.fixture
def rows() -> list[dict[str, Any]]:
    out = [row(a, t, "spot", m) for t in ("As", "Bs") for a, m in (("spotserve", 22), ("rerouting", 50))]
    out += [row("spotserve", f"od{n}", "ondemand", 200 / n, cost=0.005 * n) for n in (3, 4, 6, 8)]
    out += [
        row("spotserve", t, "spot", 22 + 10 * level, ablation=level) for t in ("As", "Bs") for level in (1, 2, 3, 4)
    ]
    return out


def test_figure6_has_a_panel_per_spot_trace_of_level_0_runs_only(rows: list[dict[str, Any]]) -> None:
    panels = figure6_panels(rows)
    assert list(panels) == ["20B As", "20B Bs"], "the on-demand fleets belong to Figure 7"
    assert set(panels["20B As"]) == {"spotserve", "rerouting"}
    assert panels["20B As"]["spotserve"][0] == 22  # the mean of level 0, not of an ablation run
    assert len(panels["20B As"]["spotserve"]) == 7  # AVG, P90, P95..P99


def test_figure7_splits_spot_points_from_the_on_demand_line(rows: list[dict[str, Any]]) -> None:
    spot, ondemand = figure7_points(rows)
    assert sorted((p["approach"], p["trace"]) for p in spot) == [
        ("rerouting", "As"),
        ("rerouting", "Bs"),
        ("spotserve", "As"),
        ("spotserve", "Bs"),
    ]
    assert [p["trace"] for p in ondemand] == ["od3", "od4", "od6", "od8"]
    assert all(p["cost"] == pytest.approx(0.005 * int(p["trace"][2:])) for p in ondemand)
    # A run that completed nothing has no cost per token: it is left out, not drawn at 0.
    spot2, _ = figure7_points([*rows, row("reparallelization", "As", "spot", 30, cost=math.nan)])
    assert ("reparallelization", "As") not in {(p["approach"], p["trace"]) for p in spot2}


def test_figure9_labels_every_level_of_spotserve_on_the_ablation_traces(rows: list[dict[str, Any]]) -> None:
    bars = figure9_rows(rows)
    assert {r["trace"] for r in bars} == {"20B As", "20B Bs"}  # od traces have no ablation runs
    assert sorted(r["approach"] for r in bars if r["trace"] == "20B As") == sorted(LABELS)
    assert all(r["approach"] != "rerouting" for r in bars)


def test_the_spotserve_figures_are_drawn(rows: list[dict[str, Any]], tmp_path: Path) -> None:
    paths = spotserve_figures("sqlite:///unused.db", rows, tmp_path, "test")
    assert [p.name for p in paths] == ["figure6.png", "figure7.png", "figure9.png"]  # no workload runs
    for p in paths:
        with Image.open(p) as img:
            assert img.size[0] > 600 and img.size[1] > 300
            assert len(set(np.asarray(img.convert("L")).ravel().tolist())) > 20, "not a blank image"


def test_figure8_draws_each_approach_over_completion_time(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    runs = {
        a: pd.DataFrame(
            {"completed_at": np.sort(rng.uniform(0, 1000, 200)), "latency_s": rng.uniform(lo, lo + 20, 200)}
        )
        for a, lo in (("spotserve", 20), ("reparallelization", 30), ("rerouting", 60))
    }
    path = latency_over_time_by_approach({"20B A": runs, "20B B": runs}, tmp_path / "figure8.png", "test")
    with Image.open(path) as img:
        assert img.size[0] > 800


def test_real_and_simulated_runs_are_never_averaged_together() -> None:
    from orchestrator.report import aggregate, group_keys
    from orchestrator.systems import get_system

    system = get_system("spotserve")
    keys = group_keys(system)
    base = dict.fromkeys(keys, "x") | {"latency_mean_s": 1.0, "run_id": "r"}
    rows = [base | {"execution": "simulated"}, base | {"execution": "real", "latency_mean_s": 3.0}]
    groups = aggregate(rows, keys, [("latency_mean_s", "mean")])
    assert sorted(g["latency_mean_s"] for g in groups) == [1.0, 3.0] and all(g["runs"] == 1 for g in groups)
