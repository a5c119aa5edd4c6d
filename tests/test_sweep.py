"""Sweeps: jobs grouped under one MLflow parent run, a failed job does not stop the others,
and the sweep ends with the comparison table, the figure and the list of failed jobs; the
report command reads the same runs back from MLflow."""

from __future__ import annotations

import socket
import subprocess
import sys
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
