"""DiffServe at the paper's scale: the README's table, its claims and its figure, from runs.

    python -m benchmarks.diffserve_paper [--figure PATH]

The runs of `experiment=diffserve_paper` (16 GPU workers, the 4-to-32 q/s trace, the three
cascades, DiffServe and the four baselines, seeds 0, 1, 2; the planner's queueing term is ours,
`approach.queueing=capacity`), plus DiffServe with the artifact's queueing term
(`approach.queueing=artifact`), on the virtual clock without MLflow. Prints, mean +- std over
the seeds: the SLO violation ratio (ours, and the artifact's plotting script on the counts its
controller would have logged), the FID (the table estimate, and the artifact's script), p99 and
the light fraction; then DiffServe's improvements over each baseline against the abstract's.
--figure writes Figure 6 (orchestrator's comparison figure) to PATH.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import run, say, table

CASCADES = ("sdturbo", "sdxs", "sdxlltn")
APPROACHES = {
    "diffserve": "**DiffServe**",
    "static": "DiffServe-Static",
    "proteus": "Proteus",
    "all_light": "Clipper-Light",
    "all_heavy": "Clipper-Heavy",
}
SEEDS = (0, 1, 2)
PAPER = ("trace=4to32qps", "hostfile.workers=16")
COLUMNS = (
    ("slo_violation_ratio", 4),
    ("slo_violation_ratio_artifact_recipe", 4),
    ("fid", 2),
    ("fid_artifact_recipe", 2),
    ("latency_p99_s", 2),
    ("light_fraction", 2),
)


def cell(values: list[float], digits: int) -> str:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "n/a"
    spread = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return f"{statistics.fmean(finite):.{digits}f} ± {spread:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.diffserve_paper")
    parser.add_argument("--figure", type=Path, default=None, help="write Figure 6 here (PNG)")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="bench-diffserve-paper-"))
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    variants: list[tuple[str, tuple[str, ...]]] = [(a, (f"approach={a}",)) for a in APPROACHES]
    variants.append(("diffserve+artifact queueing", ("approach=diffserve", "approach.queueing=artifact")))
    for cascade in CASCADES:
        for name, overrides in variants:
            runs[(cascade, name)] = [
                run(
                    *PAPER,
                    f"cascade={cascade}",
                    *overrides,
                    f"seed={seed}",
                    "clock=virtual",
                    out=Path(tempfile.mkdtemp(dir=out)),
                )
                for seed in SEEDS
            ]
    rows = []
    for cascade in CASCADES:
        for name, _ in variants:
            label = APPROACHES.get(name, "DiffServe, the artifact's queueing term")
            approach = name.split("+")[0]
            summaries = runs[(cascade, name)]
            cells = [cascade, f"{label} (`{approach}`)"]
            for key, digits in COLUMNS:
                text = cell([float(s[key]) for s in summaries], digits)
                notes = " ".join(str(s.get("fid_artifact_recipe_note", "")) for s in summaries)
                if key == "fid_artifact_recipe" and notes.strip():
                    text += " ‡" if "stops" in notes else " †"
                cells.append(text)
            rows.append(cells)
    say("DiffServe at the paper's scale (16 GPU workers, 4to32qps, virtual clock), mean ± std over seeds 0, 1, 2")
    say(
        table(
            [
                "cascade",
                "approach",
                "SLO violation ratio",
                "SLO, artifact's script",
                "FID, table estimate",
                "FID, artifact's script",
                "p99 (s)",
                "light fraction",
            ],
            rows,
            name="diffserve-paper",
        )
    )
    say("† the script's heavy/all ratio is 0/0 (no heavy-served query): it prints its fit at the all-heavy end")
    say("‡ no query entered a light worker: the script stops with an error")
    say("")

    def mean(cascade: str, name: str, key: str) -> float:
        return statistics.fmean(float(s[key]) for s in runs[(cascade, name)])

    claims = []
    for cascade in CASCADES:
        for name in list(APPROACHES)[1:]:
            fid = 1 - mean(cascade, "diffserve", "fid") / mean(cascade, name, "fid")
            ours, theirs = mean(cascade, "diffserve", "slo_violation_ratio"), mean(cascade, name, "slo_violation_ratio")
            slo = f"{(1 - ours / theirs) * 100:.1f} %" if theirs > 0 else "n/a (0 violations)"
            claims.append([cascade, APPROACHES[name], f"{fid * 100:+.1f} %", slo])
    say("DiffServe against each baseline (table FID: + is better quality; violations: lower by)")
    say(table(["cascade", "baseline", "FID better by", "violations lower by"], claims, name="diffserve-paper-claims"))
    if args.figure is not None:
        from orchestrator.report import aggregate
        from orchestrator.systems.diffserve.figures import comparison_figures

        flat = [
            {**s, "run_id": f"{c}-{n}-{i}", "approach": n}
            for (c, n), summaries in runs.items()
            if n in APPROACHES
            for i, s in enumerate(summaries)
        ]
        keys = ("approach", "cascade", "trace", "trace_duration_s", "clock", "time_scale", "execution")
        cols = [(k, k) for k in ("slo_violation_ratio", "fid", "fid_artifact_recipe")]
        paths = comparison_figures(aggregate(flat, keys, cols), out, "experiment=diffserve_paper, seeds 0-2")
        args.figure.write_bytes(paths[0].read_bytes())
        say(f"Figure 6: {args.figure}")


if __name__ == "__main__":
    main()
