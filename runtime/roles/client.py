"""Client role: replays the trace against the load balancer and measures every query's latency.

Each query is sent at its arrival time (trace time), without waiting for earlier ones; its
latency is the time from sending to the sink's completion notice, both on this process's
clock. After the last arrival the client waits up to drain_slo_factor x SLO for the
remaining notices, writes one row per query, and reports done.
"""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from pathlib import Path
from typing import Any

import grpc

from runtime.protos import servelab_pb2 as pb
from runtime.protos import servelab_pb2_grpc as pbg
from runtime.roles.base import Role, Servicer
from runtime.spec import RunSpec
from runtime.tables import write_rows
from traces.diffserve import ArrivalTrace, read_artifact

CLIENT_FILE = "client.parquet"
CLIENT_META_FILE = "client_meta.json"
RATE_WINDOW_S = 5.0


class ClientRole(Role):
    role = "client"

    def __init__(self, spec: RunSpec, name: str, out_dir: Path, spec_dir: Path) -> None:
        super().__init__(spec, name, out_dir)
        cascade = self.config.cascade
        # SpotServe has no SLO: a request counts until the trace's end, then it is unfinished.
        self.slo_s = cascade.slo_s if cascade is not None else math.inf
        self.trace: ArrivalTrace = read_artifact(spec_dir / spec.trace_file, name=self.config.trace.name)
        real = self.config.execution.mode == "real" and cascade is not None
        self.prompts = load_prompts(cascade.prompts_path, cascade.num_prompts) if real and cascade else None
        self.output_len = self.config.model.output_len if self.config.model is not None else 0
        self.lock = threading.Lock()
        n = len(self.trace)
        self.sent_at: list[float | None] = [None] * n
        self.notice_at: list[float | None] = [None] * n
        self.dropped = [False] * n
        self.reason = [""] * n
        self.path = [""] * n
        self.submit_error = [""] * n
        self.repeats = 0  # the same notice again (a retried delivery): harmless
        self.conflicts = 0  # a different notice for a query already decided: a real double count
        self.unknown = 0
        self.after_close: list[int] = []  # notices that came after the drain: those queries stay unfinished
        self.sent = self.noticed = self.violations = 0
        self.recent: deque[float] = deque()
        self.closed = False  # set under the lock when the records are taken: later notices are late
        self.done = threading.Event()
        self._lb = pbg.LoadBalancerStub(self.channel_to(spec.only("load_balancer").name))
        self._replayer = threading.Thread(target=self._replay, name="replay", daemon=True)

    def servicers(self) -> list[Servicer]:
        return [(pbg.add_ClientServicer_to_server, _ClientService(self))]

    def on_start(self) -> None:
        self._replayer.start()

    # ------------------------------------------------------------------ sending
    def _replay(self) -> None:
        arrivals, prompts = self.trace.arrival_s, self.trace.prompt_index
        for i in range(len(self.trace)):
            if self.stopping.is_set():
                break
            self.clock.sleep_until(float(arrivals[i]))
            q = pb.Query(id=i, prompt_index=int(prompts[i]), output_len=self.output_len)
            if self.prompts is not None:
                q.prompt = self.prompts[int(prompts[i]) % len(self.prompts)]
            now = self.clock.now()
            q.sent_at = now
            with self.lock:
                self.sent_at[i] = now
                self.sent += 1
                self.recent.append(now)
            future = self._lb.Submit.future(q, timeout=self.rpc_timeout)
            future.add_done_callback(lambda f, i=i: self._submitted(i, f))
        last = float(arrivals[-1]) if len(self.trace) else 0.0
        if math.isinf(self.slo_s):
            drain_until = max(last, self.config.trace.duration_s)
        else:
            drain_until = last + self.config.run.drain_slo_factor * self.slo_s
        while self.clock.now() < drain_until and not self.stopping.is_set():
            with self.lock:
                if self.noticed >= self.sent:
                    break
            self.clock.sleep(min(0.5, max(0.01, drain_until - self.clock.now())))
        self._write()
        self.done.set()
        self.log.info("Trace replayed <sent=%d noticed=%d violations=%d>", self.sent, self.noticed, self.violations)

    def _submitted(self, i: int, future: grpc.Future) -> None:
        try:
            reply = future.result()
        except grpc.RpcError as err:
            # The load balancer may still have taken it: a notice can still come. Without one,
            # the query counts as dropped (submit_failed) at the end.
            with self.lock:
                self.submit_error[i] = err.code().name
            return
        if not reply.accepted:
            self._notice(i, dropped=True, reason=reply.reason, path="")

    # ------------------------------------------------------------------ receiving
    def _notice(self, i: int, dropped: bool, reason: str, path: str) -> None:
        now = self.clock.now()
        with self.lock:
            if self.closed:
                self.after_close.append(i)
                return
            if not 0 <= i < len(self.notice_at) or self.sent_at[i] is None:
                self.unknown += 1
                return
            if self.notice_at[i] is not None:
                if (self.dropped[i], self.path[i]) == (dropped, path):
                    self.repeats += 1
                else:
                    self.conflicts += 1
                return
            self.notice_at[i] = now
            self.dropped[i], self.reason[i], self.path[i] = dropped, reason, path
            self.noticed += 1
            sent = self.sent_at[i]
            assert sent is not None
            if dropped or now - sent > self.slo_s:
                self.violations += 1

    def progress(self) -> pb.ProgressReply:
        now = self.clock.now()
        with self.lock:
            while self.recent and self.recent[0] < now - RATE_WINDOW_S:
                self.recent.popleft()
            return pb.ProgressReply(
                total=len(self.trace),
                sent=self.sent,
                completed=self.noticed,
                violations=self.violations,
                trace_time=now,
                rate=len(self.recent) / RATE_WINDOW_S,
                done=self.done.is_set(),
            )

    def _write(self) -> None:
        """Close the books (later notices are late) and write one row per query, once."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self._write_meta()
            rows: list[dict[str, Any]] = [
                {
                    "query_id": i,
                    "prompt_index": int(self.trace.prompt_index[i]),
                    "arrival_s": float(self.trace.arrival_s[i]),
                    "sent_at": self.sent_at[i],
                    "notice_at": self.notice_at[i],
                    "notice_dropped": self.dropped[i],
                    "notice_reason": self.reason[i],
                    "notice_path": self.path[i],
                    "submit_error": self.submit_error[i],
                }
                for i in range(len(self.trace))
            ]
            errors = sum(1 for e in self.submit_error if e)
        if errors:
            self.log.warning("%d submits failed or timed out", errors)
        write_rows(rows, self.out_dir / CLIENT_FILE)

    def _write_meta(self) -> None:
        meta = {
            "conflicts": self.conflicts,
            "repeats": self.repeats,
            "unknown": self.unknown,
            "after_close": sorted(set(self.after_close)),
        }
        (self.out_dir / CLIENT_META_FILE).write_text(json.dumps(meta), encoding="utf-8")

    def finish(self) -> None:
        self._write()  # a no-op unless stopped before the trace ended: keep what was measured
        self.done.set()
        with self.lock:
            self._write_meta()
        if self.after_close:
            self.log.info("%d notices came after the drain (those queries are unfinished)", len(self.after_close))


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
            self.c._notice(int(n.id), n.dropped, n.drop_reason, n.path)
        return pb.Empty()

    def Progress(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.ProgressReply:
        return self.c.progress()
