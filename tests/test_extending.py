"""An approach from outside the repository, selected by config (docs/extending.md): the example
package in docs/examples/mylab is copied away from the checkout and run as a user would run it,
on the virtual clock and by the real roles; a plugin that does not load is one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from runtime.exceptions import ConfigError
from runtime.policies.spotserve.registry import approach_class as spot_class
from runtime.policies.spotserve.rerouting import Rerouting
from runtime.traces.diffserve import generate, write_artifact
from tests.conftest import ROOT, free_base_port, processes_mentioning

EXAMPLE = ROOT / "docs" / "examples" / "mylab"


@pytest.fixture
def user_package(tmp_path: Path) -> Path:
    """The example package where a user keeps it: outside the repository, on PYTHONPATH only."""
    home = tmp_path / "mylab"
    shutil.copytree(EXAMPLE, home)
    return home


def run(home: Path, out: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(home)}
    cmd = [
        sys.executable,
        "-m",
        "orchestrator",
        f"hydra.searchpath=[file://{home}/conf]",
        f"paths.output_dir={out}",
        "approach=fixed_threshold",
        "run.progress=false",
        *overrides,
    ]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def check_run(out: Path, proc: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert proc.returncode == 0, proc.stderr[-3000:]
    (summary_file,) = out.glob("diffserve/runs/*/summary.json")
    summary = json.loads(summary_file.read_text())
    assert summary["approach"] == "fixed_threshold" and summary["queries_lost"] == 0
    decisions = pd.read_parquet(summary_file.parent / "roles" / "controller" / "decisions.parquet")
    # the plugin decided: its threshold (the yaml's option), its reason, its feasibility flags
    assert set(decisions["threshold"]) == {0.6}
    assert decisions["reason"].str.startswith("fixed threshold 0.6").all()
    assert summary["infeasible_plans"] == int((~decisions["feasible"]).sum()) > 0
    assert "plans / infeasible" in proc.stdout and f"/ {summary['infeasible_plans']}" in proc.stdout
    client = MlflowClient(tracking_uri=f"sqlite:///{out}/mlflow.db")
    (mlflow_run,) = client.search_runs([client.get_experiment_by_name("diffserve").experiment_id])
    params = mlflow_run.data.params
    assert params["approach.plugin"] == "mylab.fixed_threshold:FixedThreshold"
    assert params["approach.options.threshold"] == "0.6"
    assert mlflow_run.data.metrics["infeasible_plans"] == summary["infeasible_plans"]
    return summary


def test_outside_approach_runs_on_the_virtual_clock(user_package: Path, tmp_path: Path) -> None:
    assert not user_package.is_relative_to(ROOT)
    check_run(tmp_path / "out", run(user_package, tmp_path / "out", "clock=virtual"))


@pytest.mark.slow
def test_outside_approach_runs_in_the_roles(user_package: Path, tmp_path: Path) -> None:
    """The controller role, a separate process, imports the plugin itself."""
    trace = tmp_path / "short.txt"
    write_artifact(generate("short", 3, 6, 20, 5000, seed=1), trace)
    out = tmp_path / "out"
    proc = run(
        user_package,
        out,
        f"trace.path={trace}",
        "time_scale=5",
        "hostfile.workers=3",
        f"hostfile.base_port={free_base_port()}",
    )
    check_run(out, proc)
    assert processes_mentioning(str(tmp_path)) == []


@pytest.mark.parametrize(
    ("plugin", "says"),
    [
        ("nope.module:X", "approach.plugin: cannot import 'nope.module' (ModuleNotFoundError"),
        ("mylab.fixed_threshold", "approach.plugin: 'mylab.fixed_threshold' is not module:Class"),
        ("mylab.fixed_threshold:Missing", "approach.plugin: mylab.fixed_threshold:Missing has no attribute Missing"),
        ("mylab.fixed_threshold:math", "is not a subclass of runtime.policies.diffserve.plan.Approach"),
    ],
)
def test_a_plugin_that_does_not_load_is_one_line(user_package: Path, tmp_path: Path, plugin: str, says: str) -> None:
    proc = run(user_package, tmp_path / "out", "clock=virtual", f"approach.plugin={plugin}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert says in line, proc.stderr
    assert not list((tmp_path / "out").glob("diffserve/runs/*/summary.json"))


def test_spotserve_plugin_is_checked_against_its_base(user_package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = user_package / "myspot.py"
    module.write_text(
        "from runtime.policies.spotserve.rerouting import Rerouting\n\n"
        "class Eager(Rerouting):\n    name = 'eager'\n\n"
        "class NotOne:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(user_package))
    cls = spot_class("eager", "myspot:Eager")
    assert issubclass(cls, Rerouting) and cls.name == "eager"
    with pytest.raises(ConfigError, match=r"is not a subclass of runtime\.policies\.spotserve"):
        spot_class("eager", "myspot:NotOne")
    with pytest.raises(ConfigError, match="unknown SpotServe approach 'eager'"):
        spot_class("eager")
