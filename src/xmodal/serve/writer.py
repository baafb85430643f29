"""One writer thread behind a queue: writes run one at a time, readers never wait for each other.

A write is acknowledged (its future resolves) only after the engine has committed it, and
:meth:`WriteQueue.close` drains every queued write before it returns, so a graceful shutdown
loses nothing that was acknowledged - nor anything that was accepted into the queue.

Writes submitted with a *group* (e.g. ``"add"``) that are queued back to back run as one call of the
group's combiner (group commit: one transaction and one fsync for many small requests); each
request still gets its own result (or its own error: a combiner returns :class:`Failed` for it), and the
order of writes is kept.
"""

from __future__ import annotations

import collections
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from ..errors import XmodalError

_STOP = object()
MAX_GROUP = 64


@dataclass(frozen=True, slots=True)
class Failed:
    """A combiner's result for one write of a group that failed: that request gets ``error``, the others
    their own results."""

    error: BaseException


class QueueFull(XmodalError):
    """The write queue is full (or the server is stopping): the client should retry later (REST 503; an MCP tool
    error with this message)."""


@dataclass(slots=True)
class _Task:
    future: Future[Any]
    fn: Callable[[], Any] | None = None
    group: str | None = None
    payload: Any = None
    combine: Callable[[Sequence[Any]], list[Any]] | None = None


class WriteQueue:
    """Runs submitted writes in order on a single thread."""

    def __init__(self, maxsize: int = 1024, name: str = "xmodal-writer") -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize)
        self._pending: collections.deque[Any] = collections.deque()  # taken from the queue, not run yet
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._closed = False
        self._gate = threading.Lock()  # no write may slip in behind the stop marker
        self._thread.start()

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        """Queue ``fn`` without blocking (callers may be on the event loop); its future holds the
        result (or exception) once it has run. Raises :class:`QueueFull` when the queue is full."""
        return self._put(_Task(Future(), fn=fn))

    def submit_grouped(self, group: str, payload: Any, combine: Callable[[Sequence[Any]], list[Any]]) -> Future[Any]:
        """Queue ``payload``; consecutive payloads of one group run as ``combine(payloads)``, which
        returns one result per payload, in order (a :class:`Failed` one: that request's error)."""
        return self._put(_Task(Future(), group=group, payload=payload, combine=combine))

    def _put(self, task: _Task) -> Future[Any]:
        with self._gate:
            if self._closed:
                raise QueueFull("the server is shutting down")
            try:
                self._queue.put_nowait(task)
            except queue.Full:
                raise QueueFull(f"{self._queue.maxsize} writes are waiting") from None
        return task.future

    def depth(self) -> int:
        return self._queue.qsize() + len(self._pending)

    def _next(self) -> Any:
        return self._pending.popleft() if self._pending else self._queue.get()

    def _run(self) -> None:
        while True:
            task = self._next()
            if task is _STOP:
                return
            tasks = [task] if task.group is None else self._group_behind(task)
            live = [t for t in tasks if t.future.set_running_or_notify_cancel()]
            if live:
                _settle(live)

    def _group_behind(self, task: _Task) -> list[_Task]:
        """``task`` and the writes of its group queued right behind it (order kept: stop at the first other)."""
        tasks = [task]
        while len(tasks) < MAX_GROUP:
            try:
                follower = self._queue.get_nowait()
            except queue.Empty:
                break
            if follower is _STOP or follower.group != task.group:
                self._pending.append(follower)
                break
            tasks.append(follower)
        return tasks

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting writes, finish the queued ones, stop the thread."""
        with self._gate:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_STOP)  # after every accepted write; blocks only while the writer drains
        self._thread.join(timeout)


def _settle(tasks: list[_Task]) -> None:
    """Run the task (or the group's combiner), then hand each task its own result, or all the exception."""
    try:
        if tasks[0].fn is not None:
            results = [tasks[0].fn()]
        else:
            combine = tasks[0].combine
            assert combine is not None
            results = combine([t.payload for t in tasks])
    except BaseException as exc:  # noqa: BLE001 - handed to the waiting requests
        for t in tasks:
            t.future.set_exception(exc)
        return
    for t, result in zip(tasks, results, strict=True):
        if isinstance(result, Failed):
            t.future.set_exception(result.error)
        else:
            t.future.set_result(result)
