"""Shared fixtures: the real composed config, free ports, and process checks."""

from __future__ import annotations

import math
import os
import random
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from orchestrator.config import register
from orchestrator.experiment import RunResult, run_experiment

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
REFERENCE = ROOT.parent / "shared" / "reference"
# Tests of the readers of the artifacts' files need those files, which live beside the project
# (../shared/reference), not in it: on a fresh clone they skip and say why.
needs_reference = pytest.mark.skipif(
    not REFERENCE.is_dir(), reason=f"the artifacts' reference files are not here ({REFERENCE})"
)

# A short, compressed run: 25 trace seconds at 5x, a handful of workers.
E2E = ("trace=1to8qps", "trace.duration_s=25", "time_scale=5", "hostfile.workers=4", "run.progress=false")


def compose_config(*overrides: str) -> DictConfig:
    register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def free_base_port(span: int = 40) -> int:
    """The first of `span` consecutive ports that are free now."""
    for _ in range(200):
        base = random.randint(20000, 45000)
        socks = []
        try:
            for p in range(base, base + span):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", p))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


def processes_mentioning(text: str) -> list[int]:
    """PIDs of live (non-zombie) processes whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.fixture
def run_job(tmp_path: Path) -> Callable[..., RunResult]:
    """Run one real experiment (real processes, gRPC, SQLite MLflow) in tmp_path."""

    def _run(*overrides: str, name: str = "run", tracking: bool = True) -> RunResult:
        extra = () if tracking else ("tracking.enabled=false",)
        cfg = compose_config(
            *E2E, f"hostfile.base_port={free_base_port()}", f"paths.output_dir={tmp_path}", *extra, *overrides
        )
        return run_experiment(cfg, tmp_path / name)

    return _run


def assert_summary_metrics_read_back(mlflow_metrics: dict[str, float], summary: dict[str, Any]) -> None:
    """Every finite number of summary.json that is an outcome is the MLflow run's metric of that
    name (a step metric of the same name would have replaced it with its last value); the
    settings among them (workers, seed, time_scale, ...) are not metrics at all."""
    from orchestrator.analysis import SETTINGS

    assert not set(SETTINGS) & set(mlflow_metrics), "settings are params and tags, never metrics"
    numbers = {
        k: float(v)
        for k, v in summary.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and k not in SETTINGS
    }
    finite = {k: v for k, v in numbers.items() if math.isfinite(v)}
    assert finite, "summary.json has numbers"
    wrong = {k: (v, mlflow_metrics.get(k)) for k, v in finite.items() if mlflow_metrics.get(k) != pytest.approx(v)}
    assert not wrong, f"summary vs MLflow: {wrong}"
