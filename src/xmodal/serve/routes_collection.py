"""Collection operations: ``POST /count``, ``POST /scroll`` (pages of items by cursor), ``POST /items/delete``
(by filter, or all), ``PATCH /items/{id}`` (attributes, without encoding the item again) and ``GET /info``."""

from __future__ import annotations

import functools

from fastapi import APIRouter, Request

from ..audit import acting_as
from ..collection import Page
from ..extension import as_caller
from ..view import item_view, items_view
from .bodies import CheckedRoute
from .deps import ReadKey, WriteKey, server
from .errors import ApiError, responses
from .models import (
    CountRequest,
    CountResponse,
    DeleteWhereRequest,
    DeleteWhereResponse,
    InfoResponse,
    ItemOut,
    ScrollRequest,
    ScrollResponse,
    UpdateRequest,
)
from .policy import TOKENS_PER_100_K

router = APIRouter(tags=["collection"], route_class=CheckedRoute)


@router.post("/count", response_model=CountResponse, responses=responses(400, 401, 403, 422, 429))
async def count(request: Request, body: CountRequest, caller: ReadKey) -> CountResponse:
    """How many items match ``filters`` (every item when there are none)."""
    state = server(request)
    await state.limits.wait_turn(caller)
    run = functools.partial(state.engine.count, body.filters, strict=body.strict)
    return CountResponse(count=await state.limits.work_async(caller, run, image=False))


@router.post(
    "/scroll",
    response_model=ScrollResponse,
    response_model_exclude_unset=True,  # an item's vectors only when asked for
    responses=responses(400, 401, 403, 422, 429),
)
async def scroll(request: Request, body: ScrollRequest, caller: ReadKey) -> ScrollResponse:
    """A page of the items that match ``filters`` (every item without), in the order they were first added;
    send ``next_cursor`` back as ``cursor`` with the same filters for the next page (null: the last page)."""
    state = server(request)
    state.limits.charge(caller, TOKENS_PER_100_K * body.limit / 100)  # like that many hits
    await state.limits.wait_turn(caller)

    def run() -> Page:
        with as_caller(caller.policy_name):  # the guards screen the page under this API key's policy
            return state.engine.scroll(
                body.filters,
                limit=body.limit,
                cursor=body.cursor,
                with_vectors=body.with_vectors,
                strict=body.strict,
                safe=body.safe,
            )

    page = await state.limits.work_async(caller, run, image=False)
    views = items_view(page.items, page.vectors)
    out = {"items": views, "next_cursor": page.next_cursor, "withheld": dict(page.withheld)}
    return ScrollResponse.model_validate(out)


@router.post("/items/delete", response_model=DeleteWhereResponse, responses=responses(400, 401, 403, 422, 429, 503))
async def delete_where(request: Request, body: DeleteWhereRequest, caller: WriteKey) -> DeleteWhereResponse:
    """Delete every item that matches ``filters`` (and their segments), or every item with ``all: true``.
    Acknowledged once committed; a search never returns a deleted item after that."""
    state = server(request)
    if body.all == (body.filters is not None):
        raise ApiError(
            422,
            "give either filters or all: true, not both nor neither",
            "filters",
            'send {"filters": {"color": "red"}} to delete matching items, or {"all": true} to delete every item',
        )
    filters, purge = body.filters or {}, body.purge_feedback

    def delete() -> int:
        with acting_as(caller.actor):  # the admin audit log records the API key
            if body.all:
                return state.engine.clear(purge_feedback=purge)
            return state.engine.delete_where(filters, strict=body.strict, purge_feedback=purge)

    deleted = await state.write(delete)
    state.thumbs.forget_missing()
    return DeleteWhereResponse(deleted=deleted)


@router.patch("/items/{item_id:path}", response_model=ItemOut, responses=responses(400, 401, 403, 404, 422, 429, 503))
async def update_item(request: Request, item_id: str, body: UpdateRequest, _: WriteKey) -> ItemOut:
    """Update an item's attributes (merged over the old ones unless ``merge`` is false) without encoding it
    again; filters see the new values as soon as this answers."""
    state = server(request)
    item = await state.write(lambda: state.engine.update_attributes(item_id, body.attributes, merge=body.merge))
    return ItemOut.model_validate(item_view(item))


@router.get("/info", response_model=InfoResponse, responses=responses(401, 403, 429))
def info(request: Request, _: ReadKey) -> InfoResponse:
    """The index: items by modality, vectors by kind, encoder, dimension, backend, index kind, attribute paths,
    extensions and search modes (``Engine.info``; the server's folder path left out)."""
    found = server(request).engine.info()
    found.pop("path", None)
    return InfoResponse.model_validate(found)
