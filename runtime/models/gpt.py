"""A GPT-style decoder in plain torch, sharded the way SpotServe's replicas run it: Megatron-style
tensor parallelism inside a pipeline stage and pipeline parallelism across stages.

One `GptShard` is what one worker process holds: the layers of its stage, and of each layer its
tp rank's share of the attention heads and of the MLP columns (column-parallel QKV and fc1,
row-parallel out-projection and fc2, an all-reduce after each row-parallel product). The first
stage holds the embeddings, the last the final norm and its share of the LM head (vocabulary-
parallel, logits all-gathered). Weights are random and seeded per block of the finest split
(one head; one MLP column block per head), so a shard holds exactly the values the unsharded
model has at those places, whatever (tp, pp): greedy decoding gives the same tokens on every
configuration, which is what the tests check. Each worker allocates only its own shard.

Communication goes through a `Comm` (torch.distributed on gloo or NCCL; `Local` for one
process), so the model code never names a backend. Each request has a KV cache per layer of
the shard (its heads only); `kv_blocks` / `load_kv` move it between configurations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F  # noqa: N812

from runtime.exceptions import ConfigError


@dataclass(frozen=True)
class GptShape:
    layers: int
    hidden: int
    heads: int
    vocab: int
    max_seq_len: int
    ffn_mult: int = 4

    @classmethod
    def of(cls, model: Any) -> GptShape:
        """The shape of a `model` config (runtime.schema.ModelConfig)."""
        return cls(model.layers, model.hidden, model.heads, model.vocab, model.max_seq_len)

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def ffn(self) -> int:
        return self.ffn_mult * self.hidden

    def check(self, tp: int, pp: int) -> None:
        """Refuse a parallel configuration the shape cannot be split by (one line naming the key)."""
        if self.hidden % self.heads:
            raise ConfigError(f"model.heads: {self.heads} does not divide model.hidden {self.hidden}")
        if self.heads % tp:
            raise ConfigError(f"model.heads: {self.heads} heads cannot be split over tensor parallelism {tp}")
        if self.vocab % VOCAB_BLOCKS or VOCAB_BLOCKS % tp:
            raise ConfigError(
                f"model.vocab: {self.vocab} must be a multiple of {VOCAB_BLOCKS} and tensor parallelism {tp} must "
                f"divide {VOCAB_BLOCKS} (the LM head is split in {VOCAB_BLOCKS} blocks)"
            )
        if self.layers % pp:
            raise ConfigError(f"model.layers: {self.layers} layers cannot be split over {pp} pipeline stages")


@dataclass(frozen=True)
class Place:
    """Where a shard sits in its replica: its tp rank of `tp`, its stage of `pp`."""

    tp: int = 1
    pp: int = 1
    tp_rank: int = 0
    stage: int = 0

    @property
    def first(self) -> bool:
        return self.stage == 0

    @property
    def last(self) -> bool:
        return self.stage == self.pp - 1


class Comm:
    """What a shard needs from its replica's communication group."""

    def all_reduce_tp(self, x: Tensor) -> Tensor:
        return x

    def all_gather_tp(self, x: Tensor) -> Tensor:
        return x

    def send_next(self, x: Tensor) -> None:
        raise NotImplementedError

    def recv_prev(self, like: Tensor) -> Tensor:
        raise NotImplementedError

    def broadcast_tokens(self, tokens: Tensor) -> Tensor:
        return tokens


Local = Comm  # one process: tp = pp = 1, nothing to exchange


class DistComm(Comm):
    """torch.distributed: global rank = stage * tp + tp_rank; one tp group per stage; stage s's
    tp rank r sends its (replicated) activations to stage s+1's rank r; the last stage's rank 0
    broadcasts the chosen tokens to every rank."""

    def __init__(self, place: Place) -> None:
        import torch.distributed as dist

        self.dist, self.place = dist, place
        self.groups = [dist.new_group([s * place.tp + r for r in range(place.tp)]) for s in range(place.pp)]
        self.group = self.groups[place.stage]
        self.rank = place.stage * place.tp + place.tp_rank

    def all_reduce_tp(self, x: Tensor) -> Tensor:
        if self.place.tp > 1:
            self.dist.all_reduce(x, group=self.group)
        return x

    def all_gather_tp(self, x: Tensor) -> Tensor:
        if self.place.tp == 1:
            return x
        parts = [torch.empty_like(x) for _ in range(self.place.tp)]
        self.dist.all_gather(parts, x.contiguous(), group=self.group)
        return torch.cat(parts, dim=-1)

    def send_next(self, x: Tensor) -> None:
        self.dist.send(x.contiguous(), self.rank + self.place.tp)

    def recv_prev(self, like: Tensor) -> Tensor:
        out = torch.empty_like(like)
        self.dist.recv(out, self.rank - self.place.tp)
        return out

    def broadcast_tokens(self, tokens: Tensor) -> Tensor:
        self.dist.broadcast(tokens, (self.place.pp - 1) * self.place.tp)
        return tokens


def _block(seed: int, *key: int, shape: tuple[int, ...], dtype: torch.dtype, scale: float) -> Tensor:
    """One seeded block of a weight: the same values whichever shard asks for it."""
    gen = torch.Generator().manual_seed(hash((seed, *key)) & 0x7FFF_FFFF_FFFF)
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype)


VOCAB_BLOCKS = 64  # the LM head's columns in this many seeded blocks: any tp dividing 64 takes whole blocks

# Weight ids in the seed key.
QKV, OUT, FC1, FC2, EMB, POS, HEAD = range(7)


class GptShard:
    def __init__(self, shape: GptShape, place: Place, seed: int, dtype: torch.dtype, device: str = "cpu") -> None:
        shape.check(place.tp, place.pp)
        self.shape, self.place, self.dtype, self.device = shape, place, dtype, device
        h, d = shape.hidden, shape.head_dim
        self.local_heads = shape.heads // place.tp
        heads = range(place.tp_rank * self.local_heads, (place.tp_rank + 1) * self.local_heads)
        per_stage = shape.layers // place.pp
        self.layer_ids = list(range(place.stage * per_stage, (place.stage + 1) * per_stage))
        col = shape.ffn // shape.heads  # MLP columns per block (one block per head)
        std, out_std = 0.02 * math.sqrt(64 / h), 0.02 / math.sqrt(2 * shape.layers)

        def blocks(layer: int, wid: int, rows: int, cols: int, scale: float, dim: int) -> Tensor:
            parts = [_block(seed, layer, wid, k, shape=(rows, cols), dtype=dtype, scale=scale) for k in heads]
            return torch.cat(parts, dim=dim).to(device)

        self.layers: list[dict[str, Tensor]] = []
        for layer in self.layer_ids:
            self.layers.append(
                {
                    # per head: its q, k and v columns; (hidden, 3 * local_heads * d)
                    "qkv": blocks(layer, QKV, h, 3 * d, std, 1),
                    "out": blocks(layer, OUT, d, h, out_std, 0),  # row-parallel: (local_heads * d, hidden)
                    "fc1": blocks(layer, FC1, h, col, std, 1),
                    "fc2": blocks(layer, FC2, col, h, out_std, 0),
                }
            )
        if place.first:
            self.emb = _block(seed, EMB, shape=(shape.vocab, h), dtype=dtype, scale=std).to(device)
            self.pos = _block(seed, POS, shape=(shape.max_seq_len, h), dtype=dtype, scale=std).to(device)
        if place.last:
            per_rank, width = VOCAB_BLOCKS // place.tp, shape.vocab // VOCAB_BLOCKS
            ids = range(place.tp_rank * per_rank, (place.tp_rank + 1) * per_rank)
            parts = [_block(seed, HEAD, k, shape=(h, width), dtype=dtype, scale=std) for k in ids]
            self.head = torch.cat(parts, dim=1).to(device)

    # ------------------------------------------------------------------ one stage
    def _layer(self, w: dict[str, Tensor], x: Tensor, cache: dict[str, Tensor], start: int, comm: Comm) -> Tensor:
        b, t, _ = x.shape
        d, n = self.shape.head_dim, self.local_heads
        qkv = F.layer_norm(x, (self.shape.hidden,)) @ w["qkv"]
        qkv = qkv.view(b, t, n, 3, d).permute(3, 0, 2, 1, 4)  # (3, b, n, t, d)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if start:
            k = torch.cat([cache["k"], k], dim=2)
            v = torch.cat([cache["v"], v], dim=2)
        cache["k"], cache["v"] = k, v
        total = k.shape[2]
        mask = torch.ones(t, total, dtype=torch.bool, device=x.device).tril(diagonal=total - t)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(d)
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, n * d)
        x = x + comm.all_reduce_tp(y @ w["out"])
        m = F.gelu(F.layer_norm(x, (self.shape.hidden,)) @ w["fc1"])
        return x + comm.all_reduce_tp(m @ w["fc2"])

    def step(self, tokens: Tensor, caches: list[dict[str, Tensor]], start: int, comm: Comm) -> Tensor:
        """Run `tokens` (batch, t) at positions start.. through the whole replica; every rank
        returns the greedy next token per sequence (batch,). Prefill: start = 0, t = prompt
        length; a decode step: t = 1."""
        b, t = tokens.shape
        like = torch.empty(b, t, self.shape.hidden, dtype=self.dtype, device=self.device)
        x = self.emb[tokens] + self.pos[start : start + t] if self.place.first else comm.recv_prev(like)
        for w, cache in zip(self.layers, caches, strict=True):
            x = self._layer(w, x, cache, start, comm)
        next_tokens = torch.zeros(b, dtype=torch.int64, device=self.device)
        if self.place.last:
            logits = comm.all_gather_tp(F.layer_norm(x[:, -1], (self.shape.hidden,)) @ self.head)
            next_tokens = logits.argmax(dim=-1)
        else:
            comm.send_next(x)
        return comm.broadcast_tokens(next_tokens)

    def new_caches(self) -> list[dict[str, Tensor]]:
        return [{} for _ in self.layer_ids]

    # ------------------------------------------------------------------ KV caches between configurations
    def kv_blocks(self, caches: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """This shard's KV cache as named blocks `layer.<l>.head.<h>.<k|v>` (global layer and head
        ids): the unit that moves when the configuration changes."""
        out = {}
        first_head = self.place.tp_rank * self.local_heads
        for layer, cache in zip(self.layer_ids, caches, strict=True):
            for j in range(self.local_heads):
                for kv in ("k", "v"):
                    out[f"layer.{layer}.head.{first_head + j}.{kv}"] = cache[kv][:, j].contiguous()
        return out

    def load_kv(self, blocks: dict[str, Any]) -> list[dict[str, Tensor]]:
        """Caches for this shard from blocks (of any earlier configuration) covering its heads."""
        first_head = self.place.tp_rank * self.local_heads
        caches = []
        for layer in self.layer_ids:
            cache = {}
            for kv in ("k", "v"):
                parts = [blocks[f"layer.{layer}.head.{first_head + j}.{kv}"] for j in range(self.local_heads)]
                cache[kv] = torch.stack(parts, dim=1).to(self.device, self.dtype)
            caches.append(cache)
        return caches


def generate(
    shard: GptShard, prompt: Tensor, new_tokens: int, comm: Comm, caches: list[dict[str, Tensor]] | None = None,
    start: int = 0,
) -> tuple[list[list[int]], list[dict[str, Tensor]]]:  # fmt: skip
    """Greedy decoding: prefill `prompt` (batch, t) at `start` (0, or after a migrated cache),
    then one token per step; returns the tokens (per sequence) and the caches."""
    caches = caches if caches is not None else shard.new_caches()
    out: list[list[int]] = [[] for _ in range(prompt.shape[0])]
    tokens = prompt
    pos = start
    for _ in range(new_tokens):
        nxt = shard.step(tokens, caches, pos, comm)
        pos += tokens.shape[1]
        for i, tok in enumerate(nxt.tolist()):
            out[i].append(int(tok))
        tokens = nxt.view(-1, 1)
    return out, caches
