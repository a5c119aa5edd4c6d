"""`python -m orchestrator.log RUN_DIR [RUN_DIR ...] [--tracking-uri URI]`: log finished runs to
MLflow afterwards: a run whose logging failed (the store was down, the disk full), or one run
with tracking disabled.

The results are computed again from the roles' files in the run directory (the same analysis
the run made) and logged as the run would have logged them, under its sweep's parent run when
it was a sweep job. Idempotent: a run already in MLflow (its logging marked complete) is not
logged twice; an earlier attempt that was cut off is ended FAILED and replaced.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from orchestrator import tracking
from runtime.exceptions import ServelabError


def _earlier(uri: str, experiment: str, run_dir: Path) -> list[object]:
    mlf = tracking.client(uri)
    exp = mlf.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return list(mlf.search_runs([exp.experiment_id], f"tags.run_dir = '{run_dir}'"))


def log_run(run_dir: Path, uri: str | None) -> str:
    """Log one run directory; returns what happened, in one line."""
    from orchestrator.experiment import Launch, RunResult, _checked, _track  # the run's own logging
    from orchestrator.plan import resolve, saved_config
    from orchestrator.sweep import sweep_info

    run_dir = run_dir.resolve()
    config_file, summary_file = run_dir / "config_resolved.yaml", run_dir / "summary.json"
    if not config_file.exists() or not summary_file.exists():
        raise ServelabError(f"{run_dir}: not a finished run directory (config_resolved.yaml and summary.json)")
    cfg = saved_config(config_file)
    if uri is not None:
        cfg.tracking.uri = uri
    elif "***" in cfg.tracking.uri:  # config_resolved.yaml keeps a secret masked
        raise ServelabError("--tracking-uri: the run's tracking.uri holds a masked secret; give the URI again")
    cfg.tracking.enabled = True
    target = tracking.absolute_uri(cfg.tracking.uri)
    tracking.check_store(target)
    for run in _earlier(target, cfg.tracking.experiment, run_dir):
        info, tags = run.info, run.data.tags  # type: ignore[attr-defined]
        if tags.get(tracking.LOGGED_TAG) == "complete":
            return f"{run_dir}: already in MLflow as run {info.run_id} ({info.status}); nothing logged"
        if info.status == "RUNNING":
            tracking.end_run(target, info.run_id, "FAILED")  # an attempt cut off: never left RUNNING
    plan = resolve(cfg)
    summary = json.loads(summary_file.read_text())
    result = plan.system.analyze(run_dir, plan, bool(summary.get("partial")))
    sweep_dir = run_dir.parent
    parent = sweep_info(sweep_dir).get("parent_run_id") if (sweep_dir / "sweep.json").exists() else None
    launch = Launch(
        kind="logged later",
        command=f"python -m orchestrator.log {run_dir}",
        parent_run_id=parent,
        sweep=sweep_dir.name if parent else None,
        job=int(run_dir.name) if parent and run_dir.name.isdigit() else None,
    )
    started = (
        (run_dir / "spec.json").stat().st_mtime if (run_dir / "spec.json").exists() else summary_file.stat().st_mtime
    )
    run_id, error = _track(run_dir, plan, result, launch, (started, summary_file.stat().st_mtime))
    if error is not None:
        raise ServelabError(f"{run_dir}: {error}")
    done = RunResult(run_dir, result.summary, run_id)
    status = "FINISHED"
    try:
        _checked(done)
    except ServelabError as err:  # logged as what it is (FAILED or KILLED), and said so
        status = f"logged, but the run itself failed: {err}"
    return f"{run_dir}: logged as run {run_id} at {tracking.mask(target)}" + (
        "" if status == "FINISHED" else f" ({status})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.log", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories")
    parser.add_argument("--tracking-uri", default=None, help="the MLflow store (default: the run's tracking.uri)")
    args = parser.parse_args(argv)
    from orchestrator.compose import register

    register()
    code = 0
    for run_dir in args.runs:
        try:
            print(log_run(run_dir, args.tracking_uri))
        except ServelabError as err:
            print(f"error: {err}", file=sys.stderr)
            code = 2
    return code


if __name__ == "__main__":
    sys.exit(main())
