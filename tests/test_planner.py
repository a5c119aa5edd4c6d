"""The DiffServe planner on hand-checked cases (16 GPU workers plus a sink, zero queueing)."""

from __future__ import annotations

import pytest

from orchestrator.plan import typed_config
from runtime.policies.diffserve.plan import Observation
from runtime.policies.diffserve.planner import CascadeModel, DiffServe, plan_cascade
from tests.conftest import compose_config


def model(cascade: str) -> CascadeModel:
    cfg = typed_config(compose_config(f"cascade={cascade}", "approach=diffserve"))
    return CascadeModel.of(cfg.cascade, cfg.approach)  # type: ignore[arg-type]


def test_light_demand_sends_everything_heavy() -> None:
    """sdturbo at 4 q/s: 15 heavy workers carry all of it, so the threshold is 1.0."""
    plan = plan_cascade(model("sdturbo"), 16, 4.0)
    assert plan.feasible and plan.threshold == 1.0
    assert plan.light_workers + plan.heavy_workers == 16 and plan.light_workers >= 1


def test_heavy_demand_defers_a_small_share() -> None:
    """sdturbo at 32 q/s: at least 2 light workers (20.8 q/s each at most) and a threshold in
    (0, 0.3). By hand: 14 heavy workers at batch 4 carry 14 x 4/3.68 = 15.2 q/s, so
    f(t) <= 15.2/32 = 0.4755; the artifact's table has f(0.115) = 0.469 and f(0.12) = 0.477:
    t = 0.115 (a 19-point sample interpolated to 0.475 at 0.12 and planned one step higher)."""
    plan = plan_cascade(model("sdturbo"), 16, 32.0)
    assert plan.feasible and 0.0 < plan.threshold < 0.3 and plan.light_workers >= 2
    assert plan.threshold == pytest.approx(0.115)
    assert (
        plan.light_batch * plan.light_workers / (0.02 + {1: 0.1, 2: 0.15, 4: 0.22, 8: 0.41, 16: 0.77}[plan.light_batch])
        >= 32
    )


def test_threshold_falls_as_demand_rises() -> None:
    m = model("sdxs")
    thresholds = [plan_cascade(m, 16, d).threshold for d in (4, 16, 24, 32, 40)]
    assert thresholds == sorted(thresholds, reverse=True) and thresholds[0] == 1.0 and thresholds[-1] < 0.3


def test_latency_constraint_limits_batches() -> None:
    """One light batch plus one heavy batch must fit the SLO: SD v1.5 batch 8 (6.79 s) never does."""
    for d in (4, 8, 16, 24, 32):
        plan = plan_cascade(model("sdturbo"), 16, d)
        assert plan.heavy_batch <= 4


def test_queueing_delay_counts_against_the_slo() -> None:
    """A heavy backlog that takes longer than the SLO to drain rules out deferring anything."""
    m = model("sdturbo")
    free = plan_cascade(m, 16, 8.0, light_queue=0, heavy_queue=0)
    backlog = plan_cascade(m, 16, 8.0, light_queue=0, heavy_queue=200)
    assert free.threshold == 1.0 and backlog.threshold == 0.0 and backlog.feasible


def test_sdxlltn_at_40_qps_is_infeasible_and_falls_back() -> None:
    """SDXL-Lightning tops out at 16 x 2.25 = 36 q/s: the fallback is all light, best batch."""
    plan = plan_cascade(model("sdxlltn"), 16, 40.0)
    assert not plan.feasible and "infeasible" in plan.reason
    assert (plan.light_workers, plan.heavy_workers, plan.threshold, plan.light_batch) == (16, 0, 0.0, 16)


def test_no_worker_alive() -> None:
    plan = plan_cascade(model("sdxs"), 0, 10.0)
    assert not plan.feasible and plan.light_workers == plan.heavy_workers == 0


def test_approach_uses_the_observation() -> None:
    cfg = typed_config(compose_config("cascade=sdturbo", "approach=diffserve"))
    approach = DiffServe(cfg.cascade, cfg.approach)  # type: ignore[arg-type]
    plan = approach.plan(Observation(now=0.0, workers=16, demand_qps=32.0))
    assert plan.threshold == pytest.approx(0.115)
    cfg.approach.queueing = "none"
    no_queue = DiffServe(cfg.cascade, cfg.approach).plan(
        Observation(now=0.0, workers=16, demand_qps=8.0, heavy_queue=200)
    )  # type: ignore[arg-type]
    assert no_queue.threshold == 1.0


def test_exhaustive_search_agrees_on_small_cases() -> None:
    """Brute force over every (x1, b1, b2, t) gives the same best threshold."""
    m = model("sdxs")
    for workers, demand in ((4, 6.0), (6, 15.0), (8, 30.0), (5, 2.0)):
        best = -1.0
        for x1 in range(1, workers + 1):
            for b1, l1 in zip(m.batches1, m.lat1, strict=True):
                for b2, l2 in zip(m.batches2, m.lat2, strict=True):
                    for t, f in zip(m.grid_t, m.grid_f, strict=True):
                        lat = l1 + (l2 if f > 0 else 0)
                        if x1 * b1 / l1 >= demand and (workers - x1) * b2 / l2 >= demand * f and lat <= m.slo_s:
                            best = max(best, t)
        assert plan_cascade(m, workers, demand).threshold == pytest.approx(best), (workers, demand)


def test_threshold_grid_is_the_tables_own_points() -> None:
    """Without approach.threshold_grid the planner's thresholds are the f(t) table's 201 points,
    f exactly the table's; with a grid, f is interpolated onto it."""
    m = model("sdxs")
    assert m.grid_t.size == 201 and m.grid_f[35] == 0.452  # the artifact's f(0.175)
    cfg = typed_config(compose_config("cascade=sdxs", "approach=diffserve", "approach.threshold_grid=11"))
    coarse = CascadeModel.of(cfg.cascade, cfg.approach)  # type: ignore[arg-type]
    assert coarse.grid_t.size == 11 and coarse.grid_f[2] == pytest.approx(0.497)  # f(0.2)


def test_artifact_queueing_counts_both_waits_whatever_the_plan() -> None:
    """approach.queueing=artifact: the two waits (the artifact's Little's law) add to every plan's
    latency, the heavy one even when nothing is deferred, and do not shrink with more workers."""
    m = model("sdturbo")
    assert plan_cascade(m, 16, 8.0, waits_s=(0.0, 0.0)).threshold == 1.0
    # 0.1 s light batch + 3.68 s heavy batch 4 + 1.3 s of waits > 5 s: only smaller heavy batches fit.
    squeezed = plan_cascade(m, 16, 8.0, waits_s=(0.3, 1.0))
    assert squeezed.feasible and squeezed.heavy_batch <= 2
    blocked = plan_cascade(m, 16, 8.0, waits_s=(0.0, 5.0))
    assert not blocked.feasible


def test_artifact_queueing_estimator() -> None:
    """Smoothed queue / smoothed in-flight count per tier; no sample while nothing is in flight."""
    from runtime.policies.diffserve.demand import ArtifactQueueing

    q = ArtifactQueueing(alpha=1.0)
    q.update(light_queue=4, heavy_queue=2, inflight=8, heavy_inflight=4, dt_s=1.0)
    assert q.waits_s == (0.5, 0.5)
    q.update(light_queue=0, heavy_queue=0, inflight=0, heavy_inflight=0, dt_s=1.0)
    assert q.waits_s == (0.5, 0.5)  # skipped, as the artifact's controller does
    q.update(light_queue=3, heavy_queue=0, inflight=6, heavy_inflight=0, dt_s=1.0)
    assert q.waits_s == (0.5, 0.0)
