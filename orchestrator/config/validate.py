"""The shared part of the one validation pass before anything starts: keys every system has
(clock, time scale, run mechanics, hostfile, execution). Each system's own keys are checked by
its registry entry (`System.resolve`). Every problem is a `ConfigError` naming the key and what
is allowed."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


_BOUNDS = (
    ("gt", ">", lambda v, b: v > b),
    ("ge", ">=", lambda v, b: v >= b),
    ("lt", "<", lambda v, b: v < b),
    ("le", "<=", lambda v, b: v <= b),
)


def _numbers(value: Any, key: str) -> Iterator[tuple[str, Any]]:
    """(key, number) for a number, or for each number of a (nested) list."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int | float):
        yield key, value
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _numbers(item, f"{key}[{i}]")


def check_numbers(node: Any, prefix: str = "") -> None:
    """One rule for every numeric key of the schema: the value is finite, and inside the range
    its field declares (runtime/schema/); a ConfigError names the first key that is not."""
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            check_numbers(value, f"{key}.")
            continue
        if isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
            for i, item in enumerate(value):
                check_numbers(item, f"{key}[{i}].")
            continue
        for where, number in _numbers(value, key):
            require(math.isfinite(number), where, f"must be a finite number (got {number})")
            for name, sign, ok in _BOUNDS:
                bound = f.metadata.get(name)
                if bound is not None:
                    require(ok(number, bound), where, f"must be {sign} {bound:g} (got {number:g})")


def validate_common(cfg: Config) -> None:
    check_numbers(cfg)
    require(cfg.clock in CLOCKS, "clock", f"unknown clock {cfg.clock!r} (allowed: {', '.join(CLOCKS)})")
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
    _validate_paths(cfg)
    _validate_hostfile(cfg)


def _validate_run(cfg: Config) -> None:
    r = cfg.run  # ranges of single keys: check_numbers; here, what ties keys together
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


# The run's own folders under paths.output_dir (<system>/multiruns/<timestamp>/<job>/roles/worker-N)
# and the files in them need this many bytes of the path besides output_dir itself.
RUN_PATH_BYTES = 160


def check_path_names(path: str, key: str) -> None:
    """Every name in `path` fits the file system (NAME_MAX bytes), and so does the whole path
    with the run's folders under it (PATH_MAX): before Hydra makes any folder of it."""
    name_max, path_max = 255, 4096
    with contextlib.suppress(OSError, ValueError):
        name_max = os.pathconf("/", "PC_NAME_MAX")
        path_max = os.pathconf("/", "PC_PATH_MAX")
    for part in Path(path).parts:
        size = len(os.fsencode(part))
        require(
            size <= name_max,
            key,
            f"the name {part[:24]}... is {size} bytes, longer than the {name_max} a file name may have here",
        )
    size = len(os.fsencode(str(Path(path).absolute()))) + RUN_PATH_BYTES
    require(size <= path_max, key, f"{path[:40]}... is too long: its run files' paths would pass {path_max} bytes")


def _validate_paths(cfg: Config) -> None:
    """Where the run's files go must be a folder this process can write."""
    check_path_names(str(cfg.paths.get("output_dir", "outputs")), "paths.output_dir")
    out = Path(str(cfg.paths.get("output_dir", "outputs")))
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    require(probe.is_dir(), "paths.output_dir", f"{probe} is not a folder")
    try:  # a real write: permissions, a read-only mount, a full disk all show here
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        raise ConfigError(f"paths.output_dir: {probe} is not writable ({err.strerror}; runs go in {out})") from None


def _validate_hostfile(cfg: Config) -> None:
    h = cfg.hostfile
    require(bool(h.hosts), "hostfile.hosts", "needs at least one host")
    require(h.ports in ("auto", "fixed"), "hostfile.ports", f"unknown value {h.ports!r} (allowed: auto, fixed)")
    names = [host.name for host in h.hosts]
    require(len(set(names)) == len(names), "hostfile.hosts", f"host names must be unique (got {names})")
    for i, host in enumerate(h.hosts):
        for role in host.roles:
            require(role in ROLES, f"hostfile.hosts[{i}].roles", f"unknown role {role!r} (allowed: {', '.join(ROLES)})")
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
        elif host.python:
            python = shutil.which(host.python)
            require(python is not None, f"hostfile.hosts[{i}].python", f"no such interpreter here: {host.python}")
