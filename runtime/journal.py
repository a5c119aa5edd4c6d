"""A role's write-ahead journal: an append-only JSON-lines file of what its books learn, so that a
role killed mid-run (kill -9, a crash, a lost host) leaves its records behind.

Every `add` goes to the operating system at once (one `write` of whole lines on an O_APPEND
file): a killed process loses nothing it journaled; a thread `fsync`s every `sync_s`, so a
host that crashes loses at most that much. A role journals an event before it acts on it (the
sink before it notifies the client, the client before it sends), so what any other role saw
is always in some journal. `read` takes a file whose last line was cut by a crash.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any


class Journal:
    def __init__(self, path: Path, sync_s: float = 2.0) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._dirty = False
        self._syncer = threading.Thread(target=self._sync_every, args=(sync_s,), name="journal-sync", daemon=True)
        self._syncer.start()

    def add(self, *events: Any) -> None:
        """Append each event (a JSON-able value) as one line."""
        if not events:
            return
        data = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events).encode()
        with self._lock:
            if self._closed.is_set():
                return
            view = memoryview(data)
            while view:  # a regular file takes it all in one write; loop for the rule's sake
                view = view[os.write(self._fd, view) :]
            self._dirty = True

    def _sync_every(self, sync_s: float) -> None:
        while not self._closed.wait(sync_s):
            self._sync()

    def _sync(self) -> None:
        with self._lock:
            if self._dirty and not self._closed.is_set():
                os.fsync(self._fd)
                self._dirty = False

    def close(self) -> None:
        self._sync()
        with self._lock:
            if not self._closed.is_set():
                self._closed.set()
                os.close(self._fd)


def read(path: Path) -> list[Any]:
    """The events of a journal, in order; a last line cut short by a crash is left out."""
    events = []
    with path.open("rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                break  # the write a crash interrupted
            events.append(json.loads(line))
    return events
