"""Where a configuration puts the model: GPUs, positions, layer ranges, and the bytes each holds.

A GPU is (instance, local index). A position is (dp, tp, pp) under a `ParallelConfig`; positions
are numbered in the artifact's rank order, rank r = dp*tp*pp + pp*tp + tp (tp fastest, then pp).

The byte model (FasterTransformer's GPT layout, the values the artifact's matcher counts):

    stage s of pp       holds padded layers [s*P/pp, (s+1)*P/pp), P = padded_layers (FT allocates
                        the padding layers like any other, which is why pp must divide P)
    one layer, sharded  (12h^2 + 7h) values split evenly over the tp ranks: QKV, attention output
                        and both MLP matrices with their split biases (inter size 4h)
    one layer, copied   6h values every tp rank holds whole: two LayerNorms and two output biases
    embedding           (vocab + max_seq_len) * h values on every GPU of the first stage
    LM head             vocab*h + 2h values (head and final LayerNorm) on every GPU of the last stage
    KV cache            2 * batch * tokens * h values per layer (keys and values), split over tp

Every value takes `bytes_per_value` bytes (4 for the artifact's fp32).
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.policies.spotserve.cost_model import ParallelConfig
from runtime.schema.spotserve import ModelConfig


@dataclass(frozen=True, order=True)
class Gpu:
    """One GPU: the instance (host) it is on and its index there."""

    instance: str
    index: int

    def __str__(self) -> str:
        return f"{self.instance}:{self.index}"


@dataclass(frozen=True, order=True)
class Position:
    """A place in a configuration: replica `dp`, tensor rank `tp`, pipeline stage `pp`."""

    dp: int
    tp: int
    pp: int


@dataclass(frozen=True)
class InterruptedBatch:
    """The batch an old replica stopped in: its sequences and their committed tokens (the KV length)."""

    batch: int
    tokens: int


def positions(cfg: ParallelConfig) -> list[Position]:
    """Every position of `cfg` in rank order (empty for ZERO)."""
    return [Position(d, t, p) for d in range(cfg.dp) for p in range(cfg.pp) for t in range(cfg.tp)]


def stage_layers(model: ModelConfig, pp: int, stage: int) -> range:
    """The padded layers stage `stage` of a `pp`-stage pipeline holds."""
    per = model.padded_layers // pp
    return range(stage * per, (stage + 1) * per)


def layer_sharded_bytes(model: ModelConfig) -> float:
    """Bytes of one layer's tensor-parallel-split parameters (all tp ranks together)."""
    h = model.hidden
    return float((12 * h * h + 7 * h) * model.bytes_per_value)


def layer_copied_bytes(model: ModelConfig) -> float:
    """Bytes of one layer's parameters that every tp rank holds whole."""
    return float(6 * model.hidden * model.bytes_per_value)


def embedding_bytes(model: ModelConfig) -> float:
    """Bytes of the token and position embeddings (each first-stage GPU)."""
    return float((model.vocab + model.max_seq_len) * model.hidden * model.bytes_per_value)


def head_bytes(model: ModelConfig) -> float:
    """Bytes of the final LayerNorm and LM head (each last-stage GPU)."""
    return float((model.vocab * model.hidden + 2 * model.hidden) * model.bytes_per_value)


def kv_layer_bytes(model: ModelConfig, batch: InterruptedBatch) -> float:
    """Bytes of one layer's KV cache of `batch` (all tp ranks together)."""
    return float(2 * batch.batch * batch.tokens * model.hidden * model.bytes_per_value)


def shard_bytes(model: ModelConfig, cfg: ParallelConfig, pos: Position) -> float:
    """Parameter bytes the GPU at `pos` holds under `cfg`."""
    n = len(stage_layers(model, cfg.pp, pos.pp))
    total = n * (layer_sharded_bytes(model) / cfg.tp + layer_copied_bytes(model))
    if pos.pp == 0:
        total += embedding_bytes(model)
    if pos.pp == cfg.pp - 1:
        total += head_bytes(model)
    return total
