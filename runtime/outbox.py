"""At-least-once delivery to one peer: a thread that batches what the role hands it and sends
it in order, retrying a failed call until it succeeds or the role closes the outbox.

Receivers are idempotent (the sink and the client ignore a repeat of what they already
have), so a call that timed out after the peer had taken it costs nothing. What is still
undelivered when the outbox closes is counted and logged, never dropped silently.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

import grpc

T = TypeVar("T")

RETRY_S = (0.05, 0.1, 0.2, 0.5, 1.0)  # back-off between retries of one batch


class Outbox(Generic[T]):
    def __init__(self, name: str, send: Callable[[list[T]], None], log: logging.Logger, max_batch: int = 256) -> None:
        self.name = name
        self._send = send
        self._log = log
        self._max_batch = max_batch
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self.sent = 0
        self.retries = 0
        self._in_flight = 0
        self._thread = threading.Thread(target=self._run, name=f"outbox-{name}", daemon=True)
        self._thread.start()

    def put(self, items: Iterable[T]) -> None:
        with self._cond:
            self._items.extend(items)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._closing:
                    self._cond.wait()
                if not self._items:
                    return
                batch = [self._items.popleft() for _ in range(min(self._max_batch, len(self._items)))]
                self._in_flight = len(batch)
            attempt = 0
            while True:
                try:
                    self._send(batch)
                    break
                except grpc.RpcError as err:
                    if self._closing and attempt >= len(RETRY_S):
                        with self._cond:
                            self._items.extendleft(reversed(batch))
                            self._in_flight = 0
                        return
                    self.retries += 1
                    if attempt == 0:
                        self._log.warning(
                            "Send to %s failed, retrying <n=%d code=%s>", self.name, len(batch), err.code()
                        )
                    time.sleep(RETRY_S[min(attempt, len(RETRY_S) - 1)])
                    attempt += 1
            with self._cond:
                self.sent += len(batch)
                self._in_flight = 0

    def close(self, timeout: float) -> int:
        """Deliver what is queued (up to `timeout` seconds); returns how many items were not delivered."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        with self._cond:
            left = len(self._items) + self._in_flight
        if left or self._thread.is_alive():
            self._log.error("Outbox to %s closed with %d items undelivered", self.name, left)
        return left
