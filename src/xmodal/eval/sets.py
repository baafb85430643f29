"""What a judged query set says about itself: its query kinds and which are for tuning.

A judged set is a folder with ``catalog.jsonl`` (the items), ``queries.jsonl`` (the ``xmodal eval``
format, each line with a ``kind``) and ``set.json``, its description::

    {"format": 1, "name": "wordnet", "seed": 0, "items": 10000, "kind_order": ["name", ..., "definition"],
     "kinds": {"name": {"split": "tuning", "queries": 300, "description": "..."},
               "definition": {"split": "held_out", "queries": 300, "description": "..."}},
     "splits": {"tuning": {"items": 4000, "judged": 1200}, "held_out": {...}},
     "source": {...}}

A kind's ``split`` is ``tuning`` (anything may be fitted or chosen on it) or ``held_out`` (only ever
evaluated: no parameter, threshold or design choice is made by looking at it). The items judged
relevant for the two splits' queries are disjoint. ``xmodal eval`` reads the ``set.json`` next to the
query file when there is one: a query line whose kind the set does not declare is reported and skipped,
and the report marks the held-out kinds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ValidationError

SET_FILE = "set.json"
FORMAT = 1
TUNING = "tuning"
HELD_OUT = "held_out"
SPLITS = (TUNING, HELD_OUT)


@dataclass(frozen=True, slots=True)
class SetInfo:
    """A judged set's name and the split of each of its query kinds (``kind → tuning | held_out``)."""

    name: str
    kinds: Mapping[str, str]
    path: Path | None = None

    def split(self, kind: str | None) -> str | None:
        return None if kind is None else self.kinds.get(kind)

    def held_out(self) -> list[str]:
        return [k for k, split in self.kinds.items() if split == HELD_OUT]


def read_set_info(path: str | Path) -> SetInfo:
    """Read a ``set.json``; a :class:`ValidationError` naming the field when it is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValidationError(str(path), f"is not a readable set description ({exc})", "rebuild the set") from None
    if not isinstance(data, dict):
        raise ValidationError(str(path), "is not a JSON object", "rebuild the set")
    kinds = data.get("kinds")
    if not isinstance(kinds, dict) or not kinds:
        raise ValidationError(f"{path}: kinds", "must be a non-empty object of kind → {split}", "rebuild the set")
    order = data.get("kind_order")
    names = [str(k) for k in order if k in kinds] if isinstance(order, list) else []
    names += [k for k in kinds if k not in names]
    out: dict[str, str] = {}
    for kind in names:
        entry = kinds[kind]
        split = entry.get("split") if isinstance(entry, dict) else None
        if split not in SPLITS:
            raise ValidationError(f"{path}: kinds.{kind}.split", f"is {split!r}", f"use one of {', '.join(SPLITS)}")
        out[str(kind)] = str(split)
    return SetInfo(str(data.get("name") or path.parent.name), out, path)


def set_info_for(queries: str | Path) -> SetInfo | None:
    """The description of the set a query file belongs to (``set.json`` in its folder), if any."""
    path = Path(queries).parent / SET_FILE
    return read_set_info(path) if path.is_file() else None


def describe(info: SetInfo | None) -> dict[str, Any] | None:
    """A set's description as the evaluation report shows it."""
    if info is None:
        return None
    return {"name": info.name, "path": str(info.path) if info.path else None, "kinds": dict(info.kinds)}
