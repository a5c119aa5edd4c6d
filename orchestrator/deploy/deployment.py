"""One run's deployment: its hosts, its role processes, and the promise to clean up.

dep = Deployment(config, addresses, run_dir, run_id)
try:
    dep.open(files)        # connect every host in parallel, copy the spec, check the ports
    procs = dep.deploy()   # start the roles stage by stage, each stage ready before the next
    ...                    # the run; dep.watch() says which roles ended, which hosts were lost
finally:
    dep.close()            # stop every role on every host, bring files back, close connections
"""

from __future__ import annotations

import json
import shlex
import socket
import time
from pathlib import Path
from typing import Any

from orchestrator.deploy.hosts import Host, LocalHost, connect
from orchestrator.deploy.launcher import Launcher, RoleProcess, parallel
from orchestrator.deploy.placement import START_ORDER
from runtime.exceptions import DeployError
from runtime.logs import init_logger
from runtime.schema import Config, HostConfig
from runtime.spec import RoleAddress

log = init_logger("orchestrator")

DEFAULT_REMOTE_WORKDIR = "/tmp/servelab"
ESSENTIAL = ("controller", "load_balancer", "sink", "client")

_PORT_CHECK = (
    "import json,socket,sys\n"
    "busy=[]\n"
    "for a in sys.argv[1:]:\n"
    "    h,p=a.rsplit(':',1); s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
    "    try: s.bind((h,int(p)))\n"
    "    except OSError as e: busy.append([a,e.strerror])\n"
    "    finally: s.close()\n"
    "print(json.dumps(busy))\n"
)


def host_run_dir(host: HostConfig, run_dir: Path, run_id: str) -> str:
    """Where a host keeps this run's files: the local run directory itself for a local host."""
    if host.ssh is None:
        return str(run_dir)
    return f"{(host.workdir or DEFAULT_REMOTE_WORKDIR).rstrip('/')}/{run_id}"


def busy_ports(host: Host, binds: list[str]) -> list[tuple[str, str]]:
    """(bind address, reason) for each of `binds` that something listens on already."""
    if isinstance(host, LocalHost):
        busy = []
        for bind in binds:
            addr, port = bind.rsplit(":", 1)
            with socket.socket() as s:
                # As gRPC does: only a listener makes the port busy, not connections in TIME_WAIT.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((addr, int(port)))
                except OSError as err:
                    busy.append((bind, str(err.strerror)))
        return busy
    result = host.run(f"{shlex.quote(host.python)} -c {shlex.quote(_PORT_CHECK)} {shlex.join(binds)}", timeout=30)
    if not result.ok:
        raise DeployError(f"host {host.name}: cannot run {host.python} ({result.stderr.strip()[-200:]})")
    return [(a, why) for a, why in json.loads(result.stdout)]


class Deployment:
    def __init__(self, config: Config, addresses: list[RoleAddress], run_dir: Path, run_id: str) -> None:
        self.config = config
        self.addresses = addresses
        self.run_dir = run_dir
        self.run_id = run_id
        used = {a.host for a in addresses}
        self.host_configs = [h for h in config.hostfile.hosts if h.name in used]
        self.hosts: dict[str, Host] = {}
        self.launcher: Launcher | None = None
        self.statuses: dict[str, dict[str, Any]] = {}
        self.lost: list[str] = []

    # ------------------------------------------------------------------ open
    def open(self, files: list[Path]) -> None:
        t0 = time.monotonic()
        results = parallel(_connect_or_error, self.host_configs)
        self.hosts = {h.name: h for h in results if not isinstance(h, DeployError)}
        errors = [str(r) for r in results if isinstance(r, DeployError)]
        if errors:
            raise DeployError("; ".join(errors))
        dirs = {h.name: host_run_dir(h, self.run_dir, self.run_id) for h in self.host_configs}
        self.launcher = Launcher(self.hosts, dirs, self.config.run)
        remote = [n for n, h in self.hosts.items() if not isinstance(h, LocalHost)]
        if remote:
            Launcher({n: self.hosts[n] for n in remote}, {n: dirs[n] for n in remote}, self.config.run).stage(files)
        self.check_ports()
        log.info("Connected %d host(s) in %.2f s", len(self.hosts), time.monotonic() - t0)

    def check_ports(self) -> None:
        def one(name: str) -> list[tuple[str, str, str]]:
            mine = [a for a in self.addresses if a.host == name]
            by_bind = {a.bind: a.name for a in mine}
            return [(name, bind, why) for bind, why in busy_ports(self.hosts[name], list(by_bind))]

        busy = [b for part in parallel(one, list(self.hosts)) for b in part]
        if busy:
            host, bind, why = busy[0]
            role = next(a.name for a in self.addresses if a.host == host and a.bind == bind)
            addr, port = bind.rsplit(":", 1)
            raise DeployError(
                f"port {port} on {addr} (for the {role} on {host}) is not free ({why}); choose another hostfile.base_port"
            )

    # ------------------------------------------------------------------ run
    def deploy(self) -> dict[str, RoleProcess]:
        assert self.launcher is not None
        t0 = time.monotonic()
        procs: dict[str, RoleProcess] = {}
        for role in START_ORDER:
            stage = [a for a in self.addresses if a.role == role]
            t = time.monotonic()
            for p in self.launcher.start_all(stage):
                procs[p.name] = p
            log.debug("Stage ready <role=%s n=%d in=%.2fs>", role, len(stage), time.monotonic() - t)
        log.info("Deployed %d roles on %d host(s) in %.2f s", len(procs), len(self.hosts), time.monotonic() - t0)
        return procs

    def watch(self, procs: list[RoleProcess]) -> list[str]:
        """Raise if an essential role ended or its host was lost; returns the workers that ended
        (or whose host was lost) since the last call, which the run goes on without."""
        assert self.launcher is not None
        lost_workers: list[str] = []
        alive = [p for p in procs if p.host.name not in self.launcher.lost]
        ended = self.launcher.ended_many(alive)  # may find a host lost, too
        for name in self.launcher.lost_hosts():
            on_it = [p for p in procs if p.host.name == name]
            essential = [p.name for p in on_it if p.address.role in ESSENTIAL]
            if essential:
                raise DeployError(
                    f"host {name} lost during the run (no answer for {_timeout_s(self.hosts[name])}); "
                    f"it ran {', '.join(essential)}"
                )
            self.lost.append(name)
            log.warning("Host %s lost during the run; going on without its %d workers", name, len(on_it))
            lost_workers += [p.name for p in on_it]
        for name, status in ended.items():
            proc = next(p for p in procs if p.name == name)
            if proc.address.role in ESSENTIAL:
                raise DeployError(f"during the run: {self.launcher.describe_exit(proc, status)}")
            if status.get("returncode") == 0:  # it was told to go (a SpotServe preemption)
                log.debug("Worker ended during the run: %s", name)
            else:
                log.warning("Worker lost during the run: %s", self.launcher.describe_exit(proc, status))
            lost_workers.append(name)
        return lost_workers

    # ------------------------------------------------------------------ close
    def close(self) -> None:
        """Stop everything that was started, bring the files back, close the connections."""
        if self.launcher is not None:
            self.statuses = self.launcher.stop_all()
            self.launcher.collect(self.run_dir)
        for host in self.hosts.values():
            try:
                host.close()
            except Exception as err:  # a lost host's connection may not close cleanly
                log.debug("Closing %s: %s", host.name, err)


def _connect_or_error(config: HostConfig) -> Host | DeployError:
    try:
        return connect(config)
    except DeployError as err:
        return err


def _timeout_s(host: Host) -> str:
    ssh = host.config.ssh
    return f"{ssh.user_timeout_ms / 1000:g} s" if ssh is not None else "a while"
