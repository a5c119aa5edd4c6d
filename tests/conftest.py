"""Shared fixtures: the real composed config, free ports, and process checks."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from labkit import free_base_port, processes_mentioning
from orchestrator.compose import compose_config
from orchestrator.experiment import RunResult, run_experiment

# The helpers tests share with benchmarks (labkit) and the one way to compose a config, re-exported here.
__all__ = ["compose_config", "free_base_port", "processes_mentioning"]

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
