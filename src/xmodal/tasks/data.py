"""What every ML task reads from an index: the items to work on, their vectors of one kind, and labels.

Everything goes through the engine's public reads (:meth:`Engine.iter_items`, :meth:`Engine.match_rows`),
so a task sees exactly what a search sees. Vectors are the stored, L2-normalised ones: a cosine is a dot
product.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ValidationError
from ..records import Item, primary_kind
from ..vectormath import normalize

if TYPE_CHECKING:
    from ..engine import Engine

#: A vector kind the caller may name besides the engine's kinds: each item's primary vector.
PRIMARY = "primary"


@dataclass(frozen=True, slots=True)
class TaskData:
    """Items with one vector each: ``vectors[i]`` stands for ``items[i]`` (its kind in ``kinds[i]``)."""

    items: tuple[Item, ...]
    vectors: np.ndarray  # float32 [n, d], L2-normalised
    kinds: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.items)

    @property
    def ids(self) -> list[str]:
        return [item.id for item in self.items]


def check_kind(engine: Engine, kind: str) -> str:
    """``kind`` if the index holds it (or ``primary``); else a :class:`ValidationError` naming the known ones."""
    known = [PRIMARY, *engine.vector_kinds()]
    if kind not in known:
        raise ValidationError("kind", f"the index has no vector kind {kind!r}", f"use one of {', '.join(known)}")
    return kind


def load(engine: Engine, *, kind: str = PRIMARY, filters: Mapping[str, Any] | None = None) -> TaskData:
    """The items that match ``filters`` (every item without) that have a vector of ``kind``, in row order.

    An empty result is a :class:`ValidationError`: no task can run on nothing."""
    check_kind(engine, kind)
    allowed = engine.match_rows(filters or {}, strict=True) if filters else None
    allowed_set = None if allowed is None else set(allowed.tolist())
    items: list[Item] = []
    vectors: list[np.ndarray] = []
    kinds: list[str] = []
    for stored in engine.iter_items():
        if allowed_set is not None and stored.row not in allowed_set:
            continue
        chosen = primary_kind(stored.vectors) if kind == PRIMARY else kind
        if chosen is None or chosen not in stored.vectors:
            continue
        items.append(stored.item)
        vectors.append(np.asarray(stored.vectors[chosen], dtype=np.float32))
        kinds.append(chosen)
    if not items:
        where = " that match the filters" if filters else ""
        raise ValidationError(
            "index", f"no items{where} have a {kind} vector", "add items first, or choose another kind or filter"
        )
    return TaskData(tuple(items), normalize(np.stack(vectors)), tuple(kinds))


def label_of(item: Item, attribute: str) -> str | None:
    """The item's label: its ``attribute`` value as a string (a scalar), None when it has none (or a null)."""
    value = item.attributes.get(attribute)
    if value is None or isinstance(value, list | dict):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def labelled(data: TaskData, attribute: str) -> tuple[np.ndarray, list[str]]:
    """The positions in ``data`` of the items with a label, and their labels. No such item is a
    :class:`ValidationError` naming the attributes the items do have."""
    keep: list[int] = []
    labels: list[str] = []
    for i, item in enumerate(data.items):
        label = label_of(item, attribute)
        if label is not None:
            keep.append(i)
            labels.append(label)
    if not keep:
        names = sorted({name for item in data.items for name in item.attributes})[:20]
        known = ", ".join(names) if names else "none"
        raise ValidationError(
            "label",
            f"no item has a value for the label attribute {attribute!r}",
            f"name an attribute the items carry (seen: {known})",
        )
    return np.asarray(keep, dtype=np.int64), labels


def text_of(item: Item) -> str:
    """The words an item says: its title and body."""
    return f"{item.title}\n{item.text}".strip()


def check_positive(field: str, value: int, fix: str) -> int:
    """``value`` when it is an int of at least 1; else a :class:`ValidationError` naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(field, f"must be a whole number of at least 1, got {value!r}", fix)
    return value


def positions(data: TaskData, ids: Sequence[str]) -> list[int]:
    """Where each id sits in ``data`` (an id absent from it is a :class:`ValidationError`)."""
    where = {item_id: i for i, item_id in enumerate(data.ids)}
    missing = [item_id for item_id in ids if item_id not in where]
    if missing:
        raise ValidationError(
            "ids", f"{len(missing)} ids are not items with vectors here: {missing[:5]}", "pass ids of stored items"
        )
    return [where[item_id] for item_id in ids]
