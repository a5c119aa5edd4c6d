"""How the virtual clock scales (issue "speed and scale of the instrument").

    python -m benchmarks.scaling [--lengths 1,10,100]

1. Workers: 16, 64, 256 and 1,024 DiffServe workers (sdxs) at proportional load (a diurnal
   trace between 0.25 and 2 q/s per worker, as 3to24qps is for 12), 60 trace seconds each.
2. Trace length: the default run (sdxs 3to24qps, 12 workers) replayed 1x, 10x and 100x as long.

Each row is the engine's own time (`VirtualRun.engine_s`: building the cores and replaying
every event; trace generation, analysis and the files are not in it), events per second and
microseconds per query; a row under 10 s is the median of 3. The exponent is the slope of
log(engine time) on log(work) between the first and the last row, work being queries: 1.00 is
linear.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
from pathlib import Path

from benchmarks.common import say, table
from orchestrator.compose import load_plan

WORKERS = (16, 64, 256, 1024)
WORKER_TRACE_S = 60


def replay(overrides: list[str]) -> tuple[int, int, float]:
    """(queries, events, engine seconds) of one virtual replay; median of 3 when it is quick."""
    plan = load_plan(["clock=virtual", "tracking.enabled=false", "run.progress=false", *overrides])
    times, events = [], 0
    for _ in range(3):
        with tempfile.TemporaryDirectory() as tmp:
            run = plan.system.run_virtual(plan, Path(tmp))
        times.append(run.engine_s)
        events = run.events
        if run.engine_s >= 10.0:
            break
    return len(plan.trace), events, statistics.median(times)


def rows_of(label: str, cases: list[tuple[str, list[str]]]) -> tuple[list[list[str]], float]:
    rows, points = [], []
    for name, overrides in cases:
        queries, events, took = replay(overrides)
        points.append((queries, took))
        rows.append(
            [name, f"{queries:,}", f"{events:,}", f"{took:.2f}", f"{events / took:,.0f}", f"{took / queries * 1e6:.1f}"]
        )
        say(f"  {label} {name}: {queries:,} queries, {took:.2f} s")
    (q0, t0), (q1, t1) = points[0], points[-1]
    return rows, math.log(t1 / t0) / math.log(q1 / q0)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling")
    parser.add_argument("--lengths", default="1,10,100", help="trace lengths, multiples of 3to24qps's 347 s")
    args = parser.parse_args()
    header = ["run", "queries", "events", "engine s", "events/s", "µs/query"]
    worker_cases = [
        (
            f"{w} workers",
            [
                f"hostfile.workers={w}",
                f"trace.low_qps={w / 4:g}",
                f"trace.high_qps={2 * w:g}",
                f"trace.duration_s={WORKER_TRACE_S}",
            ],
        )
        for w in WORKERS
    ]
    rows, exponent = rows_of("workers", worker_cases)
    rows.append(["exponent (time on queries)", "", "", "", "", f"{exponent:.2f}"])
    say(f"\nWorkers at proportional load, {WORKER_TRACE_S} trace seconds each (sdxs, diffserve):\n")
    say(table(header, rows, name="scaling-workers"))
    lengths = [int(x) for x in args.lengths.split(",")]
    length_cases = [(f"{k}x 3to24qps", [f"trace.duration_s={347 * k}"]) for k in lengths]
    rows, exponent = rows_of("length", length_cases)
    rows.append(["exponent (time on queries)", "", "", "", "", f"{exponent:.2f}"])
    say("\nTrace length, the default run's 12 workers and rates:\n")
    say(table(header, rows, name="scaling-length"))


if __name__ == "__main__":
    main()
