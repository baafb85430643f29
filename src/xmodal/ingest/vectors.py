"""Items added with the caller's own vectors: each vector checked (kind, dimension, finite, not zero) and
L2-normalised, the item's media stored; no encoder call. One bad item is rejected, never the batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..errors import ValidationError
from ..media import Media
from ..records import Item
from ..updates import query_vector
from .prepare import AddReport, Entry, Loaded, Rejection


def check_vectors_arg(vectors: object) -> dict[str, Any]:
    """``Engine.add(..., vectors=)``: a mapping of item id → vectors (by kind, or one for every kind)."""
    if vectors is None:
        return {}
    if not isinstance(vectors, Mapping):
        raise ValidationError("vectors", "must map item id → vectors", 'pass e.g. vectors={"a1": {"text": [...]}}')
    return dict(vectors)


def unused_vectors(given: Mapping[str, Any], seen: set[str]) -> list[Rejection]:
    """A rejection for each id ``vectors=`` names that the add did not hold (the caller's mistake, said)."""
    return [
        Rejection(str(item_id), f"vectors: given for an item not in this add (add {item_id!r})")
        for item_id in given.keys() - seen
    ]


def item_vectors(item: Item, given: Any, kinds: Mapping[str, tuple[str, ...]], dim: int) -> dict[str, np.ndarray]:
    """The checked, normalised vectors of ``item``: ``given`` maps a vector kind to a vector, or is one vector
    for every kind the encoder would make of the item (its modality's)."""
    if not isinstance(given, Mapping):
        mine = [kind for kind, needs in kinds.items() if set(needs) <= item.modality.parts]
        if not mine:
            raise ValidationError(
                "vectors", "name the vector kinds", f"give {{kind: vector}} ({', '.join(kinds)})", item=item.id
            )
        given = dict.fromkeys(mine, given)
    if not given:
        raise ValidationError(
            "vectors", "is empty", f"give at least one vector (kinds: {', '.join(kinds)})", item=item.id
        )
    out = {}
    for kind, raw in given.items():
        field = f"vectors.{kind}"
        if kind not in kinds:
            raise ValidationError(
                field, f"the index has no vector kind {kind!r}", f"use one of {', '.join(kinds)}", item=item.id
            )
        try:
            vec = query_vector(raw, field)[0]
        except ValidationError as exc:
            raise ValidationError(field, exc.problem, exc.fix, item=item.id) from None
        if vec.shape[0] != dim:
            raise ValidationError(
                field,
                f"has {vec.shape[0]} dimensions, the index has {dim}",
                "give vectors of the index's dimension",
                item=item.id,
            )
        wide = vec.astype(np.float64)  # no float32 overflow on the way
        norm = float(np.linalg.norm(wide))
        if norm == 0.0 or not np.isfinite(norm):
            raise ValidationError(
                field, "has no direction (all zeros) or overflows", "give a non-zero vector", item=item.id
            )
        out[kind] = (wide / norm).astype(np.float32)
    return out


def given_entries(
    loaded: Sequence[Loaded],
    given: Mapping[str, Any],
    kinds: Mapping[str, tuple[str, ...]],
    dim: int,
    media: Media,
    report: AddReport,
) -> list[Entry]:
    """Store entries for items that come with their vectors; a bad one goes to ``report`` with the reason."""
    entries = []
    for entry in loaded:
        try:
            vectors = item_vectors(entry.item, given[entry.item.id], kinds, dim)
        except ValidationError as exc:
            report.rejected.append(Rejection(entry.item.id, str(exc)))
            continue
        refs = {
            name: media.put(m.data, m.suffix) if m.data is not None else entry.item.media[name]
            for name, m in entry.media.items()
        }
        entries.append((replace(entry.item, media=refs) if entry.media else entry.item, vectors))
    return entries
