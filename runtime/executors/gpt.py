"""SpotServe real execution: one worker process's GPU (or CPU slot) as a rank of a replica of the
sharded GPT (runtime/models/gpt.py).

A `GptGpu` holds
- its shard's weights as named blocks, and the previous shard's until its next change: peers
  take from it what the migration plan says they take from it (`serve`);
- the KV caches of the batch its replica stopped in, per request and cut to the tokens it
  committed, with those tokens, for the replica that resumes the batch;
- its replica's communication group (gloo on CPU, NCCL on CUDA) on a TCP store the leader's
  process hosts, formed when every member has built its shard and destroyed on release.

`become` carries out an assignment: the plan's transfers for this GPU (each from the worker it
names, or read from storage when it names none), then what it already holds, then storage for
the rest; a reload (reparallelization) reads everything from storage. Each transfer is measured.
Storage is a folder of safetensors files, one per layer (written once, seeded, by the first
process that needs them): the weights a restarted GPU really reads.

The batch protocol: the leader (rank 0) broadcasts each operation (`OP_*`) and every rank runs
it: a batch (prefill, or its migrated KV caches), a decode step, its end, its cut (each rank
keeps the caches of the tokens the replica committed), the replica's end.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from runtime.models.gpt import (
    VOCAB_BLOCKS,
    Comm,
    DistComm,
    GptShape,
    GptShard,
    Local,
    Place,
    block_names,
    group_backend,
    layer_block_names,
    seeded_block,
)

OP_BATCH, OP_STEP, OP_END, OP_CUT, OP_QUIT = 1, 2, 3, 4, 5
HEADER = 4  # op, n, start_step, recompute (or committed tokens for OP_CUT)
CHUNK_BYTES = 1 << 20  # a gRPC message of a block transfer
FILE_BYTES = 64 << 20  # blocks per safetensors payload of a transfer


def pack(blocks: Mapping[str, Tensor]) -> Iterator[tuple[bytes, bool]]:
    """Blocks as safetensors payloads cut in chunks: (bytes, last chunk of a payload)."""
    from safetensors.torch import save

    names = list(blocks)
    while names:
        group: dict[str, Tensor] = {}
        size = 0
        while names and (not group or size + blocks[names[0]].nbytes <= FILE_BYTES):
            name = names.pop(0)
            group[name] = blocks[name].detach().to("cpu").contiguous()
            size += group[name].nbytes
        data = save(group)
        for i in range(0, len(data), CHUNK_BYTES):
            yield data[i : i + CHUNK_BYTES], i + CHUNK_BYTES >= len(data)


def unpack(chunks: Iterable[tuple[bytes, bool]]) -> tuple[dict[str, Tensor], int]:
    """The blocks of `pack`'s chunks, and the bytes received."""
    from safetensors.torch import load

    out: dict[str, Tensor] = {}
    buf: list[bytes] = []
    total = 0
    for data, last in chunks:
        buf.append(data)
        total += len(data)
        if last:
            out.update(load(b"".join(buf)))
            buf = []
    return out, total


class WeightStorage:
    """The model's weights on disk, one safetensors file per layer (and embeddings, head)."""

    def __init__(self, root: Path, shape: GptShape, seed: int, dtype: torch.dtype) -> None:
        key = f"{shape}-{seed}-{dtype}"
        self.dir = root / f"gpt-{shape.layers}x{shape.hidden}-seed{seed}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"
        self.shape, self.seed, self.dtype = shape, seed, dtype
        self.lock = threading.Lock()

    def _file(self, name: str) -> tuple[Path, list[str]]:
        """The file a block lives in, and every block of that file."""
        s = self.shape
        if name.startswith("layer."):
            layer = int(name.split(".")[1])
            return self.dir / f"layer{layer}.safetensors", layer_block_names(layer, range(s.heads))
        if name in ("emb", "pos"):
            return self.dir / "embedding.safetensors", ["emb", "pos"]
        return self.dir / "head.safetensors", [f"head.{k}" for k in range(VOCAB_BLOCKS)]

    def _ensure(self, path: Path, names: list[str]) -> None:
        """Write a missing file (atomically: processes on one host may race to it)."""
        from safetensors.torch import save_file

        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        save_file({n: seeded_block(self.shape, self.seed, n, self.dtype) for n in names}, str(tmp))
        tmp.replace(path)

    def read(self, names: Iterable[str]) -> tuple[dict[str, Tensor], int]:
        """The blocks, read from their files (written first if missing), and the bytes read."""
        from safetensors import safe_open

        by_file: dict[Path, list[str]] = {}
        for name in names:
            path, every = self._file(name)
            with self.lock:
                self._ensure(path, every)
            by_file.setdefault(path, []).append(name)
        out: dict[str, Tensor] = {}
        for path, wanted in by_file.items():
            with safe_open(str(path), framework="pt") as f:
                for name in wanted:
                    out[name] = f.get_tensor(name)
        return out, sum(t.nbytes for t in out.values())


@dataclass(frozen=True)
class Planned:
    """One transfer of the migration plan, as the GPU receiving it sees it."""

    kind: str
    layers: tuple[int, int]
    slice: int
    slices: int
    replica: int  # kv: the old replica; -1 otherwise
    src: str  # the sending worker; "": storage
    nbytes: float


@dataclass
class Done:
    planned: Planned
    nbytes: int
    seconds: float
    blocks: int


@dataclass
class Migration:
    transfers: list[Done] = field(default_factory=list)
    seconds: float = 0.0


# A fetch from a peer: (worker, names, kv replica, kv layers, kv heads) -> chunks.
Fetch = Callable[[str, list[str], int, list[int], list[int]], Iterable[tuple[bytes, bool]]]


@dataclass
class Batch:
    """The batch a replica runs: every rank keeps the same view of it."""

    ids: list[int]
    prompts: Tensor  # (n, input_len)
    tokens: list[list[int]]  # generated so far, per request
    caches: list[dict[str, Tensor]]
    pos: int  # the next position


class GptGpu:
    def __init__(
        self,
        shape: GptShape,
        seed: int,
        input_len: int,
        dtype: torch.dtype,
        device: str,
        storage: Path,
        shared_devices: bool = False,
    ) -> None:
        self.shape, self.seed, self.input_len, self.dtype, self.device = shape, seed, input_len, dtype, device
        # Several worker processes on one CUDA device: groups over gloo through CPU copies.
        self.backend, self.stage_cpu = group_backend(device, shared_devices)
        self.comm_device = "cpu" if self.stage_cpu else device
        if device.startswith("cuda"):
            torch.cuda.set_device(device)  # NCCL takes the current device: one GPU per process
        self.storage = WeightStorage(storage, shape, seed, dtype)
        self.lock = threading.Lock()
        self.shard: GptShard | None = None
        self.holdings: dict[str, Tensor] = {}  # the current and the previous shard's blocks
        self.kv: dict[int, tuple[int, dict[str, Tensor]]] = {}  # request -> (old replica, its blocks)
        self.comm: Comm = Local()
        self.grouped = False
        self.batch: Batch | None = None
        self.replica = -1  # the replica this GPU serves in
        self.max_batch = 1
        self._store: Any = None

    # ------------------------------------------------------------------ the TCP store this process hosts
    def store_port(self) -> int:
        """The port of this process's TCP store (its replicas' groups form on it), started once."""
        import torch.distributed as dist

        with self.lock:
            if self._store is None:
                self._store = dist.TCPStore("0.0.0.0", 0, is_master=True, wait_for_workers=False)
            return int(self._store.port)

    # ------------------------------------------------------------------ serving peers
    def serve(self, names: list[str], kv_replica: int, kv_layers: list[int], kv_heads: list[int]) -> dict[str, Tensor]:
        """The blocks asked for that this GPU holds (weights by name; the KV caches of an old
        replica's batch for some layers and heads)."""
        with self.lock:
            out = {n: self.holdings[n] for n in names if n in self.holdings}
            if kv_replica >= 0:
                wanted = {f"layer.{layer}.head.{h}.{kv}" for layer in kv_layers for h in kv_heads for kv in "kv"}
                for req, (replica, blocks) in self.kv.items():
                    if replica != kv_replica:
                        continue
                    out[f"req.{req}.tokens"] = blocks["tokens"]
                    out.update({f"req.{req}.{n}": t for n, t in blocks.items() if n in wanted})
        return out

    # ------------------------------------------------------------------ becoming a replica's rank
    def become(self, place: Place, transfers: list[Planned], reload: bool, fetch: Fetch) -> Migration:
        """Build the shard at `place`: the plan's transfers, then what this GPU holds, then storage."""
        t0 = time.perf_counter()
        needed = block_names(self.shape, place)
        got: dict[str, Tensor] = {}
        done: list[Done] = []
        with self.lock:
            held = {} if reload else dict(self.holdings)
            # KV caches this change may still need: the batch of the replica this GPU leaves
            # (peers may fetch it now) and those the plan sends here; older ones are dropped.
            keep = set() if reload else {self.replica} | {t.replica for t in transfers if t.kind == "kv"}
            self.kv = {q: entry for q, entry in self.kv.items() if entry[0] in keep}
        for t in transfers:
            s0 = time.perf_counter()
            heads = range(t.slice * self.shape.heads // t.slices, (t.slice + 1) * self.shape.heads // t.slices)
            layers = [layer for layer in range(*t.layers) if layer < self.shape.layers]
            if t.kind == "kv":
                blocks, nbytes = unpack(fetch(t.src, [], t.replica, layers, list(heads))) if t.src else ({}, 0)
                self._keep_fetched_kv(t.replica, blocks)
            else:
                names = self._names(t, layers, heads, needed)
                blocks, nbytes = unpack(fetch(t.src, names, -1, [], [])) if t.src else self.storage.read(names)
                got.update(blocks)
            done.append(Done(t, nbytes, time.perf_counter() - s0, len(blocks)))
        rest = [n for n in needed if n not in got]
        local = [n for n in rest if n in held]
        got.update({n: held[n] for n in local})
        missing = [n for n in rest if n not in held]
        if missing:  # nothing in the plan brought them and this GPU does not hold them
            s0 = time.perf_counter()
            blocks, nbytes = self.storage.read(missing)
            got.update(blocks)
            done.append(
                Done(Planned("storage", (0, 0), 0, 1, -1, "", 0.0), nbytes, time.perf_counter() - s0, len(blocks))
            )
        shard = GptShard(self.shape, place, self.seed, self.dtype, self.device, blocks=got)
        with self.lock:
            previous = self.shard.named_blocks() if self.shard is not None else {}
            self.shard = shard
            self.holdings = {**previous, **shard.named_blocks()}
        return Migration(done, time.perf_counter() - t0)

    def _names(self, t: Planned, layers: list[int], heads: range, needed: list[str]) -> list[str]:
        """The weight blocks of a planned transfer that this GPU's new shard needs."""
        if t.kind == "weights":
            return [n for layer in layers for n in layer_block_names(layer, heads)]
        if t.kind == "embedding":
            return ["emb", "pos"]
        if t.kind == "lm_head":  # the plan moves the whole head; this GPU takes its vocabulary share
            return [n for n in needed if n.startswith("head.")]
        return []  # copied: our layers have no per-layer parameters outside the split ones

    def _keep_fetched_kv(self, replica: int, blocks: Mapping[str, Tensor]) -> None:
        with self.lock:
            for name, t in blocks.items():
                _, req, rest = name.split(".", 2)
                entry = self.kv.setdefault(int(req), (replica, {}))[1]
                entry[rest] = t

    # ------------------------------------------------------------------ the replica's group
    def join(self, store: tuple[str, int], replica: int, rank: int, place: Place, timeout_s: float) -> None:
        import torch.distributed as dist

        world = place.tp * place.pp
        if world == 1:
            self.comm, self.grouped = Local(), False
            return
        host, port = store
        client = dist.TCPStore(host, port, is_master=False, timeout=timedelta(seconds=timeout_s))
        prefix = dist.PrefixStore(f"replica{replica}", client)
        dist.init_process_group(
            self.backend, store=prefix, rank=rank, world_size=world, timeout=timedelta(seconds=timeout_s)
        )
        self.comm, self.grouped = DistComm(place, self.stage_cpu), True

    def leave(self) -> None:
        import torch.distributed as dist

        if self.grouped:
            self.grouped = False
            dist.destroy_process_group()
        self.comm, self.batch = Local(), None

    # ------------------------------------------------------------------ the batch protocol
    def broadcast_op(self, op: int, n: int = 0, a: int = 0, b: int = 0, ids: Iterable[int] = ()) -> list[int]:
        """Rank 0 sends an operation, every other rank receives it: [op, n, a, b, ids...]."""
        import torch.distributed as dist

        size = HEADER + max(1, self.max_batch)
        msg = torch.zeros(size, dtype=torch.int64)
        msg[:HEADER] = torch.tensor([op, n, a, b])
        for i, q in enumerate(ids):
            msg[HEADER + i] = q
        if self.grouped:
            on = msg.to(self.comm_device)
            dist.broadcast(on, 0)
            msg = on.cpu()
        return [int(x) for x in msg.tolist()]

    def follow(self) -> None:
        """A rank other than 0: run what the leader broadcasts until the replica ends."""
        while True:
            msg = self.broadcast_op(0)
            op, n, a, b = msg[:HEADER]
            if op == OP_QUIT:
                return
            self.apply(op, n, a, b, msg[HEADER : HEADER + n])

    def apply(self, op: int, n: int, a: int, b: int, ids: list[int]) -> int:
        """Run one operation; returns the tokens the batch has committed."""
        if op == OP_BATCH:
            return self._begin(ids, a, bool(b))
        if op == OP_QUIT:
            return 0
        assert self.batch is not None
        if op == OP_STEP:
            return self._step()
        if op == OP_CUT:
            self._keep(a)
        self.batch = None
        return 0

    def lead(self, op: int, ids: Iterable[int] = (), a: int = 0, b: int = 0) -> int:
        """Rank 0: send an operation and run it."""
        ids = list(ids)
        self.broadcast_op(op, len(ids), a, b, ids)
        return self.apply(op, len(ids), a, b, ids)

    def prompt(self, request: int) -> Tensor:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + request)
        return torch.randint(0, self.shape.vocab, (self.input_len,), generator=gen)

    def _begin(self, ids: list[int], start_step: int, recompute: bool) -> int:
        """A batch: its prefill, or (resumed) its migrated KV caches; returns its committed tokens."""
        import torch.distributed as dist

        shard = self.shard
        assert shard is not None
        prompts = torch.stack([self.prompt(q) for q in ids])
        n, length = prompts.shape
        known = torch.full((n, max(1, start_step)), -1, dtype=torch.int64)
        have = 1
        with self.lock:
            for i, q in enumerate(ids):
                entry = self.kv.get(q)
                if entry is not None and entry[1]["tokens"].numel() >= start_step:
                    known[i, :start_step] = entry[1]["tokens"][:start_step]
                if start_step == 0 or entry is None or not self._has_cache(entry[1], shard):
                    have = 0
        if self.grouped:  # every rank must agree: resume only if all hold their caches
            flag = torch.tensor([have], dtype=torch.int64, device=self.comm_device)
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
            have = int(flag.item())
            on = known.to(self.comm_device)
            dist.all_reduce(on, op=dist.ReduceOp.MAX)
            known = on.cpu()
        tokens: list[list[int]] = []
        for i, q in enumerate(ids):  # a token lost with its GPU: a stand-in, seeded (its latency is right)
            stand_in = torch.Generator().manual_seed(q)
            row = known[i, :start_step].tolist()
            tokens.append(
                [t if t >= 0 else int(torch.randint(0, self.shape.vocab, (1,), generator=stand_in)) for t in row]
            )
        if start_step > 0 and have and not recompute:
            caches = self._load_caches(ids, shard)
            self.batch = Batch(ids, prompts, tokens, caches, length + start_step - 1)
            return start_step
        # A prefill: the prompt and the tokens committed before the last, which the prefill makes again.
        history = torch.tensor([t[: max(0, start_step - 1)] for t in tokens], dtype=torch.int64).view(n, -1)
        inputs = torch.cat([prompts, history], dim=1).to(self.device)
        caches = shard.new_caches()
        nxt = shard.step(inputs, caches, 0, self.comm).cpu().tolist()
        if start_step == 0:
            tokens = [[int(t)] for t in nxt]
        self.batch = Batch(ids, prompts, tokens, caches, inputs.shape[1])
        with self.lock:
            for q in ids:
                self.kv.pop(q, None)
        return max(1, start_step)

    def _step(self) -> int:
        b, shard = self.batch, self.shard
        assert b is not None and shard is not None
        last = torch.tensor([t[-1] for t in b.tokens], dtype=torch.int64, device=self.device).view(-1, 1)
        nxt = shard.step(last, b.caches, b.pos, self.comm).cpu().tolist()
        b.pos += 1
        for t, tok in zip(b.tokens, nxt, strict=True):
            t.append(int(tok))
        return len(b.tokens[0])

    def _keep(self, committed: int) -> None:
        """A cut: keep each request's KV cache of its committed tokens, for the replica that
        resumes it (nothing when no token is kept)."""
        b, shard = self.batch, self.shard
        assert b is not None and shard is not None
        if committed <= 0:
            return
        length = b.prompts.shape[1] + committed - 1
        blocks = shard.kv_blocks(b.caches)
        with self.lock:
            for i, q in enumerate(b.ids):
                mine = {n: t[i : i + 1, :length].contiguous() for n, t in blocks.items()}
                mine["tokens"] = torch.tensor(b.tokens[i][:committed], dtype=torch.int64)
                self.kv[q] = (self.replica, mine)

    def _has_cache(self, blocks: Mapping[str, Tensor], shard: GptShard) -> bool:
        heads = range(shard.place.tp_rank * shard.local_heads, (shard.place.tp_rank + 1) * shard.local_heads)
        return all(f"layer.{layer}.head.{h}.k" in blocks for layer in shard.layer_ids for h in heads)

    def _load_caches(self, ids: list[int], shard: GptShard) -> list[dict[str, Tensor]]:
        with self.lock:
            per = [self.kv.pop(q)[1] for q in ids]
        names = [n for n in per[0] if n.startswith("layer.")]
        merged = {n: torch.cat([p[n] for p in per], dim=0) for n in names}
        return shard.load_kv(merged)
