"""How the virtual clock scales (issue "speed and scale of the instrument").

    python -m benchmarks.scaling [--lengths 1,10,100] [--ten-million]

1. Workers: 16, 64, 256 and 1,024 DiffServe workers (sdxs) at proportional load (a diurnal
   trace between 0.25 and 2 q/s per worker, as 3to24qps is for 12), 60 trace seconds each.
2. Trace length: the default run (sdxs 3to24qps, 12 workers) replayed 1x, 10x and 100x as long.

Each row is the engine's own time (`VirtualRun.engine_s`: building the cores and replaying
every event; trace generation, analysis and the files are not in it), events per second and
microseconds per query: the median of 3 replays, taken in turns (every row once, three times
over), so that the machine's pace, which moves by a tenth within minutes, weighs on every row
alike and not on the exponent. The exponent is the slope of log(engine time) on log(work)
between the first and the last row, work being queries: 1.00 is linear.

3. Memory: how far a replay (the engine and the files it writes; no analysis) raises its
   process's resident memory at its peak, at 20x and 100x the default trace, each in its own
   process (Linux's peak counter is reset after the plan is made): the slope is what a query
   costs to hold.
4. With --ten-million (about 10 minutes): the whole command, MLflow included, on a trace of
   about 10 million queries (256 workers at 64 to 512 q/s for 33,300 trace seconds): its time,
   its peak RSS and whether its record is complete.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import ROOT, say, table, timed_command
from orchestrator.compose import load_plan

WORKERS = (16, 64, 256, 1024)
WORKER_TRACE_S = 60


ROUNDS = 3


def replays(cases: list[tuple[str, list[str]]]) -> list[tuple[int, int, float]]:
    """(queries, events, median engine seconds) of each case, its replays taken in turns."""
    plans = [load_plan(["clock=virtual", "tracking.enabled=false", "run.progress=false", *o]) for _, o in cases]
    times: list[list[float]] = [[] for _ in plans]
    events = [0] * len(plans)
    for _ in range(ROUNDS):
        for i, plan in enumerate(plans):
            with tempfile.TemporaryDirectory() as tmp:
                run = plan.system.run_virtual(plan, Path(tmp))
            times[i].append(run.engine_s)
            events[i] = run.events
    return [(len(p.trace), e, statistics.median(t)) for p, e, t in zip(plans, events, times, strict=True)]


def rows_of(label: str, cases: list[tuple[str, list[str]]]) -> tuple[list[list[str]], float]:
    rows, points = [], []
    for (name, _), (queries, events, took) in zip(cases, replays(cases), strict=True):
        points.append((queries, took))
        rows.append(
            [name, f"{queries:,}", f"{events:,}", f"{took:.2f}", f"{events / took:,.0f}", f"{took / queries * 1e6:.1f}"]
        )
        say(f"  {label} {name}: {queries:,} queries, {took:.2f} s")
    (q0, t0), (q1, t1) = points[0], points[-1]
    return rows, math.log(t1 / t0) / math.log(q1 / q0)


REPLAY = """
import re, sys, tempfile
from pathlib import Path
from orchestrator.compose import load_plan
def status(key):
    return int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024
plan = load_plan(["clock=virtual", "tracking.enabled=false", "run.progress=false", *sys.argv[1:]])
before = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) counts from here
with tempfile.TemporaryDirectory() as tmp:
    plan.system.run_virtual(plan, Path(tmp))
print(len(plan.trace), status("VmHWM") - before)
"""
MEMORY_LENGTHS = (20, 100)
TEN_MILLION = (
    "clock=virtual",
    "hostfile.workers=256",
    "trace.low_qps=64",
    "trace.high_qps=512",
    "trace.duration_s=33300",
)


def memory() -> list[list[str]]:
    """Peak RSS of a replay at two trace lengths; the slope is bytes held per query."""
    points, rows = [], []
    for k in MEMORY_LENGTHS:
        args = [sys.executable, "-c", REPLAY, f"trace.duration_s={347 * k}"]
        out = subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()
        queries, rss = int(out[-2]), int(out[-1])
        points.append((queries, rss))
        rows.append([f"{k}x 3to24qps", f"{queries:,}", f"+{rss / 2**20:,.0f} MB"])
        say(f"  memory {k}x: {queries:,} queries, +{rss / 2**20:,.0f} MB")
    (q0, m0), (q1, m1) = points
    rows.append(["bytes per query (slope)", "", f"{(m1 - m0) / (q1 - q0):,.0f} B"])
    return rows


def mlflow_record(db: Path) -> str:
    """The run's status and completeness tag, read back through MLflow's client."""
    from mlflow.tracking import MlflowClient

    from orchestrator.tracking import LOGGED_TAG

    client = MlflowClient(f"sqlite:///{db}")
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    return ", ".join(f"{r.info.status} {LOGGED_TAG}={r.data.tags.get(LOGGED_TAG)}" for r in runs) or "none"


def ten_million() -> list[list[str]]:
    """The whole command on a ten-million-query trace, MLflow included."""
    with tempfile.TemporaryDirectory() as tmp:
        cli = (sys.executable, "-m", "orchestrator", "run.progress=false")
        code, line, took, rss = timed_command(*TEN_MILLION, out=Path(tmp), cli=cli, timeout=3600)
        if code != 0:
            raise SystemExit(f"the ten-million-query run failed ({code}): {line}")
        run = max((Path(tmp) / "diffserve" / "runs").iterdir())
        summary = json.loads((run / "summary.json").read_text())
        sink = (run / "roles" / "sink" / "sink.parquet").stat().st_size
        logged = mlflow_record(Path(tmp) / "mlflow.db")
    return [
        ["queries sent", f"{summary['queries_sent']:,}"],
        ["queries lost", f"{summary['queries_lost']:,}"],
        ["whole command", f"{took:,.0f} s"],
        ["peak RSS", f"{rss / 2**30:.1f} GiB"],
        ["sink.parquet", f"{sink / 2**20:,.0f} MB"],
        ["MLflow record (read back)", logged],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling")
    parser.add_argument("--lengths", default="1,10,100", help="trace lengths, multiples of 3to24qps's 347 s")
    parser.add_argument("--ten-million", action="store_true", help="also the whole command on 10M queries")
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
    say("\nMemory a replay adds at its peak (engine and files, no analysis):\n")
    say(table(["run", "queries", "peak RSS added"], memory(), name="scaling-memory"))
    if args.ten_million:
        say("\nTen million queries, the whole command (" + " ".join(TEN_MILLION) + "):\n")
        say(table(["measured", "value"], ten_million(), name="scaling-10m"))


if __name__ == "__main__":
    main()
