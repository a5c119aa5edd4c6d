"""The shared part of the one validation pass before anything starts: keys every system has
(clock, time scale, run mechanics, hostfile, execution). Each system's own keys are checked by
its registry entry (`System.resolve`). Every problem is a `ConfigError` naming the key and what
is allowed."""

from __future__ import annotations

from runtime.exceptions import ConfigError
from runtime.schema import Config

CLOCKS = ("wall", "virtual")
EXECUTIONS = ("simulated", "real")
ROLES = ("controller", "load_balancer", "sink", "client", "worker")
# The wall testbed's controller cannot keep a heartbeat cadence faster than this many wall
# seconds (benchmarks/fidelity.py measures the ticks it keeps): time_scale is bounded by it.
MIN_HEARTBEAT_WALL_S = 0.02


def require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


def validate_common(cfg: Config) -> None:
    require(cfg.clock in CLOCKS, "clock", f"unknown clock {cfg.clock!r} (allowed: {', '.join(CLOCKS)})")
    require(cfg.time_scale > 0, "time_scale", f"must be > 0 (got {cfg.time_scale})")
    require(cfg.seed >= 0, "seed", f"must be >= 0 (got {cfg.seed})")
    require(
        cfg.execution.mode in EXECUTIONS,
        "execution.mode",
        f"unknown mode {cfg.execution.mode!r} (allowed: {', '.join(EXECUTIONS)})",
    )
    require(
        cfg.clock == "wall" or cfg.execution.mode == "simulated",
        "clock",
        "the virtual clock replays simulated execution only (use clock=wall with execution=real)",
    )
    _validate_run(cfg)
    _validate_hostfile(cfg)


def _validate_run(cfg: Config) -> None:
    r = cfg.run
    for key in (
        "heartbeat_s",
        "heartbeat_timeout_s",
        "rpc_timeout_s",
        "ready_timeout_s",
        "stop_timeout_s",
        "drop_factor",
    ):
        value = getattr(r, key)
        require(value > 0, f"run.{key}", f"must be > 0 (got {value})")
    require(r.evict_after_missed >= 1, "run.evict_after_missed", f"must be >= 1 (got {r.evict_after_missed})")
    require(r.drain_slo_factor >= 0, "run.drain_slo_factor", f"must be >= 0 (got {r.drain_slo_factor})")
    require(r.start_lead_s >= 0, "run.start_lead_s", f"must be >= 0 (got {r.start_lead_s})")
    if cfg.clock == "wall" and cfg.time_scale > 0:
        wall_s = r.heartbeat_s / cfg.time_scale
        limit = r.heartbeat_s / MIN_HEARTBEAT_WALL_S
        require(
            wall_s >= MIN_HEARTBEAT_WALL_S,
            "time_scale",
            f"{cfg.time_scale:g} makes the controller heartbeat every {wall_s:.3g} wall seconds "
            f"(run.heartbeat_s / time_scale), faster than the {MIN_HEARTBEAT_WALL_S:g} s the wall testbed keeps; "
            f"allowed: time_scale <= {limit:g} with run.heartbeat_s={r.heartbeat_s:g}, or clock=virtual",
        )


def _validate_hostfile(cfg: Config) -> None:
    h = cfg.hostfile
    require(bool(h.hosts), "hostfile.hosts", "needs at least one host")
    if h.workers is not None:
        require(h.workers >= 1, "hostfile.workers", f"must be >= 1 GPU worker (got {h.workers})")
    require(cfg.trace.suggested_workers >= 1, "trace.suggested_workers", "must be >= 1")
    require(1024 <= h.base_port <= 65000, "hostfile.base_port", f"must be in 1024..65000 (got {h.base_port})")
    names = [host.name for host in h.hosts]
    require(len(set(names)) == len(names), "hostfile.hosts", f"host names must be unique (got {names})")
    for i, host in enumerate(h.hosts):
        for role in host.roles:
            require(role in ROLES, f"hostfile.hosts[{i}].roles", f"unknown role {role!r} (allowed: {', '.join(ROLES)})")
        require(host.workers_per_gpu >= 1, f"hostfile.hosts[{i}].workers_per_gpu", "must be >= 1")
        require(
            host.workers_per_gpu == 1 or cfg.execution.mode == "simulated",
            f"hostfile.hosts[{i}].workers_per_gpu",
            "only simulated execution may share a GPU between workers (real execution needs 1)",
        )
        if host.ssh is not None:
            require(
                bool(host.python),
                f"hostfile.hosts[{i}].python",
                "an SSH host needs the interpreter of the environment holding this project",
            )
            require(
                not (host.workdir or "").startswith("~"),
                f"hostfile.hosts[{i}].workdir",
                "must be absolute or relative to the login directory (no ~)",
            )
