"""The sharded GPT's per-token decode latency on this machine: model=tiny's shape (4 layers,
hidden 64, 4 heads, vocabulary 256) at tp 1/2 and pp 1/2, each rank its own process talking
gloo, against one process running the unsharded model. The ratio is what our communication
costs (on CPU, for a model this small, it is nearly all of it).

    python -m benchmarks.gpt_decode [--steps N]

Median over the decode steps of one batch of 4 sequences (8-token prompts), float32, one torch
thread per process, measured on rank 0 after the prefill.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import say, table
from runtime.models.gpt import DistComm, GptShape, GptShard, Local, Place

SHAPE = GptShape(layers=4, hidden=64, heads=4, vocab=256, max_seq_len=48)
PROMPT = torch.arange(32).view(4, 8) % 256


def decode_ms(shard: GptShard, comm: Local, steps: int) -> list[float]:
    caches = shard.new_caches()
    nxt = shard.step(PROMPT, caches, 0, comm)
    pos, times = PROMPT.shape[1], []
    for _ in range(steps):
        t0 = time.perf_counter()
        nxt = shard.step(nxt.view(-1, 1), caches, pos, comm)
        times.append(1000 * (time.perf_counter() - t0))
        pos += 1
    return times


def _rank(rank: int, tp: int, pp: int, out: str, steps: int) -> None:
    import torch.distributed as dist

    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{out}/store", world_size=tp * pp, rank=rank)
    place = Place(tp=tp, pp=pp, tp_rank=rank % tp, stage=rank // tp)
    times = decode_ms(GptShard(SHAPE, place, 0, torch.float32), DistComm(place), steps)
    if rank == 0:
        Path(out, "ms.txt").write_text(str(statistics.median(times)))
    dist.destroy_process_group()


def main() -> None:
    import torch.multiprocessing as mp

    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    alone = statistics.median(decode_ms(GptShard(SHAPE, Place(), 0, torch.float32), Local(), args.steps))
    rows = [["1 process, unsharded", "1", f"{alone:.2f}", "1.00"]]
    for tp, pp in ((1, 1), (2, 1), (1, 2), (2, 2)):
        with tempfile.TemporaryDirectory(prefix="bench-gpt-") as out:
            mp.start_processes(_rank, args=(tp, pp, out, args.steps), nprocs=tp * pp, start_method="spawn")
            ms = float(Path(out, "ms.txt").read_text())
        rows.append([f"tp {tp}, pp {pp} (gloo)", str(tp * pp), f"{ms:.2f}", f"{ms / alone:.2f}"])
    say(f"{os.cpu_count()} cores; model=tiny shape, batch 4, median of {args.steps} decode steps")
    say(table(["configuration", "processes", "ms per token", "vs one process"], rows, name="gpt-decode"))


if __name__ == "__main__":
    main()
