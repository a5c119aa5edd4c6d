"""Sweeps (`python -m orchestrator -m ...`): a Hydra callback that groups the jobs under one
MLflow parent run, keeps a line per finished job, and at the end prints the comparison table,
draws the comparison figures (orchestrator.report) and lists the failed jobs (exit code 1 if any failed).

Jobs run one after another with Hydra's basic launcher, in parallel with
`hydra/launcher=joblib`, or on a Ray cluster with `hydra/launcher=ray`; a failed job does not
stop the sweep, because the task function returns its failure instead of raising it. The
parent run is made once, here, before any job starts; every job finds it (`parent_run`) in
the sweep directory's sweep.json, or, on a host that does not share that directory, in MLflow
by the sweep directory's tag.

The parent run (`open_parent`) and the comparison (`close_parent`) are made in the sweep's
MLflow writer process (orchestrator/tracking_writer.py), and with the basic launcher the
jobs' records go there too: it logs one job's record while the next job runs. A record that
could not be written fails its job as it would have alone: it is said when the next job ends,
and the job is listed among the failed ones (jobs.jsonl says why) before the comparison, which
waits for every record. A sweep cut short ends its parent run KILLED (`end_unfinished`).
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from orchestrator import tracking, tracking_writer
from orchestrator.experiment import not_in_mlflow
from orchestrator.report import SWEEP_TAG, compare
from runtime.exceptions import ServelabError
from runtime.logs import init_logger

log = init_logger("orchestrator.sweep")
SWEEP_FILE = "sweep.json"
JOBS_FILE = "jobs.jsonl"


def sweep_info(sweep_dir: Path) -> dict[str, Any]:
    path = sweep_dir / SWEEP_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def parent_run(cfg: DictConfig, sweep_dir: Path) -> str | None:
    """The sweep's MLflow parent run, for a job of the sweep (None without tracking)."""
    if not cfg.tracking.enabled:
        return None
    found = sweep_info(sweep_dir).get("parent_run_id")
    if found:
        return str(found)
    uri = tracking.absolute_uri(cfg.tracking.uri)
    mlf = tracking.client(uri)
    exp = mlf.get_experiment_by_name(cfg.tracking.experiment)
    if exp is None:
        return None
    runs = mlf.search_runs(
        [exp.experiment_id], f"tags.`{SWEEP_TAG}` = '1' and tags.sweep_dir = '{sweep_dir}'", max_results=1
    )
    return str(runs[0].info.run_id) if runs else None


def swept_axes(overrides: list[str]) -> dict[str, str]:
    """The overrides that vary across the sweep's jobs (key -> the values as written)."""
    axes = {}
    for o in overrides:
        key, _, value = o.partition("=")
        if "," in value or value.startswith(("range(", "choice(", "glob(", "interval(")):
            axes[key.lstrip("+~")] = value
    return axes


_open_parents: dict[str, str] = {}  # parent run id -> its store, from its start to the sweep's end


def end_unfinished() -> None:
    """The parent run of a sweep that ended early (interrupted), ended KILLED rather than left
    RUNNING; its jobs' runs are as they were logged."""
    while _open_parents:
        parent, uri = _open_parents.popitem()
        with contextlib.suppress(Exception):  # the store is gone: nothing more can be said there
            tracking_writer.call(tracking.end_run, uri, parent, "KILLED")


def open_parent(uri: str, experiment: str, name: str, tags: dict[str, str], params: dict[str, str]) -> str:
    """The sweep's MLflow parent run, made (in the MLflow writer process, when there is one)."""
    parent = tracking.start_run(uri, experiment, name, tags)
    tracking.log_params(uri, parent, params)
    return parent


def close_parent(
    uri: str, experiment: str, parent: str, sweep_dir: Path, failed: bool
) -> tuple[list[Path], str | None]:
    """The sweep's comparison (its table, printed and as CSV, and figures: orchestrator.report)
    attached to the parent run, which ends FAILED if a job failed: (the files, why the
    comparison could not be made). MLflow's own errors are raised."""
    figures: list[Path] = []
    why = None
    try:
        figures = compare(uri, experiment, parent, None, sweep_dir, label=sweep_dir.name)
        tracking.log_artifacts(uri, parent, [(f, None) for f in [*figures, sweep_dir / JOBS_FILE]])
    except ServelabError as err:
        why = str(err)
    tracking.end_run(uri, parent, "FAILED" if failed else "FINISHED")
    return figures, why


class SweepCallback(Callback):
    def __init__(self) -> None:
        self.unlogged: dict[str, str] = {}  # run directory -> why its MLflow record failed

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir).resolve()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        info: dict[str, Any] = {"sweep_dir": str(sweep_dir), "parent_run_id": None}
        if config.tracking.enabled:
            uri = tracking.absolute_uri(config.tracking.uri)
            overrides = list(config.hydra.overrides.task)
            launcher = str(config.hydra.runtime.choices.get("hydra/launcher", "basic"))
            commit, dirty = tracking.source_version()
            tags = {
                SWEEP_TAG: "1",
                "sweep_dir": str(sweep_dir),
                "sweep": sweep_dir.name,
                "run_kind": "sweep",
                "launcher": launcher,
                "git_commit": commit,
                "git_dirty": str(dirty).lower(),
                "command": " ".join(["python -m orchestrator -m", *overrides]),
            }
            info["tracking_uri"] = uri
            info["experiment"] = config.tracking.experiment
            axes = swept_axes(overrides)
            params = {**{f"swept.{k}": v for k, v in axes.items()}, "launcher": launcher}
            name = f"sweep {sweep_dir.name}"
            try:
                info["parent_run_id"] = tracking_writer.call(
                    open_parent, uri, config.tracking.experiment, name, tags, params
                )
                _open_parents[info["parent_run_id"]] = uri
            except Exception as err:  # no job runs without its parent: the sweep fails here (Hydra would only warn)
                print(
                    f"error: the sweep's MLflow parent run could not be created at {tracking.mask(uri)}: "
                    f"{str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}",
                    file=sys.stderr,
                    flush=True,
                )
                sys.exit(1)
        (sweep_dir / SWEEP_FILE).write_text(json.dumps(info), encoding="utf-8")
        (sweep_dir / JOBS_FILE).write_text("", encoding="utf-8")

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode is None or str(config.hydra.mode) != "RunMode.MULTIRUN":
            return
        sweep_dir = Path(config.hydra.sweep.dir).resolve()
        sweep_dir.mkdir(parents=True, exist_ok=True)  # a Ray worker on another host
        value = job_return._return_value if hasattr(job_return, "_return_value") else None
        entry: dict[str, Any] = {"num": int(config.hydra.job.num), "overrides": list(job_return.overrides or [])}
        if isinstance(value, dict):
            entry.update(value)
        else:
            entry.update({"status": "failed", "error": f"{type(value).__name__}: {value}"})
        with (sweep_dir / JOBS_FILE).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
        self._collect(block=False)

    def _collect(self, block: bool) -> None:
        """The writer's answers for the jobs it logged (all of them, when `block`); a failure
        is said at once and kept, to fail its job."""
        for record, (_, why) in tracking_writer.finished(block):
            if why is not None:
                run_dir = record.tags.get("run_dir", "?")
                self.unlogged[run_dir] = not_in_mlflow(f"logging failed: {why}", run_dir)
                print(f"error: {record.name}: {self.unlogged[run_dir]}", file=sys.stderr, flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir).resolve()
        info = sweep_info(sweep_dir)
        self._collect(block=True)
        jobs = [json.loads(line) for line in (sweep_dir / JOBS_FILE).read_text().splitlines() if line.strip()]
        for job in jobs:
            if job.get("status") == "completed" and job.get("run_dir") in self.unlogged:
                job.update(status="failed", error=self.unlogged[job["run_dir"]])
        if self.unlogged:
            text = "".join(json.dumps(job) + "\n" for job in jobs)
            (sweep_dir / JOBS_FILE).write_text(text, encoding="utf-8")
        failed = [j for j in jobs if j.get("status") != "completed"]
        parent = info.get("parent_run_id")
        parent_lost = None  # why the parent run could not be completed in MLflow
        if parent:
            uri = info["tracking_uri"]
            _open_parents.pop(parent, None)
            figures: list[Path] = []
            try:
                figures, why = tracking_writer.call(
                    close_parent, uri, info["experiment"], parent, sweep_dir, bool(failed)
                )
                if why is not None:
                    print(f"error: {why}", file=sys.stderr)
            except Exception as err:  # the store is gone: the jobs' folders hold every result
                parent_lost = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
                parent_lost = parent_lost.replace(uri, tracking.mask(uri))
                print(
                    f"error: the sweep's parent run could not be completed in MLflow at {tracking.mask(uri)} "
                    f"({parent_lost}); the jobs' results are in {sweep_dir}",
                    file=sys.stderr,
                    flush=True,
                )
            for figure in figures:
                print(f"Comparison {'table' if figure.suffix == '.csv' else 'figure'}: {figure}")
        print(f"Sweep: {len(jobs) - len(failed)} of {len(jobs)} jobs completed; sweep directory {sweep_dir}")
        if failed:
            print("Failed jobs:")
            for j in failed:
                print(f"  #{j['num']} {' '.join(j['overrides'])}: {j.get('error', '?')}")
        if failed or parent_lost:
            sys.exit(1)
