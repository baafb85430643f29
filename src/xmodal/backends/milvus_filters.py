"""Filters as Milvus boolean expressions over a JSON field of encoded attributes.

Each row carries its item's attributes *encoded* for the filter language of Milvus 2.3 (:func:`encode`):
a JSON object with one entry per path the item holds (every dotted path, through objects and the elements
of lists, as :func:`xmodal.filters.table.flatten` files them), keyed by a hash of the path (no quoting
of user names in an expression), holding

- ``h``: 1 — the item holds the path (``exists``);
- ``f``: 1 when some value there is not empty (``empty`` is ``not f``);
- ``k``: the hashes of the :func:`~xmodal.filters.nodes.value_key` of every leaf (``in`` / ``nin`` / ``all``
  through ``json_contains_any`` / ``json_contains_all``: ``1`` equals ``1.0``, ``True`` is never ``1``);
- ``n``: the number leaves (not booleans), distinct and sorted, and ``c`` their count: a ``range`` holds when
  one of the first :data:`NUMBER_SLOTS` satisfies every bound (an ``or`` over ``n[0]``, ``n[1]``...).

:func:`translate` turns a :class:`~xmodal.filters.FilterExpr` into one expression applied by the server
before its top-k cut. The conditions this encoding cannot decide exactly — ``text`` / ``itext`` (Milvus 2.3
``like`` matches prefixes only) and a ``range`` on items holding more than :data:`NUMBER_SLOTS` numbers at
the path — are resolved to the rows that satisfy them through the engine's attribute table
(``BackendContext.rows``) and pushed down as ``row in [...]``; without a table, a ``text`` condition is a
:class:`~xmodal.errors.ConfigError`. Missing JSON keys compare false in Milvus and ``not`` negates that, which
is the reference semantics of :mod:`xmodal.filters.nodes`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..filters import FilterExpr
from ..filters.nodes import And, Condition, Node, Not, ValueKey, is_number, value_key
from ..filters.table import EMPTY_LIST, EMPTY_OBJECT, flatten

NUMBER_SLOTS = 8
FIELD = "attrs"
_MILVUS_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}

#: Resolves one condition to the sorted rows that satisfy it (or None where no attribute table is known).
RowsOf = Callable[[Node], "np.ndarray | None"]


@functools.lru_cache(maxsize=1 << 16)
def path_key(path: str) -> str:
    """The JSON key of an attribute path (a hash: no user name is ever quoted in an expression)."""
    return "p" + hashlib.blake2b(path.encode("utf-8"), digest_size=8).hexdigest()


@functools.lru_cache(maxsize=1 << 16)
def value_hash(key: ValueKey) -> str:
    """The string a leaf's :func:`~xmodal.filters.nodes.value_key` is stored as."""
    return hashlib.blake2b(json.dumps(key, ensure_ascii=False).encode("utf-8"), digest_size=8).hexdigest()


def wide_keys(encoded: Mapping[str, Any]) -> set[str]:
    """The path keys at which an encoded item holds more numbers than :data:`NUMBER_SLOTS`."""
    return {key for key, entry in encoded.items() if entry.get("c", 0) > NUMBER_SLOTS}


def encode(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON field value of an item's attributes (see the module docstring)."""
    leaves, shapes = flatten(attributes)
    out: dict[str, Any] = {}
    for path in leaves.keys() | shapes.keys():
        values = leaves.get(path, [])
        numbers = sorted({float(v) for v in values if is_number(v)})  # type: ignore[arg-type]
        filled = any(v is not None and v != "" for v in values) or bool(
            shapes.get(path, set()) - {EMPTY_LIST, EMPTY_OBJECT}
        )
        entry: dict[str, Any] = {"h": 1, "k": sorted({value_hash(value_key(v)) for v in values})}
        if filled:
            entry["f"] = 1
        if numbers:
            entry["n"], entry["c"] = numbers, len(numbers)
        out[path_key(path)] = entry
    return out


def translate(where: FilterExpr, rows_of: RowsOf, wide: set[str] | frozenset[str] = frozenset()) -> str:
    """The Milvus expression of ``where`` over the :data:`FIELD` JSON field and the ``row`` field; ``wide``
    names the path keys where some item holds more numbers than :data:`NUMBER_SLOTS` (:func:`wide_keys`)."""
    return _node(where.root, rows_of, wide)


def _node(node: Node, rows_of: RowsOf, wide: set[str] | frozenset[str]) -> str:
    if isinstance(node, Condition):
        return _condition(node, rows_of, wide)
    if isinstance(node, Not):
        return f"(not {_node(node.part, rows_of, wide)})"
    joiner = " and " if isinstance(node, And) else " or "
    return "(" + joiner.join(_node(part, rows_of, wide) for part in node.parts) + ")"


def _condition(cond: Condition, rows_of: RowsOf, wide: set[str] | frozenset[str]) -> str:
    entry = f'{FIELD}["{path_key(cond.attribute)}"]'
    hashes = "[" + ", ".join(f'"{value_hash(v)}"' for v in cond.values) + "]"
    if cond.op == "exists":
        return f'({entry}["h"] == 1)'
    if cond.op == "empty":
        return f'(not ({entry}["f"] == 1))'
    if cond.op == "in":
        return f'json_contains_any({entry}["k"], {hashes})' if cond.values else "(row < -1)"
    if cond.op == "nin":
        if not cond.values:
            return f'({entry}["h"] == 1)'
        return f'({entry}["h"] == 1 and not json_contains_any({entry}["k"], {hashes}))'
    if cond.op == "all":
        if not cond.values:
            return f'({entry}["h"] == 1)'
        return f'json_contains_all({entry}["k"], {hashes})'
    if cond.op == "range":
        slots = [
            "("
            + " and ".join(f'{entry}["n"][{i}] {_MILVUS_OPS[op]} {float(bound)!r}' for op, bound in cond.bounds)
            + ")"
            for i in range(NUMBER_SLOTS)
        ]
        if path_key(cond.attribute) in wide:  # items with more numbers than slots: the attribute table decides
            many = rows_of(cond)
            if many is None:
                raise ConfigError(
                    f"the milvus backend cannot apply a range on {cond.attribute!r} (items hold more than "
                    f"{NUMBER_SLOTS} numbers there) without the engine's attribute table: open it through the Engine"
                )
            slots.append(f'({entry}["c"] > {NUMBER_SLOTS} and {rows_expr(many)})')
        return "(" + " or ".join(slots) + ")"
    found = rows_of(cond)  # text / itext
    if found is None:
        raise ConfigError(
            f"the milvus backend cannot apply a {cond.op!r} filter on {cond.attribute!r} without the engine's "
            "attribute table (Milvus 2.3 matches string prefixes only): open it through the Engine"
        )
    return rows_expr(found)


def rows_expr(rows: np.ndarray) -> str:
    if len(rows) == 0:
        return "(row < -1)"
    return "(row in [" + ", ".join(str(int(r)) for r in rows) + "])"
