"""A host reached over SSH with Fabric: the same interface as `LocalHost`.

Key-based authentication only (no password is ever sent); host keys are checked against
`ssh.known_hosts` (the user's file by default), an unknown host is refused unless
`ssh.accept_new` (then its key is added, as OpenSSH's accept-new does), and a changed key is
always refused. Every value that reaches the remote shell is quoted with `shlex.quote`. The connection keeps itself alive (SSH keepalives) and sets
TCP_USER_TIMEOUT, so a host that disappears is noticed within a few seconds (`alive()` turns
False) instead of the kernel's fifteen minutes.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import shlex
import socket
from pathlib import Path
from typing import Any

from orchestrator.deploy.base import CommandResult, Detached
from runtime.exceptions import DeployError, HostLostError
from runtime.logs import init_logger
from runtime.schema import HostConfig, SshConfig

log = init_logger(__name__)

q = shlex.quote


def _describe(err: BaseException, ssh: SshConfig | None = None) -> str:
    import paramiko

    known = ssh.known_hosts if ssh is not None else "known_hosts"
    if isinstance(err, paramiko.BadHostKeyException):
        return (
            f"the host's key CHANGED: {known} holds another key for it (a reinstalled host, or someone in between); "
            "check it, then remove the old key with `ssh-keygen -R`"
        )
    if isinstance(err, paramiko.SSHException) and "not found in known_hosts" in str(err):
        return (
            f"unknown host key: it is not in {known}; add it (ssh-keyscan, or one `ssh` to the host) "
            "or set ssh.accept_new=true"
        )
    kinds: list[tuple[type[BaseException] | tuple[type[BaseException], ...], str]] = [
        (paramiko.AuthenticationException, "authentication failed (the host refused the key)"),
        (paramiko.ssh_exception.NoValidConnectionsError, "unreachable (connection refused)"),
        ((TimeoutError, socket.timeout), "unreachable (connection timed out)"),
    ]
    for kind, text in kinds:
        if isinstance(err, kind):
            return text
    if isinstance(err, OSError):
        return f"unreachable ({err.strerror or err})"
    return f"SSH error: {err}"


class SshHost:
    def __init__(self, config: HostConfig) -> None:
        assert config.ssh is not None
        if not config.python:
            raise DeployError(
                f"hostfile host {config.name}: an SSH host needs `python` (the interpreter of the environment holding this project)"
            )
        self.name = config.name
        self.config = config
        self.ssh: SshConfig = config.ssh
        self._conn = self._connect()
        self._lease_sftp: Any = None  # paramiko's SFTPClient, opened on the first renewal
        self._lease_files: dict[str, Any] = {}

    @property
    def python(self) -> str:
        assert self.config.python is not None
        return self.config.python

    @property
    def user(self) -> str:
        return self.ssh.user or getpass.getuser()

    @property
    def target(self) -> str:
        return f"{self.user}@{self.config.address}:{self.ssh.port}"

    def _connect(self):  # type: ignore[no-untyped-def]
        import paramiko
        from fabric import Config, Connection

        fabric_config = Config(overrides={"load_ssh_configs": False, "run": {"hide": True, "warn": True}})
        kwargs: dict[str, object] = {
            "banner_timeout": self.ssh.connect_timeout_s,
            "auth_timeout": self.ssh.connect_timeout_s,
        }
        if self.ssh.key_file:
            kwargs.update(
                key_filename=str(Path(self.ssh.key_file).expanduser()), look_for_keys=False, allow_agent=False
            )
        known = Path(self.ssh.known_hosts).expanduser()
        if not known.exists():
            if not self.ssh.accept_new:
                raise DeployError(
                    f"host {self.name} ({self.target}): {known} does not exist, so no host key can be checked; "
                    "create it (ssh-keyscan, or one `ssh` to the host) or set ssh.accept_new=true"
                )
            known.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            known.touch(mode=0o600)
        conn = Connection(
            self.config.address,
            user=self.user,
            port=self.ssh.port,
            config=fabric_config,
            connect_timeout=self.ssh.connect_timeout_s,
            connect_kwargs=kwargs,
        )
        # Fabric accepts any key by default; here the file decides (and accept_new writes to it).
        conn.client.load_host_keys(str(known))
        conn.client.set_missing_host_key_policy(
            paramiko.AutoAddPolicy() if self.ssh.accept_new else paramiko.RejectPolicy()
        )
        try:
            conn.open()
        except Exception as err:
            raise DeployError(f"host {self.name} ({self.target}): {_describe(err, self.ssh)}") from None
        transport = conn.transport
        transport.set_keepalive(max(1, round(self.ssh.keepalive_s)))
        transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, self.ssh.user_timeout_ms)
        return conn

    def alive(self) -> bool:
        transport = self._conn.transport
        return bool(transport is not None and transport.is_active())

    # ------------------------------------------------------------------ the Host interface
    def run(self, command: str, timeout: float | None = None) -> CommandResult:
        from invoke.exceptions import CommandTimedOut

        if not self.alive():
            raise HostLostError(f"host {self.name} ({self.target}) lost: the SSH connection is down")
        try:
            result = self._conn.run(command, hide=True, warn=True, timeout=timeout, in_stream=False)
        except CommandTimedOut:
            raise DeployError(f"host {self.name}: command timed out after {timeout} s: {command[:80]}") from None
        except Exception as err:
            if not self.alive():
                raise HostLostError(f"host {self.name} ({self.target}) lost: the SSH connection is down") from None
            raise DeployError(f"host {self.name} ({self.target}): {_describe(err)}") from None
        return CommandResult(result.exited, result.stdout, result.stderr)

    def start_detached(self, jobs: list[Detached]) -> list[int]:
        # `;` not `&&`: a backgrounded `a && b &` keeps the channel open until the role exits.
        lines = [
            f"mkdir -p {q(j.cwd)} {q(str(Path(j.log).parent))} ; cd {q(j.cwd)} ; "
            f"nohup setsid {shlex.join(j.argv)} > {q(j.log)} 2>&1 < /dev/null & echo $!"
            for j in jobs
        ]
        result = self.run("\n".join(lines), timeout=60)
        try:
            pgids = [int(x) for x in result.stdout.split()]
        except ValueError:
            pgids = []
        if len(pgids) != len(jobs):
            raise DeployError(f"host {self.name}: could not start the roles ({result.stderr.strip()[:200]})")
        return pgids

    def signal_groups(self, pgids: list[int], sig: int) -> None:
        if pgids:
            self.run(f"kill -{int(sig)} -- {' '.join(f'-{int(p)}' for p in pgids)} 2>/dev/null", timeout=10)

    def live_groups(self, pgids: list[int]) -> set[int]:
        # Zombies do not count: on some hosts orphans are reaped late.
        result = self.run("ps -eo pgid=,stat=", timeout=10)
        live = {
            int(g)
            for g, stat in (line.split()[:2] for line in result.stdout.splitlines() if line.strip())
            if not stat.startswith("Z")
        }
        return live & set(pgids)

    def read_text(self, path: str) -> str | None:
        result = self.run(f"cat {q(path)} 2>/dev/null", timeout=10)
        return result.stdout if result.ok else None

    def read_many(self, paths: list[str]) -> dict[str, str]:
        """The text of each of `paths` that exists, in one round trip."""
        if not paths:
            return {}
        script = "import json,os,sys; print(json.dumps({p: open(p).read() for p in sys.argv[1:] if os.path.exists(p)}))"
        result = self.run(f"{q(self.python)} -c {q(script)} {' '.join(q(p) for p in paths)}", timeout=15)
        if not result.ok:
            raise DeployError(f"host {self.name}: could not read role files ({result.stderr.strip()[:200]})")
        found: dict[str, str] = json.loads(result.stdout)
        return found

    def mkdir(self, path: str) -> None:
        parent = str(Path(path).parent)
        result = self.run(f"mkdir -p {q(parent)} && mkdir -p -m 700 {q(path)}", timeout=10)
        if not result.ok:
            raise DeployError(f"host {self.name}: cannot create {path} ({result.stderr.strip()[:200]})")

    def renew(self, path: str, text: str) -> None:
        """One SFTP write on a channel of its own that stays open (the sftp-server on the host
        writes, so the file's time is the host's clock); no process is started per renewal."""
        try:
            if self._lease_sftp is None:
                self._lease_sftp = self._conn.client.open_sftp()
            handle = self._lease_files.get(path)
            if handle is None:
                handle = self._lease_files[path] = self._lease_sftp.open(path, "w")
            handle.seek(0)
            handle.write(text.encode("ascii"))
            handle.flush()
        except Exception as err:
            self._drop_leases()
            raise DeployError(f"host {self.name}: cannot renew the lease {path} ({err})") from None

    def _drop_leases(self) -> None:
        for handle in self._lease_files.values():
            with contextlib.suppress(Exception):
                handle.close()
        self._lease_files.clear()
        if self._lease_sftp is not None:
            with contextlib.suppress(Exception):
                self._lease_sftp.close()
        self._lease_sftp = None

    def put(self, local: Path, remote: str) -> None:
        try:
            self._conn.put(str(local), remote)
        except Exception as err:
            raise DeployError(f"host {self.name}: copying {local.name} to {remote} failed ({err})") from None

    def get(self, remote: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn.get(remote, str(local))
        except Exception as err:
            raise DeployError(f"host {self.name}: fetching {remote} failed ({err})") from None

    def close(self) -> None:
        self._drop_leases()
        self._conn.close()
