"""Segments: grouping ranked hits by parent (``Query.group = "parent"``).

A segment is an item with a ``parent`` (the id of the item it is part of: a document's page, a video's
clip) and a ``span`` (:class:`~xmodal.records.Span`). A grouped search returns one hit per parent, the
best one; an item without a parent is its own group, so a document and its pages form one group.
"""

from __future__ import annotations

from collections.abc import Sequence

from .records import Hits, Item

#: A grouped search fetches this many times k hits, and again as many times more until k groups are found.
GROUP_FETCH = 4


def group_key(item: Item) -> str:
    """The group of an item: its parent, or itself."""
    return item.parent if item.parent is not None else item.id


def group_hits(hits: Hits, items: Sequence[Item], group: str | None, k: int) -> tuple[Hits, tuple[Item, ...]]:
    """The first (best) hit of each parent, at most ``k``; the hits unchanged when ``group`` is None."""
    if group is None:
        return hits, tuple(items)
    seen: set[str] = set()
    keep: list[int] = []
    for position, item in enumerate(items):
        key = group_key(item)
        if key not in seen:
            seen.add(key)
            keep.append(position)
            if len(keep) == k:
                break
    return hits.take(keep), tuple(items[i] for i in keep)
