"""One writer thread behind a queue: writes run one at a time, readers never wait for each other.

A write is acknowledged (its future resolves) only after the engine has committed it, and
:meth:`WriteQueue.close` drains every queued write before it returns, so a graceful shutdown
loses nothing that was acknowledged - nor anything that was accepted into the queue.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

_STOP = object()


class QueueFull(Exception):
    """The write queue is full: the client should retry later (503)."""


class WriteQueue:
    """Runs submitted callables in order on a single thread."""

    def __init__(self, maxsize: int = 1024, name: str = "xmodal-writer") -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._closed = False
        self._gate = threading.Lock()  # no write may slip in behind the stop marker
        self._thread.start()

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        """Queue ``fn`` without blocking (callers may be on the event loop); its future holds the
        result (or exception) once it has run. Raises :class:`QueueFull` when the queue is full."""
        future: Future[Any] = Future()
        with self._gate:
            if self._closed:
                raise QueueFull("the server is shutting down")
            try:
                self._queue.put_nowait((fn, future))
            except queue.Full:
                raise QueueFull(f"{self._queue.maxsize} writes are waiting") from None
        return future

    def depth(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        while True:
            task = self._queue.get()
            if task is _STOP:
                return
            fn, future = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting request
                future.set_exception(exc)

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting writes, finish the queued ones, stop the thread."""
        with self._gate:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_STOP)  # after every accepted write; blocks only while the writer drains
        self._thread.join(timeout)
