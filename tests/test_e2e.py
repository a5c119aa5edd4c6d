"""End to end: real role processes talking gRPC on this machine, a compressed trace, the
records, summary.json, and the MLflow run read back through MLflow's client."""

from __future__ import annotations

import json
from collections.abc import Callable

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from orchestrator.experiment import RunResult
from orchestrator.tracking import absolute_uri
from tests.conftest import assert_summary_metrics_read_back, processes_mentioning

pytestmark = pytest.mark.slow


def test_static_run_accounts_for_every_query(run_job: Callable[..., RunResult]) -> None:
    result = run_job("approach=static", "cascade=sdxs")
    s, run_dir = result.summary, result.run_dir
    assert s["accounting_ok"] and s["accounting_problems"] == []
    assert s["queries_sent"] == s["queries_in_trace"] > 50
    outcomes = ("completed_on_time", "completed_late", "dropped", "unfinished")
    assert sum(s[o] for o in outcomes) == s["queries_sent"]
    assert s["unfinished"] == 0 and s["completed_on_time"] > 0.9 * s["queries_sent"]
    for key in (
        "slo_violation_ratio",
        "latency_p50_s",
        "latency_p99_s",
        "light_fraction",
        "approach",
        "cascade",
        "trace",
    ):
        assert key in s
    assert json.loads((run_dir / "summary.json").read_text()) == json.loads(json.dumps(s))

    rec = pd.read_parquet(run_dir / "records.parquet")
    assert len(rec) == s["queries_sent"] and rec["query_id"].is_unique
    done = rec[rec["outcome"].str.startswith("completed")]
    light, heavy = done[done["path"] == "light"], done[done["path"] == "heavy"]
    assert len(light) and len(heavy), "the static sdxs cascade serves both tiers"
    # The cascade's rule, checked on every record: light results kept iff confidence >= threshold.
    # (A deferred query no heavy worker could take keeps its light image, with a note saying so,
    # and the heavy worker that skipped it in its record.)
    kept = light["note"].fillna("") != ""
    plain = light[~kept]
    assert (plain["confidence"] >= plain["threshold"]).all() and plain["heavy_worker"].isna().all()
    assert (light.loc[kept, "confidence"] < light.loc[kept, "threshold"]).all()
    assert (heavy["confidence"] < heavy["threshold"]).all() and heavy["heavy_worker"].notna().all()
    # Timelines are ordered, and latency covers the stages.
    assert (done["light_started_at"] >= done["light_enqueued_at"]).all()
    assert (done["light_finished_at"] >= done["light_started_at"]).all()
    assert (heavy["heavy_enqueued_at"] >= heavy["light_finished_at"]).all()
    assert (done["latency_s"] >= done["light_finished_at"] - done["light_started_at"]).all()
    assert set(rec["light_batch_size"].dropna()) <= set(range(1, 33))

    decisions = pd.read_parquet(run_dir / "roles" / "controller" / "decisions.parquet")
    assert (decisions["light_workers"] == 1).all() and (decisions["heavy_workers"] == 3).all()
    assert (run_dir / "logs" / "localhost" / "worker-0.log").stat().st_size > 0
    assert processes_mentioning(str(run_dir)) == [], "no role process outlives the run"

    client = MlflowClient(tracking_uri=absolute_uri(f"sqlite:///{run_dir.parent}/mlflow.db"))
    run = client.get_run(result.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["cascade.name"] == "sdxs" and run.data.params["approach.name"] == "static"
    assert run.data.metrics["queries_sent"] == s["queries_sent"]
    assert run.data.metrics["slo_violation_ratio"] == pytest.approx(s["slo_violation_ratio"])
    assert_summary_metrics_read_back(run.data.metrics, s)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"records.parquet", "summary.json", "config_resolved.yaml", "logs"} <= artifacts
    assert {a.path for a in client.list_artifacts(run.info.run_id, "logs/localhost")} >= {"logs/localhost/client.log"}
