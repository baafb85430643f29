"""Limit mechanisms: body size (ASGI middleware) and per-caller token buckets charged by cost.

What each request costs and which limits apply is :mod:`.policy`, the layer every adapter calls."""

from __future__ import annotations

import json
import math
import threading
import time
from typing import Any

from ..errors import XmodalError

Scope = dict[str, Any]


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; a request takes its cost in tokens (Turner's token bucket, 1986)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self, cost: float = 1.0) -> float:
        """0 when ``cost`` tokens were taken, else the seconds until they are available. A cost above the burst
        takes the whole burst (it could never be paid otherwise)."""
        cost = min(cost, self.burst)
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate


class RateLimited(XmodalError):
    """A caller out of tokens: the REST answer is 429 with ``Retry-After``, the MCP answer a tool error."""

    def __init__(self, retry_after: int, caller: str) -> None:
        super().__init__(f"rate limit exceeded for {caller}: retry after {retry_after} s")
        self.retry_after = retry_after


class RateLimiter:
    """One bucket per caller label; old idle buckets are dropped so memory stays bounded."""

    def __init__(self, rate: float, burst: int, max_callers: int = 10_000) -> None:
        self.rate, self.burst, self.max_callers = rate, burst, max_callers
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def check(self, caller: str, rate: float | None = None, burst: int | None = None, cost: float = 1.0) -> int:
        """0 if ``cost`` tokens were taken, else the whole seconds to put in ``Retry-After``."""
        with self._lock:
            bucket = self._buckets.get(caller)
            if bucket is None:
                if len(self._buckets) >= self.max_callers:
                    self._buckets.clear()  # crude but bounded; full buckets are the default anyway
                bucket = self._buckets[caller] = TokenBucket(rate or self.rate, burst or self.burst)
            wait = bucket.take(cost)
        return 0 if wait == 0 else max(1, math.ceil(wait))

    def spend(self, caller: str, cost: float, rate: float | None = None, burst: int | None = None) -> None:
        """Take ``cost`` tokens from ``caller``'s bucket or raise :class:`RateLimited`."""
        wait = self.check(caller, rate, burst, cost)
        if wait:
            raise RateLimited(wait, caller)


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse bodies over ``limit`` bytes with 413, from Content-Length or while streaming."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        body = json.dumps(
            {"error": f"request body larger than {self.limit:,} bytes", "field": "body", "fix": "send smaller requests"}
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
