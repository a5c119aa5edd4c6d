"""Sweeps in parallel through Hydra's joblib launcher, against its basic launcher (one job at a time).

    python -m benchmarks.sweeps [--quick]

1. The paper-scale DiffServe sweep (experiment=diffserve_paper: 3 cascades x 5 approaches x
   3 seeds = 45 virtual-clock runs of the 347-s trace at 16 workers), with each launcher.
   With `basic`, once more with every job drawing its own figures (`run.figures=true`, what
   every job did before they became optional in sweeps): what the figures cost.
2. A 4-job wall-clock sweep (4 approaches of a 25-s trace at 5x), in parallel (joblib, ports
   chosen so that the jobs never clash) and in sequence.
Wall seconds of the whole command (Python start, the sweep's checks, every job, the report),
each measured in this one run; the ratio is what parallelism buys on this machine's cores.
3. The paper sweep against its floor, in the same run: the same jobs in this one process, each
   config composed and resolved once, then replayed on the engine (no Hydra job, analysis,
   files or MLflow): what a sweep cannot go below on this machine.
4. Where joblib starts to win: six jobs of the paper's scale on 1x, 4x and 16x its trace,
   with each launcher.
--quick: 9 runs of the paper sweep (seed 0, three approaches); the crossover at 1x and 4x.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from benchmarks.common import ROOT, compose_config, say, table, users_env
from labkit import free_base_port

WALL = (
    "trace=1to8qps",
    "trace.duration_s=25",
    "time_scale=5",
    "hostfile.workers=2",
    "run.progress=false",
    "approach=diffserve,static,all_light,proteus",
)


def timed(*args: str) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as out:
        cmd = [sys.executable, "-m", "orchestrator", "-m", *args, f"paths.output_dir={out}"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False, env=users_env())
        took = time.perf_counter() - t0
    if proc.returncode != 0 or "jobs completed" not in proc.stdout:
        raise SystemExit(f"sweep failed: {' '.join(args)}\n{proc.stderr[-2000:]}")
    return took


PAPER_GRIDS = [
    {"cascade": "sdturbo,sdxs,sdxlltn", "approach": "diffserve,static,proteus,all_light,all_heavy", "seed": "0,1,2"}
]
QUICK_GRIDS = [{"cascade": "sdturbo,sdxs,sdxlltn", "approach": "diffserve,static,proteus"}]


def floor(grids: list[dict[str, str]]) -> tuple[int, float, float]:
    """(jobs, seconds composing and resolving them, seconds replaying them on the engine), in
    this one process."""
    import yaml

    from benchmarks.engine import one
    from hydra_plugins.servelab_sweepers.grids_sweeper import expand
    from orchestrator.plan import resolve

    preset = yaml.safe_load((ROOT / "conf" / "experiment" / "diffserve_paper.yaml").read_text())
    assert preset["hydra"]["sweeper"]["grids"] == PAPER_GRIDS, "the preset's grid changed: change PAPER_GRIDS"
    jobs = expand(grids, ["experiment=diffserve_paper"])
    setup = engine = 0.0
    for job in jobs:
        t0 = time.perf_counter()
        plan = resolve(compose_config(*job))
        setup += time.perf_counter() - t0
        engine += one(plan, "heap")[0]
    return len(jobs), setup, engine


# Six jobs of the paper's scale (16 workers, 4to32qps): one cascade, two approaches, three seeds.
CROSSOVER = (
    "experiment=diffserve_paper",
    "hydra.sweeper.grids=[{cascade: sdxs, approach: 'diffserve,static', seed: '0,1,2'}]",
)


def crossover(scales: tuple[int, ...]) -> None:
    """Where joblib's two workers start to beat the basic launcher: the same six jobs on ever
    longer traces (a job's cost grows with its trace; the launchers' fixed costs do not)."""
    rows = []
    for scale in scales:
        duration = f"trace.duration_s={347 * scale}"
        basic = timed(*CROSSOVER, duration, "hydra/launcher=basic")
        parallel = timed(*CROSSOVER, duration, "hydra/launcher=joblib")
        rows.append(
            [
                f"{347 * scale} s ({scale}x)",
                f"{basic / 6:.2f}",
                f"{basic:.1f}",
                f"{parallel:.1f}",
                f"{basic / parallel:.2f}",
            ]
        )
    header = ["6 jobs, trace length", "s a job (basic)", "basic (s)", "joblib (s)", "speed-up"]
    say(table(header, rows, name="sweeps-crossover"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    paper = ["experiment=diffserve_paper"]
    if args.quick:
        paper += ["hydra.sweeper.grids=[{cascade: 'sdturbo,sdxs,sdxlltn', approach: 'diffserve,static,proteus'}]"]
    runs = 9 if args.quick else 45
    rows = []
    parallel = timed(*paper, "hydra/launcher=joblib")
    basic = timed(*paper, "hydra/launcher=basic")
    rows.append(
        [f"DiffServe paper sweep, {runs} virtual runs", f"{basic:.0f}", f"{parallel:.0f}", f"{basic / parallel:.2f}"]
    )
    base = free_base_port(120)
    wall_parallel = timed(*WALL, f"hostfile.base_port={base}", "hydra/launcher=joblib")
    wall_basic = timed(*WALL, f"hostfile.base_port={base}")
    rows.append(
        [
            "4 wall-clock jobs (25 s at 5x)",
            f"{wall_basic:.0f}",
            f"{wall_parallel:.0f}",
            f"{wall_basic / wall_parallel:.2f}",
        ]
    )
    drawn = timed(*paper, "hydra/launcher=basic", "run.figures=true")
    say(f"{os.cpu_count()} cores")
    say(table(["sweep", "basic launcher (s)", "joblib launcher (s)", "speed-up"], rows, name="sweeps"))
    figures = [
        ["per-run figures drawn (run.figures=true)", f"{drawn:.0f}", f"{drawn / runs:.2f}"],
        ["no per-run figures (a sweep's default)", f"{basic:.0f}", f"{basic / runs:.2f}"],
        ["saved", f"{drawn - basic:.0f}", f"{(drawn - basic) / runs:.2f}"],
    ]
    say(table([f"paper sweep, {runs} runs, basic launcher", "s", "s a run"], figures, name="sweeps-figures"))
    jobs, setup, engine = floor(QUICK_GRIDS if args.quick else PAPER_GRIDS)
    assert jobs == runs
    floors = [
        ["the engine alone, every job in one process (the floor)", f"{engine:.1f}", f"{basic / engine:.1f}x"],
        [
            "composing and resolving each job once, and the engine",
            f"{setup + engine:.1f}",
            f"{basic / (setup + engine):.1f}x",
        ],
        ["the sweep, basic launcher (whole command)", f"{basic:.1f}", "1.0x"],
    ]
    say(table([f"paper sweep, {runs} runs", "s", "sweep / this"], floors, name="sweeps-floor"))
    crossover((1, 4) if args.quick else (1, 4, 16))


if __name__ == "__main__":
    main()
