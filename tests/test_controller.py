"""The controller's eviction with real processes: a worker killed mid-run is evicted after its
missed heartbeats, and the plans use the others (the behaviour of the controller against its
baselines is tested on the virtual clock, tests/test_virtual.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, free_base_port, processes_mentioning

pytestmark = pytest.mark.slow


def test_a_killed_worker_is_evicted_and_the_plan_uses_the_rest(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "orchestrator",
        f"paths.output_dir={tmp_path}",
        "run.progress=false",
        f"hostfile.base_port={free_base_port()}",
        "approach=diffserve",
        "cascade=sdxs",
        "trace=1to8qps",
        "trace.duration_s=60",
        "time_scale=4",
        "hostfile.workers=4",
        "tracking.enabled=false",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not victim:
        victim = [p for p in processes_mentioning("--name worker-2") if p in processes_mentioning(str(tmp_path))]
        victim = [p for p in victim if "orchestrator.deploy.supervisor" not in Path(f"/proc/{p}/cmdline").read_text()]
        time.sleep(0.2)
    assert len(victim) == 1, victim
    log = next(iter(tmp_path.glob("diffserve/runs/*")), tmp_path) / "logs" / "localhost" / "controller.log"
    while time.monotonic() < deadline and "Plan <id=3" not in (log.read_text() if log.exists() else ""):
        time.sleep(0.2)  # a few plans with four workers
    assert "Plan <id=3" in log.read_text()
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
