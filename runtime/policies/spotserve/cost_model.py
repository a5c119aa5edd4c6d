"""Latency and throughput of a parallel configuration, from a model's per-layer profile.

A configuration runs dp replicas; each replica is a pipeline of pp stages, each stage a group of
tp GPUs (tensor parallelism), and serves one batch of `batch` requests at a time: a prefill of
the prompts, then `output_len` decode steps (request-level batching, as in the artifact).

The pipeline model (standard GPipe, which is ours, not the artifact's):

    f          = ceil(layers / pp)              real layers of the busiest stage
    stage(b)   = f * t_layer(tp, b) + c*[pp>1]  one micro-batch of b sequences through one stage,
                                                c the pipeline-boundary transfer of that phase
    phase(M)   = (pp + M - 1) * stage(batch/M)  M micro-batches through pp stages (fill + drain)
    prefill    = phase(M1) with t_layer = init, c = pp_init_comm
    decode     = phase(M2) with t_layer = incr, c = pp_incr_comm       (one step)
    latency    = (prefill + output_len * decode + 2 * embed(batch)) * final_fix_factor
    throughput = dp * batch / latency

A batch that M does not divide runs as one micro-batch (M = 1), as the artifact's FasterTransformer
does. `t_layer(tp, b)` comes from the profile's table for that tp; a batch between two profiled
sizes is interpolated linearly.

`model.latency_model` chooses the footing:

    gpipe     (the default) as above: both phases are charged the same GPipe way. A pipeline of
              M micro-batches takes (pp + M - 1) stage times, so more micro-batches only pay
              when the stages are long enough to overlap.
    artifact  the artifact's solver (`solver.py::get_approx_latency`), term for term:
              prefill = f * t_init(tp, batch/M1) * (pp + M1 - 1) / M1 + c_init * (pp - 1) / M1
              decode  = f * t_incr(tp, batch/M2) * (pp + M2 - 1)      + c_incr * (pp - 1) / M2
              The prefill is divided by M1 where the decode step is not, so more prefill
              micro-batches look nearly free, which favours deep pipelines of small
              micro-batches (the artifact's tp 8 x pp 2 for 20B on 40 GPUs, where gpipe picks
              dp 3 x tp 4 x pp 3); the boundary transfers count pp - 1 times, not once per stage
              time. Use it to compare with the paper on the paper's footing;
              tests/test_conformance.py checks it against the artifact's optimizer.

Like the artifact we count the embedding/LM-head cost twice per batch (`2 * embed`) and charge
f = ceil(layers/pp) real layers per stage, although FasterTransformer's stages hold
padded_layers/pp layers. The profile's prefill was measured with 512-token prompts; `input_len`
does not scale it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from runtime.exceptions import ConfigError
from runtime.schema.spotserve import ModelConfig


@dataclass(frozen=True)
class ParallelConfig:
    """A parallel configuration of the whole fleet (the artifact's strategy tuple).

    | field | meaning                                                        |
    | ----- | -------------------------------------------------------------- |
    | dp    | replicas (data parallelism); 0 in `ZERO`: no replica runs       |
    | tp    | tensor-parallel degree: GPUs that split each layer              |
    | pp    | pipeline degree: stages, each a contiguous range of layers     |
    | batch | requests a replica serves together                             |
    | m1    | micro-batches of the prefill (prompt) phase                    |
    | m2    | micro-batches of each decode step                              |
    """

    dp: int
    tp: int
    pp: int
    batch: int
    m1: int = 1
    m2: int = 1

    ZERO: ClassVar[ParallelConfig]

    @property
    def world(self) -> int:
        """GPUs the configuration uses: dp * tp * pp."""
        return self.dp * self.tp * self.pp

    @property
    def is_zero(self) -> bool:
        return self.dp == 0

    def __str__(self) -> str:
        return f"(dp={self.dp} tp={self.tp} pp={self.pp} batch={self.batch} m1={self.m1} m2={self.m2})"


ParallelConfig.ZERO = ParallelConfig(0, 0, 0, 0, 0, 0)
ZERO = ParallelConfig.ZERO


def check_profile(model: ModelConfig) -> None:
    """ConfigError naming the `model.*` key when the profile tables do not fit together."""
    batches, tps = list(model.profile_batches), list(model.profile_tps)
    if not batches or batches != sorted(set(batches)) or batches[0] < 1:
        raise ConfigError(f"model.profile_batches: must be distinct batch sizes >= 1, ascending (got {batches})")
    if not tps or len(set(tps)) != len(tps) or min(tps) < 1:
        raise ConfigError(f"model.profile_tps: must be distinct tensor-parallel degrees >= 1 (got {tps})")
    for key in ("init_ms", "incr_ms"):
        table = getattr(model, key)
        if len(table) != len(tps) or any(len(row) != len(batches) for row in table):
            raise ConfigError(
                f"model.{key}: must be {len(tps)} rows (one per model.profile_tps) of {len(batches)} values "
                "(one per model.profile_batches)"
            )
        if any(not v > 0 for row in table for v in row):
            raise ConfigError(f"model.{key}: every per-layer time must be > 0 ms")
    if len(model.embed_ms) != len(batches):
        raise ConfigError(f"model.embed_ms: must have one value per model.profile_batches ({len(batches)})")
    if model.latency_model not in LATENCY_MODELS:
        raise ConfigError(
            f"model.latency_model: unknown footing {model.latency_model!r} (allowed: {', '.join(LATENCY_MODELS)})"
        )
    if model.layers < 1 or model.padded_layers < model.layers:
        raise ConfigError(
            f"model.padded_layers: must be >= model.layers >= 1 (got {model.padded_layers}, {model.layers})"
        )


def _interpolate(xs: list[int], ys: list[float], x: float, what: str) -> float:
    if not xs[0] <= x <= xs[-1]:
        raise ValueError(f"{what}: batch {x} is outside the profiled range {xs[0]}..{xs[-1]}")
    for i in range(1, len(xs)):
        if x <= xs[i]:
            lo, hi = xs[i - 1], xs[i]
            return ys[i - 1] + (ys[i] - ys[i - 1]) * (x - lo) / (hi - lo)
    return ys[0]  # a single profiled batch size equal to x


def layer_ms(model: ModelConfig, phase: str, tp: int, batch: float) -> float:
    """Profiled ms of one layer for `batch` sequences: phase `init` (prefill) or `incr` (one step)."""
    if tp not in model.profile_tps:
        raise ValueError(f"model {model.name}: tp {tp} is not profiled (profiled: {list(model.profile_tps)})")
    table = model.init_ms if phase == "init" else model.incr_ms
    row = table[list(model.profile_tps).index(tp)]
    return _interpolate(list(model.profile_batches), list(row), batch, f"model {model.name} {phase} tp {tp}")


def embed_ms(model: ModelConfig, batch: float) -> float:
    """Profiled ms of the embedding and LM head for `batch` sequences."""
    return _interpolate(list(model.profile_batches), list(model.embed_ms), batch, f"model {model.name} embed")


def _micro_batches(batch: int, m: int) -> int:
    return m if m >= 1 and batch % m == 0 else 1


def _phase_ms(model: ModelConfig, cfg: ParallelConfig, phase: str, m: int, comm_ms: float) -> float:
    if cfg.is_zero:
        raise ValueError("the ZERO configuration runs no replica")
    micro = _micro_batches(cfg.batch, m)
    f = math.ceil(model.layers / cfg.pp)
    stage = f * layer_ms(model, phase, cfg.tp, cfg.batch / micro) + (comm_ms if cfg.pp > 1 else 0.0)
    return (cfg.pp + micro - 1) * stage


LATENCY_MODELS = ("gpipe", "artifact")


def _artifact_phase_ms(model: ModelConfig, cfg: ParallelConfig, phase: str, m: int, comm_ms: float) -> float:
    """The artifact's term for a phase, before the prefill's division by M1."""
    if cfg.is_zero:
        raise ValueError("the ZERO configuration runs no replica")
    micro = _micro_batches(cfg.batch, m)
    f = math.ceil(model.layers / cfg.pp)
    return f * layer_ms(model, phase, cfg.tp, cfg.batch / micro) * (cfg.pp + micro - 1) + comm_ms * (cfg.pp - 1) / micro


def prefill_ms(model: ModelConfig, cfg: ParallelConfig) -> float:
    """ms of the prefill of one batch (`model.latency_model`, see the module docstring)."""
    if model.latency_model == "artifact":
        micro = _micro_batches(cfg.batch, cfg.m1)
        layers = _artifact_phase_ms(model, cfg, "init", cfg.m1, 0.0) / micro
        return layers + model.pp_init_comm_ms * (cfg.pp - 1) / micro
    return _phase_ms(model, cfg, "init", cfg.m1, model.pp_init_comm_ms)


def decode_step_ms(model: ModelConfig, cfg: ParallelConfig) -> float:
    """ms of one decode step of one batch (`model.latency_model`, see the module docstring)."""
    if model.latency_model == "artifact":
        return _artifact_phase_ms(model, cfg, "incr", cfg.m2, model.pp_incr_comm_ms)
    return _phase_ms(model, cfg, "incr", cfg.m2, model.pp_incr_comm_ms)


def batch_latency_s(model: ModelConfig, cfg: ParallelConfig) -> float:
    """Seconds one replica takes for a whole batch; infinite for ZERO (no replica)."""
    if cfg.is_zero:
        return math.inf
    ms = prefill_ms(model, cfg) + model.output_len * decode_step_ms(model, cfg) + 2 * embed_ms(model, cfg.batch)
    return ms * model.final_fix_factor / 1000.0


def throughput_rps(model: ModelConfig, cfg: ParallelConfig) -> float:
    """Requests per second of the whole configuration: dp * batch / latency (0 for ZERO)."""
    if cfg.is_zero:
        return 0.0
    return cfg.dp * cfg.batch / batch_latency_s(model, cfg)
