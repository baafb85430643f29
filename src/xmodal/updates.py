"""Attribute updates without re-encoding: the checked item an update makes from a stored one."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

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
