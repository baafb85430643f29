"""Collection operations' checks: the item an attribute update makes (no re-encoding), a delete's filter,
and a caller's own query vector."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from .errors import ValidationError
from .records import RESERVED_ATTRIBUTES, Item, check_attributes

DELETE_ALL_FIX = "give a filter that names the items, or call clear() to delete every item (CLI: delete --all --yes)"


def updated_item(item: Item, attributes: Mapping[str, Any], *, merge: bool = True) -> Item:
    """``item`` with its attributes updated: ``attributes`` merged over the old ones (top-level keys; a
    ``None`` value stores null) or, with ``merge=False``, replacing them all. Checked like an added item's
    attributes; title, text, media and vectors are unchanged."""
    if not isinstance(attributes, Mapping):
        raise ValidationError("attributes", "must be an object of name → value", 'pass e.g. {"color": "red"}')
    if not isinstance(merge, bool):
        raise ValidationError("merge", f"must be true or false, got {merge!r}", "pass merge=True or merge=False")
    for name in RESERVED_ATTRIBUTES:
        if name in attributes:
            raise ValidationError(
                f"attributes.{name}", f"{name!r} is an item field, not an attribute", "re-add the item to change it"
            )
    merged = {**item.attributes, **attributes} if merge else dict(attributes)
    return replace(item, attributes=check_attributes(merged, item=item.id), updated_at=time.time())


def check_delete_filter(filters: object) -> None:
    """Refuse a delete-by-filter without a filter (it would delete everything: that is :meth:`clear`)."""
    if not isinstance(filters, Mapping):
        raise ValidationError("filters", "must be an object of attribute → condition", DELETE_ALL_FIX)
    if not filters:
        raise ValidationError("filters", "is empty: it would delete every item", DELETE_ALL_FIX)


def query_vector(vector: Any, field: str = "vector") -> np.ndarray:
    """A caller's vector as float32 ``[1, d]``, or a :class:`ValidationError` naming ``field``: not numbers,
    not one row, or a NaN or infinite value (the dimension is the index's to check)."""
    try:
        vec = np.asarray(vector, dtype=np.float64)  # checked here, then stored as float32
    except (TypeError, ValueError):
        raise ValidationError(field, "is not a list of numbers", "send the vector as a flat list of numbers") from None
    if vec.ndim == 2 and vec.shape[0] == 1:
        vec = vec[0]
    if vec.ndim != 1 or vec.size == 0:
        raise ValidationError(field, f"must be one flat list of numbers, got shape {vec.shape}", "send one vector")
    bad = np.flatnonzero(~np.isfinite(vec))
    if bad.size:
        raise ValidationError(
            field, f"has a NaN or infinite value at position {int(bad[0])}", "send finite numbers only"
        )
    big = np.flatnonzero(np.abs(vec) > np.finfo(np.float32).max)
    if big.size:
        raise ValidationError(
            field, f"has a value beyond float32 at position {int(big[0])}", "send numbers of at most about 3.4e38"
        )
    return vec.astype(np.float32).reshape(1, -1)
