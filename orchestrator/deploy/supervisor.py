"""The supervisor that owns one role process on its host (standard library only).

    python -m orchestrator.deploy.supervisor --exit-file F --pid-file P \
        [--lease-file L --lease-s S --stop-s T] -- CMD ...

It is started detached in a session of its own, stays the role's parent, forwards TERM, INT
and HUP to it, and when the role ends writes {"returncode", "signal", "ended_at", "note"} to the
exit file (atomically), so the orchestrator learns how the role ended without racing the
host's zombie reaping. Stopping the whole process group stops both.

The lease: the orchestrator rewrites the lease file every lease_s / 4 while it runs (locally,
or over one SFTP channel per SSH host that stays open: no command per renewal), so its time is
this host's clock. The file holds the limit the orchestrator announces: `--lease-s` at least,
more while its renewals are measured slow (a busy host), at most LIMIT_CAP times `--lease-s`.
When the file is older than that limit (the orchestrator was killed, its connection lost, its
laptop asleep), the supervisor stops the role (TERM, then KILL of the whole group after
`--stop-s`): no role outlives its orchestrator by more than LIMIT_CAP x lease + stop seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time

POLL_S = 0.5
LIMIT_CAP = 3.0  # the announced limit is at most this many times --lease-s
LEASE_WIDTH = 16  # bytes of the lease file: the limit, right-aligned, so a rewrite needs no truncation


def _write_atomic(path: str, payload: dict[str, object]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh)
    os.replace(tmp, path)  # noqa: PTH105 (stdlib only, str paths)


def lease_age(path: str) -> float:
    """Seconds since the lease was last renewed (infinite when the file is gone)."""
    try:
        return time.time() - os.stat(path).st_mtime  # noqa: PTH116 (stdlib only, str paths)
    except FileNotFoundError:
        return float("inf")


def lease_limit(floor_s: float, every_s: float, recent_s: list[float]) -> float:
    """The limit to announce: a renewal is due every `every_s`, and the slowest of the recent
    renewals (`recent_s`, seconds each took) may take that long again, three times over before
    the roles give up; never below the floor (run.lease_s), never above LIMIT_CAP times it."""
    slowest = max(recent_s, default=0.0)
    return min(LIMIT_CAP * floor_s, max(floor_s, every_s + 3 * slowest))


def lease_text(limit_s: float) -> str:
    return f"{limit_s:.3f}".rjust(LEASE_WIDTH - 1) + "\n"


def announced_limit(path: str, floor_s: float) -> float:
    """The limit the lease file holds, within [floor_s, LIMIT_CAP x floor_s] (floor_s when the
    file cannot be read or holds no number: an older orchestrator's empty file)."""
    try:
        with open(path, encoding="ascii") as fh:
            return bounded_limit(fh.read(), floor_s)
    except OSError:
        return floor_s


def bounded_limit(text: str, floor_s: float) -> float:
    """The limit a lease's text announces, within [floor_s, LIMIT_CAP x floor_s]; floor_s for
    text that holds no finite number."""
    try:
        value = float(text.strip())
    except ValueError:
        return floor_s
    return min(LIMIT_CAP * floor_s, max(floor_s, value)) if math.isfinite(value) else floor_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.deploy.supervisor")
    parser.add_argument("--exit-file", required=True)
    parser.add_argument("--pid-file", required=True)
    parser.add_argument("--lease-file", help="stop the role when this file is older than --lease-s")
    parser.add_argument("--lease-s", type=float, default=10.0)
    parser.add_argument("--stop-s", type=float, default=3.0, help="TERM to KILL when the lease expires")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to supervise")
    child = subprocess.Popen(command)
    _write_atomic(args.pid_file, {"supervisor": os.getpid(), "child": child.pid, "pgid": os.getpgid(0)})

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    note = None
    while True:
        try:
            rc = child.wait(timeout=POLL_S)
            break
        except subprocess.TimeoutExpired:
            pass
        if args.lease_file and lease_age(args.lease_file) > args.lease_s:
            limit = announced_limit(args.lease_file, args.lease_s)
            age = lease_age(args.lease_file)
            if age <= limit:
                continue
            note = f"lease expired ({age:.1f} s without the orchestrator; limit {limit:g} s)"
            print(f"supervisor: {note}: stopping the role", file=sys.stderr, flush=True)
            forward(signal.SIGTERM, None)
            try:
                rc = child.wait(timeout=args.stop_s)
            except subprocess.TimeoutExpired:
                child.kill()
                rc = child.wait()
            break
    _write_atomic(
        args.exit_file,
        {"returncode": rc, "signal": -rc if rc < 0 else None, "ended_at": time.time(), "note": note},
    )
    if note is not None:  # nothing the role started may outlive it either
        os.killpg(os.getpgid(0), signal.SIGKILL)
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main())
