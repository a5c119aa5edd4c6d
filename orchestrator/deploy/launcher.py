"""Start, watch and stop role processes on their hosts.

Each role runs under the supervisor, detached, in a process group of its own; the launcher
records its host and process group, waits for its Health RPC to say ready (failing fast, with
the role's last log lines, if it exits first), and at the end stops every group it started:
TERM, then KILL after `run.stop_timeout_s`, producers before consumers. Files on a host live
under one run directory:

    <host run dir>/spec.json, trace.csv        what every role reads (copied to remote hosts)
    <host run dir>/identity.json               the run's token (and certificate), owner-only
    <host run dir>/lease                       renewed by the orchestrator; roles stop without it
    <host run dir>/roles/<name>/               the role's working directory and output files
    <host run dir>/logs/<host>/<name>.log      the role's stdout and stderr

and come back into the local run directory under the same names.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import signal
import tarfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc

from orchestrator.deploy.base import Detached, Host
from orchestrator.deploy.local import LocalHost
from runtime.exceptions import DeployError, HostLostError
from runtime.identity import RunIdentity
from runtime.logs import init_logger
from runtime.protos import servelab_pb2 as pb
from runtime.protos import servelab_pb2_grpc as pbg
from runtime.rpc import channel
from runtime.schema import RunConfig
from runtime.spec import RoleAddress

log = init_logger(__name__)

SPEC_FILE = "spec.json"
LEASE_FILE = "lease"  # rewritten by the orchestrator while it lives (orchestrator.deploy.supervisor)
STOP_ORDER = ("controller", "worker", "load_balancer", "sink", "client")
TAIL_LINES = 8
EXIT_CHECK_EVERY_S = 0.5  # how often a start-up wait looks for roles that already exited
HALT_S = 1.0  # deadline of a Halt call; its answer is awaited at most twice that, all roles together

T = TypeVar("T")
R = TypeVar("R")


def parallel(fn: Callable[[T], R], items: Iterable[T], threads: int = 16) -> list[R]:
    """`fn` over `items` on a thread pool (hosts are slow, not busy), results in order."""
    items = list(items)
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(threads, len(items))) as pool:
        return list(pool.map(fn, items))


@dataclass
class RoleProcess:
    """A started role: where it runs and how to reach, watch and stop it."""

    address: RoleAddress
    host: Host
    workdir: str
    log: str
    exit_file: str
    pgid: int
    identity: RunIdentity
    started_at: float = field(default_factory=time.monotonic)
    channel: grpc.Channel | None = None

    @property
    def name(self) -> str:
        """The process's name: its role's, or the shared one of the roles it hosts."""
        return self.address.process_name

    def rpc_channel(self) -> grpc.Channel:
        if self.channel is None:
            self.channel = channel(self.address.address, self.identity)
        return self.channel

    def control(self) -> pbg.RoleControlStub:
        return pbg.RoleControlStub(self.rpc_channel())


class Launcher:
    def __init__(
        self, hosts: dict[str, Host], host_run_dirs: dict[str, str], run: RunConfig, identity: RunIdentity
    ) -> None:
        self.hosts = hosts
        self.identity = identity
        self.run_dirs = host_run_dirs
        self.run = run
        self.started: list[RoleProcess] = []
        self.left_running: list[RoleProcess] = []  # roles a stop could not end (kept for the message)
        self.lost: set[str] = set()  # hosts known to be lost: skipped from now on
        self._reported: set[str] = set()

    # ------------------------------------------------------------------ files
    def stage(self, files: list[Path], hosts: Iterable[str]) -> None:
        """Copy what every role reads into the run directory of each of `hosts`, in parallel."""

        def one(name: str) -> None:
            host, root = self.hosts[name], self.run_dirs[name]
            for f in files:
                host.put(f, f"{root}/{f.name}")  # modes kept: the identity stays owner-only

        parallel(one, list(hosts))

    def collect(self, run_dir: Path) -> None:
        """Bring every remote host's role files and logs into `run_dir` (one archive per host)."""

        def one(name: str) -> None:
            host, root = self.hosts[name], self.run_dirs[name]
            if isinstance(host, LocalHost) or name in self.lost or not host.alive():
                return
            bundle = f"{root}/collect.tgz"
            # The run's secrets and lease stay behind, deleted: nothing there needs them any more.
            result = host.run(
                f"cd {shlex.quote(root)} ; rm -f identity.json {LEASE_FILE} ; tar czf collect.tgz roles logs",
                timeout=60,
            )
            if not result.ok:
                raise DeployError(f"host {name}: packing role files failed ({result.stderr.strip()[:200]})")
            local = run_dir / f".collect-{name}.tgz"
            host.get(bundle, local)
            with tarfile.open(local) as tar:
                tar.extractall(run_dir, filter="data")
            local.unlink()

        for name, err in zip(self.hosts, parallel(lambda n: _quietly(one, n), self.hosts), strict=True):
            if err is _FAILED:
                log.error("Files of host %s did not come back", name)

    # ------------------------------------------------------------------ start
    def start_on_host(self, host_name: str, addresses: list[RoleAddress]) -> list[RoleProcess]:
        """Start the role processes of one host (one round trip on a remote host); roles that
        share a process (`RoleAddress.process`) get one, addressed like its first role."""
        host = self.hosts[host_name]
        root = self.run_dirs[host_name]
        processes: dict[str, RoleAddress] = {}
        for a in addresses:
            processes.setdefault(a.process_name, a)
        firsts = list(processes.values())
        jobs, procs = [], []
        for address in firsts:
            name = address.process_name
            workdir = f"{root}/roles/{name}"
            argv = [
                host.python,
                "-m",
                "orchestrator.deploy.supervisor",
                "--exit-file",
                f"{workdir}/exit.json",
                "--pid-file",
                f"{workdir}/pid.json",
                "--lease-file",
                f"{root}/{LEASE_FILE}",
                "--lease-s",
                f"{self.run.lease_s:g}",
                "--stop-s",
                f"{self.run.stop_timeout_s:g}",
                "--",
                host.python,
                "-u",
                "-m",
                "runtime.roles",
                address.role,
                "--spec",
                f"{root}/{SPEC_FILE}",
                "--name",
                name,
                "--out",
                workdir,
            ]
            jobs.append(Detached(argv, workdir, f"{root}/logs/{host_name}/{name}.log"))
        for address, job, pgid in zip(firsts, jobs, host.start_detached(jobs), strict=True):
            proc = RoleProcess(address, host, job.cwd, job.log, f"{job.cwd}/exit.json", pgid, self.identity)
            self.started.append(proc)
            procs.append(proc)
            log.debug("Started %s <host=%s pgid=%d cmd=%s>", proc.name, host_name, pgid, shlex.join(job.argv))
        return procs

    def start_all(self, addresses: list[RoleAddress]) -> list[RoleProcess]:
        """Start `addresses` together (hosts in parallel) and wait until every one is ready."""
        by_host: dict[str, list[RoleAddress]] = defaultdict(list)
        for a in addresses:
            by_host[a.host].append(a)
        started = parallel(lambda h: self.start_on_host(h, by_host[h]), list(by_host))
        procs = [p for group in started for p in group]
        self.wait_ready(procs)
        return procs

    # ------------------------------------------------------------------ watch
    def exit_status(self, proc: RoleProcess) -> dict[str, Any] | None:
        return _parse_exit(proc.host.read_text(proc.exit_file))

    def ended_many(self, procs: list[RoleProcess]) -> dict[str, dict[str, Any]]:
        """Every role of `procs` that has ended, with how; one round trip per host."""
        by_host = _by_host(procs, self.lost)

        def one(name: str) -> dict[str, dict[str, Any]]:
            group = by_host[name]
            try:
                texts = group[0].host.read_many([p.exit_file for p in group])
            except HostLostError:
                self.lost.add(name)
                return {}
            except DeployError as err:  # a hiccup (or a host being lost): look again next time
                log.debug("Could not read exit files on %s: %s", name, err)
                return {}
            out = {}
            for p in group:
                status = _parse_exit(texts.get(p.exit_file))
                if status is None and isinstance(p.host, LocalHost) and not p.host.live_groups([p.pgid]):
                    status = {"returncode": None, "signal": None, "note": "supervisor gone"}
                if status is not None:
                    out[p.name] = status
            return out

        ended: dict[str, dict[str, Any]] = {}
        for part in parallel(one, list(by_host)):
            ended.update(part)
        return ended

    def lost_hosts(self) -> list[str]:
        """Hosts found lost since the last call (their connection died)."""
        self.lost.update(name for name, host in self.hosts.items() if not host.alive())
        newly = sorted(self.lost - self._reported)
        self._reported.update(newly)
        return newly

    def log_tail(self, proc: RoleProcess, lines: int = TAIL_LINES) -> str:
        try:
            text = proc.host.read_text(proc.log) or ""
        except DeployError:
            return "(log unreachable)"
        tail = [line.strip() for line in text.strip().splitlines()[-lines:] if line.strip()]
        return " | ".join(tail) if tail else "(empty log)"

    def describe_exit(self, proc: RoleProcess, status: dict[str, Any]) -> str:
        code = status.get("returncode")
        if status.get("signal"):
            how = f"killed by signal {status['signal']}"
        elif code is None:
            how = "its process group vanished"
        else:
            how = f"exit code {code}"
        note = str(status.get("note") or "")
        if note.startswith("lease expired"):  # this process is live: its renewals did not land
            how += f"; its supervisor found the {note} while this orchestrator was live: a lease that should have held"
        return f"{proc.name} on {proc.host.name} exited ({how}); last log lines: {self.log_tail(proc)}"

    def wait_ready(self, procs: list[RoleProcess]) -> None:
        deadline = time.monotonic() + self.run.ready_timeout_s
        pending = list(procs)
        next_exit_check = time.monotonic()
        while pending:
            if time.monotonic() >= next_exit_check:
                next_exit_check = time.monotonic() + EXIT_CHECK_EVERY_S
                ended = self.ended_many(pending)
                for proc in pending:
                    if proc.name in ended:
                        raise DeployError(f"start-up failed: {self.describe_exit(proc, ended[proc.name])}")
            for proc in list(pending):
                try:
                    reply = proc.control().Health(pb.Empty(), timeout=0.5)
                except grpc.RpcError as err:
                    if err.code() is grpc.StatusCode.UNAUTHENTICATED:
                        raise DeployError(self._impostor(proc, "refused this run's token")) from None
                    continue
                if (reply.run_id, reply.name) != (self.identity.run_id, proc.name):
                    raise DeployError(self._impostor(proc, f"is {reply.name!r} of run {reply.run_id!r}"))
                if reply.ready:
                    pending.remove(proc)
                    took = time.monotonic() - proc.started_at
                    log.debug("Ready <role=%s host=%s after=%.2fs>", proc.name, proc.host.name, took)
            if pending and time.monotonic() > deadline:
                proc = pending[0]
                raise DeployError(
                    f"{proc.name} on {proc.host.name} did not become ready within {self.run.ready_timeout_s:g} s "
                    f"(run.ready_timeout_s); last log lines: {self.log_tail(proc)}"
                )
            if pending:
                time.sleep(0.1)

    def _impostor(self, proc: RoleProcess, what: str) -> str:
        return (
            f"{proc.address.address} answered for {proc.name} on {proc.host.name} but {what}: another run uses "
            "these ports; choose another hostfile.base_port"
        )

    def start_run(self, procs: list[RoleProcess], epoch: float, optional: Iterable[str] = ()) -> list[str]:
        """Tell every role the epoch (trace time 0), in the order given. A role of an `optional`
        kind (workers: the run goes on without them) that does not accept Start is left out
        like one lost later; returns those."""
        left_out = []
        for proc in procs:
            try:
                proc.control().Start(pb.StartRequest(epoch=epoch), timeout=max(5.0, self.run.rpc_timeout_s))
            except grpc.RpcError as err:
                if proc.address.role not in optional:
                    raise DeployError(
                        f"{proc.name} on {proc.host.name} did not accept Start ({err.code().name})"
                    ) from None
                log.warning(
                    "Worker lost before the run started: %s did not accept Start (%s)", proc.name, err.code().name
                )
                left_out.append(proc.name)
        return left_out

    # ------------------------------------------------------------------ stop
    def halt_all(self, procs: list[RoleProcess]) -> None:
        """Tell every role to start no new work (the client stops sending) before any is stopped.

        Each answer is awaited for a bounded wall time, not only through the call's deadline:
        a SIGTERM (a KeyboardInterrupt) that strikes the main thread inside a gRPC call can leave
        that call's lock held, and the channel's thread, which also ends this call, then waits
        for it forever (a fresh clone's test hung so, 2026-12-06, py-spy). The roles are
        stopped by signal after this whatever they answered."""
        futures = []
        for p in procs:
            if p.host.name not in self.lost:
                futures.append(p.control().Halt.future(pb.Empty(), timeout=HALT_S))
        deadline = time.monotonic() + 2 * HALT_S
        for f in futures:  # a role already gone or not yet serving: stopping it is all that is left
            with contextlib.suppress(grpc.RpcError, grpc.FutureTimeoutError):
                f.result(timeout=max(0.0, deadline - time.monotonic()))

    def stop_all(self) -> dict[str, dict[str, Any]]:
        """Stop every started role, stage by stage in STOP_ORDER (TERM, then KILL after
        run.stop_timeout_s); returns each role's exit status.

        Producers go before consumers, so what a role flushes on its way out (a worker's
        finished queries, the sink's notices) still finds its receiver listening."""
        procs = list(self.started)
        if not procs:
            return {}
        t0 = time.monotonic()
        self.lost_hosts()
        self.halt_all(procs)

        def live(targets: list[RoleProcess]) -> list[RoleProcess]:
            """The roles of `targets` still running, one round trip per host."""
            by_host = _by_host(targets, self.lost)

            def one(name: str) -> set[int]:
                try:
                    return self.hosts[name].live_groups([p.pgid for p in by_host[name]])
                except Exception:  # a host lost now: nothing more can be done there
                    self.lost.add(name)
                    return set()

            up = {
                (name, pgid)
                for name, groups in zip(by_host, parallel(one, list(by_host)), strict=True)
                for pgid in groups
            }
            return [p for p in targets if (p.host.name, p.pgid) in up]

        def signal_all(targets: list[RoleProcess], sig: int) -> None:
            by_host = _by_host(targets, self.lost)
            parallel(lambda n: _quietly(self.hosts[n].signal_groups, [p.pgid for p in by_host[n]], sig), list(by_host))

        def wait_gone(targets: list[RoleProcess], timeout: float) -> list[RoleProcess]:
            deadline = time.monotonic() + timeout
            while targets and time.monotonic() < deadline:
                time.sleep(0.05)
                targets = live(targets)
            return targets

        rank = {role: i for i, role in enumerate(STOP_ORDER)}
        for stage in sorted({rank.get(p.address.role, len(rank)) for p in procs}):
            running = live([p for p in procs if rank.get(p.address.role, len(rank)) == stage])
            signal_all(running, signal.SIGTERM)
            running = wait_gone(running, self.run.stop_timeout_s)
            if running:
                log.warning("Killing roles that ignored TERM <roles=%s>", ",".join(p.name for p in running))
                signal_all(running, signal.SIGKILL)
                running = wait_gone(running, 2.0)
            for p in running:
                log.error("Role still running after KILL <role=%s host=%s pgid=%d>", p.name, p.host.name, p.pgid)
            self.left_running += running
        ended = self.ended_many(procs)
        statuses = {}
        for p in procs:
            if p.host.name in self.lost:
                statuses[p.name] = {"returncode": None, "signal": None, "note": f"host {p.host.name} lost"}
            else:
                statuses[p.name] = ended.get(p.name) or {"returncode": None, "signal": signal.SIGKILL.value}
            if p.channel is not None:
                p.channel.close()
        log.info("Stopped %d roles in %.2f s", len(procs), time.monotonic() - t0)
        self.started.clear()
        return statuses


def _parse_exit(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        status: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError:
        return None  # being written
    return status


def _by_host(procs: list[RoleProcess], lost: set[str]) -> dict[str, list[RoleProcess]]:
    by_host: dict[str, list[RoleProcess]] = defaultdict(list)
    for p in procs:
        if p.host.name not in lost:
            by_host[p.host.name].append(p)
    return by_host


_FAILED = object()


def _quietly(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as err:  # teardown goes on whatever one host says
        log.warning("Teardown step failed: %s", err)
        return _FAILED
