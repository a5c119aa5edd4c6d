"""How far the wall testbed is from the virtual clock, and whether its cadence holds.

    python -m benchmarks.fidelity [--time-scale 10] [--skip-cadence]

1. The fidelity report (orchestrator.fidelity) for sdturbo, sdxs and sdxlltn on 3to24qps with
   the adaptive controller: virtual, wall (at --time-scale) and their difference.
2. Planning cadence: the same 60-s trace on the wall clock at time_scale 1, 10 and 30 (and on
   the virtual clock): plans made, the largest distance of a plan from its due time (a multiple
   of approach.period_s), the heartbeat gaps and the client's send lag, all in trace seconds.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import run, say, table
from orchestrator.fidelity import report


def fidelity(time_scale: float) -> None:
    out = Path(tempfile.mkdtemp(prefix="bench-fidelity-"))
    per_cascade = {}
    for cascade in ("sdturbo", "sdxs", "sdxlltn"):
        overrides = [
            f"cascade={cascade}",
            "trace=3to24qps",
            f"time_scale={time_scale:g}",
            "run.progress=false",
            f"paths.output_dir={out}",
            "tracking.enabled=false",
        ]
        rows, keeping, _ = report(overrides, out / cascade)
        per_cascade[cascade] = {r.label: r for r in rows + keeping}
    labels = list(next(iter(per_cascade.values())))
    body = []
    for label in labels:
        cells = []
        for by_label in per_cascade.values():
            r = by_label[label]
            diff = "" if label.startswith(("client", "heartbeat")) else f" ({r.diff:+.3g})"
            cells.append(f"{r.virtual:.3g} / {r.wall:.3g}{diff}")
        body.append([label, *cells])
    say(table(["virtual / wall (wall - virtual)", *per_cascade], body, name="fidelity"))


def cadence() -> None:
    rows = []
    common = ("cascade=sdxs", "trace=3to24qps", "trace.duration_s=60", "approach=diffserve")
    for clock, scale in (("virtual", 1.0), ("wall", 1.0), ("wall", 10.0), ("wall", 30.0)):
        out = Path(tempfile.mkdtemp(prefix="bench-cadence-"))
        s = run(*common, f"clock={clock}", f"time_scale={scale:g}", out=out)
        decisions = pd.read_parquet(out / "run" / "roles" / "controller" / "decisions.parquet")
        plans = decisions[decisions["time"] < 57.5]  # the plans due at 0, 5, ..., 55
        late = float(np.max(plans["time"] - 5.0 * np.floor(plans["time"] / 5.0 + 1e-9)))
        rows.append(
            [
                clock,
                f"{scale:g}",
                len(plans),
                f"{late:.3f}",
                f"{s['heartbeat_gap_p50_s']:.3f}",
                f"{s['heartbeat_gap_max_s']:.3f}",
                f"{s['client_send_lag_p99_s']:.3f}",
            ]
        )
    say(
        table(
            [
                "clock",
                "time_scale",
                "plans due in 0-55 s",
                "latest plan after its due time (s)",
                "heartbeat gap p50 (s)",
                "max (s)",
                "client send lag p99 (s)",
            ],
            rows,
            name="fidelity-cadence",
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fidelity")
    parser.add_argument("--time-scale", type=float, default=10.0)
    parser.add_argument("--skip-cadence", action="store_true")
    args = parser.parse_args()
    fidelity(args.time_scale)
    if not args.skip_cadence:
        cadence()


if __name__ == "__main__":
    main()
