"""SpotServe real execution on this machine: one reconfiguration's measured migration against
the plan's prediction, and the per-token latency the records measure.

Two 2-GPU instances serve the sharded GPT (one process a GPU, gloo): node-1 joins at 4 s (its
new replica takes its weights from node-0's processes), node-0 is preempted at 14 s with a 5-s
notice (the interrupted batches' KV caches move to node-1's processes, or restart). For the
start and each change the table shows the plan's
prediction (its network model: `spot.network_gbps`, plus `spot.switch_overhead_s`) beside what
the GPUs measured (the slowest GPU's transfers and group forming), the bytes planned and moved,
and the rate of the transfers between processes (safetensors bytes over gRPC on loopback).

    python -m benchmarks.spotserve_real [--hidden 64 --heads 4 --layers 4]
    python -m benchmarks.spotserve_real --approaches      # the profile table (about 13 minutes)

The default is model=tiny's shape; `--hidden 1024 --heads 16 --layers 8` moves ~100x the bytes.

`--approaches` runs `trace=tiny_spot` (90 s, 180 requests) with each approach twice: with
model=tiny's made-up profile, and with the profile `python -m orchestrator.profile
system=spotserve model=tiny` measures on this machine; the table shows what the optimizer chose
and how every request ended.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from benchmarks.common import compose_config, run, say, table

# Also the trace of tests/test_spotserve_real.py.
SHORT = (
    "system=spotserve",
    "model=tiny",
    "execution=real",
    "trace=tiny_spot",
    "trace.duration_s=26",
    "trace.availability=[{at_s:0,op:add,instances:[node-0]},{at_s:4,op:add,instances:[node-1]},"
    "{at_s:14,op:remove,instances:[node-0]},{at_s:26,op:end}]",
    "spot.gpus_per_instance=2",
    "spot.grace_period_s=5",
)


APPROACHES = ("spotserve", "reparallelization", "rerouting")


def approaches() -> None:
    """trace=tiny_spot with every approach, on the made-up and on the measured profile."""
    import yaml

    from orchestrator.plan import config_as
    from orchestrator.profile import main as profile
    from runtime.schema.spotserve import SpotServeConfig

    out = Path(tempfile.mkdtemp(prefix="bench-spotreal-approaches-"))
    profiles = out / "profiles"
    if profile(["system=spotserve", "model=tiny", "--out", str(profiles)]) != 0:
        raise SystemExit("the profiler failed")
    made_up = config_as(compose_config("system=spotserve", "model=tiny"), SpotServeConfig).model
    measured = yaml.safe_load((profiles / "model" / "tiny_profiled.yaml").read_text())
    say(
        table(
            ["tp", "made up: decode step b1 (ms a layer)", "measured here (ms a layer)"],
            [
                [tp, f"{made_up.incr_ms[i][0]:g}", f"{measured['incr_ms'][i][0]:.2f}"]
                for i, tp in enumerate(made_up.profile_tps)
            ],
            name="spotserve-tiny-profile",
        )
    )
    rows = []
    for label, model in (
        ("made up (`model=tiny`)", ("model=tiny",)),
        (
            "measured (`model=tiny_profiled`)",
            (f"hydra.searchpath=[file://{profiles}]", "model=tiny_profiled"),
        ),
    ):
        for i, approach in enumerate(APPROACHES):
            job = out / f"{model[-1].split('=')[1]}-{approach}"
            summary = run(
                "system=spotserve", *model, "execution=real", "trace=tiny_spot", f"approach={approach}", out=job
            )
            plan = pd.read_parquet(job / "run" / "roles" / "controller" / "decisions.parquet").iloc[0]
            assert summary["completed"] + summary["unfinished"] == summary["queries_sent"], summary
            say(f"{label} {approach}: {summary['completed']}/{summary['queries_sent']} completed")
            rows.append(
                [
                    f"{label}: dp {plan['dp']}, tp {plan['tp']}, pp {plan['pp']}, batch {plan['batch']}"
                    if i == 0
                    else "",
                    approach,
                    summary["completed"],
                    summary["unfinished"],
                    f"{summary['latency_mean_s']:.3f}",
                    f"{summary['latency_p99_s']:.3f}",
                    f"{summary['resumed_requests']} / {summary['restarted_requests']}",
                ]
            )
    say(
        table(
            [
                "profile: first plan",
                "approach",
                "completed",
                "unfinished",
                "mean latency (s)",
                "P99 (s)",
                "resumed / restarted",
            ],
            rows,
            name="spotserve-tiny-approaches",
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--approaches", action="store_true", help="the tiny_spot table: every approach, both profiles")
    args = parser.parse_args()
    if args.approaches:
        approaches()
        return
    out = Path(tempfile.mkdtemp(prefix="bench-spotreal-"))
    shape = (
        f"model.hidden={args.hidden}",
        f"model.heads={args.heads}",
        f"model.layers={args.layers}",
        f"model.padded_layers={args.layers}",
        f"execution.weights_dir={out / 'weights'}",
    )
    summary = run(*SHORT, "approach=spotserve", *shape, out=out)
    run_dir = out / "run"
    decisions = pd.read_parquet(run_dir / "roles" / "controller" / "decisions.parquet")
    transfers = pd.read_parquet(run_dir / "roles" / "controller" / "transfers.parquet")
    rows = []
    for _, d in decisions[decisions["replicas"] != ""].iterrows():
        ids = {int(r) for r in str(d["replicas"]).split(",")}
        mine = transfers[transfers["replica"].isin(ids)]
        peer = mine[(mine["kind"] != "total") & (mine["src"] != "storage") & (mine["bytes"] > 0)]
        rate = peer["bytes"].sum() / peer["seconds"].sum() / 1e6 if len(peer) else float("nan")
        rows.append(
            [
                d["event"],
                f"{d['migration_s']:.3f}",
                f"{d['measured_migration_s']:.3f}",
                f"{1000 * d['moved_gb']:.2f}",
                f"{1000 * d['measured_gb']:.2f}",
                ", ".join(sorted(set(mine[mine["kind"] != "total"]["kind"]))),
                f"{rate:.0f}",
            ]
        )
    say(f"shape hidden {args.hidden}, heads {args.heads}, layers {args.layers}; run {run_dir}")
    say(
        table(
            ["change", "plan (s)", "measured (s)", "plan (MB)", "measured (MB)", "what moved", "peer MB/s"],
            rows,
            name="spotserve-real-migrations",
        )
    )
    say(
        f"completed {summary['completed']} of {summary['queries_sent']}, unfinished {summary['unfinished']}, "
        f"resumed {summary['resumed_requests']}; latency p50 {summary['latency_p50_s']:.2f} s"
    )


if __name__ == "__main__":
    main()
