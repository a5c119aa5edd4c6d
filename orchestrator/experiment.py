"""One experiment, end to end: `run_experiment(cfg, run_dir) -> RunResult`.

Phases, each logged with its duration:
  1. resolve   validate the config, place the roles, materialise the trace, write the spec;
  2. deploy    start the roles in dependency order (controller -> load balancer -> sink ->
               workers -> client), each stage ready before the next;
  3. replay    start the run, watch progress and the roles' health until the client is done;
  4. teardown  stop every role on every host (always, in a finally), bring files back;
  5. results   one record per query, the accounting check, summary.json, MLflow.
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
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from orchestrator import analysis, tracking
from orchestrator.config.spotserve import spot_workers
from orchestrator.config.validate import validate, workers_wanted
from orchestrator.deploy.deployment import Deployment
from orchestrator.deploy.launcher import SPEC_FILE, RoleProcess
from orchestrator.deploy.placement import START_ORDER, place
from orchestrator.progress import ProgressLine
from runtime import spec as run_spec
from runtime.exceptions import AccountingError, ConfigError, DeployError, ServelabError, TraceFormatError
from runtime.logs import init_logger
from runtime.protos import servelab_pb2 as pb
from runtime.protos import servelab_pb2_grpc as pbg
from runtime.schema import Config
from traces.diffserve import ArrivalTrace, generate, read_artifact, write_artifact
from traces.spotserve import availability_to_config, load_availability, load_requests

log = init_logger("orchestrator")

TRACE_FILE = "trace.csv"
FINISH_SLACK_WALL_S = 60.0  # beyond the trace and its drain, before a run is declared stuck


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    mlflow_run_id: str | None


def new_run_id() -> str:
    """Unique name of a run on every host (remote hosts keep its files under it)."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"


class Interrupted(KeyboardInterrupt):
    """The run was stopped by Ctrl-C or SIGTERM; everything was torn down first."""


def typed_config(cfg: DictConfig) -> Config:
    obj = OmegaConf.to_object(cfg)
    if not isinstance(obj, Config):
        raise ConfigError("config: the composed config does not follow the schema (is `schema` in the defaults list?)")
    return obj


def load_trace(config: Config) -> ArrivalTrace:
    """The arrivals the client will replay: an artifact file, or our seeded generator."""
    if config.system.name == "spotserve":
        assert config.model is not None
        requests = load_requests(config.trace, config.model, config.seed)
        if len(requests) == 0:
            raise ConfigError(
                f"trace.requests: no request arrives within the {config.trace.duration_s:g} s of trace {config.trace.name}"
            )
        return ArrivalTrace(config.trace.name, requests.arrival_s, requests.ids)
    cascade = config.cascade
    assert cascade is not None
    t = config.trace
    if t.path:
        trace = read_artifact(t.path, name=t.name)
        where = f"{t.path} (trace.path)"
    else:
        trace = generate(t.name, t.low_qps, t.high_qps, t.duration_s, cascade.num_prompts, config.seed, t.shape)
        where = f"trace {t.name}"
    if len(trace) == 0:
        raise TraceFormatError(f"{where}: the trace has no arrivals")
    top = int(trace.prompt_index.max())
    if top >= cascade.num_prompts:
        raise TraceFormatError(
            f"{where}: prompt index {top} is beyond the cascade's {cascade.num_prompts} prompts (cascade.num_prompts)"
        )
    return trace


def inline_availability(config: Config, container: dict[str, Any]) -> None:
    """Replace `trace.availability_path` by the events read from it, in the typed config and in
    the container the spec is written from: roles, on any host and in any directory, then
    replay exactly the events validated here, and the resolved config records them. The trace
    takes the file's name and its length (the end event), so the requests stop with the fleet
    and the run is not filed under the configured trace it replaced."""
    path = Path(str(config.trace.availability_path))
    events = availability_to_config(load_availability(config.trace))
    window = "-".join(f"{t:g}" for t in config.trace.availability_window_s)
    changes = {
        "availability": events,
        "availability_path": None,
        "availability_window_s": [],
        "duration_s": events[-1].at_s,
        "name": f"{path.stem}_{window}" if window else path.stem,
    }
    for key, value in changes.items():
        setattr(config.trace, key, value)
        container["trace"][key] = [dataclasses.asdict(e) for e in events] if key == "availability" else value
    log.info("Read %d availability events (%g trace seconds) from %s", len(events), events[-1].at_s, path)


@dataclass(frozen=True)
class Prepared:
    """A resolved run, ready to deploy: its typed config, roles, trace and spec on disk."""

    config: Config
    container: dict[str, Any]
    addresses: list[run_spec.RoleAddress]
    trace: ArrivalTrace
    spec: run_spec.RunSpec

    @property
    def files(self) -> list[str]:
        return [SPEC_FILE, TRACE_FILE]


def prepare(cfg: DictConfig, run_dir: Path) -> Prepared:
    """Phase 1: validate, place the roles, materialise the trace, write the spec."""
    t0 = time.monotonic()
    config = typed_config(cfg)
    validate(config)
    container: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    if config.trace.availability_path:
        inline_availability(config, container)
    run_dir.mkdir(parents=True, exist_ok=True)
    workers = workers_wanted(config)
    if config.system.name == "spotserve":
        instances, _ = spot_workers(config)
        addresses = place(config.hostfile, workers, instances, config.spot.gpus_per_instance)
    else:
        addresses = place(config.hostfile, workers)
    trace = load_trace(config)
    write_artifact(trace, run_dir / TRACE_FILE)
    spec = run_spec.RunSpec(run_id=new_run_id(), config=config, roles=tuple(addresses), trace_file=TRACE_FILE)
    run_spec.dump(spec, container, run_dir / SPEC_FILE)
    (run_dir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(container), encoding="utf-8")
    subject = config.cascade.name if config.cascade else config.model.name if config.model else "?"
    log.info(
        "Resolved <system=%s subject=%s trace=%s approach=%s workers=%d queries=%d time_scale=%g> in %.2f s",
        config.system.name, subject, config.trace.name, config.approach.name, workers, len(trace),
        config.time_scale, time.monotonic() - t0,
    )  # fmt: skip
    return Prepared(config, container, addresses, trace, spec)


def run_experiment(cfg: DictConfig, run_dir: Path, parent_run_id: str | None = None) -> RunResult:
    prepared = prepare(cfg, run_dir)
    config, container, addresses, trace, spec = (
        prepared.config, prepared.container, prepared.addresses, prepared.trace, prepared.spec,
    )  # fmt: skip
    deployment = Deployment(config, addresses, run_dir, spec.run_id)
    interrupted = False
    failure: BaseException | None = None
    try:
        deployment.open([run_dir / SPEC_FILE, run_dir / TRACE_FILE])
        procs = deployment.deploy()
        _replay(deployment, procs, config, trace)
    except KeyboardInterrupt:
        interrupted = True
        log.warning("Interrupted: tearing everything down")
    except BaseException as err:
        failure = err
    finally:
        deployment.close()
    _write_statuses(run_dir, deployment.statuses)
    if failure is not None and not (run_dir / "roles" / "client" / "client.parquet").exists():
        raise failure
    result = _results(run_dir, config, container, len(trace), interrupted or failure is not None, parent_run_id)
    if interrupted:
        raise Interrupted()
    if failure is not None:
        raise failure
    problems = result.summary.get("accounting_problems") or []
    if problems:
        raise AccountingError("accounting failed: " + "; ".join(problems) + f" (records kept in {run_dir})")
    return result


def _replay(deployment: Deployment, procs: dict[str, RoleProcess], config: Config, trace: ArrivalTrace) -> None:
    assert deployment.launcher is not None
    epoch = time.time() + config.run.start_lead_s
    order = sorted(procs.values(), key=lambda p: START_ORDER.index(p.address.role))
    deployment.launcher.start_run(order, epoch)
    log.info("Replaying %d queries over %.0f trace seconds", len(trace), trace.duration_s)
    stub = pbg.ClientStub(procs["client"].rpc_channel())
    drain = config.run.drain_slo_factor * config.cascade.slo_s if config.cascade else 0.0
    trace_wall = (max(trace.duration_s, config.trace.duration_s) + drain) / config.time_scale
    deadline = time.monotonic() + config.run.start_lead_s + trace_wall + FINISH_SLACK_WALL_S
    watched = list(procs.values())
    slo = config.cascade is not None
    with ProgressLine(config.run.progress, slo) as bar:
        while True:
            try:
                progress = stub.Progress(pb.Empty(), timeout=2.0)
            except grpc.RpcError:
                progress = None
            if progress is not None:
                bar.update(progress)
                if progress.done:
                    outcome = (
                        f"violations {progress.violations}"
                        if slo
                        else f"in flight {progress.sent - progress.completed}"
                    )
                    log.info("Replay done: sent %d, completed %d, %s", progress.sent, progress.completed, outcome)
                    return
            gone = deployment.watch(watched)
            watched = [p for p in watched if p.name not in gone]
            if time.monotonic() > deadline:
                raise DeployError("the client did not finish the trace in time; see logs/ in the run directory")
            time.sleep(0.5)


def _write_statuses(run_dir: Path, statuses: dict[str, dict[str, Any]]) -> None:
    (run_dir / "exit_status.json").write_text(json.dumps(statuses, indent=1), encoding="utf-8")


def _results(
    run_dir: Path,
    config: Config,
    container: dict[str, Any],
    total: int,
    partial: bool,
    parent_run_id: str | None,
) -> RunResult:
    t0 = time.monotonic()
    result = analysis.analyze(run_dir, config, total, partial)
    figures = analysis.write(result, run_dir, config)
    log.info("Computed results and %d figures in %.2f s", len(figures), time.monotonic() - t0)
    fid_windows = analysis.measure_fid(result, run_dir, config)
    if fid_windows is not None:
        log.info(
            "Measured FID %.3f over %d images", result.summary["fid_measured"], result.summary["fid_measured_images"]
        )
    run_id = _track(run_dir, config, container, result, partial, parent_run_id, fid_windows)
    return RunResult(run_dir=run_dir, summary=result.summary, mlflow_run_id=run_id)


def _track(
    run_dir: Path,
    config: Config,
    container: dict[str, Any],
    result: analysis.Analysis,
    partial: bool,
    parent_run_id: str | None,
    fid_windows: pd.DataFrame | None = None,
) -> str | None:
    summary = result.summary
    if not config.tracking.enabled:
        return None
    t0 = time.monotonic()
    uri = tracking.absolute_uri(config.tracking.uri)
    keys = ("system", "approach", "cascade", "model", "trace", "trace_kind", "ablation")
    tags = {k: str(summary[k]) for k in keys if k in summary}
    tags["run_dir"] = str(run_dir)
    subject = summary.get("cascade") or summary.get("model")
    name = f"{summary['approach']}{'-ablation' + str(summary['ablation']) if summary.get('ablation') else ''}-{subject}-{summary['trace']}"
    numbers = [(k, float(v), 0) for k, v in summary.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    # MLflow keeps one latest value per key: a series named like a summary metric would replace it.
    clash = sorted(set(result.series.columns) & {k for k, _, _ in numbers})
    if clash:
        raise ServelabError(f"time series named like summary metrics: {', '.join(clash)}")
    try:
        run_id = tracking.start_run(uri, config.tracking.experiment, name, tags, parent_run_id)
        tracking.log_params(uri, run_id, tracking.flatten({k: v for k, v in container.items() if k != "paths"}))
        tracking.log_metrics(uri, run_id, numbers)
        # Per-second series as step metrics (step = trace second), sent in batches.
        seconds = result.series["second"]
        points = [
            (str(key), float(value), int(second))
            for key in result.series.columns.drop("second")
            for second, value in zip(seconds, result.series[key], strict=True)
        ]
        tracking.log_metrics(uri, run_id, points)
        if fid_windows is not None:
            measured = zip(fid_windows["window_start_s"], fid_windows["fid"], strict=True)
            tracking.log_metrics(uri, run_id, [("fid_measured_window", float(v), int(t)) for t, v in measured])
        files = [
            "records.parquet",
            "summary.json",
            "timeseries.parquet",
            "fid_windows.parquet",
            "config_resolved.yaml",
            "trace.csv",
            "exit_status.json",
            "orchestrator.log",
        ]
        artifacts: list[tuple[Path, str | None]] = [(run_dir / f, None) for f in files]
        artifacts += [(run_dir / "logs", "logs"), (run_dir / ".hydra", "hydra"), (run_dir / "figures", "figures")]
        artifacts += [(p, "roles") for p in sorted((run_dir / "roles").glob("*/*.parquet"))]
        tracking.log_artifacts(uri, run_id, artifacts)
        tracking.end_run(uri, run_id, "KILLED" if partial else "FINISHED")
    except Exception as err:  # the run's files are the source of truth; MLflow is a copy
        log.error("MLflow logging failed (results are in %s): %s", run_dir, err)
        return None
    log.info("Logged to MLflow <uri=%s run=%s> in %.2f s", uri, run_id, time.monotonic() - t0)
    return run_id
