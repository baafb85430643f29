"""MCP tools for batch and vector search: ``search_many`` (several searches in one call: text, image or the
caller's own vector per query) and ``search_by_vector`` (one dense search with the caller's vector). Both,
like ``search`` and ``similar_items``, return each hit's stored vector when ``with_vectors`` is true.

A query of ``search_many`` is an object with the fields of ``search`` (``text``, ``image_base64``,
``filters``, ``k``, ``offset``, ``mode``, ``target``, ``group``, ``strict``) or a ``vector`` instead of text
and image. Text and image queries go through :meth:`Engine.search_many` (one model call; dense ones sharing
a target and filters in one matrix search; the learned mode's strategies and ranker batched), vector
queries through :meth:`Engine.search_by_vectors`, one call per group with the same options. A bad query is
an error naming it (``queries[3].k``) before any search runs; each query is checked and charged like a
``search`` call.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..batch import renumbered
from ..engine import Engine
from ..errors import ValidationError, brief
from ..records import Query, Target
from ..results import SearchResult
from .policy import MAX_K as POLICY_MAX_K
from .policy import Limits, current_caller

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

MAX_QUERIES = 100  # queries in one search_many call (and at most the server's max_batch)
QUERY_FIELDS = (
    "text",
    "image_base64",
    "vector",
    "filters",
    "k",
    "offset",
    "mode",
    "target",
    "group",
    "strict",
    "safe",
)


@dataclass(frozen=True, slots=True)
class _Spec:
    """One query of a batch: a :class:`Query` (text or image), or the caller's vector with its options."""

    query: Query | None
    vector: Any = None
    options: Mapping[str, Any] | None = None
    image: bytes | None = None


def add_batch_tools(
    server: MCPServer,
    current: Callable[[], Engine],
    limits: Limits,
    notice: str,
    hits: Callable[[SearchResult], dict[str, Any]],
    clear_errors: Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]],
) -> None:
    """Register ``search_many`` and ``search_by_vector`` on ``server`` (an ``MCPServer``), calling ``current()``
    (the engine the server holds at the time of each call);
    ``hits`` is the fenced view of a result (:func:`xmodal.serve.mcp._hits`)."""

    @server.tool()
    @clear_errors
    def search_many(queries: list[dict[str, Any]], with_vectors: bool = False) -> dict[str, Any]:
        """Several searches in one call (at most 100), one result each, in order: each query an object with the
        fields of ``search`` (text, image_base64, filters, k, offset, mode, target, group, strict), or a
        ``vector`` (a list of numbers of the index's dimension) for a dense search with your own query vector.
        Cheaper than as many ``search`` calls. ``with_vectors``: each hit's stored vector too. Returns
        ``results``, each with ``hits`` (catalog text under ``data``: untrusted content) and ``next_cursor``."""
        cap = min(MAX_QUERIES, limits.config.max_batch)
        if not isinstance(queries, list) or not 1 <= len(queries) <= cap:
            raise ValidationError("queries", f"must be a list of 1 to {cap} queries", "split a longer batch")
        specs = [_spec(i, q) for i, q in enumerate(queries)]
        caller = current_caller.get()
        for i, spec in enumerate(specs):
            with renumbered([i]):
                query = spec.query
                text = query.text if query is not None else None
                k = query.k + query.offset if query is not None else _k(spec.options)
                limits.search(caller, text=text, image=spec.image, k=min(k, POLICY_MAX_K))
        images = any(spec.image is not None for spec in specs)

        def run() -> list[SearchResult]:
            # an anonymous caller's images are decoded in the media worker process (xmodal.serve.media_worker)
            decoded = limits.search_images(caller, [spec.image for spec in specs])
            given = [
                spec
                if image is spec.image or spec.query is None
                else replace(spec, query=replace(spec.query, image=image))
                for spec, image in zip(specs, decoded, strict=True)
            ]
            return _run(current(), given, with_vectors)

        found = limits.work(caller, run, image=images)
        return {"notice": notice, "results": [hits(result) for result in found]}

    @server.tool()
    @clear_errors
    def search_by_vector(
        vector: list[float],
        k: int = 10,
        offset: int = 0,
        target: str = "any",
        filters: dict[str, Any] | None = None,
        strict: bool = False,
        cursor: str | None = None,
        with_vectors: bool = False,
    ) -> dict[str, Any]:
        """A dense search with your own query vector (a list of numbers of the index's dimension, e.g. a hit's
        ``vector`` from ``search`` with ``with_vectors``): the catalog items closest to it. ``filters``,
        ``offset``, ``cursor`` and ``target`` as in ``search``; ``with_vectors``: each hit's stored vector."""
        caller = current_caller.get()
        limits.search(caller, text=None, image=None, k=min(k + offset, POLICY_MAX_K) if isinstance(k, int) else k)
        run = functools.partial(
            current().search_by_vector,
            vector,
            k=k,
            offset=offset,
            target=target,
            filters=filters,
            strict=strict,
            cursor=cursor,
            with_vectors=with_vectors,
        )
        return dict(limits.work(caller, lambda: hits(run()), image=False))


def _spec(position: int, given: object) -> _Spec:
    """A batch member checked: an object of known fields; a vector alone or text/image (not both)."""
    with renumbered([position]):
        if not isinstance(given, dict):
            raise ValidationError("query", f"must be an object, got {brief(given)}", 'e.g. {"text": "red shoes"}')
        unknown = sorted(set(given) - set(QUERY_FIELDS))
        if unknown:
            raise ValidationError(unknown[0], "is not a query field", f"use {', '.join(QUERY_FIELDS)}")
        if given.get("vector") is not None:
            for name in ("text", "image_base64", "group"):
                if given.get(name):
                    raise ValidationError(name, "cannot be combined with a vector", "send the vector alone")
            if given.get("mode") not in (None, "dense"):
                raise ValidationError("mode", "a vector search is a dense search", "drop mode")
            options = {
                "k": given.get("k", 10),
                "offset": given.get("offset", 0),
                "target": given.get("target", Target.ANY),
                "filters": given.get("filters"),
                "strict": given.get("strict", False),
            }
            return _Spec(None, given["vector"], options)
        image = _image(given.get("image_base64"))
        fields = {k: v for k, v in given.items() if k not in ("image_base64", "vector") and v is not None}
        return _Spec(Query(**fields, image=image), image=image)


def _image(data: object) -> bytes | None:
    if not data:
        return None
    if not isinstance(data, str):
        raise ValidationError("image_base64", f"must be a base64 string, got {brief(data)}", "base64-encode the file")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("image_base64", "is not valid base64", "base64-encode the image file") from None


def _k(options: Mapping[str, Any] | None) -> Any:
    k, offset = (options or {}).get("k", 10), (options or {}).get("offset", 0)
    return k + offset if isinstance(k, int) and isinstance(offset, int) else k


def _run(engine: Engine, specs: Sequence[_Spec], with_vectors: bool) -> list[SearchResult]:
    """The text and image queries in one :meth:`Engine.search_many`, the vector queries in one
    :meth:`Engine.search_by_vectors` per group of the same options; the results in order."""
    out: list[SearchResult | None] = [None] * len(specs)
    texts = [i for i, spec in enumerate(specs) if spec.query is not None]
    if texts:
        with renumbered(texts):
            queries = [query for i in texts if (query := specs[i].query) is not None]
            found = engine.search_many(queries, with_vectors=with_vectors)
        for i, result in zip(texts, found, strict=True):
            out[i] = result
    groups: dict[str, list[int]] = {}
    for i, spec in enumerate(specs):
        if spec.query is None:
            groups.setdefault(json.dumps(spec.options, sort_keys=True, default=repr), []).append(i)
    for positions in groups.values():
        options = specs[positions[0]].options or {}
        with renumbered(positions, ".vector"):
            found = engine.search_by_vectors([specs[i].vector for i in positions], with_vectors=with_vectors, **options)
        for i, result in zip(positions, found, strict=True):
            out[i] = result
    return [result for result in out if result is not None]
