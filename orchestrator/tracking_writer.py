"""MLflow logging in a second process, made ready while a single run goes.

Importing MLflow and opening its SQLite store (the schema check reads every migration script)
took over a second of a few-second virtual run, on one core while the other idled (py-spy, 2026-12-06;
docs/benchmarks.md). A single run starts this writer first thing (orchestrator/__main__.py): the
writer imports MLflow at once and opens the store when `prepare` names it, alongside the run;
the run then hands it its record (`tracking.RunRecord`) and waits for the answer, so the
command still ends only once its MLflow run is written, and says so or says why not.

A sweep starts one too, as it starts: the writer imports MLflow and builds or opens the store
while the jobs are checked, then makes the sweep's parent run and, at the end, its comparison
(`call`: orchestrator/sweep.py), so the sweep's own process never imports MLflow. With the
basic launcher (jobs one after another in this process) each job hands its record over
without waiting (`submit`) and the next job starts while the writer logs it; the sweep
collects the answers as jobs end (`finished`) and waits for the last before it compares the
runs, so an MLflow failure still fails its job, said at the next job's end and in the sweep's
list of failed jobs.

Without a writer (a job of a parallel launcher, `python -m orchestrator.log`, a test calling the
experiment), or when it died, the record is logged in this process, as before: a writer can
cost time, never a record. The writer ignores Ctrl-C (the run decides what an interrupt means); stopped while it
writes, it ends the MLflow run KILLED, as this process would.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from orchestrator import tracking
from orchestrator.startup import importing

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
        with importing():
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
                # writing to it meets the same error and reports it
                with contextlib.suppress(Exception), importing():  # the store's modules
                    tracking.client(value)
            elif kind == "write":
                conn.send(tracking.write_record(value))
            elif kind == "call":
                conn.send(_called(*value))
    except KeyboardInterrupt:
        return
    except Exception:  # MLflow would not import, or the run went away mid-answer: the run's
        os._exit(1)  # own process logs the record (and says why it cannot), not a traceback here


def _called(fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[bool, Any]:
    """(True, fn's result) or (False, the exception it raised, or one naming it if that one
    cannot travel); what it printed is flushed first, so it shows before the caller's next line."""
    try:
        result: tuple[bool, Any] = (True, fn(*args))
    except Exception as err:
        try:
            pickle.dumps(err)
            result = (False, err)
        except Exception:
            result = (False, RuntimeError(f"{type(err).__name__}: {err}"))
    sys.stdout.flush()
    sys.stderr.flush()
    return result


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
        self.pending: collections.deque[tracking.RunRecord] = collections.deque()  # sent, not yet answered
        self.answered: list[tuple[tracking.RunRecord, Answer | None]] = []  # read while waiting for a call

    def _send(self, message: tuple[str, Any]) -> bool:
        try:
            self.conn.send(message)
            return True
        except (OSError, ValueError):  # the writer is gone, or this end was closed
            return False

    def prepare(self, uri: str) -> None:
        self.used = True
        self._send(("open", uri))

    def submit(self, record: tracking.RunRecord) -> bool:
        """Hand `record` over without waiting; False when the writer is gone."""
        self.used = True
        if not self._send(("write", record)):
            return False
        self.pending.append(record)
        return True

    def answers(self, block: bool) -> list[tuple[tracking.RunRecord, Answer | None]]:
        """The submitted records answered so far (every one, when `block`), in the order they
        were submitted; a record the writer will never answer (it died) comes with None."""
        done, self.answered = self.answered, []
        while self.pending:
            try:
                if not block and not self.conn.poll():
                    break
                answer: Answer = self.conn.recv()
            except (EOFError, OSError):
                done += [(record, None) for record in self.pending]
                self.pending.clear()
                break
            except KeyboardInterrupt:
                self.stop(interrupt=True)
                raise
            done.append((self.pending.popleft(), answer))
        return done

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[bool, Any] | None:
        """`_called(fn, args)` in the writer; None when it is gone."""
        self.answered += self.answers(block=True)  # the answers before this one, kept for `answers`
        self.used = True
        if not self._send(("call", (fn, args))):
            return None
        try:
            answer: tuple[bool, Any] = self.conn.recv()
            return answer
        except (EOFError, OSError):
            return None
        except KeyboardInterrupt:
            self.stop(interrupt=True)
            raise

    def write(self, record: tracking.RunRecord) -> Answer | None:
        """The writer's answer; None when it is gone (then the caller logs the record itself)."""
        if not self.submit(record):
            return None
        *earlier, (_, answer) = self.answers(block=True)
        self.answered += earlier  # submitted before: kept for `answers`
        return answer

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
    """Start this process's writer (a single run, a sweep)."""
    if not _held:
        try:
            _held.append(Writer())
        except OSError as err:  # no process to spare: log in this one
            log.debug("No MLflow writer process (%s): logging in this process", err)


def prepare(uri: str) -> None:
    """Open `uri`'s store in the writer, if there is one, while the run goes on."""
    for writer in _held:
        writer.prepare(uri)


def _here(record: tracking.RunRecord) -> Answer:
    """Log `record` in this process: the writer ended before it answered."""
    code = _held[0].process.exitcode if _held else None
    log.warning("The MLflow writer process ended (exit code %s): logging in this one", code)
    return tracking.write_record(record)


def write(record: tracking.RunRecord) -> Answer:
    """Log `record` and wait: through the writer when there is one, else (or when it died) here."""
    if not _held:
        return tracking.write_record(record)
    answer = _held[0].write(record)
    return answer if answer is not None else _here(record)


def call(fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)` run in the writer, where MLflow is imported and its store open (a sweep's
    parent run, its comparison), and its result; it raises what fn raised. `fn` is a
    module-level function (it travels by name); what it prints shows before this returns.
    Without a writer, or when it died, fn runs here."""
    answer = _held[0].call(fn, args) if _held else None
    if answer is None:
        return fn(*args)
    ok, value = answer
    if not ok:
        raise value
    return value


def submit(record: tracking.RunRecord) -> bool:
    """Hand `record` to the writer without waiting for it to be logged (`finished` gives the
    answer); False when there is no writer (log it with `write`)."""
    return bool(_held) and _held[0].submit(record)


def finished(block: bool = False) -> list[tuple[tracking.RunRecord, Answer]]:
    """The submitted records logged since the last call, with their answers (all of them, when
    `block`). One the writer could not answer is logged here: no record is lost."""
    done = [pair for writer in _held for pair in writer.answers(block)]
    return [(record, answer if answer is not None else _here(record)) for record, answer in done]


def stop() -> None:
    """Stop the writer, once every record handed to it is logged; no-op without one."""
    for record, (_, why) in finished(block=True):
        if why is not None:
            log.error("MLflow logging failed for %s: %s", record.tags.get("run_dir", record.name), why)
    while _held:
        _held.pop().stop()
