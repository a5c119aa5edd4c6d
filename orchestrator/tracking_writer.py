"""MLflow logging in a second process, made ready while a single run goes.

Importing MLflow and opening its SQLite store (the schema check reads every migration script)
took over a second of a few-second virtual run, on one core while the other idled (py-spy, 2026-12-06;
docs/benchmarks.md). A single run starts this writer first thing (orchestrator/__main__.py): the
writer imports MLflow at once and opens the store when `prepare` names it, alongside the run;
the run then hands it its record (`tracking.RunRecord`) and waits for the answer, so the
command still ends only once its MLflow run is written, and says so or says why not.

Without a writer (a sweep's jobs, `python -m orchestrator.log`, a test calling the experiment),
or when it died, the record is logged in this process, as before: a writer can cost time, never
a record. The writer ignores Ctrl-C (the run decides what an interrupt means); stopped while it
writes, it ends the MLflow run KILLED, as this process would.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
from multiprocessing.connection import Connection
from typing import Any

from orchestrator import tracking

log = logging.getLogger("orchestrator")
Answer = tuple[str | None, str | None]  # (MLflow run id, why logging failed)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _serve(conn: Connection) -> None:
    """The writer process: import MLflow, then open stores and write records as told, until the
    run closes its end of the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        tracking.load()
        while True:
            try:
                kind, value = conn.recv()
            except (EOFError, OSError):
                # The run closed its end (or is gone): every record it asked for is written and
                # committed. Leave without the interpreter's teardown of MLflow's modules (about
                # 0.5 s that the run would wait for, and that writes nothing).
                os._exit(0)
            if kind == "open":
                with contextlib.suppress(Exception):  # writing to it meets the same error and reports it
                    tracking.client(value)
            elif kind == "write":
                conn.send(tracking.write_record(value))
    except KeyboardInterrupt:
        return
    except Exception:  # MLflow would not import, or the run went away mid-answer: the run's
        os._exit(1)  # own process logs the record (and says why it cannot), not a traceback here


class Writer:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of this one's state
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child,), name="mlflow-writer", daemon=True)
        # Started with Ctrl-C ignored, which a new interpreter keeps: an interrupt in its first
        # moments, before _serve runs, would otherwise print its traceback on the console.
        main = threading.current_thread() is threading.main_thread()
        before = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            self.process.start()
        finally:
            if main:
                signal.signal(signal.SIGINT, before)
        child.close()
        self.used = False  # told to open a store or write: it may hold MLflow state

    def _send(self, message: tuple[str, Any]) -> bool:
        try:
            self.conn.send(message)
            return True
        except (OSError, ValueError):  # the writer is gone, or this end was closed
            return False

    def prepare(self, uri: str) -> None:
        self.used = True
        self._send(("open", uri))

    def write(self, record: tracking.RunRecord) -> Answer | None:
        """The writer's answer; None when it is gone (then the caller logs the record itself)."""
        self.used = True
        if not self._send(("write", record)):
            return None
        try:
            answer: Answer = self.conn.recv()
            return answer
        except (EOFError, OSError):
            return None
        except KeyboardInterrupt:
            self.stop(interrupt=True)
            raise

    def stop(self, interrupt: bool = False, wait_s: float = 5.0) -> None:
        """Close the pipe (an idle writer then exits); `interrupt` stops one that is writing
        (it ends its MLflow run KILLED); one never used (the config was refused, say) holds
        nothing and is killed at once. Nothing of it is left running."""
        if not self.used and self.process.is_alive():
            self.process.kill()
        elif interrupt and self.process.is_alive():
            self.process.terminate()
        self.conn.close()
        self.process.join(wait_s)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(1.0)


_held: list[Writer] = []  # this process's writer, if it has one


def start() -> None:
    """Start this process's writer (a single run, once its config checked out)."""
    if not _held:
        try:
            _held.append(Writer())
        except OSError as err:  # no process to spare: log in this one
            log.debug("No MLflow writer process (%s): logging in this process", err)


def prepare(uri: str) -> None:
    """Open `uri`'s store in the writer, if there is one, while the run goes on."""
    for writer in _held:
        writer.prepare(uri)


def write(record: tracking.RunRecord) -> Answer:
    """Log `record`: through the writer when there is one, else (or when it died) here."""
    answer = _held[0].write(record) if _held else None
    if answer is None:
        if _held:
            code = _held[0].process.exitcode
            log.warning("The MLflow writer process ended (exit code %s): logging in this one", code)
        answer = tracking.write_record(record)
    return answer


def stop() -> None:
    """Stop the writer (idle by the time a run ends); no-op without one."""
    while _held:
        _held.pop().stop()
