"""``POST /items`` (batch add/upsert, JSON or multipart), get, delete, media and thumbnails."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from fastapi import Query as Q
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ..audit import acting_as
from ..errors import NotFoundError, XmodalError
from ..extension import as_caller
from ..ingest.prepare import AddReport, Rejection
from ..records import Item
from ..splitters import split_bytes
from ..view import guarded_view
from .auth import Principal
from .deps import ReadKey, ServerState, WriteKey, server
from .errors import ApiError, decode_base64, loads, parse_json, responses
from .forms import read_form
from .models import SAFE_HELP, SAFE_PATTERN, AddResponse, DeleteResponse, ItemIn, ItemOut, RejectionOut
from .policy import Limits

router = APIRouter(tags=["items"])
IMAGE_TYPES = {
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
}

#: audio and video as the media store keeps them (the suffix of the file added, or the container ffprobe named)
PLAYABLE_TYPES = {
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".ogg": "audio/ogg",
    ".flac": "audio/flac",
    ".m4a": "audio/mp4",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mkv": "video/webm",
    ".matroska": "video/webm",
}

_ITEMS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ItemsRequest"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["items"],
                    "properties": {
                        "items": {"type": "string", "description": "JSON array of items; image_file names an upload"},
                        "images": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "documents": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "PDF, .txt, .md or .html files an item names in document_file",
                        },
                    },
                }
            },
        },
    }
}


async def parse_items(request: Request, max_batch: int) -> tuple[list[Any], dict[str, bytes]]:
    """The raw item objects and the uploaded files by filename."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    files: dict[str, bytes] = {}
    if ctype == "multipart/form-data":
        form = await read_form(request, max_files=max_batch, max_fields=max_batch + 10)
        for _, value in form.multi_items():
            if isinstance(value, UploadFile) and value.filename:
                files[value.filename] = await value.read()
        raw = form.get("items")
        if not isinstance(raw, str):
            raise ApiError(
                422, "missing: a text field with a JSON array of items", "items", "add an 'items' form field"
            )
        items = loads(raw, "items")
    elif ctype in ("application/json", ""):
        body = parse_json(await request.body())
        items = body.get("items") if isinstance(body, dict) else None
    else:
        raise ApiError(
            415,
            f"content type {ctype!r} is not accepted",
            "Content-Type",
            "send application/json or multipart/form-data",
        )
    if not isinstance(items, list):
        raise ApiError(
            422, "must be an array of item objects", "items", 'send {"items": [{"id": "1", "title": "..."}]}'
        )
    if len(items) > max_batch:
        raise ApiError(413, f"{len(items)} items is more than {max_batch} per request", "items", "split the batch")
    return items, files


def build_item(raw: Any, files: dict[str, bytes], limits: Limits, index: int) -> Item:
    """An :class:`Item` from one request object, or an :class:`XmodalError`/``ApiError`` saying why not."""
    spec = _spec(raw, index)
    return _item_of(spec, files, limits, _where(raw, index))


def _where(raw: Any, index: int) -> str:
    found = raw.get("id") if isinstance(raw, dict) else None
    return found if isinstance(found, str) else f"items[{index}]"


def _spec(raw: Any, index: int) -> ItemIn:
    import pydantic

    try:
        return ItemIn.model_validate(raw)
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'item'}: {e['msg']}" for e in exc.errors())
        raise ApiError(422, problems, _where(raw, index)) from None


def document_items(spec: ItemIn, files: dict[str, bytes], where: str) -> list[Item | Rejection]:
    """The parent item and segment items of an item that carries a document (``document_file`` or
    ``document_base64`` with ``document_name``), split by :mod:`xmodal.splitters`."""
    if spec.image_base64 or spec.image_file or spec.media_base64 or spec.media_files or spec.parent or spec.span:
        raise ApiError(
            422,
            "a document item has no image, media, parent or span of its own",
            where,
            "send the document alone: its pages become its segments",
        )
    if spec.document_file is not None:
        if spec.document_base64 is not None:
            raise ApiError(422, "both document_file and document_base64", where, "send one of them")
        if spec.document_file not in files:
            raise ApiError(
                422, f"document_file {spec.document_file!r} was not uploaded", where, "attach it as a file part"
            )
        data, name = files[spec.document_file], spec.document_file
    else:
        if not spec.document_name:
            raise ApiError(422, "document_base64 without document_name", where, "name the file, e.g. 'report.pdf'")
        try:
            data = decode_base64(spec.document_base64 or "", "document_base64")
        except ApiError as exc:
            raise ApiError(422, f"{exc.field}: {exc.error}", where, exc.fix) from None
        name = spec.document_name
    found = split_bytes(data, name, id=spec.id, title=spec.title, attributes=spec.attributes)
    return [Rejection(f"{spec.id} ({r.where})", r.reason) if isinstance(r, Rejection) else r for r in found]


def _item_of(spec: ItemIn, files: dict[str, bytes], limits: Limits, where: str) -> Item:
    image: bytes | None = None
    if spec.image_base64 is not None:
        try:
            image = decode_base64(spec.image_base64, "image_base64")
        except ApiError as exc:
            raise ApiError(422, f"{exc.field}: {exc.error}", where, exc.fix) from None
    elif spec.image_file is not None:
        if spec.image_file not in files:
            raise ApiError(422, f"image_file {spec.image_file!r} was not uploaded", where, "attach it as a file part")
        image = files[spec.image_file]
    if image is not None:
        limits.item_image(image, spec.id)
    media: dict[str, bytes] = {}
    for name, encoded in spec.media_base64.items():
        try:
            media[name] = decode_base64(encoded, f"media_base64.{name}")
        except ApiError as exc:
            raise ApiError(422, f"{exc.field}: {exc.error}", where, exc.fix) from None
    for name, filename in spec.media_files.items():
        if filename not in files:
            raise ApiError(422, f"media_files.{name} {filename!r} was not uploaded", where, "attach it as a file part")
        media[name] = files[filename]
    if "image" in media:
        limits.item_image(media["image"], spec.id)
    return Item.create(
        spec.id,
        title=spec.title,
        text=spec.text,
        attributes=spec.attributes,
        image=image,
        media=media,
        modality=spec.modality,
        parent=spec.parent,
        span=spec.span,
    )


@router.post(
    "/items",
    response_model=AddResponse,
    openapi_extra=_ITEMS_BODY,
    responses=responses(400, 401, 403, 413, 415, 422, 429, 503),
)
async def add_items(request: Request, _: WriteKey) -> AddResponse:
    """Add or replace items; each bad item is reported in ``rejected``, the valid ones are committed."""
    state = server(request)
    raws, files = await parse_items(request, state.config.max_batch)
    items, report = await run_in_threadpool(_build_all, state, raws, files)
    ids = {item.id for item in items}
    given = {
        raw["id"]: raw["vectors"]
        for raw in raws
        if isinstance(raw, dict) and raw.get("id") in ids and raw.get("vectors") is not None
    }
    if items and given:  # the caller's own vectors: one add of its own, outside the group commit
        report.merge(await state.write(lambda: state.engine.add(items, vectors=given)))
    elif items:
        report.merge(await state.add(items))
    rejected = [RejectionOut(where=r.where, reason=r.reason) for r in report.rejected]
    return AddResponse(added=report.added, rejected=rejected)


def _build_all(state: ServerState, raws: list[Any], files: dict[str, bytes]) -> tuple[list[Item], AddReport]:
    items, report = [], AddReport()
    for i, raw in enumerate(raws):
        try:
            spec = _spec(raw, i)
            if spec.document_file is None and spec.document_base64 is None:
                items.append(_item_of(spec, files, state.limits, _where(raw, i)))
                continue
            for found in document_items(spec, files, _where(raw, i)):
                if isinstance(found, Rejection):
                    report.rejected.append(found)
                else:
                    items.append(found)
        except ApiError as exc:
            report.rejected.append(Rejection(exc.field or f"items[{i}]", exc.error))
        except XmodalError as exc:
            report.rejected.append(Rejection(getattr(exc, "item", None) or f"items[{i}]", str(exc)))
    return items, report


def _screened(state: ServerState, item_id: str, caller: Principal, safe: str | None = None) -> Item:
    """The item as the guards let ``caller`` see it (its key's policy, at the ``safe`` level): a withheld item
    is a 422 naming the category (:class:`~xmodal.errors.GuardBlocked`), never a silent "not found"."""
    with as_caller(caller.policy_name):
        return state.engine.get(item_id, screen=True, safe=safe)


def _media_ref(
    state: ServerState, item_id: str, caller: Principal, medium: str = "image", safe: str | None = None
) -> str:
    ref = _screened(state, item_id, caller, safe).media.get(medium)
    if not isinstance(ref, str):
        raise NotFoundError(f"item {item_id!r} has no {medium}")
    return ref


_JPEG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/jpeg": {}}, "description": "a JPEG thumbnail"}}
_IMAGE_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {t: {} for t in sorted({*IMAGE_TYPES.values(), *PLAYABLE_TYPES.values(), "audio/mp4"})},
        "description": "the image, or the audio or video recording (byte ranges served)",
    }
}


def _export_meta(state: ServerState, item_id: str) -> dict[str, Any]:
    """What an exported image's manifest says of it: the item's title, and whether its own provenance reading
    claims AI generation (:mod:`xmodal.guards.provenance`)."""
    status = state.engine.item_guard(item_id) or {}
    return {
        "title": state.engine.get(item_id).title or item_id,
        "ai_generated": bool((status.get("provenance") or {}).get("ai_generated")),
    }


@router.get(
    "/items/{item_id:path}/media",
    response_class=Response,
    responses={**_IMAGE_CONTENT, **responses(401, 403, 404, 429)},
)
def get_media(
    request: Request,
    item_id: str,
    caller: ReadKey,
    medium: Annotated[str, Q(min_length=1, max_length=512, description="which medium (default: image)")] = "image",
    safe: Annotated[str | None, Q(pattern=SAFE_PATTERN, description=SAFE_HELP)] = None,
) -> Response:
    """The item's stored media file (its image unless ``medium`` names another), as it was added. Byte
    ranges are served (``Range``), so a player seeks to a segment's start without reading the whole file.
    An item the guards withhold from the caller (as ``GET /items/{id}``) is a 422 naming the category."""
    state = server(request)
    path = state.engine.media.path(_media_ref(state, item_id, caller, medium, safe))
    kind = IMAGE_TYPES.get(path.suffix) or PLAYABLE_TYPES.get(path.suffix, "application/octet-stream")
    if state.thumbs.exporter is not None and path.suffix in IMAGE_TYPES:  # watermarked and signed as configured
        marked = state.thumbs.export(path, **_export_meta(state, item_id))
        if marked is not None:
            return Response(marked[0], media_type=marked[1], headers={"Cache-Control": "public, max-age=86400"})
    if medium == "audio" and kind.startswith("video/"):
        kind = "audio/" + kind.split("/", 1)[1]  # an .m4a kept as .mp4
    return FileResponse(
        path,
        media_type=kind,
        headers={"Cache-Control": "public, max-age=86400, immutable"},
    )


@router.get(
    "/items/{item_id:path}/thumbnail",
    response_class=Response,
    responses={**_JPEG, **responses(401, 403, 404, 422, 429)},
)
def get_thumbnail(
    request: Request,
    item_id: str,
    caller: ReadKey,
    size: Annotated[int, Q(ge=16, le=512)] = 256,
    safe: Annotated[str | None, Q(pattern=SAFE_PATTERN, description=SAFE_HELP)] = None,
) -> Response:
    """A JPEG at most ``size`` pixels on its long side (cached in memory); withheld as ``GET /items/{id}``."""
    state = server(request)
    path = state.engine.media.path(_media_ref(state, item_id, caller, safe=safe))
    meta = _export_meta(state, item_id) if state.thumbs.exporter is not None else {}
    data = state.thumbs.get(path, size, **meta)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"})


@router.get("/items/{item_id:path}", response_model=ItemOut, responses=responses(401, 403, 404, 422, 429))
def get_item(
    request: Request,
    item_id: str,
    caller: ReadKey,
    safe: Annotated[str | None, Q(pattern=SAFE_PATTERN, description=SAFE_HELP)] = None,
) -> ItemOut:
    """One item with its fields and media URLs, screened by the guards as a search's hits are (the key's
    policy, at the ``safe`` level): a withheld item (quarantined, a sensitive image, toxic text under
    ``safe=strict``...) is a 422 naming the category; personal data is redacted where the policy says so."""
    state = server(request)
    return ItemOut.model_validate(guarded_view(state.engine, _screened(state, item_id, caller, safe)))


@router.delete("/items/{item_id:path}", response_model=DeleteResponse, responses=responses(401, 403, 429, 503))
async def delete_item(
    request: Request,
    item_id: str,
    caller: WriteKey,
    purge_feedback: Annotated[bool, Q(description="also drop the feedback log's events of the item")] = False,
) -> DeleteResponse:
    """Delete an item, and its segments with it; ``deleted`` says whether it existed. Acknowledged once
    committed. Privacy-complete: no index file, log or cache keeps its text, media or vectors (the feedback
    log keeps its id unless ``purge_feedback``); the admin audit log (``GET /audit``) records the API key."""
    state = server(request)

    def delete() -> int:
        with acting_as(caller.actor):
            return state.engine.delete([item_id], purge_feedback=purge_feedback)

    count = await state.write(delete)
    state.thumbs.forget_missing()
    return DeleteResponse(id=item_id, deleted=bool(count))
