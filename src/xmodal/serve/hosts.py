"""The ``Host`` check against DNS rebinding, one setting for REST, the page and MCP alike.

A page on ``evil.example`` whose DNS name is re-pointed at 127.0.0.1 can have a browser call this
server as a same-origin request and read the answers; the ``Host`` header still says
``evil.example``. :class:`HostCheckMiddleware` answers such requests 421 Misdirected Request.

Which hosts are allowed (:func:`allowed_hosts`): ``localhost``, ``127.0.0.1`` and ``::1`` (a page
elsewhere cannot make a browser send those), the bound address, and the names of the ``allowed_hosts``
setting (``--allowed-host``; ``"*"``: any Host). A server bound to every interface (``0.0.0.0`` or
``::``) without the setting accepts any Host, since the names it is reached by are not known here (a
warning says so at start).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import ServeConfig
from .echo import clip
from .errors import error_response
from .logs import logger

LOOPBACK = ("localhost", "127.0.0.1", "::1")
EVERY_INTERFACE = ("0.0.0.0", "::", "")
ANY = "*"


def split_host(value: str) -> tuple[str, str | None]:
    """``(name, port)`` of a Host header or a setting: ``example.com:8080``, ``[::1]:80``, ``::1``,
    ``localhost`` (lower case, without the trailing dot of a fully qualified name)."""
    value = value.strip().lower()
    if value.startswith("["):  # [IPv6]:port
        name, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif value.count(":") == 1:
        name, _, port = value.partition(":")
    else:  # a name without a port, or a bare IPv6 address
        name, port = value, None
    return name.rstrip("."), port or None


def _bracketed(name: str) -> str:
    return f"[{name}]" if ":" in name else name


@dataclass(frozen=True, slots=True)
class AllowedHosts:
    """Host names (any port) and ``name:port`` pairs that may appear in a request's ``Host``."""

    entries: frozenset[tuple[str, str | None]]

    def allows(self, host: str | None) -> bool:
        if not host:
            return False
        name, port = split_host(host)
        return (name, None) in self.entries or (name, port) in self.entries

    def names(self) -> list[str]:
        """The entries as a client would write them in a URL, sorted."""
        return sorted(_bracketed(n) + (f":{p}" if p else "") for n, p in self.entries)

    def header_patterns(self) -> list[str]:
        """The entries as the MCP SDK's ``allowed_hosts`` (``name:*`` for any port)."""
        out = []
        for name, port in sorted(self.entries, key=str):
            host = _bracketed(name)
            out += [f"{host}:{port}"] if port else [host, f"{host}:*"]
        return out

    def origin_patterns(self) -> list[str]:
        """The entries as browser origins (http and https), the MCP SDK's ``allowed_origins``."""
        return [f"{scheme}://{host}" for scheme in ("http", "https") for host in self.header_patterns()]


def allowed_hosts(config: ServeConfig) -> AllowedHosts | None:
    """The hosts ``config`` allows; ``None``: any Host (``"*"``, or bound to every interface unset)."""
    if ANY in config.allowed_hosts:
        return None
    bound = split_host(config.host)[0]
    if bound in EVERY_INTERFACE and not config.allowed_hosts:
        logger.warning(
            "bound to %s without allowed_hosts: any Host header is accepted, so a DNS-rebinding page can "
            "reach this server; name the hosts clients use with --allowed-host",
            config.host,
        )
        return None
    names = {*LOOPBACK} | ({bound} if bound not in EVERY_INTERFACE else set())
    return AllowedHosts(frozenset({(name, None) for name in names} | {split_host(h) for h in config.allowed_hosts}))


class HostCheckMiddleware:
    """Answer 421 with an ErrorBody to a request whose ``Host`` is not allowed (``allowed=None``: all pass)."""

    def __init__(self, app: Any, allowed: AllowedHosts | None) -> None:
        self.app, self.allowed = app, allowed

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.allowed is not None:
            host = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1")
            if not self.allowed.allows(host):
                shown = f"Host {clip(host)!r}" if host else "a request without a Host header"
                names = ", ".join(self.allowed.names())
                response = error_response(
                    421,
                    f"{shown} is not served here (DNS rebinding protection)",
                    "Host",
                    f"address the server as one of {names}, or start it with --allowed-host NAME",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
