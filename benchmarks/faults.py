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
from typing import IO, Any

from benchmarks.common import ROOT, say, table
from labkit import free_base_port, processes_mentioning

RUN = (
    "cascade=sdxs",
    "approach=diffserve",
    "trace=1to8qps",
    "trace.duration_s=40",
    "time_scale=4",
    "hostfile.workers=4",
    "run.progress=false",
    "tracking.enabled=false",
)
SPOT = (
    "system=spotserve",
    "model=tiny",
    "trace=od3",
    "trace.duration_s=60",
    "time_scale=4",
    "run.progress=false",
    "tracking.enabled=false",
)


@dataclass
class Row:
    fault: str
    exit_code: int | str | None
    unaccounted: int | str
    unfinished: int | str
    left: int
    detected_s: float | None
    note: str = ""
    said: str = "-"  # what the command printed: "one line", "summary + one line", "traceback!"

    def cells(self) -> list[str]:
        detected = f"{self.detected_s:.1f}" if self.detected_s is not None else "-"
        code = str(self.exit_code) if self.exit_code is not None else "killed"
        return [
            self.fault,
            code,
            self.said,
            str(self.unaccounted),
            str(self.unfinished),
            str(self.left),
            detected,
            self.note,
        ]


@dataclass
class Orchestrator:
    """`python -m orchestrator` in a process group of its own, its stderr read line by line
    with the time each line arrived."""

    out: Path
    args: tuple[str, ...]
    env: dict[str, str] | None = None
    proc: subprocess.Popen[str] = field(init=False)
    lines: list[tuple[float, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "orchestrator",
            *(a for a in self.args if a.startswith("-")),  # flags (-m) before the overrides
            f"paths.output_dir={self.out}",
            f"hostfile.base_port={free_base_port()}",
            *(a for a in self.args if not a.startswith("-")),
        ]
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env=self.env,
        )
        threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
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

    def summary(self) -> dict[str, Any]:
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


def said(lines: list[str]) -> str:
    """How the command ended on its console: one `error:` line (after the summary table, if it
    printed one), nothing (a success), or a traceback."""
    if any("Traceback" in line for line in lines):
        return "traceback!"
    errors = [line for line in lines if line.startswith("error: ")]
    table = any(line.startswith("Run directory:") for line in lines)
    if not errors:
        return "summary" if table else "nothing"
    kind = "one line" if len(errors) == 1 else f"{len(errors)} error lines"
    return f"summary + {kind}" if table else kind


def _row(name: str, orch: Orchestrator, code: int | None, detected: float | None, note: str = "") -> Row:
    s = orch.summary()
    unaccounted = s.get("queries_unaccounted", "no summary")
    unfinished = s.get("unfinished", "-")
    left = len(processes_of(orch.run_dir))
    printed = said([line for _, line in orch.lines]) if code is not None else "-"
    return Row(name, code, unaccounted, unfinished, left, detected, note, printed)


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
    from labkit.sshd import Lab, netns_available

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
            "lost SSH host",
            code,
            s.get("queries_unaccounted", "no summary"),
            s.get("unfinished", "-"),
            left,
            detected,
            f"the run went on; the cut-off host's roles stopped by their lease after {gone_after:.1f} s",
            said([line for _, line in orch.lines]),
        )


def stop_role(role: str, out: Path) -> Row:
    """SIGSTOP of an essential role: it leaves its health check unanswered, and the orchestrator
    stops the run after run.silence_s with one line naming it (the teardown kills it: TERM
    cannot reach a stopped process)."""
    orch = Orchestrator(out, RUN)
    orch.wait_sent(20)
    t0 = time.monotonic()
    os.kill(orch.role_pid(role), signal.SIGSTOP)
    code = orch.wait()
    detected = orch.first_line("stopped answering", t0)
    return _row(f"SIGSTOP {role}", orch, code, detected)


def cleanup_live(out: Path) -> Row:
    """`python -m orchestrator.cleanup --all` while a run is live: refused (its lease is
    fresh), the run goes on to a whole result."""
    orch = Orchestrator(out, RUN)
    orch.wait_sent(20)
    t0 = time.monotonic()
    cleanup = subprocess.run(
        [sys.executable, "-m", "orchestrator.cleanup", "--all", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    detected = time.monotonic() - t0
    code = orch.wait()
    s = orch.summary()
    skipped = "skipped:" in cleanup.stderr and "is live" in cleanup.stderr
    note = f"cleanup exit {cleanup.returncode}, {'refused: the run is live' if skipped else cleanup.stderr[-160:]}"
    note += f"; the run sent {s.get('queries_sent', '?')}, lost {s.get('queries_lost', '?')}"
    return _row("cleanup --all during a run", orch, code, detected, note)


def concurrent_store(out: Path) -> Row:
    """Two runs and two sweeps (2 jobs each) started at once on a fresh SQLite store: every run
    and every sweep's parent run reach MLflow, and the store is usable afterwards."""
    from orchestrator import tracking

    uri = f"sqlite:///{out}/mlflow.db"
    common = ("clock=virtual", "trace.duration_s=60", "run.progress=false", f"tracking.uri={uri}")
    runs = [Orchestrator(out, common) for _ in range(2)]
    runs += [Orchestrator(out, ("-m", "seed=0,1", *common)) for _ in range(2)]
    t0 = time.monotonic()
    codes = [o.wait() for o in runs]
    took = time.monotonic() - t0
    after = Orchestrator(out, common)  # the store is usable afterwards
    codes.append(after.wait())
    mlf = tracking.client(uri)
    exp = mlf.get_experiment_by_name("diffserve")
    found = mlf.search_runs([exp.experiment_id], max_results=100) if exp is not None else []
    finished = sum(1 for r in found if r.info.status == "FINISHED")
    expected = 2 + 2 * 3 + 1  # runs, sweeps (2 jobs and a parent each), the run after
    lines = [line for o in runs for _, line in o.lines]
    note = f"{finished} of {expected} runs FINISHED in MLflow ({len(found)} in all); the store usable afterwards"
    return Row("2 runs + 2 sweeps on a fresh store", ",".join(map(str, codes)), "-", "-", 0, took, note, said(lines))


def mlflow_lost(out: Path) -> Row:
    """The MLflow server is killed while a run logs to it: the run exits 1 with one line naming
    `orchestrator.log`; with the server back, that command logs it once (the cut-off attempt
    ended FAILED) and a second call logs nothing."""
    from mlflow.tracking import MlflowClient

    port = free_base_port(1)
    store = f"sqlite:///{out}/server.db"
    server = start_mlflow_server(store, port, out)
    uri = f"http://127.0.0.1:{port}"
    orch = Orchestrator(out, (*RUN, "tracking.enabled=true", f"tracking.uri={uri}"))
    client = MlflowClient(uri)
    killed_at = None
    db = out / "server.db"
    while orch.proc.poll() is None and killed_at is None:
        if _runs_in(db):  # the server's own store, read directly: a run was created just now
            os.killpg(server.pid, signal.SIGSTOP)  # frozen mid-logging, then gone
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
            killed_at = time.monotonic()
        time.sleep(0.005)
    code = orch.wait()
    if killed_at is None:
        return _row("MLflow server lost mid-logging", orch, code, None, "logging finished before the kill")
    detected = orch.first_line("not in MLflow", killed_at)
    server = start_mlflow_server(store, port, out)
    try:
        relog = [
            subprocess.run(
                [sys.executable, "-m", "orchestrator.log", str(orch.run_dir), "--tracking-uri", uri],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            for _ in range(2)
        ]
        exp = client.get_experiment_by_name("diffserve")
        found = client.search_runs([exp.experiment_id]) if exp is not None else []
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    statuses = sorted(r.info.status for r in found)
    note = (
        f"orchestrator.log exits {relog[0].returncode} then {relog[1].returncode} "
        f"({'the second logs nothing' if 'already in MLflow' in relog[1].stdout else relog[1].stderr.strip()[-60:]}); "
        f"MLflow holds {', '.join(statuses)}"
    )
    return _row("MLflow server lost mid-logging", orch, code, detected, note)


def _runs_in(db: Path) -> int:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1) as con:
            return int(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
    except sqlite3.Error:
        return 0  # not created yet, or busy


def start_mlflow_server(store: str, port: int, out: Path) -> subprocess.Popen[bytes]:
    """A real `mlflow server` on 127.0.0.1:port (its own process group), once it answers."""
    import urllib.request

    mlflow = Path(sys.executable).with_name("mlflow")
    server = subprocess.Popen(
        [
            str(mlflow),
            "server",
            "--backend-store-uri",
            store,
            "--artifacts-destination",
            str(out / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not start") from None
            time.sleep(0.3)


def disk_full(out: Path) -> Row:
    """The run's disk fills mid-run (a 64 MB tmpfs, then a file that takes what is left): the
    roles that cannot write stop, the run exits 1 with one line naming the full disk, and no
    result file is left half-written."""
    disk = out / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], capture_output=True, text=True, check=False
    )
    if mounted.returncode != 0:
        return Row(
            "disk full", None, "-", "-", 0, None, f"skipped: cannot mount a tmpfs ({mounted.stderr.strip()[:80]})"
        )
    try:
        orch = Orchestrator(disk, RUN)
        orch.wait_sent(20)
        t0 = time.monotonic()
        with open(disk / "filler", "wb") as fh:
            try:
                while True:
                    fh.write(b"\0" * (1 << 20))
                    fh.flush()
            except OSError:
                pass
        code = orch.wait()
        detected = orch.first_line("error: ", t0)
        empty = [
            p.name
            for p in (orch.run_dir or disk).rglob("*")
            if p.is_file() and p.stat().st_size == 0 and p.suffix in (".parquet", ".json")
        ]
        note = f"empty result files: {', '.join(empty)}" if empty else "no result file half-written"
        return _row("disk full", orch, code, detected, note)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def interrupt_virtual(out: Path) -> Row:
    """Ctrl-C in the middle of a virtual run (the engine is running)."""
    orch = Orchestrator(
        out,
        (
            "clock=virtual",
            "trace=fixed_10qps",
            "trace.low_qps=200",
            "trace.high_qps=200",
            "trace.duration_s=20000",
            "hostfile.workers=16",
            "tracking.enabled=false",
        ),
    )
    deadline = time.monotonic() + 120
    while orch.first_line("Replaying", 0) is None and not (orch.run_dir and (orch.run_dir / "spec.json").exists()):
        assert time.monotonic() < deadline and orch.proc.poll() is None, orch.tail()
        time.sleep(0.05)
    time.sleep(1.0)
    t0 = time.monotonic()
    os.killpg(orch.proc.pid, signal.SIGINT)
    code = orch.wait()
    detected = orch.first_line("error: ", t0)
    line = next((ln for _, ln in orch.lines if ln.startswith("error: ")), "")
    return _row("Ctrl-C in a virtual run", orch, code, detected, line.split(" is in ")[0] + " is in <run dir>")


FAULTS: dict[str, Callable[[Path], Row]] = {
    "kill-controller": lambda out: kill_role("controller", out),
    "kill-load_balancer": lambda out: kill_role("load_balancer", out),
    "kill-sink": lambda out: kill_role("sink", out),
    "kill-client": lambda out: kill_role("client", out),
    "kill-worker": lambda out: kill_role("worker", out),
    "stop-worker": stop_worker,
    "stop-controller": lambda out: stop_role("controller", out),
    "stop-load_balancer": lambda out: stop_role("load_balancer", out),
    "stop-sink": lambda out: stop_role("sink", out),
    "stop-client": lambda out: stop_role("client", out),
    "cleanup-live": cleanup_live,
    "concurrent-store": concurrent_store,
    "mlflow-lost": mlflow_lost,
    "disk-full": disk_full,
    "interrupt-virtual": interrupt_virtual,
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
    header = ["fault", "exit", "printed", "unaccounted", "unfinished", "processes left", "detected after (s)", "note"]
    say(table(header, rows, name="faults"))


if __name__ == "__main__":
    main()
