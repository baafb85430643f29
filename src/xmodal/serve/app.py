"""The REST app: :func:`create_app` wires routes, limits, keys, metrics, logs, the page and MCP
around one :class:`~xmodal.Engine` (a thin adapter: the engine never knows it is served)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, MutableMapping
from contextlib import AsyncExitStack, asynccontextmanager
from importlib.resources import files
from importlib.util import find_spec
from typing import Any

from ..errors import ConfigError, MissingDependency, XmodalError

try:
    from fastapi import FastAPI, Request
    from fastapi.middleware.cors import CORSMiddleware
    from fastapi.openapi.utils import get_openapi
    from fastapi.responses import HTMLResponse, PlainTextResponse, Response
    from fastapi.staticfiles import StaticFiles
    from starlette.routing import Match, Route
except ImportError as exc:  # the server extra is not installed
    raise MissingDependency(exc.name or "fastapi", "server") from exc
if find_spec("python_multipart") is None and find_spec("multipart") is None:  # starlette parses uploads with it
    raise MissingDependency("python-multipart", "server")

from .._version import __version__
from ..engine import Engine
from ..guards.provenance.export import exporter
from ..ltr.extension import tune_if_due
from .auth import AuthError, KeyRing, check_index, presented_key
from .config import INDEX_NAME, ServeConfig, check_index_name
from .deps import ReadKey, Served, ServerState, served
from .errors import BodyLimit, error_response, internal_error, responses, tarpit
from .errors import install as install_errors
from .hosts import AllowedHosts, HostCheckMiddleware, allowed_hosts
from .indexes import IndexPrefixMiddleware, include_routes, prefix_tools, route_label
from .limits import RateLimited
from .logs import log_request, logger, new_request_id, request_id, setup_logging
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import Metrics
from .models import HealthResponse, ItemsRequest, SearchRequest
from .policy import Limits, current_caller
from .routes_backup import router as backup_router
from .routes_batch import router as batch_router
from .routes_collection import router as collection_router
from .routes_items import router as items_router
from .routes_reindex import router as reindex_router
from .routes_search import router as search_router
from .routes_tasks import router as tasks_router
from .thumbs import ThumbnailCache
from .writer import WriteQueue

STATIC = files("xmodal.serve") / "static"


#: The routers of one index, in the order they are tried (collection and batch before items: /items/delete and
#: /items/get are not item ids); served at the root and, for named indexes, under /indexes/{name}
#: (xmodal.serve.indexes).
ROUTERS = (search_router, collection_router, batch_router, items_router, backup_router, tasks_router, reindex_router)


def _start_tuning(engine: Engine) -> None:
    """The default mode's background self-tuning, if one is due (:func:`xmodal.ltr.extension.tune_if_due`); an
    index whose learned pipeline cannot open is served all the same (its searches say why)."""
    try:
        tune_if_due(engine)
    except XmodalError as exc:
        logger.warning("self-tuning not started for %s: %s", engine.path, exc)


def create_app(
    engine: Engine | None, config: ServeConfig | None = None, *, indexes: Mapping[str, Engine] | None = None
) -> FastAPI:
    """A FastAPI app serving ``engine`` at the root routes and each of ``indexes`` under
    ``/indexes/{name}/`` (either may be left out, not both). Closing the engines stays the caller's job; the
    app's shutdown drains the write queues first, so every accepted write is committed."""
    config = config or ServeConfig()
    keys = KeyRing(config)
    served = Served(config, keys, Limits(config, keys), Metrics())
    named = {check_index_name(name, "indexes"): each for name, each in (indexes or {}).items()}
    if engine is None and not named:
        raise ConfigError("nothing to serve: give an engine, named indexes, or both")
    _check_key_indexes(config, named)
    if engine is not None:
        served.default = _index_state(served, engine, None if not named else "")
    served.named = {name: _index_state(served, each, name) for name, each in named.items()}
    mcp_servers = _mcp_servers(served) if config.mcp else {}
    hosts = allowed_hosts(config)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for mcp_server, _state in mcp_servers.values():
                await stack.enter_async_context(mcp_server.session_manager.run())
            for state in served.states():
                _start_tuning(state.engine)
            try:
                yield
            finally:
                for state in served.states():
                    state.stopping = True
                    state.writer.close()
                served.limits.close()

    # No /docs or /redoc: FastAPI's pages load their scripts from a CDN; the spec is at /openapi.json.
    app = FastAPI(
        title="xmodal",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description="Multimodal search over xmodal indexes. Errors are ErrorBody objects.",
        responses=responses(421),  # HostCheckMiddleware can answer any route so
    )
    app.state.xmodal = served
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    install_errors(app)
    include_routes(app, ROUTERS, named=bool(named))
    _add_service_routes(app)
    for path, (mcp_server, state) in mcp_servers.items():
        _mount_mcp(app, mcp_server, state, hosts, path)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
        )
    if named:
        app.add_middleware(IndexPrefixMiddleware, names=named)
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    app.add_middleware(HostCheckMiddleware, allowed=hosts)
    app.add_middleware(RequestLogMiddleware, metrics=served.metrics, log=config.log_requests, served=served)
    if config.log_requests:
        setup_logging()
    return app


def _check_key_indexes(config: ServeConfig, named: Mapping[str, Engine]) -> None:
    """Refuse a key limited to an index this server does not serve (a typo would lock its holder out)."""
    for key in config.keys:
        unknown = sorted((key.indexes or frozenset()) - set(named))
        if unknown:
            served_names = ", ".join(named) or "none: it serves one index, at the root routes"
            raise ConfigError(
                f"API key {key.label} is limited to the index {unknown[0]!r}, which this server does not serve "
                f"(named indexes: {served_names}); fix its 'indexes' or serve that index with --index-name"
            )


def _index_state(served: Served, engine: Engine, name: str | None) -> ServerState:
    """One index's state: its own write queue and thumbnails, the server's keys, limits and metrics; its
    gauges labelled with ``index`` when the server has named indexes (``name`` "" for the root one)."""
    config, limits = served.config, served.limits
    marks = exporter(config.export_provenance)  # watermark + C2PA on exported images (None: off)
    writer = WriteQueue(config.write_queue)
    thumbs = ThumbnailCache(config.thumbnail_cache, run=limits.decode, exporter=marks)
    state = ServerState(engine, config, served.keys, limits, served.metrics, writer, thumbs)
    labels = None if name is None else {"index": name}
    # every read goes through state.current(): after a reindex switch the gauges follow the reopened engine
    served.metrics.gauge("xmodal_index_items", lambda: float(len(state.current())), labels)
    served.metrics.gauge("xmodal_write_queue_depth", lambda: float(writer.depth()), labels)
    served.metrics.counts(
        "xmodal_guard_decisions",
        "Guard decisions by category and action (allow, flag, block; quarantined_hit: a hit dropped).",
        ("category", "action"),
        lambda: state.current().guard_counts(),
        labels,
    )
    served.metrics.counts(
        "xmodal_encoder_usage",
        "What the index's remote encoder sent since it was opened (the server's start, or a reindex switch), by "
        "encoder and what (requests, texts, images, characters, retries).",
        ("encoder", "what"),
        lambda: _encoder_usage(state.current()),
        labels,
    )
    return state


def _encoder_usage(engine: Engine) -> dict[tuple[str, str], int]:
    """The counters of ``engine``'s encoder by (encoder name, what) when it keeps them (a remote backend's
    requests, texts, images, characters, retries); none for a local encoder."""
    usage = getattr(engine.encoder, "usage", None)
    if not callable(usage):
        return {}
    encoder = str(getattr(engine.encoder, "name", type(engine.encoder).__name__))
    return {(encoder, what): int(n) for what, n in usage().items()}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's spec plus the request bodies that routes parse themselves (JSON or multipart)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (SearchRequest, ItemsRequest):
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in body.pop("$defs", {}).items():
            components.setdefault(name, sub)
        components[model.__name__] = body
    kinds = dict.fromkeys(kind for state in served_by(app).states() for kind in state.engine.vector_kinds())
    _list_targets(schema, ["any", *kinds])
    app.openapi_schema = schema
    return schema


def served_by(app: FastAPI) -> Served:
    found: Served = app.state.xmodal
    return found


def _list_targets(node: Any, targets: list[str]) -> None:
    """Every ``target`` in the spec (JSON property, form field, query parameter) lists this index's kinds."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "target" and isinstance(value, dict) and value.get("type") == "string":
                value["enum"] = targets
            elif key == "parameters" and isinstance(value, list):
                for param in value:
                    if isinstance(param, dict) and param.get("name") == "target":
                        param.setdefault("schema", {})["enum"] = targets
            else:
                _list_targets(value, targets)
    elif isinstance(node, list):
        for value in node:
            _list_targets(value, targets)


def _mcp_servers(served: Served) -> dict[str, tuple[Any, ServerState]]:
    """An MCP server per index by its path: ``/mcp`` for the root index, ``/indexes/{name}/mcp`` for each named
    one (the same tools, over that index); none when the mcp package is missing."""
    try:
        from .mcp import build_mcp
    except ImportError:
        logger.warning("mcp is not installed: no /mcp endpoint (pip install 'xmodal[mcp]')")
        return {}
    out: dict[str, tuple[Any, ServerState]] = {}
    folder = served.limits.config.mcp_media_folder  # add_items reads files by path only in there
    if served.default is not None:
        default = served.default
        out["/mcp"] = (
            build_mcp(default.current, limits=served.limits, media_folder=folder, write=default.write_waiting),
            default,
        )
    for name, state in served.named.items():
        mcp_server = build_mcp(state.current, limits=served.limits, media_folder=folder, write=state.write_waiting)
        mcp_server.middleware.append(prefix_tools(name))
        out[f"/indexes/{name}/mcp"] = (mcp_server, state)
    return out


def _mount_mcp(app: FastAPI, mcp_server: Any, state: ServerState, hosts: AllowedHosts | None, path: str) -> None:
    """Add the MCP streamable-HTTP route at ``path``, behind the same read-key check and rate limit as the REST
    reads; the tools charge what a call costs beyond that to the caller :class:`KeyGuard` admitted.

    Stateless: each request is served on its own and no session outlives it (the tools keep no state
    between calls), so initializes cannot pile up sessions; answers are plain JSON, not event streams.
    The SDK's own Host/Origin check gets the same allowed hosts as :class:`HostCheckMiddleware`."""
    from mcp.server.transport_security import TransportSecuritySettings

    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    if hosts is not None:
        origins = [*hosts.origin_patterns(), *state.config.cors_origins]
        security = TransportSecuritySettings(allowed_hosts=hosts.header_patterns(), allowed_origins=origins)
    inner = mcp_server.streamable_http_app(
        streamable_http_path="/mcp", stateless_http=True, json_response=True, transport_security=security
    )
    mcp_server.middleware.append(_caller_of_request)
    for route in inner.routes:
        if getattr(route, "path", None) == "/mcp":
            # POST only: stateless, a GET would hold an event stream open with nothing to send, a DELETE
            # would end a session that does not exist (both get 405)
            name = path.split("/")[2] if path.startswith("/indexes/") else None
            guard = KeyGuard(route.app, state, name)
            app.router.routes.append(LabelledRoute(path, endpoint=guard, methods=["POST"]))


class LabelledRoute(Route):
    """A Starlette route that puts itself in ``scope["route"]`` as FastAPI's routes do, so metrics and
    logs label its requests with its path rather than ``unmatched``."""

    def matches(self, scope: MutableMapping[str, Any]) -> tuple[Match, MutableMapping[str, Any]]:
        match, child = super().matches(scope)
        if match != Match.NONE:
            child["route"] = self
        return match, child


class KeyGuard:
    """ASGI wrapper: the REST rules for /mcp. A caller without a read key (when reads are not open) is refused,
    and every request takes a token like a REST call: 401/403 or 429 with ``Retry-After``, as REST answers."""

    def __init__(self, app: Any, state: ServerState, index: str | None = None) -> None:
        self.app, self.state, self.index = app, state, index

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        client = scope["client"][0] if scope.get("client") else "unknown"
        try:
            presented = presented_key(headers.get("authorization"), headers.get("x-api-key"))
            principal = self.state.limits.admit(presented, "read", client)
            check_index(principal.key, self.index)  # a key limited to other indexes: 403 naming this one
            if principal.key is None:  # an anonymous agent waits at the door for its turn among running searches
                await self.state.limits.wait_turn(principal)
                self.state.limits.admission.check(client, running=True)
        except AuthError as exc:
            challenge = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            await error_response(exc.status, exc.message, "Authorization", headers=challenge)(scope, receive, send)
            return
        except RateLimited as exc:
            await tarpit(exc, self.state.config.refusal_delay)
            wait = str(exc.retry_after)
            refusal = error_response(429, str(exc), fix=f"retry after {wait} s", headers={"Retry-After": wait})
            await refusal(scope, receive, send)
            return
        scope.setdefault("state", {})[CALLER] = principal
        await self.app(scope, receive, send)


CALLER = "xmodal_principal"  # where KeyGuard leaves the admitted caller in the request's ASGI state


async def _caller_of_request(ctx: Any, call_next: Any) -> Any:
    """MCP server middleware: make the caller that :class:`KeyGuard` admitted for this HTTP request the one
    the tools charge (the tools run inside the SDK, so it is handed down in a context variable)."""
    request = getattr(ctx, "request", None)
    principal = (getattr(request, "scope", None) or {}).get("state", {}).get(CALLER)
    token = current_caller.set(principal)
    try:
        return await call_next(ctx)
    finally:
        current_caller.reset(token)


def _add_service_routes(app: FastAPI) -> None:
    @app.get("/health", response_model=HealthResponse, tags=["service"])
    def health(request: Request) -> HealthResponse:
        """Liveness and size (of every index served, together); needs no key."""
        states = served(request).states()
        return HealthResponse(
            status="stopping" if any(state.stopping for state in states) else "ok",
            items=sum(len(state.engine) for state in states),
            write_queue=sum(state.writer.depth() for state in states),
            version=__version__,
        )

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        tags=["service"],
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    )
    def metrics(request: Request, _: ReadKey) -> Response:
        """Request counts and latency histograms by route, errors, index size, write queue depth, and the process's
        CPU, memory and open files (``prometheus_client``)."""
        return Response(served(request).metrics.render(), media_type=METRICS_CONTENT_TYPE)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(page_html())

    @app.get("/indexes/{index_name}/", response_class=HTMLResponse, include_in_schema=False)
    @app.get("/indexes/{index_name}", response_class=HTMLResponse, include_in_schema=False)
    def index_page(request: Request, index_name: str) -> HTMLResponse:
        """The search page of a named index (its calls go to /indexes/{name}/...). An unknown name is a 404
        naming the known ones where anyone may list them (open reads); else the page is served for any
        well-formed name (it holds no data; its calls answer 401, 403 or 404)."""
        found = served(request)
        known = index_name in found.named
        if not known and (found.config.open_reads or not INDEX_NAME.fullmatch(index_name)):
            found.state(index_name)  # the 404 naming the known indexes (or none: a one-index server)
        return HTMLResponse(page_html(index_name))


def page_html(index: str | None = None) -> str:
    """The search page; for a named index (``index``, a checked name), calling that index's routes."""
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    if index is None:
        return html
    base = f'<meta name="xmodal-base" content="/indexes/{index}">'
    return html.replace("<head>", "<head>\n" + base, 1).replace(
        "<title>xmodal search", f"<title>{index}: xmodal search", 1
    )


class RequestLogMiddleware:
    """Outermost layer: request id (``X-Request-ID``, on every answer, a 500 from an unexpected exception
    included), latency and status into metrics and a JSON log line."""

    def __init__(self, app: Any, metrics: Metrics, log: bool, served: Served) -> None:
        self.app, self.metrics, self.log, self.served = app, metrics, log, served

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        rid = new_request_id(given)
        token = request_id.set(rid)
        start, status, started = time.perf_counter(), 500, False

        async def send_with_id(message: Any) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:  # answered here, inside the request id, not by Starlette's outer 500 page
            if started:
                raise
            await internal_error(exc)(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None)
            route = route_label(route, scope, self.served) if route else "unmatched"
            self.metrics.observe(scope["method"], route, status, elapsed)
            if self.log:
                caller = (scope.get("state") or {}).get("caller", "-")
                log_request(scope["method"], route, status, elapsed, caller)
            request_id.reset(token)


__all__ = ["ServerState", "create_app"]
