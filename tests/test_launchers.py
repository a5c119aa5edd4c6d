"""Sweeps through Hydra's launchers: joblib in parallel on this machine and Ray on a local Ray
cluster that the test starts on 127.0.0.1, each giving one MLflow parent run with every job
linked to it; and two wall-clock runs started at the same moment on the same ports both finish."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import E2E, ROOT, free_base_port, processes_mentioning

pytestmark = pytest.mark.slow

SWEEP = ("clock=virtual", "trace=1to8qps", "trace.duration_s=25", "run.progress=false")


def sweep(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "orchestrator", "-m", *SWEEP, f"paths.output_dir={tmp_path}", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=400)


def parent_and_children(tmp_path: Path) -> tuple[object, list[object]]:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.get_experiment_by_name("diffserve")
    (parent,) = client.search_runs([exp.experiment_id], "tags.`servelab.sweep` = '1'")
    children = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    return parent, children


def test_a_joblib_sweep_runs_in_parallel_under_one_parent_run(tmp_path: Path) -> None:
    proc = sweep(tmp_path, "approach=diffserve,proteus", "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Sweep: 4 of 4 jobs completed" in proc.stdout
    parent, children = parent_and_children(tmp_path)
    assert parent.info.status == "FINISHED"  # type: ignore[attr-defined]
    assert parent.data.params == {"swept.approach": "diffserve,proteus", "swept.seed": "0,1", "launcher": "joblib"}  # type: ignore[attr-defined]
    names = sorted(c.info.run_name for c in children)  # type: ignore[attr-defined]
    assert len(names) == len(set(names)) == 4
    assert names[0].startswith("diffserve/sdxs/1to8qps/seed0 · ")
    assert {c.data.tags["run_kind"] for c in children} == {"sweep job"}  # type: ignore[attr-defined]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}  # type: ignore[attr-defined]
    assert any(a.endswith("-table.csv") for a in artifacts) and any(a.endswith(".png") for a in artifacts)
    assert not list(tmp_path.rglob("figures/threshold.png"))  # a sweep's jobs draw no figures by default


def test_a_sweep_job_draws_its_figures_on_request(tmp_path: Path) -> None:
    proc = sweep(tmp_path, "approach=diffserve,static", "run.figures=true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    drawn = [p for p in tmp_path.rglob("figures/threshold.png") if "multiruns" in p.parts]  # not MLflow's copies
    assert len(drawn) == 2 and all(p.stat().st_size > 1000 for p in drawn)


def test_two_wall_runs_started_at_once_on_the_same_ports_both_finish(tmp_path: Path) -> None:
    base = free_base_port(80)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orchestrator",
                *E2E,
                f"hostfile.base_port={base}",
                "approach=all_light",
                f"paths.output_dir={tmp_path / name}",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    moved = [err for _, err in outs if "this run uses ports from" in err]
    assert len(moved) == 1, "one run kept the base port, the other moved up"
    assert processes_mentioning(str(tmp_path)) == []


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A Ray head on 127.0.0.1 with its own ports and folder, stopped with its process group."""
    ray = shutil.which("ray", path=str(Path(sys.executable).parent))
    if ray is None:
        pytest.skip("Ray is not installed (scripts/setup.sh --test installs it)")
    gcs, client, dash, agent, agent_grpc, node, obj, metrics, env_agent = _free_ports(9)
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # unix socket paths must stay short
    cmd = [
        ray,
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--port={gcs}",
        "--num-cpus=2",
        "--include-dashboard=false",
        f"--dashboard-port={dash}",
        f"--ray-client-server-port={client}",
        f"--dashboard-agent-listen-port={agent}",
        f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--node-manager-port={node}",
        f"--object-manager-port={obj}",
        f"--metrics-export-port={metrics}",
        f"--runtime-env-agent-port={env_agent}",
        f"--temp-dir={temp}",
        "--disable-usage-stats",
    ]
    head = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        assert head.stdout is not None
        for line in head.stdout:
            if "block forever" in line:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the Ray head did not start")
        else:
            raise RuntimeError("the Ray head ended at start-up")
        yield f"127.0.0.1:{gcs}"
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        for pid in processes_mentioning(temp):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def test_a_ray_sweep_runs_on_a_local_cluster_under_one_parent_run(ray_cluster: str, tmp_path: Path) -> None:
    proc = sweep(
        tmp_path,
        "approach=diffserve,static",
        "hydra/launcher=ray_cluster",
        f"hydra.launcher.ray.init.address={ray_cluster}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Sweep: 2 of 2 jobs completed" in proc.stdout
    parent, children = parent_and_children(tmp_path)
    assert parent.data.params["launcher"] == "ray_cluster"  # type: ignore[attr-defined]
    assert sorted(c.data.tags["approach"] for c in children) == ["diffserve", "static"]  # type: ignore[attr-defined]
    assert all(c.info.status == "FINISHED" for c in children)  # type: ignore[attr-defined]
    # The jobs ran in Ray's worker processes, not in the sweep's own process.
    assert "_run_job pid=" in proc.stdout + proc.stderr
