"""``xmodal serve`` (REST API, web page and MCP over HTTP) and ``xmodal mcp`` (MCP over stdio)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from ..errors import MissingDependency
from .common import open_engine


def register(subparsers: Any) -> None:
    """Add ``serve`` and ``mcp`` to the ``xmodal`` parser (``--index DIR`` is a global option)."""
    serve = subparsers.add_parser(
        "serve",
        help="serve the REST API, the search page (/) and MCP (/mcp) over HTTP",
        description="Serve the index over HTTP until interrupted (SIGINT/SIGTERM drain the writes first).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    serve.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a Host name clients use besides localhost, 127.0.0.1, ::1 and the --host address (repeatable; "
        "other names get 421). With --host 0.0.0.0 and none given, any Host is accepted; '*' accepts any",
    )
    serve.add_argument("--config", metavar="FILE", help="server config (.toml or .json): API keys, limits, CORS")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(handler=run)

    mcp = subparsers.add_parser("mcp", help="serve the MCP tools (search, get_item, similar_items) over stdio")
    mcp.set_defaults(handler=run_mcp)


def run(args: argparse.Namespace) -> int:
    """Open the index, serve it with uvicorn, close it cleanly after the server stops."""
    try:
        import uvicorn

        from ..serve import ServeConfig, create_app
        from ..serve.config import check_hosts
    except ImportError as exc:
        raise MissingDependency(exc.name or "uvicorn", "server") from exc
    from dataclasses import replace

    config = ServeConfig.load(args.config)
    hosts = config.allowed_hosts + check_hosts(args.allowed_host, "--allowed-host")
    config = replace(config, host=args.host, allowed_hosts=hosts)
    engine = open_engine(args, create=True)
    # uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown; a recording handler keeps the
    # process alive long enough to checkpoint and close the engine, then exit 0.
    stops: list[int] = []
    previous = {sig: signal.signal(sig, lambda s, _f: stops.append(s)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        app = create_app(engine, config)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=args.host,
                port=args.port,
                log_level=args.log_level,
                access_log=False,
                timeout_graceful_shutdown=30,
            )
        )
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        engine.close()
    return 0


def run_mcp(args: argparse.Namespace) -> int:
    """MCP over stdio; local image paths are accepted (the agent runs on this machine)."""
    from ..serve.mcp import build_mcp

    engine = open_engine(args)
    try:
        asyncio.run(build_mcp(engine, allow_paths=True).run_stdio_async())
    finally:
        engine.close()
        sys.stdout.flush()
    return 0
