"""SpotServe's migration planner: what state moves from which GPU to which, how long that takes,
and how many decode steps a replica can commit before it has to stop.

State is cut into units: per padded layer, the tensor-split parameters in g equal slices of the
hidden dimension (g = lcm(tp_old, tp_new), so every old and new shard is a whole number of
slices), the per-layer parameters every tp rank holds whole, the embedding, the LM head, and per
old replica with an interrupted batch the KV cache of each layer in the same g slices (see
`layout` for the bytes). A GPU needs the units of its new position; those it already holds stay.
Every other unit comes from one old holder (a GPU that holds it under the old configuration,
dying or not: a dying instance still runs during the grace period), chosen as

  1. a holder on the destination's own instance, if any (no network), else
  2. the holder whose instance has sent and received the fewest bytes so far (spreads the
     load over the instance links), ties in rank order.

Units with no old holder (a start from the ZERO configuration, or state whose holders left
`old_layout` without notice) are read from storage. Transfers of
the same kind, slice, source and destination over consecutive layers are merged into one, and
transfers from dying GPUs are listed first: they must finish before the instance disappears.

Transfer time (`transfer_time_s`): every byte crossing between instances is charged to both
endpoints' instance links (sent plus received, the artifact's count), and the network phase
takes max over instances of those bytes / network bandwidth. Transfers inside one instance do
not use the network; they are free unless `intra_gbps` is given, in which case each instance's
internal bytes take bytes / intra_gbps, added after the network phase (the artifact likewise
adds its two maxima). Storage reads are charged per destination GPU at `load_gbps`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from runtime.policies.spotserve.cost_model import ParallelConfig, decode_step_ms, embed_ms, prefill_ms
from runtime.policies.spotserve.device_mapper import DeviceMapping
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
    shard_bytes,
    stage_layers,
)
from runtime.schema.spotserve import ModelConfig

KINDS = ("embedding", "weights", "copied", "kv", "lm_head")


@dataclass(frozen=True)
class Transfer:
    """One piece of state moving to a GPU.

    | field     | meaning                                                                    |
    | --------- | -------------------------------------------------------------------------- |
    | kind      | weights (tp-split layer parameters), copied (per-layer parameters every    |
    |           | tp rank holds), kv (an interrupted batch's cache), embedding, lm_head      |
    | layers    | padded layers [first, last + 1); (0, 0) for embedding and lm_head          |
    | shard     | (k, g): the k-th of g equal slices of the hidden dimension; (0, 1) = whole |
    | replica   | kv: the old replica whose batch it is; None otherwise                      |
    | src       | sending GPU; None: read from storage                                       |
    | dst       | receiving GPU                                                              |
    | nbytes    | bytes moved                                                                |
    | src_dying | the source's instance goes away after the grace period: send it first      |
    """

    kind: str
    layers: tuple[int, int]
    shard: tuple[int, int]
    replica: int | None
    src: Gpu | None
    dst: Gpu
    nbytes: float
    src_dying: bool


@dataclass(frozen=True)
class MigrationPlan:
    """Everything that moves when the fleet goes from `old` to `new` under `mapping`.

    | field      | applied to    | meaning                                             |
    | ---------- | ------------- | --------------------------------------------------- |
    | old, new   | decision log  | the two configurations                              |
    | mapping    | replicas      | the new layout (position -> GPU)                    |
    | transfers  | daemons       | what each GPU sends/receives, dying sources first   |
    | kept_bytes | decision log  | state that needs no move                            |
    | dying      | daemons       | old GPUs whose instance leaves after the grace      |
    """

    old: ParallelConfig
    new: ParallelConfig
    mapping: DeviceMapping
    transfers: tuple[Transfer, ...]
    kept_bytes: float
    dying: frozenset[Gpu] = field(default_factory=frozenset)

    @property
    def moved_bytes(self) -> float:
        return sum(t.nbytes for t in self.transfers)


# A unit of state: (kind, layer or -1, slice k, replica or -1).
_Unit = tuple[str, int, int, int]


def _holdings(
    model: ModelConfig,
    cfg: ParallelConfig,
    pos: Position,
    grain: int,
    kv_replica: int | None,
) -> Iterable[_Unit]:
    """The units the GPU at `pos` holds (or needs) under `cfg`; KV of `kv_replica` if given."""
    per = grain // cfg.tp
    slices = range(pos.tp * per, (pos.tp + 1) * per)
    if pos.pp == 0:
        yield ("embedding", -1, 0, -1)
    for layer in stage_layers(model, cfg.pp, pos.pp):
        yield ("copied", layer, 0, -1)
        for k in slices:
            yield ("weights", layer, k, -1)
            if kv_replica is not None:
                yield ("kv", layer, k, kv_replica)
    if pos.pp == cfg.pp - 1:
        yield ("lm_head", -1, 0, -1)


def _unit_bytes(model: ModelConfig, unit: _Unit, grain: int, interrupted: Mapping[int, InterruptedBatch]) -> float:
    kind = unit[0]
    if kind == "embedding":
        return embedding_bytes(model)
    if kind == "lm_head":
        return head_bytes(model)
    if kind == "copied":
        return layer_copied_bytes(model)
    if kind == "weights":
        return layer_sharded_bytes(model) / grain
    return kv_layer_bytes(model, interrupted[unit[3]]) / grain


def plan_migration(
    model: ModelConfig,
    old_cfg: ParallelConfig,
    old_layout: Mapping[Position, Gpu],
    mapping: DeviceMapping,
    dying: Collection[Gpu] = (),
    resume: Mapping[int, int] | None = None,
    interrupted: Mapping[int, InterruptedBatch] | None = None,
) -> MigrationPlan:
    """The transfers that turn `old_layout` (under old_cfg) into `mapping`.

    dying: old GPUs whose instance is being preempted (they can still send). resume: new dp ->
    old replica whose interrupted batch it continues; interrupted: old replica -> its batch.
    """
    new_cfg = mapping.config
    interrupted = interrupted or {}
    resume = {j: r for j, r in (resume or {}).items() if r in interrupted}
    dying_set = frozenset(dying)
    if new_cfg.is_zero:
        return MigrationPlan(old_cfg, new_cfg, mapping, (), 0.0, dying_set)
    grain = new_cfg.tp if old_cfg.is_zero else math.lcm(old_cfg.tp, new_cfg.tp)
    holders: dict[_Unit, list[Gpu]] = {}
    held: dict[Gpu, set[_Unit]] = {}
    if not old_cfg.is_zero:
        for pos in positions(old_cfg):
            gpu = old_layout.get(pos)
            if gpu is None:
                continue
            kv = pos.dp if pos.dp in interrupted else None
            units = set(_holdings(model, old_cfg, pos, grain, kv))
            held[gpu] = units
            for unit in units:
                holders.setdefault(unit, []).append(gpu)

    load: dict[str, float] = {}  # bytes sent + received over each instance's link so far
    moves: dict[tuple[str, int, int, Gpu | None, Gpu], list[int]] = {}
    kept = 0.0
    for pos, dst in mapping.assignment.items():
        mine = held.get(dst, set())
        for unit in _holdings(model, new_cfg, pos, grain, resume.get(pos.dp)):
            nbytes = _unit_bytes(model, unit, grain, interrupted)
            if unit in mine:
                kept += nbytes
                continue
            src = _pick_source(holders.get(unit, []), dst, load)
            if src is not None and src.instance != dst.instance:
                load[src.instance] = load.get(src.instance, 0.0) + nbytes
                load[dst.instance] = load.get(dst.instance, 0.0) + nbytes
            moves.setdefault((unit[0], unit[2], unit[3], src, dst), []).append(unit[1])
    transfers = [
        Transfer(
            kind=kind,
            layers=(lo, hi) if lo >= 0 else (0, 0),
            shard=(k, grain) if kind in ("weights", "kv") else (0, 1),
            replica=replica if replica >= 0 else None,
            src=src,
            dst=dst,
            nbytes=(hi - lo if lo >= 0 else 1) * _unit_bytes(model, (kind, lo, k, replica), grain, interrupted),
            src_dying=src in dying_set,
        )
        for (kind, k, replica, src, dst), layers in moves.items()
        for lo, hi in _runs(layers)
    ]
    transfers.sort(key=lambda t: (not t.src_dying, t.layers, KINDS.index(t.kind), t.shard, t.dst, str(t.src)))
    return MigrationPlan(old_cfg, new_cfg, mapping, tuple(transfers), kept, dying_set)


def _pick_source(candidates: list[Gpu], dst: Gpu, load: Mapping[str, float]) -> Gpu | None:
    if not candidates:
        return None
    local = [g for g in candidates if g.instance == dst.instance]
    if local:
        return local[0]
    return min(candidates, key=lambda g: load.get(g.instance, 0.0))


def _runs(layers: list[int]) -> list[tuple[int, int]]:
    """[lo, hi) runs of consecutive layer numbers; one (-1, 0) run for layer-less units."""
    out: list[tuple[int, int]] = []
    for layer in sorted(layers):
        if out and out[-1][1] == layer and layer >= 0:
            out[-1] = (out[-1][0], layer + 1)
        else:
            out.append((layer, layer + 1))
    return out


def transfer_time_s(
    plan: MigrationPlan,
    network_gbps: float,
    *,
    intra_gbps: float | None = None,
    load_gbps: float | None = None,
) -> float:
    """Seconds the plan's transfers take (see the module docstring for the model).

    network_gbps: each instance's link; intra_gbps: inside an instance (None: free);
    load_gbps: storage reads per GPU (needed only when the plan reads from storage).
    """
    if network_gbps <= 0:
        raise ValueError(f"network_gbps must be > 0 (got {network_gbps})")
    link: dict[str, float] = {}
    inside: dict[str, float] = {}
    storage: dict[Gpu, float] = {}
    for t in plan.transfers:
        if t.src is None:
            storage[t.dst] = storage.get(t.dst, 0.0) + t.nbytes
        elif t.src.instance == t.dst.instance:
            inside[t.dst.instance] = inside.get(t.dst.instance, 0.0) + t.nbytes
        else:
            link[t.src.instance] = link.get(t.src.instance, 0.0) + t.nbytes
            link[t.dst.instance] = link.get(t.dst.instance, 0.0) + t.nbytes
    seconds = max(link.values(), default=0.0) * 8 / (network_gbps * 1e9)
    if intra_gbps is not None and inside:
        seconds += max(inside.values()) * 8 / (intra_gbps * 1e9)
    if storage:
        if load_gbps is None or load_gbps <= 0:
            raise ValueError("the plan reads from storage: transfer_time_s needs load_gbps > 0")
        seconds += max(storage.values()) * 8 / (load_gbps * 1e9)
    return seconds


def reload_time_s(model: ModelConfig, cfg: ParallelConfig, load_gbps: float) -> float:
    """Seconds to reload every GPU's parameter shard from storage (reparallelization's restart).

    Every GPU reads its own shard at `load_gbps` in parallel, so the largest shard (a first or
    last stage, which adds the embedding or LM head) sets the time. 0 for ZERO.
    """
    if load_gbps <= 0:
        raise ValueError(f"load_gbps must be > 0 (got {load_gbps})")
    if cfg.is_zero:
        return 0.0
    largest = max(shard_bytes(model, cfg, Position(0, 0, p)) for p in range(cfg.pp))
    return largest * 8 / (load_gbps * 1e9)


def steps_that_fit(slot_s: float, decode_step_s: float) -> int:
    """Whole decode steps that finish within `slot_s` seconds (0 when the slot is empty)."""
    if decode_step_s <= 0:
        raise ValueError(f"decode_step_s must be > 0 (got {decode_step_s})")
    if slot_s <= 0:
        return 0
    # A slot that is an exact multiple of the step must count that last step despite rounding.
    return math.floor(slot_s / decode_step_s + 1e-9)


def commit_steps(
    model: ModelConfig,
    cfg: ParallelConfig,
    slot_s: float,
    done_steps: int = 0,
    prefilled: bool = True,
) -> int:
    """Decode steps a replica commits before it must stop, with `slot_s` seconds left until
    (deadline - migration time): the just-in-time interruption rule.

    A batch that has not run its prefill yet pays it first (with the embedding cost) and is not
    started at all (0) unless at least one step fits after it. Every time is multiplied by
    final_fix_factor, the conservative side of the artifact's estimator (it also dropped one
    more step; the factor is our only margin). At most output_len - done_steps.
    """
    remaining = max(0, model.output_len - done_steps)
    if cfg.is_zero or remaining == 0:
        return 0
    factor = model.final_fix_factor
    step_s = decode_step_ms(model, cfg) * factor / 1000.0
    if not prefilled:
        slot_s -= (prefill_ms(model, cfg) + 2 * embed_ms(model, cfg.batch)) * factor / 1000.0
    return min(remaining, steps_that_fit(slot_s, step_s))
