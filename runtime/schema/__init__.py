"""The typed schema of an experiment: the part every system shares, and the base `Config`
each system's own schema extends (runtime/schema/diffserve.py, runtime/schema/spotserve.py).

A system's registry entry names its schema (`System.schema`); its config file
(`conf/system/<name>.yaml`) lists that schema first in its defaults, so Hydra type-checks
every group against the running system's dataclasses, and a key of another system (a
`cascade` in a SpotServe run) is refused at composition. The roles load the same schema
from the resolved config the orchestrator hands them (the run spec names it), so the
orchestrator and every role read one description of the run. Values are checked for sense
by the validators (orchestrator/config/validate.py, each system's validate.py), not here:
these classes hold no logic and do no I/O. Shared code sees only the classes of this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

MAX_TRACE_S = 7 * 24 * 3600.0  # the longest trace a run may replay: a week of trace time


def described(text: str, **bounds: float) -> dict[str, object]:
    """A field's metadata: its help text, and the range its value (or each value of a list)
    must lie in: gt, ge, lt, le. Every number is also checked to be finite
    (orchestrator.config.validate)."""
    return {"help": text, **bounds}


# --------------------------------------------------------------------------- system


@dataclass
class SystemConfig:
    name: str = field(default=MISSING, metadata=described("diffserve or spotserve: which roles run"))


# --------------------------------------------------------------------------- trace and approach: the shared part


@dataclass
class TraceConfig:
    """What every system's trace has; each system's trace section extends it."""

    name: str = field(default=MISSING, metadata=described("trace name, e.g. 3to24qps or As"))
    duration_s: float = field(default=347.0, metadata=described("trace length in seconds", gt=0, le=MAX_TRACE_S))
    suggested_workers: int = field(
        default=4, metadata=described("GPU workers used when hostfile.workers is null", ge=1)
    )


@dataclass
class ApproachConfig:
    """What every system's approach has; each system's approach section extends it."""

    name: str = field(
        default=MISSING,
        metadata=described(
            "diffserve, all_light, all_heavy, static, proteus; spotserve, reparallelization, rerouting; "
            "with plugin: your approach's label"
        ),
    )
    plugin: str | None = field(
        default=None,
        metadata=described(
            "an approach from your own package, module:Class (a subclass of the system's approach base; "
            "docs/extending.md); null: the registered approach `name`"
        ),
    )
    options: dict[str, Any] = field(
        default_factory=dict, metadata=described("settings of a plugin approach, read by it as self.config.options")
    )


# --------------------------------------------------------------------------- hostfile


@dataclass
class SshConfig:
    port: int = field(default=22, metadata=described("sshd port", ge=1, le=65535))
    user: str | None = field(default=None, metadata=described("login user; null: the user running the orchestrator"))
    key_file: str | None = field(default=None, metadata=described("private key file (key-based authentication only)"))
    known_hosts: str = field(
        default="~/.ssh/known_hosts", metadata=described("known_hosts file: a host whose key is not in it is refused")
    )
    accept_new: bool = field(
        default=False,
        metadata=described(
            "add the key of a host not yet in known_hosts (OpenSSH's accept-new); a changed key is refused"
        ),
    )
    connect_timeout_s: float = field(default=5.0, metadata=described("seconds to wait for the SSH connection", gt=0))
    keepalive_s: float = field(default=1.0, metadata=described("SSH keepalive interval", gt=0))
    user_timeout_ms: int = field(
        default=3000, metadata=described("TCP_USER_TIMEOUT: a silent host is lost after this", ge=1)
    )


@dataclass
class HostConfig:
    name: str = field(default=MISSING, metadata=described("host name used in logs and the run directory"))
    address: str = field(default="127.0.0.1", metadata=described("address the roles on this host bind and advertise"))
    bind_address: str | None = field(default=None, metadata=described("bind here instead of address (e.g. 0.0.0.0)"))
    ssh: SshConfig | None = field(default=None, metadata=described("null: a local host, roles are local processes"))
    python: str | None = field(
        default=None,
        metadata=described("interpreter of the environment holding this project; null: the orchestrator's own"),
    )
    workdir: str | None = field(default=None, metadata=described("where the roles' files live on the host"))
    gpus: list[int] = field(default_factory=list, metadata=described("GPU indices of this host", ge=0))
    workers_per_gpu: int = field(
        default=1, metadata=described("workers per GPU (simulated execution may share a GPU)", ge=1)
    )
    roles: list[str] = field(default_factory=list, metadata=described("roles placed on this host"))


@dataclass
class HostfileConfig:
    name: str = field(default=MISSING)
    workers: int | None = field(
        default=None, metadata=described("GPU workers besides the sink; null: trace.suggested_workers", ge=1)
    )
    base_port: int = field(
        default=50050, metadata=described("first port; roles take consecutive ports per address", ge=1024, le=65535)
    )
    ports: str = field(
        default="auto",
        metadata=described(
            "auto: from base_port up, the first range no other run on this machine holds; fixed: base_port or fail"
        ),
    )
    hosts: list[HostConfig] = field(default_factory=list)


# --------------------------------------------------------------------------- execution


@dataclass
class ExecutionConfig:
    mode: str = field(
        default="simulated", metadata=described("simulated (sleep the profiled latency) or real (run models)")
    )
    device: str = field(default="auto", metadata=described("real execution: cuda, cpu or auto"))
    save_images: bool = field(
        default=False, metadata=described("real execution: save served images in the run directory")
    )
    warmup: bool = field(default=True, metadata=described("real execution: one warm-up generation before ready"))
    threads: int = field(
        default=1, metadata=described("real execution on a CPU: torch threads per worker (0: torch's default)", ge=0)
    )
    weights_dir: str | None = field(
        default=None,
        metadata=described(
            "SpotServe real execution: folder of the model's weight files on each host (written once, seeded, "
            "when missing); null: ~/.cache/servelab/weights"
        ),
    )
    worker_processes: str = field(
        default="instance",
        metadata=described(
            "SpotServe, simulated execution: instance (the GPUs of one instance share a process) or gpu "
            "(one process a GPU, as real execution always runs)"
        ),
    )


# --------------------------------------------------------------------------- run mechanics


@dataclass
class TrackingConfig:
    uri: str = field(default=MISSING, metadata=described("MLflow tracking URI (sqlite:///... by default)"))
    experiment: str = field(default="servelab", metadata=described("MLflow experiment name"))
    enabled: bool = field(default=True, metadata=described("log the run to MLflow"))


@dataclass
class RunConfig:
    drain_slo_factor: float = field(
        default=2.0, metadata=described("after the last arrival, wait up to this many SLOs", ge=0)
    )
    heartbeat_s: float = field(default=1.0, metadata=described("controller heartbeat period (trace seconds)", gt=0))
    evict_after_missed: int = field(
        default=3, metadata=described("a worker is evicted after this many heartbeats in a row without an answer", ge=1)
    )
    heartbeat_timeout_s: float = field(
        default=1.0, metadata=described("wall seconds a heartbeat may take before it counts as missed", gt=0)
    )
    rpc_timeout_s: float = field(default=2.0, metadata=described("deadline of every RPC, wall seconds", gt=0))
    ready_timeout_s: float = field(
        default=60.0, metadata=described("wall seconds a role may take to become ready", gt=0)
    )
    stop_timeout_s: float = field(
        default=5.0, metadata=described("wall seconds between TERM and KILL at teardown", gt=0)
    )
    silence_s: float = field(
        default=5.0,
        metadata=described(
            "wall seconds an essential role (controller, load balancer, sink, client) may leave its health check "
            "unanswered before the run stops (a hung or stopped process)",
            gt=0,
        ),
    )
    lease_s: float = field(
        default=6.0,
        metadata=described(
            "roles stop by themselves when the orchestrator has not renewed their lease for this long", ge=2
        ),
    )
    start_lead_s: float = field(default=0.5, metadata=described("wall seconds between Start and trace time 0", ge=0))
    drop_factor: float = field(
        default=1.0, metadata=described("workers drop a query whose projected latency exceeds this many SLOs", gt=0)
    )
    progress: bool = field(default=True, metadata=described("print a live progress line"))
    figures: bool | None = field(
        default=None,
        metadata=described(
            "draw the run's own figures: null draws them for a single run, not for a sweep's jobs "
            "(the sweep's comparison figures are drawn either way)"
        ),
    )
    journal_sync_s: float = field(
        default=2.0,
        metadata=described(
            "the client's and the sink's journals reach the disk (fsync) this often, wall seconds", gt=0
        ),
    )
    send_lag_limit_s: float = field(
        default=1.0,
        metadata=described("a run whose client sent queries this many trace seconds late (p99) fell behind", gt=0),
    )


@dataclass
class MetricsConfig:
    window_s: float = field(
        default=5.0, metadata=described("window of the windowed SLO ratio and FID series, trace seconds", gt=0)
    )
    smooth: int = field(
        default=5, metadata=described("windows in the moving average of the artifact-style SLO ratio", ge=1)
    )


@dataclass
class LimitsConfig:
    """What a run may ask of this machine and its hosts, checked before anything starts
    (orchestrator/config/limits.py); raise one to run bigger on purpose."""

    processes_per_core: float = field(
        default=16.0, metadata=described("wall clock: role processes a host may run per CPU core", gt=0)
    )
    workers: int = field(default=4096, metadata=described("workers of one run, on either clock", ge=1))
    instances: int = field(default=1024, metadata=described("SpotServe: instances an availability trace may add", ge=1))
    queries: int = field(
        default=20_000_000, metadata=described("queries (trace lines, expected arrivals) of one run", ge=1)
    )
    windows: int = field(
        default=1_000_000,
        metadata=described("windows of a windowed series (trace length / metrics or quality window_s)", ge=1),
    )
    wall_hours: float = field(
        default=24.0, metadata=described("wall clock: hours the trace may take at time_scale (with its drain)", gt=0)
    )
    memory_fraction: float = field(
        default=0.8,
        metadata=described(
            "the run's estimated memory may use this fraction of what this machine has available", gt=0, le=1
        ),
    )


@dataclass
class Config:
    """The part of an experiment every system shares; a system's schema subclasses it with its
    own sections (and its own trace and approach)."""

    system: SystemConfig = field(default_factory=SystemConfig)
    trace: TraceConfig = field(default_factory=TraceConfig)
    approach: ApproachConfig = field(default_factory=ApproachConfig)
    hostfile: HostfileConfig = field(default_factory=HostfileConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    run: RunConfig = field(default_factory=RunConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    seed: int = field(default=0, metadata=described("seed of every random draw (trace, confidences)", ge=0))
    time_scale: float = field(
        default=1.0, metadata=described("wall-clock run goes this many times faster than the trace", gt=0)
    )
    clock: str = field(
        default="wall",
        metadata=described(
            "wall: the live testbed (processes, gRPC, real time); virtual: the same cores on a discrete-event clock"
        ),
    )
    paths: dict[str, Any] = field(default_factory=dict)
    experiment: str | None = field(default=None, metadata=described("name of the experiment preset, if any"))
