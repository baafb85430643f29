"""Multipart form parsing that refuses text fields which are not valid UTF-8.

Starlette decodes an undecodable text field as latin-1; a search engine should say the request is
malformed instead of searching for mojibake.
"""

from __future__ import annotations

from contextlib import aclosing

from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from .errors import ApiError


class _StrictUTF8Parser(MultiPartParser):
    def on_part_end(self) -> None:
        part = self._current_part
        if part.file is None:
            try:
                bytes(part.data).decode("utf-8")
            except UnicodeDecodeError:
                raise MultiPartException(f"form field {part.field_name!r} is not valid UTF-8") from None
        super().on_part_end()


async def read_form(request: Request, *, max_files: int, max_fields: int) -> FormData:
    """The request's multipart form, or a 400 :class:`ApiError` naming what is malformed."""
    try:
        async with aclosing(request.stream()) as stream:
            parser = _StrictUTF8Parser(request.headers, stream, max_files=max_files, max_fields=max_fields)
            return await parser.parse()
    except MultiPartException as exc:
        raise ApiError(
            400, f"malformed multipart body: {exc.message}", "body", "send multipart/form-data with UTF-8 text fields"
        ) from None
