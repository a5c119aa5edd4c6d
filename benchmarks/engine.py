"""The virtual clock's speed (issue "one decision code, two clocks").

    python -m benchmarks.engine [--skip-sweep]

1. The event loop: our plain heap against SimPy's event loop (simpy.Environment with its own
   (time, priority, id) ordering), both driving the same DiffServe model, on sdxs 3to24qps
   (12 workers) and on 64 workers at 10x the rate of 4to32qps; median of 5, the two loops in
   turns; both must give the same records.
2. `python -m orchestrator clock=virtual cascade=sdxs trace=3to24qps`: the engine's own time
   (engine.json) and the whole command's wall time, Python start and MLflow included (median
   of 3, into a store that already exists, as every run but the first); and `--help`, from
   the config folder and through Hydra.
3. A 48-run DiffServe sweep on the virtual clock (3 cascades x 4 approaches x 4 traces) with
   Hydra's basic launcher, MLflow included.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, compose_config, say, table, users_env
from orchestrator.plan import resolve
from orchestrator.systems.base import RunPlan
from runtime.engine.diffserve import DiffServeModel
from runtime.engine.loop import Engine
from runtime.traces.confidence import for_cascade

ROUNDS = 5
WORKLOADS = {
    "sdxs 3to24qps, 12 workers": ("cascade=sdxs", "trace=3to24qps"),
    "sdxs 40-320 q/s, 64 workers": (
        "cascade=sdxs",
        "trace=4to32qps",
        "trace.low_qps=40",
        "trace.high_qps=320",
        "hostfile.workers=64",
    ),
}


class SimPyEngine:
    """The same interface as runtime.engine.loop.Engine on SimPy's event loop."""

    def __init__(self, model: Any) -> None:
        import simpy

        self.env = simpy.Environment()
        self.model = model
        self.handled = 0
        self._stop = lambda: False

    def schedule(self, event: Any) -> None:
        import simpy

        ev = simpy.Event(self.env)
        ev._ok, ev._value = True, None
        ev.callbacks.append(lambda _fired: self._handle(event))
        self.env.schedule(ev, priority=event.PRIORITY, delay=event.time - self.env.now)

    def schedule_all(self, events: Any) -> None:
        for e in events:
            self.schedule(e)

    def _handle(self, event: Any) -> None:
        import simpy

        self.handled += 1
        for follow in event.handle(self.model):
            self.schedule(follow)
        if self._stop():
            raise simpy.core.StopSimulation(None)

    def run(self, stop: Any) -> None:
        import simpy

        self._stop = stop
        with contextlib.suppress(simpy.core.StopSimulation):
            self.env.run()


def model_of(plan: RunPlan) -> DiffServeModel:
    c = plan.config.cascade
    assert c is not None
    confidence = for_cascade(c.deferral_curve.x, c.deferral_curve.y, c.num_prompts, plan.config.seed, None)
    workers = [a.name for a in plan.addresses if a.role == "worker"]
    drain = plan.system.drain_s(plan.config)
    return DiffServeModel(plan.config, plan.trace.arrival_s, plan.trace.prompt_index, workers, confidence, drain)


def one(plan: RunPlan, kind: str) -> tuple[float, int, list[dict[str, Any]]]:
    t0 = time.perf_counter()
    model = model_of(plan)
    engine: Any = Engine(model) if kind == "heap" else SimPyEngine(model)
    engine.schedule_all(model.start())
    engine.run(stop=lambda: model.finished)
    took = time.perf_counter() - t0
    return took, engine.handled, model.client.table().to_pylist()


def loops() -> None:
    rows = []
    for name, overrides in WORKLOADS.items():
        plan = resolve(compose_config("clock=virtual", *overrides))
        results: dict[str, list[tuple[float, int, list[dict[str, Any]]]]] = {"heap": [], "simpy": []}
        for _ in range(ROUNDS):  # in turns: a change of the machine's pace weighs on both loops alike
            for kind, got in results.items():
                got.append(one(plan, kind))
        assert results["heap"][0][2] == results["simpy"][0][2], "both loops give the same records"
        heap = statistics.median(r[0] for r in results["heap"])
        simpy_s = statistics.median(r[0] for r in results["simpy"])
        events = results["heap"][0][1]
        trace_s = plan.trace.duration_s
        rows.append(
            [
                name,
                len(plan.trace),
                events,
                f"{heap:.2f}",
                f"{simpy_s:.2f}",
                f"{simpy_s / heap:.2f}",
                f"{events / heap:,.0f}",
                f"{trace_s / heap:,.0f}x",
            ]
        )
    say(
        table(
            [
                "workload",
                "queries",
                "events",
                "heap (s)",
                "SimPy (s)",
                "SimPy / heap",
                "events/s (heap)",
                "faster than real time",
            ],
            rows,
            name="engine-loop",
        )
    )


def command() -> None:
    out = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    cmd = [
        sys.executable,
        "-m",
        "orchestrator",
        "clock=virtual",
        "cascade=sdxs",
        "trace=3to24qps",
        f"paths.output_dir={out}",
    ]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, env=users_env())  # creates the store, the cache
    walls, engines = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, env=users_env())
        walls.append(time.perf_counter() - t0)
        latest = sorted((out / "diffserve" / "runs").iterdir())[-1]
        engines.append(json.loads((latest / "engine.json").read_text())["engine_s"])
    say(
        table(
            ["command", "engine (s)", "whole command (s)"],
            [
                [
                    "clock=virtual cascade=sdxs trace=3to24qps",
                    f"{statistics.median(engines):.2f}",
                    f"{statistics.median(walls):.2f}",
                ]
            ],
            name="engine-command",
        )
    )
    helps = {
        "python -m orchestrator --help (from the config folder)": [sys.executable, "-m", "orchestrator", "--help"],
        "the same help through Hydra (orchestrator.app)": [
            sys.executable,
            "-c",
            "import sys; sys.argv = ['orchestrator', '--help']; from orchestrator.app import main; main()",
        ],
    }
    rows = []
    for label, help_cmd in helps.items():
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run(help_cmd, cwd=ROOT, check=True, capture_output=True, env=users_env())
            times.append(time.perf_counter() - t0)
        rows.append([label, f"{statistics.median(times):.2f}"])
    say(table(["command", "wall (s), median of 3"], rows, name="startup-help"))


def sweep() -> None:
    out = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    cmd = [
        sys.executable,
        "-m",
        "orchestrator",
        "-m",
        "clock=virtual",
        "cascade=sdturbo,sdxs,sdxlltn",
        "approach=diffserve,static,all_light,all_heavy",
        "trace=1to8qps,2to16qps,3to24qps,4to32qps",
        f"paths.output_dir={out}",
        "run.progress=false",
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False, env=users_env())
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"the sweep failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    done = sum(line.startswith("job ") and " done: " in line for line in proc.stdout.splitlines())
    say(
        table(
            ["sweep", "runs", "wall (s)", "per run (s)"],
            [
                [
                    "3 cascades x 4 approaches x 4 traces, basic launcher",
                    done,
                    f"{took:.0f}",
                    f"{took / max(done, 1):.1f}",
                ]
            ],
            name="engine-sweep",
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.engine")
    parser.add_argument("--skip-sweep", action="store_true")
    args = parser.parse_args()
    loops()
    command()
    if not args.skip_sweep:
        sweep()


if __name__ == "__main__":
    main()
