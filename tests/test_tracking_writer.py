"""The MLflow writer process (orchestrator/tracking_writer.py) logs exactly what the run's own
process would, reports a store it cannot write to, and when it is gone the record is logged in
the run's process instead: a writer can cost time, never a record. Real processes and real
SQLite stores, read back through MLflow's client."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from orchestrator import tracking, tracking_writer
from orchestrator.tracking import LOGGED_TAG, RunRecord, write_record


def record(tmp_path: Path, uri: str, name: str = "fixed/sdxs/3to24qps/seed0") -> RunRecord:
    (tmp_path / "logs").mkdir(exist_ok=True)
    (tmp_path / "logs" / "worker-0.log").write_text("a worker's log\n")
    (tmp_path / "summary.json").write_text('{"slo_violation_ratio": 0.25}\n')
    return RunRecord(
        uri=uri,
        experiment="diffserve",
        name=name,
        tags={"clock": "virtual", "approach": "fixed"},
        parent_run_id=None,
        span=(1_700_000_000.0, 1_700_000_004.5),
        params={"seed": "0", "approach.name": "fixed", "cascade.slo_s": "5.0"},
        arrays={"cascade.deferral_curve.x": [0.0, 0.5, 1.0]},
        metrics=[("slo_violation_ratio", 0.25, 0), ("throughput_qps", 13.5, 0)],
        series=[("series/demand_qps", float(s), s) for s in range(250)],
        artifacts=[(tmp_path / "summary.json", None), (tmp_path / "logs", "logs"), (tmp_path / "absent.csv", None)],
        status="FINISHED",
    )


def read_back(uri: str) -> dict[str, Any]:
    client = MlflowClient(tracking.absolute_uri(uri))
    exp = client.get_experiment_by_name("diffserve")
    assert exp is not None
    (run,) = client.search_runs([exp.experiment_id])
    rid = run.info.run_id

    def files(path: str | None = None) -> list[str]:
        out = []
        for a in client.list_artifacts(rid, path):
            out += files(a.path) if a.is_dir else [a.path]
        return sorted(out)

    history = [(m.step, m.value) for m in client.get_metric_history(rid, "series/demand_qps")]
    return {
        "name": run.info.run_name,
        "status": run.info.status,
        "span": (run.info.start_time, run.info.end_time),
        "params": run.data.params,
        "metrics": run.data.metrics,
        "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
        "series": sorted(history),
        "files": files(),
    }


def test_the_writer_logs_what_this_process_would(tmp_path: Path) -> None:
    here, there = f"sqlite:///{tmp_path}/here.db", f"sqlite:///{tmp_path}/there.db"
    assert write_record(record(tmp_path, here))[1] is None
    writer = tracking_writer.Writer()
    try:
        writer.prepare(tracking.absolute_uri(there))
        answer = writer.write(record(tmp_path, there))
        assert answer is not None and answer[0] is not None and answer[1] is None
    finally:
        writer.stop()
    assert not writer.process.is_alive() and writer.process.exitcode == 0  # it left when the pipe closed
    mine, its = read_back(here), read_back(there)
    assert mine == its
    assert its["status"] == "FINISHED" and its["tags"][LOGGED_TAG] == "complete" and len(its["series"]) == 250
    assert its["files"] == ["logs/worker-0.log", "params/arrays.json", "summary.json"]


def test_the_writer_reports_a_store_it_cannot_write(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    uri = f"sqlite:///{tmp_path}/a-file/mlflow.db"
    writer = tracking_writer.Writer()
    try:
        writer.prepare(uri)  # fails in the writer, silently: the write says why
        answer = writer.write(record(tmp_path, uri))
    finally:
        writer.stop()
    assert answer is not None
    run_id, why = answer
    assert run_id is None and why is not None and "\n" not in why and "a-file" in why


def test_a_dead_writer_costs_no_record(tmp_path: Path, caplog: Any) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking_writer.start()
    try:
        (writer,) = tracking_writer._held
        assert writer.process.pid is not None
        os.kill(writer.process.pid, signal.SIGKILL)
        writer.process.join(10)
        run_id, why = tracking_writer.write(record(tmp_path, uri))
    finally:
        tracking_writer.stop()
    assert not tracking_writer._held and not writer.process.is_alive()
    assert run_id is not None and why is None
    assert "writer process ended (exit code -9): logging in this one" in caplog.text
    back = read_back(uri)
    assert back["status"] == "FINISHED" and back["tags"][LOGGED_TAG] == "complete"


def test_a_writer_without_mlflow_leaves_quietly_and_the_run_logs_itself(
    tmp_path: Path, monkeypatch: Any, capfd: Any
) -> None:
    """A writer whose MLflow does not import (here a package that raises, first on the path it
    is started with) exits 1 without a traceback on the console; the record is logged here."""
    fake = tmp_path / "fake"
    (fake / "mlflow").mkdir(parents=True)
    (fake / "mlflow" / "__init__.py").write_text("raise ImportError('no MLflow in this writer')\n")
    monkeypatch.syspath_prepend(str(fake))  # the writer starts with this process's path
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    writer = tracking_writer.Writer()
    monkeypatch.undo()
    try:
        writer.process.join(30)
        assert writer.process.exitcode == 1
        tracking_writer._held.append(writer)
        run_id, why = tracking_writer.write(record(tmp_path, uri))
    finally:
        tracking_writer.stop()
    assert run_id is not None and why is None and read_back(uri)["status"] == "FINISHED"
    assert "Traceback" not in capfd.readouterr().err
