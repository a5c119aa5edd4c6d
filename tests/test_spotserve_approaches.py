"""Each SpotServe-side approach's reaction to one availability event on a small cluster, as
pure decisions: who stops and when, which interrupted batches resume on which replica from
which token, which requests restart from token 0, when the new replicas are ready. Then the
ablation levels (four really different outcomes) and the batch engine (the request pool's
leases are tested with the cores, tests/test_cores_spotserve.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from runtime.exceptions import ConfigError
from runtime.policies.spotserve.cost_model import ParallelConfig
from runtime.policies.spotserve.fleet import Fleet
from runtime.policies.spotserve.migration_planner import reload_time_s
from runtime.policies.spotserve.reconfiguration import (
    DrainReport,
    Notice,
    Rebuild,
    Requeue,
    interrupted_batches,
    requeue,
)
from runtime.policies.spotserve.registry import make_approach
from runtime.policies.spotserve.timing import Run, timing, worth_starting
from runtime.schema.spotserve import ModelConfig, SpotConfig
from runtime.traces.spotserve import AvailabilityEvent
from tests.test_spotserve_policies import model

SPOT = SpotConfig()  # grace 30 s, 4 GPUs an instance, 50 Gbps, storage 8 Gbps, restart 5 s
T = 100.0  # when the event happens; the approaches hear of it at T - grace


@dataclass(frozen=True)
class Reaction:
    before: Fleet
    notice: Notice
    stopped: dict[int, DrainReport]
    built: Rebuild
    requeue: Requeue


def react(
    name: str,
    m: ModelConfig,
    instances: tuple[str, ...],
    event: AvailabilityEvent,
    *,
    level: int = 0,
    progress: tuple[int, ...] = (10, 20, 30, 40, 50, 60),
) -> Reaction:
    """Start `name` on `instances`, let replica k be `progress[k]` decode steps into a full
    batch (requests 100k..100k+batch-1) when its drain deadline comes, and apply `event`."""
    approach = make_approach(name, m, SPOT, level, max_instances=len(instances) + len(event.instances))
    fleet = approach.initial(instances, m.required_tpt).fleet
    notice = approach.notice(fleet, event, m.required_tpt, now=event.at_s - SPOT.grace_period_s)
    t, b = timing(m, fleet.config), fleet.config.batch
    stopped = {}
    for d in notice.drains:
        k = next(i for i, r in enumerate(fleet.replicas) if r.id == d.replica)
        started = d.deadline - t.prefill_s[b - 1] - (progress[k] + 0.5) * t.step_s[b - 1]
        run = Run(started, b, 0, m.output_len, t)
        tokens = run.committed_at(d.deadline) if d.keep_progress else 0
        stopped[d.replica] = DrainReport(tuple(range(100 * k, 100 * k + b)), tokens)
    built = approach.rebuild(fleet, notice, interrupted_batches(notice, stopped, m.input_len))
    return Reaction(fleet, notice, stopped, built, requeue(built, stopped))


THREE = ("a", "b", "c")
LOSE_B = AvailabilityEvent(T, "remove", ("b",))


def test_the_small_cluster_runs_one_replica_per_instance() -> None:
    """6.7B on three 4-GPU instances: dp 3 x tp 4, each replica inside one instance."""
    fleet = react("spotserve", model("6.7B"), THREE, LOSE_B).before
    assert fleet.config == ParallelConfig(3, 4, 1, 4, 1, 1)
    assert [{g.instance for g in r.gpus} for r in fleet.replicas] == [{"a"}, {"b"}, {"c"}]


def test_spotserve_drains_every_replica_early_and_resumes_the_longest_batches() -> None:
    """Losing b: the new configuration is dp 2 on a and c. Every replica commits what fits
    before T - (estimated migration), keeping its progress; the two new replicas continue the
    two batches that got furthest (30 and 20 steps) from exactly those tokens; the 10-step
    batch has no replica left and restarts from token 0. The migration ends before b goes."""
    m = model("6.7B")
    r = react("spotserve", m, THREE, LOSE_B)
    assert r.built.fleet.config == ParallelConfig(2, 4, 1, 4, 1, 1)
    assert {d.replica for d in r.notice.drains} == {0, 1, 2}
    assert all(d.keep_progress and d.deadline == T - r.notice.estimate_s for d in r.notice.drains)
    assert 0 < r.notice.estimate_s < SPOT.grace_period_s
    assert [s.tokens for s in r.stopped.values()] == [10, 20, 30]
    assert sorted((ids, step) for _, ids, step in r.requeue.pinned) == [
        ((100, 101, 102, 103), 20),
        ((200, 201, 202, 203), 30),
    ]
    assert r.requeue.restarted == (0, 1, 2, 3)
    new_ids = {rep.id for rep in r.built.fleet.replicas}
    assert {replica for replica, _, _ in r.requeue.pinned} == new_ids
    assert all(g.instance != "b" for rep in r.built.fleet.replicas for g in rep.gpus)
    assert all(p.ready_at < T for p in r.built.new)
    assert r.built.kept_bytes > 0  # a and c keep their shards


def test_reparallelization_stops_everything_and_restarts_every_request() -> None:
    """Every replica serves until b goes, keeps nothing, and every GPU reloads its shard from
    storage: the new replicas are ready one reload plus one engine start after T."""
    m = model("6.7B")
    r = react("reparallelization", m, THREE, LOSE_B)
    assert {d.replica for d in r.notice.drains} == {0, 1, 2}
    assert all(d.deadline == T and not d.keep_progress for d in r.notice.drains)
    assert r.requeue.pinned == ()
    assert sorted(r.requeue.restarted) == [0, 1, 2, 3, 100, 101, 102, 103, 200, 201, 202, 203]
    new = r.built.fleet.config
    assert new == ParallelConfig(2, 4, 1, 4, 1, 1)
    ready = T + reload_time_s(m, new, SPOT.load_gbps) + SPOT.restart_s
    assert [p.ready_at for p in r.built.new] == pytest.approx([ready, ready])


def test_rerouting_stops_only_the_pipeline_that_loses_a_gpu() -> None:
    """Only b's pipeline stops (at T, keeping nothing); a's and c's run on untouched, with the
    same ids and GPUs; b's requests restart; no GPU is free, so no pipeline is added."""
    r = react("rerouting", model("6.7B"), THREE, LOSE_B)
    assert [(d.replica, d.deadline, d.keep_progress) for d in r.notice.drains] == [(1, T, False)]
    assert set(r.notice.keep) == {0, 2}
    assert r.requeue == Requeue((), (100, 101, 102, 103))
    after = {rep.id: rep.gpus for rep in r.built.fleet.replicas}
    assert after == {rep.id: rep.gpus for rep in r.before.replicas if rep.id != 1}
    assert r.built.new == ()


def test_acquisition_spotserve_scales_out_while_old_replicas_run_on() -> None:
    """An instance joins: same shape, one more replica. spotserve's old replicas never stop;
    the new one gets its shard from a holder over the network (seconds); rerouting loads it
    from storage and waits two engine starts (tens of seconds)."""
    m = model("6.7B")
    join = AvailabilityEvent(T, "add", ("d",))
    spot, rer = react("spotserve", m, THREE, join), react("rerouting", m, THREE, join)
    for r in (spot, rer):
        assert r.notice.drains == ()
        assert r.built.fleet.config.dp == 4
        assert [g.instance for g in r.built.new[0].replica.gpus] == ["d"] * 4
    assert spot.built.new[0].ready_at - T < rer.built.new[0].ready_at - T
    assert rer.built.new[0].ready_at == pytest.approx(
        T + reload_time_s(m, rer.built.fleet.config, SPOT.load_gbps) + 2 * SPOT.restart_s
    )


SIX = tuple(f"node-{i}" for i in range(6))
LOSE_FIRST = AvailabilityEvent(T, "remove", ("node-0",))


def test_ablation_levels_each_change_the_outcome() -> None:
    """20B on six instances (dp 2 x tp 4 x pp 3) loses node-0, which holds stage 0 of replica 0.

    0 SpotServe: re-optimised to tp 8 x pp 2; resumes the 20-step batch, restarts the 10-step.
    1 - Controller: shape frozen (tp 4 x pp 3); replica 1 stays whole, nothing moves; ready
      after the switch overhead (pp 3: a third of it).
    2 - Migration Planner: the same, but ready only after the whole migration and two starts.
    3 - Interruption Arranger: nothing resumes, every request restarts.
    4 - Device Mapper: rank order moves ~97 GB that matching kept in place, so the estimate
      (and the drain) comes seconds earlier.
    """
    m = model("20B")
    out = {level: react("spotserve", m, SIX, LOSE_FIRST, level=level) for level in range(5)}
    frozen = ParallelConfig(1, 4, 3, 4, 4, 1)
    assert out[0].built.fleet.config == ParallelConfig(1, 8, 2, 4, 2, 1)
    assert all(out[k].built.fleet.config == frozen for k in (1, 2, 3, 4))
    assert [len(out[k].requeue.pinned) for k in range(5)] == [1, 1, 1, 0, 0]
    assert out[1].built.moved_bytes == out[2].built.moved_bytes == out[3].built.moved_bytes == 0
    assert out[4].built.moved_bytes > 50e9
    delay = {k: out[k].built.new[0].ready_at - out[k].notice.rebuild_at for k in range(5)}
    assert delay[1] == pytest.approx(SPOT.switch_overhead_s / 3)
    assert delay[2] == pytest.approx(SPOT.switch_overhead_s + 2 * SPOT.restart_s)
    assert out[4].notice.rebuild_at < out[3].notice.rebuild_at - 5
    outcomes = {
        (
            out[k].built.fleet.config,
            round(out[k].notice.rebuild_at, 3),
            round(delay[k], 3),
            out[k].requeue,
            round(out[k].built.moved_bytes),
        )
        for k in range(5)
    }
    assert len(outcomes) == 5


def test_ablation_is_refused_for_the_baselines_and_unknown_levels() -> None:
    m = model("20B")
    with pytest.raises(ConfigError, match=r"^ablation: levels 1\.\.4 take features out of spotserve"):
        make_approach("rerouting", m, SPOT, 2, 6)
    with pytest.raises(ConfigError, match=r"^ablation: unknown level 5 \(allowed: 0\.\.4\)"):
        make_approach("spotserve", m, SPOT, 5, 6)


def test_the_end_stops_every_replica_without_progress() -> None:
    r = react("spotserve", model("6.7B"), THREE, AvailabilityEvent(T, "end"))
    assert all(d.deadline == T and not d.keep_progress for d in r.notice.drains)
    assert r.built.fleet.replicas == () and len(r.requeue.restarted) == 12


# --------------------------------------------------------------------------- the batch engine


def test_a_batch_commits_one_token_per_decode_step_after_its_prefill() -> None:
    """20B dp1 tp8 pp2 batch 4: nothing is committed during the prefill, then one token a
    step; a resumed batch skips the prefill and starts from its step."""
    m = model("20B")
    t = timing(m, ParallelConfig(1, 8, 2, 4, 2, 1))
    run = Run(10.0, 4, 0, m.output_len, t)
    p, s = t.prefill_s[3], t.step_s[3]
    assert run.committed_at(10.0 + p / 2) == 0
    assert run.committed_at(10.0 + p + 5.5 * s) == 5
    assert run.committed_at(run.finish_at) == m.output_len
    resumed = Run(10.0, 4, 100, m.output_len, t)
    assert resumed.decode_start == 10.0
    assert resumed.finish_at == pytest.approx(10.0 + 28 * s + t.embed_s[3])
    assert resumed.committed_at(10.0 + 3.5 * s) == 103


def test_a_draining_replica_starts_a_batch_only_if_it_gains_something() -> None:
    m = model("20B")
    t = timing(m, ParallelConfig(1, 8, 2, 4, 2, 1))
    whole = t.duration_s(4, 0, m.output_len)
    p, s = t.prefill_s[3], t.step_s[3]
    assert worth_starting(t, 4, 0, m.output_len, 0.0, whole, keep_progress=False)
    assert not worth_starting(t, 4, 0, m.output_len, 0.0, whole - 0.01, keep_progress=False)
    assert worth_starting(t, 4, 0, m.output_len, 0.0, p + 1.5 * s, keep_progress=True)
    assert not worth_starting(t, 4, 0, m.output_len, 0.0, p + 0.5 * s, keep_progress=True)
