"""The search path the engine delegates to: encoding queries, retrieving each one's hits (dense in one matrix
search per group, every other mode through its :class:`~xmodal.extension.Mode`), grouping by parent, offsets,
hit vectors, page cursors and the impression log.

:class:`SearchPath` works on the engine's parts (the store, the in-memory catalog, its readers–writer lock,
the vector backend, the encoder, the collection operations, the feedback log) and asks the engine for what
changes while it runs: ``refresh`` (see the writes other processes committed), the default mode and the
mode a name stands for. :class:`~xmodal.engine.Engine` keeps the public methods and calls these.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .backends import VectorBackend
from .batch import dense_groups, in_batch, skip
from .catalog import Catalog
from .collection import Collection
from .courtesy import step_aside
from .cursor import search_scope, vector_scope
from .encoders import Content, Encoder, kinds_of
from .errors import ValidationError
from .extension import BatchMode, Mode, current_caller, query_base
from .feedback.base import FeedbackStore
from .filters import FilterExpr, parsed_once
from .media_loaders import media_loader
from .records import MAX_K, Hits, Item, Query, Target, check_k, check_offset
from .results import SearchResult
from .rwlock import RWLock
from .segments import GROUP_FETCH, group_hits
from .settings import DENSE
from .store.base import Store
from .store.termstats import checked_once
from .updates import query_vector, query_vectors

#: A query's hits (``offset`` + ``k`` of them), their items, and the mode's details.
Found = tuple[Hits, tuple[Item, ...], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class SearchParts:
    """The engine's parts a search reads, and the engine's callbacks for what changes meanwhile."""

    store: Store
    catalog: Catalog
    lock: RWLock
    backend: VectorBackend
    encoder: Encoder
    collection: Collection
    feedback_log: FeedbackStore
    refresh: Callable[..., None]  # refresh(extensions=...): see other processes' writes
    default_mode: Callable[[], str]
    mode_of: Callable[[str], Mode]  # the mode of an extension, by name (an unknown one: ValidationError)
    #: The screens (the guards) before a search: the query, cleaned, and what they decided (or GuardBlocked)
    screen_query: Callable[[Query, str | None], tuple[Query, dict[str, Any]]]
    #: ... and after it: the hits they keep (never more) and the flagged ones' findings by id
    screen_hits: Callable[
        [Hits, tuple[Item, ...], str | None, str | None], tuple[Hits, tuple[Item, ...], dict[str, list[dict[str, str]]]]
    ]


class SearchPath:
    """Searches over an engine's parts (see the module docstring)."""

    def __init__(self, parts: SearchParts) -> None:
        self._p = parts

    # -- text and media queries ----------------------------------------------------------------
    def encode_queries(self, queries: Sequence[Query], base_dir: Path | None = None) -> np.ndarray:
        """The vectors of several queries (their text, their media, or the renormalised mean of them all), in
        one encoder call."""
        contents = [
            Content(
                text=query.text or None,
                media={
                    name: media_loader(name).load(ref, base_dir, item="query").content
                    for name, ref in query.all_media().items()
                },
            )
            for query in queries
        ]
        vectors: np.ndarray = self._p.encoder.encode_queries(contents)
        return vectors

    @parsed_once()  # the query's filter is read at several stages: parsed at the first (xmodal.filters.expr)
    @checked_once()  # so are the full-text statistics: checked for other processes' writes once (store.termstats)
    def search(
        self,
        query: Query | str,
        *,
        base_dir: Path | None = None,
        log: bool = False,
        explain: bool = False,
        with_vectors: bool = False,
        cursor: str | None = None,
        **options: Any,
    ) -> SearchResult:
        """:meth:`xmodal.engine.Engine.search`."""
        start = time.perf_counter()
        query = Query(text=query, **options) if isinstance(query, str) else query
        query = replace(query, logged=query.logged or log)  # feedback can follow: it may explore
        caller = current_caller()
        step_aside()  # a background search (an anonymous caller's) lets foreground ones run first: xmodal.courtesy
        with query_base(base_dir):  # the guards read a query image's text: its path is relative to base_dir
            query, screened = self._p.screen_query(query, caller)  # may clean the text or refuse the query
        step_aside()
        self._p.refresh(extensions=(query.mode or self._p.default_mode()) != DENSE)
        prepared = [self._prepare(query, cursor)]
        run = functools.partial(self._run, log=log, explain=explain, with_vectors=with_vectors, caller=caller)
        return run(prepared, start, base_dir, screened=[screened])[0]

    @parsed_once()
    @checked_once()
    def search_many(
        self,
        queries: Sequence[Query | str],
        *,
        base_dir: Path | None = None,
        log: bool = False,
        explain: bool = False,
        with_vectors: bool = False,
        **options: Any,
    ) -> list[SearchResult]:
        """:meth:`xmodal.engine.Engine.search_many`."""
        start = time.perf_counter()
        given = [in_batch(i, functools.partial(_query, q, options)) for i, q in enumerate(queries)]
        given = [replace(q, logged=q.logged or log) for q in given]
        caller = current_caller()
        with query_base(base_dir):
            screened = [in_batch(i, functools.partial(self._p.screen_query, q, caller)) for i, q in enumerate(given)]
        given = [q for q, _ in screened]
        self._p.refresh(extensions=any((q.mode or self._p.default_mode()) != DENSE for q in given))
        prepared = [in_batch(i, functools.partial(self._prepare, q)) for i, q in enumerate(given)]
        run = functools.partial(self._run, log=log, explain=explain, with_vectors=with_vectors, caller=caller)
        return run(prepared, start, base_dir, screened=[notes for _, notes in screened])

    def _prepare(self, query: Query, cursor: str | None = None) -> tuple[Query, Mode | None]:
        """The query with its mode set (and the offset its ``cursor`` holds), and that mode (None: dense); an
        unknown vector kind, a bad filter or cursor, or an unknown mode is an error here, before any work."""
        query = replace(query, mode=query.mode or self._p.default_mode())
        query = self._own_space(query)
        if cursor is not None:
            query = replace(query, offset=self._p.collection.resume(search_scope(query), cursor, query.offset))
        self.target_kinds(query.target)
        self.check_filters(query.filters, strict=query.strict)
        return query, None if query.mode == DENSE else self._p.mode_of(str(query.mode))

    def _own_space(self, query: Query) -> Query:
        """A query of any target made only of the parts of a kind the encoder keeps in a space of its own
        (``separate_kinds``, e.g. ``audio``: see :mod:`xmodal.encoders.audio`) targets that kind."""
        if query.target != Target.ANY or query.text:
            return query
        parts = set(query.all_media())
        kinds = kinds_of(self._p.encoder)
        for kind in getattr(self._p.encoder, "separate_kinds", ()):
            if kind in kinds and parts == set(kinds[kind]):
                return replace(query, target=kind)
        return query

    def _run(
        self,
        prepared: Sequence[tuple[Query, Mode | None]],
        start: float,
        base_dir: Path | None,
        *,
        log: bool,
        explain: bool,
        with_vectors: bool,
        caller: str | None = None,
        screened: Sequence[dict[str, Any]] = (),
    ) -> list[SearchResult]:
        """Encode the prepared queries (one call), retrieve each one's hits, keep those the guards keep (with
        their findings), and build the results."""
        if not prepared:
            return []
        vectors = self.encode_queries([query for query, _ in prepared], base_dir)
        encode_ms = (time.perf_counter() - start) * 1000
        step_aside()
        found = self._retrieve_many(prepared, vectors)
        step_aside()
        collection = self._p.collection
        results = []
        for i, ((query, _), (hits, items, details)) in enumerate(zip(prepared, found, strict=True)):
            hits, items = skip(hits, items, query.offset)  # past the end, none are left
            hits, items, flags = self._p.screen_hits(hits, items, caller, query.safe)
            details = {**details, "mode": details.get("mode", query.mode)}
            if i < len(screened) and (screened[i] or flags):
                details["guards"] = {**screened[i].get("guards", {}), "flagged_hits": flags}
            vecs = collection.hit_vectors(hits, query.target) if with_vectors else None
            page = collection.next_page(search_scope(query), query.offset, query.k, len(hits))
            took = (time.perf_counter() - start) * 1000
            result = SearchResult(
                hits, items, took, encode_ms, None, details if explain else None, vecs, page, query.text, flags
            )
            if log:
                step_aside()
                result = replace(result, query_id=self.log_search(query, result, details))
            results.append(result)
        return results

    def _retrieve_many(self, prepared: Sequence[tuple[Query, Mode | None]], vectors: np.ndarray) -> list[Found]:
        """Each query's hits (``offset`` + ``k`` of them) with their items: the dense, ungrouped queries that
        share a target and filters in one matrix search, every other one by :meth:`_retrieve`."""
        out: list[Found] = [(Hits.empty(), (), {})] * len(prepared)
        for positions in dense_groups([query for query, _ in prepared], [mode is None for _, mode in prepared]):
            first = prepared[positions[0]][0]
            depth = max(prepared[i][0].k + prepared[i][0].offset for i in positions)
            found = self.search_vectors(
                vectors[positions], k=depth, target=first.target, filters=first.filters, strict=first.strict
            )
            for i, hits in zip(positions, found, strict=True):
                query = prepared[i][0]
                out[i] = (*self.items_for(hits.take(range(min(len(hits), query.k + query.offset)))), {})
        for positions in _mode_runs(prepared):  # in order: a mode may change state as it searches
            mode = prepared[positions[0]][1]
            queries = [replace(prepared[i][0], k=prepared[i][0].k + prepared[i][0].offset) for i in positions]
            if len(positions) > 1 and isinstance(mode, BatchMode):
                for i, result in zip(positions, mode.many(queries, vectors[positions]), strict=True):
                    out[i] = (*self.items_for(result.hits), result.details)
            else:
                out[positions[0]] = self._retrieve(queries[0], mode, vectors[positions[0]])
        return out

    def _retrieve(self, query: Query, mode: Mode | None, vector: np.ndarray) -> Found:
        """The hits of a mode (``None``: dense) with their items. Grouped by parent (``query.group``), it
        fetches several times k hits, and more until k groups come back or no more hits exist."""
        fetch = replace(query, k=min(MAX_K, query.k * GROUP_FETCH)) if query.group else query
        while True:
            if mode is None:
                hits, details = self.search_vector(vector, k=fetch.k, target=query.target, filters=query.filters), {}
            else:
                found = mode(fetch, vector)
                hits, details = found.hits, found.details
            fetched = len(hits)
            hits, items = group_hits(*self.items_for(hits), query.group, query.k)
            if not query.group or len(hits) >= query.k or fetched < fetch.k or fetch.k >= MAX_K:
                return hits, items, details
            fetch = replace(fetch, k=min(MAX_K, fetch.k * GROUP_FETCH))

    # -- vector queries --------------------------------------------------------------------------
    def search_vector(
        self,
        vector: np.ndarray,
        *,
        k: int = 10,
        target: str = Target.ANY,
        filters: Mapping[str, Any] | None = None,
        strict: bool = False,
    ) -> Hits:
        """:meth:`xmodal.engine.Engine.search_vector`."""
        vecs = query_vector(vector, dim=self._p.backend.dim)
        return self.search_vectors(vecs, k=k, target=target, filters=filters, strict=strict)[0]

    def search_vectors(
        self,
        vectors: np.ndarray,
        *,
        k: int = 10,
        target: str = Target.ANY,
        filters: Mapping[str, Any] | None = None,
        strict: bool = False,
    ) -> list[Hits]:
        """:meth:`xmodal.engine.Engine.search_vectors`: one backend call for a matrix of query vectors."""
        p = self._p
        vecs = query_vectors(vectors, p.backend.dim)
        kinds = self.target_kinds(target)
        if not len(vecs):
            return []
        where = FilterExpr.parse(filters)
        p.refresh(extensions=False)
        with p.lock.read():
            if where is not None:  # every backend: no path into values that are never objects (strict: no unknown)
                p.catalog.attributes.check(where, strict=strict)
            found = p.backend.search(vecs, k, kinds, where)
            ids = [[p.catalog.id_by_row[int(row)] for row in rows] for rows, _, _ in found]
        return [
            Hits(_id_array(hit_ids), scores.astype(np.float32), tuple(f"dense:{kind}" for kind in matched))
            for hit_ids, (_, scores, matched) in zip(ids, found, strict=True)
        ]

    def search_by_vector(
        self,
        vector: Any,
        *,
        k: int = 10,
        offset: int = 0,
        target: str = Target.ANY,
        filters: Mapping[str, Any] | None = None,
        strict: bool = False,
        with_vectors: bool = False,
        cursor: str | None = None,
    ) -> SearchResult:
        """:meth:`xmodal.engine.Engine.search_by_vector`."""
        vec = query_vector(vector, dim=self._p.backend.dim)
        if cursor is not None:  # the filter checked before the cursor's scope is taken of it
            self.check_filters(filters or {}, strict=strict)
            offset = self._p.collection.resume(vector_scope(vec[0], target, filters, strict), cursor, offset)
        return self.search_by_vectors(
            vec, k=k, offset=offset, target=target, filters=filters, strict=strict, with_vectors=with_vectors
        )[0]

    def search_by_vectors(
        self,
        vectors: Any,
        *,
        k: int = 10,
        offset: int = 0,
        target: str = Target.ANY,
        filters: Mapping[str, Any] | None = None,
        strict: bool = False,
        with_vectors: bool = False,
    ) -> list[SearchResult]:
        """:meth:`xmodal.engine.Engine.search_by_vectors`."""
        start = time.perf_counter()
        check_k(k)
        check_offset(offset, k)
        collection = self._p.collection
        vecs = query_vectors(vectors, self._p.backend.dim)
        found = self.search_vectors(vecs, k=k + offset, target=target, filters=filters, strict=strict)
        caller, results = current_caller(), []
        for vec, hits in zip(vecs, found, strict=True):
            hits, items = skip(*self.items_for(hits), offset)
            page = collection.next_page(vector_scope(vec, target, filters, strict), offset, k, len(hits))
            hits, items, flags = self._p.screen_hits(hits, items, caller, None)  # the guards, as for a search
            hit_vecs = collection.hit_vectors(hits, target) if with_vectors else None
            took = (time.perf_counter() - start) * 1000
            result = SearchResult(hits, items, took, 0.0, vectors=hit_vecs, next_cursor=page, flags=flags or None)
            results.append(result)
        return results

    # -- shared steps ----------------------------------------------------------------------------
    def vector_kinds(self) -> list[str]:
        """The vector kinds a query can target: those the encoder declares, then any other the index holds."""
        declared = list(kinds_of(self._p.encoder))
        return declared + [kind for kind in self._p.backend.kinds() if kind not in declared]

    def target_kinds(self, target: object) -> list[str] | None:
        """The kinds a target searches (None: every kind); an unknown kind is an error naming the known ones."""
        kind = Target.parse(target)
        if kind == Target.ANY:
            return None
        known = self.vector_kinds()
        if kind not in known:
            choices = ", ".join(["any", *known])
            raise ValidationError("target", f"the index has no vector kind {kind!r}", f"use one of {choices}")
        return [kind]

    def check_filters(self, filters: Mapping[str, Any], *, strict: bool) -> None:
        """Parse ``filters`` and check their paths (see :meth:`AttributeTable.check`), matching nothing."""
        where = FilterExpr.parse(filters)
        if where is not None:
            with self._p.lock.read():
                self._p.catalog.attributes.check(where, strict=strict)

    def items_for(self, hits: Hits) -> tuple[Hits, tuple[Item, ...]]:
        """The hits' items; a hit deleted since the index answered is dropped, not an error."""
        rows = [self._p.catalog.row_by_id.get(i, -1) for i in hits.ids.tolist()]
        found = self._p.store.get_rows([r for r in rows if r >= 0])
        keep = [j for j, row in enumerate(rows) if row in found]
        if len(keep) < len(rows):
            hits = hits.take(keep)
        return hits, tuple(found[rows[j]].item for j in keep)

    def log_search(self, query: Query, result: SearchResult, details: dict[str, Any]) -> str:
        """Record the impression of ``result`` for ``query``; returns its query id."""
        return self._p.feedback_log.log_impression(
            query.text or "",
            result.hits.ids.tolist(),
            scores=result.hits.scores.tolist(),
            provenance=list(result.hits.provenance),
            user=query.user,
            context=details.get("context"),
            plan=details.get("plan", ()),
            mode=str(details.get("mode", query.mode)),
        )


def _mode_runs(prepared: Sequence[tuple[Query, Mode | None]]) -> list[list[int]]:
    """The positions of the queries a mode (or a grouped dense search) answers, in order: consecutive
    ungrouped queries of a mode that answers a batch (:class:`BatchMode`) together, every other one alone."""
    runs: list[list[int]] = []
    for i, (query, mode) in enumerate(prepared):
        if mode is None and not query.group:
            continue  # answered by a dense matrix search
        last = prepared[i - 1] if i else None
        # the protocol check last: isinstance against a runtime Protocol takes microseconds
        joins = not query.group and runs and runs[-1][-1] == i - 1 and isinstance(mode, BatchMode)
        if joins and last is not None and last[0].mode == query.mode and not last[0].group:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def _query(query: Query | str, options: Mapping[str, Any]) -> Query:
    """A :class:`Query` of a text and keyword options, or the query given."""
    return Query(text=query, **options) if isinstance(query, str) else query


def _id_array(ids: list[str]) -> np.ndarray:
    out = np.empty(len(ids), dtype=object)
    out[:] = ids
    return out
