"""One experiment, end to end: `run_experiment(cfg, run_dir) -> RunResult`.

Phases, each logged with its duration:
  1. resolve   the run plan (orchestrator.plan): one validation pass, the trace, the placement;
               the trace, the spec and the resolved config written to the run directory;
  2. run       clock=wall: start the roles in dependency order (controller -> load balancer ->
               sink -> workers -> client), each stage ready before the next; replay, watching
               progress and the roles' health; stop every role on every host (always, in a
               finally) and bring their files back.
               clock=virtual: the system's engine model replays the same cores in this process
               and writes the same role files;
  3. results   one record per query, the accounting check, summary.json, figures, MLflow.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from omegaconf import DictConfig

from orchestrator import analysis, tracking, tracking_writer
from orchestrator.deploy import ports
from orchestrator.deploy.deployment import Deployment
from orchestrator.deploy.launcher import SPEC_FILE, RoleProcess
from orchestrator.deploy.placement import START_ORDER
from orchestrator.plan import config_text, resolve
from orchestrator.progress import ProgressLine
from orchestrator.systems.base import RunPlan
from runtime import identity
from runtime import spec as run_spec
from runtime.exceptions import (
    AccountingError,
    ConfigError,
    DeployError,
    LostQueriesError,
    PartialRunError,
    RunFailedError,
    ServelabError,
    TrackingError,
)
from runtime.logs import init_logger
from runtime.protos import servelab_pb2 as pb
from runtime.protos import servelab_pb2_grpc as pbg
from runtime.spec import TRACE_FILE
from runtime.traces.arrivals import write_artifact

log = init_logger("orchestrator")

FINISH_SLACK_WALL_S = 60.0  # beyond the trace and its drain, before a run is declared stuck


@dataclass(frozen=True)
class Launch:
    """How a run was started, for its MLflow name and tags: its kind (single, smoke or sweep
    job), the command line, and in a sweep the sweep's name, the job's number and the parent run."""

    kind: str = "single"
    command: str = ""
    sweep: str | None = None
    job: int | None = None
    parent_run_id: str | None = None


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    mlflow_run_id: str | None
    tracking_error: str | None = None  # why the run is not (whole) in MLflow


def new_run_id() -> str:
    """Unique name of a run on every host (remote hosts keep its files under it)."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"


class Interrupted(KeyboardInterrupt):
    """The run was stopped by Ctrl-C or SIGTERM; its message says what the teardown achieved,
    and `result` holds what was measured until then (None when nothing was)."""

    def __init__(self, message: str, result: RunResult | None = None) -> None:
        super().__init__(message)
        self.result = result


def prepare(cfg: DictConfig, run_dir: Path) -> tuple[RunPlan, run_spec.RunSpec, ports.PortReservation | None]:
    """Phase 1: resolve the run plan, take its ports (a wall run) and write what the roles read.
    The reservation holds the ports until it is released or this process ends."""
    t0 = time.monotonic()
    plan = resolve(cfg)
    config = plan.config
    _refuse_used(run_dir)
    reservation = None
    if config.clock == "wall" and config.hostfile.ports == "auto":
        plan, reservation = _take_ports(plan)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_artifact(plan.trace, run_dir / TRACE_FILE)
    spec = run_spec.RunSpec(
        run_id=new_run_id(),
        config=config,
        roles=plan.addresses,
        trace_file=TRACE_FILE,
        targets=plan.system.targets(),
        drain_s=plan.system.drain_s(config),  # the system's, once: the client and the engine wait as long
        client=plan.system.client_terms(config),
    )
    # The roles never log to MLflow: the files that travel with the run hold no tracking secret.
    secret_uri = config.tracking.uri
    shown = {**plan.container, "tracking": {**plan.container["tracking"], "uri": tracking.mask(secret_uri)}}
    run_spec.dump(spec, shown, run_dir / SPEC_FILE)
    (run_dir / "config_resolved.yaml").write_text(config_text(shown), encoding="utf-8")
    if tracking.mask(secret_uri) != secret_uri:  # Hydra's own copies of the config, too
        for f in (run_dir / ".hydra").glob("*.yaml"):
            f.write_text(f.read_text(encoding="utf-8").replace(secret_uri, tracking.mask(secret_uri)), encoding="utf-8")
    log.info(
        "Resolved <system=%s subject=%s trace=%s approach=%s workers=%d queries=%d clock=%s time_scale=%g> in %.2f s",
        plan.system.name,
        plan.subject,
        plan.trace.name,
        config.approach.name,
        plan.workers,
        len(plan.trace),
        config.clock,
        config.time_scale,
        time.monotonic() - t0,
    )
    return plan, spec, reservation


def _take_ports(plan: RunPlan) -> tuple[RunPlan, ports.PortReservation]:
    """The plan moved to the first port range no other run on this machine holds."""
    local = {h.name for h in plan.config.hostfile.hosts if h.ssh is None}
    reservation = ports.reserve(plan.addresses, lambda a: a.host in local)
    first = min(int(a.bind.rsplit(":", 1)[1]) for a in reservation.addresses)
    base = plan.config.hostfile.base_port
    if first != base:
        log.info("Ports from %d are taken (another run, or another program): this run uses ports from %d", base, first)
        plan.config.hostfile.base_port = first
        plan.container["hostfile"]["base_port"] = first
    resolved = dataclasses.replace(plan.resolved, addresses=reservation.addresses)
    return dataclasses.replace(plan, resolved=resolved), reservation


RUN_MARKERS = (SPEC_FILE, "summary.json", "records.parquet")


def new_identity(plan: RunPlan, spec: run_spec.RunSpec, run_dir: Path) -> identity.RunIdentity:
    """The run's token, and a certificate when a role runs on another host (TLS between hosts;
    loopback stays plaintext), written owner-only next to the spec."""
    used = {a.host for a in spec.roles}
    remote = any(h.ssh is not None for h in plan.config.hostfile.hosts if h.name in used)
    made = identity.make(spec.run_id, tls=remote)
    identity.write(made, run_dir / identity.IDENTITY_FILE)
    return made


def _refuse_used(run_dir: Path) -> None:
    """A run directory holds one run: a second would mix its files with the first one's."""
    used = [m for m in RUN_MARKERS if (run_dir / m).exists()]
    if used:
        raise ConfigError(
            f"hydra.run.dir: {run_dir} already holds a run ({used[0]}); choose another directory or remove it"
        )


def run_experiment(cfg: DictConfig, run_dir: Path, launch: Launch | None = None) -> RunResult:
    launch = launch or Launch()
    started = time.time()
    plan, spec, reservation = prepare(cfg, run_dir)
    try:
        return _run(plan, spec, run_dir, launch, started)
    finally:
        if reservation is not None:
            reservation.release()


def _run(plan: RunPlan, spec: run_spec.RunSpec, run_dir: Path, launch: Launch, started: float) -> RunResult:
    if plan.config.clock == "virtual":
        _run_virtual(plan, run_dir)
        return _checked(_results(run_dir, plan, False, launch, started))
    run_identity = new_identity(plan, spec, run_dir)
    deployment = Deployment(plan.config, list(plan.addresses), run_dir, run_identity)
    interrupted = False
    failure: BaseException | None = None
    try:
        deployment.open([run_dir / SPEC_FILE, run_dir / TRACE_FILE, run_dir / identity.IDENTITY_FILE])
        procs = deployment.deploy()
        _replay(deployment, procs, plan, show_progress=plan.config.run.progress and launch.sweep is None)
    except KeyboardInterrupt:
        interrupted = True
        log.warning("Interrupted: tearing everything down")
    except BaseException as err:
        failure = err
    finally:
        deployment.close()
    interrupted = interrupted or deployment.signals_during_close > 0
    _write_statuses(run_dir, deployment.statuses)
    teardown = _teardown_note(deployment)
    if not analysis.has_client_records(run_dir):
        if interrupted:
            raise Interrupted(f"interrupted before the replay started: nothing was measured; {teardown}")
        if failure is not None:
            raise failure
    try:
        result = _results(run_dir, plan, interrupted or failure is not None, launch, started)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted while computing the results; {teardown}; the roles' files are in {run_dir}"
        ) from None
    if interrupted:
        raise Interrupted(f"interrupted; {teardown}; what was measured is in {run_dir}", result)
    if isinstance(failure, ServelabError):  # what it measured is printed before why it failed
        raise RunFailedError(str(failure), result) from failure
    if failure is not None:
        raise failure
    return _checked(result)


def _teardown_note(deployment: Deployment) -> str:
    """What the teardown achieved, truthfully."""
    if deployment.left_running:
        return (
            f"{len(deployment.left_running)} roles could not be stopped ({', '.join(deployment.left_running[:5])}); "
            f"they stop within {deployment.config.run.lease_s:g} s when their lease lapses, or run "
            f"`python -m orchestrator.cleanup {deployment.run_dir}`"
        )
    if deployment.lost:
        return (
            f"every role was stopped except those on lost hosts ({', '.join(deployment.lost)}), which stop by "
            f"themselves within {deployment.config.run.lease_s:g} s"
        )
    return "every role was stopped"


def _checked(result: RunResult) -> RunResult:
    """A run that lost something says so and fails (docs/metrics.md, "Whole runs"): an
    accounting that does not add up, files a role did not write, queries the testbed lost, a
    role that ended before the run, a run that is not in MLflow. The error carries the result."""
    s, where = result.summary, result.run_dir
    problems = s.get("accounting_problems") or []
    if problems:
        raise AccountingError("accounting failed: " + "; ".join(problems) + f" (records kept in {where})", result)
    missing = s.get("missing_files") or []
    if missing:
        raise PartialRunError(
            f"the run is partial: {', '.join(missing)} missing (a role ended before it wrote them); "
            f"what was measured is in {where}",
            result,
        )
    if s.get("queries_lost"):
        reasons = ", ".join(f"{n} {r}" for r, n in s.get("lost_reasons", {}).items())
        raise LostQueriesError(
            f"{s['queries_lost']} of {s.get('queries_sent', '?')} queries were lost by the testbed ({reasons}); "
            f"the records are in {where}",
            result,
        )
    if s.get("partial"):
        rebuilt = s.get("recovered_files") or []
        how = f"{', '.join(rebuilt)} rebuilt from journals: " if rebuilt else ""
        raise PartialRunError(
            f"the run is partial: {how}a role ended before the run did; what was measured is in {where}", result
        )
    if result.tracking_error is not None:
        raise TrackingError(not_in_mlflow(result.tracking_error, where), result)
    return result


def not_in_mlflow(why: str, run_dir: Path | str) -> str:
    """A run whose MLflow record failed, and how to log it from its files."""
    return f"the run is not in MLflow ({why}); its files are in {run_dir}: log them with `python -m orchestrator.log {run_dir}`"


def _run_virtual(plan: RunPlan, run_dir: Path) -> None:
    remote = [h.name for h in plan.config.hostfile.hosts if h.ssh is not None]
    if remote:
        log.info("clock=virtual runs in this process: the hostfile's remote hosts (%s) are not used", ", ".join(remote))
    ran = plan.system.run_virtual(plan, run_dir)
    rate = ran.events / ran.engine_s if ran.engine_s > 0 else float("inf")
    log.info(
        "Replayed %d queries over %.0f trace seconds on the virtual clock in %.2f s <events=%d rate=%.0f/s>",
        len(plan.trace),
        ran.trace_s,
        ran.engine_s,
        ran.events,
        rate,
    )
    (run_dir / "engine.json").write_text(
        json.dumps({"events": ran.events, "engine_s": ran.engine_s, "trace_s": ran.trace_s, **ran.extra}),
        encoding="utf-8",
    )


def _replay(deployment: Deployment, procs: dict[str, RoleProcess], plan: RunPlan, show_progress: bool) -> None:
    assert deployment.launcher is not None
    config, trace = plan.config, plan.trace
    epoch = time.time() + config.run.start_lead_s
    order = sorted(procs.values(), key=lambda p: START_ORDER.index(p.address.role))
    gone = deployment.launcher.start_run(order, epoch, optional=("worker",))
    log.info("Replaying %d queries over %.0f trace seconds", len(trace), trace.duration_s)
    stub = pbg.ClientStub(procs["client"].rpc_channel())
    trace_wall = (max(trace.duration_s, config.trace.duration_s) + plan.system.drain_s(config)) / config.time_scale
    deadline = time.monotonic() + config.run.start_lead_s + trace_wall + FINISH_SLACK_WALL_S
    watched = [p for p in procs.values() if p.name not in gone]
    end_s = max(trace.duration_s, config.trace.duration_s)
    line = ProgressLine(  # not in a sweep's jobs: a sweep prints one line per finished job
        show_progress, plan.system.progress_outcome, end_s, plan.system.drain_s(config), config.time_scale
    )
    with line as bar:
        while True:
            try:
                progress = stub.Progress(pb.Empty(), timeout=2.0)
            except grpc.RpcError:
                progress = None
            if progress is not None:
                bar.update(progress)
                if progress.done:
                    outcome = plan.system.progress_outcome(progress.sent, progress.completed, progress.violations)
                    log.info("Replay done: sent %d, completed %d, %s", progress.sent, progress.completed, outcome)
                    return
            gone = deployment.watch(watched)
            watched = [p for p in watched if p.name not in gone]
            deployment.probe(watched, time.monotonic())
            if time.monotonic() > deadline:
                raise DeployError("the client did not finish the trace in time; see logs/ in the run directory")
            time.sleep(0.5)


def _write_statuses(run_dir: Path, statuses: dict[str, dict[str, Any]]) -> None:
    (run_dir / "exit_status.json").write_text(json.dumps(statuses, indent=1), encoding="utf-8")


def results_of(cfg: DictConfig, run_dir: Path) -> RunResult:
    """The results of a run directory whose orchestrator ended before computing them
    (`python -m orchestrator.cleanup`): partial, from what the roles left."""
    spec = run_dir / SPEC_FILE
    started = spec.stat().st_mtime if spec.exists() else time.time()
    return _results(run_dir, resolve(cfg), True, Launch(kind="cleanup"), started)


def draws_figures(setting: bool | None, launch: Launch) -> bool:
    """run.figures: as set, or by default for a run alone but not a sweep's job (a job's three
    figures cost as much as its engine, and the sweep draws the comparison)."""
    return launch.sweep is None if setting is None else setting


def _results(run_dir: Path, plan: RunPlan, partial: bool, launch: Launch, started: float) -> RunResult:
    t0 = time.monotonic()
    result = plan.system.analyze(run_dir, plan, partial)
    try:
        analysis.write(result, run_dir)
    except OSError as err:  # a full disk, say: one line, not a traceback and a 0-byte file
        raise ServelabError(f"writing the results into {run_dir} failed: {err.strerror or err}") from None
    figures: list[Path] = []
    if draws_figures(plan.config.run.figures, launch):
        try:
            figures = plan.system.figures(result, run_dir, plan)
        except Exception as err:  # figures never cost a run its results
            log.error("Drawing the figures failed (the results are written): %s: %s", type(err).__name__, err)
    ended = time.time()
    log.info("Computed results and %d figures in %.2f s", len(figures), time.monotonic() - t0)
    run_id, error = _track(run_dir, plan, result, launch, (started, ended))
    return RunResult(run_dir=run_dir, summary=result.summary, mlflow_run_id=run_id, tracking_error=error)


def run_name(plan: RunPlan, summary: dict[str, Any], run_dir: Path, launch: Launch) -> str:
    """approach/subject/trace/seed, with what else tells two runs apart: the ablation level,
    a wall run's time_scale, real execution, a smoke run, and the sweep and job (or the start time) last."""
    parts = [plan.system.run_label(summary), str(summary.get(plan.system.subject_key, "?")), str(summary["trace"])]
    name = "/".join([*parts, f"seed{summary['seed']}"])
    if summary.get("clock") == "wall" and summary.get("time_scale", 1.0) != 1.0:
        name += f"/x{summary['time_scale']:g}"
    if summary.get("execution") == "real":
        name += "/real"
    if launch.kind == "smoke":
        name = f"smoke {name}"
    when = f"{launch.sweep} #{launch.job}" if launch.sweep is not None else run_dir.name
    return f"{name} · {when}"


def run_tags(plan: RunPlan, summary: dict[str, Any], run_dir: Path, launch: Launch) -> dict[str, str]:
    """What a researcher filters and groups by in MLflow: the system's grouping keys, the
    settings (seed, time_scale, duration, workers), the clock, the source and how it ran."""
    tags = plan.system.tags(summary)
    tags.update(
        {
            k: f"{summary[k]:g}" if isinstance(summary[k], float) else str(summary[k])
            for k in analysis.SETTINGS
            if k in summary
        }
    )
    commit, dirty = tracking.source_version()
    tags.update(
        {
            "clock": str(summary["clock"]),
            "execution": str(summary.get("execution", "simulated")),
            "subject": str(summary.get(plan.system.subject_key, "?")),
            "run_kind": launch.kind,
            "git_commit": commit,
            "git_dirty": str(dirty).lower(),
            "command": launch.command or "python -m orchestrator",
            "run_dir": str(run_dir),
            "partial": str(bool(summary.get("partial"))).lower(),
            "mlflow.source.git.commit": commit,
        }
    )
    if launch.sweep is not None:
        tags["sweep"] = launch.sweep
    return tags


def mlflow_status(summary: dict[str, Any]) -> str:
    """FAILED when the records do not add up or the testbed lost queries, KILLED when the run
    is partial, else FINISHED."""
    if summary.get("accounting_problems") or summary.get("queries_lost"):
        return "FAILED"
    return "KILLED" if summary.get("partial") else "FINISHED"


def _track(
    run_dir: Path, plan: RunPlan, result: analysis.Analysis, launch: Launch, span: tuple[float, float]
) -> tuple[str | None, str | None]:
    """(MLflow run id, why logging failed): the run's files go to MLflow; a run whose logging
    breaks off is ended FAILED (when the store still answers), never left RUNNING."""
    config, summary = plan.config, result.summary
    if not config.tracking.enabled:
        return None, None
    t0 = time.monotonic()
    uri = tracking.absolute_uri(config.tracking.uri)
    tags = run_tags(plan, summary, run_dir, launch)
    if "client_fell_behind" in summary:
        tags["client_fell_behind"] = str(bool(summary["client_fell_behind"])).lower()
    if summary.get("missing_files"):
        tags["missing_files"] = ", ".join(summary["missing_files"])
    if summary.get("accounting_problems"):
        tags["accounting_problems"] = "; ".join(summary["accounting_problems"])[:5000]
    numbers = [
        (k, float(v), 0)
        for k, v in summary.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and k not in analysis.SETTINGS
    ]
    # Per-second series live under their own prefix: the compare view shows a key's last value,
    # which is meaningless for a series, and a series named like a headline would replace it.
    series = [(f"{tracking.SERIES_PREFIX}{k}", v, step) for k, v, step in tracking.series_points(result.series)]
    series += [(f"{tracking.SERIES_PREFIX}{k}", v, step) for k, v, step in result.step_metrics]
    params, arrays = tracking.config_params(
        {k: v for k, v in plan.container.items() if k not in ("paths", "experiment") and v is not None}
    )
    params["tracking.uri"] = tracking.mask(params.get("tracking.uri", ""))
    files = [
        "records.parquet",
        "summary.json",
        "timeseries.parquet",
        "fid_windows.parquet",
        "config_resolved.yaml",
        "trace.csv",
        "exit_status.json",
        "engine.json",
        "orchestrator.log",
    ]
    artifacts: list[tuple[Path, str | None]] = [(run_dir / f, None) for f in files]
    artifacts += [(run_dir / "logs", "logs"), (run_dir / ".hydra", "hydra"), (run_dir / "figures", "figures")]
    artifacts += [(p, "roles") for p in sorted((run_dir / "roles").glob("*/*.parquet"))]
    artifacts += [(run_dir / name, str(Path(name).parent)) for name in result.tables]
    record = tracking.RunRecord(
        uri=uri,
        experiment=config.tracking.experiment,
        name=run_name(plan, summary, run_dir, launch),
        tags=tags,
        parent_run_id=launch.parent_run_id,
        span=span,
        params=params,
        arrays=arrays,
        metrics=numbers,
        series=series,
        artifacts=artifacts,
        status=mlflow_status(summary),
    )
    if launch.sweep is not None and tracking_writer.submit(record):
        # The sweep's writer logs it while the next job runs; the sweep collects the answer
        # (orchestrator/sweep.py) and fails this job if the record could not be written.
        log.info("Handed to the sweep's MLflow writer <uri=%s>: logged while the next job runs", tracking.mask(uri))
        return None, None
    run_id, why = tracking_writer.write(record)
    if why is not None:
        log.error("MLflow logging failed (results are in %s): %s", run_dir, why)
        return run_id, f"logging failed: {why}"
    log.info("Logged to MLflow <uri=%s run=%s> in %.2f s", tracking.mask(uri), run_id, time.monotonic() - t0)
    return run_id, None
