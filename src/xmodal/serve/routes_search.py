"""``POST /search`` (JSON or multipart with an image), similar items, facets and feedback."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Query as Q
from starlette.datastructures import UploadFile

from ..cursor import position_of
from ..extension import as_caller
from ..ltr.pipeline import hits_unexplained
from ..records import GROUPS, SAFE_LEVELS, Query, Target
from ..results import SearchResult
from ..view import result_view, spotlights
from .auth import Principal
from .bodies import CheckedRoute
from .deps import ReadKey, ServerState, server
from .errors import ApiError, decode_base64, loads, parse_json, responses, validate
from .forms import read_form
from .models import (
    SAFE_HELP,
    SAFE_PATTERN,
    TARGET_HELP,
    TARGET_PATTERN,
    FacetsResponse,
    FacetValue,
    FeedbackRequest,
    FeedbackResponse,
    SearchRequest,
    SearchResponse,
)
from .policy import MAX_K

router = APIRouter(tags=["search"], route_class=CheckedRoute)
MAX_FACET_VALUES = 50

_SEARCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/SearchRequest"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        "text": {"type": "string"},
                        "k": {"type": "integer", "minimum": 1, "maximum": MAX_K},
                        "offset": {"type": "integer", "minimum": 0, "maximum": MAX_K},
                        "target": {"type": "string", "pattern": TARGET_PATTERN, "description": TARGET_HELP},
                        "mode": {"type": "string"},
                        "group": {"type": "string", "enum": [g for g in GROUPS if g]},
                        "filters": {"type": "string", "description": "a JSON object, as text"},
                        "strict": {"type": "boolean"},
                        "safe": {"type": "string", "enum": list(SAFE_LEVELS)},
                        "explain": {"type": "boolean"},
                        "log": {"type": "boolean"},
                        "with_vectors": {"type": "boolean"},
                        "cursor": {"type": "string"},
                        "spotlight": {"type": "boolean"},
                    },
                }
            },
        },
    }
}


def search_response(result: SearchResult, *, explain: bool = False, **overrides: Any) -> SearchResponse:
    """The response of a search or a similar-items request: the shared result view (:mod:`xmodal.view`), with
    the result's explanation only when ``explain`` (a logged search's is kept for its impression, not sent)."""
    if result.explain is not None and not explain:
        result = replace(result, explain=None)  # not turned into JSON only to be dropped
    return SearchResponse.model_validate({**result_view(result), **overrides})


async def parse_search(request: Request, caller: Principal) -> tuple[SearchRequest, bytes | None, bytes | None]:
    """A :class:`SearchRequest` and the uploaded image and sound bytes, from JSON or multipart. A JSON body is parsed
    and checked on a worker thread, its CPU charged to the caller like the search's (a large body is
    milliseconds of work the event loop would otherwise do while every other request waits)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await read_form(request, max_files=1, max_fields=20)
        upload, sound = form.get("image"), form.get("audio")
        image = await upload.read() if isinstance(upload, UploadFile) else None
        audio = await sound.read() if isinstance(sound, UploadFile) else None
        data: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str) and k not in ("image", "audio")}
        if "filters" in data:
            data["filters"] = loads(data["filters"], "filters")
        for name, got in (("image", image), ("audio", audio)):
            if got is None and isinstance(form.get(name), str) and form[name]:
                raise ApiError(422, "must be a file part, not a text field", name, f"upload the {name} as a file")
        return validate(SearchRequest, data), image, audio
    if ctype not in ("application/json", ""):
        raise ApiError(
            415,
            f"content type {ctype!r} is not accepted",
            "Content-Type",
            "send application/json or multipart/form-data",
        )
    body = await request.body()

    def parse() -> tuple[SearchRequest, bytes | None, bytes | None]:
        req = validate(SearchRequest, parse_json(body))
        image = decode_base64(req.image_base64, "image_base64") if req.image_base64 else None
        return req, image, decode_base64(req.audio_base64, "audio_base64") if req.audio_base64 else None

    return await server(request).limits.work_async(caller, parse, image=False)


@router.post(
    "/search",
    response_model=SearchResponse,
    openapi_extra=_SEARCH_BODY,
    responses=responses(400, 401, 403, 413, 415, 422, 429, 501, 503),
)
async def search(request: Request, caller: ReadKey) -> SearchResponse:
    """Search by text and/or image, with filters; each hit carries its provenance and a thumbnail URL."""
    state = server(request)
    await state.limits.wait_turn(caller)
    req, image, audio = await parse_search(request, caller)
    # from here (the body read: a slow upload holds up nobody) a keyed search is foreground: anonymous ones wait
    with state.limits.admission.foreground(caller.key is not None):
        return await _search(state, caller, req, image, audio)


async def _search(
    state: ServerState, caller: Principal, req: SearchRequest, image: bytes | None, audio: bytes | None
) -> SearchResponse:
    """:func:`search` once its body is read."""
    # size checks (image: its header), cost; the skipped hits of an offset (or a cursor) are charged as hits too
    skipped = req.offset + position_of(req.cursor)
    state.limits.search(caller, text=req.text, image=image, k=min(req.k + skipped, MAX_K))

    # an anonymous caller's impression is logged by its search, on its thread: charged to its CPU account and after
    # a point where it steps aside for keyed work (xmodal.courtesy), not on the writer thread that keyed callers'
    # impressions queue on
    log_here = req.log and caller.key is None

    def run() -> tuple[SearchResult, Query | None]:
        state.limits.search_sound(caller, audio)  # charged by its length, which takes a probe
        # an anonymous caller's image is decoded in the media worker process (xmodal.serve.media_worker)
        image_read = state.limits.search_image(caller, image)
        return _run_search(state, req, image_read, caller.policy_name, audio, log=log_here)

    # an anonymous caller's on its threads, a keyed image query on the decode threads (a few at a time), others on
    # the worker threads
    result, query = await state.limits.work_async(caller, run, image=image is not None)
    query_id = getattr(result, "query_id", None)
    log_impression = getattr(state.engine, "log_impression", None)
    if req.log and query_id is None and log_impression is not None and query is not None:
        query_id = await state.log(lambda: log_impression(query, result, user=req.user))
    marked = spotlights(result.items) if req.spotlight else None
    return search_response(result, query_id=query_id, explain=req.explain, spotlight=marked)


def _run_search(
    state: ServerState,
    req: SearchRequest,
    image: bytes | None,
    caller: str | None = None,
    audio: bytes | None = None,
    *,
    log: bool = False,
) -> tuple[SearchResult, Query | None]:
    """The search of ``req``, and its query (None for a vector search); ``log``: the engine logs its impression
    (else the route does, on the writer thread)."""
    if req.vector is not None:
        if audio is not None:
            raise ApiError(422, "a search by vector takes no sound", "audio", "send the vector or the sound")
        return _run_vector_search(state, req, image), None
    fields: dict[str, Any] = {
        "text": req.text,
        "image": image,
        "filters": req.filters,
        "k": req.k,
        "offset": req.offset,
        "target": req.target,
        "user": req.user,
        "group": req.group,
        "strict": req.strict,
        "safe": req.safe,
        "logged": req.log,  # exploration only where feedback can come back
    }
    if audio is not None:  # a sound query: its 'audio' vector (xmodal.encoders.audio)
        fields["media"] = {"audio": audio}
    if req.mode is not None:  # none given: the index's default mode
        fields["mode"] = req.mode
    query = Query(**fields)
    details = req.explain or (req.log and query.mode != "dense")  # the impression keeps the plan for learning
    try:
        # the guards apply this API key's policy; an explanation kept only for the impression lists no hits
        with as_caller(caller), contextlib.nullcontext() if req.explain else hits_unexplained():
            found = state.engine.search(
                query, explain=details, with_vectors=req.with_vectors, cursor=req.cursor, log=log
            )
        return found, query
    except ImportError as exc:
        raise ApiError(
            422,
            f"mode {query.mode!r} is not available on this server ({exc})",
            "mode",
            "use mode 'dense' or install the extra that provides it",
        ) from None


def _run_vector_search(state: ServerState, req: SearchRequest, image: bytes | None) -> SearchResult:
    """A search with the caller's own vector: dense, so no text, image, mode or grouping with it."""
    for name, given in (("text", req.text), ("image", image), ("group", req.group)):
        if given:
            raise ApiError(422, "cannot be combined with a vector", name, "send the vector alone, or drop it")
    if req.mode not in (None, "dense"):
        raise ApiError(422, "a vector search is a dense search", "mode", "drop mode, or send text instead of a vector")
    return state.engine.search_by_vector(
        req.vector,
        k=req.k,
        offset=req.offset,
        target=req.target,
        filters=req.filters,
        strict=req.strict,
        with_vectors=req.with_vectors,
        cursor=req.cursor,
    )


@router.get(
    "/items/{item_id:path}/similar", response_model=SearchResponse, responses=responses(401, 403, 404, 422, 429)
)
async def similar(
    request: Request,
    item_id: str,
    caller: ReadKey,
    k: Annotated[int, Q(ge=1, le=MAX_K)] = 10,
    target: Annotated[str, Q(pattern=TARGET_PATTERN, description=TARGET_HELP)] = Target.ANY.value,
    safe: Annotated[str | None, Q(pattern=SAFE_PATTERN, description=SAFE_HELP)] = None,
) -> SearchResponse:
    """Items closest to a stored item (the item itself left out), by its primary vector (``Engine.similar``),
    screened by the guards as a search's hits are."""
    state = server(request)
    state.limits.similar(caller, k)
    await state.limits.wait_turn(caller)

    def run() -> SearchResult:
        with as_caller(caller.policy_name):  # the guards apply this API key's policy
            return state.engine.similar(item_id, k=k, target=target, safe=safe)

    with state.limits.admission.foreground(caller.key is not None):  # a keyed search: anonymous ones wait
        return search_response(await state.limits.work_async(caller, run, image=False))


@router.get("/facets", response_model=FacetsResponse, responses=responses(401, 403, 429))
def facets(request: Request, _: ReadKey) -> FacetsResponse:
    """The catalog's attributes and their most common values with counts (for filter widgets)."""
    out: dict[str, list[FacetValue]] = {}
    with server(request).engine.attribute_table() as table:  # writes wait while the counts are read
        for name in table.attributes():
            values = sorted(table.values(name).items(), key=lambda kv: (-kv[1], str(kv[0])))[:MAX_FACET_VALUES]
            out[name] = [FacetValue(value=v, count=n) for v, n in values if isinstance(v, (str, int, float, bool))]
    return FacetsResponse(attributes=out)


@router.post("/feedback", response_model=FeedbackResponse, responses=responses(400, 401, 403, 404, 422, 429, 501, 503))
async def feedback(request: Request, body: FeedbackRequest, _: ReadKey) -> FeedbackResponse:
    """Record an event (click, add, like...) on a hit of a logged search (``query_id`` from POST /search)."""
    state = server(request)
    record = getattr(state.engine, "feedback", None)
    if record is None:
        raise ApiError(501, "this engine does not record feedback", None, "upgrade xmodal (learning to rank)")
    await state.write(lambda: record(body.query_id, body.item_id, body.event, position=body.position, value=body.value))
    return FeedbackResponse(recorded=True)
