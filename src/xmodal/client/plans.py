"""The client's operations, written once for :class:`~xmodal.client.Client` and
:class:`~xmodal.client.AsyncClient`.

Each operation is a generator (a *plan*): it yields the :class:`~xmodal.client.wire.Call` it needs,
receives the decoded answer (or has the mapped error thrown into it), and returns the engine's result. A
sync client drives it with blocking requests, an async one with awaited ones (:func:`drive` /
:func:`drive_async`); the arguments are checked here as the engine checks them, with the same errors,
before anything is sent.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from ..batch import in_batch
from ..collection import MAX_PAGE, Fetched, Page, check_limit, wanted_ids
from ..errors import GuardBlocked, NotFoundError, ValidationError, XmodalError
from ..export import ExportReport
from ..ingest.prepare import AddReport, Rejection, chunks, dedupe
from ..ingest.vectors import check_vectors_arg, unused_vectors
from ..records import Item, Query, Target, check_k, check_offset
from ..results import SearchResult
from ..store.base import StoredItem
from ..updates import check_delete_filter, check_update
from .decode import fetched_of, item_of, page_of, report_of, result_of
from .wire import (
    Call,
    call,
    changed,
    item_body,
    item_path,
    join_json,
    matrix_json,
    query_body,
    search_body,
    vector_json,
)

T = TypeVar("T")
Plan = Generator[Call, Any, T]

BATCH = 256  #: items per add request at most (the engine's own batch; the server takes up to its max_batch)
MAX_BODY = 16 * 1024 * 1024  #: bytes per add request at most (the server's default limit is 20 MiB)
EXPORT_PAGE = min(MAX_PAGE, 2000)  #: items per scroll page of an export


def drive(plan: Plan[T], send: Callable[[Call], Any]) -> T:
    """Run ``plan`` with ``send`` (a blocking request: the decoded answer, or an :class:`XmodalError`)."""
    try:
        request = next(plan)
        while True:
            try:
                answer = send(request)
            except XmodalError as exc:
                request = plan.throw(exc)
            else:
                request = plan.send(answer)
    except StopIteration as done:
        result: T = done.value
        return result


async def drive_async(plan: Plan[T], send: Callable[[Call], Awaitable[Any]]) -> T:
    """:func:`drive` with an awaited request."""
    try:
        request = next(plan)
        while True:
            try:
                answer = await send(request)
            except XmodalError as exc:
                request = plan.throw(exc)
            else:
                request = plan.send(answer)
    except StopIteration as done:
        result: T = done.value
        return result


# -- writes -------------------------------------------------------------------------------------
def add(
    items: Iterable[Item],
    *,
    base_dir: str | Path | None = None,
    progress: Any = None,
    vectors: Mapping[str, Any] | None = None,
    batch: int = BATCH,
    max_body: int = MAX_BODY,
) -> Plan[AddReport]:
    """``Engine.add``: repeated ids rejected (the first wins), each item's media read here and sent inline,
    a bad item rejected alone with the reason, the others sent in requests of at most ``batch`` items and
    ``max_body`` bytes."""
    report, seen, given = AddReport(), set[str](), check_vectors_arg(vectors)
    base = _base(base_dir)
    for chunk in chunks(items, batch):
        chunk = dedupe(chunk, seen, report)
        bodies = []
        for item in chunk:
            try:
                body = item_body(item, base, given.get(item.id), with_vectors=item.id in given)
                bodies.append(_sized(body, max_body, item.id))
            except XmodalError as exc:
                report.rejected.append(Rejection(item.id, str(exc)))
        for part in _by_size(bodies, max_body):
            report.merge(report_of((yield Call("POST", "/items", join_json(part, "items")))))
        if progress is not None:
            progress(len(chunk))
    report.rejected.extend(unused_vectors(given, seen))
    return report


def delete(ids: Sequence[str], *, purge_feedback: bool = False) -> Plan[int]:
    """``Engine.delete``: how many of ``ids`` existed (one request per id)."""
    existed = 0
    params = {"purge_feedback": "true"} if purge_feedback else None
    for item_id in ids:
        existed += bool((yield call("DELETE", item_path(item_id), params=params))["deleted"])
    return existed


def delete_where(filters: Mapping[str, Any], *, strict: bool = False, purge_feedback: bool = False) -> Plan[int]:
    check_delete_filter(filters)
    body = {"filters": dict(filters), "strict": strict, **_purge(purge_feedback)}
    answer = yield call("POST", "/items/delete", body)
    return int(answer["deleted"])


def clear(*, purge_feedback: bool = False) -> Plan[int]:
    return int((yield call("POST", "/items/delete", {"all": True, **_purge(purge_feedback)}))["deleted"])


def _purge(purge_feedback: bool) -> dict[str, bool]:
    """The body's ``purge_feedback``, sent only when set (a server before it refuses the field)."""
    return {"purge_feedback": True} if purge_feedback else {}


def update_attributes(item_id: str, attributes: Mapping[str, Any], *, merge: bool = True) -> Plan[Item]:
    check_update(attributes, merge)
    return item_of((yield call("PATCH", item_path(item_id), {"attributes": dict(attributes), "merge": merge})))


def feedback(
    query_id: str, item_id: str, event: str = "click", *, position: int | None = None, value: float | None = None
) -> Plan[None]:
    body: dict[str, Any] = {"query_id": query_id, "item_id": item_id, "event": event}
    if position is not None:
        body["position"] = position
    if value is not None:
        body["value"] = value
    yield call("POST", "/feedback", body)


# -- reads --------------------------------------------------------------------------------------
def get(item_id: str, safe: str | None = None) -> Plan[Item]:
    """``Engine.get``: ``GET /items/{id}``, which the server always screens (the key's guards policy)."""
    query = f"?safe={quote(safe, safe='')}" if safe is not None else ""
    return item_of((yield call("GET", item_path(item_id) + query)))


def get_many(
    ids: Sequence[str], *, with_vectors: bool = False, batch: int = BATCH, safe: str | None = None
) -> Plan[Fetched]:
    """``Engine.get_many``: ``POST /items/get`` in requests of at most ``batch`` ids (each id asked once); the
    server screens them (the key's guards policy)."""
    wanted = wanted_ids(ids)
    items: list[Item] = []
    missing: list[str] = []
    vectors: list[dict[str, Any]] = []
    withheld: dict[str, str] = {}
    for start in range(0, len(wanted), batch):
        body = {"ids": wanted[start : start + batch], **changed(with_vectors=with_vectors, safe=safe)}
        found = fetched_of((yield call("POST", "/items/get", body, read=True)), with_vectors=with_vectors)
        items += found.items
        missing += found.missing
        vectors += found.vectors or ()
        withheld |= found.withheld
    return Fetched(tuple(items), tuple(missing), tuple(vectors) if with_vectors else None, withheld)


def vectors(item_id: str) -> Plan[dict[str, Any]]:
    """``Engine.vectors``: the item's stored vectors by kind."""
    found = yield from get_many([item_id], with_vectors=True)
    if item_id in found.withheld:  # never a silent "not found"
        category = found.withheld[item_id]
        raise GuardBlocked("id", f"item {item_id!r} is withheld by the guards (category '{category}')")
    if not found.items or found.vectors is None:
        raise NotFoundError(f"no item with id {item_id!r}")
    return found.vectors[0]


def scroll(
    filters: Mapping[str, Any] | None = None,
    *,
    limit: int = 100,
    cursor: str | None = None,
    with_vectors: bool = False,
    strict: bool = False,
    safe: str | None = None,
) -> Plan[Page]:
    """``Engine.scroll``: ``POST /scroll``."""
    check_limit(limit)
    body = {"limit": limit, **changed(filters=dict(filters or {}), cursor=cursor, with_vectors=with_vectors)}
    body |= changed(strict=strict, safe=safe)
    return page_of((yield call("POST", "/scroll", body, read=True)), with_vectors=with_vectors)


def export_batches(
    fetch: Callable[[str | None], Page], withheld: Counter[str] | None = None
) -> Iterator[list[StoredItem]]:
    """The pages ``fetch(cursor)`` gives, from the first to the last, as the batches an export writes; the items
    the guards withheld from them counted in ``withheld`` by category."""
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        if withheld is not None:
            withheld.update(page.withheld)
        vectors = page.vectors or ({},) * len(page.items)
        yield [StoredItem(-1, item, dict(v)) for item, v in zip(page.items, vectors, strict=True)]
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def with_withheld(report: ExportReport, withheld: Counter[str]) -> ExportReport:
    """``report`` with the items the guards withheld, by category (when there are any)."""
    return replace(report, withheld=dict(sorted(withheld.items()))) if withheld else report


def export_columns(info: Mapping[str, Any] | None) -> tuple[list[str], int]:
    """The vector kinds and dimension of an export's Parquet columns, from the server's ``info()``."""
    return (list(info["vectors"]), int(info["dim"])) if info is not None else ([], 0)


def contains(item_id: object) -> Plan[bool]:
    """Whether the index holds ``item_id`` (``item_id in engine``)."""
    if not isinstance(item_id, str) or not item_id:
        return False
    try:
        yield call("GET", item_path(item_id))
    except NotFoundError:
        return False
    return True


def count(filters: Mapping[str, Any] | None = None, *, strict: bool = False) -> Plan[int]:
    return int((yield call("POST", "/count", {"filters": dict(filters or {}), "strict": strict}, read=True))["count"])


def search(
    query: Query | str,
    *,
    base_dir: str | Path | None = None,
    log: bool = False,
    explain: bool = False,
    with_vectors: bool = False,
    cursor: str | None = None,
    **options: Any,
) -> Plan[SearchResult]:
    """``Engine.search``: the query checked here as the engine checks it, then ``POST /search``."""
    query = _query(query, options)
    body = search_body(query, _base(base_dir), log=log, explain=explain, with_vectors=with_vectors)
    body |= changed(cursor=cursor)
    return result_of((yield call("POST", "/search", body, read=not log)), with_vectors=with_vectors)


def search_many(
    queries: Sequence[Query | str],
    *,
    base_dir: str | Path | None = None,
    log: bool = False,
    explain: bool = False,
    with_vectors: bool = False,
    batch: int = BATCH,
    **options: Any,
) -> Plan[list[SearchResult]]:
    """``Engine.search_many``: ``POST /search/batch`` in requests of at most ``batch`` queries; an error names
    the query by its position in ``queries``."""
    given = [in_batch(i, functools.partial(_query, q, options)) for i, q in enumerate(queries)]
    users = {q.user for q in given}
    if len(users) > 1:
        raise ValidationError(
            "queries", "name different users; a batch over REST has one", "search them in one batch per user"
        )
    head = {"log": log, **changed(user=users.pop() if users else None, explain=explain, with_vectors=with_vectors)}
    bodies = [query_body(q, _base(base_dir)) for q in given]
    results: list[SearchResult] = []
    for start in range(0, len(bodies), batch):
        with _renumbered(start):
            body = {"queries": bodies[start : start + batch], **head}
            answer = yield call("POST", "/search/batch", body, read=not log)
        results += [result_of(r, with_vectors=with_vectors) for r in answer["results"]]
    return results


def search_by_vector(
    vector: Any,
    *,
    k: int = 10,
    offset: int = 0,
    target: str = Target.ANY,
    filters: Mapping[str, Any] | None = None,
    strict: bool = False,
    with_vectors: bool = False,
    cursor: str | None = None,
) -> Plan[SearchResult]:
    check_k(k)
    check_offset(offset, k)
    body = {"vector": vector_json(vector, "vector"), "k": k, "log": False}
    body |= changed(offset=offset, target=Target.parse(target), filters=dict(filters or {}), strict=strict)
    body |= changed(with_vectors=with_vectors, cursor=cursor)
    return result_of((yield call("POST", "/search", body, read=True)), with_vectors=with_vectors)


def search_by_vectors(
    vectors: Any,
    *,
    k: int = 10,
    offset: int = 0,
    target: str = Target.ANY,
    filters: Mapping[str, Any] | None = None,
    strict: bool = False,
    with_vectors: bool = False,
    batch: int = BATCH,
) -> Plan[list[SearchResult]]:
    """``Engine.search_by_vectors``: ``POST /search/batch`` of vector queries (one matrix search a request)."""
    check_k(k)
    check_offset(offset, k)
    rows = matrix_json(vectors)
    options = changed(offset=offset, target=Target.parse(target), filters=dict(filters or {}), strict=strict)
    results: list[SearchResult] = []
    for start in range(0, len(rows), batch):
        queries = [{"vector": row, "k": k, **options} for row in rows[start : start + batch]]
        with _renumbered(start, vectors=True):
            body = {"queries": queries, **changed(with_vectors=with_vectors)}
            answer = yield call("POST", "/search/batch", body, read=True)
        results += [result_of(r, with_vectors=with_vectors) for r in answer["results"]]
    return results


def _base(base_dir: str | Path | None) -> Path | None:
    return Path(base_dir) if base_dir is not None else None


def _query(query: Query | str, options: Mapping[str, Any]) -> Query:
    return Query(text=query, **options) if isinstance(query, str) else query


_MEMBER = re.compile(r"^queries\[(\d+)\](?:\.(.*))?$")


@contextmanager
def _renumbered(start: int, *, vectors: bool = False) -> Iterator[None]:
    """A :class:`ValidationError` about ``queries[i]`` of a request that carried the queries from ``start`` on,
    re-raised naming the caller's: ``queries[start + i]``; ``vectors``: named as the engine names the
    arguments of ``search_by_vectors`` (``vectors[start + i]`` for the vector, the option's own name else)."""
    try:
        yield
    except ValidationError as exc:
        found = _MEMBER.match(exc.field)
        if found is None:
            raise
        position, rest = start + int(found.group(1)), found.group(2)
        if not vectors:
            field = f"queries[{position}]" + (f".{rest}" if rest else "")
        else:
            field = f"vectors[{position}]" if rest in (None, "vector") else rest
        renamed = type(exc)(field, exc.problem, exc.fix, item=exc.item)
        renamed.request_id = exc.request_id
        raise renamed from None


def similar(item_id: str, *, k: int = 10, target: str = Target.ANY, safe: str | None = None) -> Plan[SearchResult]:
    params: dict[str, Any] = {"k": k, "target": Target.parse(target)}
    if safe is not None:
        params["safe"] = safe
    return result_of((yield call("GET", item_path(item_id) + "/similar", params=params)))


def info() -> Plan[dict[str, Any]]:
    """``Engine.info`` (``GET /info``; the server's folder path is not sent)."""
    found: dict[str, Any] = yield call("GET", "/info")
    return found


def modes() -> Plan[list[str]]:
    found: dict[str, Any] = yield call("GET", "/info")
    return list(found["modes"])


def facets() -> Plan[dict[str, list[tuple[Any, int]]]]:
    """The catalog's attribute paths and their most common values, each with its count (``GET /facets``)."""
    found = yield call("GET", "/facets")
    return {name: [(v["value"], int(v["count"])) for v in values] for name, values in found["attributes"].items()}


def health() -> Plan[dict[str, Any]]:
    found: dict[str, Any] = yield call("GET", "/health", server=True)
    return found


def indexes() -> Plan[list[dict[str, Any]]]:
    """The server's indexes: ``name`` (None for the one at the root routes), ``url`` and ``items`` of each."""
    found: dict[str, Any] = yield call("GET", "/indexes", server=True)
    return list(found["indexes"])


def backup(destination: str) -> Plan[dict[str, Any]]:
    """``POST /backup``: a backup named ``destination`` in the server's backup folder (an admin key)."""
    found: dict[str, Any] = yield call("POST", "/backup", {"name": destination})
    return found


def media(item_id: str, medium: str = "image") -> Plan[bytes]:
    """The bytes of an item's stored medium, as it was added."""
    data: bytes = yield call("GET", item_path(item_id) + "/media", params={"medium": medium}, binary=True)
    return data


def thumbnail(item_id: str, size: int = 256) -> Plan[bytes]:
    """A JPEG of the item's image, at most ``size`` pixels on its long side."""
    data: bytes = yield call("GET", item_path(item_id) + "/thumbnail", params={"size": size}, binary=True)
    return data


# -- helpers ------------------------------------------------------------------------------------
def _sized(body: bytes, limit: int, item: str) -> bytes:
    """An item's body, or a :class:`ValidationError` when no request under ``limit`` bytes can carry it."""
    if len(body) + len(b'{"items":[]}') > limit:
        raise ValidationError(
            "body",
            f"the item is {len(body):,} bytes as JSON (media inline), more than a request may be ({limit:,})",
            "send smaller media, or raise max_body_bytes here and on the server",
            item=item,
        )
    return body


def _by_size(bodies: list[bytes], limit: int) -> Iterable[list[bytes]]:
    """Consecutive runs of encoded items whose request stays under ``limit`` bytes."""
    part: list[bytes] = []
    size = len(b'{"items":[]}')
    for body in bodies:
        if part and size + len(body) + 1 > limit:
            yield part
            part, size = [], len(b'{"items":[]}')
        part.append(body)
        size += len(body) + 1
    if part:
        yield part
