"""The pure DiffServe decisions: routing, batching, the two per-query rules, tier assignment,
and the fixed approaches."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import pytest

from runtime.exceptions import ConfigError
from runtime.policies.diffserve.all_heavy import AllHeavy
from runtime.policies.diffserve.all_light import AllLight
from runtime.policies.diffserve.assignment import assign_tiers
from runtime.policies.diffserve.batcher import next_batch
from runtime.policies.diffserve.demand import DemandEstimator
from runtime.policies.diffserve.plan import AllocationPlan, Observation, slo_batch
from runtime.policies.diffserve.registry import make_approach
from runtime.policies.diffserve.router import ShortestQueueRouter
from runtime.policies.diffserve.rules import defers, should_drop
from runtime.policies.diffserve.static import Static
from runtime.records import Tier
from tests.conftest import compose_config


def cascade(name: str = "sdxs"):  # type: ignore[no-untyped-def]
    from orchestrator.plan import typed_config

    return typed_config(compose_config(f"cascade={name}"))


@dataclass
class Item:
    enqueued_at: float
    tier: str = ""


def test_router_joins_the_shortest_queue_and_counts_what_it_sent() -> None:
    r = ShortestQueueRouter()
    r.update([("a", Tier.LIGHT, 3), ("b", Tier.LIGHT, 1), ("h", Tier.HEAVY, 0)], reported_at=0.0)
    picked = r.pick(Tier.LIGHT)
    assert picked == "b"
    r.on_sent("b", 1.0)
    r.on_sent("b", 1.1)
    r.on_sent("b", 1.2)  # b is now at 4 in the router's view
    picked = r.pick(Tier.LIGHT)
    assert picked == "a"
    assert r.pick(Tier.LIGHT, exclude=frozenset({"a", "b"})) is None
    assert r.entry_tier() is Tier.LIGHT


def test_router_spreads_ties_and_falls_back_to_heavy() -> None:
    r = ShortestQueueRouter()
    r.update([(n, Tier.LIGHT, 0) for n in "abcd"], reported_at=0.0)
    seen = {r.pick(Tier.LIGHT) for _ in range(8)}
    assert seen == set("abcd"), "equal queues share the load"
    r.update([("h", Tier.HEAVY, 0)], reported_at=1.0)
    assert r.entry_tier() is Tier.HEAVY


def test_batcher_takes_the_oldest_tier_up_to_its_max() -> None:
    queues = {Tier.LIGHT: deque(Item(t) for t in (2.0, 3.0, 4.0)), Tier.HEAVY: deque([Item(1.0), Item(5.0)])}
    tier, batch = next_batch(queues, {Tier.LIGHT: 2, Tier.HEAVY: 4})  # type: ignore[misc]
    assert tier is Tier.HEAVY and [i.enqueued_at for i in batch] == [1.0, 5.0]
    tier, batch = next_batch(queues, {Tier.LIGHT: 2, Tier.HEAVY: 4})  # type: ignore[misc]
    assert tier is Tier.LIGHT and [i.enqueued_at for i in batch] == [2.0, 3.0]
    assert next_batch({Tier.LIGHT: deque(), Tier.HEAVY: deque()}, {Tier.LIGHT: 1, Tier.HEAVY: 1}) is None


def test_defer_and_drop_rules() -> None:
    assert defers(0.1, 0.2) and not defers(0.2, 0.2) and not defers(0.0, 0.0)
    assert defers(0.99, 1.0)
    assert should_drop(elapsed_s=4.0, stage_latency_s=1.5, slo_s=5.0, drop_factor=1.0)
    assert not should_drop(elapsed_s=3.0, stage_latency_s=1.5, slo_s=5.0, drop_factor=1.0)
    assert not should_drop(elapsed_s=4.0, stage_latency_s=1.5, slo_s=5.0, drop_factor=2.0)


def test_assignment_moves_as_few_workers_as_possible() -> None:
    current = {"w0": Tier.LIGHT, "w1": Tier.HEAVY, "w2": Tier.HEAVY, "w3": Tier.IDLE}
    plan = AllocationPlan(light_workers=2, heavy_workers=1, light_batch=1, heavy_batch=1, threshold=0.5)
    tiers = assign_tiers(plan, current)
    assert tiers["w0"] is Tier.LIGHT and tiers["w1"] is Tier.HEAVY
    assert sorted(t.value for t in tiers.values()) == ["heavy", "idle", "light", "light"]
    moved = [w for w in current if tiers[w] is not current[w]]
    assert moved == ["w2"], "only the one surplus heavy worker moves; the idle one stays idle"


def test_fixed_approaches() -> None:
    cfg = cascade("sdxs")
    obs = Observation(now=0.0, workers=12)
    light = AllLight(cfg.cascade, cfg.approach).plan(obs)  # type: ignore[arg-type]
    heavy = AllHeavy(cfg.cascade, cfg.approach).plan(obs)  # type: ignore[arg-type]
    assert (light.light_workers, light.heavy_workers, light.threshold) == (12, 0, 0.0)
    assert (heavy.light_workers, heavy.heavy_workers, heavy.threshold) == (0, 12, 1.0)
    # Largest batch whose 2 x latency fits the 5-s SLO: SDXS 32 (0.48 s), SD v1.5 2 (2.16 s).
    assert light.light_batch == 32 and heavy.heavy_batch == 2


def test_slo_batch_on_sdxlltn_stops_at_the_profiled_sizes() -> None:
    cfg = cascade("sdxlltn")
    # SDXL-Lightning: 2 x 7.1 s fits 15 s at 16; 32 has no profile (the artifact's "infeasible").
    assert slo_batch(cfg.cascade, "light", [1, 2, 4, 8, 16, 32]) == 16
    assert slo_batch(cfg.cascade, "heavy", [1, 2, 4, 8, 16, 32]) == 1


def test_static_keeps_the_published_light_share() -> None:
    cfg = cascade("sdxs")
    static = Static(cfg.cascade, cfg.approach)  # type: ignore[arg-type]
    p16 = static.plan(Observation(now=0.0, workers=16))
    assert (p16.light_workers, p16.heavy_workers, p16.light_batch, p16.heavy_batch, p16.threshold) == (
        2,
        14,
        32,
        4,
        0.12,
    )
    p12 = static.plan(Observation(now=0.0, workers=12))
    assert (p12.light_workers, p12.heavy_workers) == (2, 10)
    p3 = static.plan(Observation(now=0.0, workers=3))
    assert (p3.light_workers, p3.heavy_workers) == (1, 2)


def test_static_with_explicit_counts_and_evictions() -> None:
    cfg = cascade("sdturbo")
    cfg.approach.light_workers, cfg.approach.heavy_workers = 3, 5
    static = Static(cfg.cascade, cfg.approach)  # type: ignore[arg-type]
    assert static.required_workers(16) == 8
    p = static.plan(Observation(now=0.0, workers=4))
    assert p.light_workers + p.heavy_workers == 4 and p.light_workers >= 1 and "shrunk" in p.reason


def test_registry_names_the_allowed_approaches() -> None:
    cfg = cascade("sdxs")
    cfg.approach.name = "nope"
    with pytest.raises(ConfigError, match="allowed: all_heavy, all_light"):
        make_approach(cfg.cascade, cfg.approach)  # type: ignore[arg-type]


def test_demand_estimators() -> None:
    ewma = DemandEstimator("ewma", alpha=0.5, factor=1.0)
    assert ewma.update(arrivals=10, dt_s=1.0, inflight=0) == pytest.approx(10)
    assert ewma.update(arrivals=20, dt_s=1.0, inflight=0) == pytest.approx(15)
    inflight = DemandEstimator("inflight", alpha=1.0, factor=1.2)
    assert inflight.update(arrivals=0, dt_s=1.0, inflight=10) == pytest.approx(12)
    assert inflight.update(arrivals=0, dt_s=1.0, inflight=0) == pytest.approx(12), "frozen when idle, as the artifact"
    with pytest.raises(ValueError, match="allowed: ewma, inflight"):
        DemandEstimator("psychic", 0.5, 1.0)


def test_router_merges_a_report_with_what_it_sent_since() -> None:
    """A report taken at t counts the sends before t; the router adds the ones after it."""
    r = ShortestQueueRouter()
    r.update([("a", Tier.LIGHT, 0), ("b", Tier.LIGHT, 2)], reported_at=0.0)
    for t in (1.0, 2.0, 3.0):
        r.on_sent("a", t)
    r.update([("a", Tier.LIGHT, 1), ("b", Tier.LIGHT, 2)], reported_at=2.5)  # saw the sends at 1 and 2
    assert r.workers(Tier.LIGHT)[0].estimate == 2, "reported 1 + the send at 3.0 the report cannot have seen"
    r.on_reply("a", 5, 3.0)
    assert r.workers(Tier.LIGHT)[0].estimate == 5, "an enqueue reply is the worker's own count"
    r.update([("a", Tier.HEAVY, 0)], reported_at=4.0)
    assert r.workers(Tier.HEAVY)[0].estimate == 0, "a worker that changed tier starts afresh"


def test_demand_is_smoothed_on_trace_time_not_per_sample() -> None:
    """Samples every second and one sample every three seconds reach the same estimate."""
    every_second = DemandEstimator("ewma", alpha=0.3, factor=1.0, period_s=1.0)
    every_third = DemandEstimator("ewma", alpha=0.3, factor=1.0, period_s=1.0)
    every_second.update(0, 1.0, 0)
    every_third.update(0, 1.0, 0)
    for _ in range(3):
        every_second.update(10, 1.0, 0)
    every_third.update(30, 3.0, 0)
    assert every_second.value == pytest.approx(every_third.value)
    assert every_second.value == pytest.approx(10 * (1 - 0.7**3))
