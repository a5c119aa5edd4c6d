"""Test hosts: real sshd processes, each a "host" with its own key, address and working dir.

As root, each host is a network namespace with a veth pair onto a bridge, its own address and
its own sshd on port 22: roles started there are in that namespace, so `pids()` lists exactly
the processes of one host and `cut()` can make a host vanish. Otherwise (no root, no netns)
each host is an sshd on its own loopback address (127.x.y.k) and a high port. Everything the
lab creates is removed on exit, also when a test fails.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labkit import free_base_port

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"

SSHD_CONFIG = """\
Port {port}
ListenAddress {address}
HostKey {dir}/host_key
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
MaxStartups 100:30:200
MaxSessions 100
LogLevel VERBOSE
Subsystem sftp internal-sftp
"""


def sshd_available() -> bool:
    return Path(SSHD).exists()


def netns_available() -> bool:
    if os.geteuid() != 0 or not shutil.which("ip"):
        return False
    name = f"slprobe{random.randint(0, 99999)}"
    ok = subprocess.run(["ip", "netns", "add", name], check=False, capture_output=True).returncode == 0
    if ok:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
    return ok


def _sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=check)


@dataclass
class LabHost:
    name: str
    address: str
    port: int
    dir: Path
    key: Path  # the private key this host accepts
    netns: str | None = None
    veth: str | None = None
    sshd: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def workdir(self) -> Path:
        return self.dir / "work"


class Lab:
    def __init__(self, hosts: int, base: Path, netns: bool | None = None) -> None:
        self.base = base
        self.known_hosts = base / "known_hosts"  # every lab host's key: what `ssh-keyscan` would give
        self.id = f"{random.randint(0, 0xFFFF):04x}"
        self.netns = netns_available() if netns is None else netns
        self.hosts: list[LabHost] = []
        self.bridge = f"sl{self.id}br" if self.netns else None
        self._n = hosts
        octet2, octet3 = random.randint(100, 250), random.randint(1, 250)
        self.prefix = f"10.{octet2}.{octet3}" if self.netns else f"127.{octet2}.{octet3}"
        # The roles' first port: never the default 50050 (a real run on this machine may hold it).
        self.base_port = free_base_port(60)

    # ------------------------------------------------------------------ life
    def __enter__(self) -> Lab:
        try:
            self._up()
        except BaseException:
            self._down()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._down()

    def _up(self) -> None:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        if self.netns:
            assert self.bridge is not None
            _sh("ip", "link", "add", self.bridge, "type", "bridge")
            _sh("ip", "addr", "add", f"{self.prefix}.1/24", "dev", self.bridge)
            _sh("ip", "link", "set", self.bridge, "up")
        self.base.mkdir(parents=True, exist_ok=True)
        for k in range(1, self._n + 1):
            self.hosts.append(self._host(k))
        lines = []
        for h in self.hosts:
            key = " ".join((h.dir / "host_key.pub").read_text().split()[:2])
            lines.append(f"{h.address if h.port == 22 else f'[{h.address}]:{h.port}'} {key}\n")
        self.known_hosts.write_text("".join(lines))
        for h in self.hosts:
            self._wait_listening(h)

    def _host(self, k: int) -> LabHost:
        d = self.base / f"h{k}"
        (d / "work").mkdir(parents=True, exist_ok=True)
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key"))
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "client_key"))
        shutil.copy(d / "client_key.pub", d / "authorized_keys")
        address = f"{self.prefix}.{10 + k}"
        host = LabHost(name=f"h{k}", address=address, port=22, dir=d, key=d / "client_key")
        if self.netns:
            host.netns, host.veth = f"sl{self.id}h{k}", f"sl{self.id}v{k}"
            _sh("ip", "netns", "add", host.netns)
            _sh("ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
            _sh("ip", "link", "set", host.veth, "master", str(self.bridge), "up")
            _sh("ip", "-n", host.netns, "addr", "add", f"{address}/24", "dev", "eth0")
            _sh("ip", "-n", host.netns, "link", "set", "lo", "up")
            _sh("ip", "-n", host.netns, "link", "set", "eth0", "up")
        else:
            with socket.socket() as s:
                s.bind((address, 0))
                host.port = s.getsockname()[1]
        (d / "sshd_config").write_text(SSHD_CONFIG.format(port=host.port, address=address, dir=d))
        cmd = [SSHD, "-D", "-e", "-f", str(d / "sshd_config")]
        if host.netns:
            cmd = ["ip", "netns", "exec", host.netns, *cmd]
        with (d / "sshd.log").open("wb") as log:
            host.sshd = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return host

    def _wait_listening(self, host: LabHost) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((host.address, host.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd of {host.name} did not start: {(host.dir / 'sshd.log').read_text()[-500:]}")

    def _down(self) -> None:
        for h in self.hosts:
            for role_pid in self.role_pids(h):
                _kill(role_pid)
            if h.sshd is not None:
                _kill_group(h.sshd.pid)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    h.sshd.wait(timeout=5)
            if h.netns:
                for ns_pid in _sh("ip", "netns", "pids", h.netns, check=False).stdout.split():
                    _kill(int(ns_pid))
                _sh("ip", "link", "del", str(h.veth), check=False)
                _sh("ip", "netns", "del", h.netns, check=False)
        if self.bridge:
            _sh("ip", "link", "del", self.bridge, check=False)

    # ------------------------------------------------------------------ for tests
    def host(self, name: str) -> LabHost:
        return next(h for h in self.hosts if h.name == name)

    def role_pids(self, host: LabHost) -> list[int]:
        """Live role and supervisor processes started on `host` (not its sshd)."""
        if host.netns:
            candidates = [int(p) for p in _sh("ip", "netns", "pids", host.netns, check=False).stdout.split()]
        else:
            candidates = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
        found = []
        for pid in candidates:
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state == "Z" or ("runtime.roles" not in cmd and "orchestrator.deploy.supervisor" not in cmd):
                continue
            if host.netns or str(host.workdir) in cmd:
                found.append(pid)
        return found

    def cut(self, host: LabHost, kill: bool = True) -> None:
        """The host vanishes: its link goes down and (`kill`) its processes die, as in a spot
        preemption; without `kill` it is only cut off (a partition): its roles live on."""
        assert host.netns and host.veth, "cutting a host needs network namespaces"
        _sh("ip", "link", "set", host.veth, "down")
        if kill:
            for pid in self.role_pids(host):
                _kill(pid)

    def host_entry(self, h: LabHost, roles: list[str], key: Path | None = None, **extra: Any) -> dict[str, Any]:
        entry = {
            "name": h.name,
            "address": h.address,
            "python": sys.executable,
            "workdir": str(h.workdir),
            "roles": roles,
            "ssh": {
                "port": h.port,
                "key_file": str(key or h.key),
                "known_hosts": str(self.known_hosts),
                "connect_timeout_s": 3.0,
            },
        }
        entry.update(extra)
        return entry

    def write_hostfile(self, conf_dir: Path, name: str, entries: list[dict[str, Any]], workers: int) -> Path:
        """conf_dir/hostfile/<name>.yaml, to be found with hydra.searchpath=[file://conf_dir]."""
        path = conf_dir / "hostfile" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            yaml.safe_dump({"name": name, "workers": workers, "base_port": self.base_port, "hosts": entries})
        )
        return path


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
