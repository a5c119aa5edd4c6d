"""Wall time of a compressed SpotServe run: 20B on the A_S trace, each approach.

    python -m benchmarks.spotserve_run [--time-scale 60] [--trace As]

One real run per approach (every role a process talking gRPC, 44 workers for the 11 instances
A_S ever adds, simulated execution). The trace lasts 1320 trace seconds: at 60x the replay
itself takes 22 wall seconds; the rest is starting the roles, draining and analysing. The
table gives the wall time, the part of it that is not the replay, and the run's latency, so
that a change to the testbed's cost shows next to its effect on the results.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.common import run, say, table

APPROACHES = ("spotserve", "reparallelization", "rerouting")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--time-scale", type=float, default=60.0)
    parser.add_argument("--trace", default="As")
    args = parser.parse_args()
    rows = []
    for approach in APPROACHES:
        t0 = time.perf_counter()
        s = run(
            "system=spotserve",
            "model=20B",
            f"trace={args.trace}",
            f"approach={approach}",
            f"time_scale={args.time_scale}",
        )
        wall = time.perf_counter() - t0
        replay = float(s["trace_duration_s"])
        rows.append(
            [
                approach,
                s["workers"],
                f"{wall:.1f}",
                f"{replay / args.time_scale:.1f}",
                f"{wall - replay / args.time_scale:.1f}",
                f"{s['latency_mean_s']:.1f}",
                f"{s['latency_p99_s']:.1f}",
                s["completed"],
                s["unfinished"],
            ]
        )
    header = [
        "approach",
        "workers",
        "wall (s)",
        "replay (s)",
        "other (s)",
        "mean latency (s)",
        "P99 latency (s)",
        "completed",
        "unfinished",
    ]
    say(f"20B on {args.trace} at {args.time_scale:g}x")
    say(table(header, rows))


if __name__ == "__main__":
    main()
