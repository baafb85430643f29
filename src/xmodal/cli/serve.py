"""``xmodal serve`` (REST API, web page and MCP over HTTP) and ``xmodal mcp`` (MCP over stdio)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engine import Engine
from ..errors import MissingDependency
from .common import UsageError, open_engine

if TYPE_CHECKING:  # the server's modules need the "server" extra: imported when a command runs
    from ..serve.config import EncoderChoice, ServeConfig


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
    serve.add_argument(
        "--index-name",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also serve the index in DIR under /indexes/NAME/ (repeatable; GET /indexes lists them). With "
        "--index too, that index keeps the root routes (/search, /items...)",
    )
    serve.add_argument("--config", metavar="FILE", help="server config (.toml or .json): API keys, limits, CORS")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(handler=run)

    mcp = subparsers.add_parser("mcp", help="serve the MCP tools (search, get_item, similar_items) over stdio")
    mcp.add_argument(
        "--index-name",
        metavar="NAME[=DIR]",
        help="serve the named index NAME: its folder from the [indexes] table of --config (or DIR); the item "
        "paths in answers are those of /indexes/NAME/ on `xmodal serve`",
    )
    mcp.add_argument(
        "--config",
        metavar="FILE",
        help="server config (.toml or .json): the [indexes] that name NAME, and the encoder and encoder_options "
        "the index is opened with, as `xmodal serve --config` opens it",
    )
    mcp.add_argument(
        "--media-folder",
        metavar="DIR",
        help="the folder add_items may read files from by path (paths elsewhere are refused; without it, files "
        "come as base64 only)",
    )
    mcp.set_defaults(handler=run_mcp)


def run(args: argparse.Namespace) -> int:
    """Open the index (and the named ones), serve them with uvicorn, close them cleanly after the server stops."""
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
    named = named_indexes(config.indexes, args.index_name, args.index)
    with contextlib.ExitStack() as opened:  # every engine opened is closed (checkpointed) after the server stops
        engine = opened.enter_context(open_root(args, config)) if args.index or not named else None
        indexes = {name: opened.enter_context(open_named(args, config, name, folder)) for name, folder in named}
        app = create_app(engine, config, indexes=indexes)
        # uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown; a recording handler keeps the
        # process alive long enough to checkpoint and close the engines, then exit 0.
        stops: list[int] = []
        previous = {sig: signal.signal(sig, lambda s, _f: stops.append(s)) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            server = uvicorn.Server(
                uvicorn.Config(
                    app,
                    host=args.host,
                    port=args.port,
                    log_level=args.log_level,
                    access_log=False,
                    timeout_keep_alive=config.keep_alive,
                    timeout_graceful_shutdown=30,
                )
            )
            server.run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return 0


def named_indexes(
    configured: tuple[tuple[str, str], ...], given: list[str], default: str | None
) -> tuple[tuple[str, str], ...]:
    """The named indexes of the config file and of ``--index-name NAME=DIR``, checked together (a name or a
    folder once, the ``--index`` folder not among them)."""
    from ..serve.config import check_indexes

    table = dict(configured)
    for spec in given:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder:
            raise UsageError(f"--index-name {spec!r} is not NAME=DIR (write e.g. --index-name docs=/srv/docs)")
        if name in table:
            raise UsageError(f"--index-name {name!r} is given twice (in the config file or on the command line)")
        table[name] = folder
    named = check_indexes(table, "--index-name")
    for name, folder in named:
        if default and Path(folder).resolve() == Path(default).resolve():
            raise UsageError(f"--index-name {name}={folder} is the --index folder: serve a folder once")
    return named


def encoder_choice(args: argparse.Namespace, config: ServeConfig, name: str | None = None) -> EncoderChoice:
    """The encoder (and options) an index of the server is opened with, from the config file and the flags.

    A named index's own ``encoder`` in the config wins; else ``--encoder``; else the config's top-level
    ``encoder``. Options given with a winning encoder come along (a named index's options without an encoder
    of its own are added to the inherited ones); ``--encoder-option`` flags are added by :func:`open_engine`
    unless the named index names its own encoder.
    """
    from ..serve.config import EncoderChoice

    inherited = EncoderChoice(config.encoder, config.encoder_options)
    if args.encoder is not None and args.encoder != config.encoder:
        inherited = EncoderChoice(args.encoder, {})  # the top-level options are another encoder's
    own = dict(config.index_encoders).get(name) if name is not None else None
    if own is None:
        return inherited
    if own.name is None:
        return EncoderChoice(inherited.name, {**inherited.options, **own.options})
    return own


def open_root(args: argparse.Namespace, config: ServeConfig) -> Engine:
    """The ``--index`` index, with the encoder the flags or the config choose (see :func:`encoder_choice`)."""
    choice = encoder_choice(args, config)
    return open_engine(args, create=True, encoder=choice.name, encoder_defaults=choice.options)


def open_named(args: argparse.Namespace, config: ServeConfig, name: str, folder: str, *, create: bool = True) -> Engine:
    """The named index in ``folder``, created with the global options (and the encoder the config chooses for
    it) when it does not exist yet (and ``create``)."""
    choice = encoder_choice(args, config, name)
    values = {**vars(args), "index": folder}
    own = dict(config.index_encoders).get(name)
    if own is not None and own.name is not None and own.name != args.encoder:  # the flags are another encoder's
        values |= {"encoder": None, "encoder_option": []}
    return open_engine(
        argparse.Namespace(**values), create=create, encoder=choice.name, encoder_defaults=choice.options
    )


def run_mcp(args: argparse.Namespace) -> int:
    """MCP over stdio; local image paths are accepted (the agent runs on this machine). With ``--index-name``,
    the named index (its folder from the config's ``[indexes]``, or given as ``NAME=DIR``)."""
    from ..serve.mcp import build_mcp

    name, folder = mcp_index(args.index_name, args.config) if args.index_name else (None, None)
    engine = open_mcp_engine(args, name, folder)
    try:
        server = build_mcp(engine, allow_paths=True, media_folder=args.media_folder)
        if name is not None:
            from ..serve.indexes import prefix_tools

            server.middleware.append(prefix_tools(name))  # item paths as `xmodal serve` answers them for NAME
        asyncio.run(server.run_stdio_async())
    finally:
        engine.close()
        sys.stdout.flush()
    return 0


def open_mcp_engine(args: argparse.Namespace, name: str | None, folder: str | None) -> Engine:
    """The index ``xmodal mcp`` serves, opened with the encoder and encoder options ``--config`` chooses for it
    (see :func:`encoder_choice`), exactly as ``xmodal serve --config`` opens it; an existing index only."""
    if args.config is None:
        return open_engine(args if folder is None else argparse.Namespace(**{**vars(args), "index": folder}))
    from ..serve.config import ServeConfig

    config = ServeConfig.load(args.config)
    if name is None or folder is None:
        choice = encoder_choice(args, config)
        return open_engine(args, encoder=choice.name, encoder_defaults=choice.options)
    return open_named(args, config, name, folder, create=False)


def mcp_index(spec: str, config_path: str | None) -> tuple[str, str]:
    """The (name, folder) of ``xmodal mcp --index-name NAME[=DIR]``: DIR when given, else NAME's folder in the
    ``[indexes]`` table of ``--config`` (either wins over ``--index``); a clear error naming the known names
    otherwise."""
    from ..serve.config import ServeConfig, check_index_name

    name, sep, folder = spec.partition("=")
    name = check_index_name(name, "--index-name")
    if sep:
        if not folder:
            raise UsageError(f"--index-name {spec!r} is not NAME=DIR (write e.g. --index-name docs=/srv/docs)")
        return name, folder
    if config_path is None:
        raise UsageError(f"--index-name {name}: give the server config that names it (--config FILE), or NAME=DIR")
    table = dict(ServeConfig.load(config_path).indexes)
    if name not in table:
        known = ", ".join(table) or "none"
        raise UsageError(f"--index-name {name}: {config_path} names no such index (its [indexes]: {known})")
    return name, table[name]
