"""The virtual clock's records stay what they were: speed work (issue 22) may change how the
engine and the cores compute, never what they decide.

Each case replays a run on the virtual clock in-process and digests its merged records (every
column, every value, in order, as CSV). `fixtures/records_digests.json` holds the digests the
commit before the speed work gave (its `commit` key); a change that moves one record fails
here. Regenerate only for a change that means to alter decisions, and say so in its commit:

    .venv/bin/python -m tests.test_records_identity --write
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import pytest

from orchestrator.compose import load_plan

FIXTURE = Path(__file__).parent / "fixtures" / "records_digests.json"
CASES: dict[str, list[str]] = {
    "diffserve_default": [],
    "diffserve_64_workers": [
        "hostfile.workers=64",
        "trace.low_qps=40",
        "trace.high_qps=160",
        "trace.duration_s=60",
    ],
    "diffserve_proteus": ["approach=proteus", "trace=2to16qps"],
    "diffserve_artifact_demand": ["approach.demand=inflight", "approach.queueing=artifact", "cascade=sdturbo"],
    "spotserve_default": ["system=spotserve"],
    "spotserve_artifact": ["experiment=spotserve_artifact", "model=6.7B", "trace=As"],
    "spotserve_rerouting": ["system=spotserve", "approach=rerouting", "trace=A"],
}


def digest(overrides: list[str]) -> tuple[int, str]:
    """(records, sha256 of the merged records as CSV) of a virtual replay of `overrides`."""
    plan = load_plan(["clock=virtual", "tracking.enabled=false", "run.progress=false", *overrides])
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        plan.system.run_virtual(plan, run_dir)
        records = plan.system.analyze(run_dir, plan, False).records
    return len(records), hashlib.sha256(records.to_csv(index=False).encode()).hexdigest()


@pytest.mark.parametrize("case", sorted(CASES))
def test_records_are_those_of_the_reference_commit(case: str) -> None:
    expected = json.loads(FIXTURE.read_text())["cases"][case]
    count, sha = digest(CASES[case])
    assert count == expected["records"]
    assert sha == expected["sha256"], f"{case}: the records changed (count {count})"


if __name__ == "__main__" and "--write" in sys.argv:
    import subprocess

    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    cases = {}
    for name, overrides in CASES.items():
        count, sha = digest(overrides)
        cases[name] = {"overrides": overrides, "records": count, "sha256": sha}
        print(name, count, sha[:16])
    FIXTURE.write_text(json.dumps({"commit": commit, "cases": cases}, indent=1) + "\n")


def test_the_replay_makes_no_cyclic_garbage() -> None:
    """The engine turns the garbage collector off while it runs (runtime/engine/loop.py): that
    holds memory only if the cores make no reference cycles per event."""
    import gc

    from runtime.engine.diffserve import DiffServeModel
    from runtime.engine.loop import Engine
    from runtime.traces.confidence import for_cascade

    plan = load_plan(["clock=virtual", "tracking.enabled=false", "trace.duration_s=694"])
    c = plan.config.cascade
    confidence = for_cascade(c.deferral_curve.x, c.deferral_curve.y, c.num_prompts, 0, c.confidence_path)
    workers = [a.name for a in plan.addresses if a.role == "worker"]
    gc.collect()
    model = DiffServeModel(plan.config, plan.trace.arrival_s, plan.trace.prompt_index, workers, confidence, 24.0)
    engine = Engine(model)
    engine.schedule_all(model.start())
    was = gc.isenabled()
    engine.run(stop=lambda: model.finished)
    assert gc.isenabled() == was
    gc.disable()
    try:
        freed = gc.collect()
    finally:
        if was:
            gc.enable()
    assert engine.handled > 20_000 and freed < 500, f"{freed} objects in cycles after {engine.handled} events"
