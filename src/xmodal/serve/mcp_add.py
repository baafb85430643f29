"""The MCP ``add_items`` tool: an agent adds or replaces catalog items, with their media, as ``POST /items`` does.

Each item is an object of the fields ``POST /items`` takes (``id``, ``title``, ``text``, ``attributes``,
``modality``, ``parent``, ``span``) and its media given one of two ways:

- **bytes, base64-encoded**: ``image_base64``, ``media_base64`` (medium → base64, e.g. ``{"audio": ...}``), or
  ``file_base64`` with ``file_name`` (a PDF, a sound or a video file, split into its pages, turns/windows or
  shots as ``xmodal add`` splits it). Bounded by the REST limits (:class:`~xmodal.serve.policy.Limits`): every
  image is checked as an item image of ``POST /items`` is (``max_image_bytes``, ``max_pixels``, decoded), the
  decoded bytes of one call at most ``max_body_bytes`` and its items at most ``max_batch``;
- **a path**: ``image_path``, ``media_paths`` (medium → path) or ``file_path``, only inside the folder the
  server was given for it (``xmodal mcp --media-folder DIR``; ``mcp_media_folder`` in a ``xmodal serve``
  config): the path is resolved (symbolic links and ``..`` followed) and refused unless it lies inside that
  folder; without a folder no path is accepted. A refused path gets one answer whether or not the file
  exists, so a tool call cannot probe for files.

Needs the ``write`` scope over HTTP (stdio: the local user owns the index). One bad item is reported in
``rejected`` with the reason; the others are added. Returns ``added`` (ids, segments included) and ``rejected``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engine import Engine
from ..errors import ValidationError, XmodalError
from ..ingest.prepare import AddReport, Rejection
from ..records import Item
from ..splitters import split_bytes
from .mcp_collection import Write, _check_write
from .policy import Limits, current_caller

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

ITEM_FIELDS = ("id", "title", "text", "attributes", "modality", "parent", "span")
MEDIA_FIELDS = ("image_base64", "image_path", "media_base64", "media_paths", "file_base64", "file_name", "file_path")
NO_PATH = "is not a readable file inside the folder this server takes files from"


class Uploads:
    """The bytes of one call's items, bounded by the server's limits, read from base64 or the allowed folder."""

    def __init__(self, limits: Limits, folder: Path | None) -> None:
        self.limits = limits
        self.folder = folder.resolve() if folder is not None else None
        self.budget = limits.config.max_body_bytes

    def _check(self, size: int, field: str, item: str) -> None:
        if size > self.budget:
            raise ValidationError(
                field,
                f"takes the files of this call past {self.limits.config.max_body_bytes:,} bytes (the server's "
                "max_body_bytes)",
                "send fewer or smaller files per call",
                item=item,
            )

    def _spend(self, data: bytes, field: str, item: str) -> bytes:
        self._check(len(data), field, item)
        self.budget -= len(data)
        return data

    def base64(self, text: object, field: str, item: str) -> bytes:
        if not isinstance(text, str) or not text:
            raise ValidationError(field, "must be a non-empty base64 string", "base64-encode the file", item=item)
        self._check(len(text) * 3 // 4 - 2, field, item)  # refused before decoding
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError(field, "is not valid base64", "base64-encode the file bytes", item=item) from None
        return self._spend(data, field, item)

    def path(self, given: object, field: str, item: str) -> tuple[bytes, str]:
        """The bytes and the name of the file at ``given`` (inside the folder), or one refusal for every other case."""
        if self.folder is None:
            raise ValidationError(
                field,
                "paths are not accepted: this server was given no folder to take files from",
                "send the file as base64, or start the server with a folder (xmodal mcp --media-folder DIR)",
                item=item,
            )
        refused = ValidationError(
            field, NO_PATH, f"put the file in {self.folder} and give its path, or send it as base64", item=item
        )
        if not isinstance(given, str) or not given or "\0" in given:
            raise refused
        try:
            candidate = Path(given).expanduser()
            resolved = (candidate if candidate.is_absolute() else self.folder / candidate).resolve(strict=True)
            if self.folder not in resolved.parents or not resolved.is_file():
                raise refused
            self._check(resolved.stat().st_size, field, item)
            with open(resolved, "rb") as handle:
                data = handle.read(self.budget + 1)
        except (OSError, RuntimeError, ValueError):
            raise refused from None
        return self._spend(data, field, item), resolved.name


def add_add_tools(
    server: MCPServer,
    current: Callable[[], Engine],
    limits: Limits,
    clear_errors: Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]],
    folder: Path | None,
    write: Write,
) -> None:
    """Register ``add_items`` (see the module's docstring) on ``server``; the add goes through ``write``."""

    @server.tool()
    @clear_errors
    def add_items(items: list[dict[str, Any]]) -> dict[str, Any]:
        """Add or replace catalog items (at most the server's max_batch per call); needs the write scope.

        Each item: ``id``, ``title``, ``text``, ``attributes``, ``modality``, ``parent``, ``span`` as in POST
        /items, and media as base64 (``image_base64``; ``media_base64``: medium → base64, e.g. {"audio": ...};
        ``file_base64`` + ``file_name``: a PDF, sound or video file split into segments) or as a path inside
        the folder the server takes files from (``image_path``, ``media_paths``, ``file_path``). The decoded
        files of one call are at most the server's max_body_bytes. Returns ``added`` (ids, a file's segments
        included) and ``rejected`` (each bad item with the reason; the others are added)."""
        _check_write()
        caller = current_caller.get()
        if not isinstance(items, list) or not 1 <= len(items) <= limits.config.max_batch:
            raise ValidationError(
                "items", f"must be a list of 1 to {limits.config.max_batch} item objects", "split a longer list"
            )
        limits.charge(caller, float(len(items)))
        uploads = Uploads(limits, folder)
        built: list[Item] = []
        report = AddReport()
        for i, raw in enumerate(items):
            where = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else f"items[{i}]"
            try:
                built += _build(raw, uploads, limits, report)
            except XmodalError as exc:
                report.rejected.append(Rejection(str(where), str(exc)))
        if built:
            report.merge(write(lambda: current().add(built)))
        return {
            "added": report.added,
            "rejected": [{"where": r.where, "reason": r.reason} for r in report.rejected],
        }


def _build(raw: object, uploads: Uploads, limits: Limits, report: AddReport) -> list[Item]:
    """The item (or a file's parent and segments) of one object; a failed segment goes to ``report``."""
    if not isinstance(raw, Mapping):
        raise ValidationError("items", "each item must be an object", 'e.g. {"id": "1", "title": "..."}')
    unknown = sorted(set(raw) - {*ITEM_FIELDS, *MEDIA_FIELDS})
    item_id = raw.get("id")
    if not isinstance(item_id, str) or not item_id:
        raise ValidationError("id", "missing or empty", "give every item a non-empty string id")
    if unknown:
        raise ValidationError(
            ", ".join(unknown), "unknown field", f"use {', '.join((*ITEM_FIELDS, *MEDIA_FIELDS))}", item=item_id
        )
    if raw.get("file_base64") is not None or raw.get("file_path") is not None:
        return _file_items(raw, item_id, uploads, report)
    image: bytes | None = None
    if raw.get("image_base64") is not None:
        image = uploads.base64(raw["image_base64"], "image_base64", item_id)
    if raw.get("image_path") is not None:
        if image is not None:
            raise ValidationError("image_path", "both image_base64 and image_path", "send one of them", item=item_id)
        image = uploads.path(raw["image_path"], "image_path", item_id)[0]
    media: dict[str, bytes] = {}
    for field in ("media_base64", "media_paths"):
        given = raw.get(field) or {}
        if not isinstance(given, Mapping):
            raise ValidationError(field, "must be an object of medium → file", 'e.g. {"audio": ...}', item=item_id)
        for name, value in given.items():
            if name in media:
                raise ValidationError(f"{field}.{name}", "is given twice", "send each medium once", item=item_id)
            where = f"{field}.{name}"
            media[str(name)] = (
                uploads.base64(value, where, item_id)
                if field == "media_base64"
                else uploads.path(value, where, item_id)[0]
            )
    for data in [image, media.get("image")]:
        if data is not None:
            limits.item_image(data, item_id)
    fields = {k: raw[k] for k in ITEM_FIELDS if k in raw and raw[k] is not None and k != "id"}
    return [Item.create(item_id, image=image, media=media or None, **fields)]


def _file_items(raw: Mapping[str, Any], item_id: str, uploads: Uploads, report: AddReport) -> list[Item]:
    others = [k for k in ("image_base64", "image_path", "media_base64", "media_paths", "parent", "span") if raw.get(k)]
    if others:
        raise ValidationError(
            ", ".join(others), "a file item has no image, media, parent or span of its own", "send the file alone"
        )
    if raw.get("file_base64") is not None:
        if raw.get("file_path") is not None:
            raise ValidationError("file_path", "both file_base64 and file_path", "send one of them", item=item_id)
        name = raw.get("file_name")
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("file_name", "is missing", "name the file, e.g. 'talk.mp3'", item=item_id)
        data = uploads.base64(raw["file_base64"], "file_base64", item_id)
    else:
        data, name = uploads.path(raw["file_path"], "file_path", item_id)
    attributes = raw.get("attributes") or {}
    title = raw.get("title") or ""
    if not isinstance(attributes, Mapping) or not isinstance(title, str):
        raise ValidationError("attributes/title", "must be an object and a string", "fix the item", item=item_id)
    out: list[Item] = []
    for found in split_bytes(data, name, id=item_id, title=title, attributes=attributes):
        if isinstance(found, Rejection):
            report.rejected.append(Rejection(f"{item_id} ({found.where})", found.reason))
        else:
            out.append(found)
    return out
