"""The virtual clock end to end: the same outputs as a wall run (records, role files, figures,
MLflow), byte-identical records from the same config and seed, and the behaviour the adaptive
controller must show against its baselines, which no longer rides on a busy machine's clock."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from orchestrator.experiment import RunResult
from orchestrator.systems.diffserve import artifact_recipe
from orchestrator.tracking import absolute_uri
from orchestrator.tracking import digest as digest_of
from tests.conftest import assert_summary_metrics_read_back

VIRTUAL = ("clock=virtual",)
# 120 trace seconds of the 2-to-16 q/s shape (a dip, then a climb to the peak and back).
RAMP = (*VIRTUAL, "cascade=sdturbo", "trace=2to16qps", "trace.duration_s=120", "hostfile.workers=8")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_virtual_run_writes_what_a_wall_run_writes(run_job: Callable[..., RunResult]) -> None:
    result = run_job(*VIRTUAL, "approach=static", "cascade=sdxs")
    s, run_dir = result.summary, result.run_dir
    assert s["clock"] == "virtual" and s["accounting_ok"] and s["queries_sent"] == s["queries_in_trace"] > 50
    assert sum(s[o] for o in ("completed_on_time", "completed_late", "dropped", "unfinished")) == s["queries_sent"]
    for name in (
        "client/client.parquet",
        "client/client_meta.json",
        "sink/sink.parquet",
        "controller/decisions.parquet",
        "controller/ticks.parquet",
    ):
        assert (run_dir / "roles" / name).is_file(), name
    rec = pd.read_parquet(run_dir / "records.parquet")
    done = rec[rec["outcome"].str.startswith("completed")]
    assert (done["light_finished_at"] >= done["light_started_at"]).all()
    assert (done["latency_s"] >= done["light_finished_at"] - done["light_started_at"]).all()
    assert s["client_send_lag_p99_s"] == 0.0, "the virtual client is never late"
    assert s["heartbeat_gap_max_s"] == pytest.approx(1.0)
    client = MlflowClient(tracking_uri=absolute_uri(f"sqlite:///{run_dir.parent}/mlflow.db"))
    run = client.get_run(result.mlflow_run_id)
    assert run.info.status == "FINISHED" and run.data.tags["clock"] == "virtual"
    assert run.data.tags["execution"] == "simulated" and "/real" not in run.info.run_name
    assert_summary_metrics_read_back(run.data.metrics, s)
    # MLflow conventions: a readable unique name, settings as tags and params, the source, only
    # this system's params, the series under their own prefix, the run's span covering the run.
    tags, params = run.data.tags, run.data.params
    assert run.info.run_name == f"static/sdxs/1to8qps/seed0 · {run_dir.name}"
    assert {tags[k] for k in ("seed", "time_scale", "workers", "run_kind", "subject")} == {
        "0",
        "1",
        "4",
        "single",
        "sdxs",
    }
    assert len(tags["git_commit"]) == 40 and tags["git_dirty"] in ("true", "false")
    assert params["cascade.name"] == "sdxs" and params["seed"] == "0"
    assert not [k for k in params if k.startswith(("spot.", "model.", "ablation"))], (
        "no SpotServe params on a DiffServe run"
    )
    assert "series/threshold" in run.data.metrics and "threshold" not in run.data.metrics
    # Params are scalars a person diffs: an array is its size and digest, whole in an artifact.
    assert not [k for k, v in params.items() if v.startswith(("[", "{"))], "no array-valued param"
    assert not [k for k in params if k.endswith(".source")], "provenance text stays in config_resolved.yaml"
    assert params["cascade.deferral_curve.y"].startswith("201 values sha256:")
    local = client.download_artifacts(run.info.run_id, "params/arrays.json", str(run_dir / "read-back"))
    arrays = json.loads(Path(local).read_text())
    assert len(arrays["cascade.deferral_curve.y"]) == 201
    assert params["cascade.deferral_curve.y"].endswith(digest_of(arrays["cascade.deferral_curve.y"]))
    assert max(len(v) for v in params.values()) < 200, "a param is a value a person reads at a glance"
    # the run starts before its spec was written and ends after its summary was: not the logging alone
    assert run.info.start_time <= (run_dir / "spec.json").stat().st_mtime * 1000
    assert run.info.end_time >= (run_dir / "summary.json").stat().st_mtime * 1000 - 1
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"


def test_the_same_config_and_seed_give_byte_identical_records(run_job: Callable[..., RunResult]) -> None:
    runs = [run_job(*VIRTUAL, "approach=diffserve", "tracking.enabled=false", name=f"r{i}") for i in range(2)]
    for name in ("records.parquet", "roles/client/client.parquet", "roles/sink/sink.parquet"):
        assert digest(runs[0].run_dir / name) == digest(runs[1].run_dir / name), name
    other = run_job(*VIRTUAL, "approach=diffserve", "tracking.enabled=false", "seed=1", name="seed1")
    assert digest(other.run_dir / "records.parquet") != digest(runs[0].run_dir / "records.parquet")


def test_diffserve_adapts_and_beats_the_baselines(run_job: Callable[..., RunResult]) -> None:
    ds = run_job(*RAMP, "approach=diffserve", name="diffserve")
    heavy = run_job(*RAMP, "approach=all_heavy", name="all_heavy", tracking=False)
    light = run_job(*RAMP, "approach=all_light", name="all_light", tracking=False)
    for r in (ds, heavy, light):
        assert r.summary["accounting_ok"], r.summary["accounting_problems"]

    # The threshold falls as demand rises: plans at the highest demands defer less than at the lowest.
    decisions = pd.read_parquet(ds.run_dir / "roles" / "controller" / "decisions.parquet")
    running = decisions[decisions["time"] > 5]
    low = running.nsmallest(5, "demand")["threshold"].mean()
    high = running.nlargest(5, "demand")["threshold"].mean()
    assert high < low, (low, high)
    assert np.corrcoef(running["demand"], running["threshold"])[0, 1] < 0
    assert {
        "time",
        "demand",
        "light_queue",
        "heavy_queue",
        "light_workers",
        "heavy_workers",
        "light_batch",
        "heavy_batch",
        "threshold",
        "feasible",
        "search_ms",
    } <= set(decisions.columns)
    assert list(decisions["time"]) == [5.0 * k for k in range(len(decisions))], "a plan every period, on time"

    s = ds.summary
    assert s["slo_violation_ratio"] < heavy.summary["slo_violation_ratio"]
    assert s["fid"] < light.summary["fid"]
    assert s["fid_method"].startswith("table-based")

    # Figure 5: three non-empty PNGs of 960 x 540, also in MLflow, with the per-second series.
    for name in ("threshold.png", "slo_violation_ratio.png", "fid.png"):
        with Image.open(ds.run_dir / "figures" / name) as img:
            assert img.size == (960, 540)
            assert len(img.convert("L").getcolors(maxcolors=100000) or []) > 10, f"{name} is blank"
    client = MlflowClient(tracking_uri=f"sqlite:///{ds.run_dir.parent}/mlflow.db")
    assert {a.path for a in client.list_artifacts(ds.mlflow_run_id, "figures")} == {
        "figures/threshold.png",
        "figures/slo_violation_ratio.png",
        "figures/fid.png",
    }
    # The artifact's controller logs, in its format, as files of the run and in MLflow.
    logged = {a.path for a in client.list_artifacts(ds.mlflow_run_id, "artifact_logs")}
    assert logged == {f"artifact_logs/{name}" for name in artifact_recipe.FILES}
    slo = pd.read_csv(ds.run_dir / "artifact_logs" / "slo_timeouts_per_second.csv")
    assert list(slo.columns) == ["succeed", "timeout", "drop", "total"] and len(slo) >= artifact_recipe.END_ROWS
    history = client.get_metric_history(ds.mlflow_run_id, "series/threshold")
    assert len(history) >= 100 and {m.step for m in history} >= set(range(10, 100))


def test_the_static_cascade_follows_its_rule_on_every_record(run_job: Callable[..., RunResult]) -> None:
    result = run_job(*VIRTUAL, "approach=static", "cascade=sdxs", "trace.duration_s=60", tracking=False)
    rec = pd.read_parquet(result.run_dir / "records.parquet")
    done = rec[rec["outcome"].str.startswith("completed")]
    light, heavy = done[done["path"] == "light"], done[done["path"] == "heavy"]
    assert len(light) and len(heavy), "the static sdxs cascade serves both tiers"
    kept = light["note"].fillna("") != ""
    assert (light.loc[~kept, "confidence"] >= light.loc[~kept, "threshold"]).all()
    assert (heavy["confidence"] < heavy["threshold"]).all() and heavy["heavy_worker"].notna().all()
    assert (heavy["heavy_enqueued_at"] >= heavy["light_finished_at"]).all()
    decisions = pd.read_parquet(result.run_dir / "roles" / "controller" / "decisions.parquet")
    assert (decisions["light_workers"] == 1).all() and (decisions["heavy_workers"] == 3).all()


def test_all_light_sends_nothing_heavy_and_all_heavy_everything(run_job: Callable[..., RunResult]) -> None:
    light = run_job(*VIRTUAL, "approach=all_light", name="light", tracking=False)
    rec = pd.read_parquet(light.run_dir / "records.parquet")
    assert light.summary["light_fraction"] == 1.0
    assert rec["heavy_worker"].isna().all() and rec["light_worker"].notna().sum() >= light.summary["completed_on_time"]

    heavy = run_job(*VIRTUAL, "approach=all_heavy", name="heavy", tracking=False)
    rec = pd.read_parquet(heavy.run_dir / "records.parquet")
    assert heavy.summary["light_fraction"] == 0.0
    done = rec[rec["outcome"].str.startswith("completed")]
    assert rec["light_worker"].isna().all() and done["heavy_worker"].notna().all()
    assert heavy.summary["accounting_ok"] and light.summary["accounting_ok"]


def test_the_report_groups_seeds_and_never_averages_across_traces(
    run_job: Callable[..., RunResult], tmp_path: Path
) -> None:
    from orchestrator.report import compare

    for approach in ("diffserve", "proteus"):
        for seed in (0, 1):
            run_job(*VIRTUAL, f"approach={approach}", f"seed={seed}", name=f"{approach}{seed}")
    run_job(*VIRTUAL, "approach=diffserve", "trace=2to16qps", "trace.duration_s=25", name="other-trace")
    uri = absolute_uri(f"sqlite:///{tmp_path}/mlflow.db")
    files = compare(uri, "diffserve", None, None, tmp_path / "report")
    table = pd.read_csv(tmp_path / "report" / "diffserve-all-table.csv")
    runs = {(r.approach, r.trace): r.runs for r in table.itertuples()}
    assert runs == {("diffserve", "1to8qps"): 2, ("proteus", "1to8qps"): 2, ("diffserve", "2to16qps"): 1}
    two = table[(table["approach"] == "diffserve") & (table["trace"] == "1to8qps")].iloc[0]
    assert two["slo_violation_ratio_min"] <= two["slo_violation_ratio"] <= two["slo_violation_ratio_max"]
    assert two["latency_mean_s_std"] > 0, "two seeds, two arrival sequences"
    names = sorted(f.name for f in files)
    assert names == [
        "diffserve-all-figure6-1to8qps.png",
        "diffserve-all-figure6-2to16qps.png",
        "diffserve-all-table.csv",
    ]
    for f in files[1:]:
        with Image.open(f) as img:
            assert img.size[0] > 900


def test_a_run_is_logged_later_once(run_job: Callable[..., RunResult], tmp_path: Path) -> None:
    """`python -m orchestrator.log RUN_DIR`: a run that did not reach MLflow is logged from its
    files, as the run would have logged it; asked again, it logs nothing."""
    from orchestrator.log import main as log_main
    from orchestrator.tracking import LOGGED_TAG

    result = run_job(*VIRTUAL, "trace.duration_s=30", tracking=False)
    uri = f"sqlite:///{tmp_path / 'later.db'}"
    assert log_main([str(result.run_dir), "--tracking-uri", uri]) == 0
    assert log_main([str(result.run_dir), "--tracking-uri", uri]) == 0
    client = MlflowClient(absolute_uri(uri))
    exp = client.get_experiment_by_name("diffserve")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED" and runs[0].data.tags[LOGGED_TAG] == "complete"
    assert_summary_metrics_read_back(runs[0].data.metrics, result.summary)


def test_the_command_exits_without_teardown_and_loses_nothing(tmp_path: Path) -> None:
    """`python -m orchestrator` leaves by os._exit once a single run is done (orchestrator/__main__.py):
    the run's files, its log's last line and its whole MLflow record are there afterwards."""
    import subprocess
    import sys

    from orchestrator.tracking import LOGGED_TAG
    from tests.conftest import ROOT

    cmd = [sys.executable, "-m", "orchestrator", *VIRTUAL, "trace.duration_s=60", f"paths.output_dir={tmp_path}"]
    proc = subprocess.run([*cmd, "run.progress=false"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Run directory:" in proc.stdout  # the console's last line reached the pipe
    (run_dir,) = (tmp_path / "diffserve" / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert "Logged to MLflow" in (run_dir / "orchestrator.log").read_text().splitlines()[-1]
    client = MlflowClient(absolute_uri(f"sqlite:///{tmp_path}/mlflow.db"))
    exp = client.get_experiment_by_name("diffserve")
    assert exp is not None
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags[LOGGED_TAG] == "complete"
    assert_summary_metrics_read_back(run.data.metrics, summary)
    logged = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"records.parquet", "summary.json", "orchestrator.log"} <= logged


def test_figures_are_drawn_for_a_run_alone_and_on_request_in_a_sweep() -> None:
    from orchestrator.experiment import Launch, draws_figures

    alone, job = Launch(), Launch(kind="sweep job", sweep="2026-12-05_06-10-47", job=3)
    assert draws_figures(None, alone) and not draws_figures(None, job)
    assert draws_figures(True, job) and not draws_figures(False, alone)
