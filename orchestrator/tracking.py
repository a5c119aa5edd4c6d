"""MLflow logging: a thin shell over `MlflowClient`, batching everything it sends.

One MLflow run per job: the resolved config's scalar settings as params (an array-valued one,
such as a profile or the f(t) table, is a digest param and lives whole in `params/arrays.json`;
provenance text is in `config_resolved.yaml`), the summary as metrics,
per-second series as step metrics, and the run directory's files as artifacts. With the
default SQLite store, artifacts go next to the database (`outputs/mlartifacts`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import math
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# A tracking server that stops answering must not hold a finished run for minutes of retries.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
CHECK_TIMEOUT_S = 3.0

PARAMS_PER_BATCH = 100  # MLflow's LogBatch limits
METRICS_PER_BATCH = 1000
PARAM_VALUE_MAX = 6000
# A per-second series goes to MLflow with at most this many points (every k-th second; the
# full series is the run's timeseries.parquet): a 22-minute trace's dozen series would
# otherwise be 16,000 rows, which SQLite takes seconds to insert.
SERIES_POINTS = 200
SERIES_PREFIX = "series/"  # per-second series: step metrics apart from the headline numbers
# Set last, once every param, metric and artifact of a run is in: a run without it was cut off.
LOGGED_TAG = "servelab.logged"
# The MLflow UI opens an experiment in the view its kind names; ours are model-training runs.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
ROOT = Path(__file__).resolve().parents[1]


ARRAYS_ARTIFACT = "params/arrays.json"


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> {"cascade.light.steps": 1, ...}: dotted keys, leaves as they are."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def digest(value: Any) -> str:
    """A short stable name for an array's content: two runs with the same table show the same."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def config_params(tree: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """The params a person diffs in MLflow's compare view, and the array-valued settings.

    Scalars are params as they are. An array (a profile, f(t), a host list) is one param,
    `<n> values sha256:<12 hex>`, and its whole value goes to `params/arrays.json`, so the
    parameter diff and parallel coordinates stay readable and a changed table still shows.
    Provenance text (`*.source`) is not a setting: it stays in config_resolved.yaml."""
    params: dict[str, str] = {}
    arrays: dict[str, Any] = {}
    for key, value in flatten(tree).items():
        if key == "source" or key.endswith(".source"):
            continue
        if isinstance(value, list | tuple) and not value:
            params[key] = "0 values"
        elif isinstance(value, list | tuple):
            arrays[key] = list(value)
            params[key] = f"{len(value)} values sha256:{digest(list(value))}"
        else:
            params[key] = str(value)[:PARAM_VALUE_MAX]
    return params, arrays


def sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def absolute_uri(uri: str) -> str:
    """A sqlite URI with a relative path, made absolute (relative to the current directory)."""
    path = sqlite_path(uri)
    return f"sqlite:///{path.resolve()}" if path is not None and not path.is_absolute() else uri


def mask(uri: str) -> str:
    """The URI without its secrets (a password or token in the user part or the query)."""
    uri = re.sub(r"//([^/@:]*):[^/@]*@", r"//\1:***@", uri)  # user:password@ keeps the user
    uri = re.sub(r"//[^/@:]*@", "//***@", uri)  # a bare token@
    return re.sub(r"(?i)([?&](?:token|password|secret|key)[^=]*=)[^&]*", r"\1***", uri)


def check_store(uri: str) -> None:
    """Refuse a tracking store the run could not log to, before it starts (one line naming it)."""
    from runtime.exceptions import ConfigError

    if uri.startswith("file:"):
        raise ConfigError(
            "tracking.uri: file:// stores are not supported; use sqlite:///path/mlflow.db (the default) "
            "or an http(s):// tracking server"
        )
    path = sqlite_path(uri)
    if path is not None:
        folder = path.resolve().parent
        probe = folder
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not os.access(probe, os.W_OK):
            raise ConfigError(f"tracking.uri: {folder} is not writable")
        return
    if uri.startswith(("http://", "https://")):
        parts = urllib.parse.urlsplit(uri)
        # urllib does not take credentials in the URL (MLflow's requests does): send them as a header
        host = parts.netloc.rsplit("@", 1)[-1]
        request = urllib.request.Request(urllib.parse.urlunsplit(parts._replace(netloc=host)).rstrip("/") + "/health")
        if parts.username is not None:
            token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=CHECK_TIMEOUT_S):
                return
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ConfigError(
                f"tracking.uri: no MLflow server answers at {mask(uri)} ({reason}); start one (README) "
                "or set tracking.enabled=false"
            ) from None


def load() -> None:
    """Import MLflow's client (about 0.7 s), so that the first call does not pay it."""
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"sqlalchemy.*|mlflow.*|alembic.*")
    import mlflow.entities
    import mlflow.tracking  # noqa: F401


_ready_stores: set[str] = set()  # SQLite stores this process has seen created and migrated


def client(uri: str) -> Any:
    """An MlflowClient. A SQLite store is created or migrated under a file lock beside it
    (`<db>.lock`): two runs or sweeps that start at once on a fresh store would otherwise both
    run its migrations, and one of them (or every later run) would find it broken."""
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"sqlalchemy.*|mlflow.*|alembic.*")
    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # no INFO lines about creating tables
    path = sqlite_path(uri)
    if path is None or uri in _ready_stores:
        return MlflowClient(tracking_uri=uri)
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        try:
            mlf = MlflowClient(tracking_uri=uri)
            mlf.search_experiments(max_results=1)  # the store is built (tables created, migrated) here
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    _ready_stores.add(uri)
    return mlf


def experiment_id(mlf: Any, name: str, uri: str) -> str:
    exp = mlf.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    path = sqlite_path(uri)
    location = (path.parent / "mlartifacts" / name).resolve().as_uri() if path is not None else None
    try:
        return str(mlf.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND))
    except Exception:  # created meanwhile by a parallel job of the same sweep
        exp = mlf.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)


def start_run(
    uri: str,
    experiment: str,
    run_name: str,
    tags: Mapping[str, str],
    parent_run_id: str | None = None,
    start_s: float | None = None,
) -> str:
    """A new run; `start_s` (epoch seconds) when the experiment began, not the logging."""
    mlf = client(uri)
    all_tags = dict(tags)
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    start_ms = int(start_s * 1000) if start_s is not None else None
    run = mlf.create_run(experiment_id(mlf, experiment, uri), start_time=start_ms, run_name=run_name, tags=all_tags)
    return str(run.info.run_id)


def source_version(root: Path = ROOT) -> tuple[str, bool]:
    """(git commit, whether the tree has uncommitted changes) of the project; ("unknown", False)
    outside a git checkout (an installed wheel)."""
    import subprocess

    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    return commit, bool(status.strip())


def log_params(uri: str, run_id: str, params: Mapping[str, str]) -> None:
    from mlflow.entities import Param

    mlf = client(uri)
    items = [Param(k, v) for k, v in params.items()]
    for i in range(0, len(items), PARAMS_PER_BATCH):
        mlf.log_batch(run_id, params=items[i : i + PARAMS_PER_BATCH])


def log_metrics(uri: str, run_id: str, metrics: Iterable[tuple[str, float, int]]) -> int:
    """Log (key, value, step) points in batches; non-finite values are skipped. Returns the count."""
    from mlflow.entities import Metric

    mlf = client(uri)
    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, int(step)) for k, v, step in metrics if v is not None and math.isfinite(float(v))]
    for i in range(0, len(items), METRICS_PER_BATCH):
        mlf.log_batch(run_id, metrics=items[i : i + METRICS_PER_BATCH])
    return len(items)


def series_points(series: Any) -> list[tuple[str, float, int]]:
    """A per-second series frame (column `second`) as (key, value, step) points, step = trace
    second, at most SERIES_POINTS per series."""
    stride = max(1, math.ceil(len(series) / SERIES_POINTS))
    rows = series.iloc[::stride]
    seconds = rows["second"]
    return [
        (str(key), float(value), int(second))
        for key in rows.columns.drop("second")
        for second, value in zip(seconds, rows[key], strict=True)
    ]


def log_artifacts(uri: str, run_id: str, files: Iterable[tuple[Path, str | None]]) -> None:
    mlf = client(uri)
    for path, dest in files:
        if path.is_dir():
            mlf.log_artifacts(run_id, str(path), dest)
        elif path.is_file():
            mlf.log_artifact(run_id, str(path), dest)


def log_json(uri: str, run_id: str, value: Mapping[str, Any], artifact_file: str) -> None:
    client(uri).log_dict(run_id, dict(value), artifact_file)


def set_tags(uri: str, run_id: str, tags: Mapping[str, str]) -> None:
    from mlflow.entities import RunTag

    client(uri).log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])


def end_run(uri: str, run_id: str, status: str = "FINISHED", end_s: float | None = None) -> None:
    client(uri).set_terminated(run_id, status, end_time=int(end_s * 1000) if end_s is not None else None)


@dataclass(frozen=True)
class RunRecord:
    """Everything one MLflow run receives, as plain data (it can travel to the writer process,
    orchestrator/tracking_writer.py)."""

    uri: str
    experiment: str
    name: str
    tags: dict[str, str]
    parent_run_id: str | None
    span: tuple[float, float]  # epoch seconds the run began and ended
    params: dict[str, str]
    arrays: dict[str, Any]  # array-valued settings, whole (ARRAYS_ARTIFACT)
    metrics: list[tuple[str, float, int]]  # the summary's numbers (step 0)
    series: list[tuple[str, float, int]]  # per-second series and step metrics
    artifacts: list[tuple[Path, str | None]]
    status: str  # FINISHED, FAILED or KILLED


def write_record(record: RunRecord) -> tuple[str | None, str | None]:
    """Log `record` as one MLflow run: (its run id, why logging failed or None). A run whose
    logging breaks off is ended FAILED (when the store still answers), never left RUNNING; an
    interrupt ends it KILLED and goes on."""
    uri = record.uri
    run_id: str | None = None
    try:
        run_id = start_run(uri, record.experiment, record.name, record.tags, record.parent_run_id, record.span[0])
        log_params(uri, run_id, record.params)
        log_json(uri, run_id, record.arrays, ARRAYS_ARTIFACT)
        log_metrics(uri, run_id, record.metrics)
        log_metrics(uri, run_id, record.series)
        log_artifacts(uri, run_id, record.artifacts)
        set_tags(uri, run_id, {LOGGED_TAG: "complete"})
        end_run(uri, run_id, record.status, end_s=record.span[1])
    except KeyboardInterrupt:
        if run_id is not None:
            end_run(uri, run_id, "KILLED")
        raise
    except Exception as err:  # the run's files are the source of truth; MLflow is a copy
        why = str(err).strip().splitlines()[0].replace(uri, mask(uri)) if str(err).strip() else type(err).__name__
        if run_id is not None:
            with contextlib.suppress(Exception):
                end_run(uri, run_id, "FAILED")
        return run_id, why
    return run_id, None
