"""Bounds on the work of anonymous callers: searches in flight per client address, and the CPU they take.

The token bucket (:mod:`.limits`) counts requests and prices a search by what it asks for
(:func:`.policy.search_cost`), but a price fixed in advance cannot match the work: one token bought
4–20 ms of CPU on a 2-core machine, so the default rate let one address take one to two CPU-seconds
per second, and sixteen connections from it kept sixteen worker threads busy at once. Keyed clients
have the limits the operator gave their keys; an anonymous client address is also bounded here:

- **In flight**: at most ``anonymous_inflight`` of its searches (and similar-item requests) run at once;
  one more waits up to :data:`TURN_WAIT_S` for its turn (as a coroutine, holding no thread), then is refused.
- **CPU**: it has an account of CPU seconds, filled at ``anonymous_cpu`` seconds per second (a share of
  one core) up to ``anonymous_cpu_burst``. The CPU a search takes on the thread that runs it (measured
  with ``time.thread_time``: the encoder, index and ranker run there) is charged after it ran, so an
  account can go into debt; while it is in debt, the address's requests are refused. Its query image is
  decoded in the media worker process (:mod:`.media_worker`), whose CPU for it is charged the same way, and
  a query sound's child processes (``ffprobe``, ``ffmpeg``) are charged by estimate (:mod:`.policy`).

- **All together**: anonymous addresses as a whole get ``anonymous_total_cpu`` CPU-seconds per second
  and ``anonymous_total_inflight`` searches at once, so many addresses (a botnet) cannot take more than
  one address could multiply; by default the shared share is one address's (``anonymous_cpu``), so sixteen
  addresses together take no more CPU than one; keyed clients keep the rest of the machine.
- **Behind keyed searches**: an anonymous search runs as background work (:mod:`xmodal.courtesy`): between
  its stages it waits while a keyed client's work runs (:meth:`Admission.foreground`: REST and MCP searches,
  batches, similar items, whatever a keyed caller runs through :meth:`.policy.Limits.work`), up to
  :data:`~xmodal.courtesy.MAX_WAIT_S` at each, so a keyed search shares the interpreter lock and the cores
  with at most one stage of it.

Refusals are :class:`~.limits.RateLimited` (REST 429 with ``Retry-After``, an MCP tool error).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TypeVar

from ..courtesy import Gate, step_aside
from .config import ServeConfig
from .limits import RateLimited

T = TypeVar("T")

#: the name of the account and in-flight count shared by every anonymous address
ALL_ANONYMOUS = "*"
#: how long a search waits for its turn among the running ones before it is refused, and how often it looks
TURN_WAIT_S = 2.0
TURN_POLL_S = 0.005


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
    """In-flight searches and CPU accounts of anonymous client addresses, each and all together (thread-safe:
    work threads charge)."""

    def __init__(self, config: ServeConfig, max_clients: int = 10_000) -> None:
        self.limits = {"one": config.anonymous_inflight, ALL_ANONYMOUS: config.anonymous_total_inflight}
        self.rates = {"one": config.anonymous_cpu, ALL_ANONYMOUS: config.anonymous_total_cpu}
        self.cpu_burst = config.anonymous_cpu_burst
        self.max_clients = max_clients
        self._lock = threading.Lock()
        self._inflight: dict[str, int] = {}
        self._accounts: dict[str, CpuAccount] = {}
        self.gate = Gate()  # anonymous searches step aside for keyed ones

    def foreground(self, keyed: bool) -> AbstractContextManager[None]:
        """A block of a keyed caller's search (``keyed``): anonymous searches wait at their next stage while it
        runs. Nothing for an anonymous caller (whose search is background work: :meth:`run`)."""
        return self.gate.foreground() if keyed else nullcontext()

    def _kind(self, client: str) -> str:
        return ALL_ANONYMOUS if client == ALL_ANONYMOUS else "one"

    def _who(self, client: str) -> str:
        return "anonymous clients together" if client == ALL_ANONYMOUS else f"anon:{client}"

    def check(self, client: str, *, running: bool = False) -> None:
        """Refuse ``client`` while its CPU account, or that of all anonymous clients, is in debt, and with
        ``running`` while it (or they all) have as many searches running as allowed (:class:`RateLimited`)."""
        for who in (client, ALL_ANONYMOUS):
            rate = self.rates[self._kind(who)]
            with self._lock:
                account = self._accounts.get(who)
                balance = account.refill() if account is not None else self.cpu_burst
                full = self._full(who)
            if running and full is not None:
                raise full
            if rate > 0 and balance < 0:
                wait = max(1, math.ceil(-balance / rate))
                raise RateLimited(wait, f"{self._who(who)} (a share of {rate:g} CPU-seconds per second is spent)")

    def busy(self, client: str) -> bool:
        """Whether ``client``, or all anonymous clients together, have as many searches running as allowed."""
        with self._lock:
            return any(self._full(who) is not None for who in (client, ALL_ANONYMOUS))

    async def wait_turn(self, client: str, timeout: float = TURN_WAIT_S) -> None:
        """Wait (without holding a thread) up to ``timeout`` seconds while ``client``'s searches, or all anonymous
        ones, are at their bound: a page that sends a search while its previous one still runs is answered
        a moment later rather than refused. Past ``timeout``, :meth:`run` refuses as it would have."""
        deadline = time.monotonic() + timeout
        while self.busy(client) and time.monotonic() < deadline:
            await asyncio.sleep(TURN_POLL_S)

    def balance(self, client: str) -> float:
        """CPU seconds left to ``client`` (or :data:`ALL_ANONYMOUS`) now (the burst when it has spent none)."""
        with self._lock:
            account = self._accounts.get(client)
            return account.refill() if account is not None else self.cpu_burst

    def charge(self, client: str, cpu_seconds: float) -> None:
        """Charge ``cpu_seconds`` to ``client``'s account and to that of all anonymous clients (either may go
        into debt)."""
        if cpu_seconds <= 0:
            return
        with self._lock:
            for who in (client, ALL_ANONYMOUS):
                rate = self.rates[self._kind(who)]
                if rate <= 0:
                    continue
                account = self._accounts.get(who)
                if account is None:
                    if len(self._accounts) >= self.max_clients:  # bounded: forget the accounts that are full again
                        self._accounts = {c: a for c, a in self._accounts.items() if a.refill() < a.burst}
                    account = self._accounts[who] = CpuAccount(rate, self.cpu_burst)
                account.refill()
                account.balance -= cpu_seconds

    def run(self, client: str, fn: Callable[[], T]) -> T:
        """``fn()`` as one of ``client``'s searches in flight, its thread's CPU charged to its account (checked
        again here: searches admitted together before the first of them ran an account into debt)."""
        self.check(client)
        with self._lock:
            for who in (client, ALL_ANONYMOUS):
                full = self._full(who)
                if full is not None:
                    if who != client:
                        self._release(client)
                    raise full
                self._inflight[who] = self._inflight.get(who, 0) + 1
        start = time.thread_time()
        try:
            with self.gate.background():  # steps aside for keyed searches between its stages, and before it starts
                step_aside()
                return fn()
        finally:
            self.charge(client, time.thread_time() - start)
            with self._lock:
                self._release(client)
                self._release(ALL_ANONYMOUS)

    def _full(self, who: str) -> RateLimited | None:
        """The refusal when ``who`` has as many searches running as it may, else None (lock held)."""
        running, limit = self._inflight.get(who, 0), self.limits[self._kind(who)]
        if running < limit:
            return None
        return RateLimited(1, f"{self._who(who)} ({running} searches running; at most {limit})")

    def _release(self, who: str) -> None:
        left = self._inflight.pop(who, 1) - 1
        if left > 0:
            self._inflight[who] = left
