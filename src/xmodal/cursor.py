"""Opaque page cursors for search results and scrolls.

A cursor is URL-safe text that carries the index's id, a digest of what it pages through (the query, or a
scroll's filter), a position (a search's next offset, or the last row a scroll returned), the time it was
issued and a checksum. Reading one back checks each of them, so a cursor of another index, of another query,
damaged, cut, or older than :data:`CURSOR_TTL` seconds is a :class:`~xmodal.errors.ValidationError` on
``cursor`` saying which, never a wrong page.

Expiry is by age alone (one hour by default), not by writes: a scroll's position is a row, so writes
between its pages neither repeat nor skip the items that stay (an item added since appears on a later page,
one deleted is not returned); a search's position is an offset into the ranking, which writes between pages
can shift, as they would with ``offset``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from .errors import ValidationError
from .records import Query

CURSOR_TTL = 3600.0  # seconds a cursor stays valid
_VERSION = 1
_CHECK = 8  # bytes of checksum
RESTART = "start again without a cursor"


def scope_of(kind: str, *parts: Any) -> str:
    """A short digest of what a cursor pages through: ``kind`` (``search``, ``scroll``...) and its defining
    values (JSON-able; bytes and arrays by their own digest)."""
    text = json.dumps([kind, *parts], sort_keys=True, default=_opaque, ensure_ascii=False)
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _opaque(value: Any) -> str:
    """A value JSON cannot hold, by the digest of its bytes (query images, vectors) or its ``repr``."""
    if hasattr(value, "tobytes"):
        value = value.tobytes()
    if isinstance(value, (bytes, bytearray)):
        return "b:" + hashlib.blake2b(bytes(value), digest_size=16).hexdigest()
    return repr(value)


class Cursors:
    """Issues and reads the cursors of one index (``index_id``); ``ttl`` seconds of validity by ``clock``."""

    def __init__(self, index_id: str, *, ttl: float = CURSOR_TTL, clock: Callable[[], float] = time.time) -> None:
        self.index_id, self.ttl, self.clock = index_id, ttl, clock
        self._head = f'{{"v":{_VERSION},"i":{json.dumps(index_id)},"s":'  # every search issues one: kept

    def issue(self, scope: str, position: int) -> str:
        """A cursor for ``position`` within ``scope`` (a :func:`scope_of` digest)."""
        raw = f'{self._head}{json.dumps(scope)},"p":{int(position)},"t":{self.clock():.3f}}}'.encode()
        return base64.urlsafe_b64encode(raw + _checksum(raw)).rstrip(b"=").decode("ascii")

    def read(self, cursor: object, scope: str, field: str = "cursor") -> int:
        """The position a cursor issued here for ``scope`` holds, or a :class:`ValidationError` on ``field``
        saying why it cannot be used."""
        body = self._decode(cursor, field)
        if body.get("i") != self.index_id:
            raise ValidationError(field, "was issued by another index", f"use cursors of this index, or {RESTART}")
        if body.get("s") != scope:
            raise ValidationError(
                field,
                "was issued for another query or filter",
                f"send the same query (and filters) with it, or {RESTART}",
            )
        age = self.clock() - float(body.get("t", 0))
        if age > self.ttl:
            raise ValidationError(
                field, f"has expired: issued {age:,.0f} s ago, a cursor lasts {self.ttl:,.0f} s", RESTART
            )
        position = body.get("p")
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise ValidationError(field, "holds no valid position", RESTART)
        return position

    def _decode(self, cursor: object, field: str) -> Mapping[str, Any]:
        damaged = ValidationError(
            field, "is not a cursor this index issued (damaged or cut)", f"pass next_cursor exactly, or {RESTART}"
        )
        if not isinstance(cursor, str) or not 0 < len(cursor) <= 4096:
            raise damaged
        try:
            data = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raise damaged from None
        raw, check = data[:-_CHECK], data[-_CHECK:]
        if len(data) <= _CHECK or _checksum(raw) != check:
            raise damaged
        try:
            body = json.loads(raw)
        except ValueError:
            raise damaged from None
        if not isinstance(body, dict) or body.get("v") != _VERSION:
            raise damaged
        return body


def position_of(cursor: object) -> int:
    """The position a cursor holds, read without any check (0 when it holds none): what a server charges for
    the hits a search cursor skips before it is checked, where the search runs."""
    try:
        body = Cursors("")._decode(cursor, "cursor")
    except ValidationError:
        return 0
    position = body.get("p")
    return position if isinstance(position, int) and not isinstance(position, bool) and position >= 0 else 0


def _checksum(raw: bytes) -> bytes:
    return hashlib.blake2b(raw, digest_size=_CHECK, person=b"xmodal-cursor").digest()


def search_scope(query: Query) -> str:
    """What a search's cursor pages through: everything that makes its ranking, ``k`` and ``offset`` aside
    (the mode resolved: a query without one is in the index's default mode)."""
    media = dict(query.all_media())
    filters = dict(query.filters)
    return scope_of("search", query.text, media, filters, str(query.target), query.mode, query.group, query.strict)


def vector_scope(vector: Any, target: str, filters: Mapping[str, Any] | None, strict: bool) -> str:
    """What a search by a caller's vector pages through."""
    return scope_of("vector", vector, str(target), dict(filters or {}), strict)
