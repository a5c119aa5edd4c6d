"""SpotServe's device mapper: which GPU takes which position of the next configuration.

It maximises the state that stays in place: a maximum-weight bipartite matching of the
surviving GPUs (left) to the new positions (right), solved with scipy's
`linear_sum_assignment(..., maximize=True)` (the Kuhn-Munkres problem; the artifact hand-wrote
its solver). The weight of (old GPU at old position o, new position n) is the bytes the GPU
already holds that n needs (see `layout` for the byte model):

    layer_overlap(o, n) * (copied_per_layer + shard_overlap(o, n) * sharded_per_layer)
  + embedding              if o and n are both first stages
  + LM head                if o and n are both last stages
  + layer_overlap * shard_overlap * kv_per_layer(r)
                           if new replica n.dp resumes old replica r = o.dp's interrupted batch

layer_overlap counts the padded layers both stages hold; shard_overlap is the overlap of the
hidden-dimension fractions [t/T, (t+1)/T) of the old and new tensor ranks. Parameters are the
same in every replica, so they match across replica ids; a KV cache only matches the new
replica that continues its batch (the caller says which, `resume`).

A tensor-parallel group stays inside one instance (the artifact's two-level "group_tp"
matching, NOTES section 4.2): with c = the largest divisor of tp_new that is <= GPUs per
instance, a slot is c consecutive tp ranks of one (dp, pp); an instance's GPUs form clusters of
c. The inner matching assigns a cluster's GPUs to a slot's ranks; its optimum is the weight of
(cluster, slot) in the outer matching. Slots left over get unused clusters in GPU order (new
instances included); only when whole clusters run out do single leftover GPUs fill positions.
`rank_order` is the ablation's mapper (level 4): position i gets the i-th GPU, no matching.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from runtime.policies.spotserve.cost_model import ParallelConfig
from runtime.policies.spotserve.layout import (
    Gpu,
    InterruptedBatch,
    Position,
    embedding_bytes,
    head_bytes,
    kv_layer_bytes,
    layer_copied_bytes,
    layer_sharded_bytes,
    positions,
)
from runtime.schema.spotserve import ModelConfig


@dataclass(frozen=True)
class DeviceMapping:
    """Which GPU holds each position of `config` (treat `assignment` as read-only).

    | field      | applied to          | meaning                                               |
    | ---------- | ------------------- | ----------------------------------------------------- |
    | config     | replicas            | the configuration the positions belong to             |
    | assignment | daemons, replicas   | position -> GPU, one entry per position               |
    | kept_bytes | decision log        | state (parameters + KV) that stays where it is         |
    | method     | decision log        | "matching" or "rank_order"                            |
    """

    config: ParallelConfig
    assignment: Mapping[Position, Gpu]
    kept_bytes: float
    method: str

    def gpu(self, pos: Position) -> Gpu:
        return self.assignment[pos]

    def position_of(self, gpu: Gpu) -> Position | None:
        """The position `gpu` takes, or None when it stays idle."""
        for pos, g in self.assignment.items():
            if g == gpu:
                return pos
        return None


def resume_order(interrupted: Mapping[int, InterruptedBatch], new_dp: int) -> dict[int, int]:
    """new dp index -> old replica whose interrupted batch it continues (the artifact's rule).

    The batches with the most committed tokens go first (ties: lower old replica id); when
    there are more interrupted batches than new replicas, the shortest ones lose their KV cache.
    """
    order = sorted(interrupted, key=lambda r: (-interrupted[r].tokens, r))
    return dict(enumerate(order[:new_dp]))


def keep_weights(
    model: ModelConfig,
    old_cfg: ParallelConfig,
    old_positions: Sequence[Position],
    new_cfg: ParallelConfig,
    new_positions: Sequence[Position],
    resume: Mapping[int, int] | None = None,
    interrupted: Mapping[int, InterruptedBatch] | None = None,
) -> np.ndarray:
    """Bytes kept in place, [i, j] for the GPU at old_positions[i] taking new_positions[j]."""
    o = np.array([(p.dp, p.tp, p.pp) for p in old_positions], dtype=float).reshape(-1, 3)
    n = np.array([(p.dp, p.tp, p.pp) for p in new_positions], dtype=float).reshape(-1, 3)
    if o.size == 0 or n.size == 0 or old_cfg.is_zero:
        return np.zeros((len(old_positions), len(new_positions)))
    per_old, per_new = model.padded_layers / old_cfg.pp, model.padded_layers / new_cfg.pp
    lo_o, lo_n = o[:, 2] * per_old, n[:, 2] * per_new
    layer_ov = np.clip(
        np.minimum((lo_o + per_old)[:, None], (lo_n + per_new)[None, :]) - np.maximum(lo_o[:, None], lo_n[None, :]),
        0.0,
        None,
    )
    a_o, a_n = o[:, 1] / old_cfg.tp, n[:, 1] / new_cfg.tp
    shard_ov = np.clip(
        np.minimum((a_o + 1 / old_cfg.tp)[:, None], (a_n + 1 / new_cfg.tp)[None, :])
        - np.maximum(a_o[:, None], a_n[None, :]),
        0.0,
        None,
    )
    w = layer_ov * (layer_copied_bytes(model) + shard_ov * layer_sharded_bytes(model))
    w += embedding_bytes(model) * ((o[:, 2] == 0)[:, None] & (n[:, 2] == 0)[None, :])
    w += head_bytes(model) * ((o[:, 2] == old_cfg.pp - 1)[:, None] & (n[:, 2] == new_cfg.pp - 1)[None, :])
    for new_dp, old_dp in (resume or {}).items():
        batch = (interrupted or {}).get(old_dp)
        if batch is None:
            continue
        same = (o[:, 0] == old_dp)[:, None] & (n[:, 0] == new_dp)[None, :]
        w += same * layer_ov * shard_ov * kv_layer_bytes(model, batch)
    return w


def _check_inputs(new_cfg: ParallelConfig, gpus: Sequence[Gpu]) -> None:
    if len(set(gpus)) != len(gpus):
        raise ValueError("device mapper: a GPU is listed twice")
    if len(gpus) < new_cfg.world:
        raise ValueError(f"device mapper: {new_cfg} needs {new_cfg.world} GPUs, {len(gpus)} are alive")


def _kept(
    weights: np.ndarray, row_of: Mapping[Gpu, int], col_of: Mapping[Position, int], assignment: Mapping[Position, Gpu]
) -> float:
    return float(sum(weights[row_of[g], col_of[p]] for p, g in assignment.items() if g in row_of))


def _group_size(tp: int, gpus_per_instance: int) -> int:
    return max(d for d in range(1, min(tp, gpus_per_instance) + 1) if tp % d == 0)


def map_devices(
    model: ModelConfig,
    old_cfg: ParallelConfig,
    old_layout: Mapping[Position, Gpu],
    new_cfg: ParallelConfig,
    gpus: Sequence[Gpu],
    gpus_per_instance: int,
    resume: Mapping[int, int] | None = None,
    interrupted: Mapping[int, InterruptedBatch] | None = None,
) -> DeviceMapping:
    """Maximum-weight two-level matching of surviving GPUs to `new_cfg`'s positions.

    old_layout: position -> GPU under old_cfg (dying GPUs included or not: only those in `gpus`
    count). gpus: every GPU usable after the change, survivors and newcomers, in rank order.
    resume / interrupted: see `resume_order` and `InterruptedBatch`; without them no KV counts.
    """
    # Imported here: scipy.optimize costs 0.2 s to import, which every command that only
    # checks a SpotServe config (a DiffServe run included) would otherwise pay.
    from scipy.optimize import linear_sum_assignment

    _check_inputs(new_cfg, gpus)
    if new_cfg.is_zero:
        return DeviceMapping(new_cfg, {}, 0.0, "matching")
    old_at = {g: p for p, g in old_layout.items()}
    survivors = [g for g in gpus if g in old_at]
    new_positions = positions(new_cfg)
    weights = keep_weights(model, old_cfg, [old_at[g] for g in survivors], new_cfg, new_positions, resume, interrupted)
    row_of = {g: i for i, g in enumerate(survivors)}
    col_of = {p: j for j, p in enumerate(new_positions)}

    c = _group_size(new_cfg.tp, gpus_per_instance)
    by_instance: dict[str, list[Gpu]] = {}
    for g in gpus:
        by_instance.setdefault(g.instance, []).append(g)
    clusters = [grp[i : i + c] for grp in by_instance.values() for i in range(0, len(grp) - c + 1, c)]
    in_cluster = {g for cl in clusters for g in cl}
    leftovers = [g for g in gpus if g not in in_cluster]
    slots = [
        [Position(d, b * c + k, p) for k in range(c)]
        for d in range(new_cfg.dp)
        for p in range(new_cfg.pp)
        for b in range(new_cfg.tp // c)
    ]

    def inner(cluster: list[Gpu], slot: list[Position]) -> tuple[float, list[int]]:
        sub = np.zeros((c, c))
        for i, g in enumerate(cluster):
            if g in row_of:
                sub[i] = weights[row_of[g], [col_of[p] for p in slot]]
        rows, cols = linear_sum_assignment(sub, maximize=True)
        perm = [0] * c
        for r, k in zip(rows, cols, strict=True):
            perm[int(r)] = int(k)
        return float(sub[rows, cols].sum()), perm

    assignment: dict[Position, Gpu] = {}
    used_clusters: set[int] = set()
    used_slots: set[int] = set()
    live = [i for i, cl in enumerate(clusters) if any(g in row_of for g in cl)]
    if live:
        value = np.zeros((len(live), len(slots)))
        perms: dict[tuple[int, int], list[int]] = {}
        for a, ci in enumerate(live):
            for s, slot in enumerate(slots):
                value[a, s], perms[a, s] = inner(clusters[ci], slot)
        rows, cols = linear_sum_assignment(value, maximize=True)
        for a, s in zip(rows.tolist(), cols.tolist(), strict=True):
            ci = live[a]
            for i, g in enumerate(clusters[ci]):
                assignment[slots[s][perms[a, s][i]]] = g
            used_clusters.add(ci)
            used_slots.add(s)
    spare = [clusters[i] for i in range(len(clusters)) if i not in used_clusters]
    free = [s for s in range(len(slots)) if s not in used_slots]
    for s, cluster in zip(free, spare, strict=False):
        assignment.update(zip(slots[s], cluster, strict=True))
    # Only when the instances cannot give whole clusters does a tp group span instances.
    unfilled = [p for p in new_positions if p not in assignment]
    assignment.update(zip(unfilled, leftovers + [g for cl in spare[len(free) :] for g in cl], strict=False))
    if len(assignment) != new_cfg.world:
        raise ValueError(f"device mapper: cannot place {new_cfg} on the alive GPUs")
    ordered = {p: assignment[p] for p in new_positions}
    return DeviceMapping(new_cfg, ordered, _kept(weights, row_of, col_of, ordered), "matching")


def rank_order(
    model: ModelConfig,
    old_cfg: ParallelConfig,
    old_layout: Mapping[Position, Gpu],
    new_cfg: ParallelConfig,
    gpus: Sequence[Gpu],
    resume: Mapping[int, int] | None = None,
    interrupted: Mapping[int, InterruptedBatch] | None = None,
) -> DeviceMapping:
    """Ablation level 4's mapper: position i (rank order) takes gpus[i]; no matching."""
    _check_inputs(new_cfg, gpus)
    new_positions = positions(new_cfg)
    old_at = {g: p for p, g in old_layout.items()}
    survivors = [g for g in gpus if g in old_at]
    weights = keep_weights(model, old_cfg, [old_at[g] for g in survivors], new_cfg, new_positions, resume, interrupted)
    assignment = dict(zip(new_positions, gpus, strict=False))
    row_of = {g: i for i, g in enumerate(survivors)}
    col_of = {p: j for j, p in enumerate(new_positions)}
    return DeviceMapping(new_cfg, assignment, _kept(weights, row_of, col_of, assignment), "rank_order")
