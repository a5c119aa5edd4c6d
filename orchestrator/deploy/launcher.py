"""Start, watch and stop role processes on their hosts.

Each role runs under the supervisor, detached, in a process group of its own; the launcher
records its host and process group, waits for its Health RPC to say ready (failing fast, with
the role's last log lines, if it exits first), and at the end stops every group it started:
TERM, then KILL after `run.stop_timeout_s`. Files on a host live under one run directory:

    <host run dir>/spec.json, trace.csv        what every role reads
    <host run dir>/roles/<name>/               the role's working directory and output files
    <host run dir>/logs/<host>/<name>.log      the role's stdout and stderr
"""

from __future__ import annotations

import json
import shlex
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc

from orchestrator.deploy.hosts import Host
from runtime.exceptions import DeployError
from runtime.logs import init_logger
from runtime.protos import servelab_pb2 as pb
from runtime.protos import servelab_pb2_grpc as pbg
from runtime.rpc import channel
from runtime.schema import RunConfig
from runtime.spec import RoleAddress

log = init_logger(__name__)

SPEC_FILE = "spec.json"
STOP_ORDER = ("controller", "worker", "load_balancer", "sink", "client")
TAIL_LINES = 8


@dataclass
class RoleProcess:
    """A started role: where it runs and how to reach, watch and stop it."""

    address: RoleAddress
    host: Host
    workdir: str
    log: str
    exit_file: str
    pgid: int
    started_at: float = field(default_factory=time.monotonic)
    channel: grpc.Channel | None = None

    @property
    def name(self) -> str:
        return self.address.name

    def rpc_channel(self) -> grpc.Channel:
        if self.channel is None:
            self.channel = channel(self.address.address)
        return self.channel

    def control(self) -> pbg.RoleControlStub:
        return pbg.RoleControlStub(self.rpc_channel())


class Launcher:
    def __init__(self, hosts: dict[str, Host], host_run_dirs: dict[str, str], run: RunConfig) -> None:
        self.hosts = hosts
        self.run_dirs = host_run_dirs
        self.run = run
        self.started: list[RoleProcess] = []

    # ------------------------------------------------------------------ start
    def start(self, address: RoleAddress) -> RoleProcess:
        host = self.hosts[address.host]
        root = self.run_dirs[address.host]
        workdir = f"{root}/roles/{address.name}"
        log_dir = f"{root}/logs/{address.host}"
        host.mkdir(workdir)
        host.mkdir(log_dir)
        log_file = f"{log_dir}/{address.name}.log"
        exit_file = f"{workdir}/exit.json"
        argv = [
            host.python, "-m", "orchestrator.deploy.supervisor",
            "--exit-file", exit_file, "--pid-file", f"{workdir}/pid.json", "--",
            host.python, "-u", "-m", "runtime.roles", address.role,
            "--spec", f"{root}/{SPEC_FILE}", "--name", address.name, "--out", workdir,
        ]  # fmt: skip
        pgid = host.start_detached(argv, cwd=workdir, log=log_file)
        proc = RoleProcess(address, host, workdir, log_file, exit_file, pgid)
        self.started.append(proc)
        log.debug("Started %s <host=%s pgid=%d cmd=%s>", address.name, host.name, pgid, shlex.join(argv))
        return proc

    def start_all(self, addresses: list[RoleAddress]) -> list[RoleProcess]:
        """Start `addresses` together and wait until every one of them is ready."""
        procs = [self.start(a) for a in addresses]
        self.wait_ready(procs)
        return procs

    # ------------------------------------------------------------------ watch
    def exit_status(self, proc: RoleProcess) -> dict[str, Any] | None:
        text = proc.host.read_text(proc.exit_file)
        if text is None:
            return None
        try:
            status: dict[str, Any] = json.loads(text)
            return status
        except json.JSONDecodeError:
            return None

    def ended(self, proc: RoleProcess) -> dict[str, Any] | None:
        """How the role ended, or None while it runs. A group that vanished without an exit
        file (its supervisor was killed too) counts as ended, by an unknown cause."""
        status = self.exit_status(proc)
        if status is None and not proc.host.group_alive(proc.pgid):
            status = self.exit_status(proc) or {"returncode": None, "signal": None, "note": "supervisor gone"}
        return status

    def log_tail(self, proc: RoleProcess, lines: int = TAIL_LINES) -> str:
        text = proc.host.read_text(proc.log) or ""
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
        return f"{proc.name} on {proc.host.name} exited ({how}); last log lines: {self.log_tail(proc)}"

    def wait_ready(self, procs: list[RoleProcess]) -> None:
        deadline = time.monotonic() + self.run.ready_timeout_s
        pending = list(procs)
        while pending:
            for proc in list(pending):
                status = self.ended(proc)
                if status is not None:
                    raise DeployError(f"start-up failed: {self.describe_exit(proc, status)}")
                try:
                    reply = proc.control().Health(pb.Empty(), timeout=0.5)
                except grpc.RpcError:
                    continue
                if reply.ready:
                    pending.remove(proc)
                    log.debug(
                        "Ready <role=%s host=%s after=%.2fs>",
                        proc.name,
                        proc.host.name,
                        time.monotonic() - proc.started_at,
                    )
            if pending and time.monotonic() > deadline:
                proc = pending[0]
                raise DeployError(
                    f"{proc.name} on {proc.host.name} did not become ready within {self.run.ready_timeout_s:g} s "
                    f"(run.ready_timeout_s); last log lines: {self.log_tail(proc)}"
                )
            if pending:
                time.sleep(0.1)

    def start_run(self, procs: list[RoleProcess], epoch: float) -> None:
        """Tell every role the epoch (trace time 0), in the order given."""
        for proc in procs:
            try:
                proc.control().Start(pb.StartRequest(epoch=epoch), timeout=max(5.0, self.run.rpc_timeout_s))
            except grpc.RpcError as err:
                raise DeployError(f"{proc.name} on {proc.host.name} did not accept Start ({err.code().name})") from None

    # ------------------------------------------------------------------ stop
    def stop_all(self) -> dict[str, dict[str, Any]]:
        """Stop every started role, stage by stage in STOP_ORDER (TERM, then KILL after
        run.stop_timeout_s); returns each role's exit status.

        Producers go before consumers, so what a role flushes on its way out (a worker's
        finished queries, the sink's notices) still finds its receiver listening."""
        procs = list(self.started)
        if not procs:
            return {}
        t0 = time.monotonic()

        def alive(p: RoleProcess) -> bool:
            try:
                return p.host.group_alive(p.pgid)
            except Exception:  # a lost host: nothing more we can do there
                return False

        def signal_all(targets: list[RoleProcess], sig: int) -> None:
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda p: _quietly(p.host.signal_group, p.pgid, sig), targets))

        rank = {role: i for i, role in enumerate(STOP_ORDER)}
        for stage in sorted({rank.get(p.address.role, len(rank)) for p in procs}):
            running = [p for p in procs if rank.get(p.address.role, len(rank)) == stage and alive(p)]
            signal_all(running, signal.SIGTERM)
            running = _wait_gone(running, alive, self.run.stop_timeout_s)
            if running:
                log.warning("Killing roles that ignored TERM <roles=%s>", ",".join(p.name for p in running))
                signal_all(running, signal.SIGKILL)
                running = _wait_gone(running, alive, 2.0)
            for p in running:
                log.error("Role still running after KILL <role=%s host=%s pgid=%d>", p.name, p.host.name, p.pgid)
        statuses = {}
        for p in procs:
            statuses[p.name] = _quietly(self.exit_status, p) or {"returncode": None, "signal": signal.SIGKILL.value}
            if p.channel is not None:
                p.channel.close()
        log.info("Stopped %d roles in %.2f s", len(procs), time.monotonic() - t0)
        self.started.clear()
        return statuses


def _wait_gone(procs: list[RoleProcess], alive: Any, timeout: float) -> list[RoleProcess]:
    deadline = time.monotonic() + timeout
    while procs and time.monotonic() < deadline:
        time.sleep(0.05)
        procs = [p for p in procs if alive(p)]
    return procs


def _quietly(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as err:  # teardown goes on whatever one host says
        log.warning("Teardown step failed: %s", err)
        return None
