"""Our code against the artifacts' own code on fixed inputs (tests/conformance/, recorded by
tests/conformance/record.py from the artifacts' checkouts; provenance.json says how)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from orchestrator.plan import typed_config
from orchestrator.systems.diffserve import artifact_recipe
from runtime.policies.diffserve.planner import CascadeModel, plan_cascade
from runtime.policies.spotserve.config_optimizer import choose
from tests.conftest import compose_config

FIXTURES = Path(__file__).resolve().parent / "conformance"
PLOT = FIXTURES / "diffserve_plot_results"
PLOT_CASES = json.loads((PLOT / "expected.json").read_text())


@pytest.mark.parametrize("case", sorted(PLOT_CASES))
def test_plot_results_means_equal_the_artifacts_script(case: str) -> None:
    """plot_results.py's printed "Mean SLO violation rate" and "Mean FID" on a run's three
    CSV files are what `script_means` computes from them (NaN where the script stopped)."""
    expected = PLOT_CASES[case]
    cascade = typed_config(compose_config(f"cascade={expected['cascade']}")).cascade
    assert cascade is not None
    logs = artifact_recipe.read_logs(PLOT / case)
    got = artifact_recipe.script_means(logs, cascade.fid_table.x, cascade.fid_table.y, cascade.fid_artifact_offset)
    assert got.slo_violation_ratio == pytest.approx(expected["mean_slo_violation_rate"], rel=1e-12, abs=1e-15)
    if expected["mean_fid"] is None:
        assert math.isnan(got.fid) and expected["script_error"] and "stops with an error" in got.fid_note
    else:
        assert got.fid == pytest.approx(expected["mean_fid"], rel=1e-12)
    if case.startswith("sdxs_all_light"):
        assert "0 by 0" in got.fid_note  # the script's 0/0: its number is the fit's all-heavy end


def test_plot_cases_cover_the_scripts_branches() -> None:
    """The fixtures hold runs with and without violations, a 0/0 run and a run the script
    cannot plot, so every branch of its computation is compared."""
    slo = [c["mean_slo_violation_rate"] for c in PLOT_CASES.values()]
    assert min(slo) == 0.0 and max(slo) > 0.05
    assert any(c["mean_fid"] is None for c in PLOT_CASES.values())
    provenance = json.loads((PLOT / "provenance.json").read_text())
    assert provenance["repository"] == "qizhengyang98/DiffServe" and len(provenance["commit"]) == 40


def _records(rows: list[dict[str, object]]) -> pd.DataFrame:
    base = {"light_enqueued_at": np.nan, "heavy_enqueued_at": np.nan, "sink_at": np.nan, "outcome": "completed_on_time"}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_the_controllers_booking() -> None:
    """Each query is booked once, at the heartbeat that brings its later report: on time or
    timeout by end - start against the SLO, drop at the first heartbeat past start + 2 SLO
    unless its completion came with the same heartbeat; a query no worker took is not booked.
    The light column counts every query a light worker took, the heavy column the deferred."""
    records = _records(
        [
            {"light_enqueued_at": 0.5, "sink_at": 2.0},  # on time, booked at 2
            {"light_enqueued_at": 1.2, "heavy_enqueued_at": 1.5, "sink_at": 8.0},  # 6.8 s: timeout at 8
            {"light_enqueued_at": 1.3, "sink_at": 12.0},  # 10.7 s: drop due at 12, but completion came at 12
            {"light_enqueued_at": 1.4, "sink_at": 13.0},  # drop at 12, its completion at 13 too late
            {"outcome": "dropped"},  # refused before any worker: never booked
            {"light_enqueued_at": 2.5, "outcome": "dropped"},  # dropped at a worker: booked at 13
        ]
    )
    decisions = pd.DataFrame({"time": [0.0, 5.0], "threshold": [0.3, 0.5]})
    logs = artifact_recipe.controller_logs(records, decisions, slo_s=5.0).set_index("second")
    assert logs.index[0] == 1 and len(logs) == artifact_recipe.END_ROWS  # from the first second in flight
    booked = logs[logs["total"] > 0][["succeed", "timeout", "drop"]]
    assert booked.to_dict("index") == {
        2: {"succeed": 1, "timeout": 0, "drop": 0},
        8: {"succeed": 0, "timeout": 1, "drop": 0},
        12: {"succeed": 0, "timeout": 1, "drop": 1},
        13: {"succeed": 0, "timeout": 0, "drop": 1},
    }
    assert logs["total"].sum() == 5
    assert logs.loc[1:3, "sdturbo"].tolist() == [1, 3, 1] and logs["sdturbo"].sum() == 5
    assert logs["sdv15"].sum() == 1 and logs.loc[2, "sdv15"] == 1
    assert logs.loc[4, "threshold"] == 0.3 and logs.loc[5, "threshold"] == 0.5 and logs["threshold"].iloc[-1] == 0.5


def test_written_logs_read_back(tmp_path: Path) -> None:
    """The three files are the artifact's: its headers, one row per second, aligned."""
    records = _records([{"light_enqueued_at": 0.5, "heavy_enqueued_at": 0.7, "sink_at": 3.0}])
    logs = artifact_recipe.controller_logs(records, pd.DataFrame(), slo_s=5.0)
    for name, rows in artifact_recipe.log_files(logs).items():
        rows.to_csv(tmp_path / name, index=False)
    assert (tmp_path / "query_num_per_second.csv").read_text().splitlines()[:2] == ["sdturbo,sdv15", "1,1"]
    back = artifact_recipe.read_logs(tmp_path)
    assert back.equals(logs[list(artifact_recipe.COLUMNS)].reset_index(drop=True))


ILP = json.loads((FIXTURES / "diffserve_ilp" / "cases.json").read_text())


@pytest.mark.parametrize("i", range(len(ILP)))
def test_planner_equals_the_artifacts_ilp(i: int) -> None:
    """qaware_cascade_ILP.py's model, solved by SCIP, on the planner inputs our controller
    logged: with the artifact's queueing term and no discriminator time (the artifact's model
    has none), our exact search finds the same best threshold, a plan the artifact's model
    accepts (its one spare server is the sink, not a GPU worker here), and the same verdict
    when nothing is feasible."""
    case, artifact = ILP[i], ILP[i]["artifact"]
    cfg = typed_config(
        compose_config(f"cascade={case['cascade']}", "cascade.discriminator.latency_ms=0", "approach.queueing=artifact")
    )
    assert cfg.cascade is not None
    model = CascadeModel.of(cfg.cascade, cfg.approach)
    waits = (case["queue_length_per_task"]["sdturbo"], case["queue_length_per_task"]["sdv15"])
    plan = plan_cascade(model, case["workers"], case["demand"], waits_s=waits)
    if artifact["status"] == "infeasible":
        assert not plan.feasible
        return
    assert artifact["status"] == "optimal" and plan.feasible
    assert plan.threshold == pytest.approx(artifact["threshold"], abs=1e-9)
    # Our plan satisfies the artifact's constraints.
    j1, j2 = list(model.batches1).index(plan.light_batch), list(model.batches2).index(plan.heavy_batch)
    f = model.grid_f[int(np.argmin(np.abs(model.grid_t - plan.threshold)))]
    assert plan.light_workers + plan.heavy_workers <= case["total_servers"] - 1
    assert plan.light_workers * plan.light_batch / model.lat1[j1] >= case["demand"] - 1e-9
    assert plan.heavy_workers * plan.heavy_batch / model.lat2[j2] >= case["demand"] * f - 1e-9
    latency = model.lat1[j1] + sum(waits) + (model.lat2[j2] if f > 0 else 0.0)
    assert latency <= case["slo_us"] / 1e6 + 1e-9


def test_ilp_cases_span_the_load() -> None:
    thresholds = {round(c["artifact"].get("threshold", -1), 3) for c in ILP}
    assert len(thresholds) >= 5 and any(c["artifact"]["status"] == "infeasible" for c in ILP)
    assert {c["cascade"] for c in ILP} == {"sdturbo", "sdxs", "sdxlltn"}


SOLVER = json.loads((FIXTURES / "spotserve_solver" / "cases.json").read_text())


@pytest.mark.parametrize("model_name", ["6.7B", "20B", "30B"])
def test_optimizer_equals_the_artifacts_strategy_optimizer(model_name: str) -> None:
    """StrategyOptimizer.solve (scheduler/parallel/solver.py) at every fleet size from 0 to 48
    GPUs and four required throughputs: on the artifact's footing (model.latency_model=artifact)
    our optimizer picks the same (dp, tp, pp, batch, M1, M2) with the same latency and
    throughput, and no configuration where the artifact has none."""
    model = typed_config(
        compose_config("system=spotserve", f"model={model_name}", "model.latency_model=artifact")
    ).model
    assert model is not None
    cases = [c for c in SOLVER if c["model"] == model_name]
    assert len(cases) == 49 * 4
    for c in cases:
        dp, tp, pp, bsz, m1, m2, latency_ms, tpt = c["artifact"]
        got = choose(model, c["gpus"], c["required_tpt"])
        where = (c["gpus"], c["required_tpt"])
        if dp == 0:
            assert got.config.is_zero, where
            continue
        assert (got.config.dp, got.config.tp, got.config.pp, got.config.batch, got.config.m1, got.config.m2) == (
            dp,
            tp,
            pp,
            bsz,
            m1,
            m2,
        ), where
        assert got.latency_s * 1000 == pytest.approx(latency_ms, rel=1e-9), where
        assert got.throughput_rps == pytest.approx(tpt, rel=1e-9), where
