"""Requests of the REST API, built from the engine's own arguments (no HTTP library here).

A :class:`Call` is one request: method, path, a JSON body already encoded, query parameters. The bodies
are the ones ``xmodal serve`` reads (:mod:`xmodal.serve.models`): an item's media and a query's image
travel inline as base64, read here from the caller's files the way the engine reads them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from ..errors import ValidationError
from ..imaging import read_image_bytes
from ..media_loaders import MediaRef
from ..records import Item, Query
from ..updates import query_vector, query_vectors

JSON_FIX = "use JSON values: strings, finite numbers, booleans, null, lists and objects of them"


@dataclass(frozen=True, slots=True)
class Call:
    """One request: ``body`` is encoded JSON (None: no body); ``binary``: the answer is a file, not JSON;
    ``server``: a route of the server (``/health``, ``/indexes``), not of the index the client uses;
    ``read``: it changes nothing on the server (a GET, or a search that logs nothing), so it may be sent again
    when its connection was lost under it (:data:`~xmodal.client.transport.LOST`)."""

    method: str
    path: str
    body: bytes | None = None
    params: Mapping[str, str | int] | None = None
    binary: bool = False
    server: bool = False
    read: bool = False

    @property
    def repeatable(self) -> bool:
        """Whether sending it twice does what sending it once does."""
        return self.read or self.method == "GET"


def call(method: str, path: str, data: Any = None, **options: Any) -> Call:
    """A :class:`Call` with ``data`` encoded as its JSON body (None: no body)."""
    return Call(method, path, None if data is None else encode_json(data), **options)


def encode_json(data: Any) -> bytes:
    """``data`` as compact UTF-8 JSON (as httpx writes it), or a :class:`ValidationError` for what JSON cannot
    carry (NaN, infinity, a set, an object)."""
    try:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise ValidationError("body", f"cannot be sent as JSON: {exc}", JSON_FIX) from None


def join_json(parts: list[bytes], key: str) -> bytes:
    """``{"key": [part, ...]}`` from parts already encoded (each item of a batch is encoded once)."""
    return b'{"' + key.encode() + b'":[' + b",".join(parts) + b"]}"


def item_path(item_id: str) -> str:
    """The path of an item (its id URL-quoted, as :func:`xmodal.view.item_path` writes it)."""
    return "/items/" + quote(item_id, safe="")


def read_medium(name: str, ref: MediaRef, base_dir: Path | None, item: str) -> bytes:
    """The bytes of an item's (or a query's) medium: given as bytes, or a file (relative to ``base_dir``)."""
    if name == "image":
        return read_image_bytes(ref, base_dir, item=item)  # the engine's own checks and messages
    if isinstance(ref, bytes):
        return ref
    path = Path(ref)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValidationError(
            f"media.{name}", f"cannot read {path}: {exc.strerror}", "fix the path (relative to base_dir)", item=item
        ) from None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def item_body(item: Item, base_dir: Path | None, vectors: Any = None, *, with_vectors: bool = False) -> bytes:
    """One item of ``POST /items``, encoded; an :class:`~xmodal.errors.XmodalError` names what is wrong."""
    out: dict[str, Any] = {"id": item.id, "modality": item.modality.value}
    if item.title:
        out["title"] = item.title
    if item.text:
        out["text"] = item.text
    if item.attributes:
        out["attributes"] = item.attributes
    if item.parent is not None:
        out["parent"] = item.parent
    if item.span is not None:
        out["span"] = item.span.to_dict()
    media = {name: b64(read_medium(name, ref, base_dir, item.id)) for name, ref in item.media.items()}
    if "image" in media:
        out["image_base64"] = media.pop("image")
    if media:
        out["media_base64"] = media
    if with_vectors:
        out["vectors"] = vectors_json(vectors, item.id)
    try:
        return encode_json(out)
    except ValidationError as exc:
        raise ValidationError("attributes", exc.problem, exc.fix, item=item.id) from None


def vectors_json(given: Any, item: str) -> dict[str, list[float]] | list[float]:
    """An item's own vectors (by kind, or one for every kind) as JSON lists, checked for what JSON cannot carry
    (the dimension and the kinds are the server's to check)."""
    if isinstance(given, Mapping):
        return {str(kind): vector_json(raw, f"vectors.{kind}", item) for kind, raw in given.items()}
    return vector_json(given, "vectors", item)


def vector_json(raw: Any, field: str, item: str | None = None) -> list[float]:
    try:
        values: list[float] = query_vector(raw, field)[0].tolist()
    except ValidationError as exc:
        raise ValidationError(field, exc.problem, exc.fix, item=item) from None
    return values


def query_body(query: Query, base_dir: Path | None) -> dict[str, Any]:
    """One query as ``POST /search`` and ``POST /search/batch`` take it (its image inline)."""
    if query.media:
        raise ValidationError(
            "media",
            f"a search over REST takes an image, not {', '.join(sorted(query.media))}",
            "send the image as image=, or search an Engine opened on the index",
        )
    out: dict[str, Any] = {"k": query.k}
    if query.text is not None:
        out["text"] = query.text
    if query.image is not None:
        out["image_base64"] = b64(read_medium("image", query.image, base_dir, "query"))
    return {**out, **changed(filters=query.filters, offset=query.offset, target=query.target, mode=query.mode,
                             group=query.group, strict=query.strict)}  # fmt: skip


def matrix_json(vectors: Any) -> list[list[float]]:
    """Several query vectors (one row each) as JSON lists, checked as the engine checks them (``vectors[3]``
    names a bad row); their dimension is the server's to check."""
    try:
        shape = np.asarray(vectors, dtype=np.float64).shape
    except (TypeError, ValueError):  # ragged rows, or not numbers: the engine's message below
        shape = ()
    rows: list[list[float]] = query_vectors(vectors, shape[1] if len(shape) == 2 else 0).tolist()
    return rows


def search_body(query: Query, base_dir: Path | None, *, log: bool, explain: bool, with_vectors: bool) -> dict[str, Any]:
    """The ``POST /search`` body of a query."""
    out = query_body(query, base_dir)
    return {**out, "log": log, **changed(user=query.user, explain=explain, with_vectors=with_vectors)}


#: The value of each optional request field that the server takes when the field is left out.
DEFAULTS: dict[str, Any] = {
    "filters": {},
    "offset": 0,
    "target": "any",
    "mode": None,
    "group": None,
    "strict": False,
    "user": None,
    "explain": False,
    "with_vectors": False,
    "cursor": None,
    "safe": None,
}


def changed(**fields: Any) -> dict[str, Any]:
    """The fields whose value is not the server's default (a smaller body, the same request)."""
    return {name: value for name, value in fields.items() if value != DEFAULTS[name]}
