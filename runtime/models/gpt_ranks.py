"""Greedy decoding of the sharded GPT by a replica of real processes (one per rank), and the
resumption of an interrupted request under another configuration from its migrated KV cache:
the proof that the tensor/pipeline split and the migration are right, used by the tests on the
CPU and by benchmarks/device_check.py on CUDA.

`run_ranks(...)` spawns tp x pp processes; each builds its shard of the seeded model, joins the
group (gloo on the CPU; on CUDA, NCCL when every rank has a device of its own, else gloo through
CPU copies: runtime.models.gpt.group_backend), decodes, and writes its KV cache as named blocks
(safetensors) and, rank 0, the tokens. A later call with `resume` loads those blocks into the
new configuration's shards and continues from the last token.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from runtime.models.gpt import DistComm, GptShape, GptShard, Local, Place, generate, group_backend


def _rank(rank: int, spec: dict[str, Any]) -> None:
    import torch.distributed as dist
    from safetensors.torch import load_file, save_file

    tp, pp, out, phase = spec["tp"], spec["pp"], Path(spec["out"]), spec["phase"]
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    device = spec["device"]
    if device.startswith("cuda"):
        device = f"cuda:{rank % torch.cuda.device_count()}"
        torch.cuda.set_device(device)
    backend, stage = group_backend(device, shared_devices=torch.cuda.device_count() < tp * pp)
    dist.init_process_group(backend, init_method=f"file://{out}/store-{phase}", world_size=tp * pp, rank=rank)
    place = Place(tp=tp, pp=pp, tp_rank=rank % tp, stage=rank // tp)
    dtype = getattr(torch, spec["dtype"])
    shard = GptShard(GptShape(**spec["shape"]), place, spec["seed"], dtype, device)
    comm = DistComm(place, stage)
    prompt, start, caches = torch.tensor(spec["prompt"], device=device), 0, None
    if spec["resume"]:  # the blocks every rank of the earlier configuration left, loaded for this shard
        blocks: dict[str, torch.Tensor] = {}
        for f in sorted(Path(spec["resume"]).glob("kv-*.safetensors")):
            blocks.update(load_file(str(f)))
        done = torch.load(Path(spec["resume"]) / "tokens.pt")
        prompt, start = done[:, -1:].to(device), len(spec["prompt"][0]) + done.shape[1] - 1
        caches = shard.load_kv(blocks)
    tokens, caches = generate(shard, prompt, spec["steps"], comm, caches, start)
    save_file({k: v.cpu() for k, v in shard.kv_blocks(caches).items()}, str(out / phase / f"kv-{rank}.safetensors"))
    if rank == 0:
        torch.save(torch.tensor(tokens), out / phase / "tokens.pt")
    dist.destroy_process_group()


def run_ranks(
    shape: GptShape,
    seed: int,
    prompt: list[list[int]],
    steps: int,
    tp: int,
    pp: int,
    out: Path,
    phase: str,
    device: str = "cpu",
    dtype: str = "float64",
    resume: Path | None = None,
) -> list[list[int]]:
    """The greedy tokens of `steps` decoding steps by a tp x pp replica of processes."""
    import torch.multiprocessing as mp

    (out / phase).mkdir(parents=True)
    spec = {
        "shape": dataclasses.asdict(shape),  # the rank processes rebuild it: GptShape(**spec["shape"])
        "seed": seed,
        "prompt": prompt,
        "steps": steps,
        "tp": tp,
        "pp": pp,
        "out": str(out),
        "phase": phase,
        "device": device,
        "dtype": dtype,
        "resume": str(resume or ""),
    }
    mp.start_processes(_rank, args=(spec,), nprocs=tp * pp, start_method="spawn")
    result: list[list[int]] = torch.load(out / phase / "tokens.pt").tolist()
    return result


def single(shape: GptShape, seed: int, prompt: list[list[int]], steps: int, dtype: str = "float64") -> list[list[int]]:
    """The same decoding in this process, unsharded (tp = pp = 1), on the CPU."""
    shard = GptShard(shape, Place(), seed, getattr(torch, dtype))
    tokens, _ = generate(shard, torch.tensor(prompt), steps, Local())
    return tokens
