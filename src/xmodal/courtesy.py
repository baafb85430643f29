"""Background work that steps aside for foreground work, at the points where the work calls :func:`step_aside`.

A server runs some work as *background* (an anonymous client's search: :mod:`xmodal.serve.admission`) and
some as *foreground* (a keyed client's search). Between its stages (the guards' checks, the query's encoding,
each strategy of the learned mode and its ranking, the hits' screening, the impression log) a search calls
:func:`step_aside`; on a background thread that call waits while foreground work runs, up to
:data:`MAX_WAIT_S` at each point, so the background search does not hold the interpreter lock, nor a core,
while a foreground search needs them (a thread waiting for the lock behind one that computes in Python waits
up to the switch interval, 5 ms, each time it wants it back, which a search does dozens of times). Work not
marked background passes every point at once; outside a server nothing is marked, and a point costs one
context-variable read.

A stage already started runs to its end: the points bound how long foreground work shares the machine with a
background search (to one stage of it), they do not preempt.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

#: the longest a background search waits at one point (then it goes on, so foreground work never starves it)
MAX_WAIT_S = 0.5


class Gate:
    """The count of foreground work running, and the wait of background work for it to reach zero."""

    def __init__(self, max_wait_s: float = MAX_WAIT_S) -> None:
        self.max_wait_s = max_wait_s
        self._cond = threading.Condition(threading.Lock())
        self._running = 0
        self.waits = 0  # points at which background work found foreground work running (for tests and metrics)

    @property
    def running(self) -> int:
        """Foreground work running now."""
        return self._running

    @contextmanager
    def foreground(self) -> Iterator[None]:
        """Count the work of this block as foreground (any thread or coroutine; blocks may overlap)."""
        with self._cond:
            self._running += 1
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                if self._running == 0:
                    self._cond.notify_all()

    @contextmanager
    def background(self) -> Iterator[None]:
        """Mark the work of this block (in this thread's context) as background: its :func:`step_aside` calls
        wait for this gate's foreground work."""
        token = _GATE.set(self)
        try:
            yield
        finally:
            _GATE.reset(token)

    def wait(self) -> bool:
        """Wait up to ``max_wait_s`` while foreground work runs; True when none runs (any more)."""
        with self._cond:
            if self._running == 0:
                return True
            self.waits += 1
            return self._cond.wait_for(lambda: self._running == 0, self.max_wait_s)


_GATE: ContextVar[Gate | None] = ContextVar("xmodal_background_gate", default=None)


def step_aside() -> None:
    """A point between stages of a search: background work waits here while foreground work runs (see the
    module doc); any other work goes on at once."""
    gate = _GATE.get()
    if gate is not None:
        gate.wait()
