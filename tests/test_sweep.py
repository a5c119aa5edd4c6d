"""Sweeps: jobs grouped under one MLflow parent run, a failed job does not stop the others,
and the sweep ends with the comparison table, the figure and the list of failed jobs; the
report command reads the same runs back from MLflow."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from orchestrator.report import main as report_main
from runtime.traces.diffserve import generate, write_artifact
from tests.conftest import ROOT, free_base_port, processes_mentioning

pytestmark = pytest.mark.slow


def test_sweep_keeps_going_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two jobs whose ports are taken fail when they deploy; the other two run and are compared."""
    good = tmp_path / "good.txt"
    write_artifact(generate("good", 3, 6, 15, 5000, seed=1), good)
    free, busy = free_base_port(), free_base_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", busy))
        taken.listen()
        cmd = [
            sys.executable,
            "-m",
            "orchestrator",
            "-m",
            f"paths.output_dir={tmp_path}",
            "run.progress=false",
            f"hostfile.base_port={free},{busy}",
            "hostfile.ports=fixed",
            "cascade=sdxs",
            "approach=diffserve,all_light",
            f"trace.path={good}",
            "time_scale=5",
            "hostfile.workers=3",
        ]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    out = proc.stdout
    assert "Sweep: 2 of 4 jobs completed" in out
    # one line per finished job, then the comparison; the per-job tables are in the jobs' logs
    assert sum(line.startswith("job ") for line in out.splitlines()) == 4, out
    assert out.count("SLO violation") <= 1, out
    assert (
        "Failed jobs:" in out
        and out.count(f"port {busy} on 127.0.0.1 (for the controller on localhost) is not free")
        == 4  # its line, then the list
    )
    assert "Traceback" not in proc.stderr
    sweep_dir = next(tmp_path.glob("diffserve/multiruns/*"))
    (figure6,) = sweep_dir.glob(f"diffserve-{sweep_dir.name}-figure6-*.png")  # one trace, one figure
    with Image.open(figure6) as img:
        assert img.size[0] > 500 and img.size[1] > 300
    assert processes_mentioning(str(tmp_path)) == []

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.get_experiment_by_name("diffserve")
    parents = client.search_runs([exp.experiment_id], "tags.`servelab.sweep` = '1'")
    assert len(parents) == 1 and parents[0].info.status == "FAILED"
    parent = parents[0].info.run_id
    children = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")
    assert sorted(c.data.tags["approach"] for c in children) == ["all_light", "diffserve"]
    assert all(c.info.status == "FINISHED" for c in children)
    assert {a.path for a in client.list_artifacts(parent)} >= {
        figure6.name,
        "jobs.jsonl",
        f"diffserve-{sweep_dir.name}-table.csv",
    }

    out = tmp_path / "report"
    code = report_main(["--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--out-dir", str(out)])
    table = capsys.readouterr().out
    # one name per sweep: its folder's, on the console, in MLflow and in the report
    assert parents[0].info.run_name == f"sweep {sweep_dir.name}" and sweep_dir.name in proc.stdout
    (figure,) = out.glob(f"diffserve-{sweep_dir.name}-figure6-*.png")
    assert code == 0 and figure.stat().st_size > 10_000
    assert "all_light" in table and "diffserve" in table and "sdxs" in table
    assert report_main(["--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--experiment", "nope"]) == 2


def test_a_record_the_sweeps_writer_cannot_log_fails_its_job(tmp_path: Path) -> None:
    """The basic launcher's jobs hand their MLflow records to a writer that logs one while the
    next job runs. The tracking server dies once the first job is done: every later job's record
    fails, and so does each of those jobs (said on the console, listed, in jobs.jsonl), the sweep
    exits 1 with no traceback, and every job is either in MLflow or listed as not in it."""
    import os
    import signal

    from benchmarks.faults import start_mlflow_server

    port = free_base_port(1)
    server = start_mlflow_server(f"sqlite:///{tmp_path}/server.db", port, tmp_path)
    uri = f"http://127.0.0.1:{port}"

    def kill_server(proc: subprocess.Popen[str]) -> None:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()

    try:
        args = ["trace=1to8qps", "trace.duration_s=30", "seed=0,1,2", f"tracking.uri={uri}"]
        code, said, err = sweep_acting(tmp_path, args, "job 0 done", kill_server)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
    assert code == 1, err[-3000:]
    assert "Traceback" not in err and "Traceback" not in said
    assert sum(line.startswith("job ") for line in said.splitlines()) == 3, said
    sweep_dir = next(tmp_path.glob("diffserve/multiruns/*"))
    jobs = [json.loads(line) for line in (sweep_dir / "jobs.jsonl").read_text().splitlines()]
    unlogged = {j["num"] for j in jobs if j["status"] == "failed"}
    # The last job's record came after the server was gone (so may job 1's, and job 0's if the
    # writer had not logged it yet); a job not listed is in the server's store.
    assert 2 in unlogged, jobs
    for j in jobs:
        if j["num"] in unlogged:
            assert "not in MLflow" in j["error"] and f"python -m orchestrator.log {j['run_dir']}" in j["error"]
            assert f"#{j['num']} " in said and j["error"] in said  # in the list of failed jobs
            assert j["error"] in err  # said as it was found
    assert f"Sweep: {3 - len(unlogged)} of 3 jobs completed" in said
    assert _runs_in_store(tmp_path / "server.db") >= 1 + 3 - len(unlogged)  # the parent and each job logged
    assert processes_mentioning(str(tmp_path)) == []


def sweep_acting(
    tmp_path: Path, args: list[str], after: str, act: Callable[[subprocess.Popen[str]], None]
) -> tuple[int, str, str]:
    """A virtual sweep with `args` in a process of its own; `act` is done to it once a line of
    its stdout starts with `after`. (exit code, stdout, stderr)."""
    cmd = [sys.executable, "-m", "orchestrator", "-m", f"paths.output_dir={tmp_path}", "clock=virtual", *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if line.startswith(after):
                act(proc)
                break
        rest, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    return proc.returncode, "".join(seen) + rest, err


def _runs_in_store(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as con:
        return int(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])


def test_an_interrupted_sweep_keeps_its_finished_jobs_and_ends_its_parent_killed(tmp_path: Path) -> None:
    """Ctrl-C after the second job: exit 130, the two finished jobs are in MLflow (the second one
    was still with the writer), the parent run is KILLED, not left RUNNING, and nothing is left."""
    import signal

    code, _, err = sweep_acting(tmp_path, ["seed=0,1,2,3,4,5"], "job 1 done", lambda p: p.send_signal(signal.SIGINT))
    assert code == 130 and err.strip().splitlines()[-1] == "error: interrupted", err[-2000:]
    assert "Traceback" not in err
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    (parent,) = [r for r in runs if r.data.tags.get("servelab.sweep") == "1"]
    assert parent.info.status == "KILLED"
    done = sorted(r.data.tags["seed"] for r in runs if r.info.status == "FINISHED")
    assert done[:2] == ["0", "1"] and all(
        r.data.tags.get("servelab.logged") == "complete" for r in runs if r is not parent
    )
    assert processes_mentioning(str(tmp_path)) == []
