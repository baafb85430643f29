"""The one JSON view of items, hits and search results, shared by the CLI, the REST API and MCP.

Pure functions over :mod:`xmodal.records` (no web framework). An item's view carries every field the
:class:`~xmodal.records.Item` has (so fields added later show up without a change here), made
JSON-ready, plus its ``image`` (``media.image``) and the REST paths of that image::

    id, modality, title, text, attributes, media, image, created_at, updated_at, parent, span,
    media_url, thumbnail_url

``media`` maps each medium to its stored reference; ``parent`` is the id of the item a segment belongs
to and ``span`` where it sits (``{"page": 3}`` or ``{"start": 12.5, "end": 20.0}``), both ``None``
for a whole item.

A hit's view is its item's view plus ``score`` and ``provenance`` (and ``vector``, a list of numbers, when
the search was asked for the hits' vectors; and ``snippet``, for a segment hit of a text query: the passage
of its text with the query's words marked). Adapters may regroup the view for
their transport (MCP fences the catalog text, see :mod:`xmodal.serve.mcp`) but never rename a key.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Protocol
from urllib.parse import quote

from .guards.spotlight import spotlight
from .records import Hits, Item, Span
from .snippets import snippet

#: The view's keys that hold catalog content written by third parties (fenced off for agents): the ids
#: too, which are catalog text as much as the titles are.
CATALOG_FIELDS = ("id", "parent", "title", "text", "attributes")
SCORE_DIGITS = 6


class ResultLike(Protocol):
    """What :func:`result_view` reads (a :class:`~xmodal.results.SearchResult`)."""

    @property
    def hits(self) -> Hits: ...
    @property
    def items(self) -> tuple[Item, ...]: ...
    @property
    def took_ms(self) -> float: ...
    @property
    def encode_ms(self) -> float: ...
    @property
    def query_id(self) -> str | None: ...
    @property
    def explain(self) -> dict[str, Any] | None: ...
    @property
    def vectors(self) -> Sequence[Any] | None: ...
    @property
    def next_cursor(self) -> str | None: ...


#: Where the REST routes of the index being viewed start: ``""`` for a server's default index (and outside a
#: server), ``"/indexes/{name}"`` for a named one; set by the server around each request (and MCP tool call)
#: to a named index (:mod:`xmodal.serve.indexes`).
PATH_PREFIX: ContextVar[str] = ContextVar("xmodal_path_prefix", default="")


def item_path(item_id: str) -> str:
    """The REST path of an item (``/items/{id}``, the id URL-quoted, after the :data:`PATH_PREFIX`)."""
    return f"{PATH_PREFIX.get()}/items/{quote(item_id, safe='')}"


def media_urls(item: Item) -> tuple[str | None, str | None]:
    """The REST paths of an item's media file and thumbnail (``None`` when it has no image)."""
    if item.image is None:
        return None, None
    base = item_path(item.id)
    return f"{base}/media", f"{base}/thumbnail"


_ITEM_FIELDS = tuple(f.name for f in dataclasses.fields(Item))


def item_view(item: Item, *, shared: bool = False) -> dict[str, Any]:
    """Every field of ``item``, JSON-ready, plus ``media_url`` and ``thumbnail_url``. ``shared``: the item's
    attributes are given as they are, not copied value by value (they are JSON data already, as an item's
    are once checked or read back from the store): for a view written out at once and never changed (an
    export), not for one handed on."""
    out: dict[str, Any] = {}
    for name in _ITEM_FIELDS:
        value = getattr(item, name)
        out[name] = value if shared and name == "attributes" else jsonable(value)
        if name == "media":
            out["image"] = jsonable(item.image)
    out["media_url"], out["thumbnail_url"] = media_urls(item)
    return out


class GuardedEngine(Protocol):
    """What :func:`guarded_view` asks of an engine."""

    def item_guard(self, item_id: str) -> dict[str, Any] | None: ...


def guarded_view(engine: GuardedEngine, item: Item) -> dict[str, Any]:
    """An item's view for an API (REST ``GET /items/{id}``, the CLI's ``get``): with ``guard`` (status and
    findings) when the guards found instructions aimed at an agent in its text."""
    out = item_view(item)
    status = engine.item_guard(item.id) if hasattr(engine, "item_guard") else None
    if status is not None:
        out["guard"] = jsonable(status)
    return out


def spotlights(items: Iterable[Item]) -> list[str]:
    """Each item's title and text inside data markers (:mod:`xmodal.guards.spotlight`), for an agent."""
    return [spotlight(item.id, item.title, item.text) for item in items]


def items_view(items: Iterable[Item], vectors: Iterable[Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The views of several items; with ``vectors`` (aligned), each item's ``vectors`` by kind as lists."""
    views = [item_view(item) for item in items]
    if vectors is not None:
        for view, by_kind in zip(views, vectors, strict=True):
            view["vectors"] = jsonable(by_kind)
    return views


def hit_view(item: Item, score: float, provenance: str) -> dict[str, Any]:
    """An item's view with the hit's ``score`` (rounded to 6 digits) and ``provenance``."""
    return {**item_view(item), "score": round(float(score), SCORE_DIGITS), "provenance": provenance}


def hits_view(
    hits: Hits,
    items: Iterable[Item],
    vectors: Sequence[Any] | None = None,
    query_text: str | None = None,
    flags: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The views of ranked hits and their aligned items (provenance ``""`` when the hits carry none); with
    ``vectors`` (aligned too), each hit's ``vector`` as a list of numbers (null when it has none); with a
    ``query_text``, each segment hit with text (a page, a chunk, a clip's transcript) gets a ``snippet``:
    the passage of its text holding the query's words, marked ``**word**`` (:mod:`xmodal.snippets`); a hit the
    guards flagged has ``guard``: ``{"status": "flagged", "findings": [...]}`` (why)."""
    sources = hits.provenance or ("",) * len(hits)
    views = [hit_view(item, score, source) for (_, score), item, source in zip(hits, items, sources, strict=True)]
    if vectors is not None:
        for view, vector in zip(views, vectors, strict=True):
            view["vector"] = jsonable(vector)
    if query_text:
        for view in views:
            if view["parent"] is not None and view["text"]:
                view["snippet"] = snippet(view["text"], query_text)
    if flags:
        for view in views:
            if view["id"] in flags:
                view["guard"] = {"status": "flagged", "findings": jsonable(flags[view["id"]])}
    return views


def result_view(result: ResultLike) -> dict[str, Any]:
    """A search result: ``hits``, ``took_ms``, ``encode_ms``, and ``query_id``/``explain``/``next_cursor``
    when set."""
    out: dict[str, Any] = {
        "hits": hits_view(
            result.hits,
            result.items,
            result.vectors,
            getattr(result, "query_text", None),
            getattr(result, "flags", None),
        ),
        "took_ms": round(result.took_ms, 3),
        "encode_ms": round(result.encode_ms, 3),
    }
    if result.query_id is not None:
        out["query_id"] = result.query_id
    if result.explain is not None:
        out["explain"] = jsonable(result.explain)
    if result.next_cursor is not None:
        out["next_cursor"] = result.next_cursor
    return out


def jsonable(value: Any) -> Any:
    """``value`` as strict JSON data: enums by value, NumPy values and tuples/sets as lists, NaN/inf
    as null, bytes as a ``"<N bytes>"`` placeholder, a record with ``to_dict`` (a span) as that dict,
    anything else unknown as its ``str``."""
    kind = type(value)  # plain JSON values first, by exact type (an item's attributes are all of these)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is dict:
        return {k if type(k) is str else str(k): jsonable(v) for k, v in value.items()}
    if kind is list:
        return [jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, Span):
        value = value.to_dict()
    if hasattr(value, "tolist"):  # NumPy arrays and scalars
        value = value.tolist()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)
