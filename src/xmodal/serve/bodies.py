"""JSON bodies that FastAPI parses for a route's body model, parsed by :func:`.errors.parse_json` instead of
``json.loads``: a body nested deeper than :data:`.errors.MAX_BODY_NESTING`, with a NaN or Infinity, or with a
lone surrogate is a 400 naming ``body`` with the fix, never FastAPI's bare "There was an error parsing the
body". Routers take it as ``APIRouter(route_class=CheckedRoute)``."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from .errors import ApiError, BodyError, parse_json


class CheckedRequest(Request):
    """A request whose JSON body is read by :func:`.errors.parse_json`."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = parse_json(await self.body())
            except ApiError as exc:
                raise BodyError(exc) from None
        return self._json


class CheckedRoute(APIRoute):
    """A route whose handler sees a :class:`CheckedRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            return await handler(CheckedRequest(request.scope, request.receive))

        return checked
