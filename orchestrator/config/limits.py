"""Bounds on what a run may ask for, checked before anything starts: role processes per host
against its cores and memory, workers, SpotServe instances, queries (trace lines or expected
arrivals) and the memory they need, windows of the windowed series, and the wall time implied
by `time_scale`. Each bound is a `limits.*` key (runtime/schema/__init__.py) so that a user who means it
can raise it; each refusal is a ConfigError naming the key to raise.

The decisions are pure functions of numbers; `machine()` and `count_lines()` are the only I/O.
The memory figures are measured by `python -m benchmarks.bounds` on this project's machine.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from runtime.exceptions import ConfigError
from runtime.schema import Config, LimitsConfig
from runtime.spec import RoleAddress

# Measured (benchmarks/bounds.py): peak memory of a virtual run grows by about this much per
# query (its records, the trace, the analysis' frames), on top of the interpreter and the
# libraries a run imports: 1,318 bytes since records are typed columns (2,500 when each was a
# dict); the replay alone holds about 400 (benchmarks/scaling.py).
BYTES_PER_QUERY = 1_400
BASE_BYTES = 320 * 2**20
# A role process (simulated) with its supervisor, resident: 61 MB + 13 MB measured.
BYTES_PER_ROLE_PROCESS = 75 * 2**20


@dataclass(frozen=True)
class Machine:
    """What a host offers: CPU cores this process may use, memory available now (None: unknown)."""

    cores: int
    available_bytes: int | None


def machine() -> Machine:
    """This machine's cores (as the scheduler lets this process use them) and MemAvailable."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    available = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:  # not Linux: the memory bound is not checked
        pass
    return Machine(cores, available)


def count_lines(path: str | Path) -> int:
    """Lines of a trace file, read in blocks (a bound on its entries before parsing any)."""
    n, last = 0, b"\n"
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_queries(queries: float, limits: LimitsConfig, where: str, estimated: bool = False) -> None:
    """`where` (a trace, or a trace file's lines) holds too many queries to run."""
    if queries > limits.queries:
        has = f"would send about {queries:,.0f} queries" if estimated else f"has {queries:,.0f} lines"
        raise ConfigError(
            f"limits.queries: {where} {has}, more than the {limits.queries:,} queries a run may have "
            f"(raise limits.queries to run it on purpose)"
        )


def check_workers(workers: int, limits: LimitsConfig, what: str) -> None:
    if workers > limits.workers:
        raise ConfigError(
            f"limits.workers: {what} asks for {workers:,} workers, more than the {limits.workers:,} a run may have "
            "(raise limits.workers to run it on purpose)"
        )


def check_instances(instances: int, limits: LimitsConfig, where: str) -> None:
    if instances > limits.instances:
        raise ConfigError(
            f"limits.instances: {where} adds {instances:,} instances, more than the {limits.instances:,} a run may "
            "have (raise limits.instances to run it on purpose)"
        )


def check_windows(duration_s: float, window_s: float, key: str, limits: LimitsConfig) -> None:
    """A windowed series over `duration_s` trace seconds in windows of `window_s` (the key)."""
    windows = duration_s / window_s
    if windows > limits.windows:
        raise ConfigError(
            f"{key}: {window_s:g} s makes {windows:,.0f} windows of the {duration_s:g}-s trace, more than "
            f"limits.windows={limits.windows:,} (choose a longer window)"
        )


def check_wall_time(trace_s: float, time_scale: float, limits: LimitsConfig) -> None:
    """A wall-clock run lasts its trace (and drain) divided by time_scale."""
    hours = trace_s / time_scale / 3600
    if hours > limits.wall_hours:
        raise ConfigError(
            f"time_scale: {time_scale:g} makes the {trace_s:g} trace seconds last {hours:,.3g} wall hours, more than "
            f"limits.wall_hours={limits.wall_hours:g} (raise time_scale, or limits.wall_hours to run it on purpose)"
        )


def check_host(host: str, processes: int, m: Machine, limits: LimitsConfig) -> None:
    """`processes` role processes on `host`, against its cores and its available memory."""
    allowed = int(m.cores * limits.processes_per_core)
    if processes > allowed:
        raise ConfigError(
            f"limits.processes_per_core: host {host} would run {processes:,} role processes on {m.cores} cores "
            f"(at most {allowed:,} at {limits.processes_per_core:g} per core; fewer workers, more hosts, "
            "or raise limits.processes_per_core)"
        )
    need = processes * BYTES_PER_ROLE_PROCESS
    if m.available_bytes is not None and need > limits.memory_fraction * m.available_bytes:
        raise ConfigError(
            f"limits.memory_fraction: host {host} would need about {_gib(need)} for {processes:,} role processes "
            f"(~{BYTES_PER_ROLE_PROCESS // 2**20} MB each); {_gib(m.available_bytes)} is available and a run may use "
            f"{limits.memory_fraction:g} of it"
        )


def check_memory(queries: int, local_processes: int, m: Machine, limits: LimitsConfig) -> None:
    """The orchestrator's own need (records and analysis of `queries`) and the role processes on
    this machine, against the memory it has available."""
    if m.available_bytes is None:
        return
    need = BASE_BYTES + queries * BYTES_PER_QUERY + local_processes * BYTES_PER_ROLE_PROCESS
    if need > limits.memory_fraction * m.available_bytes:
        raise ConfigError(
            f"limits.memory_fraction: the run would need about {_gib(need)} here ({queries:,} queries at "
            f"~{BYTES_PER_QUERY:,} bytes each, {local_processes} local role processes); {_gib(m.available_bytes)} is "
            f"available and a run may use {limits.memory_fraction:g} of it (a shorter trace, or a machine with more memory)"
        )


def check_run(
    config: Config, trace_s: float, drain_s: float, queries: int, addresses: Sequence[RoleAddress], m: Machine
) -> None:
    """Every bound that needs the resolved run: its windows, its wall time, the role processes
    of each local host, and the memory this machine needs for it. (SSH hosts' cores and memory
    are checked when the deployment connects to them.)"""
    lim = config.limits
    check_windows(trace_s, config.metrics.window_s, "metrics.window_s", lim)
    local = 0
    if config.clock == "wall":
        check_wall_time(trace_s + drain_s, config.time_scale, lim)
        for host in config.hostfile.hosts:
            if host.ssh is None:
                processes = len({a.process_name for a in addresses if a.host == host.name})
                check_host(host.name, processes, m, lim)
                local += processes
    check_memory(queries, local, m, lim)
