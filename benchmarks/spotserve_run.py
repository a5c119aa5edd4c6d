"""SpotServe runs: the paper's comparison on both cost-model footings, and what runs cost.

    python -m benchmarks.spotserve_run [--skip-wall] [--skip-sweeps]

1. The paper's comparison (20B, the four end-to-end spot traces, the three approaches) on the
   virtual clock, with the prefill charged the GPipe way (ours) and the artifact's way
   (`model.latency_model`), next to the paper's numbers (tradeoff_plot.py's embedded 20B values).
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

from benchmarks.common import ROOT, free_base_port, run, say, table

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


def comparison() -> None:
    out = Path(tempfile.mkdtemp(prefix="bench-spot-"))
    got: dict[tuple[str, str, str], dict[str, float]] = {}
    for footing in ("gpipe", "artifact"):
        for trace in TRACES:
            for approach in APPROACHES:
                s = run("system=spotserve", "clock=virtual", "model=20B", f"trace={trace}", f"approach={approach}",
                        f"model.latency_model={footing}", out=out / f"{footing}-{trace}-{approach}")  # fmt: skip
                got[(footing, trace, approach)] = s
    rows = []
    for trace in TRACES:
        for k, stat in enumerate(("mean", "P99")):
            key = "latency_mean_s" if stat == "mean" else "latency_p99_s"
            paper = PAPER[trace][k]
            cells = [trace, stat]
            for i, approach in enumerate(APPROACHES):
                ours = [got[(f, trace, approach)][key] for f in ("gpipe", "artifact")]
                cells.append(f"{paper[i]:.1f} / {ours[0]:.1f} / {ours[1]:.1f}")
            ratios = []
            for footing in ("paper", "gpipe", "artifact"):
                base = paper if footing == "paper" else tuple(got[(footing, trace, a)][key] for a in APPROACHES)
                ratios.append(f"{base[0] / base[2]:.2f}, {base[1] / base[2]:.2f}")
            cells += ratios
            rows.append(cells)
    say(table(["trace", "stat", "reparallelization (paper / gpipe / artifact)", "rerouting", "spotserve",
               "baselines / spotserve: paper", "gpipe", "artifact"], rows))  # fmt: skip


def sweep(args: list[str]) -> tuple[float, int]:
    out = Path(tempfile.mkdtemp(prefix="bench-spot-sweep-"))
    cmd = [sys.executable, "-m", "orchestrator", "-m", f"paths.output_dir={out}", "run.progress=false", *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    return time.perf_counter() - t0, proc.stdout.count("Run directory:") or proc.stdout.count("jobs completed")


def speed() -> None:
    out = Path(tempfile.mkdtemp(prefix="bench-spot-engine-"))
    engine = []
    for _ in range(3):
        run("system=spotserve", "clock=virtual", "model=20B", "trace=As", out=out)
        engine.append(json.loads((out / "run" / "engine.json").read_text())["engine_s"])
    rows = [["one 20B A_S run (the engine's own time)", 1, f"{sorted(engine)[1]:.2f}"]]
    fig6 = ["system=spotserve", "clock=virtual", "model=20B", "trace=As,Bs,As+o,Bs+o",
            "approach=spotserve,reparallelization,rerouting"]  # fmt: skip
    took, _ = sweep(fig6)
    rows.append(["Figure 6 (20B): 4 traces x 3 approaches, basic launcher, MLflow included", 12, f"{took:.0f}"])
    for launcher in ("basic", "joblib"):
        took, _ = sweep(["experiment=spotserve_figures", f"hydra/launcher={launcher}"])
        rows.append([f"Figures 6-9 (experiment=spotserve_figures), {launcher} launcher", 54, f"{took:.0f}"])
    say(table(["virtual clock", "runs", "wall (s)"], rows))


def startup() -> None:
    rows = []
    for processes in ("instance", "gpu"):
        out = Path(tempfile.mkdtemp(prefix="bench-spot-wall-"))
        cmd = [sys.executable, "-m", "orchestrator", "system=spotserve", "model=20B", "trace=As", "time_scale=60",
               f"execution.worker_processes={processes}", f"paths.output_dir={out}", "run.progress=false",
               f"hostfile.base_port={free_base_port(60)}", "tracking.enabled=false"]  # fmt: skip
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        deployed = next(line for line in proc.stderr.splitlines() if "Deployed" in line)
        roles = int(deployed.split("Deployed ")[1].split()[0])
        seconds = float(deployed.rsplit(" in ", 1)[1].split()[0])
        s = json.loads(next(out.glob("spotserve/runs/*/summary.json")).read_text())
        latency = f"{s['latency_mean_s']:.1f} / {s['latency_p99_s']:.1f}"
        rows.append([processes, roles, f"{seconds:.1f}", f"{wall:.1f}", latency])
    say(table(["worker processes", "processes started", "start-up (s)", "whole run (s)", "mean / P99 (s)"], rows))


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
