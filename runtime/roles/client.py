"""Client role: replays the trace against the load balancer, a gRPC shell over `ClientCore`.

Each query is sent at its arrival time (trace time), without waiting for earlier ones; its
latency is the time from sending to the sink's notice, both on this process's clock. After the
last arrival the client waits for the remaining notices until the drain ends (the system's
drain after the last arrival, or the trace's end when there is no SLO), writes one row per
query, and reports done.
"""

from __future__ import annotations

import threading
from pathlib import Path

import grpc

from runtime import rolefiles
from runtime.cores.client import ClientCore
from runtime.journal import Journal
from runtime.protos import servelab_pb2 as pb
from runtime.protos import servelab_pb2_grpc as pbg
from runtime.query import to_pb
from runtime.roles.base import Role, Servicer
from runtime.schema import Config
from runtime.spec import RunSpec
from runtime.traces.arrivals import ArrivalTrace, read_artifact


class ClientRole(Role[Config]):
    schema = Config
    role = "client"

    def __init__(self, spec: RunSpec, name: str, out_dir: Path) -> None:
        super().__init__(spec, name, out_dir)
        trace: ArrivalTrace = read_artifact(spec.trace_path, name=self.config.trace.name)
        terms = spec.client
        self.core = ClientCore.for_run(terms, trace.arrival_s, trace.prompt_index)
        self.drain_s = spec.drain_s
        self.prompts = load_prompts(terms.prompts_path, terms.num_prompts) if terms.sends_prompts else None
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.halted = threading.Event()  # Halt or Stop: send nothing more
        self.journal = Journal(out_dir / rolefiles.CLIENT_JOURNAL, self.config.run.journal_sync_s)
        self._lb = pbg.LoadBalancerStub(self.channel_to(spec.only("load_balancer").name))
        self._replayer = self.work_thread(self._replay, "replay")

    def servicers(self) -> list[Servicer]:
        return [(pbg.add_ClientServicer_to_server, _ClientService(self))]

    def on_start(self) -> None:
        self._replayer.start()

    def halt(self) -> None:
        with self.lock:  # a send in progress completes; none starts after this
            self.halted.set()

    # ------------------------------------------------------------------ sending
    def _replay(self) -> None:
        core = self.core
        for i in range(len(core)):
            if self.halted.is_set() or self.stopping.is_set():
                break
            self.clock.sleep_until(core.arrival_s[i])
            prompt = self.prompts[int(core.prompt_index[i]) % len(self.prompts)] if self.prompts else ""
            with self.lock:
                if self.halted.is_set() or self.stopping.is_set():  # told while it slept
                    break
                now = self.clock.now()
                self.journal.add(["s", i, now])  # before the query leaves: the sink never knows more
                q = core.send(i, now, prompt)
            future = self._lb.Submit.future(to_pb(q), timeout=self.rpc_timeout)
            future.add_done_callback(lambda f, i=i: self._submitted(i, f))
        drain_until = core.drain_until(self.config.trace.duration_s, self.drain_s)
        while self.clock.now() < drain_until and not self.stopping.is_set():
            with self.lock:
                if core.all_noticed:
                    break
            self.clock.sleep(min(0.5, max(0.01, drain_until - self.clock.now())))
        self._write()
        self.done.set()
        self.log.info("Trace replayed <sent=%d noticed=%d violations=%d>", core.sent, core.noticed, core.violations)

    def _submitted(self, i: int, future: grpc.Future) -> None:
        try:
            reply = future.result()
        except grpc.RpcError as err:
            with self.lock:
                self.journal.add(["f", i, err.code().name])
                self.core.submit_failed(i, err.code().name)
            return
        if not reply.accepted:
            self.notice(i, dropped=True, reason=reply.reason, path="")

    # ------------------------------------------------------------------ receiving
    def notice(self, i: int, dropped: bool, reason: str, path: str) -> None:
        with self.lock:
            now = self.clock.now()
            self.journal.add(["n", i, dropped, reason, path, now])
            self.core.notice(i, dropped, reason, path, now)

    def progress(self) -> pb.ProgressReply:
        with self.lock:
            p = self.core.progress(self.clock.now())
        return pb.ProgressReply(
            total=p.total,
            sent=p.sent,
            completed=p.completed,
            violations=p.violations,
            trace_time=p.trace_time,
            rate=p.rate,
            done=self.done.is_set(),
            dropped=p.drops,
        )

    def _write(self) -> None:
        """Close the books (later notices are late) and write one row per query, once."""
        with self.lock:
            now = self.clock.now()
            if not self.core.close(now):
                return
            self.journal.add(["c", now])
            errors = self.core.submit_errors
            rolefiles.write_client(self.core, self.out_dir)
        if errors:
            self.log.warning("%d submits failed or timed out", errors)

    def finish(self) -> None:
        self._write()  # a no-op unless stopped before the trace ended: keep what was measured
        self.done.set()
        with self.lock:
            rolefiles.write_client_meta(self.core, self.out_dir)
            written = self.core.closed and (self.out_dir / rolefiles.CLIENT_FILE).exists()
        self.journal.close()
        if written:
            self.journal.path.unlink()  # client.parquet and client_meta.json hold the same books
        if self.core.after_close:
            self.log.info("%d notices came after the drain (those queries are unfinished)", len(self.core.after_close))


def load_prompts(path: str | None, count: int) -> list[str]:
    """Prompt texts for real execution: the configured file, or numbered placeholder prompts."""
    if path:
        lines = Path(path).read_text(encoding="ascii", errors="ignore").splitlines()
        return lines or [""]
    return [f"a photo of object number {i}" for i in range(count)]


class _ClientService(pbg.ClientServicer):
    def __init__(self, client: ClientRole) -> None:
        self.c = client

    def Notify(self, request: pb.NoticeBatch, context: grpc.ServicerContext) -> pb.Empty:
        for n in request.notices:
            self.c.notice(int(n.id), n.dropped, n.drop_reason, n.path)
        return pb.Empty()

    def Progress(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.ProgressReply:
        return self.c.progress()
