"""Parity of the two clocks: one small config on the wall testbed and on the virtual clock, the
differences bounded, and the fidelity report's files and MLflow runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from orchestrator.fidelity import report
from tests.conftest import free_base_port, processes_mentioning

pytestmark = pytest.mark.slow


def test_the_two_clocks_agree_within_bounds(tmp_path: Path) -> None:
    overrides = [
        "cascade=sdxs",
        "trace=1to8qps",
        "trace.duration_s=40",
        "time_scale=5",
        "hostfile.workers=4",
        "approach=diffserve",
        f"hostfile.base_port={free_base_port()}",
        f"paths.output_dir={tmp_path}",
        "run.progress=false",
    ]
    rows, keeping, out = report(overrides, tmp_path / "report")
    by = {r.key: r for r in rows + keeping}
    assert by["plans"].diff == 0, "plans at the same trace times on both clocks"
    # A few hundred queries: one plan that falls the other side of a constraint moves the mix a
    # few percent; over the same plans the controller saw the same demand.
    assert abs(by["light_fraction"].diff) <= 0.1
    assert abs(by["slo_violation_ratio"].diff) <= 0.05
    plans = {
        c: pd.read_parquet(out / c / "roles" / "controller" / "decisions.parquet").iloc[:9] for c in ("virtual", "wall")
    }
    demand = plans["virtual"]["demand"].to_numpy(), plans["wall"]["demand"].to_numpy()
    assert np.abs(demand[0] - demand[1]).mean() <= 0.05 * demand[0].mean()
    same = np.isclose(plans["virtual"]["threshold"].to_numpy(), plans["wall"]["threshold"].to_numpy(), atol=0.1)
    assert same.mean() >= 0.6, (plans["virtual"]["threshold"], plans["wall"]["threshold"])
    # Queries served by the light model alone: the wall testbed adds milliseconds per hop.
    light = {}
    for c in ("virtual", "wall"):
        rec = pd.read_parquet(out / c / "records.parquet")
        light[c] = rec.loc[(rec["path"] == "light") & rec["heavy_worker"].isna(), "latency_s"].median()
    assert 0 <= light["wall"] - light["virtual"] <= 0.15, light
    assert by["client_send_lag_p99_s"].virtual == 0 and by["client_send_lag_p99_s"].wall < 1.0
    assert by["heartbeat_gap_max_s"].wall < 2.0
    assert (out / "fidelity.csv").is_file()
    with Image.open(out / "fidelity.png") as img:
        assert img.size[0] > 600 and len(img.convert("L").getcolors(maxcolors=100000) or []) > 10
    assert processes_mentioning(str(tmp_path)) == []

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.get_experiment_by_name("diffserve")
    parent = client.search_runs([exp.experiment_id], "tags.`servelab.kind` = 'fidelity'")[0]
    children = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(c.data.tags["clock"] for c in children) == ["virtual", "wall"]
    assert parent.data.metrics["virtual.plans"] == parent.data.metrics["wall.plans"]
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"fidelity.csv", "fidelity.png"}
