"""SpotServe runs: the paper's comparison on both cost-model footings, and what runs cost.

    python -m benchmarks.spotserve_run [--skip-wall] [--skip-sweeps]

1. The paper's comparison (20B, the four end-to-end spot traces, the three approaches) on the
   virtual clock: the 16 ratios of baselines to spotserve on our GPipe footing, with the
   artifact's latency model alone, and with the whole preset (`experiment=spotserve_artifact`:
   its latency model and mechanics), next to the paper's (tradeoff_plot.py's embedded 20B
   values), the absolute latencies, and an ablation of the preset's parts.
2. The virtual clock's speed: one 20B A_S run's engine time, the 12 runs of Figure 6 (20B) as
   one sweep, and the whole figure set (`experiment=spotserve_figures`, 54 runs) with the basic
   and the joblib launcher.
3. The wall testbed's start-up with the simulated GPUs of one instance sharing a process (the
   default) against one process a GPU (`execution.worker_processes=gpu`), 20B on A_S at 60x.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, run, say, table
from labkit import free_base_port

TRACES = ("As", "Bs", "As+o", "Bs+o")
APPROACHES = ("reparallelization", "rerouting", "spotserve")
# The paper's 20B numbers, seconds (the artifact's tradeoff_plot.py): mean and P99 per trace,
# reparallelization / rerouting / spotserve.
PAPER = {
    "As": ((32.05, 26.33, 23.52), (61.29, 51.01, 46.11)),
    "Bs": ((27.07, 47.57, 23.32), (56.28, 99.12, 37.08)),
    "As+o": ((32.66, 30.37, 23.42), (65.82, 50.73, 49.01)),
    "Bs+o": ((31.92, 24.58, 20.72), (73.26, 43.24, 33.39)),
}
STATS = (("mean", "latency_mean_s"), ("P99", "latency_p99_s"))
TOLERANCE = 0.15  # a ratio "matches" within +-15 % of the paper's
MECHANICS = (
    "jit_interruption",
    "power_of_two_batches",
    "deadline_from_cost",
    "fix_factor_planning_only",
    "old_batching",
)
# The AE script (scripts_ae/aws_e2e.sh) runs 20B on As+o without --old-batching.
AE_PER_TRACE = {"As+o": ("spot.mechanics.old_batching=false",)}
# Footings: ours (a GPipe system), the artifact's latency model alone, and the whole preset.
FOOTINGS = {
    "gpipe": (),
    "latency model": ("model.latency_model=artifact",),
    "preset": ("experiment=spotserve_artifact",),
}
# The ablation: the preset with one part taken out at a time.
ABLATION = {
    "preset": ("experiment=spotserve_artifact",),
    **{f"- {m}": ("experiment=spotserve_artifact", f"spot.mechanics.{m}=false") for m in MECHANICS},
    "- latency model": ("experiment=spotserve_artifact", "model.latency_model=gpipe"),
}

SEEDS = (0, 1, 2)
RESTARTS = (5, 15, 30, 45)  # the what-if's engine start-up times, seconds

Runs = dict[tuple[str, str], dict[str, float]]  # (trace, approach) -> summary


def runs_of(overrides: tuple[str, ...], out: Path) -> Runs:
    got: Runs = {}
    for trace in TRACES:
        for approach in APPROACHES:
            if "experiment=spotserve_artifact" in overrides and not any("old_batching" in o for o in overrides):
                overrides_here = (*overrides, *AE_PER_TRACE.get(trace, ()))
            else:
                overrides_here = overrides
            label = "-".join([*overrides_here, trace, approach])
            folder = Path(
                tempfile.mkdtemp(prefix="".join(c if c.isalnum() or c in "-_+" else "_" for c in label), dir=out)
            )
            got[(trace, approach)] = run(
                "system=spotserve",
                "clock=virtual",
                "model=20B",
                f"trace={trace}",
                f"approach={approach}",
                *overrides_here,
                out=folder,
            )
    return got


def ratios(got: Runs) -> list[float]:
    """The 16 ratios of the paper's table: per trace and statistic, each baseline / spotserve."""
    out = []
    for trace in TRACES:
        for _, key in STATS:
            spot = got[(trace, "spotserve")][key]
            out += [got[(trace, a)][key] / spot for a in APPROACHES[:2]]
    return out


def paper_ratios() -> list[float]:
    return [PAPER[t][k][i] / PAPER[t][k][2] for t in TRACES for k in range(2) for i in range(2)]


def within(ours: list[float], paper: list[float]) -> list[bool]:
    return [abs(o / p - 1) <= TOLERANCE for o, p in zip(ours, paper, strict=True)]


def absolute_within(got: Runs) -> int:
    """Of the paper's 24 latencies (mean and P99 of every approach on every trace), how many
    ours come within +-15 % of."""
    return sum(
        abs(got[(t, a)][key] / PAPER[t][k][i] - 1) <= TOLERANCE
        for t in TRACES
        for k, (_, key) in enumerate(STATS)
        for i, a in enumerate(APPROACHES)
    )


def comparison() -> None:
    out = Path(tempfile.mkdtemp(prefix="bench-spot-"))
    paper = paper_ratios()
    seeds = {name: [runs_of((*over, f"seed={seed}"), out) for seed in SEEDS] for name, over in FOOTINGS.items()}
    runs = {name: per_seed[0] for name, per_seed in seeds.items()}
    rows: list[list[Any]] = []
    for n, (trace, (stat, _)) in enumerate((t, s) for t in TRACES for s in STATS):
        cells = [trace, stat, f"{paper[2 * n]:.2f}, {paper[2 * n + 1]:.2f}"]
        for name in FOOTINGS:
            r = ratios(runs[name])[2 * n : 2 * n + 2]
            ok = within(r, paper[2 * n : 2 * n + 2])
            cells.append(", ".join(f"{v:.2f}{'' if good else '*'}" for v, good in zip(r, ok, strict=True)))
        rows.append(cells)
    counts = {name: sum(within(ratios(runs[name]), paper)) for name in FOOTINGS}
    rows.append(["", "within +-15 %, seed 0", "16 of 16", *(f"{counts[n]} of 16" for n in FOOTINGS)])
    per_seed = {n: "/".join(str(sum(within(ratios(r), paper))) for r in seeds[n]) for n in FOOTINGS}
    rows.append(["", f"within +-15 %, seeds {'/'.join(map(str, SEEDS))}", "", *(per_seed[n] for n in FOOTINGS)])
    absolute = {n: "/".join(str(absolute_within(r)) for r in seeds[n]) for n in FOOTINGS}
    rows.append(["", "latencies within +-15 % (of 24), per seed", "", *(absolute[n] for n in FOOTINGS)])
    say("Baselines / spotserve (reparallelization, rerouting), 20B, virtual clock; * = off by more than 15 %")
    say(table(["trace", "stat", "paper", *FOOTINGS], rows, name="spotserve-paper"))
    say("")
    rows = []
    for trace in TRACES:
        for k, (stat, key) in enumerate(STATS):
            cells = [trace, stat]
            for i, approach in enumerate(APPROACHES):
                cells.append(
                    f"{PAPER[trace][k][i]:.1f} / {runs['gpipe'][(trace, approach)][key]:.1f} / "
                    f"{runs['preset'][(trace, approach)][key]:.1f}"
                )
            rows.append(cells)
    say("Latency, seconds, seed 0: paper / gpipe / preset")
    say(table(["trace", "stat", *APPROACHES], rows, name="spotserve-approaches"))
    say("")
    ablation = {name: runs_of(over, out) if name != "preset" else runs["preset"] for name, over in ABLATION.items()}
    base = ratios(ablation["preset"])
    labels = [f"{t} {s} {a[:5]}" for t in TRACES for s, _ in STATS for a in APPROACHES[:2]]
    rows = []
    for name, got in ablation.items():
        r = ratios(got)
        moved = sorted(range(16), key=lambda i: -abs(r[i] - base[i]))[:3]
        biggest = ", ".join(f"{labels[i]} {base[i]:.2f}->{r[i]:.2f}" for i in moved if abs(r[i] - base[i]) >= 0.01)
        rows.append([name, f"{sum(within(r, paper))} of 16", biggest if name != "preset" else ""])
    say("The preset's parts, one taken out at a time (seed 0); the ratios each moves most")
    say(table(["preset", "within +-15 %", "largest moves (preset -> without)"], rows, name="spotserve-presets"))
    say("")
    rows = []
    for restart in RESTARTS:
        r = ratios(runs_of(("experiment=spotserve_artifact", f"spot.restart_s={restart}"), out))
        rows.append([restart, f"{sum(within(r, paper))} of 16", " ".join(f"{v:.2f}" for v in r)])
    say("What-if, not the preset: an engine start (spot.restart_s) the artifact never records (seed 0)")
    say(table(["spot.restart_s", "within +-15 %", "the 16 ratios"], rows, name="spotserve-restart"))


def sweep(args: list[str]) -> tuple[float, int]:
    out = Path(tempfile.mkdtemp(prefix="bench-spot-sweep-"))
    cmd = [sys.executable, "-m", "orchestrator", "-m", f"paths.output_dir={out}", "run.progress=false", *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    return time.perf_counter() - t0, proc.stdout.count("Run directory:") or proc.stdout.count("jobs completed")


def speed() -> None:
    engine = []
    for _ in range(3):  # a directory each: a run directory holds one run
        out = Path(tempfile.mkdtemp(prefix="bench-spot-engine-"))
        run("system=spotserve", "clock=virtual", "model=20B", "trace=As", out=out)
        engine.append(json.loads((out / "run" / "engine.json").read_text())["engine_s"])
    rows = [["one 20B A_S run (the engine's own time)", 1, f"{sorted(engine)[1]:.2f}"]]
    fig6 = [
        "system=spotserve",
        "clock=virtual",
        "model=20B",
        "trace=As,Bs,As+o,Bs+o",
        "approach=spotserve,reparallelization,rerouting",
    ]
    took, _ = sweep(fig6)
    rows.append(["Figure 6 (20B): 4 traces x 3 approaches, basic launcher, MLflow included", 12, f"{took:.0f}"])
    for launcher in ("basic", "joblib"):
        took, _ = sweep(["experiment=spotserve_figures", f"hydra/launcher={launcher}"])
        rows.append([f"Figures 6-9 (experiment=spotserve_figures), {launcher} launcher", 54, f"{took:.0f}"])
    say(table(["virtual clock", "runs", "wall (s)"], rows, name="spotserve-speed"))


def startup() -> None:
    rows = []
    for processes in ("instance", "gpu"):
        out = Path(tempfile.mkdtemp(prefix="bench-spot-wall-"))
        cmd = [
            sys.executable,
            "-m",
            "orchestrator",
            "system=spotserve",
            "model=20B",
            "trace=As",
            "time_scale=60",
            f"execution.worker_processes={processes}",
            f"paths.output_dir={out}",
            "run.progress=false",
            f"hostfile.base_port={free_base_port(60)}",
            "tracking.enabled=false",
            # one process per GPU is 48 role processes here: past the bound for 2 cores, which
            # is the point of the row (what per-GPU processes cost on one machine)
            "limits.processes_per_core=32",
        ]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        deployed = next(line for line in proc.stderr.splitlines() if "Deployed" in line)
        roles = int(deployed.split("Deployed ")[1].split()[0])
        seconds = float(deployed.rsplit(" in ", 1)[1].split()[0])
        s = json.loads(next(out.glob("spotserve/runs/*/summary.json")).read_text())
        latency = f"{s['latency_mean_s']:.1f} / {s['latency_p99_s']:.1f}"
        rows.append([processes, roles, f"{seconds:.1f}", f"{wall:.1f}", latency])
    say(
        table(
            ["worker processes", "processes started", "start-up (s)", "whole run (s)", "mean / P99 (s)"],
            rows,
            name="spotserve-worker-processes",
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.spotserve_run")
    parser.add_argument("--skip-wall", action="store_true")
    parser.add_argument("--skip-sweeps", action="store_true")
    args = parser.parse_args()
    comparison()
    if not args.skip_sweeps:
        speed()
    if not args.skip_wall:
        startup()


if __name__ == "__main__":
    main()
