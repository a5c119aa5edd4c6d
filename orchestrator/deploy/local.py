"""This machine as a host: roles are local processes, children of the orchestrator (the
embedded default, no SSH)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from orchestrator.deploy.base import CommandResult, Detached
from runtime.schema import HostConfig


class LocalHost:
    """This machine. Roles are children of the orchestrator, each in a session of its own."""

    def __init__(self, config: HostConfig) -> None:
        self.name = config.name
        self.config = config
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def python(self) -> str:
        return self.config.python or sys.executable

    def run(self, command: str, timeout: float | None = None) -> CommandResult:
        proc = subprocess.run(["/bin/sh", "-c", command], check=False, capture_output=True, text=True, timeout=timeout)
        return CommandResult(proc.returncode, proc.stdout, proc.stderr)

    def start_detached(self, jobs: list[Detached]) -> list[int]:
        env = dict(os.environ)
        # The roles import this project's packages, wherever this interpreter found them.
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        pgids = []
        for job in jobs:
            Path(job.cwd).mkdir(parents=True, exist_ok=True)
            Path(job.log).parent.mkdir(parents=True, exist_ok=True)
            with open(job.log, "ab") as out:
                proc = subprocess.Popen(
                    job.argv,
                    cwd=job.cwd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    env=env,
                )
            self._children[proc.pid] = proc
            pgids.append(proc.pid)
        return pgids

    def signal_groups(self, pgids: list[int], sig: int) -> None:
        for pgid in pgids:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)

    def live_groups(self, pgids: list[int]) -> set[int]:
        return {p for p in pgids if self.group_alive(p)}

    def group_alive(self, pgid: int) -> bool:
        child = self._children.get(pgid)
        if child is not None and child.poll() is None:
            return True  # the supervisor (the group's leader, our child) is running
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        # Only zombies left? They are dead for our purpose.
        return _group_has_live_process(pgid)

    def read_text(self, path: str) -> str | None:
        try:
            return Path(path).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None

    def read_many(self, paths: list[str]) -> dict[str, str]:
        found = {}
        for path in paths:
            text = self.read_text(path)
            if text is not None:
                found[path] = text
        return found

    def alive(self) -> bool:
        return True

    def mkdir(self, path: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).mkdir(mode=0o700, exist_ok=True)

    def renew(self, path: str, text: str) -> None:
        with open(path, "r+" if Path(path).exists() else "w", encoding="ascii") as fh:  # a rewrite in place
            fh.write(text)

    def put(self, local: Path, remote: str) -> None:
        if Path(remote).resolve() != local.resolve():
            shutil.copyfile(local, remote)

    def get(self, remote: str, local: Path) -> None:
        if Path(remote).resolve() != local.resolve():
            local.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(remote, local)

    def close(self) -> None:
        for child in self._children.values():
            child.poll()


def _group_has_live_process(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name (which may contain spaces) start after the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False
