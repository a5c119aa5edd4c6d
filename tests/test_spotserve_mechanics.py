"""The SpotServe artifact's mechanics (spot.mechanics, runtime/policies/spotserve/mechanics.py),
each on its own as a pure decision, then the whole preset (`experiment=spotserve_artifact`) on
the virtual clock: FasterTransformer's just-in-time interruption and its estimator, power-of-two
batches, the API server's old batching, the deadline from the change's cost, and the fix factor
kept to planning."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from orchestrator.experiment import run_experiment
from runtime.cores.spotserve.pool import RequestPoolCore
from runtime.cores.spotserve.replica import Assignment, Drained, Finished, Interrupted, ReplicaCore
from runtime.policies.spotserve.cost_model import ParallelConfig
from runtime.policies.spotserve.mechanics import WHOLE, power_of_two_at_most, remaining_steps, stop_now
from runtime.policies.spotserve.registry import make_approach, request_pool
from runtime.policies.spotserve.timing import timing
from runtime.schema.spotserve import MechanicsConfig, SpotConfig
from runtime.traces.spotserve import AvailabilityEvent
from tests.conftest import compose_config
from tests.test_spotserve_policies import model

M = model("20B")
FF = M.final_fix_factor
PROFILE = timing(M, ParallelConfig(1, 8, 2, 4, 2, 1), fix_factor=False)  # the profile, no fix factor
RUNS_AT = PROFILE.scaled(FF)  # our default: replicas take the profile x the factor


def test_the_estimator_is_the_artifacts_calc_remain_step() -> None:
    """int((slot - t1) / t2) - 1 with t1, t2 x ff (conservative), + 1 with t1, t2 / ff
    (optimistic); <= 0 stops, >= output_len runs the whole batch."""
    t1, t2 = PROFILE.prefill_s[3], PROFILE.step_s[3]
    slot = t1 * FF + 10.5 * t2 * FF
    assert remaining_steps(PROFILE, 4, slot, True, FF, M.output_len) == 10 - 1
    optimistic = remaining_steps(PROFILE, 4, slot, False, FF, M.output_len)
    assert optimistic == int((slot - t1 / FF) / (t2 / FF)) + 1 > 12  # it overruns the slot
    assert remaining_steps(PROFILE, 4, t1 * FF + 0.5 * t2 * FF, True, FF, M.output_len) == 0
    assert remaining_steps(PROFILE, 4, 1e6, True, FF, M.output_len) == WHOLE
    assert stop_now(PROFILE, PROFILE.prefill_s[0] * FF, FF) and not stop_now(
        PROFILE, PROFILE.prefill_s[0] * FF + 0.01, FF
    )
    assert [power_of_two_at_most(n) for n in (0, 1, 2, 3, 4, 7, 8)] == [0, 1, 2, 2, 4, 4, 8]


def jit_replica() -> ReplicaCore:
    return ReplicaCore(Assignment(3, 4, RUNS_AT, M.output_len, ready_at=0.0, jit=True, fix_factor=FF))


def pool_with(n: int, **kw: object) -> RequestPoolCore:
    pool = RequestPoolCore(**kw)  # type: ignore[arg-type]
    for r in range(n):
        pool.add(r)
    return pool


def test_jit_lets_the_running_batch_finish_past_its_deadline() -> None:
    """A batch running when the drain comes always completes, even after the deadline."""
    replica, pool = jit_replica(), pool_with(8)
    lease = pool.next_batch(3, 4, 0.0, RUNS_AT, M.output_len)
    assert lease is not None and replica.start(lease) is None
    replica.drain(lease.run.finish_at / 2, keep_progress=True)
    assert replica.advance(lease.run.finish_at / 2 + 1) is None
    assert isinstance(replica.advance(lease.run.finish_at), Finished)


def test_jit_runs_only_the_steps_that_fit_then_stops() -> None:
    """The next batch gets the conservative estimate's steps; it stops there, keeping them
    (spotserve) or losing them (a baseline)."""
    for keep in (True, False):
        replica, pool = jit_replica(), pool_with(8)
        t1, t2 = RUNS_AT.prefill_s[3], RUNS_AT.step_s[3]
        replica.drain(t1 + 20.5 * t2, keep_progress=keep)
        lease = pool.next_batch(3, 4, 0.0, RUNS_AT, M.output_len)
        assert lease is not None and replica.start(lease) is None
        assert replica.lease is not None and replica.lease.run.steps == 19
        end = replica.lease.run.finish_at
        assert end == pytest.approx(t1 + 19 * t2)
        out = replica.advance(end)
        assert isinstance(out, Interrupted) and out.tokens == (19 if keep else 0) and replica.stopped


def test_jit_stops_at_once_when_no_step_fits_and_idle_at_one_prefill() -> None:
    replica, pool = jit_replica(), pool_with(8)
    replica.drain(RUNS_AT.prefill_s[3] + 0.5 * RUNS_AT.step_s[3], keep_progress=True)
    lease = pool.next_batch(3, 4, 0.0, RUNS_AT, M.output_len)
    assert lease is not None
    refused = replica.start(lease)
    assert isinstance(refused, Interrupted) and refused.tokens == 0 and replica.stopped
    idle = jit_replica()
    idle.drain(100.0, keep_progress=True)
    stop_at = 100.0 - PROFILE.prefill_s[0] * FF
    assert idle.wake_at(50.0) == pytest.approx(stop_at)
    assert idle.advance(stop_at - 0.01) is None and isinstance(idle.advance(stop_at + 1e-9), Drained)


def test_power_of_two_batches() -> None:
    """Three requests waiting make a batch of two (FT's work_req_bs), not three."""
    pool = pool_with(3, power_of_two=True)
    lease = pool.next_batch(1, 4, 0.0, RUNS_AT, M.output_len)
    assert lease is not None and lease.requests == (0, 1)
    assert pool_with(3).next_batch(1, 4, 0.0, RUNS_AT, M.output_len).requests == (0, 1, 2)  # type: ignore[union-attr]


def test_old_batching_dispatches_ahead_to_the_least_held_busy_replica() -> None:
    """Requests left waiting go to the busy replica holding the fewest, a power of two at a time,
    up to `ahead` batches each; that replica takes them first; gone, they go back in order."""
    pool = pool_with(2, ahead=2)
    a = pool.next_batch(1, 4, 0.0, RUNS_AT, M.output_len)
    b = pool.next_batch(2, 4, 0.0, RUNS_AT, M.output_len)
    assert a is not None and a.requests == (0, 1) and b is None
    for r in range(2, 9):
        pool.add(r)
    assert pool.dispatch_ahead() == 6  # 4 then 2 more to replica 1 (holding 2 + 4 < 8), then full
    assert pool.local[1] == [2, 3, 4, 5, 6, 7] and pool.waiting == [8]
    assert pool.held_ids() == set(range(9)) and pool.counts()["ahead"] == 6
    pool.finish(a.id)
    nxt = pool.next_batch(1, 4, 1.0, RUNS_AT, M.output_len)
    assert nxt is not None and nxt.requests == (2, 3, 4, 5)
    assert sorted(pool.replica_gone(1, 2.0)) == [2, 3, 4, 5, 6, 7]  # its batch and what was ahead
    assert pool.waiting == [2, 3, 4, 5, 6, 7, 8] and not pool.local.get(1)
    assert request_pool("spotserve", SpotConfig(mechanics=MechanicsConfig(old_batching=True))).ahead == 1
    assert request_pool("rerouting", SpotConfig(mechanics=MechanicsConfig(old_batching=True))).ahead == 2
    assert request_pool("rerouting", SpotConfig()).ahead == 0


def test_deadline_from_the_cost() -> None:
    """Baselines drain 0.5 s (their cost) before a removal and serve 0.5 s past an acquisition;
    spotserve's old replicas serve past an acquisition by its migration estimate; the
    estimator is optimistic when the fleet grows."""
    spot = SpotConfig(mechanics=MechanicsConfig(deadline_from_cost=True))
    start = ("n1", "n2", "n3", "n4", "n5", "n6", "n7")
    removal = AvailabilityEvent(100.0, "remove", ("n1",))
    addition = AvailabilityEvent(100.0, "add", ("n8", "n9"))
    for name in ("reparallelization", "rerouting"):
        approach = make_approach(name, M, spot, 0, max_instances=10)
        fleet = approach.initial(start, M.required_tpt).fleet
        drains = approach.notice(fleet, removal, M.required_tpt, now=70.0).drains
        assert drains and {d.deadline for d in drains} == {99.5} and all(d.conservative for d in drains)
    repar = make_approach("reparallelization", M, spot, 0, max_instances=10)
    grown = repar.notice(repar.initial(start, M.required_tpt).fleet, addition, M.required_tpt, now=70.0)
    assert {d.deadline for d in grown.drains} == {100.5} and not any(d.conservative for d in grown.drains)
    ours = make_approach("spotserve", M, SpotConfig(), 0, max_instances=10)
    theirs = make_approach("spotserve", M, spot, 0, max_instances=10)
    few = ("n1", "n2", "n3")
    a = ours.notice(ours.initial(few, M.required_tpt).fleet, addition, M.required_tpt, now=70.0)
    b = theirs.notice(theirs.initial(few, M.required_tpt).fleet, addition, M.required_tpt, now=70.0)
    assert a.drains and b.drains, "3 to 5 instances changes the shape: the general path"
    assert {d.deadline for d in a.drains} == {100.0}
    assert b.estimate_s > 0.5 and all(d.deadline == pytest.approx(100.0 + b.estimate_s) for d in b.drains)


def test_the_fix_factor_kept_to_planning() -> None:
    """With fix_factor_planning_only a simulated batch takes the profiled time itself."""
    cfg = ParallelConfig(1, 8, 2, 4, 2, 1)
    assert timing(M, cfg).prefill_s[3] == pytest.approx(timing(M, cfg, fix_factor=False).prefill_s[3] * FF)


@pytest.mark.parametrize("approach", ["spotserve", "reparallelization", "rerouting"])
def test_the_preset_runs_every_approach_and_its_mechanics_show(approach: str, tmp_path: Path) -> None:
    """experiment=spotserve_artifact on B_S: every request accounted for; spotserve resumes the
    batches its drains cut."""
    cfg = compose_config(
        "experiment=spotserve_artifact",
        "trace=Bs",
        f"approach={approach}",
        "clock=virtual",
        "run.progress=false",
        "tracking.enabled=false",
        f"paths.output_dir={tmp_path}",
    )
    assert cfg.model.latency_model == "artifact" and cfg.spot.mechanics.jit_interruption
    result = run_experiment(cfg, tmp_path / "run")
    s = result.summary
    assert s["accounting_ok"] and not s["partial"] and s["completed"] > 0.9 * s["queries_sent"]
    records = pd.read_parquet(result.run_dir / "records.parquet")
    assert len(records) == s["queries_sent"] and records["query_id"].is_unique
    decisions = pd.read_parquet(result.run_dir / "roles" / "controller" / "decisions.parquet")
    if approach == "spotserve":
        assert decisions["resumed_requests"].sum() > 0
