"""Shared state of one app and the FastAPI dependencies that check keys and rate limits.

An app serves one index (:class:`ServerState`) or several: :class:`Served` holds the default index (the
routes at the root) and the named ones (the same routes under ``/indexes/{name}/``, see
:mod:`xmodal.serve.indexes`); keys, limits, metrics and config are the server's, shared by every index.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ..engine import Engine
from ..ingest.prepare import AddReport
from ..records import Item
from .auth import KeyRing, Principal, check_index
from .batching import add_many, log_many
from .config import ServeConfig
from .errors import ApiError
from .limits import RateLimiter
from .metrics import Metrics
from .policy import Limits
from .thumbs import ThumbnailCache
from .writer import WriteQueue

T = TypeVar("T")


@dataclass(slots=True)
class ServerState:
    """What every route needs: the engine, the config and the server's helpers.

    ``engine`` is the one place that says which engine serves this index: a reindex switch replaces it with
    the reopened engine (:mod:`.routes_reindex`), so everything that serves the index reads it at the time
    of each call (routes through :func:`server`, MCP tools and metrics through :meth:`current`), never a copy.
    """

    engine: Engine
    config: ServeConfig
    keys: KeyRing
    limits: Limits
    metrics: Metrics
    writer: WriteQueue
    thumbs: ThumbnailCache
    stopping: bool = False

    def current(self) -> Engine:
        """The engine serving this index now (the reopened one after a reindex switch)."""
        return self.engine

    @property
    def limiter(self) -> RateLimiter:
        """The token buckets (of :attr:`limits`)."""
        return self.limits.rates

    async def write(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the single writer thread; returns once it has committed."""
        return await asyncio.wrap_future(self.writer.submit(fn))

    def write_waiting(self, fn: Callable[[], T]) -> T:
        """:meth:`write` for code off the event loop (MCP tools over HTTP): ``fn`` on the writer thread, this
        thread waiting until it has committed (a full queue: :class:`~.writer.QueueFull`)."""
        result: T = self.writer.submit(fn).result()
        return result

    async def log(self, fn: Callable[[], str]) -> str:
        """Log a search's impression with ``fn`` (``Engine.log_impression``: the query id) on the writer
        thread, group-committed with the other impressions queued with it; returns once committed."""
        query_id: str = await asyncio.wrap_future(self.submit_log(fn))
        return query_id

    def submit_log(self, fn: Callable[[], str]) -> Future[Any]:
        """Queue ``fn`` as :meth:`log` does, now (impressions queued one after another commit together); the
        future holds the query id once committed."""
        feedback = getattr(self.engine, "feedback_log", None)
        if feedback is None:  # an engine without a feedback log of its own: the call as it is
            return self.writer.submit(fn)
        return self.writer.submit_grouped("impression", fn, lambda calls: log_many(feedback, calls))

    async def add(self, items: list[Item]) -> AddReport:
        """Add items on the writer thread, group-committed with other requests' adds queued with them."""
        future = self.writer.submit_grouped("add", items, lambda batches: add_many(self.engine, batches))
        report: AddReport = await asyncio.wrap_future(future)
        return report


_bearer = HTTPBearer(auto_error=False, description="an API key: Authorization: Bearer KEY")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key (alternative header)")


#: The path parameter that names an index in the routes under ``/indexes/{index_name}/``.
INDEX_PARAM = "index_name"


@dataclass(slots=True)
class Served:
    """The indexes one app serves: the ``default`` one at the root routes (None: only named ones), and the
    ``named`` ones under ``/indexes/{name}/``; and the parts the server shares among them."""

    config: ServeConfig
    keys: KeyRing
    limits: Limits
    metrics: Metrics
    default: ServerState | None = None
    named: dict[str, ServerState] = field(default_factory=dict)

    def state(self, name: str | None) -> ServerState:
        """The index a request addresses: ``name`` (from its path), else the default one; a clear 404 when
        there is no such index."""
        if name is None:
            if self.default is None:
                raise ApiError(
                    404,
                    "this server has no default index: it serves named indexes only",
                    "index",
                    f"add /indexes/NAME before the path, NAME one of {', '.join(self.named)} (GET /indexes)",
                )
            return self.default
        try:
            return self.named[name]
        except KeyError:
            raise ApiError(
                404,
                f"no index named {name!r} on this server",
                "index",
                f"use one of {', '.join(self.named) or '(none)'} in /indexes/NAME/... (GET /indexes lists them)",
            ) from None

    def states(self) -> list[ServerState]:
        """Every index served, each once (the default first)."""
        every = [self.default] if self.default is not None else []
        return every + [state for state in self.named.values() if state is not self.default]


def served(request: Request) -> Served:
    """The app's indexes and shared parts."""
    found: Served = request.app.state.xmodal
    return found


def server(request: Request) -> ServerState:
    """The index a request addresses (see :meth:`Served.state`); a caller whose key is limited to other
    indexes gets a 403 naming it (:func:`~xmodal.serve.auth.check_index`), before its name is looked up."""
    name = request.path_params.get(INDEX_PARAM)
    principal = getattr(request.state, "principal", None)
    if isinstance(principal, Principal):
        check_index(principal.key, name)
    return served(request).state(name)


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller must hold ``scope`` and be within its rate limit."""

    async def check(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        header: Annotated[str | None, Depends(_header)],
    ) -> Principal:
        state = served(request)  # keys and limits are the server's: checked before the index is looked up
        presented = bearer.credentials if bearer is not None else header
        if presented is None and "authorization" in request.headers:
            presented = request.headers["authorization"]  # not "Bearer KEY": fails as an unknown key
        client = request.client.host if request.client else "unknown"
        principal = state.limits.authorize(presented, scope, client)  # AuthError (or RateLimited) when refused
        request.state.caller = principal.label
        request.state.principal = principal  # server() checks the indexes a key may use
        state.limits.arrive(principal)  # RateLimited when out of tokens (or of CPU, when anonymous)
        return principal

    return check


ReadKey = Annotated[Principal, Depends(require("read"))]
WriteKey = Annotated[Principal, Depends(require("write"))]
