"""Serving: the REST API, the search page and the MCP endpoint, thin adapters over one Engine.

Needs the ``server`` extra (``pip install 'xmodal[server]'``); the MCP tools need ``mcp`` too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import ApiKey, ServeConfig

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fastapi import FastAPI

    from ..engine import Engine


def create_app(
    engine: Engine | None, config: ServeConfig | None = None, *, indexes: Mapping[str, Engine] | None = None
) -> FastAPI:
    """The FastAPI app for ``engine`` at the root routes and ``indexes`` by name under ``/indexes/{name}/``
    (see :mod:`xmodal.serve.app`)."""
    try:
        from .app import create_app as _create
    except ImportError as exc:
        from ..errors import MissingDependency

        raise MissingDependency(exc.name or "fastapi", "server") from exc
    return _create(engine, config, indexes=indexes)


__all__ = ["ApiKey", "ServeConfig", "create_app"]
