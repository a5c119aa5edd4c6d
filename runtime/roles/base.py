"""What every role process shares: the spec, the run's identity (runtime.identity), the clock,
the gRPC server with the RoleControl service (Health, Start, Halt, Stop), signal handling, and
the order of a role's life:

    construct (read spec, build state) -> serve (bind, announce) -> Start(epoch) -> ... ->
    [Halt: no new work] -> Stop or SIGTERM -> finish (flush the role's files) -> exit 0
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import grpc

from runtime import identity
from runtime.clock import WallClock
from runtime.logs import init_logger
from runtime.protos import servelab_pb2 as pb
from runtime.protos import servelab_pb2_grpc as pbg
from runtime.rpc import channel, server
from runtime.schema import Config
from runtime.spec import RunSpec

Servicer = tuple[Callable[[Any, grpc.Server], None], Any]
C = TypeVar("C", bound=Config)


class Role(Generic[C]):
    role: ClassVar[str]
    schema: type[C]  # the config a role reads: its system's (runtime/schema/<name>.py), or the shared part

    def __init__(self, spec: RunSpec, name: str, out_dir: Path) -> None:
        self.spec = spec
        self.name = name
        self.me = spec.role(name)
        self.config: C = spec.config_as(self.schema)
        self.out_dir = out_dir
        self.identity = identity.read(spec.directory / identity.IDENTITY_FILE)
        self.clock = WallClock(self.config.time_scale)
        self.log = init_logger(f"{self.role}.{name}")
        self.rpc_timeout = self.config.run.rpc_timeout_s
        self.stopping = threading.Event()
        self.started = threading.Event()
        self.died: str | None = None  # set when a thread of the role's own work died: it exits 1
        self._channels: dict[str, grpc.Channel] = {}

    # ------------------------------------------------------------------ for subclasses
    def servicers(self) -> list[Servicer]:
        return []

    def after_bind(self) -> None:
        """Runs once the server listens (e.g. register with the controller)."""

    def ready(self) -> bool:
        return True

    def on_start(self) -> None:
        """Runs when the orchestrator starts the run (the clock's epoch is set)."""

    def halt(self) -> None:
        """Start no new work (the orchestrator's first step of a teardown); keep serving."""

    def finish(self) -> None:
        """Runs once at the end: flush the role's records."""

    # ------------------------------------------------------------------ helpers
    def work_thread(self, target: Callable[..., Any], name: str, *args: Any) -> threading.Thread:
        """A thread of the role's own work (sending, planning, batching). If it dies of an
        exception, the role stops: it flushes its files and exits 1, so that no half-alive
        process goes on answering health checks (the orchestrator sees the exit at once)."""

        def run() -> None:
            try:
                target(*args)
            except BaseException as err:
                if self.stopping.is_set():
                    return
                self.log.exception("The %s thread died: the role stops", name)
                self.died = f"its {name} thread died: {type(err).__name__}: {err}"
                self.stopping.set()

        return threading.Thread(target=run, name=name, daemon=True)

    def channel_to(self, name: str) -> grpc.Channel:
        """A channel to the role `name`; roles that share a process share its channel."""
        address = self.spec.role(name).address
        if address not in self._channels:
            self._channels[address] = channel(address, self.identity)
        return self._channels[address]

    def register_with_controller(self) -> None:
        """Register with the controller, retrying until the start-up deadline: many workers
        start at once on a busy host. NOT_FOUND (the controller does not know this name) is final."""
        controller = pbg.ControllerStub(self.channel_to(self.spec.only("controller").name))
        deadline = time.monotonic() + self.config.run.ready_timeout_s
        while True:
            try:
                controller.Register(pb.RegisterRequest(name=self.name, role=self.role), timeout=self.rpc_timeout)
                return
            except grpc.RpcError as err:
                if time.monotonic() > deadline or err.code() is grpc.StatusCode.NOT_FOUND:
                    raise
                self.log.warning("Registration failed, retrying <code=%s>", err.code())
                time.sleep(0.5)

    # ------------------------------------------------------------------ life
    def serve(self) -> int:
        srv = server(self.me.bind, self.identity)
        pbg.add_RoleControlServicer_to_server(_Control(self), srv)
        for add, obj in self.servicers():
            add(obj, srv)
        srv.start()
        self.log.info("Listening <bind=%s>", self.me.bind)
        # The handler only sets a flag: setting the Event from a signal handler could deadlock
        # with this thread waiting on the same Event's lock.
        signalled: list[int] = []
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda signum, _frame: signalled.append(signum))
        self.after_bind()
        while not (signalled or self.stopping.is_set()):
            time.sleep(0.1)
        self.stopping.set()
        self.log.info("Stopping: flushing records")
        try:
            self.finish()
        finally:
            srv.stop(grace=0.5).wait(2.0)
            for ch in self._channels.values():
                ch.close()
        if self.died is not None:
            self.log.error("Stopped because %s", self.died)
            return 1
        self.log.info("Stopped")
        return 0


class _Control(pbg.RoleControlServicer):
    def __init__(self, role: Role) -> None:
        self.r = role

    def Health(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.HealthReply:
        return pb.HealthReply(role=self.r.role, name=self.r.name, ready=self.r.ready(), run_id=self.r.spec.run_id)

    def Start(self, request: pb.StartRequest, context: grpc.ServicerContext) -> pb.Empty:
        if not self.r.started.is_set():
            self.r.clock.start(request.epoch)
            self.r.on_start()
            self.r.started.set()
        return pb.Empty()

    def Halt(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.Empty:
        self.r.log.info("Halt requested: no new work")
        self.r.halt()
        return pb.Empty()

    def Stop(self, request: pb.StopRequest, context: grpc.ServicerContext) -> pb.Empty:
        self.r.log.info("Stop requested <reason=%s>", request.reason)
        self.r.stopping.set()
        return pb.Empty()
