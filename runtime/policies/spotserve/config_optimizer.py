"""SpotServe's configuration optimizer: the parallel configuration for the GPUs alive now.

The search space is the artifact's (`scheduler/parallel/solver.py`): tp a profiled power of two
up to min(max_tp, gpus); pp from ceil(min_world_size/tp) upward while tp*pp <= gpus and pp
divides padded_layers (min_world_size is the memory stand-in: fewer GPUs do not hold the model);
batch a power of two up to max_batch; m1, m2 powers of two up to batch; dp = gpus // (tp*pp).
The rule is the paper's: among the configurations whose throughput meets the required rate,
the one with the lowest batch latency; if none does, the one with the highest throughput. Like
the artifact, the choice ignores the previous configuration and the cost of migrating to it.
Latency and throughput come from `cost_model` (a GPipe pipeline model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from runtime.policies.spotserve.cost_model import ZERO, ParallelConfig, batch_latency_s, throughput_rps
from runtime.schema.spotserve import ModelConfig


@dataclass(frozen=True)
class Choice:
    """The configuration the controller moves to, with what the model predicts for it.

    | field          | applied to        | meaning                                                |
    | -------------- | ----------------- | ------------------------------------------------------ |
    | config         | replicas, mapper  | the parallel configuration; ZERO when none fits        |
    | latency_s      | decision log      | predicted seconds per batch (inf for ZERO)             |
    | throughput_rps | decision log      | predicted requests per second of all replicas          |
    | meets_target   | decision log      | throughput >= the required rate                        |
    | reason         | decision log      | why this configuration (the rule that picked it)       |
    """

    config: ParallelConfig
    latency_s: float
    throughput_rps: float
    meets_target: bool
    reason: str


def powers_of_two(limit: int) -> list[int]:
    """1, 2, 4, ... up to `limit` (empty when limit < 1)."""
    out, p = [], 1
    while p <= limit:
        out.append(p)
        p *= 2
    return out


def enumerate_configs(model: ModelConfig, gpus: int) -> list[ParallelConfig]:
    """Every configuration the optimizer considers for `gpus` GPUs (tp, pp, batch, m1, m2 order)."""
    configs: list[ParallelConfig] = []
    for tp in powers_of_two(min(model.max_tp, gpus)):
        if tp not in model.profile_tps:
            continue
        pp = max(1, math.ceil(model.min_world_size / tp))
        while tp * pp <= gpus:
            if model.padded_layers % pp == 0:
                dp = gpus // (tp * pp)
                for batch in powers_of_two(model.max_batch):
                    for m1 in powers_of_two(batch):
                        for m2 in powers_of_two(batch):
                            configs.append(ParallelConfig(dp, tp, pp, batch, m1, m2))
            pp += 1
    return configs


def _choice(model: ModelConfig, cfg: ParallelConfig, required_tpt: float, reason: str) -> Choice:
    tpt = throughput_rps(model, cfg)
    return Choice(cfg, batch_latency_s(model, cfg), tpt, tpt >= required_tpt, reason)


def _none_fits(model: ModelConfig, gpus: int, required_tpt: float) -> Choice:
    return Choice(
        ZERO,
        math.inf,
        0.0,
        required_tpt <= 0,
        f"{gpus} GPUs hold no replica of {model.name} (min_world_size {model.min_world_size})",
    )


def choose(model: ModelConfig, gpus: int, required_tpt: float) -> Choice:
    """The lowest-latency configuration whose throughput >= required_tpt, else the highest-throughput one.

    Ties keep the earlier configuration in `enumerate_configs` order (after higher throughput
    for equal latency, lower latency for equal throughput). With fewer GPUs than
    min_world_size no configuration exists and the choice is ZERO.
    """
    scored = [(cfg, batch_latency_s(model, cfg), throughput_rps(model, cfg)) for cfg in enumerate_configs(model, gpus)]
    if not scored:
        return _none_fits(model, gpus, required_tpt)
    meeting = [s for s in scored if s[2] >= required_tpt]
    if meeting:
        cfg, latency, tpt = min(meeting, key=lambda s: (s[1], -s[2]))
        return Choice(cfg, latency, tpt, True, f"lowest latency with throughput >= {required_tpt:g} req/s")
    cfg, latency, tpt = max(scored, key=lambda s: (s[2], -s[1]))
    return Choice(
        cfg, latency, tpt, False, f"no configuration reaches {required_tpt:g} req/s: highest throughput ({tpt:.3g})"
    )


def fixed_shape(
    model: ModelConfig,
    gpus: int,
    tp: int,
    pp: int,
    batch: int,
    m1: int,
    m2: int,
    *,
    required_tpt: float = 0.0,
) -> Choice:
    """Rerouting's (and ablation level >= 1's) configuration: tp, pp, batch, m1, m2 frozen and
    dp = gpus // (tp*pp); ZERO when not even one pipeline fits."""
    dp = gpus // (tp * pp)
    if dp == 0:
        return Choice(ZERO, math.inf, 0.0, required_tpt <= 0, f"{gpus} GPUs hold no tp{tp} x pp{pp} pipeline")
    return _choice(model, ParallelConfig(dp, tp, pp, batch, m1, m2), required_tpt, f"fixed shape tp{tp} x pp{pp}")
