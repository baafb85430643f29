"""Bounds on the work of anonymous callers: searches in flight per client address, and the CPU they take.

The token bucket (:mod:`.limits`) counts requests and prices a search by what it asks for
(:func:`.policy.search_cost`), but a price fixed in advance cannot match the work: one token bought
4–20 ms of CPU on a 2-core machine, so the default rate let one address take one to two CPU-seconds
per second, and sixteen connections from it kept sixteen worker threads busy at once. Keyed clients
have the limits the operator gave their keys; an anonymous client address is also bounded here:

- **In flight**: at most ``anonymous_inflight`` of its searches (and similar-item requests) run at once;
  one more is refused at once rather than queued behind them.
- **CPU**: it has an account of CPU seconds, filled at ``anonymous_cpu`` seconds per second (a share of
  one core) up to ``anonymous_cpu_burst``. The CPU a search takes on the thread that runs it (measured
  with ``time.thread_time``: the encoder, index, ranker and image decode all run there) is charged after
  it ran, so an account can go into debt; while it is in debt, the address's requests are refused.

Refusals are :class:`~.limits.RateLimited` (REST 429 with ``Retry-After``, an MCP tool error).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from .config import ServeConfig
from .limits import RateLimited

T = TypeVar("T")


class CpuAccount:
    """CPU seconds one address may spend: ``rate`` per second up to ``burst``; charges may go below zero."""

    __slots__ = ("balance", "burst", "rate", "stamp")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.balance = burst
        self.stamp = time.monotonic()

    def refill(self) -> float:
        now = time.monotonic()
        self.balance = min(self.burst, self.balance + (now - self.stamp) * self.rate)
        self.stamp = now
        return self.balance


class Admission:
    """In-flight work and CPU accounts of anonymous client addresses (thread-safe: work threads charge)."""

    def __init__(self, config: ServeConfig, max_clients: int = 10_000) -> None:
        self.inflight_limit = config.anonymous_inflight
        self.cpu_rate, self.cpu_burst = config.anonymous_cpu, config.anonymous_cpu_burst
        self.max_clients = max_clients
        self._lock = threading.Lock()
        self._inflight: dict[str, int] = {}
        self._accounts: dict[str, CpuAccount] = {}

    def check(self, client: str, *, running: bool = False) -> None:
        """Refuse ``client`` while its CPU account is in debt, and with ``running`` while it has as many
        searches running as it may (:class:`RateLimited`)."""
        with self._lock:
            account = self._accounts.get(client)
            balance = account.refill() if account is not None else self.cpu_burst
            busy = self._inflight.get(client, 0)
        if running and busy >= self.inflight_limit:
            raise RateLimited(1, f"anon:{client} ({busy} searches running; at most {self.inflight_limit})")
        if self.cpu_rate > 0 and balance < 0:
            wait = max(1, math.ceil(-balance / self.cpu_rate))
            raise RateLimited(wait, f"anon:{client} (its share of {self.cpu_rate:g} CPU-seconds per second is spent)")

    def balance(self, client: str) -> float:
        """CPU seconds left to ``client`` now (the burst when it has spent none)."""
        with self._lock:
            account = self._accounts.get(client)
            return account.refill() if account is not None else self.cpu_burst

    def charge(self, client: str, cpu_seconds: float) -> None:
        """Charge ``cpu_seconds`` to ``client``'s account (it may go into debt)."""
        if self.cpu_rate <= 0 or cpu_seconds <= 0:
            return
        with self._lock:
            account = self._accounts.get(client)
            if account is None:
                if len(self._accounts) >= self.max_clients:  # bounded: forget the accounts that are full again
                    self._accounts = {c: a for c, a in self._accounts.items() if a.refill() < a.burst}
                account = self._accounts[client] = CpuAccount(self.cpu_rate, self.cpu_burst)
            account.refill()
            account.balance -= cpu_seconds

    def run(self, client: str, fn: Callable[[], T]) -> T:
        """``fn()`` as one of ``client``'s searches in flight, its thread's CPU charged to its account (checked
        again here: searches admitted together before the first of them ran the account into debt)."""
        self.check(client)
        with self._lock:
            running = self._inflight.get(client, 0)
            if running >= self.inflight_limit:
                raise RateLimited(1, f"anon:{client} ({running} searches running; at most {self.inflight_limit})")
            self._inflight[client] = running + 1
        start = time.thread_time()
        try:
            return fn()
        finally:
            self.charge(client, time.thread_time() - start)
            with self._lock:
                left = self._inflight.pop(client, 1) - 1
                if left > 0:
                    self._inflight[client] = left
