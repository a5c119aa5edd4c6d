"""`python -m orchestrator.profile system=spotserve model=NAME [overrides]`: measure the sharded GPT
(runtime/models/gpt.py) on this machine and write a model config whose latency profile the
simulator reads, as the artifact's profiles were measured on its T4s.

For every tensor-parallel degree of `model.profile_tps` (up to `model.max_tp` and `--max-tp`),
tp worker processes form a gloo (CPU) or NCCL (CUDA) group and hold the whole model split tp
ways; for every batch size of `--batch-sizes` they time, after warm-up, `--repeats` prefills of
`model.input_len` tokens and decode steps (medians). A layer's time is the pass's time less the
embedding and LM head (timed alone), over the layers: `init_ms` (prefill) and `incr_ms` (one
decode step) per (tp, batch), and `embed_ms` per batch. The pipeline boundary costs
(`pp_init_comm_ms`, `pp_incr_comm_ms`) and everything else are kept from the source config.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from orchestrator.systems.base import ProfileOptions
from runtime.exceptions import ConfigError
from runtime.schema.spotserve import ModelConfig, SpotServeConfig

MIN_MS = 1e-3  # the schema wants positive times; a layer faster than this is recorded as this


def _rank(rank: int, tp: int, store: str, spec: dict[str, Any], out: str) -> None:
    import torch
    import torch.distributed as dist

    from runtime.models.gpt import DistComm, GptShape, GptShard, Local, Place
    from runtime.models.shapes import RandomBlocks

    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    device = spec["device"]
    if device == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // tp))
    else:
        torch.cuda.set_device(rank)
        device = f"cuda:{rank}"
    if tp > 1:
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend, init_method=f"file://{store}", rank=rank, world_size=tp)
    shape = GptShape(**spec["shape"])
    place = Place(tp=tp, tp_rank=rank)
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    blocks = RandomBlocks(shape, place, device, dtype) if spec.get("weights") == "random" else None
    shard = GptShard(shape, place, 0, dtype, device, blocks=blocks)
    comm = DistComm(place) if tp > 1 else Local()

    def timed(fn: Any) -> float:
        if tp > 1:
            dist.barrier()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) * 1000.0

    result: dict[str, dict[str, float]] = {}
    with torch.inference_mode():
        for b in spec["batches"]:
            gen = torch.Generator().manual_seed(b)
            prompt = torch.randint(0, shape.vocab, (b, spec["input_len"]), generator=gen).to(device)
            prefill, step = [], []
            for i in range(spec["warmup"] + spec["repeats"]):
                caches = shard.new_caches()
                p = timed(lambda: shard.step(prompt, caches, 0, comm))  # noqa: B023
                last = prompt[:, -1:]
                s = timed(lambda: shard.step(last, caches, spec["input_len"], comm))  # noqa: B023
                if i >= spec["warmup"]:
                    prefill.append(p)
                    step.append(s)
            result[str(b)] = {"prefill_ms": statistics.median(prefill), "step_ms": statistics.median(step)}
    if rank == 0:
        Path(out).write_text(json.dumps(result))
    if tp > 1:
        dist.destroy_process_group()


def _embed_ms(shape: Any, batches: list[int], repeats: int, device: str, weights: str = "seeded") -> dict[int, float]:
    """The embedding lookup and the LM head (norm, product, argmax) of one step, per batch."""
    import torch
    from torch.nn import functional as F  # noqa: N812

    from runtime.models.gpt import GptShape, GptShard, Place
    from runtime.models.shapes import RandomBlocks

    one = GptShape(1, shape.hidden, shape.heads, shape.vocab, shape.max_seq_len, padded_layers=1)
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    blocks = RandomBlocks(one, Place(), device, dtype) if weights == "random" else None
    shard = GptShard(one, Place(), 0, dtype, device, blocks=blocks)
    out = {}
    with torch.inference_mode():
        for b in batches:
            tokens = torch.zeros(b, 1, dtype=torch.int64, device=device)
            times = []
            for _ in range(repeats + 1):
                t0 = time.perf_counter()
                x = shard.emb[tokens] + shard.pos[0:1]
                (F.layer_norm(x[:, -1], (shape.hidden,)) @ shard.head).argmax(dim=-1)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                times.append((time.perf_counter() - t0) * 1000.0)
            out[b] = statistics.median(times[1:])
    return out


def measure(
    model: ModelConfig,
    device: str,
    batches: list[int],
    tps: list[int],
    repeats: int,
    warmup: int,
    weights: str = "seeded",
) -> dict[str, Any]:
    """Per tp and batch: the median prefill and decode-step milliseconds of the whole model.
    `weights`: seeded (the values real execution uses) or random (drawn on the device: what a
    real-shape profile needs, in seconds; runtime/models/shapes.py)."""
    import torch.multiprocessing as mp

    from runtime.models.gpt import GptShape

    shape = GptShape.of(model)
    spec = {
        "shape": dataclasses.asdict(shape),  # the rank processes rebuild it: GptShape(**spec["shape"])
        "batches": batches,
        "input_len": model.input_len,
        "repeats": repeats,
        "warmup": warmup,
        "device": device,
        "weights": weights,
    }
    passes: dict[int, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="servelab-profile-") as tmp:
        for tp in tps:
            shape.check(tp, 1)
            out = Path(tmp) / f"tp{tp}.json"
            store = Path(tmp) / f"store-{tp}"
            mp.start_processes(_rank, args=(tp, str(store), spec, str(out)), nprocs=tp, start_method="spawn")
            passes[tp] = json.loads(out.read_text())
    return {"passes": passes, "embed_ms": _embed_ms(shape, batches, repeats, device, weights)}


def profiled_model(
    model: ModelConfig, measured: dict[str, Any], batches: list[int], tps: list[int], source: str | None = None
) -> dict[str, Any]:
    """The model config with the measured profile in place (a plain dict for YAML)."""
    out: dict[str, Any] = OmegaConf.to_container(OmegaConf.structured(model), resolve=True)  # type: ignore[assignment]
    embed = [max(MIN_MS, measured["embed_ms"][b]) for b in batches]
    init, incr = [], []
    for tp in tps:
        rows = measured["passes"][tp]
        init.append(
            [max(MIN_MS, (rows[str(b)]["prefill_ms"] - e) / model.layers) for b, e in zip(batches, embed, strict=True)]
        )
        incr.append(
            [max(MIN_MS, (rows[str(b)]["step_ms"] - e) / model.layers) for b, e in zip(batches, embed, strict=True)]
        )
    out.update(
        name=f"{model.name}_profiled",
        profile_batches=batches,
        profile_tps=tps,
        max_tp=min(model.max_tp, max(tps)),
        max_batch=min(model.max_batch, max(batches)),
        init_ms=[[round(v, 4) for v in row] for row in init],
        incr_ms=[[round(v, 4) for v in row] for row in incr],
        embed_ms=[round(v, 4) for v in embed],
        source=source
        or f"measured on {socket.gethostname()} by python -m orchestrator.profile system=spotserve model={model.name}",
    )
    return out


def write_profile(out_dir: Path, model: ModelConfig, profiled: dict[str, Any]) -> Path:
    target = out_dir / "model" / f"{profiled['name']}.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# {model.name} profiled on this machine (per-layer ms per tp x batch). Simulate it with:\n"
        f"# python -m orchestrator hydra.searchpath=[file://{out_dir.resolve()}] system=spotserve model={profiled['name']}\n"
    )
    target.write_text(header + yaml.safe_dump(profiled, sort_keys=False))
    return target


def profile(config: SpotServeConfig, options: ProfileOptions) -> str:
    """SpotServe's profiler (its registry entry calls it)."""
    from runtime.executors.real import pick_device

    model = config.model
    batches = options.batch_sizes or list(model.profile_batches)
    tps = [tp for tp in model.profile_tps if tp <= model.max_tp and (options.max_tp is None or tp <= options.max_tp)]
    if not tps:
        raise ConfigError(f"--max-tp: {options.max_tp} leaves none of model.profile_tps {list(model.profile_tps)}")
    device = "cuda" if pick_device(config.execution.device, None).startswith("cuda") else "cpu"
    measured = measure(model, device, batches, tps, options.repeats, options.warmup)
    profiled = profiled_model(model, measured, batches, tps)
    target = write_profile(options.out, model, profiled)
    return (
        f"Profile: {target}\nSimulate it: python -m orchestrator hydra.searchpath=[file://{options.out.resolve()}] "
        f"system=spotserve model={profiled['name']}"
    )
