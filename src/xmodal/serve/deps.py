"""Shared state of one app and the FastAPI dependencies that check keys and rate limits."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ..engine import Engine
from ..ingest.prepare import AddReport
from ..records import Item
from .auth import KeyRing, Principal
from .batching import add_many
from .config import ServeConfig
from .limits import RateLimiter
from .metrics import Metrics
from .policy import Limits
from .thumbs import ThumbnailCache
from .writer import WriteQueue


@dataclass(slots=True)
class ServerState:
    """What every route needs: the engine, the config and the server's helpers."""

    engine: Engine
    config: ServeConfig
    keys: KeyRing
    limits: Limits
    metrics: Metrics
    writer: WriteQueue
    thumbs: ThumbnailCache
    stopping: bool = False

    @property
    def limiter(self) -> RateLimiter:
        """The token buckets (of :attr:`limits`)."""
        return self.limits.rates

    async def write(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the single writer thread; returns once it has committed."""
        return await asyncio.wrap_future(self.writer.submit(fn))

    async def add(self, items: list[Item]) -> AddReport:
        """Add items on the writer thread, group-committed with other requests' adds queued with them."""
        engine = self.engine
        future = self.writer.submit_grouped("add", items, lambda batches: add_many(engine, batches))
        report: AddReport = await asyncio.wrap_future(future)
        return report


_bearer = HTTPBearer(auto_error=False, description="an API key: Authorization: Bearer KEY")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key (alternative header)")


def server(request: Request) -> ServerState:
    state: ServerState = request.app.state.xmodal
    return state


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller must hold ``scope`` and be within its rate limit."""

    async def check(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        header: Annotated[str | None, Depends(_header)],
    ) -> Principal:
        state = server(request)
        presented = bearer.credentials if bearer is not None else header
        if presented is None and "authorization" in request.headers:
            presented = request.headers["authorization"]  # not "Bearer KEY": fails as an unknown key
        client = request.client.host if request.client else "unknown"
        principal = state.limits.authorize(presented, scope, client)  # AuthError (or RateLimited) when refused
        request.state.caller = principal.label
        state.limits.arrive(principal)  # RateLimited when out of tokens (or of CPU, when anonymous)
        return principal

    return check


ReadKey = Annotated[Principal, Depends(require("read"))]
WriteKey = Annotated[Principal, Depends(require("write"))]
