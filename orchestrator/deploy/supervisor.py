"""The supervisor that owns one role process on its host (standard library only).

    python -m orchestrator.deploy.supervisor --exit-file F --pid-file P -- CMD ...

It is started detached in a session of its own, stays the role's parent, forwards TERM, INT
and HUP to it, and when the role ends writes {"returncode", "signal", "ended_at"} to the exit
file (atomically), so the orchestrator learns how the role ended without racing the host's
zombie reaping. Stopping the whole process group stops both.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time


def _write_atomic(path: str, payload: dict[str, object]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh)
    os.replace(tmp, path)  # noqa: PTH105 (stdlib only, str paths)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.deploy.supervisor")
    parser.add_argument("--exit-file", required=True)
    parser.add_argument("--pid-file", required=True)
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
    rc = child.wait()
    _write_atomic(
        args.exit_file,
        {"returncode": rc, "signal": -rc if rc < 0 else None, "ended_at": time.time()},
    )
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main())
