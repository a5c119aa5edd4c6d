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

Weights are named blocks (`block_names`): `layer.<l>.<qkv|out|fc1|fc2>.<head>`, `emb`, `pos`,
`head.<k>`. A shard is built from any source of blocks (seeded, read from storage, received
from another worker: runtime/executors/gpt.py) and `named_blocks()` gives them back as views,
the unit a migration moves. Layers are split over stages by `padded_layers` (the artifact pads
GPT-20B's 44 layers to 48 so more pipeline degrees divide them): stage s holds padded layers
[s*P/pp, (s+1)*P/pp) that exist, so the last stages may hold fewer real layers.

Communication goes through a `Comm` (torch.distributed on gloo or NCCL; `Local` for one
process), so the model code never names a backend. Each request has a KV cache per layer of
the shard (its heads only); `kv_blocks` / `load_kv` move it between configurations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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
    padded_layers: int = 0  # 0: layers

    @classmethod
    def of(cls, model: Any) -> GptShape:
        """The shape of a `model` config (runtime.schema.ModelConfig)."""
        return cls(
            model.layers, model.hidden, model.heads, model.vocab, model.max_seq_len, padded_layers=model.padded_layers
        )

    @property
    def padded(self) -> int:
        return self.padded_layers or self.layers

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
        if self.padded < self.layers:
            raise ConfigError(f"model.padded_layers: {self.padded} is fewer than model.layers {self.layers}")
        if self.padded % pp:
            raise ConfigError(f"model.padded_layers: {self.padded} layers cannot be split over {pp} pipeline stages")


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


def group_backend(device: str, shared_devices: bool) -> tuple[str, bool]:
    """(backend, stage through the CPU) for a replica's group: NCCL when every rank has a CUDA
    device of its own; gloo on the CPU, and gloo when ranks share a CUDA device (NCCL refuses
    two ranks on one device), its CUDA tensors copied through CPU memory (gloo's send and recv
    take CPU tensors)."""
    if not device.startswith("cuda"):
        return "gloo", False
    return ("gloo", True) if shared_devices else ("nccl", False)


class DistComm(Comm):
    """torch.distributed: global rank = stage * tp + tp_rank; one tp group per stage; stage s's
    tp rank r sends its (replicated) activations to stage s+1's rank r; the last stage's rank 0
    broadcasts the chosen tokens to every rank. `stage_cpu`: tensors go through CPU copies (gloo
    with CUDA tensors, `group_backend`)."""

    def __init__(self, place: Place, stage_cpu: bool = False) -> None:
        import torch.distributed as dist

        self.dist, self.place, self.stage_cpu = dist, place, stage_cpu
        self.groups = [dist.new_group([s * place.tp + r for r in range(place.tp)]) for s in range(place.pp)]
        self.group = self.groups[place.stage]
        self.rank = place.stage * place.tp + place.tp_rank

    def _out(self, x: Tensor) -> Tensor:
        return x.cpu() if self.stage_cpu else x

    def _back(self, x: Tensor, staged: Tensor) -> Tensor:
        if staged is not x:
            x.copy_(staged)
        return x

    def all_reduce_tp(self, x: Tensor) -> Tensor:
        if self.place.tp > 1:
            staged = self._out(x)
            self.dist.all_reduce(staged, group=self.group)
            self._back(x, staged)
        return x

    def all_gather_tp(self, x: Tensor) -> Tensor:
        if self.place.tp == 1:
            return x
        staged = self._out(x.contiguous())
        parts = [torch.empty_like(staged) for _ in range(self.place.tp)]
        self.dist.all_gather(parts, staged, group=self.group)
        return torch.cat(parts, dim=-1).to(x.device)

    def send_next(self, x: Tensor) -> None:
        self.dist.send(self._out(x.contiguous()), self.rank + self.place.tp)

    def recv_prev(self, like: Tensor) -> Tensor:
        out = torch.empty_like(like)
        staged = self._out(out)
        self.dist.recv(staged, self.rank - self.place.tp)
        return self._back(out, staged)

    def broadcast_tokens(self, tokens: Tensor) -> Tensor:
        staged = self._out(tokens)
        self.dist.broadcast(staged, (self.place.pp - 1) * self.place.tp)
        return self._back(tokens, staged)


VOCAB_BLOCKS = 64  # the LM head's columns in this many seeded blocks: any tp dividing 64 takes whole blocks

# Weight ids in the seed key.
QKV, OUT, FC1, FC2, EMB, POS, HEAD = range(7)
_LAYER_WEIGHTS = {"qkv": QKV, "out": OUT, "fc1": FC1, "fc2": FC2}


def stage_layers(shape: GptShape, place: Place) -> list[int]:
    """The real layers of `place`'s stage (padded layers split evenly, padding dropped)."""
    per = shape.padded // place.pp
    return [layer for layer in range(place.stage * per, (place.stage + 1) * per) if layer < shape.layers]


def local_heads(shape: GptShape, place: Place) -> range:
    n = shape.heads // place.tp
    return range(place.tp_rank * n, (place.tp_rank + 1) * n)


def head_blocks(place: Place) -> range:
    per = VOCAB_BLOCKS // place.tp
    return range(place.tp_rank * per, (place.tp_rank + 1) * per)


def layer_block_names(layer: int, heads: range | list[int]) -> list[str]:
    return [f"layer.{layer}.{w}.{h}" for h in heads for w in _LAYER_WEIGHTS]


def block_names(shape: GptShape, place: Place) -> list[str]:
    """Every weight block the shard at `place` holds."""
    names = [n for layer in stage_layers(shape, place) for n in layer_block_names(layer, local_heads(shape, place))]
    if place.first:
        names += ["emb", "pos"]
    if place.last:
        names += [f"head.{k}" for k in head_blocks(place)]
    return names


def block_shape(shape: GptShape, name: str) -> tuple[int, int]:
    h, d, col = shape.hidden, shape.head_dim, shape.ffn // shape.heads
    kind = name.split(".")[2] if name.startswith("layer.") else name.split(".", maxsplit=1)[0]
    return {
        "qkv": (h, 3 * d),
        "out": (d, h),
        "fc1": (h, col),
        "fc2": (col, h),
        "emb": (shape.vocab, h),
        "pos": (shape.max_seq_len, h),
        "head": (h, shape.vocab // VOCAB_BLOCKS),
    }[kind]


def seeded_block(shape: GptShape, seed: int, name: str, dtype: torch.dtype) -> Tensor:
    """One block's values, the same whichever shard asks (seeded by its name's ids)."""
    parts = name.split(".")
    std, out_std = 0.02 * math.sqrt(64 / shape.hidden), 0.02 / math.sqrt(2 * shape.layers)
    if parts[0] == "layer":
        wid = _LAYER_WEIGHTS[parts[2]]
        key: tuple[int, ...] = (int(parts[1]), wid, int(parts[3]))
        scale = out_std if wid in (OUT, FC2) else std
    elif parts[0] == "head":
        key, scale = (HEAD, int(parts[1])), std
    else:
        key, scale = ((EMB,) if parts[0] == "emb" else (POS,)), std
    gen = torch.Generator().manual_seed(hash((seed, *key)) & 0x7FFF_FFFF_FFFF)
    # float32 whatever the shard's dtype: the same values in every shard, and half the time and
    # memory of float64 when a host first writes a large model's storage.
    return (torch.randn(block_shape(shape, name), generator=gen, dtype=torch.float32) * scale).to(dtype)


def seeded_blocks(shape: GptShape, place: Place, seed: int, dtype: torch.dtype) -> dict[str, Tensor]:
    return {n: seeded_block(shape, seed, n, dtype) for n in block_names(shape, place)}


class GptShard:
    def __init__(
        self,
        shape: GptShape,
        place: Place,
        seed: int,
        dtype: torch.dtype,
        device: str = "cpu",
        blocks: Mapping[str, Tensor] | None = None,
    ) -> None:
        """The shard at `place`, from `blocks` (named as `block_names`) or seeded."""
        shape.check(place.tp, place.pp)
        self.shape, self.place, self.dtype, self.device = shape, place, dtype, device
        src = blocks if blocks is not None else seeded_blocks(shape, place, seed, dtype)
        heads = local_heads(shape, place)
        self.local_heads = len(heads)
        self.layer_ids = stage_layers(shape, place)

        def cat(layer: int, w: str, dim: int) -> Tensor:
            return torch.cat([src[f"layer.{layer}.{w}.{k}"] for k in heads], dim=dim).to(device, dtype)

        # Per head: its q, k and v columns (hidden, 3 * local_heads * d); out and fc2 row-parallel.
        self.layers: list[dict[str, Tensor]] = [
            {w: cat(layer, w, 0 if w in ("out", "fc2") else 1) for w in _LAYER_WEIGHTS} for layer in self.layer_ids
        ]
        if place.first:
            self.emb = src["emb"].to(device, dtype)
            self.pos = src["pos"].to(device, dtype)
        if place.last:
            self.head = torch.cat([src[f"head.{k}"] for k in head_blocks(place)], dim=1).to(device, dtype)

    def named_blocks(self) -> dict[str, Tensor]:
        """The shard's weights as named blocks (views, no copy)."""
        shape, place = self.shape, self.place
        d, col = shape.head_dim, shape.ffn // shape.heads
        widths = {"qkv": 3 * d, "out": d, "fc1": col, "fc2": col}
        out: dict[str, Tensor] = {}
        for layer, w in zip(self.layer_ids, self.layers, strict=True):
            for j, head in enumerate(local_heads(shape, place)):
                for kind, width in widths.items():
                    dim = 0 if kind in ("out", "fc2") else 1
                    out[f"layer.{layer}.{kind}.{head}"] = w[kind].narrow(dim, j * width, width)
        if place.first:
            out["emb"], out["pos"] = self.emb, self.pos
        if place.last:
            width = shape.vocab // VOCAB_BLOCKS
            for j, k in enumerate(head_blocks(place)):
                out[f"head.{k}"] = self.head.narrow(1, j * width, width)
        return out

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
    shard: GptShard,
    prompt: Tensor,
    new_tokens: int,
    comm: Comm,
    caches: list[dict[str, Tensor]] | None = None,
    start: int = 0,
) -> tuple[list[list[int]], list[dict[str, Tensor]]]:
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
