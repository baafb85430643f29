"""The postgres store's connections: one bounded pool (``psycopg_pool``) shared by every thread of a process.

Each call of the store borrows a connection for its statement or transaction and gives it back, so the
threads of a server (searches, writes, the feedback log) run side by side on up to ``pool_size`` connections
instead of in turn on one. The size and the longest wait for a free connection are the URL's ``pool_size``
(default :data:`POOL_SIZE`) and ``pool_timeout`` (seconds, default :data:`POOL_TIMEOUT_S`), or the store's
arguments. LISTEN/NOTIFY keeps a dedicated connection of its own (:meth:`PostgresStore.listen`), outside
the pool.

A wait past ``pool_timeout`` is one of two things, told apart here: every connection busy (the pool is
exhausted: a :class:`~xmodal.errors.StorageError` naming ``pool_size`` and ``pool_timeout``), or no
connection could be opened (the server is down or restarting: :class:`Unreachable`, which the store
retries with its bounded backoff like any lost connection).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import ConfigError, MissingDependency, StorageError

#: Connections per process (a server's threads share them); ``pool_size`` in the URL
POOL_SIZE = 4
#: Seconds a call waits for a free connection before the pool is called exhausted; ``pool_timeout`` in the URL
POOL_TIMEOUT_S = 10.0
OPTIONS = ("pool_size", "pool_timeout")
MAX_POOL_SIZE = 1000


class Unreachable(Exception):
    """No connection could be had within ``pool_timeout`` while some were free to open: the server is away."""


def split_pool_options(dsn: str) -> tuple[str, dict[str, Any]]:
    """``dsn`` without xmodal's pool parameters, and those parameters checked (``pool_size``: int,
    ``pool_timeout``: float); libpq would refuse them."""
    parts = urlsplit(dsn)
    if not parts.scheme or not parts.query:
        return dsn, {}
    params = parse_qsl(parts.query, keep_blank_values=True)
    given = {key: value for key, value in params if key in OPTIONS}
    if not given:
        return dsn, {}
    rest = urlencode([(key, value) for key, value in params if key not in OPTIONS])
    options: dict[str, Any] = {}
    if "pool_size" in given:
        options["pool_size"] = check_size(given["pool_size"])
    if "pool_timeout" in given:
        options["pool_timeout"] = check_timeout(given["pool_timeout"])
    return urlunsplit(parts._replace(query=rest)), options


def check_size(value: Any) -> int:
    """``value`` as a pool size, or a :class:`ConfigError` naming ``pool_size`` and the fix."""
    try:
        size = int(value)
    except (TypeError, ValueError):
        size = 0
    if not 1 <= size <= MAX_POOL_SIZE or str(value).strip() not in (str(size), f"{size}.0"):
        raise ConfigError(
            f"pool_size={value!r}: use a whole number of connections from 1 to {MAX_POOL_SIZE} (e.g. pool_size=8)"
        )
    return size


def check_timeout(value: Any) -> float:
    """``value`` as a pool timeout in seconds, or a :class:`ConfigError` naming ``pool_timeout`` and the fix."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not 0 < seconds <= 3600:
        raise ConfigError(f"pool_timeout={value!r}: use seconds above 0 and at most 3600 (e.g. pool_timeout=10)")
    return seconds


class PgPool:
    """A bounded pool of autocommit connections to one PostgreSQL database, each on the store's schema."""

    def __init__(
        self,
        dsn: str,
        where: str,
        *,
        size: int,
        timeout: float,
        connect_timeout: float,
        configure: Callable[[Any], None],
        probe: Callable[[], None],
    ) -> None:
        try:
            from psycopg_pool import ConnectionPool, PoolTimeout
        except ImportError:
            raise MissingDependency("psycopg_pool", "postgres") from None
        self.size, self.timeout, self.where = check_size(size), check_timeout(timeout), where
        self._timeout_error: type[Exception] = PoolTimeout
        self._probe = probe
        self._busy = 0
        self._counting = threading.Lock()
        self._pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=self.size,
            timeout=self.timeout,
            # a reconnect gives up after this long, so the next borrower starts a fresh attempt at once rather
            # than waiting out an ever longer backoff once the server is back
            reconnect_timeout=self.timeout,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(connect_timeout))},
            configure=configure,
            name=f"xmodal {where}",
            open=True,
        )

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A connection of the pool for one call; given back (reset, or replaced when broken) after it."""
        try:
            borrowed = self._pool.connection(self.timeout)
            db = borrowed.__enter__()
        except self._timeout_error as exc:
            raise self._timed_out() from exc
        with self._counting:
            self._busy += 1
        try:
            yield db
        except BaseException as exc:
            self._give_back(borrowed, exc)
            raise
        self._give_back(borrowed, None)

    def _give_back(self, borrowed: Any, exc: BaseException | None) -> None:
        with self._counting:
            self._busy -= 1
        borrowed.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)

    def _timed_out(self) -> Exception:
        with self._counting:
            busy = self._busy
        if busy >= self.size:
            return StorageError(
                f"{self.where}: all {self.size} connections of the pool were busy for {self.timeout:g} s; "
                f"raise pool_size (now {self.size}) or pool_timeout (now {self.timeout:g} s) in the index URL "
                "(?pool_size=N&pool_timeout=S), or lower the load"
            )
        try:
            self._probe()  # the server's own answer, for the message
        except StorageError as exc:
            return Unreachable(str(exc))
        return Unreachable(f"{self.where}: no connection to PostgreSQL could be opened within {self.timeout:g} s")

    def drop_broken(self) -> None:
        """Check the idle connections and replace those that broke (after the server restarted)."""
        try:
            self._pool.check()
        except Exception:  # noqa: BLE001 - a check that fails leaves the pool to replace connections as used
            pass

    def close(self) -> None:
        self._pool.close(timeout=5.0)
