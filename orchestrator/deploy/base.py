"""The host interface: run a command, start a detached process, move files.

Role start, liveness, stop and log collection are built on this interface only, so a local run
(`deploy.local.LocalHost`) and an SSH run (`deploy.ssh.SshHost`) go through the same launcher
code; `orchestrator.deploy.connect` picks one for a hostfile entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from runtime.schema import HostConfig


@dataclass(frozen=True)
class Detached:
    """A process to start detached: its command, working directory (created) and log file."""

    argv: list[str]
    cwd: str
    log: str


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class Host(Protocol):
    name: str
    config: HostConfig

    @property
    def python(self) -> str:
        """Interpreter that runs the project's code on this host."""
        ...

    def run(self, command: str, timeout: float | None = None) -> CommandResult: ...

    def start_detached(self, jobs: list[Detached]) -> list[int]:
        """Start each job in a session of its own (creating its directories), outliving this
        connection; returns their process groups, in order, in one round trip."""
        ...

    def signal_groups(self, pgids: list[int], sig: int) -> None: ...

    def live_groups(self, pgids: list[int]) -> set[int]:
        """Those of `pgids` that still have a live (non-zombie) process."""
        ...

    def read_text(self, path: str) -> str | None:
        """The file's text, or None if it does not exist."""
        ...

    def read_many(self, paths: list[str]) -> dict[str, str]:
        """The text of each of `paths` that exists (one round trip on a remote host)."""
        ...

    def alive(self) -> bool:
        """False once the host is lost (its connection died)."""
        ...

    def mkdir(self, path: str) -> None:
        """Create `path` (and its parents); a new last folder is the owner's only (mode 700)."""
        ...

    def renew(self, path: str, text: str) -> None:
        """Write `text` at the start of the file (creating it), so its time is now on this
        host's clock: renews a lease. Never a command per call (a busy host is slow to spawn)."""
        ...

    def put(self, local: Path, remote: str) -> None: ...

    def get(self, remote: str, local: Path) -> None: ...

    def close(self) -> None: ...
