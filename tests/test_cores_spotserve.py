"""The clock-free SpotServe cores, driven by hand: the controller's timer queue (coinciding
events, a removal soon after an addition, a grace period longer than the gap, a lost
instance), the request pool's leases, and a replica's drain rule."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from runtime.cores.spotserve.controller import (
    AssignReplica,
    DrainReplica,
    NeedDrainReports,
    Preempt,
    ReplicasGone,
    Requeue,
    SpotControllerCore,
)
from runtime.cores.spotserve.pool import RequestPoolCore
from runtime.cores.spotserve.replica import Assignment, Drained, Finished, Interrupted, ReplicaCore
from runtime.policies.spotserve.cost_model import ParallelConfig
from runtime.policies.spotserve.fleet import instance_gpus
from runtime.policies.spotserve.reconfiguration import DrainReport
from runtime.policies.spotserve.registry import make_approach
from runtime.policies.spotserve.timing import timing
from runtime.schema.spotserve import SpotConfig
from runtime.traces.spotserve import AvailabilityEvent, split_start
from tests.test_spotserve_policies import model


def controller(events: list[AvailabilityEvent], grace: float = 30.0, approach: str = "spotserve") -> SpotControllerCore:
    m = model("6.7B")
    spot = SpotConfig(grace_period_s=grace)
    instances = sorted({i for e in events for i in e.instances})
    workers = {g: f"w-{g}" for g in instance_gpus(instances, spot.gpus_per_instance)}
    core = SpotControllerCore.of(
        make_approach(approach, m, spot, 0, len(instances)), m, spot, split_start(events), workers
    )
    core.start(0.0)
    return core


def run_until(core: SpotControllerCore, until: float) -> list[tuple[float, object]]:
    """Every action up to `until`, with its time; drained replicas stop idle."""
    seen: list[tuple[float, object]] = []
    while (t := core.next_due()) is not None and t <= until:
        out = core.step(t)
        if isinstance(out, NeedDrainReports):
            out = core.step(t, {r: DrainReport((), 0) for r in out.replicas})
        assert not isinstance(out, NeedDrainReports)
        seen += [(t, a) for a in out or []]
    return seen


def rows(core: SpotControllerCore) -> dict[float, dict[str, object]]:
    return {float(r["event_at"]): r for r in core.decisions if r["event"] != "start"}


START = AvailabilityEvent(0.0, "add", ("a", "b", "c"))
END = AvailabilityEvent(1000.0, "end")


def test_two_events_at_the_same_time_are_one_change_and_keep_the_grace_period() -> None:
    """Trace A's pattern: a new target and a removal, both at 600: both are heard at 570, planned
    as one change whose deadline leaves time to migrate before 600, and b goes at 600."""
    core = controller(
        [START, AvailabilityEvent(600.0, "tpt", required_tpt=1.0), AvailabilityEvent(600.0, "remove", ("b",)), END]
    )
    actions = run_until(core, 600.0)
    by_time = [(t, type(a).__name__) for t, a in actions]
    drains = [(t, a) for t, a in actions if isinstance(a, DrainReplica)]
    assert {t for t, _ in drains} == {570.0}, "heard one grace period before 600"
    deadline = drains[0][1].deadline
    assert 570.0 < deadline < 600.0 and all(d.deadline == deadline for _, d in drains)
    log = [r for r in core.decisions if r["event"] in ("tpt", "remove")]
    assert [r["event"] for r in log] == ["tpt", "remove"] and log[0]["change"] == log[1]["change"]
    assert all(r["notice_at"] == 570.0 and r["deadline"] == deadline for r in log)
    assert core.required_tpt == 1.0
    rebuilt = max(t for t, a in actions if isinstance(a, AssignReplica))
    assert rebuilt == pytest.approx(deadline)
    assert (600.0, "Preempt") in by_time and rebuilt < 600.0


def test_a_removal_ten_seconds_after_an_addition_keeps_its_own_grace_period() -> None:
    """An addition at 100 (heard at 70) and a removal at 110 (heard at 80, while the addition's
    change is still under way): planned together, the removal's deadline still comes from 110."""
    core = controller([START, AvailabilityEvent(100.0, "add", ("d",)), AvailabilityEvent(110.0, "remove", ("a",)), END])
    run_until(core, 200.0)
    log = rows(core)
    assert log[100.0]["notice_at"] == 70.0 and log[110.0]["notice_at"] == 80.0
    deadline = log[110.0]["deadline"]
    assert isinstance(deadline, float) and 80.0 <= deadline < 110.0, "the migration ends before a goes"
    assert "a" not in core.fleet.alive and "d" in core.fleet.alive
    assert all(g.instance != "a" for r in core.fleet.replicas for g in r.gpus)


def test_a_grace_period_longer_than_the_gap_plans_the_events_together() -> None:
    """Grace 120 s, removals at 200 and 260: the second is heard (at 140) while the first's
    change is pending, and both are planned as one change done before 200; each is preempted
    at its own time."""
    events = [START, AvailabilityEvent(200.0, "remove", ("b",)), AvailabilityEvent(260.0, "remove", ("c",)), END]
    core = controller(events, grace=120.0, approach="reparallelization")
    actions = run_until(core, 300.0)
    log = rows(core)
    assert log[200.0]["notice_at"] == 80.0 and log[260.0]["notice_at"] == 140.0
    assert log[200.0]["change"] == log[260.0]["change"] and log[200.0]["deadline"] == log[260.0]["deadline"] == 200.0
    assert core.fleet.alive == ("a",)
    assert [(t, a.instances) for t, a in actions if isinstance(a, Preempt)] == [(200.0, ("b",)), (260.0, ("c",))]
    drains = [t for t, a in actions if isinstance(a, DrainReplica)]
    assert drains and min(drains) == 80.0 and 140.0 in drains, "the second notice moves the drains"


def test_a_lost_instance_is_a_removal_without_notice() -> None:
    core = controller([START, END])
    victims = [n for g, n in core.workers.items() if g.instance == "b"]
    others = [n for n in core.heartbeat_targets() if n not in victims]
    for t in (10.0, 20.0):
        assert core.tick(t, others, victims, {}) == []
    actions = core.tick(30.0, others, victims, {})
    gone = [a for a in actions if isinstance(a, ReplicasGone)]
    assert gone and gone[0].at == 0.0, "the batches ran until the workers last answered"
    run_until(core, 30.0)
    log = [r for r in core.decisions if r["event"] == "lost"]
    assert log and log[0]["notice_at"] == 30.0 and log[0]["deadline"] == 30.0 and log[0]["instances"] == "b"
    assert "b" not in core.fleet.alive and all(n not in core.heartbeat_targets() for n in victims)


# --------------------------------------------------------------------------- leases


def pool_with(n: int) -> RequestPoolCore:
    pool = RequestPoolCore()
    for r in range(n):
        assert pool.add(r)
    assert not pool.add(0), "a retried submit is taken once"
    return pool


T = timing(model("6.7B"), ParallelConfig(1, 4, 1, 4, 1, 1))


def test_a_replica_that_vanishes_holding_a_batch_gives_it_back_with_its_progress() -> None:
    pool = pool_with(6)
    lease = pool.next_batch(replica=7, max_batch=4, now=10.0, timing=T, output_len=128)
    assert lease is not None and lease.requests == (0, 1, 2, 3) and pool.held_ids() == set(range(6))
    at = lease.run.decode_start + 20.5 * T.step_s[3]
    back = pool.replica_gone(7, at)
    assert sorted(back) == [0, 1, 2, 3] and pool.tokens[0] == 20
    again = pool.next_batch(replica=8, max_batch=4, now=at, timing=T, output_len=128)
    assert again is not None and again.start_step == 20 and again.recompute, "resumed first, recomputing its cache"
    assert again.run.finish_at == pytest.approx(at + T.duration_s(4, 20, 128, recompute=True))
    assert pool.finish(again.id) == (0, 1, 2, 3) and pool.held_ids() == {4, 5}


def test_a_duplicated_requeue_moves_nothing_twice() -> None:
    pool = pool_with(8)
    a = pool.next_batch(replica=1, max_batch=4, now=0.0, timing=T, output_len=128)
    b = pool.next_batch(replica=2, max_batch=4, now=0.0, timing=T, output_len=128)
    assert a is not None and b is not None
    pool.interrupt(a.id, tokens=30)
    pool.interrupt(b.id, tokens=10)
    assert pool.requeue([(5, a.requests, 30)], b.requests) == 8
    assert pool.requeue([(5, a.requests, 30)], b.requests) == 0, "idempotent by request id"
    assert pool.restarts == {4: 1, 5: 1, 6: 1, 7: 1}
    resumed = pool.next_batch(replica=5, max_batch=4, now=1.0, timing=T, output_len=128)
    assert resumed is not None and resumed.requests == (0, 1, 2, 3) and resumed.start_step == 30
    assert not resumed.recompute, "its KV cache moved with it"
    restarted = pool.next_batch(replica=6, max_batch=4, now=1.0, timing=T, output_len=128)
    assert restarted is not None and restarted.requests == (4, 5, 6, 7) and restarted.start_step == 0
    assert pool.counts()["leased"] == 8


def test_what_is_held_at_the_end_is_every_unfinished_request() -> None:
    pool = pool_with(10)
    a = pool.next_batch(replica=1, max_batch=4, now=0.0, timing=T, output_len=128)
    b = pool.next_batch(replica=2, max_batch=4, now=0.0, timing=T, output_len=128)
    assert a is not None and b is not None
    pool.finish(a.id)
    pool.interrupt(b.id, tokens=0)
    assert pool.held_ids() == {4, 5, 6, 7, 8, 9}
    pool.replica_gone(2, 5.0)
    assert pool.held_ids() == {4, 5, 6, 7, 8, 9} and pool.counts()["waiting"] == 6


# --------------------------------------------------------------------------- a replica


def test_a_replica_drains_by_its_deadline_with_its_committed_tokens() -> None:
    pool = pool_with(4)
    replica = ReplicaCore(Assignment(3, 4, T, 128, ready_at=5.0))
    assert not replica.wants_batch(1.0) and replica.wake_at(1.0) == 5.0
    assert replica.wants_batch(5.0)
    lease = pool.next_batch(3, 4, 5.0, T, 128)
    assert lease is not None
    replica.start(lease)
    assert replica.advance(6.0) is None
    deadline = lease.run.decode_start + 7.5 * T.step_s[3]
    replica.drain(deadline, keep_progress=True)
    assert replica.wake_at(6.0) == deadline
    out = replica.advance(deadline)
    assert isinstance(out, Interrupted) and out.tokens == 7 and replica.stopped
    assert replica.advance(deadline + 100) is None and not replica.wants_batch(deadline + 100)


def test_a_drain_that_a_batch_beats_lets_it_finish_then_stops() -> None:
    replica = ReplicaCore(Assignment(3, 4, T, 128, ready_at=0.0))
    pool = pool_with(8)
    lease = pool.next_batch(3, 4, 0.0, T, 128)
    assert lease is not None
    replica.start(lease)
    replica.drain(lease.run.finish_at + 1.0, keep_progress=False)
    assert isinstance(replica.advance(lease.run.finish_at), Finished)
    stop = replica.advance(lease.run.finish_at)
    assert isinstance(stop, Drained), "a whole batch does not fit in the second left"
    cancelled = ReplicaCore(Assignment(4, 4, T, 128, ready_at=0.0))
    cancelled.drain(10.0, False)
    cancelled.drain(math.inf, False)
    assert cancelled.wants_batch(20.0), "an infinite deadline cancels a drain"


def test_requeue_comes_from_the_rebuild() -> None:
    """Drained batches reach the rebuild; it pins the furthest to a new replica and restarts the rest."""
    core = controller([START, AvailabilityEvent(100.0, "remove", ("b",)), END])
    while (t := core.next_due()) is not None and t < 100.0:
        out = core.step(t)
        if isinstance(out, NeedDrainReports):
            stopped = {r: DrainReport((100 * r, 100 * r + 1), 10 * (r + 1)) for r in out.replicas}
            out = core.step(t, stopped)
            assert not isinstance(out, NeedDrainReports) and out is not None
            requeues = [a for a in out if isinstance(a, Requeue)]
            assert len(requeues) == 1 and len(requeues[0].pinned) == 2 and len(requeues[0].restarted) == 2
            assert replace(requeues[0], restarted=()).pinned[0][2] in (20, 30)


def test_a_lease_the_replica_never_received_goes_back_when_it_asks_again() -> None:
    """A NextBatch whose reply was lost: the replica asks again, and gets the same requests."""
    pool = pool_with(6)
    lost = pool.next_batch(replica=1, max_batch=4, now=0.0, timing=T, output_len=128)
    again = pool.next_batch(replica=1, max_batch=4, now=1.0, timing=T, output_len=128, received=-1)
    assert lost is not None and again is not None and again.requests == lost.requests
    assert lost.id not in pool.leases and pool.counts()["leased"] == 4


def test_a_finished_lease_whose_report_is_late_is_not_given_again() -> None:
    pool = pool_with(8)
    first = pool.next_batch(replica=1, max_batch=4, now=0.0, timing=T, output_len=128)
    assert first is not None
    second = pool.next_batch(replica=1, max_batch=4, now=9.0, timing=T, output_len=128, received=first.id)
    assert second is not None and set(second.requests).isdisjoint(first.requests)
    assert pool.finish(first.id) == first.requests, "the late report still counts"
