"""Records the conformance fixtures: the artifacts' own code run on fixed inputs.

    python -m tests.conformance.record diffserve-plot  --artifact PATH   # qizhengyang98/DiffServe checkout
    python -m tests.conformance.record diffserve-ilp   --artifact PATH --solver-python PY
    python -m tests.conformance.record spotserve-solver --artifact PATH  # Hsword/SpotServe, branch artifact

Each writes its inputs and the artifact's outputs under tests/conformance/<piece>/ with a
provenance.json (repository, commit, file, how it was run). Nothing of the artifact is copied
into the repository: its files are read from the checkout given and run where they lie (or
from a temporary folder), and only the values they print are kept. The tests
(tests/test_conformance.py) compare our code with these values on every run, with no network.
See tests/conformance/README.md for what each piece is and how it was run.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

# Our runs whose logs the plotting script reads: (case, overrides). They cover a run with no
# violation, runs with timeouts and drops, the all-light run (the script's 0/0) and the
# all-heavy run (the script stops: no light query).
PLOT_CASES = {
    "sdxs_diffserve_3to24qps": ("cascade=sdxs", "trace=3to24qps", "approach=diffserve"),
    "sdturbo_diffserve_4to32qps_16w": (
        "cascade=sdturbo",
        "trace=4to32qps",
        "approach=diffserve",
        "hostfile.workers=16",
    ),
    "sdxlltn_static_4to32qps_16w": ("cascade=sdxlltn", "trace=4to32qps", "approach=static", "hostfile.workers=16"),
    "sdxlltn_diffserve_4to32qps_10w": (
        "cascade=sdxlltn",
        "trace=4to32qps",
        "approach=diffserve",
        "hostfile.workers=10",
    ),
    "sdxs_all_light_3to24qps": ("cascade=sdxs", "trace=3to24qps", "approach=all_light"),
    "sdturbo_all_heavy_3to24qps": ("cascade=sdturbo", "trace=3to24qps", "approach=all_heavy"),
}


def git(artifact: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(artifact), *args], capture_output=True, text=True, check=True).stdout


def checkout_file(artifact: Path, path: str) -> str:
    """A file of the artifact at HEAD (a bare mirror or a work tree)."""
    return git(artifact, "show", f"HEAD:{path}")


def provenance(artifact: Path, repo: str, files: list[str], how: str) -> dict[str, object]:
    return {"repository": repo, "commit": git(artifact, "rev-parse", "HEAD").strip(), "files": files, "how": how}


def our_logs(case: str, overrides: tuple[str, ...], out: Path) -> Path:
    """Runs our virtual run and returns its artifact_logs folder."""
    cmd = [
        sys.executable,
        "-m",
        "orchestrator",
        *overrides,
        "clock=virtual",
        "tracking.enabled=false",
        "run.progress=false",
        f"paths.output_dir={out / case}",
    ]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return next((out / case).glob("diffserve/runs/*/artifact_logs"))


def diffserve_plot(artifact: Path) -> None:
    """plotting/plot_results.py on our runs' artifact_logs: the means it prints."""
    script = checkout_file(artifact, "plotting/plot_results.py")
    dest = HERE / "diffserve_plot_results"
    shutil.rmtree(dest, ignore_errors=True)
    expected: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        for case, overrides in PLOT_CASES.items():
            logs = our_logs(case, overrides, tmp_path / "runs")
            shutil.copytree(logs, dest / case)
            # The script reads ../logs from where it runs and writes its figures there.
            work = tmp_path / case
            (work / "plotting").mkdir(parents=True)
            shutil.copytree(logs, work / "logs")
            (work / "plotting" / "plot_results.py").write_text(script)
            cascade = overrides[0].split("=")[1]
            proc = subprocess.run(
                [sys.executable, "plot_results.py", "--cascade", cascade],
                cwd=work / "plotting",
                capture_output=True,
                text=True,
                env={"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin"},
            )
            slo = re.search(r"Mean SLO violation rate: (\S+)", proc.stdout)
            fid = re.search(r"Mean FID: (\S+)", proc.stdout)
            error = proc.stderr.strip().splitlines()[-1] if proc.returncode else ""
            expected[case] = {
                "overrides": [*list(overrides), "clock=virtual"],
                "cascade": cascade,
                "mean_slo_violation_rate": float(slo.group(1)) if slo else None,
                "mean_fid": float(fid.group(1)) if fid else None,
                "script_error": error,
            }
            print(case, expected[case])
    how = (
        "python plot_results.py --cascade <cascade> (unmodified, run from a plotting/ folder beside a logs/ "
        "folder holding the case's three CSV files, MPLBACKEND=Agg); the numbers are what it printed as "
        "'Mean SLO violation rate' and 'Mean FID', the error its last traceback line"
    )
    (dest / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    prov = provenance(artifact, "qizhengyang98/DiffServe", ["plotting/plot_results.py"], how)
    (dest / "provenance.json").write_text(json.dumps(prov, indent=1) + "\n")


# Planner inputs for the ILP: the plans of our runs with the artifact's queueing term, 16 GPU
# workers on the 4-to-32 q/s trace (and 10 for sdxlltn, which then runs out of capacity).
ILP_RUNS = {
    "sdturbo": ("cascade=sdturbo", "hostfile.workers=16"),
    "sdxs": ("cascade=sdxs", "hostfile.workers=16"),
    "sdxlltn": ("cascade=sdxlltn", "hostfile.workers=10"),
}
ILP_POINTS = 10  # plans per cascade, evenly spread over the run

# Our driver of the artifact's CascadeILPAllocator, run with the solver python in a folder
# holding the artifact's qaware_cascade_ILP.py and config.py: it builds the model exactly as
# solve_ilp does, writes it (gurobipy's size-limited licence refuses to solve it), and SCIP
# solves the written model.
ILP_DRIVER = """
import json, sys
import gurobipy as gp
import pandas as pd
from pyscipopt import Model
import config

class Exported(Exception):
    pass

def export(self, *args, **kwargs):
    self.write(OUT)
    raise Exported

gp.Model.optimize = export
cases = json.load(open(sys.argv[1]))
out = []
for case in cases:
    config.set_cas_exec(case["cascade"])
    import qaware_cascade_ILP as ilp
    prof = pd.read_csv(case["profile_csv"])
    runtimes = {}
    for bs in [1, 2, 4, 8, 16, 32]:
        for model in ["sdturbo", "sdv15"]:
            rows = prof.loc[(prof["Model"].str.contains(model)) & (prof["batchsize"] == bs) & (prof["Accel"] == "onnxruntime_cpu")]
            runtimes[(model, model, bs)] = rows["avg_runtime"].values[0]
    alloc = ilp.CascadeILPAllocator(runtimes, total_servers=case["total_servers"])
    OUT = "model.mps"
    try:
        alloc.solve_ilp(case["demand"], case["slo_us"], case["demand_per_task"], case["queue_length_per_task"])
    except Exported:
        pass
    m = Model()
    m.hideOutput()
    m.readProblem(OUT)
    m.optimize()
    result = {"status": m.getStatus()}
    if m.getStatus() == "optimal":
        sol = m.getBestSol()
        values = {v.name: m.getSolVal(sol, v) for v in m.getVars()}
        result["threshold"] = values["threshold"]
        result["x1"], result["x2"] = round(values["x1"]), round(values["x2"])
        result["b1"] = next((int(n[3:-1]) for n, v in values.items() if n.startswith("b1[") and v > 0.5), None)
        result["b2"] = next((int(n[3:-1]) for n, v in values.items() if n.startswith("b2[") and v > 0.5), None)
    out.append(result)
print(json.dumps(out))
"""


def diffserve_ilp(artifact: Path, solver_python: str) -> None:
    """qaware_cascade_ILP.py's model on our logged planner inputs, solved by SCIP."""
    import pandas as pd

    cases: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        for cascade, overrides in ILP_RUNS.items():
            over = (*overrides, "trace=4to32qps", "approach=diffserve", "approach.queueing=artifact")
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "orchestrator",
                    *over,
                    "clock=virtual",
                    "tracking.enabled=false",
                    "run.progress=false",
                    f"paths.output_dir={tmp_path / cascade}",
                ],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            run_dir = next((tmp_path / cascade).glob("diffserve/runs/*"))
            decisions = pd.read_parquet(run_dir / "roles" / "controller" / "decisions.parquet")
            decisions = decisions[decisions["demand"] > 0]
            slo_s = json.loads((run_dir / "summary.json").read_text())["slo_s"]
            picks = decisions.iloc[:: max(1, len(decisions) // ILP_POINTS)].head(ILP_POINTS)
            for _, row in picks.iterrows():
                w1, w2 = float(row["artifact_wait_light_s"]), float(row["artifact_wait_heavy_s"])
                cases.append(
                    {
                        "cascade": cascade,
                        "workers": int(row["workers_alive"]),
                        # The artifact keeps one of its servers for the sink: S = our GPU workers + 1.
                        "total_servers": int(row["workers_alive"]) + 1,
                        "demand": float(row["demand"]),
                        "slo_us": slo_s * 1e6,
                        # queue / demand = the wait our controller logged (the artifact's Little's law).
                        "demand_per_task": {"sdturbo": 1.0, "sdv15": 1.0},
                        "queue_length_per_task": {"sdturbo": w1, "sdv15": w2},
                        "profile_csv": f"profiling/stable_diffusion_runtimes_{cascade}.csv",
                        "from_run": " ".join(over) + f" clock=virtual; plan at t={row['time']:g}",
                    }
                )
        work = tmp_path / "ilp"
        work.mkdir()
        for name in ("src/controller/qaware_cascade_ILP.py", "src/config.py"):
            (work / Path(name).name).write_text(checkout_file(artifact, name))
        profiling = work / "profiling"
        profiling.mkdir()
        for cascade in ILP_RUNS:
            name = f"profiling/stable_diffusion_runtimes_{cascade}.csv"
            (work / name).write_text(checkout_file(artifact, name))
        (work / "cases.json").write_text(json.dumps(cases))
        (work / "drive.py").write_text(ILP_DRIVER)
        proc = subprocess.run([solver_python, "drive.py", "cases.json"], cwd=work, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(proc.stderr)
        results = json.loads(proc.stdout.strip().splitlines()[-1])
    dest = HERE / "diffserve_ilp"
    dest.mkdir(exist_ok=True)
    rows = [
        {**{k: v for k, v in c.items() if k != "profile_csv"}, "artifact": r}
        for c, r in zip(cases, results, strict=True)
    ]
    (dest / "cases.json").write_text(json.dumps(rows, indent=1) + "\n")
    how = (
        "our driver (tests/conformance/record.py, ILP_DRIVER) imports the unmodified qaware_cascade_ILP.py and "
        "config.py, sets the cascade with config.set_cas_exec, builds CascadeILPAllocator from the profiling CSV as "
        "controller.py does, and calls solve_ilp(demand, SLO in us, demand_per_task, queue_length_per_task); "
        "Model.optimize is replaced by a write of the model it built (MPS), because gurobipy 13's size-limited "
        "licence refuses it, and the written model is solved by SCIP (pyscipopt 6.3) to optimality"
    )
    prov = provenance(
        artifact,
        "qizhengyang98/DiffServe",
        ["src/controller/qaware_cascade_ILP.py", "src/config.py", "profiling/*.csv"],
        how,
    )
    (dest / "provenance.json").write_text(json.dumps(prov, indent=1) + "\n")
    print(f"{len(rows)} cases, statuses {sorted({r['artifact']['status'] for r in rows})}")


# SpotServe's StrategyOptimizer: every model at every fleet size, at the AE's required
# throughput and at a few others (profile file, min_world_size).
SOLVER_MODELS = {
    "6.7B": ("megatron_6.7B_profile.json", 4, (0.5, 1.0, 2.0, 4.0)),
    "20B": ("megatron_h6144_profile.json", 12, (0.2, 0.4, 0.8, 1.5)),
    "30B": ("megatron_h7168_profile.json", 16, (0.1, 0.2, 0.4, 1.0)),
}
SOLVER_DRIVER = """
import json, sys
sys.path.insert(0, ".")
from solver import StrategyOptimizer
cases = json.load(open(sys.argv[1]))
out = []
for c in cases:
    opt = StrategyOptimizer(c["profile"], c["min_world_size"], 128)
    out.append(list(opt.solve(None, c["gpus"], 4, c["required_tpt"])))
print(json.dumps(out))
"""


def spotserve_solver(artifact: Path) -> None:
    """scheduler/parallel/solver.py's StrategyOptimizer.solve on every fleet size."""
    branch = "artifact"
    cases = [
        {"model": name, "profile": profile, "min_world_size": ws, "gpus": gpus, "required_tpt": tpt}
        for name, (profile, ws, tpts) in SOLVER_MODELS.items()
        for gpus in range(49)
        for tpt in tpts
    ]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "solver.py").write_text(git(artifact, "show", f"{branch}:elastic-switch/scheduler/parallel/solver.py"))
        for profile, _, _ in SOLVER_MODELS.values():
            (work / profile).write_text(git(artifact, "show", f"{branch}:elastic-switch/profile/T4-4x/{profile}"))
        (work / "cases.json").write_text(json.dumps(cases))
        (work / "drive.py").write_text(SOLVER_DRIVER)
        proc = subprocess.run([sys.executable, "drive.py", "cases.json"], cwd=work, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(proc.stderr)
        results = json.loads(proc.stdout.strip().splitlines()[-1])
    dest = HERE / "spotserve_solver"
    dest.mkdir(exist_ok=True)
    rows = [
        {"model": c["model"], "gpus": c["gpus"], "required_tpt": c["required_tpt"], "max_bsz": 4, "artifact": r}
        for c, r in zip(cases, results, strict=True)
    ]
    (dest / "cases.json").write_text(json.dumps(rows, indent=None).replace("}, {", "},\n{") + "\n")
    how = (
        "our driver imports the unmodified solver.py beside the profile JSON and calls "
        "StrategyOptimizer(profile, min_world_size, 128).solve(None, gpus, 4, required_tpt), as the scheduler does "
        "with --mbs 4; the result is (dp, tp, pp, bsz, M1, M2, latency_ms, tpt) or (0,)*8 below min_world_size"
    )
    files = ["elastic-switch/scheduler/parallel/solver.py"] + [
        f"elastic-switch/profile/T4-4x/{p}" for p, _, _ in SOLVER_MODELS.values()
    ]
    prov = provenance(artifact, "Hsword/SpotServe", files, how)
    prov["commit"] = git(artifact, "rev-parse", branch).strip()
    prov["branch"] = branch
    (dest / "provenance.json").write_text(json.dumps(prov, indent=1) + "\n")
    print(f"{len(rows)} cases")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.conformance.record")
    parser.add_argument("piece", choices=("diffserve-plot", "diffserve-ilp", "spotserve-solver"))
    parser.add_argument("--artifact", type=Path, required=True, help="the artifact's git checkout or mirror")
    parser.add_argument("--solver-python", default=None, help="a python with gurobipy and pyscipopt (diffserve-ilp)")
    args = parser.parse_args()
    if args.piece == "diffserve-plot":
        diffserve_plot(args.artifact)
    elif args.piece == "diffserve-ilp":
        if not args.solver_python:
            parser.error("diffserve-ilp needs --solver-python (a python with gurobipy and pyscipopt)")
        diffserve_ilp(args.artifact, args.solver_python)
    else:
        spotserve_solver(args.artifact)


if __name__ == "__main__":
    main()
