"""Answers of the REST API back into the engine's records and errors (no HTTP library here).

The JSON view (:mod:`xmodal.view`) carries every field of an item, so an :class:`~xmodal.records.Item`
comes back equal to the engine's (scores are rounded to 6 digits by the view). An error body names the
xmodal error class the engine raised (``type``), and the same class is raised here with its message,
field and fix; the server's own refusals map by status.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..collection import Fetched, Page
from ..errors import (
    AccessDenied,
    ConfigError,
    DiskFull,
    GuardBlocked,
    ImageError,
    NotFoundError,
    RemoteError,
    StorageError,
    ValidationError,
    XmodalError,
)
from ..ingest.prepare import AddReport, Rejection
from ..records import Hits, Item, Span
from ..results import SearchResult

#: The engine's errors an error body's ``type`` may name.
ENGINE_ERRORS: dict[str, type[XmodalError]] = {
    cls.__name__: cls
    for cls in (ValidationError, GuardBlocked, ImageError, NotFoundError, ConfigError, StorageError, DiskFull)
}
#: The server's own refusals of bad input (malformed body, too large, content type, invalid fields).
INPUT_STATUSES = frozenset({400, 413, 415, 422})
DISK_FIX = ("free space on the disk holding ", ", then retry")


def item_of(view: Mapping[str, Any]) -> Item:
    """The item of an item (or hit) view."""
    span = view.get("span")
    return Item(
        view["id"],
        view["modality"],
        view.get("title", ""),
        view.get("text", ""),
        view.get("attributes") or {},
        None,
        float(view.get("created_at", 0.0)),
        float(view.get("updated_at", 0.0)),
        media=view.get("media") or {},
        parent=view.get("parent"),
        span=None if span is None else Span.parse(span),
    )


def result_of(body: Mapping[str, Any], *, with_vectors: bool = False) -> SearchResult:
    """The :class:`SearchResult` of a search answer (hits and their items aligned; ``with_vectors``: the hits'
    vectors too)."""
    views = body["hits"]
    ids = np.empty(len(views), dtype=object)
    ids[:] = [view["id"] for view in views]
    scores = np.fromiter((view["score"] for view in views), dtype=np.float32, count=len(views))
    sources = tuple(view.get("provenance", "") for view in views)
    hits = Hits(ids, scores, sources if any(sources) else ())
    items = tuple(item_of(view) for view in views)
    vectors = tuple(_vector(view.get("vector")) for view in views) if with_vectors else None
    took, encode = float(body["took_ms"]), float(body["encode_ms"])
    query_id, explain, cursor = body.get("query_id"), body.get("explain"), body.get("next_cursor")
    return SearchResult(hits, items, took, encode, query_id, explain, vectors, cursor)


def fetched_of(body: Mapping[str, Any], *, with_vectors: bool = False) -> Fetched:
    """The :class:`~xmodal.collection.Fetched` of a ``POST /items/get`` answer."""
    items, vectors = _items(body["items"], with_vectors)
    withheld = {str(k): str(v) for k, v in (body.get("withheld") or {}).items()}
    return Fetched(items, tuple(body["missing"]), vectors, withheld)


def page_of(body: Mapping[str, Any], *, with_vectors: bool = False) -> Page:
    """The :class:`~xmodal.collection.Page` of a ``POST /scroll`` answer."""
    items, vectors = _items(body["items"], with_vectors)
    withheld = {str(k): int(v) for k, v in (body.get("withheld") or {}).items()}
    return Page(items, body.get("next_cursor"), vectors, withheld)


def _items(
    views: list[dict[str, Any]], with_vectors: bool
) -> tuple[tuple[Item, ...], tuple[dict[str, np.ndarray], ...] | None]:
    """The items of item views, and (``with_vectors``) each one's vectors by kind."""
    vectors = None
    if with_vectors:
        vectors = tuple({kind: _array(v) for kind, v in (view.get("vectors") or {}).items()} for view in views)
    return tuple(item_of(view) for view in views), vectors


def _vector(value: Any) -> np.ndarray | None:
    return None if value is None else _array(value)


def _array(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.float32)


def report_of(body: Mapping[str, Any]) -> AddReport:
    """The :class:`AddReport` of a ``POST /items`` answer."""
    return AddReport(list(body["added"]), [Rejection(r["where"], r["reason"]) for r in body["rejected"]])


def error_of(
    status: int, content: bytes, *, request_id: str | None = None, retry_after: str | None = None
) -> XmodalError:
    """The error an error answer stands for: the class the engine raised (the body's ``type``), else one chosen
    by the status; message, field and fix as the server wrote them."""
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if not isinstance(body, Mapping):
        body = {"error": content[:200].decode("utf-8", "replace").strip() or f"HTTP {status}"}
    message = str(body.get("error") or f"HTTP {status}")
    field, fix = body.get("field"), str(body.get("fix") or "")
    kind = ENGINE_ERRORS.get(str(body.get("type")))
    exc = _engine_error(kind, message, field, fix) if kind is not None else _by_status(status, message, field, fix)
    exc.request_id = body.get("request_id") or request_id
    if isinstance(exc, RemoteError):
        exc.status, exc.retry_after = status, _seconds(retry_after)
    return exc


def _engine_error(kind: type[XmodalError], message: str, field: Any, fix: str) -> XmodalError:
    """The engine's error, rebuilt so that ``str`` of it is the engine's message."""
    if issubclass(kind, ValidationError):
        return _validation(kind, message, str(field or "body"), fix, exact=True)
    if issubclass(kind, DiskFull):
        folder = fix.removeprefix(DISK_FIX[0]).removesuffix(DISK_FIX[1]) if fix.startswith(DISK_FIX[0]) else ""
        return DiskFull(folder, message)
    return kind(message)


def _by_status(status: int, message: str, field: Any, fix: str) -> XmodalError:
    """A refusal of the server's own (no engine error behind it), by its status."""
    if status in INPUT_STATUSES:
        return _validation(ValidationError, message, str(field or "body"), fix, exact=False)
    if status == 404 and field == "id":
        return NotFoundError(message)
    if status in (401, 403):
        return AccessDenied(message, fix=fix or "pass api_key= (or set XMODAL_API_KEY) with a key of that scope")
    return RemoteError(message, fix=fix)


def _validation(kind: type[ValidationError], message: str, field: str, fix: str, *, exact: bool) -> ValidationError:
    """A :class:`ValidationError` with the field, problem, fix and item its message was written from
    (``item 'x': field: problem (fix)``). ``exact``: ``str`` of it is ``message`` even where that cannot be
    taken apart (else it is written from the parts)."""
    rest = message.removesuffix(f" ({fix})") if fix else message
    item, head = None, f"{field}: "
    if rest.startswith("item ") and f": {head}" in rest:
        where, _, tail = rest.partition(f": {head}")
        item = _literal(where.removeprefix("item "))
        rest = tail if item is not None else rest
    elif rest.startswith(head):
        rest = rest[len(head) :]
    exc = kind(field, rest, fix, item=item)
    if exact and str(exc) != message:
        exc.args = (message,)
    return exc


def _literal(text: str) -> str | None:
    """The string a ``repr`` wrote (an item id in a message), or None."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, str) else None


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
