"""SpotServe on the wall clock, with real role processes talking gRPC: the same numbers as the
virtual clock within bounds, preempted instances' processes really exit, a worker killed
without notice is handled as a preemption, a controller killed before it writes its files
makes the run partial, and an artifact availability file is replayed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from orchestrator.fidelity import report
from orchestrator.tracking import absolute_uri
from tests.conftest import ROOT, free_base_port, processes_mentioning

pytestmark = pytest.mark.slow

# B_S lasts 1020 trace seconds: 17 s of wall time at 60x, plus start and drain.
SPOT_E2E = ("system=spotserve", "model=20B", "trace=Bs", "time_scale=60", "run.progress=false")


def test_the_wall_clock_agrees_with_the_virtual_clock_and_preempted_processes_exit(tmp_path: Path) -> None:
    overrides = [*SPOT_E2E, f"hostfile.base_port={free_base_port(60)}", f"paths.output_dir={tmp_path}"]
    rows, _, out = report(overrides, tmp_path / "fidelity")
    by = {r.key: r for r in rows}
    assert by["reconfigurations"].diff == 0
    assert abs(by["latency_mean_s"].relative) <= 0.15, by["latency_mean_s"]
    assert abs(by["latency_p99_s"].relative) <= 0.25, by["latency_p99_s"]
    assert abs(by["unfinished"].diff) <= 5 and by["resumed_requests"].wall > 0

    run_dir = out / "wall"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["accounting_ok"] and not summary["partial"] and summary["clock"] == "wall"
    spec = json.loads((run_dir / "spec.json").read_text())
    processes = {r["process"] for r in spec["roles"] if r["role"] == "worker"}
    assert len(processes) == 12, "one process per instance, not one per GPU"

    def ended(name: str) -> float:
        return float(json.loads((run_dir / "roles" / name / "exit.json").read_text())["ended_at"])

    end = ended("controller")
    for name in processes:
        log = (run_dir / "logs" / "localhost" / f"{name}.log").read_text()
        if name in ("workers-node-4", "workers-node-8"):  # removed at 120 s of 1020: 15 wall seconds early
            assert "Preempted: the instance is gone" in log
            assert ended(name) < end - 5
        elif name in ("workers-node-1", "workers-node-2"):
            assert "Preempted" not in log
    assert processes_mentioning(str(tmp_path)) == [], "no role process outlives the run"


def test_the_artifacts_mechanics_on_the_wall_clock_agree_with_the_virtual_clock(tmp_path: Path) -> None:
    """experiment=spotserve_artifact through real roles: the jit drains (over the Drain RPC),
    power-of-two batches and old batching in the load balancer's pool give the virtual clock's
    numbers within bounds, every request accounted for."""
    overrides = [
        *SPOT_E2E,
        "experiment=spotserve_artifact",
        f"hostfile.base_port={free_base_port(60)}",
        f"paths.output_dir={tmp_path}",
    ]
    rows, _, out = report(overrides, tmp_path / "fidelity")
    by = {r.key: r for r in rows}
    assert by["reconfigurations"].diff == 0
    assert abs(by["latency_mean_s"].relative) <= 0.15, by["latency_mean_s"]
    assert abs(by["unfinished"].diff) <= 5 and by["resumed_requests"].wall > 0
    summary = json.loads((out / "wall" / "summary.json").read_text())
    assert summary["accounting_ok"] and not summary["partial"]
    assert processes_mentioning(str(tmp_path)) == []


def orchestrate(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        "-m",
        "orchestrator",
        *SPOT_E2E,
        f"paths.output_dir={tmp_path}",
        f"hostfile.base_port={free_base_port(60)}",
        *args,
    ]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_log(tmp_path: Path, role: str, text: str, timeout: float = 120) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for log in tmp_path.glob(f"spotserve/runs/*/logs/localhost/{role}.log"):
            if text in log.read_text():
                return log.parent.parent.parent
        time.sleep(0.1)
    raise AssertionError(f"{role} never logged {text!r}")


def test_a_worker_killed_without_notice_is_a_preemption_with_no_grace(tmp_path: Path) -> None:
    proc = orchestrate(tmp_path)
    run_dir = wait_for_log(tmp_path, "controller", "Preempted <instances=node-0")  # past the removals
    victim = [
        p for p in processes_mentioning("--name workers-node-1 --out") if p in processes_mentioning(str(tmp_path))
    ]
    victim = [p for p in victim if "orchestrator.deploy.supervisor" not in Path(f"/proc/{p}/cmdline").read_text()]
    assert len(victim) == 1, victim
    os.kill(victim[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    assert "Worker lost during the run: workers-node-1" in err
    decisions = pd.read_parquet(run_dir / "roles" / "controller" / "decisions.parquet")
    lost = decisions[decisions["event"] == "lost"]
    assert list(lost["instances"]) == ["node-1"]
    assert (lost["notice_at"] == lost["deadline"]).all(), "no grace period"
    # B_S has 7 instances after 240 s, then adds node-10 and node-11: one fewer all along.
    assert list(lost["alive_instances"]) == [6]
    later = decisions[(decisions["time"] > lost["time"].iloc[0]) & (decisions["event"] == "add")]
    assert list(later["alive_instances"]) == [7, 8]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["accounting_ok"], summary["accounting_problems"]
    pool = json.loads((run_dir / "roles" / "load_balancer" / "pool.json").read_text())
    assert len(pool["held_ids"]) == summary["unfinished"]
    assert "Lost <instances=node-1>" in (run_dir / "logs" / "localhost" / "controller.log").read_text()
    assert processes_mentioning(str(tmp_path)) == []


def test_a_controller_killed_before_it_writes_its_files_makes_the_run_partial(tmp_path: Path) -> None:
    proc = orchestrate(tmp_path)
    run_dir = wait_for_log(tmp_path, "controller", "Preempted <instances=node-4")
    victim = [p for p in processes_mentioning("--name controller --out") if p in processes_mentioning(str(tmp_path))]
    victim = [p for p in victim if "orchestrator.deploy.supervisor" not in Path(f"/proc/{p}/cmdline").read_text()]
    assert len(victim) == 1, victim
    os.kill(victim[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 1, err[-3000:]
    assert "controller on localhost exited (killed by signal 9)" in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["partial"] and "roles/controller/decisions.parquet" in summary["missing_files"]
    client = MlflowClient(tracking_uri=absolute_uri(f"sqlite:///{tmp_path}/mlflow.db"))
    exp = client.get_experiment_by_name("spotserve")
    run = client.search_runs([exp.experiment_id])[0]
    assert run.info.status == "KILLED" and run.data.tags["partial"] == "true"
    assert "decisions.parquet" in run.data.tags["missing_files"]
    assert processes_mentioning(str(tmp_path)) == []


def test_an_artifact_availability_file_given_by_a_relative_path_is_replayed(tmp_path: Path) -> None:
    """The orchestrator reads the file (relative to where it runs) and hands the events to the
    roles inline, so roles in other directories or on other hosts replay the same events; the
    run takes the file's name and length."""
    trace = tmp_path / "avail_small.txt"
    trace.write_text(
        '[0, "add", {"nodes": ["a", "b"]}]\n[40000, "remove", {"nodes": ["b"]}]\n[90000, "DONE", {"nodes": []}]\n'
    )
    cmd = [
        sys.executable,
        "-m",
        "orchestrator",
        "system=spotserve",
        "model=6.7B",
        "time_scale=30",
        "run.progress=false",
        f"trace.availability_path={os.path.relpath(trace, ROOT)}",
        f"paths.output_dir={tmp_path}",
        f"hostfile.base_port={free_base_port()}",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = next(tmp_path.glob("spotserve/runs/*"))
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["trace"] == "avail_small" and s["workers"] == 8
    rec = pd.read_parquet(run_dir / "records.parquet")
    assert rec["arrival_s"].max() < 90 and len(rec) == s["queries_sent"]
    resolved = (run_dir / "config_resolved.yaml").read_text()
    assert "availability_path: null" in resolved and "- b" in resolved
    decisions = pd.read_parquet(run_dir / "roles" / "controller" / "decisions.parquet")
    assert list(decisions["alive_instances"]) == [2, 1, 0]  # start, the removal at 40 s, the end
    assert processes_mentioning(str(tmp_path)) == []
