"""Errors the routes raise, the documented error responses, and the handlers that write them."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Any

import pydantic
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import ConfigError, DiskFull, NotFoundError, StorageError, ValidationError
from ..ingest.catalog import nesting_depth
from .auth import AuthError
from .echo import clip, clip_message
from .limits import BodyLimitMiddleware, RateLimited
from .logs import logger, request_id
from .models import ErrorBody
from .writer import QueueFull

#: How deep lists and objects may nest in a JSON body (a filter expression nests a few levels a condition).
MAX_BODY_NESTING = 64


class ApiError(Exception):
    """An error with its HTTP status, ready to be written as an :class:`ErrorBody`."""

    def __init__(
        self,
        status: int,
        error: str,
        field: str | None = None,
        fix: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(error)
        self.status, self.error, self.field, self.fix, self.details = status, error, field, fix, details


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI declarations of the error statuses a route can answer."""
    text = {
        400: "malformed body (invalid JSON or UTF-8, broken multipart)",
        401: "missing or unknown API key",
        403: "the key lacks the scope",
        404: "no such item or file",
        413: "body larger than the limit",
        415: "unsupported content type",
        421: "the request's Host is not one this server answers to (allowed_hosts)",
        422: "invalid fields (named in the answer)",
        429: "rate limited (see Retry-After)",
        501: "not supported by this engine",
        503: "write queue full or server stopping",
        507: "no space left on the index folder's disk (nothing of the write was kept)",
    }
    return {code: {"model": ErrorBody, "description": text[code]} for code in codes}


class BodyError(HTTPException):
    """An :class:`ApiError` of a body FastAPI parses for a route (see :mod:`.bodies`): an ``HTTPException``,
    so FastAPI passes it on as it is, and answered as the :class:`ApiError` it carries."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.status, error.error)
        self.error = error


def parse_json(body: bytes) -> Any:
    """Decode a JSON body, or raise a 400 saying what is wrong with it."""
    if not body:
        raise ApiError(400, "the request body is empty", "body", "send a JSON object")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400, f"the body is not valid UTF-8 (byte {exc.start})", "body", "encode the JSON as UTF-8"
        ) from None
    return loads(text, "body")


def loads(text: str, field: str) -> Any:
    """``json.loads`` with every failure as a 400 naming the field: syntax, nesting deeper than
    :data:`MAX_BODY_NESTING` (whether the parser ran out of stack or not), the
    non-JSON constants NaN/Infinity, and lone UTF-16 surrogates (``"\\ud800"``), which Python
    accepts but no response could ever encode again."""

    def constant(name: str) -> Any:
        raise ApiError(400, f"{name} is not valid JSON", field, "use a finite number or null")

    try:
        value = json.loads(text, parse_constant=constant)
    except ValueError as exc:
        raise ApiError(400, f"not valid JSON: {exc}", field, "send a JSON object") from None
    except RecursionError:
        raise _too_deep(field, None) from None
    depth = nesting_depth(value, MAX_BODY_NESTING)  # counted without recursion, as every later step must be
    if depth > MAX_BODY_NESTING:
        raise _too_deep(field, depth)
    if "\\u" in text and _has_surrogate(value):
        raise ApiError(
            400, "a string holds a lone UTF-16 surrogate escape (\\ud800-\\udfff)", field, "send valid Unicode text"
        )
    return value


def _too_deep(field: str, depth: int | None) -> ApiError:
    levels = "more levels than the parser can follow" if depth is None else f"at least {depth} levels"
    return ApiError(
        400,
        f"JSON nested too deeply ({levels}; the limit is {MAX_BODY_NESTING})",
        field,
        "flatten the structure",
    )


def _has_surrogate(value: Any) -> bool:
    """Whether any string (key or value) in ``value`` holds a lone surrogate, found without recursion: a
    body the parser accepted may nest deeper than Python's call stack."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if any("\ud800" <= c <= "\udfff" for c in node):
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def validate(model: type[pydantic.BaseModel], data: Any) -> Any:
    """``model.model_validate(data)`` with pydantic's errors turned into a 422 naming each field."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise from_pydantic(exc) from None


def from_pydantic(exc: pydantic.ValidationError | RequestValidationError) -> ApiError:
    details = [{"field": ".".join(str(p) for p in e["loc"]) or "body", "problem": e["msg"]} for e in exc.errors()]
    first = details[0] if details else {"field": "body", "problem": "invalid"}
    return ApiError(
        422, f"{first['field']}: {first['problem']}", str(first["field"]), "see details for every problem", details
    )


def decode_base64(text: str, field: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "is not valid base64", field, "base64-encode the image file bytes") from None


def error_response(
    status: int,
    error: str,
    field: str | None = None,
    fix: str | None = None,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    kind: type[Exception] | None = None,
) -> JSONResponse:
    """An :class:`ErrorBody` answer carrying the request id being served (the ``X-Request-ID`` header's),
    with long echoed input clipped (:func:`~xmodal.serve.echo.clip_message`); ``kind``: the xmodal error class
    the engine raised, named in ``type`` so that a client raises the same."""
    if details:
        details = [{k: clip_message(v) if isinstance(v, str) else v for k, v in d.items()} for d in details]
    content = ErrorBody(
        error=clip_message(error),
        field=clip(field) if field is not None else None,
        fix=clip_message(fix) if fix is not None else None,
        request_id=request_id.get(),
        details=details,
        type=kind.__name__ if kind is not None else None,
    )
    return AsciiJSONResponse(content.model_dump(exclude_none=True), status_code=status, headers=headers)


async def tarpit(refusal: RateLimited, longest: float) -> None:
    """Hold a 429 back for up to ``longest`` seconds (the server's ``refusal_delay``; never past its
    ``Retry-After``): a client that ignores ``Retry-After`` and sends again at once then costs a parked
    coroutine, not a busy loop of refusals."""
    delay = min(float(refusal.retry_after), longest)
    if delay > 0:
        await asyncio.sleep(delay)


def internal_error(exc: BaseException) -> JSONResponse:
    """The 500 answer to an unexpected exception, which is logged with its traceback and request id."""
    logger.error("unhandled error", exc_info=exc)
    return error_response(500, "internal error; quote the request id when reporting it")


class AsciiJSONResponse(JSONResponse):
    """Errors echo user input; ASCII escapes keep even a lone surrogate from turning a 4xx into a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def install(app: FastAPI) -> None:
    """Register the handlers that turn every known error into its documented status and body."""

    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.error, exc.field, exc.fix, exc.details)

    async def xmodal_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ValidationError)
        return error_response(422, str(exc), exc.field, exc.fix or None, kind=type(exc))

    async def not_found(_: Request, exc: Exception) -> JSONResponse:
        fix = "check the id: POST /search answers with item ids, and with the query_id that POST /feedback quotes"
        return error_response(404, str(exc), "id", fix, kind=type(exc))

    async def auth(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AuthError)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error_response(exc.status, exc.message, "Authorization", headers=headers)

    async def limited(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RateLimited)
        await tarpit(exc, request.app.state.xmodal.config.refusal_delay)
        wait = str(exc.retry_after)
        return error_response(429, str(exc), None, f"retry after {wait} s", headers={"Retry-After": wait})

    async def queue_full(_: Request, exc: Exception) -> JSONResponse:
        return error_response(
            503, f"cannot take the write now: {exc}", None, "retry shortly", headers={"Retry-After": "1"}
        )

    async def request_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        err = from_pydantic(exc)
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return error_response(400, f"the body is not valid JSON: {err.error}", "body", "send a JSON object")
        return error_response(422, err.error, err.field, err.fix, err.details)

    async def body_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, BodyError)
        return await api_error(request, exc.error)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return error_response(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))

    async def config_error(_: Request, exc: Exception) -> JSONResponse:
        return error_response(501, str(exc), None, "this server is not configured for it", kind=type(exc))

    async def disk_full(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DiskFull)
        fix = f"free space on the disk holding {exc.folder}, then retry"
        return error_response(507, str(exc), None, fix, kind=type(exc))

    async def storage(_: Request, exc: Exception) -> JSONResponse:
        logger.error("storage error", exc_info=exc)  # the operator's to fix: kept in the log with the request id
        fix = "the server's index needs its operator (the error says what to do); retry later"
        return error_response(500, str(exc), None, fix, kind=type(exc))

    for kind, handler in [
        (ApiError, api_error),
        (ValidationError, xmodal_validation),
        (NotFoundError, not_found),
        (AuthError, auth),
        (RateLimited, limited),
        (QueueFull, queue_full),
        (RequestValidationError, request_validation),
        (BodyError, body_error),
        (HTTPException, http_error),
        (ConfigError, config_error),
        (DiskFull, disk_full),
        (StorageError, storage),  # a damaged store, a disk that fails writes: the message names file and fix
    ]:  # any other exception: a 500 from the request-log middleware, which owns the request id
        app.add_exception_handler(kind, handler)


class BodyLimit(BodyLimitMiddleware):
    """:class:`~xmodal.serve.limits.BodyLimitMiddleware` whose 413 is an ErrorBody with the request id."""

    async def _refuse(self, send: Any) -> None:
        response = error_response(
            413, f"request body larger than {self.limit:,} bytes", "body", "send smaller requests"
        )
        response.headers["Connection"] = "close"  # the rest of the body is not read
        await response({"type": "http", "method": "POST"}, _no_receive, send)


async def _no_receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}
