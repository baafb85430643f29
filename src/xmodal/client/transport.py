"""What :class:`~xmodal.client.Client` and :class:`~xmodal.client.AsyncClient` share around httpx: their
settings (from arguments, else the environment), an answer read into JSON or raised as the engine's error,
and a failed connection raised as :class:`~xmodal.errors.ConnectionFailed` naming the URL and the fix."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import httpx

from .._version import __version__
from ..errors import ConfigError, ConnectionFailed
from .decode import error_of
from .wire import Call

ENV_URL = "XMODAL_URL"  #: the server's base URL when none is passed
ENV_KEY = "XMODAL_API_KEY"  #: the API key when none is passed (the server takes keys from XMODAL_API_KEYS)
DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = 60.0  # seconds; a first search may wait for the server's models, a large add for encoding
RETRIES = 2  # connection attempts repeated when no connection could be made (nothing was sent)
#: What a request raises when its connection was lost under it: closed by the server or a proxy as the request
#: went out (an idle keep-alive connection's expiry racing the client's reuse of it), or reset before the
#: answer. A read (:attr:`Call.repeatable <xmodal.client.wire.Call.repeatable>`) is then sent once more, on a
#: new connection; a write is not (it may have been applied).
LOST = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
JSON_BODY = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class Settings:
    """A client's server URL, index (None: the one at the root routes), headers (the key), timeout and
    connection retries."""

    url: str
    index: str | None
    headers: dict[str, str]
    timeout: float | None
    retries: int

    @classmethod
    def of(
        cls,
        url: str | None,
        index: str | None,
        api_key: str | None,
        timeout: float | None,
        retries: int,
        headers: dict[str, str] | None,
    ) -> Settings:
        """The settings of the arguments, else the environment; a URL that ends in ``/indexes/NAME`` names the
        index (as ``index=NAME`` does)."""
        base = (url or os.environ.get(ENV_URL) or DEFAULT_URL).rstrip("/")
        named = NAMED.fullmatch(base)
        if named is not None:
            if index is not None and index != unquote(named.group(2)):
                raise ConfigError(f"the url names index {unquote(named.group(2))!r} and index= names {index!r}")
            base, index = named.group(1), unquote(named.group(2))
        key = api_key if api_key is not None else os.environ.get(ENV_KEY)
        sent = {"User-Agent": f"xmodal-client/{__version__}", "Accept": "application/json", **(headers or {})}
        if key:
            sent["Authorization"] = f"Bearer {key}"
        return cls(base, index, sent, timeout, retries)

    @property
    def base(self) -> str:
        """Where the index's routes start: the server's URL, or ``/indexes/NAME`` under it."""
        return self.url if self.index is None else f"{self.url}/indexes/{quote(self.index, safe='')}"

    def options(self) -> dict[str, Any]:
        """Keyword arguments of ``httpx.Client`` / ``httpx.AsyncClient``."""
        return {"base_url": self.base, "headers": self.headers, "timeout": self.timeout}

    def target(self, request: Call) -> str:
        """The URL of a call: under the index's routes, or (a server route) under the server's URL."""
        return self.url + request.path if request.server else request.path


NAMED = re.compile(r"(.*)/indexes/([^/]+)")


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


def again(exc: httpx.TransportError, request: Call, tries: int) -> bool:
    """Whether to send ``request`` once more after it failed with ``exc`` on its ``tries``-th sending."""
    return tries == 1 and request.repeatable and isinstance(exc, LOST)


def failure(exc: httpx.TransportError, settings: Settings) -> ConnectionFailed:
    """A request that got no answer, as a :class:`ConnectionFailed` naming the URL and what to do."""
    url = settings.base
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        fix = f"start it: xmodal --index DIR serve; or pass the right url=, or set {ENV_URL}"
        return ConnectionFailed(url, f"cannot connect to the xmodal server at {url}: {exc or type(exc).__name__}", fix)
    again = "a write may have been applied: check (get, count) before sending it again"
    if isinstance(exc, httpx.TimeoutException):
        fix = f"pass a larger timeout= (seconds); {again}"
        return ConnectionFailed(url, f"no answer from {url} within {settings.timeout} s", fix)
    fix = f"check that the server at {url} is running; {again}"
    return ConnectionFailed(url, f"the connection to {url} failed: {exc or type(exc).__name__}", fix)
