"""One run's deployment: its hosts, its role processes, and the promise to clean up.

dep = Deployment(config, addresses, run_dir, identity)
try:
    dep.open(files)        # connect every host in parallel, make the run's folders, start the
                           # leases, copy the spec and identity, check the ports
    procs = dep.deploy()   # start the roles stage by stage, each stage ready before the next
    ...                    # the run; dep.watch() says which roles ended, which hosts were lost
finally:
    dep.close()            # stop every role on every host, bring files back, close connections

Nothing outlives a run: `close` runs with Ctrl-C and SIGTERM held off (`shielded`), and every
role's supervisor stops it by itself when the lease this process renews on each host goes
stale (SIGKILL of the orchestrator, a lost connection, a sleeping laptop). processes.json in
the run directory records every role's host and process group for `python -m orchestrator.cleanup`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shlex
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc

from orchestrator.config.limits import Machine, check_host, machine
from orchestrator.deploy import connect
from orchestrator.deploy.base import Host
from orchestrator.deploy.launcher import LEASE_FILE, Launcher, RoleProcess, parallel
from orchestrator.deploy.local import LocalHost
from orchestrator.deploy.placement import START_ORDER
from orchestrator.deploy.supervisor import lease_limit, lease_text
from runtime.exceptions import DeployError
from runtime.identity import IDENTITY_FILE, RunIdentity
from runtime.logs import init_logger
from runtime.protos import servelab_pb2 as pb
from runtime.schema import Config, HostConfig
from runtime.spec import RoleAddress

log = init_logger("orchestrator")

DEFAULT_REMOTE_WORKDIR = "/tmp/servelab"
ESSENTIAL = ("controller", "load_balancer", "sink", "client")
PROBE_TIMEOUT_S = 1.0  # one health check; silence is counted over several
PROCESSES_FILE = "processes.json"

# Run on an SSH host with its own interpreter: which of argv's binds are taken, and what the host
# offers (cores this process may use, MemAvailable) for the limits' check of its role processes.
_HOST_CHECK = (
    "import json,os,socket,sys\n"
    "busy=[]\n"
    "for a in sys.argv[1:]:\n"
    "    h,p=a.rsplit(':',1); s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
    "    try: s.bind((h,int(p)))\n"
    "    except OSError as e: busy.append([a,e.strerror])\n"
    "    finally: s.close()\n"
    "mem=None\n"
    "try: mem=int(next(l for l in open('/proc/meminfo') if l.startswith('MemAvailable:')).split()[1])*1024\n"
    "except Exception: pass\n"
    "cores=len(os.sched_getaffinity(0)) if hasattr(os,'sched_getaffinity') else os.cpu_count()\n"
    "print(json.dumps({'busy':busy,'cores':cores,'mem':mem}))\n"
)


def host_run_dir(host: HostConfig, run_dir: Path, run_id: str) -> str:
    """Where a host keeps this run's files: the local run directory itself for a local host."""
    if host.ssh is None:
        return str(run_dir)
    return f"{(host.workdir or DEFAULT_REMOTE_WORKDIR).rstrip('/')}/{run_id}"


def busy_ports(host: Host, binds: list[str]) -> list[tuple[str, str]]:
    """(bind address, reason) for each of `binds` that something listens on already."""
    return probe_host(host, binds)[0]


def probe_host(host: Host, binds: list[str]) -> tuple[list[tuple[str, str]], Machine]:
    """The binds of `binds` that something listens on already (bind address, reason), and what
    the host offers; one command on an SSH host."""
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
        return busy, machine()
    result = host.run(f"{shlex.quote(host.python)} -c {shlex.quote(_HOST_CHECK)} {shlex.join(binds)}", timeout=30)
    if not result.ok:
        raise DeployError(f"host {host.name}: cannot run {host.python} ({result.stderr.strip()[-200:]})")
    found = json.loads(result.stdout)
    return [(a, why) for a, why in found["busy"]], Machine(int(found["cores"] or 1), found["mem"])


class Deployment:
    def __init__(self, config: Config, addresses: list[RoleAddress], run_dir: Path, identity: RunIdentity) -> None:
        self.config = config
        self.addresses = addresses
        self.run_dir = run_dir
        self.identity = identity
        self.run_id = identity.run_id
        used = {a.host for a in addresses}
        self.host_configs = [h for h in config.hostfile.hosts if h.name in used]
        self.hosts: dict[str, Host] = {}
        self.dirs: dict[str, str] = {}
        self.launcher: Launcher | None = None
        self.leases: Leases | None = None
        self.statuses: dict[str, dict[str, Any]] = {}
        self.lost: list[str] = []
        self.left_running: list[str] = []  # roles that a stop could not end ("role on host")
        self.signals_during_close = 0
        self.last_answer: dict[str, float] = {}  # essential role -> when it last answered a health check
        self.prober = ThreadPoolExecutor(max_workers=len(ESSENTIAL), thread_name_prefix="probe")

    # ------------------------------------------------------------------ open
    def open(self, files: list[Path]) -> None:
        t0 = time.monotonic()
        results = parallel(_connect_or_error, self.host_configs)
        self.hosts = {h.name: h for h in results if not isinstance(h, DeployError)}
        errors = [str(r) for r in results if isinstance(r, DeployError)]
        if errors:
            raise DeployError("; ".join(errors))
        self.dirs = {h.name: host_run_dir(h, self.run_dir, self.run_id) for h in self.host_configs}
        parallel(lambda n: self.hosts[n].mkdir(self.dirs[n]), list(self.hosts))
        self.leases = Leases(
            self.hosts, {n: f"{d}/{LEASE_FILE}" for n, d in self.dirs.items()}, self.config.run.lease_s
        )
        self.launcher = Launcher(self.hosts, self.dirs, self.config.run, self.identity)
        self.launcher.stage(files, [n for n, h in self.hosts.items() if not isinstance(h, LocalHost)])
        self.check_ports()
        log.info("Connected %d host(s) in %.2f s", len(self.hosts), time.monotonic() - t0)

    def check_ports(self) -> None:
        """Every role's port is free, and every SSH host can hold its role processes (a local
        host's were checked with the config: orchestrator/config/limits.py)."""

        def one(name: str) -> list[tuple[str, str, str]]:
            mine = [a for a in self.addresses if a.host == name]
            by_bind = {a.bind: a.name for a in mine}
            busy, offers = probe_host(self.hosts[name], list(by_bind))
            if not isinstance(self.hosts[name], LocalHost):
                check_host(name, len({a.process_name for a in mine}), offers, self.config.limits)
            return [(name, bind, why) for bind, why in busy]

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
            try:
                for p in self.launcher.start_all(stage):
                    procs[p.name] = p
            finally:
                self.record()
            log.debug("Stage ready <role=%s n=%d in=%.2fs>", role, len(stage), time.monotonic() - t)
        log.info("Deployed %d roles on %d host(s) in %.2f s", len(procs), len(self.hosts), time.monotonic() - t0)
        return procs

    def probe(self, procs: list[RoleProcess], now: float) -> None:
        """Raise if an essential role has left its health check unanswered for `run.silence_s`
        (a process that is alive but hung, stopped, or starved): the run stops rather than
        wait for queries that will never come back. `now`: time.monotonic()."""
        essential = [p for p in procs if p.address.role in ESSENTIAL and p.host.name not in self.lost]
        for p in essential:
            self.last_answer.setdefault(p.name, now)

        def ask(p: RoleProcess) -> tuple[str, bool]:
            try:
                p.control().Health(pb.Empty(), timeout=PROBE_TIMEOUT_S)
                return p.name, True
            except grpc.RpcError:
                return p.name, False

        for name, answered in self.prober.map(ask, essential):
            if answered:
                self.last_answer[name] = now
        for p in essential:
            silent = now - self.last_answer[p.name]
            if silent >= self.config.run.silence_s:
                why = (
                    f"{p.name} on {p.host.name} stopped answering for {silent:.1f} s (hung, stopped or out of "
                    f"resources; run.silence_s={self.config.run.silence_s:g})"
                )
                log.error("Stopping the run: %s", why)
                raise DeployError(f"{why}: the run stops")

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
                how = self.launcher.describe_exit(proc, status)
                log.error("Stopping the run: %s", how.split("; last log lines")[0])
                raise DeployError(f"during the run: {how}")
            if status.get("returncode") == 0:  # it was told to go (a SpotServe preemption)
                log.debug("Worker ended during the run: %s", name)
            else:
                log.warning("Worker lost during the run: %s", self.launcher.describe_exit(proc, status))
            lost_workers.append(name)
        return lost_workers

    def record(self) -> None:
        """processes.json: every started role's host and process group, and how to reach the
        hosts (what `python -m orchestrator.cleanup` needs when this process is gone)."""
        assert self.launcher is not None
        payload = {
            "run_id": self.run_id,
            "hosts": {
                n: {"config": dataclasses.asdict(self.hosts[n].config), "run_dir": self.dirs[n]} for n in self.hosts
            },
            "roles": [
                {"name": p.name, "host": p.host.name, "pgid": p.pgid, "pid_file": f"{p.workdir}/pid.json"}
                for p in self.launcher.started
            ],
        }
        tmp = self.run_dir / f"{PROCESSES_FILE}.tmp"
        tmp.write_text(json.dumps(payload, indent=1), encoding="utf-8")
        tmp.replace(self.run_dir / PROCESSES_FILE)

    # ------------------------------------------------------------------ close
    def close(self) -> None:
        """Stop everything that was started, bring the files back, close the connections; with
        Ctrl-C and SIGTERM held off until done (`signals_during_close` counts them)."""
        with shielded() as held:
            self.prober.shutdown(wait=False, cancel_futures=True)
            if self.launcher is not None:
                self.statuses = self.launcher.stop_all()
                self.left_running = [f"{p.name} on {p.host.name}" for p in self.launcher.left_running]
                self.launcher.collect(self.run_dir)
            if self.leases is not None:
                self.leases.stop()  # and removes them: a role that survived anyway stops by itself
            with contextlib.suppress(FileNotFoundError):
                (self.run_dir / IDENTITY_FILE).unlink()
            for host in self.hosts.values():
                try:
                    host.close()
                except Exception as err:  # a lost host's connection may not close cleanly
                    log.debug("Closing %s: %s", host.name, err)
        self.signals_during_close = held[0]


class Leases:
    """Renews a lease file on each host every lease_s / 4 (one thread per host: a slow host
    does not hold up the others), over a channel that stays open (`Host.renew`). Each renewal's
    latency is measured; the limit written into the lease follows the slowest recent one
    (`supervisor.lease_limit`, run.lease_s its floor), so a busy host does not stop the roles
    of a live run, while a dead orchestrator still ends them within the cap."""

    RECENT = 8  # renewals whose latency sets the next limit

    def __init__(self, hosts: dict[str, Host], paths: dict[str, str], lease_s: float) -> None:
        self.hosts, self.paths = hosts, paths
        self.floor_s = lease_s
        self.every_s = lease_s / 4
        self.latencies: dict[str, list[float]] = {n: [] for n in hosts}
        self.limits: dict[str, float] = dict.fromkeys(hosts, lease_s)
        self.last_renewed: dict[str, float] = {}
        self.longest_gap: dict[str, float] = dict.fromkeys(hosts, 0.0)
        self.lapsed: dict[str, float] = {}  # host -> the gap that passed its announced limit
        self._stop = threading.Event()
        parallel(self._renew, list(hosts))  # the first lease exists before any role starts
        self._threads = [threading.Thread(target=self._keep, args=(n,), daemon=True) for n in hosts]
        for t in self._threads:
            t.start()

    def _renew(self, name: str) -> None:
        recent = self.latencies[name][-self.RECENT :]
        limit = lease_limit(self.floor_s, self.every_s, recent)
        t0 = time.monotonic()
        self.hosts[name].renew(self.paths[name], lease_text(limit))
        now = time.monotonic()
        self.latencies[name].append(now - t0)
        previous = self.last_renewed.get(name)
        if previous is not None:
            gap = t0 - previous  # the lease's age just before this write landed, at most
            self.longest_gap[name] = max(self.longest_gap[name], gap)
            if gap > self.limits[name] and name not in self.lapsed:
                self.lapsed[name] = gap
                log.error(
                    "The lease on %s went %.1f s unrenewed, past its limit of %.1f s: its roles may have stopped "
                    "themselves although this orchestrator is live",
                    name,
                    gap,
                    self.limits[name],
                )
        self.last_renewed[name] = now
        self.limits[name] = limit

    def _keep(self, name: str) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self._renew(name)
            except Exception as err:  # a lost host: its roles' leases lapse, as they should
                log.debug("Lease on %s not renewed: %s", name, err)

    def stats(self) -> dict[str, dict[str, float]]:
        """Per host: renewals, median and slowest renewal (ms), longest gap between two (s), the
        last limit announced (s)."""
        out = {}
        for name, lat in self.latencies.items():
            ordered = sorted(lat)
            out[name] = {
                "renewals": len(lat),
                "median_ms": round(1000 * ordered[len(ordered) // 2], 2) if ordered else float("nan"),
                "max_ms": round(1000 * ordered[-1], 2) if ordered else float("nan"),
                "longest_gap_s": round(self.longest_gap[name], 3),
                "limit_s": round(self.limits[name], 3),
            }
        return out

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=1.0)
        for name, st in self.stats().items():
            log.info(
                "Lease on %s: %d renewals, median %.1f ms, slowest %.1f ms, longest gap %.2f s, limit %.1f s",
                name,
                st["renewals"],
                st["median_ms"],
                st["max_ms"],
                st["longest_gap_s"],
                st["limit_s"],
            )

        def remove(name: str) -> None:
            host = self.hosts[name]
            if isinstance(host, LocalHost):
                Path(self.paths[name]).unlink(missing_ok=True)
            elif host.alive():
                host.run(f"rm -f {shlex.quote(self.paths[name])}", timeout=10)

        parallel(lambda n: _swallow(remove, n), list(self.hosts))


def _swallow(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Exception as err:  # best effort at the end of a run
        log.debug("Ignored at teardown: %s", err)


@contextlib.contextmanager
def shielded() -> Iterator[list[int]]:
    """Hold off SIGINT and SIGTERM (from the main thread) while a teardown runs: a second Ctrl-C
    must not leave roles behind. Yields a one-item list counting the signals held off."""
    held = [0]
    if threading.current_thread() is not threading.main_thread():
        yield held
        return

    def hold(signum: int, _frame: Any) -> None:
        held[0] += 1
        log.warning("Already stopping every role; %s held off until that is done", signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield held
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _connect_or_error(config: HostConfig) -> Host | DeployError:
    try:
        return connect(config)
    except DeployError as err:
        return err


def _timeout_s(host: Host) -> str:
    ssh = host.config.ssh
    return f"{ssh.user_timeout_ms / 1000:g} s" if ssh is not None else "a while"
