"""What :class:`~xmodal.client.Client` and :class:`~xmodal.client.AsyncClient` share around httpx: their
settings (from arguments, else the environment), an answer read into JSON or raised as the engine's error,
and a failed connection raised as :class:`~xmodal.errors.ConnectionFailed` naming the URL and the fix."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import httpx

from .._version import __version__
from ..errors import ConnectionFailed
from .decode import error_of
from .wire import Call

ENV_URL = "XMODAL_URL"  #: the server's base URL when none is passed
ENV_KEY = "XMODAL_API_KEY"  #: the API key when none is passed (the server takes keys from XMODAL_API_KEYS)
DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = 60.0  # seconds; a first search may wait for the server's models, a large add for encoding
RETRIES = 2  # connection attempts repeated when no connection could be made (nothing was sent)
JSON_BODY = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class Settings:
    """A client's base URL, headers (the key), timeout and connection retries."""

    url: str
    headers: dict[str, str]
    timeout: float | None
    retries: int

    @classmethod
    def of(
        cls,
        url: str | None,
        api_key: str | None,
        timeout: float | None,
        retries: int,
        headers: dict[str, str] | None,
    ) -> Settings:
        base = (url or os.environ.get(ENV_URL) or DEFAULT_URL).rstrip("/")
        key = api_key if api_key is not None else os.environ.get(ENV_KEY)
        sent = {"User-Agent": f"xmodal-client/{__version__}", "Accept": "application/json", **(headers or {})}
        if key:
            sent["Authorization"] = f"Bearer {key}"
        return cls(base, sent, timeout, retries)

    def options(self) -> dict[str, Any]:
        """Keyword arguments of ``httpx.Client`` / ``httpx.AsyncClient``."""
        return {"base_url": self.url, "headers": self.headers, "timeout": self.timeout}


def request_args(request: Call) -> dict[str, Any]:
    """Keyword arguments of ``httpx.Client.request`` for a call."""
    args: dict[str, Any] = {}
    if request.body is not None:
        args["content"] = request.body
        args["headers"] = JSON_BODY
    if request.params is not None:
        args["params"] = request.params
    return args


def answer(response: httpx.Response, request: Call) -> Any:
    """The decoded answer (JSON, or the bytes of a file), or the error it stands for raised."""
    if response.status_code >= 400:
        headers = response.headers
        raise error_of(
            response.status_code,
            response.content,
            request_id=headers.get("x-request-id"),
            retry_after=headers.get("retry-after"),
        )
    return response.content if request.binary else json.loads(response.content)


def failure(exc: httpx.TransportError, settings: Settings) -> ConnectionFailed:
    """A request that got no answer, as a :class:`ConnectionFailed` naming the URL and what to do."""
    url = settings.url
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        fix = f"start it: xmodal --index DIR serve; or pass the right url=, or set {ENV_URL}"
        return ConnectionFailed(url, f"cannot connect to the xmodal server at {url}: {exc or type(exc).__name__}", fix)
    again = "a write may have been applied: check (get, count) before sending it again"
    if isinstance(exc, httpx.TimeoutException):
        fix = f"pass a larger timeout= (seconds); {again}"
        return ConnectionFailed(url, f"no answer from {url} within {settings.timeout} s", fix)
    fix = f"check that the server at {url} is running; {again}"
    return ConnectionFailed(url, f"the connection to {url} failed: {exc or type(exc).__name__}", fix)
