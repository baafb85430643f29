"""Batch operations: ``POST /search/batch`` (many searches in one request) and ``POST /items/get`` (many
items by id)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from typing import Any

from fastapi import APIRouter, Request

from ..batch import renumbered
from ..collection import Fetched
from ..extension import as_caller
from ..ltr.pipeline import hits_unexplained
from ..records import Query
from ..results import SearchResult
from ..view import items_view
from .auth import Principal
from .bodies import CheckedRoute
from .deps import ReadKey, ServerState, server
from .errors import ApiError, decode_base64, parse_json, responses, validate
from .models import BatchSearchRequest, BatchSearchResponse, GetManyRequest, GetManyResponse, QueryIn
from .policy import MAX_K, TOKENS_PER_100_K
from .routes_search import search_response

router = APIRouter(tags=["batch"], route_class=CheckedRoute)


@router.post(
    "/search/batch",
    response_model=BatchSearchResponse,
    responses=responses(400, 401, 403, 413, 422, 429, 503),
)
async def search_batch(request: Request, caller: ReadKey) -> BatchSearchResponse:
    """Several searches, one result each in order. Text and image queries are encoded in one model call; the
    dense ones (and those with your own ``vector``) that share a target and filters are searched in one
    matrix operation. A bad query is a 422 naming it (``queries[3].target``); no search runs then."""
    state = server(request)
    await state.limits.wait_turn(caller)
    body = await request.body()
    req, images = await state.limits.work_async(caller, lambda: _parse(body), image=False)
    if len(req.queries) > state.config.max_batch:
        raise ApiError(
            413, f"{len(req.queries)} queries is more than {state.config.max_batch}", "queries", "split the batch"
        )
    for i, (spec, image) in enumerate(zip(req.queries, images, strict=True)):
        with renumbered([i]):  # size checks (images: their headers) and cost, skipped hits included
            state.limits.search(caller, text=spec.text, image=image, k=min(spec.k + spec.offset, MAX_K))

    def run() -> list[tuple[SearchResult, Query | None]]:
        # an anonymous caller's images are decoded in the media worker process (xmodal.serve.media_worker)
        return _run(state, req, state.limits.search_images(caller, images), caller.policy_name)

    found = await state.limits.work_async(caller, run, image=any(image is not None for image in images))
    query_ids: list[str | None] = [None] * len(found)
    if req.log:  # on the writer thread, as a single search's impression is: queued together, committed together
        pending = {
            i: state.submit_log(functools.partial(state.engine.log_impression, logged, result))
            for i, (result, logged) in enumerate(found)
            if logged is not None
        }
        for i, future in pending.items():
            query_ids[i] = await asyncio.wrap_future(future)
    return BatchSearchResponse(
        results=[
            search_response(r, query_id=qid, explain=req.explain) for (r, _), qid in zip(found, query_ids, strict=True)
        ]
    )


def _parse(body: bytes) -> tuple[BatchSearchRequest, list[bytes | None]]:
    req = validate(BatchSearchRequest, parse_json(body))
    images = [
        decode_base64(q.image_base64, f"queries[{i}].image_base64") if q.image_base64 else None
        for i, q in enumerate(req.queries)
    ]
    return req, images


def _run(
    state: ServerState, req: BatchSearchRequest, images: list[bytes | None], caller: str | None = None
) -> list[tuple[SearchResult, Query | None]]:
    """The text and image queries through ``Engine.search_many``, the vector queries through
    ``Engine.search_by_vectors`` (one call per group of the same options); the results in order, each with
    its query (None for a vector query: not logged)."""
    out: list[tuple[SearchResult, Query | None] | None] = [None] * len(req.queries)
    texts = [i for i, q in enumerate(req.queries) if q.vector is None]
    queries = [_query(i, req.queries[i], images[i], req.user, req.log) for i in texts]
    if queries:
        details = req.explain or req.log  # an impression keeps the plan for learning
        unexplained = contextlib.nullcontext() if req.explain else hits_unexplained()  # kept for impressions only
        with renumbered(texts):
            with as_caller(caller), unexplained:  # the guards apply this API key's policy
                found = state.engine.search_many(queries, explain=details, with_vectors=req.with_vectors)
        for i, query, result in zip(texts, queries, found, strict=True):
            out[i] = (result, query)
    for positions in _vector_groups(req.queries):
        first = req.queries[positions[0]]
        with renumbered(positions, ".vector"):
            found = state.engine.search_by_vectors(
                [req.queries[i].vector for i in positions],
                k=first.k,
                offset=first.offset,
                target=first.target,
                filters=first.filters,
                strict=first.strict,
                with_vectors=req.with_vectors,
            )
        for i, result in zip(positions, found, strict=True):
            out[i] = (result, None)
    return [pair for pair in out if pair is not None]


def _query(position: int, spec: QueryIn, image: bytes | None, user: str | None, logged: bool) -> Query:
    fields: dict[str, Any] = {
        "user": user,
        "logged": logged,  # exploration only where feedback can come back
        "text": spec.text,
        "image": image,
        "filters": spec.filters,
        "k": spec.k,
        "offset": spec.offset,
        "target": spec.target,
        "group": spec.group,
        "strict": spec.strict,
        "safe": spec.safe,
    }
    if spec.mode is not None:  # none given: the index's default mode
        fields["mode"] = spec.mode
    with renumbered([position]):
        return Query(**fields)


def _vector_groups(queries: list[QueryIn]) -> list[list[int]]:
    """The positions of the vector queries, grouped by their options (one matrix search per group); each
    refused here when it also has text, an image, a grouping or a mode other than dense."""
    groups: dict[str, list[int]] = {}
    for i, q in enumerate(queries):
        if q.vector is None:
            continue
        for name, given in (("text", q.text), ("image_base64", q.image_base64), ("group", q.group)):
            if given:
                raise ApiError(422, "cannot be combined with a vector", f"queries[{i}].{name}", "send the vector alone")
        if q.mode not in (None, "dense"):
            raise ApiError(422, "a vector search is a dense search", f"queries[{i}].mode", "drop mode")
        key = json.dumps([q.k, q.offset, q.target, q.filters, q.strict], sort_keys=True)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


@router.post(
    "/items/get",
    response_model=GetManyResponse,
    response_model_exclude_unset=True,  # an item's vectors only when asked for
    responses=responses(400, 401, 403, 413, 422, 429),
)
async def get_many(request: Request, body: GetManyRequest, caller: ReadKey) -> GetManyResponse:
    """Many items by id in one read, in the order asked; the ids the index does not hold are listed in
    ``missing`` (not an error)."""
    state = server(request)
    _check_batch(state, caller, len(body.ids))

    def run() -> Fetched:
        with as_caller(caller.policy_name):  # screened under this API key's guards policy
            return state.engine.get_many(body.ids, with_vectors=body.with_vectors, screen=True, safe=body.safe)

    fetched = await state.limits.work_async(caller, run, image=False)
    views = items_view(fetched.items, fetched.vectors)
    out = {"items": views, "missing": list(fetched.missing), "withheld": dict(fetched.withheld)}
    return GetManyResponse.model_validate(out)


def _check_batch(state: ServerState, caller: Principal, size: int) -> None:
    """Refuse more than ``max_batch`` members; charge the rest like hits (``k``)."""
    if size > state.config.max_batch:
        raise ApiError(413, f"{size} ids is more than {state.config.max_batch}", "ids", "split the batch")
    state.limits.charge(caller, TOKENS_PER_100_K * size / 100)
