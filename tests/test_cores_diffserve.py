"""The clock-free DiffServe cores, driven by hand: eviction and re-admission, the planning
cadence on trace time, the load balancer's routing counts and its deferred-query rule, the
worker's drop rule on its own clock, and the client's and sink's books."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.cores.client import ClientCore
from runtime.cores.diffserve.controller import ControllerCore
from runtime.cores.diffserve.load_balancer import LoadBalancerCore, RoutingTable
from runtime.cores.diffserve.worker import WorkerCore, WorkerReport, WorkerSetting
from runtime.cores.sink import SinkCore
from runtime.executors.base import ItemResult
from runtime.policies.diffserve.plan import AllocationPlan, Approach, Observation
from runtime.policies.diffserve.registry import make_approach
from runtime.protos import servelab_pb2 as pb
from runtime.query import Query, Stage
from runtime.records import DropReason, Tier
from tests.conftest import compose_config

IDLE = WorkerReport(0, 0, 0, 0)


def approach(name: str = "static") -> Approach:
    from orchestrator.plan import typed_config

    cfg = typed_config(compose_config("cascade=sdxs", f"approach={name}"))
    assert cfg.cascade is not None
    return make_approach(cfg.cascade, cfg.approach)


def controller(workers: int = 4, name: str = "static", evict_after: int = 3) -> ControllerCore:
    core = ControllerCore.of(
        approach(name), [f"w{i}" for i in range(workers)], period_s=5.0, heartbeat_s=1.0, evict_after_missed=evict_after
    )
    for i in range(workers):
        core.register(f"w{i}")
    return core


def all_answer(core: ControllerCore) -> dict[str, WorkerReport]:
    return dict.fromkeys(core.heartbeat_targets(), IDLE)


# --------------------------------------------------------------------------- controller


def test_a_worker_is_evicted_after_n_missed_heartbeats_and_readmitted_when_it_answers() -> None:
    core = controller(evict_after=3)
    core.tick(0.0, all_answer(core), (), 0)
    others = dict.fromkeys(("w0", "w1", "w3"), IDLE)
    for t in (1.0, 2.0):
        out = core.tick(t, others, ["w2"], 0)
        assert not out.evicted, "two misses are not yet three"
    out = core.tick(3.0, others, ["w2"], 0)
    assert out.evicted == ("w2",) and out.plan is not None, "the third miss evicts and re-plans at once"
    assert out.plan.light_workers + out.plan.heavy_workers <= 3
    assert "w2" not in {n for n, _, _ in out.routing.routes}
    assert "w2" in core.heartbeat_targets(), "an evicted worker is still heard, to notice it come back"
    out = core.tick(4.0, all_answer(core), (), 0)
    assert out.readmitted == ("w2",) and out.plan is not None
    assert "w2" in out.settings and core.decisions[-1]["workers_alive"] == 4


def test_a_miss_between_answers_does_not_count_towards_eviction() -> None:
    core = controller(evict_after=2)
    core.tick(0.0, all_answer(core), (), 0)
    core.tick(1.0, {}, ["w1"], 0)
    core.tick(2.0, all_answer(core), (), 0)
    out = core.tick(3.0, {}, ["w1"], 0)
    assert not out.evicted, "misses must come in a row"


def test_planning_follows_trace_time_however_ticks_come() -> None:
    """Plans at 0, 5, 10, ... whether ticks come every second, every three seconds, or late."""
    for step in (1.0, 3.0, 0.7):
        core = controller()
        times = np.arange(0.0, 30.0, step)
        for t in times:
            core.tick(float(t), all_answer(core), (), 0)
        plan_times = [d["time"] for d in core.decisions]
        assert [int(t // 5) for t in plan_times] == list(range(len(plan_times))), (step, plan_times)
        assert len(plan_times) == 6


def test_the_controller_keeps_planning_when_the_approach_throws() -> None:
    core = controller(name="diffserve")
    core.tick(0.0, all_answer(core), (), 0)
    calls = {"n": 0}

    def broken(obs: Observation) -> AllocationPlan:
        calls["n"] += 1
        raise RuntimeError("solver exploded")

    core.approach.plan = broken  # type: ignore[method-assign]
    core.tick(5.0, all_answer(core), (), 10)
    core.tick(10.0, all_answer(core), (), 20)
    assert calls["n"] == 2 and len(core.decisions) == 3
    assert core.decisions[-1]["feasible"] is False and "solver exploded" in core.decisions[-1]["reason"]


def test_demand_comes_from_admissions_over_trace_time() -> None:
    core = controller(name="diffserve")
    core.tick(0.0, all_answer(core), (), 0)
    core.tick(2.0, all_answer(core), (), 20)  # 10 q/s over 2 s
    assert core.ticks[-1]["arrival_rate"] == pytest.approx(10.0)
    assert core.ticks[-1]["demand"] > 0
    core.tick(3.0, all_answer(core), (), None)  # the load balancer did not answer: no sample
    core.tick(4.0, all_answer(core), (), 40)  # 20 more over the 2 s since the last answer
    assert core.ticks[-1]["arrival_rate"] == pytest.approx(10.0)


# --------------------------------------------------------------------------- load balancer


def query(i: int, scored: bool = False) -> Query:
    q = Query(id=i, prompt_index=i, sent_at=0.0)
    if scored:
        q.scored, q.confidence, q.threshold = True, 0.1, 0.5
    return q


def test_the_load_balancer_routes_to_the_shortest_merged_queue() -> None:
    lb = LoadBalancerCore()
    lb.set_routing(RoutingTable(1, (("a", Tier.LIGHT, 0), ("b", Tier.LIGHT, 1), ("h", Tier.HEAVY, 0)), 0.0))
    assert lb.admit(query(0), 1.0) is Tier.LIGHT
    picks = []
    for t in range(4):
        name = lb.pick(Tier.LIGHT)
        assert name is not None
        lb.send(name, float(t))
        picks.append(name)
    assert [r.estimate for r in lb.router.workers(Tier.LIGHT)] == [3, 2], picks
    # A routing table reported before the last sends keeps them counted.
    lb.set_routing(RoutingTable(2, (("a", Tier.LIGHT, 0), ("b", Tier.LIGHT, 0)), 1.5))
    assert [r.estimate for r in lb.router.workers(Tier.LIGHT)] == [1, 1]


def test_a_deferred_query_no_heavy_worker_takes_keeps_its_light_result() -> None:
    lb = LoadBalancerCore()
    lb.set_routing(RoutingTable(1, (("a", Tier.LIGHT, 0),), 0.0))
    fresh = lb.deferred([query(1, scored=True), query(1, scored=True)])
    assert len(fresh) == 1, "a retried Forward is routed once"
    assert lb.pick(Tier.HEAVY) is None
    reason = lb.unrouted(frozenset())
    kept = lb.settle_unrouted(fresh[0], reason)
    assert kept is not None and not kept.dropped and kept.note == "kept light result: no_worker at the heavy tier"
    assert lb.settle_unrouted(query(2), DropReason.WORKER_UNREACHABLE) is None, "a new query is refused"
    assert lb.rejected == 1 and lb.kept_light == 1


# --------------------------------------------------------------------------- worker


def worker(latency_s: float = 1.0) -> WorkerCore:
    w = WorkerCore("w0", slo_s=5.0, drop_factor=1.0, latency_s=lambda tier, n: latency_s)
    w.configure(WorkerSetting(1, Tier.LIGHT, light_batch=4, heavy_batch=4, threshold=0.5))
    return w


def test_the_drop_rule_uses_the_workers_own_clock() -> None:
    """A query's age is its earlier stages' time plus its time here: the client's clock (sent_at)
    is never compared with the worker's."""
    w = worker(latency_s=1.0)
    skewed = query(0)
    skewed.sent_at = -1000.0  # a client clock far behind: must not matter
    w.enqueue(Tier.LIGHT, skewed, 100.0)
    batch = w.take_batch(100.5)
    assert batch is not None and len(batch.items) == 1 and not batch.settled
    w.finish_batch(batch, [ItemResult(confidence=0.9)], 101.5)
    old = query(1)
    old.elapsed_s = 3.5  # 3.5 s at earlier stages
    w.enqueue(Tier.LIGHT, old, 200.0)
    batch = w.take_batch(200.6)  # 3.5 + 0.6 + 1.0 > 5
    assert batch is not None and not batch.items and batch.settled[0].dropped
    assert batch.settled[0].drop_reason == DropReason.SLO_UNREACHABLE.value


def test_a_deferred_query_past_the_drop_rule_at_the_heavy_tier_keeps_its_light_result() -> None:
    w = worker(latency_s=3.0)
    late = query(2, scored=True)
    late.elapsed_s = 3.0
    w.enqueue(Tier.HEAVY, late, 10.0)
    batch = w.take_batch(10.0)
    assert batch is not None and not batch.items
    kept = batch.settled[0]
    assert not kept.dropped and kept.note.startswith("kept light result: slo_unreachable")


def test_results_below_the_threshold_are_deferred_and_the_rest_finish() -> None:
    w = worker(latency_s=0.5)
    for i in range(3):
        w.enqueue(Tier.LIGHT, query(i), 0.0)
    assert w.report() == WorkerReport(3, 3, 0, 0)
    batch = w.take_batch(0.0)
    assert batch is not None and w.report().running == 3
    out = w.finish_batch(batch, [ItemResult(confidence=c) for c in (0.2, 0.5, 0.9)], 0.5)
    assert [q.id for q in out.to_heavy] == [0] and [q.id for q in out.to_sink] == [1, 2]
    assert all(q.elapsed_s == pytest.approx(0.5) for q in out.to_sink)
    stage = out.to_sink[0].stages[0]
    assert (stage.worker, stage.batch_size, stage.started_at, stage.finished_at) == ("w0", 3, 0.0, 0.5)


def test_an_enqueue_repeated_after_an_unknown_outcome_is_queued_once() -> None:
    """The load balancer asks again when a call timed out; the worker may have taken the first."""
    w = worker()
    assert w.enqueue(Tier.LIGHT, query(7), 0.0) == 1
    assert w.enqueue(Tier.LIGHT, query(7), 0.1) == 1 and w.repeats == 1
    assert w.enqueue(Tier.HEAVY, query(7), 0.2) == 2, "the same query deferred to the heavy tier is new"
    batch = w.take_batch(0.3)
    assert batch is not None and [i.query.id for i in batch.items] == [7]
    assert w.enqueue(Tier.LIGHT, query(7), 0.4) == 1, "a repeat after the query ran is not queued again"


# --------------------------------------------------------------------------- client and sink


def test_the_progress_rate_counts_the_sends_of_the_last_window() -> None:
    """The progress line's rate: the sends of the last RATE_WINDOW_S (5) trace seconds, found
    by bisecting the send times, whatever happened to the queries since."""
    client = ClientCore(np.arange(20.0), np.zeros(20, dtype=int), slo_s=5.0)
    assert client.progress(0.0).rate == 0.0
    for i in range(10):
        client.send(i, float(i))  # one a second, 0 to 9
    assert client.progress(10.0).rate == 5 / 5  # sent at 5, 6, 7, 8, 9
    assert client.progress(9.5).rate == 5 / 5  # 4.5 to 9.5: 5 to 9
    assert client.progress(30.0).rate == 0.0


def test_the_client_and_sink_books() -> None:
    client = ClientCore(np.array([0.0, 1.0, 2.0]), np.array([5, 6, 7]), slo_s=5.0)
    sink = SinkCore()
    q0 = client.send(0, 0.0)
    q1 = client.send(1, 1.0)
    q0.stages.append(Stage(tier=pb.LIGHT, worker="w", finished_at=0.5))
    notices = sink.complete([q0], 0.5) + sink.complete([q0], 0.6)  # a retried delivery
    assert len(notices) == 1 and sink.repeats == 1 and notices[0].path == "light"
    for n in notices:
        client.notice(int(n.id), n.dropped, n.drop_reason, n.path, 7.0)
    assert client.violations == 1, "noticed 7 s after sending: late"
    client.notice(0, True, "no_worker", "", 8.0)
    assert client.conflicts == 1
    client.notice(1, False, "", "heavy", 2.0)
    assert client.all_noticed and client.progress(2.0).completed == 2
    assert client.close() and not client.close()
    client.notice(2, False, "", "light", 9.0)
    assert client.after_close == [2] and client.table().to_pylist()[2]["sent_at"] is None
    q1.stages.append(Stage(tier=pb.HEAVY, worker="h", finished_at=1.5))
    sink.complete([q1], 1.6)
    changed = Query(id=1)
    changed.dropped = True
    sink.complete([changed], 1.7)
    assert sink.duplicates == 1
