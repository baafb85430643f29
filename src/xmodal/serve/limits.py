"""Request limits: body size (ASGI middleware), image pixels, and per-caller token-bucket rates."""

from __future__ import annotations

import json
import math
import threading
import time
from typing import Any

from PIL import Image

from ..errors import ImageError
from ..imaging import decode_image

Scope = dict[str, Any]


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; each request takes one (Turner's token bucket, 1986)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> float:
        """0 when a token was taken, else the seconds until one is available."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """One bucket per caller label; old idle buckets are dropped so memory stays bounded."""

    def __init__(self, rate: float, burst: int, max_callers: int = 10_000) -> None:
        self.rate, self.burst, self.max_callers = rate, burst, max_callers
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def check(self, caller: str, rate: float | None = None, burst: int | None = None) -> int:
        """0 if allowed, else the whole seconds to put in ``Retry-After``."""
        with self._lock:
            bucket = self._buckets.get(caller)
            if bucket is None:
                if len(self._buckets) >= self.max_callers:
                    self._buckets.clear()  # crude but bounded; full buckets are the default anyway
                bucket = self._buckets[caller] = TokenBucket(rate or self.rate, burst or self.burst)
            wait = bucket.take()
        return 0 if wait == 0 else max(1, math.ceil(wait))


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


def check_image(data: bytes, max_pixels: int, *, item: str | None = None) -> Image.Image:
    """Decode an uploaded image under the server's pixel limit (format, truncation and bomb checks too)."""
    if not data:
        raise ImageError("image", "the upload is empty", "attach a JPEG, PNG, WebP, GIF, BMP or TIFF file", item=item)
    return decode_image(data, item=item, max_pixels=max_pixels)
