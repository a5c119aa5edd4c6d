"""SpotServe's pure decisions on hand-checked cases: the GPipe latency model, the configuration
optimizer, the device mapper (matching against rank order, tp groups inside one instance) and
the migration planner (bytes, transfer time, the commit rule)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from orchestrator.plan import typed_config
from runtime.exceptions import ConfigError
from runtime.policies.spotserve.config_optimizer import choose, enumerate_configs, fixed_shape
from runtime.policies.spotserve.cost_model import (
    ZERO,
    ParallelConfig,
    batch_latency_s,
    check_profile,
    decode_step_ms,
    prefill_ms,
    throughput_rps,
)
from runtime.policies.spotserve.device_mapper import keep_weights, map_devices, rank_order, resume_order
from runtime.policies.spotserve.layout import Gpu, InterruptedBatch, Position, positions
from runtime.policies.spotserve.migration_planner import (
    commit_steps,
    plan_migration,
    reload_time_s,
    steps_that_fit,
    transfer_time_s,
)
from runtime.schema.spotserve import ModelConfig
from tests.conftest import CONF, REFERENCE, compose_config, needs_reference

PROFILE_20B = REFERENCE / "spotserve" / "profiles" / "T4-4x" / "megatron_h6144_profile.json"
A = [Gpu("A", 0), Gpu("A", 1)]
B = [Gpu("B", 0), Gpu("B", 1)]
C = [Gpu("C", 0), Gpu("C", 1)]


def model(name: str) -> ModelConfig:
    m = typed_config(compose_config("system=spotserve", f"model={name}")).model
    assert m is not None
    return m


# Byte model of the tiny model (hidden h = 64, 4 layers, vocab 256, max_seq_len 48, fp32):
SHARDED = (12 * 64 * 64 + 7 * 64) * 4  # 198400 bytes per layer, split over tp
COPIED = 6 * 64 * 4  # 1536 bytes per layer on every tp rank
EMBED = (256 + 48) * 64 * 4  # 77824 bytes on each first-stage GPU
HEAD = (256 * 64 + 2 * 64) * 4  # 66048 bytes on each last-stage GPU
KV = 2 * 2 * 40 * 64 * 4  # 40960 bytes per layer for a batch of 2 sequences of 40 tokens


# --------------------------------------------------------------------------- cost model


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "model").glob("*.yaml")))
def test_every_model_option_composes_with_a_consistent_profile(name: str) -> None:
    """Each conf/model option composes and its profile tables fit together."""
    m = model(name)
    check_profile(m)
    assert m.name == name and m.max_tp in m.profile_tps


@needs_reference
def test_20b_profile_matches_the_artifact_json() -> None:
    """conf/model/20B.yaml carries megatron_h6144_profile.json's numbers."""
    raw = json.loads(Path(PROFILE_20B).read_text())
    m = model("20B")
    for i, tp in enumerate(m.profile_tps):
        for j, b in enumerate(m.profile_batches):
            assert m.init_ms[i][j] == raw[f"tp-{tp}"][f"bsz-{b}"]["init"]
            assert m.incr_ms[i][j] == raw[f"tp-{tp}"][f"bsz-{b}"]["incr"]
    assert m.embed_ms == raw["embed"] and m.layers == raw["layer_num"] and m.padded_layers == raw["padded_layer_num"]
    assert (m.pp_init_comm_ms, m.pp_incr_comm_ms, m.final_fix_factor) == (7.0, 0.1, 1.1)


def test_cost_model_by_hand_20b_one_micro_batch() -> None:
    """20B, dp2 tp8 pp2 batch 4, M1 = M2 = 1, from the profile JSON (tp-8 bsz-4: init 80.624,
    incr 1.932; comm 7.0/0.1; embed[bsz 4] 0.607; fix 1.1); f = ceil(44/2) = 22:

        prefill = (2+1-1) * (22*80.624 + 7.0) = 2 * 1780.728 = 3561.456 ms
        decode  = (2+1-1) * (22*1.932 + 0.1)  = 2 * 42.604   = 85.208 ms
        latency = (3561.456 + 128*85.208 + 2*0.607) * 1.1 = 14469.294 * 1.1 = 15916.2234 ms
        tpt     = 2 * 4 / 15.9162234 = 0.50263 req/s
    """
    m, cfg = model("20B"), ParallelConfig(2, 8, 2, 4, 1, 1)
    assert prefill_ms(m, cfg) == pytest.approx(3561.456)
    assert decode_step_ms(m, cfg) == pytest.approx(85.208)
    assert batch_latency_s(m, cfg) == pytest.approx(15.9162234)
    assert throughput_rps(m, cfg) == pytest.approx(8 / 15.9162234)


def test_cost_model_by_hand_20b_micro_batches() -> None:
    """20B, dp2 tp4 pp3 batch 4, M1 = 4 (micro-batches of 1), M2 = 1; f = ceil(44/3) = 15;
    tp-4: init bsz-1 37.562, incr bsz-4 2.13:

        prefill = (3+4-1) * (15*37.562 + 7.0) = 6 * 570.43 = 3422.58 ms   (GPipe: no /M1)
        decode  = (3+1-1) * (15*2.13 + 0.1)   = 3 * 32.05  = 96.15 ms
        latency = (3422.58 + 128*96.15 + 2*0.607) * 1.1 = 15730.994 * 1.1 = 17304.0934 ms
    """
    m, cfg = model("20B"), ParallelConfig(2, 4, 3, 4, 4, 1)
    assert prefill_ms(m, cfg) == pytest.approx(3422.58)
    assert decode_step_ms(m, cfg) == pytest.approx(96.15)
    assert batch_latency_s(m, cfg) == pytest.approx(17.3040934)


def test_unprofiled_batches_interpolate_and_indivisible_batches_use_one_micro_batch() -> None:
    """Batch 3 (tp 8) interpolates between bsz-2 and bsz-4: init (42.778 + 80.624)/2 = 61.701
    ms per layer; M1 = 2 does not divide 3, so it runs as one micro-batch:
    prefill = 2 * (22*61.701 + 7.0) = 2728.844 ms."""
    m = model("20B")
    assert prefill_ms(m, ParallelConfig(1, 8, 2, 3, 1, 1)) == pytest.approx(2728.844)
    assert prefill_ms(m, ParallelConfig(1, 8, 2, 3, 2, 1)) == pytest.approx(2728.844)


def test_zero_config_has_no_throughput_and_bad_profiles_are_refused() -> None:
    """ZERO runs nothing (infinite latency, 0 req/s); an unprofiled tp or a ragged table is refused."""
    m = model("20B")
    assert batch_latency_s(m, ZERO) == math.inf and throughput_rps(m, ZERO) == 0.0 and ZERO.world == 0
    with pytest.raises(ValueError, match="tp 3 is not profiled"):
        prefill_ms(m, ParallelConfig(1, 3, 4, 4))
    bad = model("20B")
    bad.init_ms = bad.init_ms[:-1]
    with pytest.raises(ConfigError, match=r"^model\.init_ms: must be 5 rows"):
        check_profile(bad)


# --------------------------------------------------------------------------- optimizer


def test_enumeration_follows_the_artifacts_search_space() -> None:
    """20B at 40 GPUs: tp a power of two <= 8, tp*pp in [12, 40], pp divides 48, m1/m2 <= batch <= 4."""
    configs = enumerate_configs(model("20B"), 40)
    assert len(configs) == 196
    for c in configs:
        assert c.tp in (1, 2, 4, 8) and 12 <= c.tp * c.pp <= 40 and 48 % c.pp == 0
        assert c.dp == 40 // (c.tp * c.pp) and c.batch in (1, 2, 4) and c.m1 <= c.batch and c.m2 <= c.batch
    assert {(c.tp, c.pp) for c in configs} == {
        (1, 12),
        (1, 16),
        (1, 24),
        (2, 6),
        (2, 8),
        (2, 12),
        (2, 16),
        (4, 3),
        (4, 4),
        (4, 6),
        (4, 8),
        (8, 2),
        (8, 3),
        (8, 4),
    }


def test_optimizer_20b_at_28_gpus() -> None:
    """28 GPUs, required 0.4 req/s: only dp2 tp4 pp3 batch 4 reaches it, best with M1 = 4, M2 = 1.

    Our enumeration, best (M1, M2) per (tp, pp, batch) of the configurations that come close:

        tp4 pp3 dp2 b4 (4,1) 17.304 s 0.462 req/s   <- the only one >= 0.4
        tp4 pp3 dp2 b2 (2,1) 14.832 s 0.270
        tp8 pp2 dp1 b4 (2,1) 15.127 s 0.264
        tp8 pp3 dp1 b4 (2,1) 15.139 s 0.264
        tp2 pp6 dp2 b4 (4,1) 32.017 s 0.250
        tp4 pp4 dp1 b4 (4,1) 16.489 s 0.243
    For batch 4 at tp4 pp3, M1 = 4 beats M1 = 2 (4 * (15*64.61 + 7) = 3904.6 ms of prefill)
    and M1 = 1 (3 * (15*132.855 + 7) = 6002.5 ms) against 3422.58 ms (see the cost test).
    """
    choice = choose(model("20B"), 28, 0.4)
    assert choice.config == ParallelConfig(2, 4, 3, 4, 4, 1)
    assert choice.meets_target and choice.latency_s == pytest.approx(17.3040934)
    assert choice.throughput_rps == pytest.approx(8 / 17.3040934)


def test_optimizer_20b_at_40_gpus() -> None:
    """40 GPUs, required 0.4 req/s: the lowest latency that reaches it is dp3 tp4 pp3 batch 2.

    Our enumeration, every (tp, pp, batch) whose best (M1, M2) reaches 0.4 req/s:

        tp4 pp3 dp3 b2 (2,1) 14.832 s 0.405 req/s   <- lowest latency
        tp8 pp2 dp2 b4 (2,1) 15.127 s 0.529
        tp4 pp4 dp2 b4 (4,1) 16.489 s 0.485
        tp4 pp3 dp3 b4 (4,1) 17.304 s 0.693
    (faster ones such as tp8 pp2 dp2 b1, 12.494 s, give only 0.160 req/s). By hand, f = 15:
    prefill = (3+2-1) * (15*37.562 + 7) = 2281.72 ms; decode = 3 * (15*1.938 + 0.1) = 87.51 ms;
    latency = (2281.72 + 128*87.51 + 2*0.471) * 1.1 = 14832.3362 ms; tpt = 3*2/14.8323 = 0.4045.
    """
    choice = choose(model("20B"), 40, 0.4)
    assert choice.config == ParallelConfig(3, 4, 3, 2, 2, 1)
    assert choice.meets_target and choice.latency_s == pytest.approx(14.8323362)
    assert choice.throughput_rps == pytest.approx(6 / 14.8323362)


def test_unreachable_target_falls_back_to_the_highest_throughput() -> None:
    """No 40-GPU configuration serves 1 req/s: the choice is the highest throughput, dp3 tp4 pp3
    batch 4 (0.693 req/s in the 40-GPU table), flagged as not meeting the target."""
    choice = choose(model("20B"), 40, 1.0)
    assert choice.config == ParallelConfig(3, 4, 3, 4, 4, 1)
    assert not choice.meets_target and choice.throughput_rps == pytest.approx(12 / 17.3040934)
    assert "highest throughput" in choice.reason


def test_fewer_gpus_than_the_model_needs_give_zero() -> None:
    """20B needs 12 GPUs: with 8 there is no configuration, so the choice is ZERO."""
    choice = choose(model("20B"), 8, 0.4)
    assert choice.config == ZERO and not choice.meets_target and choice.throughput_rps == 0.0
    assert "min_world_size 12" in choice.reason
    assert enumerate_configs(model("20B"), 8) == []


def test_fixed_shape_keeps_tp_and_pp() -> None:
    """Rerouting keeps tp/pp: 20B tp8 pp2 on 36 GPUs is dp 2; 30B tp8 pp4 on 28 GPUs holds no pipeline."""
    choice = fixed_shape(model("20B"), 36, 8, 2, 4, 2, 1, required_tpt=0.4)
    assert choice.config == ParallelConfig(2, 8, 2, 4, 2, 1) and choice.meets_target
    assert fixed_shape(model("30B"), 28, 8, 4, 4, 4, 1).config == ZERO


# --------------------------------------------------------------------------- device mapper


def preempt_a_example() -> tuple[ModelConfig, ParallelConfig, dict[Position, Gpu], ParallelConfig]:
    """Tiny model, 2 GPUs per instance. Old: dp1 tp2 pp2 on A (stage 0) and B (stage 1).
    A is preempted, C joins; new: dp1 tp1 pp4 on B and C (in that rank order)."""
    old = ParallelConfig(1, 2, 2, 2)
    return model("tiny"), old, dict(zip(positions(old), A + B, strict=True)), ParallelConfig(1, 1, 4, 2)


def test_matching_keeps_more_than_rank_order_by_hand() -> None:
    """KM keeps B on the layers it already holds; rank order moves everything.

    The new replica 0 resumes old replica 0's batch of 2 sequences x 40 tokens. B0 and B1 hold
    layers 2-3 (halves of each) plus the LM head. Matching puts them on stages 2 and 3 (one
    layer each). Kept bytes:

        2 GPUs x (half a layer of weights + its copied params + half its KV)  + one LM head
      = 2 x (198400/2 + 1536 + 40960/2) + 66048 = 2 x 121216 + 66048 = 308480

    Rank order puts B0, B1 on stages 0 and 1 (layers 0 and 1, which B never held) and keeps 0.
    All state the new layout needs is 4 x (198400 + 1536 + 40960) + 77824 + 66048 = 1107456
    bytes, so matching moves 1107456 - 308480 = 798976 bytes and rank order 1107456.
    """
    m, old, layout, new = preempt_a_example()
    interrupted = {0: InterruptedBatch(batch=2, tokens=40)}
    km = map_devices(m, old, layout, new, B + C, 2, {0: 0}, interrupted)
    ro = rank_order(m, old, layout, new, B + C, {0: 0}, interrupted)
    kept = 2 * (SHARDED // 2 + COPIED + KV // 2) + HEAD
    assert kept == 308480 and km.kept_bytes == kept and ro.kept_bytes == 0.0
    assert {km.gpu(Position(0, 0, 2)), km.gpu(Position(0, 0, 3))} == set(B)
    assert {km.gpu(Position(0, 0, 0)), km.gpu(Position(0, 0, 1))} == set(C)
    assert ro.gpu(Position(0, 0, 0)) == B[0] and ro.gpu(Position(0, 0, 3)) == C[1]
    needed = 4 * (SHARDED + COPIED + KV) + EMBED + HEAD
    assert needed == 1107456
    km_plan = plan_migration(m, old, layout, km, dying=A, resume={0: 0}, interrupted=interrupted)
    ro_plan = plan_migration(m, old, layout, ro, dying=A, resume={0: 0}, interrupted=interrupted)
    assert km_plan.kept_bytes == kept and km_plan.moved_bytes == needed - kept == 798976
    assert ro_plan.kept_bytes == 0.0 and ro_plan.moved_bytes == needed


def test_without_a_resumed_batch_no_kv_counts() -> None:
    """The KV term only counts for the new replica that continues the old replica's batch."""
    m, old, layout, new = preempt_a_example()
    km = map_devices(m, old, layout, new, B + C, 2)
    assert km.kept_bytes == 2 * (SHARDED // 2 + COPIED) + HEAD


def test_tp_groups_stay_inside_one_instance_even_when_it_keeps_less() -> None:
    """2 instances x 4 GPUs. Old: one tp8 replica over A and B; new: dp2 tp4 (pp1 throughout).

    New rank t of a replica overlaps old ranks 2t and 2t+1 (1/8 of each layer each). Instance A
    holds old ranks 0-3, so a replica placed on A can keep slices for new ranks 0 and 1 only:
    the two-level matching keeps 4 GPUs x 4 layers x 198400/8 = 396800 bytes of weights, while
    an unconstrained matching (which would split replicas across instances) keeps 8 x 4 x
    24800 = 793600. Every GPU also keeps its copied params, embedding and head:
    8 x (4 x 1536 + 77824 + 66048) = 1200128. Total kept: 1596928 bytes.
    """
    m = model("tiny")
    gpus = [Gpu("A", i) for i in range(4)] + [Gpu("B", i) for i in range(4)]
    old, new = ParallelConfig(1, 8, 1, 1), ParallelConfig(2, 4, 1, 1)
    layout = dict(zip(positions(old), gpus, strict=True))
    km = map_devices(m, old, layout, new, gpus, 4)
    for d in range(2):
        assert len({km.gpu(Position(d, t, 0)).instance for t in range(4)}) == 1
    always = 8 * (4 * COPIED + EMBED + HEAD)
    assert always == 1200128 and km.kept_bytes == always + 4 * 4 * SHARDED // 8 == 1596928
    weights = keep_weights(m, old, positions(old), new, positions(new))
    rows, cols = linear_sum_assignment(weights, maximize=True)
    assert weights[rows, cols].sum() == always + 8 * 4 * SHARDED // 8


def test_a_tp_group_wider_than_an_instance_is_split_into_whole_instances() -> None:
    """tp4 on 2-GPU instances: each block of 2 consecutive tp ranks sits on one instance."""
    m = model("tiny")
    gpus = A + B + C + [Gpu("D", 0), Gpu("D", 1)]
    old = ParallelConfig(2, 2, 2, 1)
    layout = dict(zip(positions(old), gpus, strict=True))
    km = map_devices(m, old, layout, ParallelConfig(2, 4, 1, 1), gpus, 2)
    for d in range(2):
        for block in ((0, 1), (2, 3)):
            assert len({km.gpu(Position(d, t, 0)).instance for t in block}) == 1


def test_mapper_refuses_too_few_gpus_and_maps_zero_to_nothing() -> None:
    """A configuration larger than the alive GPUs is a ValueError; ZERO maps no GPU."""
    m, old, layout, _ = preempt_a_example()
    with pytest.raises(ValueError, match="needs 8 GPUs, 4 are alive"):
        map_devices(m, old, layout, ParallelConfig(2, 2, 2, 1), B + C, 2)
    assert map_devices(m, old, layout, ZERO, B + C, 2).assignment == {}


def test_resume_order_prefers_the_longest_batches() -> None:
    """With fewer new replicas than interrupted batches, the ones with the most tokens resume first."""
    interrupted = {0: InterruptedBatch(4, 520), 1: InterruptedBatch(4, 600), 2: InterruptedBatch(2, 560)}
    assert resume_order(interrupted, 2) == {0: 1, 1: 2}
    assert resume_order(interrupted, 5) == {0: 1, 1: 2, 2: 0}


# --------------------------------------------------------------------------- migration planner


def test_scale_out_transfer_time_on_two_instances_by_hand() -> None:
    """Tiny model, old dp1 tp2 pp1 on A; B joins; new dp2 tp2 pp1 on A and B.

    A keeps replica 0; each B GPU receives a half of all 4 layers, their copied params, the
    embedding and the head from A: 4 x 99200 + 4 x 1536 + 77824 + 66048 = 546816 bytes, so
    1093632 bytes leave A and enter B. Each instance link carries 1093632 bytes; at 0.001 Gbps
    that is 1093632 x 8 / 1e6 = 8.749056 s.
    """
    m = model("tiny")
    old, new = ParallelConfig(1, 2, 1, 1), ParallelConfig(2, 2, 1, 1)
    layout = dict(zip(positions(old), A, strict=True))
    mapping = map_devices(m, old, layout, new, A + B, 2)
    assert {mapping.gpu(Position(0, t, 0)) for t in range(2)} == set(A)
    plan = plan_migration(m, old, layout, mapping)
    per_gpu = 4 * SHARDED // 2 + 4 * COPIED + EMBED + HEAD
    assert per_gpu == 546816 and plan.moved_bytes == 2 * per_gpu
    assert all(t.src is not None and t.src.instance == "A" and t.dst.instance == "B" for t in plan.transfers)
    assert transfer_time_s(plan, network_gbps=0.001) == pytest.approx(8.749056)
    assert transfer_time_s(plan, network_gbps=50.0) == pytest.approx(1093632 * 8 / 50e9)


def test_preemption_plan_sends_from_the_dying_instance_first_by_hand() -> None:
    """The A-preempted example: C gets layers 0-1 (both halves, copied params, KV) and the
    embedding from dying A; B swaps the missing halves of layers 2-3 inside the instance.

    Network: 77824 + 4 x 99200 + 2 x 1536 + 4 x 20480 = 559616 bytes out of A and into C
    -> 559616 x 8 / 1e6 = 4.476928 s at 0.001 Gbps. Inside B: 2 x (99200 + 20480) = 239360
    bytes, free by default, 1.91488 s more at an intra-instance 0.001 Gbps.
    """
    m, old, layout, new = preempt_a_example()
    interrupted = {0: InterruptedBatch(2, 40)}
    mapping = map_devices(m, old, layout, new, B + C, 2, {0: 0}, interrupted)
    plan = plan_migration(m, old, layout, mapping, dying=A, resume={0: 0}, interrupted=interrupted)
    network = [t for t in plan.transfers if t.src is not None and t.src.instance != t.dst.instance]
    inside = [t for t in plan.transfers if t.src is not None and t.src.instance == t.dst.instance]
    assert sum(t.nbytes for t in network) == EMBED + 4 * SHARDED // 2 + 2 * COPIED + 4 * KV // 2 == 559616
    assert all(t.src_dying and t.src in A and t.dst in C for t in network)
    assert sum(t.nbytes for t in inside) == 2 * (SHARDED // 2 + KV // 2) == 239360
    assert plan.transfers[: len(network)] == tuple(t for t in plan.transfers if t.src_dying)
    assert {(t.kind, t.replica) for t in plan.transfers if t.kind == "kv"} == {("kv", 0)}
    assert transfer_time_s(plan, 0.001) == pytest.approx(4.476928)
    assert transfer_time_s(plan, 0.001, intra_gbps=0.001) == pytest.approx(4.476928 + 1.91488)


def test_plan_from_zero_reads_from_storage() -> None:
    """Starting from ZERO nothing has a holder: every unit is read from storage at load_gbps."""
    m = model("tiny")
    new = ParallelConfig(1, 2, 1, 1)
    mapping = map_devices(m, ZERO, {}, new, A, 2)
    plan = plan_migration(m, ZERO, {}, mapping)
    assert all(t.src is None for t in plan.transfers) and plan.kept_bytes == 0.0
    with pytest.raises(ValueError, match="needs load_gbps"):
        transfer_time_s(plan, 50.0)
    assert transfer_time_s(plan, 50.0, load_gbps=0.001) == pytest.approx(reload_time_s(m, new, 0.001))


def test_reload_time_by_hand() -> None:
    """Tiny dp1 tp2 pp2: the first stage's GPU holds 2 x (198400/2 + 1536) + 77824 = 279296 bytes
    (the last stage's 267520), so a reload at 0.001 Gbps takes 279296 x 8 / 1e6 = 2.234368 s."""
    assert reload_time_s(model("tiny"), ParallelConfig(1, 2, 2, 2), 0.001) == pytest.approx(2.234368)
    assert reload_time_s(model("tiny"), ZERO, 1.0) == 0.0


def test_plan_and_mapping_agree_on_kept_bytes_at_scale() -> None:
    """20B, 40 GPUs -> 36 after losing node-0, every replica interrupted: the plan keeps what the
    mapping's weights say, kept + moved is all the new layout needs, and matching moves less
    than rank order."""
    m = model("20B")
    gpus = [Gpu(f"node-{i}", j) for i in range(10) for j in range(4)]
    old = choose(m, 40, 0.4).config
    layout = dict(zip(positions(old), gpus, strict=False))
    new = choose(m, 36, 0.4).config
    interrupted = {d: InterruptedBatch(old.batch, 560) for d in range(old.dp)}
    resume = resume_order(interrupted, new.dp)
    km = map_devices(m, old, layout, new, gpus[4:], 4, resume, interrupted)
    ro = rank_order(m, old, layout, new, gpus[4:], resume, interrupted)
    km_plan = plan_migration(m, old, layout, km, gpus[:4], resume, interrupted)
    ro_plan = plan_migration(m, old, layout, ro, gpus[:4], resume, interrupted)
    assert km_plan.kept_bytes == pytest.approx(km.kept_bytes)
    assert km_plan.kept_bytes + km_plan.moved_bytes == pytest.approx(ro_plan.kept_bytes + ro_plan.moved_bytes)
    assert km_plan.moved_bytes < ro_plan.moved_bytes
    assert transfer_time_s(km_plan, 50.0) < transfer_time_s(ro_plan, 50.0)
    assert len(set(km.assignment.values())) == new.world


@pytest.mark.parametrize(
    ("slot_s", "step_s", "steps"),
    [(0.0, 0.1, 0), (-1.0, 0.1, 0), (0.05, 0.1, 0), (0.3, 0.1, 3), (0.29, 0.1, 2), (12.8, 0.1, 128)],
)
def test_steps_that_fit(slot_s: float, step_s: float, steps: int) -> None:
    """Whole steps that end inside the slot; an exact multiple counts its last step; empty slot -> 0."""
    assert steps_that_fit(slot_s, step_s) == steps


def test_steps_that_fit_needs_a_positive_step() -> None:
    """A non-positive step time is a ValueError."""
    with pytest.raises(ValueError, match="decode_step_s must be > 0"):
        steps_that_fit(1.0, 0.0)


def test_commit_rule_by_hand() -> None:
    """20B dp2 tp8 pp2 batch 4: one step is 85.208 ms x 1.1 = 93.7288 ms. A 1 s slot commits
    floor(1000/93.7288) = 10 steps of a running batch; a new batch must first pay its prefill
    ((3561.456 + 1.214) x 1.1 = 3918.937 ms): 4 s leave 81 ms, no step, so it does not start;
    4.2 s leave 281 ms, 2 steps. A long slot commits only the rest of the batch (128 - 100)."""
    m, cfg = model("20B"), ParallelConfig(2, 8, 2, 4, 1, 1)
    assert commit_steps(m, cfg, 1.0) == 10
    assert commit_steps(m, cfg, 4.0, prefilled=False) == 0
    assert commit_steps(m, cfg, 4.2, prefilled=False) == 2
    assert commit_steps(m, cfg, 1000.0, done_steps=100) == 28
    assert commit_steps(m, ZERO, 1000.0) == 0
    assert np.isclose(decode_step_ms(m, cfg) * 1.1, 93.7288)
