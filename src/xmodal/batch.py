"""What batch operations share: naming a bad member of a batch, grouping the queries one matrix search can
answer together, and cutting a page out of a ranking."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from .errors import GuardBlocked, ValidationError
from .records import Hits, Item, Query

T = TypeVar("T")


def in_batch(position: int, fn: Callable[[], T], field: str = "queries") -> T:
    """``fn()``, a :class:`ValidationError` it raises re-raised naming the batch member (``queries[3].k``), of
    the same class when that is a :class:`GuardBlocked` (a refused query stays one)."""
    try:
        return fn()
    except ValidationError as exc:
        kind = GuardBlocked if isinstance(exc, GuardBlocked) else ValidationError
        raise kind(f"{field}[{position}].{exc.field}", exc.problem, exc.fix, item=exc.item) from None


def dense_groups(queries: Sequence[Query], dense: Sequence[bool]) -> list[list[int]]:
    """The positions of the dense, ungrouped queries, in groups that share a target, filters and strictness
    (so one matrix search answers each group); each group in order of first appearance."""
    groups: dict[tuple[str, str, bool], list[int]] = {}
    for i, (query, plain) in enumerate(zip(queries, dense, strict=True)):
        if plain and not query.group:
            key = (str(query.target), json.dumps(query.filters, sort_keys=True, default=repr), query.strict)
            groups.setdefault(key, []).append(i)
    return list(groups.values())


def skip(hits: Hits, items: tuple[Item, ...], offset: int) -> tuple[Hits, tuple[Item, ...]]:
    """The hits and items after the first ``offset`` (none past the end)."""
    if not offset:
        return hits, items
    return hits.take(range(offset, len(hits))), items[offset:]


_MEMBER = re.compile(r"^(?:queries|vectors)\[(\d+)\](.*)$")


def member_position(field: str) -> int:
    """The position a batch error's field names (``queries[3].k`` → 3; 0 for a field of the whole batch)."""
    found = _MEMBER.match(field)
    return int(found.group(1)) if found is not None else 0


@contextmanager
def renumbered(positions: Sequence[int], member: str = "") -> Iterator[None]:
    """Re-raise a :class:`ValidationError` of a sub-batch (the queries at ``positions`` of a larger one) naming
    the member of the larger batch: ``queries[1].target`` or ``vectors[1]`` of the sub-batch become
    ``queries[positions[1]].target`` and ``queries[positions[1]]`` + ``member``; a field of the whole call
    (``target``) names the first query of the sub-batch."""
    try:
        yield
    except ValidationError as exc:
        found = _MEMBER.match(exc.field)
        if found is not None and int(found.group(1)) < len(positions):
            field = f"queries[{positions[int(found.group(1))]}]{found.group(2) or member}"
        else:
            field = f"queries[{positions[0]}].{exc.field}"
        raise ValidationError(field, exc.problem, exc.fix, item=exc.item) from None
