"""Collection operations' checks: the item an attribute update makes (no re-encoding), a delete's filter,
and a caller's own query vector."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from .errors import ValidationError
from .records import RESERVED_ATTRIBUTES, Item, check_attributes

DELETE_ALL_FIX = "give a filter that names the items, or call clear() to delete every item (CLI: delete --all --yes)"


def check_update(attributes: object, merge: object) -> None:
    """Refuse an update whose ``attributes`` is not a mapping or names an item field, or whose ``merge`` is not
    a boolean (each value is checked with the merged attributes)."""
    if not isinstance(attributes, Mapping):
        raise ValidationError("attributes", "must be an object of name → value", 'pass e.g. {"color": "red"}')
    if not isinstance(merge, bool):
        raise ValidationError("merge", f"must be true or false, got {merge!r}", "pass merge=True or merge=False")
    for name in RESERVED_ATTRIBUTES:
        if name in attributes:
            raise ValidationError(
                f"attributes.{name}", f"{name!r} is an item field, not an attribute", "re-add the item to change it"
            )


def updated_item(item: Item, attributes: Mapping[str, Any], *, merge: bool = True) -> Item:
    """``item`` with its attributes updated: ``attributes`` merged over the old ones (top-level keys; a
    ``None`` value stores null) or, with ``merge=False``, replacing them all. Checked like an added item's
    attributes; title, text, media and vectors are unchanged."""
    check_update(attributes, merge)
    merged = {**item.attributes, **attributes} if merge else dict(attributes)
    return replace(item, attributes=check_attributes(merged, item=item.id), updated_at=time.time())


def check_delete_filter(filters: object) -> None:
    """Refuse a delete-by-filter without a filter (it would delete everything: that is :meth:`clear`)."""
    if not isinstance(filters, Mapping):
        raise ValidationError("filters", "must be an object of attribute → condition", DELETE_ALL_FIX)
    if not filters:
        raise ValidationError("filters", "is empty: it would delete every item", DELETE_ALL_FIX)


def query_vector(vector: Any, field: str = "vector", *, dim: int | None = None) -> np.ndarray:
    """A caller's vector as float32 ``[1, d]``, or a :class:`ValidationError` naming ``field``: not numbers,
    not one row, a NaN or infinite value, or (``dim`` given) not of that dimension."""
    try:
        vec = np.asarray(vector, dtype=np.float64)  # checked here, then stored as float32
    except (TypeError, ValueError):
        raise ValidationError(field, "is not a list of numbers", "send the vector as a flat list of numbers") from None
    if vec.ndim == 2 and vec.shape[0] == 1:
        vec = vec[0]
    if vec.ndim != 1 or vec.size == 0:
        raise ValidationError(field, f"must be one flat list of numbers, got shape {vec.shape}", "send one vector")
    return _checked(vec.reshape(1, -1), dim, lambda _: field)


def query_vectors(vectors: Any, dim: int, field: str = "vectors") -> np.ndarray:
    """Several query vectors as float32 ``[n, d]`` (``n`` may be 0), each checked as by :func:`query_vector`;
    a bad one named by its position (``vectors[3]``)."""
    fix = "send a list of vectors, each a flat list of numbers"
    try:
        vecs = np.asarray(vectors, dtype=np.float64)
    except (TypeError, ValueError):  # ragged rows, or not numbers
        raise ValidationError(field, "is not a list of vectors of numbers, all of one length", fix) from None
    if vecs.size == 0:
        return np.empty((0, dim), dtype=np.float32)
    if vecs.ndim != 2:
        raise ValidationError(field, f"must be a list of vectors (one row each), got shape {vecs.shape}", fix)
    return _checked(vecs, dim, lambda row: f"{field}[{row}]")


def _checked(vecs: np.ndarray, dim: int | None, name: Callable[[int], str]) -> np.ndarray:
    """``vecs`` ``[n, d]`` as float32 once every value is finite and within float32, and ``d`` is ``dim``."""
    for problem, fix, bad in (
        ("a NaN or infinite value", "send finite numbers only", ~np.isfinite(vecs)),
        ("a value beyond float32", "send numbers of at most about 3.4e38", np.abs(vecs) > np.finfo(np.float32).max),
    ):
        if bad.any():
            row, col = (int(x) for x in np.argwhere(bad)[0])
            raise ValidationError(name(row), f"has {problem} at position {col}", fix)
    if dim is not None and vecs.shape[1] != dim:
        raise ValidationError(
            name(0), f"has {vecs.shape[1]} dimensions, the index has {dim}", "encode with the index's encoder"
        )
    return vecs.astype(np.float32)
