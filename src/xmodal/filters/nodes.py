"""The parsed filter: condition nodes joined by ``And``, ``Or`` and ``Not``, and their reference evaluation.

A :class:`Condition` tests the values an item holds at one *path* (an attribute name, or a dotted path
into nested objects: ``meta.brand``). What an item holds at a path (:func:`values_at`) is every value
reached by following the path's parts through objects, through the elements of lists met on the way, and
through attribute names that contain dots themselves (``{"a.b": 1}`` and ``{"a": {"b": 1}}`` are both
reached by ``a.b``). The *leaves* of those values (:func:`leaves`) are their scalars (strings, numbers,
booleans, null), the elements of lists (at any depth) included, objects left out.

A condition's operator (:data:`OPS`) is one of:

- ``in``: some leaf has one of ``values`` (equality is ``in`` with one value, and ``contains`` on a list
  is equality with one of its elements);
- ``nin``: the item holds the path and no leaf has any of ``values`` (``ne`` is ``nin`` with one value);
- ``all``: every one of ``values`` is a leaf;
- ``range``: some number leaf (not a boolean) satisfies every ``(op, bound)`` of ``bounds``;
- ``exists``: the item holds the path (whatever the value: null, ``[]`` and objects included);
- ``empty``: every value at the path is empty: null, ``""``, ``[]`` or ``{}`` (true when there is none);
- ``text`` / ``itext``: some string leaf contains ``text`` (``itext``: ignoring case).

Values compare by :func:`value_key`: ``1`` equals ``1.0``, ``True`` is never ``1``, and null equals only
null. These functions are the reference every evaluation (the attribute table, a backend's own filter
language) must agree with; the property tests compare them.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

ValueKey = tuple[str, object]
RANGE_OPS = ("gt", "gte", "lt", "lte")
OPS = ("in", "nin", "all", "range", "exists", "empty", "text", "itext")
NULL_KEY: ValueKey = ("z", None)
EMPTY_STRING_KEY: ValueKey = ("s", "")


def value_key(value: object) -> ValueKey:
    """A hashable key that keeps ``True`` apart from ``1``, ``1`` equal to ``1.0`` and null apart from all."""
    if value is None:
        return NULL_KEY
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", float(value))
    return ("s", str(value))


def is_number(value: object) -> bool:
    """A number a range compares: an int or a float, never a boolean."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


RANGE_TESTS: dict[str, Callable[[float, float], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


@dataclass(frozen=True, slots=True)
class Condition:
    """One test on the values at ``attribute`` (a path): ``op`` (see :data:`OPS`) with its operands."""

    attribute: str
    op: str = "in"
    values: tuple[ValueKey, ...] = ()  # in / nin / all
    bounds: tuple[tuple[str, float], ...] = ()  # range: (op, bound), op one of RANGE_OPS
    text: str = ""  # text / itext

    def holds(self, found: Sequence[object]) -> bool:
        """Whether an item holding ``found`` at the path (:func:`values_at`; empty: none) satisfies this."""
        if self.op == "exists":
            return bool(found)
        if self.op == "empty":
            return all(is_empty(value) for value in found)
        keys = {value_key(leaf) for leaf in leaves(found)}
        if self.op == "in":
            return not keys.isdisjoint(self.values)
        if self.op == "nin":
            return bool(found) and keys.isdisjoint(self.values)
        if self.op == "all":
            return bool(found) and set(self.values) <= keys
        if self.op == "range":
            return any(
                is_number(leaf) and all(RANGE_TESTS[op](float(leaf), bound) for op, bound in self.bounds)  # type: ignore[arg-type]
                for leaf in leaves(found)
            )
        needle = self.text if self.op == "text" else self.text.casefold()
        strings = (leaf for leaf in leaves(found) if isinstance(leaf, str))
        return any(needle in (s if self.op == "text" else s.casefold()) for s in strings)


@dataclass(frozen=True, slots=True)
class And:
    """Every part holds."""

    parts: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """At least one part holds."""

    parts: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """The part does not hold (an item without the attribute satisfies ``Not`` of any condition on it)."""

    part: Node


Node: TypeAlias = "Condition | And | Or | Not"


def conditions(node: Node) -> Iterator[Condition]:
    """Every condition of a tree, depth first, left to right."""
    stack: list[Node] = [node]
    while stack:
        top = stack.pop()
        if isinstance(top, Condition):
            yield top
        elif isinstance(top, Not):
            stack.append(top.part)
        else:
            stack.extend(reversed(top.parts))


def evaluate(node: Node, attributes: Mapping[str, Any]) -> bool:
    """The reference evaluation of a tree on one item's (nested) attributes."""
    if isinstance(node, Condition):
        return node.holds(values_at(attributes, node.attribute))
    if isinstance(node, Not):
        return not evaluate(node.part, attributes)
    if isinstance(node, And):
        return all(evaluate(part, attributes) for part in node.parts)
    return any(evaluate(part, attributes) for part in node.parts)


def values_at(attributes: Mapping[str, Any], path: str) -> list[object]:
    """Every value reached by ``path`` in ``attributes`` (see the module docstring); empty when none."""
    found: list[object] = []
    _collect(attributes, path, found)
    return found


def _collect(node: Mapping[str, Any], path: str, found: list[object]) -> None:
    for key, value in node.items():
        if key == path:
            found.append(value)
        elif path.startswith(key) and path[len(key) : len(key) + 1] == ".":
            _descend(value, path[len(key) + 1 :], found)


def _descend(value: object, rest: str, found: list[object]) -> None:
    if isinstance(value, Mapping):
        _collect(value, rest, found)
    elif isinstance(value, list):
        for element in value:
            _descend(element, rest, found)


def leaves(values: Sequence[object]) -> Iterator[object]:
    """The scalars of ``values``: each scalar, and the elements of lists at any depth; objects left out."""
    stack = list(reversed(values))
    while stack:
        value = stack.pop()
        if isinstance(value, list):
            stack.extend(reversed(value))
        elif not isinstance(value, Mapping):
            yield value


def is_empty(value: object) -> bool:
    """Null, ``""``, ``[]`` or ``{}``."""
    return value is None or (isinstance(value, (str, list, Mapping)) and not value)


def finite_number(value: object) -> bool:
    """A number that is neither NaN nor infinite (and an int small enough to be a float)."""
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except OverflowError:
        return False
