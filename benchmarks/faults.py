"""The fault suite: each fault of the hardening issue injected into a real wall run, and what
the run made of it.

    python -m benchmarks.faults [--only NAME ...]

Every fault is injected once the run is replaying (the client's journal shows sent queries:
an observable state, not a guess at start-up time). A row: the fault, the orchestrator's exit
code, the queries the records cannot account for (`queries_unaccounted`), the queries the run
left unfinished (in flight when it stopped, or on a lost worker), the processes of the run
left on any host afterwards, and the seconds from the fault to its detection (the line that
names it: the orchestrator's, the controller's eviction, or the last role gone by its lease).
tests/test_faults.py runs some of these rows and asserts on them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import ROOT, free_base_port, processes_mentioning, say, table

RUN = (
    "cascade=sdxs", "approach=diffserve", "trace=1to8qps", "trace.duration_s=40", "time_scale=4",
    "hostfile.workers=4", "run.progress=false", "tracking.enabled=false",
)  # fmt: skip
SPOT = (
    "system=spotserve", "model=tiny", "trace=od3", "trace.duration_s=60", "time_scale=4", "run.progress=false",
    "tracking.enabled=false",
)  # fmt: skip


@dataclass
class Row:
    fault: str
    exit_code: int | None
    unaccounted: int | str
    unfinished: int | str
    left: int
    detected_s: float | None
    note: str = ""

    def cells(self) -> list[str]:
        detected = f"{self.detected_s:.1f}" if self.detected_s is not None else "-"
        code = str(self.exit_code) if self.exit_code is not None else "killed"
        return [self.fault, code, str(self.unaccounted), str(self.unfinished), str(self.left), detected, self.note]


@dataclass
class Orchestrator:
    """`python -m orchestrator` in a process group of its own, its stderr read line by line
    with the time each line arrived."""

    out: Path
    args: tuple[str, ...]
    proc: subprocess.Popen[str] = field(init=False)
    lines: list[tuple[float, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        cmd = [
            sys.executable, "-m", "orchestrator", f"paths.output_dir={self.out}",
            f"hostfile.base_port={free_base_port()}", *self.args,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append((time.monotonic(), line.rstrip()))

    @property
    def run_dir(self) -> Path | None:
        found = sorted(self.out.glob("*/runs/*"))
        return found[0] if found else None

    def role_file(self, role: str, name: str) -> Path | None:
        run = self.run_dir
        return run / "roles" / role / name if run is not None else None

    def sent(self) -> int:
        journal = self.role_file("client", "client.journal.jsonl")
        if journal is None or not journal.exists():
            return 0
        return sum(1 for line in journal.read_text().splitlines() if line.startswith('["s"'))

    def wait_sent(self, count: int, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while self.sent() < count:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the run did not start replaying: {self.tail()}")
            time.sleep(0.1)

    def role_pid(self, name: str) -> int:
        """The role process (not its supervisor) of the role or process named `name`."""
        run = self.run_dir
        assert run is not None
        pid_file = run / "roles" / name / "pid.json"
        deadline = time.monotonic() + 60
        while not pid_file.exists():
            assert time.monotonic() < deadline, f"{name} never started"
            time.sleep(0.1)
        return int(json.loads(pid_file.read_text())["child"])

    def wait(self, timeout: float = 240) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGINT)
            return self.proc.wait(timeout=120)

    def first_line(self, text: str, after: float) -> float | None:
        return next((t - after for t, line in self.lines if t >= after and text in line), None)

    def tail(self) -> str:
        return " | ".join(line for _, line in self.lines[-5:])

    def summary(self) -> dict[str, object]:
        run = self.run_dir
        path = run / "summary.json" if run is not None else None
        return json.loads(path.read_text()) if path is not None and path.exists() else {}


def processes_of(run_dir: Path | None) -> list[int]:
    """Live processes whose command line names the run's directory (roles and supervisors)."""
    return processes_mentioning(str(run_dir)) if run_dir is not None else []


def wait_gone(run_dir: Path | None, timeout: float) -> float | None:
    """Seconds until no process of the run is left (None: some still are after `timeout`)."""
    t0 = time.monotonic()
    while processes_of(run_dir):
        if time.monotonic() - t0 > timeout:
            return None
        time.sleep(0.1)
    return time.monotonic() - t0


def _row(name: str, orch: Orchestrator, code: int | None, detected: float | None, note: str = "") -> Row:
    s = orch.summary()
    unaccounted = s.get("queries_unaccounted", "no summary")
    unfinished = s.get("unfinished", "-")
    left = len(processes_of(orch.run_dir))
    return Row(name, code, unaccounted, unfinished, left, detected, note)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the faults


def kill_role(role: str, out: Path) -> Row:
    """kill -9 of one role mid-run: an essential role ends the run (partial, records kept); a
    worker is evicted and the run goes on."""
    orch = Orchestrator(out, RUN)
    orch.wait_sent(20)
    name = "worker-1" if role == "worker" else role
    t0 = time.monotonic()
    os.kill(orch.role_pid(name), signal.SIGKILL)
    code = orch.wait()
    detected = orch.first_line("Worker lost during the run" if role == "worker" else "exited (killed by signal 9)", t0)
    s = orch.summary()
    recovered = s.get("recovered_files") or []
    note = f"rebuilt from journals: {', '.join(str(f).split('/')[-1] for f in recovered)}" if recovered else ""
    return _row(f"kill -9 {role}", orch, code, detected, note)


def stop_worker(out: Path) -> Row:
    """SIGSTOP of a worker: it stops answering; the controller evicts it, the run goes on, and
    the teardown kills it (TERM cannot reach a stopped process)."""
    orch = Orchestrator(out, RUN)
    orch.wait_sent(20)
    t0 = time.monotonic()
    os.kill(orch.role_pid("worker-1"), signal.SIGSTOP)
    controller_log = next(iter(orch.run_dir.glob("logs/*/controller.log")))  # type: ignore[union-attr]
    detected = None
    while orch.proc.poll() is None and detected is None:
        if "Evicted <worker=worker-1" in controller_log.read_text():
            detected = time.monotonic() - t0
        time.sleep(0.05)
    code = orch.wait()
    return _row("SIGSTOP worker", orch, code, detected, "evicted by the controller")


def kill_orchestrator(out: Path, lease_s: float = 6.0) -> Row:
    """SIGKILL of the orchestrator: the roles stop by themselves when their lease lapses; the
    results are then computed by `python -m orchestrator.cleanup`."""
    orch = Orchestrator(out, (*RUN, f"run.lease_s={lease_s:g}"))
    orch.wait_sent(20)
    t0 = time.monotonic()
    os.killpg(orch.proc.pid, signal.SIGKILL)  # the orchestrator, not the roles (own sessions)
    orch.proc.wait()
    gone = wait_gone(orch.run_dir, timeout=lease_s + 30)
    detected = time.monotonic() - t0 if gone is not None else None
    cleanup = subprocess.run(
        [sys.executable, "-m", "orchestrator.cleanup", str(orch.run_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    note = "all gone by their lease; results by orchestrator.cleanup" if cleanup.returncode == 0 else cleanup.stderr
    return _row("SIGKILL orchestrator", orch, None, detected, note)


def double_interrupt(out: Path) -> Row:
    """Ctrl-C, then Ctrl-C again while the roles are being stopped."""
    orch = Orchestrator(out, RUN)
    orch.wait_sent(20)
    t0 = time.monotonic()
    os.killpg(orch.proc.pid, signal.SIGINT)
    while orch.first_line("Interrupted: tearing everything down", t0) is None and orch.proc.poll() is None:
        time.sleep(0.02)
    os.killpg(orch.proc.pid, signal.SIGINT)
    code = orch.wait()
    detected = orch.first_line("Interrupted", t0)
    held = orch.first_line("held off until that is done", t0) is not None
    return _row("Ctrl-C twice", orch, code, detected, "second one held off" if held else "")


def interrupt_while_starting(out: Path) -> Row:
    """Ctrl-C while SpotServe's workers start (before the replay)."""
    orch = Orchestrator(out, SPOT)
    deadline = time.monotonic() + 120
    while not (orch.run_dir and list(orch.run_dir.glob("roles/*/pid.json"))):
        assert time.monotonic() < deadline and orch.proc.poll() is None, orch.tail()
        time.sleep(0.05)
    t0 = time.monotonic()
    os.killpg(orch.proc.pid, signal.SIGINT)
    code = orch.wait()
    detected = orch.first_line("Interrupted", t0)
    traceback = any("Traceback" in line for _, line in orch.lines)
    return _row("Ctrl-C during start-up", orch, code, detected, "traceback!" if traceback else "no records yet")


def unauthenticated_stop(out: Path) -> Row:
    """A plain gRPC client calls RoleControl.Stop on the controller: refused, the run goes on."""
    import grpc

    from runtime.protos import servelab_pb2 as pb
    from runtime.protos import servelab_pb2_grpc as pbg

    orch = Orchestrator(out, RUN)
    orch.wait_sent(10)
    spec = json.loads((orch.run_dir / "spec.json").read_text())  # type: ignore[operator]
    controller = next(r for r in spec["roles"] if r["role"] == "controller")
    t0 = time.monotonic()
    try:
        pbg.RoleControlStub(grpc.insecure_channel(controller["address"])).Stop(pb.StopRequest(reason="x"), timeout=5)
        note = "ACCEPTED"
    except grpc.RpcError as err:
        note = f"refused: {err.code().name}"
    detected = time.monotonic() - t0
    code = orch.wait()
    return _row("unauthenticated Stop", orch, code, detected, note)


def lost_host(out: Path, lease_s: float = 6.0) -> Row:
    """A worker host is cut off (its network link goes down, its processes live on) during an
    SSH run: the run goes on without its workers, and they stop by themselves when the lease
    the orchestrator can no longer renew lapses."""
    from tests.lab import Lab, netns_available

    if not netns_available():
        return Row("lost SSH host", None, "-", "-", 0, None, "skipped: needs network namespaces (root)")
    with Lab(3, out / "lab") as lab:
        conf = out / "conf"
        h1, h2, h3 = lab.hosts
        entries = [lab.host_entry(h1, ["controller", "load_balancer", "sink", "client"])]
        entries += [lab.host_entry(h, ["worker"], gpus=[0, 1]) for h in (h2, h3)]
        lab.write_hostfile(conf, "lab", entries, workers=4)
        args = (f"hydra.searchpath=[file://{conf}]", "hostfile=lab", *RUN, f"run.lease_s={lease_s:g}")
        orch = Orchestrator(out / "out", args)
        deadline = time.monotonic() + 180
        while sum(1 for j in h1.workdir.glob("*/roles/client/client.journal.jsonl") for _ in j.open()) < 20:
            assert time.monotonic() < deadline and orch.proc.poll() is None, orch.tail()
            time.sleep(0.1)
        t0, cut_at = time.monotonic(), time.time()
        lab.cut(h3, kill=False)
        code = orch.wait()
        detected = orch.first_line("Host h3 lost during the run", t0)
        while lab.role_pids(h3) and time.monotonic() - t0 < lease_s + 30:
            time.sleep(0.1)
        # When they ended, by their supervisors' exit files (this machine's clock, as cut_at).
        ended = [json.loads(f.read_text())["ended_at"] for f in h3.workdir.glob("*/roles/*/exit.json")]
        gone_after = max(ended) - cut_at if ended else float("nan")
        left = sum(len(lab.role_pids(h)) for h in lab.hosts)
        s = orch.summary()
        return Row(
            "lost SSH host", code, s.get("queries_unaccounted", "no summary"), s.get("unfinished", "-"),  # type: ignore[arg-type]
            left, detected, f"the run went on; the cut-off host's roles stopped by their lease after {gone_after:.1f} s",
        )  # fmt: skip


FAULTS: dict[str, Callable[[Path], Row]] = {
    "kill-controller": lambda out: kill_role("controller", out),
    "kill-load_balancer": lambda out: kill_role("load_balancer", out),
    "kill-sink": lambda out: kill_role("sink", out),
    "kill-client": lambda out: kill_role("client", out),
    "kill-worker": lambda out: kill_role("worker", out),
    "stop-worker": stop_worker,
    "kill-orchestrator": kill_orchestrator,
    "interrupt-twice": double_interrupt,
    "interrupt-start": interrupt_while_starting,
    "lost-host": lost_host,
    "unauthenticated": unauthenticated_stop,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", choices=sorted(FAULTS), help="these faults only")
    args = parser.parse_args()
    rows = []
    for name in args.only or FAULTS:
        with tempfile.TemporaryDirectory(prefix=f"fault-{name}-") as tmp:
            row = FAULTS[name](Path(tmp))
        say(f"{row.fault}: {row.cells()[1:]}")
        rows.append(row.cells())
    header = ["fault", "exit", "unaccounted", "unfinished", "processes left", "detected after (s)", "note"]
    say(table(header, rows))


if __name__ == "__main__":
    main()
