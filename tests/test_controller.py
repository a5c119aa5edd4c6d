"""The adaptive controller end to end: real roles on a compressed trace that ramps up, the
comparison with the baselines, a worker killed mid-run, and a planner that throws."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from orchestrator.experiment import RunResult, typed_config
from runtime import spec as run_spec
from runtime.roles.controller import ControllerRole
from tests.conftest import ROOT, compose_config, free_base_port, processes_mentioning

pytestmark = pytest.mark.slow

# 120 trace seconds of the 2-to-16 q/s shape (a dip, then a climb to the peak and back), 10x faster.
RAMP = ("cascade=sdturbo", "trace=2to16qps", "trace.duration_s=120", "time_scale=10", "hostfile.workers=8")


def test_diffserve_adapts_and_beats_the_baselines(run_job: Callable[..., RunResult]) -> None:
    ds = run_job(*RAMP, "approach=diffserve", name="diffserve")
    heavy = run_job(*RAMP, "approach=all_heavy", name="all_heavy")
    light = run_job(*RAMP, "approach=all_light", name="all_light")
    for r in (ds, heavy, light):
        assert r.summary["accounting_ok"], r.summary["accounting_problems"]

    # The threshold falls as demand rises: plans at the highest demands defer less than at the lowest.
    decisions = pd.read_parquet(ds.run_dir / "roles" / "controller" / "decisions.parquet")
    running = decisions[decisions["time"] > 5]
    low = running.nsmallest(5, "demand")["threshold"].mean()
    high = running.nlargest(5, "demand")["threshold"].mean()
    assert high < low, (low, high)
    assert np.corrcoef(running["demand"], running["threshold"])[0, 1] < 0
    assert {"time", "demand", "light_queue", "heavy_queue", "light_workers", "heavy_workers", "light_batch",
            "heavy_batch", "threshold", "feasible", "search_ms"} <= set(decisions.columns)  # fmt: skip

    s = ds.summary
    assert s["slo_violation_ratio"] < heavy.summary["slo_violation_ratio"]
    assert s["fid"] < light.summary["fid"]
    for key in ("fid", "slo_violation_ratio", "slo_violation_ratio_windowed", "infeasible_plans"):
        assert key in s
    assert s["fid_method"].startswith("table-based")

    # Figure 5: three non-empty PNGs of 960 x 540, also in MLflow, with the per-second series.
    for name in ("threshold.png", "slo_violation_ratio.png", "fid.png"):
        with Image.open(ds.run_dir / "figures" / name) as img:
            assert img.size == (960, 540)
            assert len(img.convert("L").getcolors(maxcolors=100000) or []) > 10, f"{name} is blank"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{ds.run_dir.parent}/mlflow.db")
    assert {a.path for a in client.list_artifacts(ds.mlflow_run_id, "figures")} == {
        "figures/threshold.png", "figures/slo_violation_ratio.png", "figures/fid.png",
    }  # fmt: skip
    history = client.get_metric_history(ds.mlflow_run_id, "threshold")
    assert len(history) >= 100 and {m.step for m in history} >= set(range(10, 100))
    for key in ("light_workers", "heavy_workers", "light_batch", "heavy_batch", "demand", "arrivals", "violations",
                "slo_violation_ratio_window", "fid_estimate_window"):  # fmt: skip
        assert client.get_metric_history(ds.mlflow_run_id, key), key


def test_a_killed_worker_is_evicted_and_the_plan_uses_the_rest(tmp_path: Path) -> None:
    cmd = [
        sys.executable, "-m", "orchestrator", f"paths.output_dir={tmp_path}", "run.progress=false",
        f"hostfile.base_port={free_base_port()}", "approach=diffserve", "cascade=sdxs", "trace=1to8qps",
        "trace.duration_s=60", "time_scale=4", "hostfile.workers=4", "tracking.enabled=false",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not victim:
        victim = [p for p in processes_mentioning("--name worker-2") if p in processes_mentioning(str(tmp_path))]
        victim = [p for p in victim if "orchestrator.deploy.supervisor" not in Path(f"/proc/{p}/cmdline").read_text()]
        time.sleep(0.2)
    time.sleep(4)  # a few plans with four workers
    assert len(victim) == 1, victim
    os.kill(victim[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    run_dir = next(tmp_path.glob("diffserve/runs/*"))
    decisions = pd.read_parquet(run_dir / "roles" / "controller" / "decisions.parquet")
    assert decisions["workers_alive"].iloc[0] == 4 and decisions["workers_alive"].iloc[-1] == 3
    after = decisions[decisions["workers_alive"] == 3]
    assert ((after["light_workers"] + after["heavy_workers"]) <= 3).all()
    controller_log = (run_dir / "logs" / "localhost" / "controller.log").read_text()
    assert "Evicted <worker=worker-2" in controller_log
    assert "Worker lost during the run: worker-2" in err
    assert processes_mentioning(str(tmp_path)) == []


def test_controller_keeps_planning_when_the_approach_throws(tmp_path: Path) -> None:
    """No worker, no load balancer: heartbeats fail, and a planner exception is logged as an
    infeasible plan instead of stopping the loop."""
    cfg = compose_config("approach=diffserve", "hostfile.workers=2", f"hostfile.base_port={free_base_port()}")
    config = typed_config(cfg)
    from orchestrator.deploy.placement import place

    spec = run_spec.RunSpec("t", config, tuple(place(config.hostfile, 2)), "trace.csv")
    controller = ControllerRole(spec, "controller", tmp_path)
    controller._tick(force_plan=True)
    calls = {"n": 0}

    def broken(obs: object) -> None:
        calls["n"] += 1
        raise RuntimeError("solver exploded")

    controller.approach.plan = broken  # type: ignore[method-assign,assignment]
    controller._tick(force_plan=True)
    controller._tick(force_plan=True)
    assert calls["n"] == 2 and len(controller.decisions) == 3
    assert controller.decisions[-1]["feasible"] is False and "solver exploded" in controller.decisions[-1]["reason"]
    controller.finish()
    assert len(pd.read_parquet(tmp_path / "decisions.parquet")) == 3
