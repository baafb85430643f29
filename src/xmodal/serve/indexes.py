"""Several named indexes behind one server: every route of an index again under ``/indexes/{name}/``.

``xmodal serve --index-name docs=DIR1 --index-name pics=DIR2`` (or ``indexes = {docs = "DIR1"}`` in the
server config) serves each index at ``/indexes/docs/search``, ``/indexes/pics/items/{id}`` and so on: the
very routers of a single index, included a second time under the prefix (:func:`include_routes`), so a
route added to them later is there too. An index given with ``--index`` is served at the root routes as
before; ``GET /indexes`` lists them all. The routes find their index through
:func:`xmodal.serve.deps.server`, which reads the ``index_name`` path parameter; an unknown name is a 404
naming the known ones (after the key check: names are not shown to callers without a read key).

API keys, rate and CPU limits are the server's, shared by its indexes (they guard the one machine); a key
may be limited to some named indexes (``indexes = ["docs"]`` in its config entry, ``KEY:read@docs`` in
``XMODAL_API_KEYS``): any other index, the root one included, answers it 403 naming the index, over REST and
MCP alike, and ``GET /indexes`` lists only its own. Each named index has its search page at
``/indexes/{name}/`` (the page at ``/``, calling that index's routes);
metrics label each index's gauges with ``index`` and each route with its index's name; every index has its
own write queue (writes to two indexes do not wait for each other), thumbnail cache and MCP endpoint
(``/indexes/{name}/mcp``, the same tools over that index).
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from ..view import PATH_PREFIX
from .deps import INDEX_PARAM, ReadKey, Served, served
from .errors import ApiError, responses

PREFIX = "/indexes/{" + INDEX_PARAM + "}"

router = APIRouter(tags=["service"])


def index_param(
    index_name: Annotated[str, PathParam(description="the name of one of the server's indexes (GET /indexes)")],
) -> None:
    """Declares the ``index_name`` path parameter of the prefixed routes (in the spec); the routes resolve
    it through :func:`~xmodal.serve.deps.server`, after the key check."""


def include_routes(app: FastAPI, routers: Iterable[APIRouter], *, named: bool) -> None:
    """Each router at the root, and again under ``/indexes/{name}`` when the app serves named indexes; with
    none, a path under ``/indexes/`` answers a 404 that says so."""
    routers = list(routers)
    for each in routers:
        app.include_router(each)
    if named:
        for each in routers:
            app.include_router(each, prefix=PREFIX, dependencies=[Depends(index_param)])
    else:
        app.add_api_route(
            PREFIX + "/{rest:path}",
            _one_index,
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            include_in_schema=False,
        )
    app.include_router(router)


async def _one_index(request: Request) -> None:
    raise ApiError(
        404,
        f"no index named {request.path_params.get(INDEX_PARAM)!r}: this server serves one index, at the root routes",
        "index",
        "drop /indexes/NAME from the path (e.g. POST /search)",
    )


class IndexOut(BaseModel):
    """One index of the server."""

    name: str | None = Field(description="its name in /indexes/{name}/...; null for the index at the root routes")
    url: str = Field(description="the path its routes start with ('' for the root routes)")
    items: int


class IndexesResponse(BaseModel):
    indexes: list[IndexOut]


@router.get("/indexes", response_model=IndexesResponse, responses=responses(401, 403, 429))
def list_indexes(request: Request, caller: ReadKey) -> IndexesResponse:
    """The indexes this server serves that the caller may use: the one at the root routes (if any) and each
    named one (a key limited to some indexes sees those)."""
    found, only = served(request), caller.key.indexes if caller.key is not None else None
    out = []
    if found.default is not None and only is None:
        out.append(IndexOut(name=None, url="", items=len(found.default.engine)))
    out += [
        IndexOut(name=name, url=f"/indexes/{name}", items=len(s.engine))
        for name, s in found.named.items()
        if only is None or name in only
    ]
    return IndexesResponse(indexes=out)


def route_label(path: str, scope: MutableMapping[str, Any], found: Served) -> str:
    """A route's label in metrics and logs. A prefixed request is served by the single index's route (its
    path without the prefix), so the label puts the prefix back: the index's name when it is known, else
    ``{index_name}`` (a caller cannot mint labels)."""
    if not str(scope.get("path", "")).startswith("/indexes/") or path.startswith("/indexes"):
        return path
    name = (scope.get("path_params") or {}).get(INDEX_PARAM)
    return f"/indexes/{name if name in found.named else '{' + INDEX_PARAM + '}'}{path}"


class IndexPrefixMiddleware:
    """ASGI: a request under ``/indexes/{name}/`` of a known index sees :data:`~xmodal.view.PATH_PREFIX` set
    to ``/indexes/{name}``, so the item paths in its answers (``media_url``...) are that index's."""

    def __init__(self, app: Any, names: Iterable[str]) -> None:
        self.app, self.names = app, frozenset(names)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        parts = str(scope.get("path", "")).split("/", 3)
        if scope["type"] != "http" or len(parts) < 3 or parts[1] != "indexes" or parts[2] not in self.names:
            await self.app(scope, receive, send)
            return
        token = PATH_PREFIX.set(f"/indexes/{parts[2]}")
        try:
            await self.app(scope, receive, send)
        finally:
            PATH_PREFIX.reset(token)


def prefix_tools(name: str) -> Any:
    """An MCP server middleware: the tool calls of index ``name``'s MCP endpoint see its path prefix (the
    SDK runs tools outside the HTTP request's context)."""

    async def middleware(ctx: Any, call_next: Any) -> Any:
        token = PATH_PREFIX.set(f"/indexes/{name}")
        try:
            return await call_next(ctx)
        finally:
            PATH_PREFIX.reset(token)

    return middleware
