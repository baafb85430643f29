"""The attribute table: posting lists of rows per (path, value), so a filter is answered without a scan.

Each item's attributes are *flattened* (:func:`flatten`): every scalar is filed under its dotted path
(``meta.brand``), the elements of a list under the list's own path (so ``tags: ["a", "b"]`` files ``a``
and ``b`` under ``tags``), and every list or object is noted by its shape (a non-empty object, a
non-empty list, ``[]`` or ``{}``). From those the table answers each operator of
:mod:`xmodal.filters.nodes` exactly as the reference evaluation does: equality and membership from the
posting lists, ranges from a sorted numeric column per path, ``exists`` from everything filed under a
path, ``is_empty`` from the rows holding a non-empty value there, ``text`` by scanning the distinct
strings of a path, and ``not`` against every row of the table.

Arrays derived from the sets (a value's rows, a path's rows, its numeric column) are cached and dropped
by the writes that change them, so a repeated filter costs a dictionary look-up.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from functools import reduce
from typing import Any

import numpy as np

from ..errors import ValidationError
from ..index.base import Labels
from .expr import FilterExpr
from .nodes import EMPTY_STRING_KEY, NULL_KEY, RANGE_TESTS, And, Condition, Node, Not, ValueKey, value_key

Leaves = dict[str, list[object]]
Shapes = dict[str, set[str]]
OBJECT, LIST, EMPTY_LIST, EMPTY_OBJECT = "object", "list", "[]", "{}"
PRESENT, FILLED = "present", "filled"
KNOWN_SHOWN = 30  # attribute names listed in an unknown-attribute error
_NUMPY_TESTS = {"gt": np.greater, "gte": np.greater_equal, "lt": np.less, "lte": np.less_equal}


def flatten(attributes: Mapping[str, Any]) -> tuple[Leaves, Shapes]:
    """Each path's scalars (list elements included, in order) and the shapes of the lists and objects
    met on each path (``object``, ``list``, ``[]``, ``{}``)."""
    leaves: Leaves = {}
    shapes: Shapes = {}
    for name, value in attributes.items():
        if isinstance(value, (dict, list, Mapping)):
            _walk(name, value, leaves, shapes)
        else:  # a scalar attribute, the common case, without a call
            leaves.setdefault(name, []).append(value)
    return leaves, shapes


def _walk(path: str, value: object, leaves: Leaves, shapes: Shapes) -> None:
    if isinstance(value, Mapping):
        shapes.setdefault(path, set()).add(OBJECT if value else EMPTY_OBJECT)
        for key, child in value.items():
            _walk(f"{path}.{key}", child, leaves, shapes)
    elif isinstance(value, list):
        shapes.setdefault(path, set()).add(LIST if value else EMPTY_LIST)
        for element in value:
            _walk(path, element, leaves, shapes)
    else:
        leaves.setdefault(path, []).append(value)


_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})


def _array(rows: Collection[int]) -> Labels:
    return np.fromiter(sorted(rows), dtype=np.int64, count=len(rows))


_NONE: Labels = np.empty(0, dtype=np.int64)
_NONE.flags.writeable = False  # shared by every lookup of a value no row holds


def _union(parts: list[Labels]) -> Labels:
    """The sorted rows in any of ``parts`` (sorted, unique arrays): one concatenation and one sort, where a
    pairwise ``np.union1d`` re-sorts the growing result once per part (a 10,000-value list: ~40 ms)."""
    if not parts:
        return _NONE
    if len(parts) == 1:
        return parts[0]
    return np.unique(np.concatenate(parts))


class AttributeTable:
    """Posting lists of rows per (path, value), numbers per (path, row), shapes per path, and every row."""

    def __init__(self) -> None:
        self._postings: dict[str, dict[ValueKey, set[int]]] = {}
        self._numeric: dict[str, dict[int, float]] = {}  # rows holding exactly one number at the path
        self._multi: dict[str, dict[int, tuple[float, ...]]] = {}  # rows holding several
        self._shapes: dict[str, dict[str, set[int]]] = {}
        self._rows: set[int] = set()
        self._cache: dict[tuple[str, ValueKey], Labels] = {}
        self._derived: dict[tuple[str, str], Labels] = {}  # (path, PRESENT | FILLED) -> rows
        self._columns: dict[str, tuple[Labels, np.ndarray]] = {}  # path -> (rows, numbers), by row
        self._universe: Labels | None = None

    # -- what the table holds ----------------------------------------------------------------------
    def attributes(self) -> list[str]:
        """The paths that hold scalars (an attribute, or ``a.b`` inside an object), sorted."""
        return sorted(self._postings)

    def known(self, path: str) -> bool:
        """Whether any item ever held ``path`` (a scalar, a list or an object there)."""
        return path in self._postings or path in self._shapes

    def listed(self, path: str) -> bool:
        """Whether some row holds a non-empty list at ``path``: a multi-valued attribute (tags, not a category)."""
        return bool(self._shapes.get(path, {}).get(LIST))

    def values(self, attribute: str) -> dict[object, int]:
        """Each value at a path with how many rows carry it (for facets and query understanding)."""
        return {key[1]: len(rows) for key, rows in self._postings.get(attribute, {}).items() if rows}

    # -- writes ------------------------------------------------------------------------------------
    def add(self, row: int, attributes: Mapping[str, Any]) -> None:
        self.add_rows((row,), attributes)

    def add_rows(self, rows: Collection[int], attributes: Mapping[str, Any]) -> None:
        """Add rows that all carry the same attributes (flattened once, one posting update per value)."""
        self._rows.update(rows)
        self._universe = None
        if all(type(value) in _SCALAR_TYPES for value in attributes.values()):  # flat: each name is a path
            for name, value in attributes.items():
                self._add_scalar(rows, name, value)
            return
        leaves, shapes = flatten(attributes)
        for path, values in leaves.items():
            postings = self._postings.setdefault(path, {})
            numbers = []
            for value in values:
                key = value_key(value)
                postings.setdefault(key, set()).update(rows)
                if self._cache:
                    self._cache.pop((path, key), None)
                if key[0] == "n":
                    numbers.append(key[1])
            if len(numbers) == 1:
                self._numeric.setdefault(path, {}).update(dict.fromkeys(rows, numbers[0]))  # type: ignore[arg-type]
            elif numbers:
                self._multi.setdefault(path, {}).update(dict.fromkeys(rows, tuple(numbers)))  # type: ignore[arg-type]
            self._changed(path)
        for path, kinds in shapes.items():
            table = self._shapes.setdefault(path, {})
            for kind in kinds:
                table.setdefault(kind, set()).update(rows)
            self._changed(path)

    def _add_scalar(self, rows: Collection[int], path: str, value: object) -> None:
        """:meth:`add_rows` of one scalar at a path no other attribute of the rows reaches."""
        key = value_key(value)
        postings = self._postings.setdefault(path, {})
        postings.setdefault(key, set()).update(rows)
        if self._cache:
            self._cache.pop((path, key), None)
        if key[0] == "n":
            self._numeric.setdefault(path, {}).update(dict.fromkeys(rows, key[1]))  # type: ignore[arg-type]
        self._changed(path)

    def remove(self, row: int, attributes: Mapping[str, Any]) -> None:
        """Take ``row`` out, with the attributes it was added with."""
        self._rows.discard(row)
        self._universe = None
        if all(type(value) in _SCALAR_TYPES for value in attributes.values()):
            for name, value in attributes.items():
                self._remove_scalar(row, name, value)
            return
        leaves, shapes = flatten(attributes)
        for path, values in leaves.items():
            postings = self._postings.get(path, {})
            for value in values:
                key = value_key(value)
                found = postings.get(key)
                if found is not None:
                    found.discard(row)
                if self._cache:
                    self._cache.pop((path, key), None)
            numeric = self._numeric.get(path)
            if numeric is not None:
                numeric.pop(row, None)
            if self._multi:
                self._multi.get(path, {}).pop(row, None)
            self._changed(path)
        for path, kinds in shapes.items():
            for kind in kinds:
                self._shapes.get(path, {}).get(kind, set()).discard(row)
            self._changed(path)

    def _remove_scalar(self, row: int, path: str, value: object) -> None:
        key = value_key(value)
        found = self._postings.get(path, {}).get(key)
        if found is not None:
            found.discard(row)
        if self._cache:
            self._cache.pop((path, key), None)
        if key[0] == "n":
            self._numeric.get(path, {}).pop(row, None)
        self._changed(path)

    def _changed(self, path: str) -> None:
        """Drop the arrays derived from ``path`` (a write changed it)."""
        if self._derived:
            self._derived.pop((path, PRESENT), None)
            self._derived.pop((path, FILLED), None)
        if self._columns:
            self._columns.pop(path, None)

    # -- filters -----------------------------------------------------------------------------------
    def match(self, filters: Mapping[str, Any] | None, *, strict: bool = False) -> Labels | None:
        """Sorted rows that satisfy a filter object; ``None`` when there is no filter."""
        where = FilterExpr.parse(filters)
        if where is None:
            return None
        self.check(where, strict=strict)
        return self.match_expr(where)

    def check(self, where: FilterExpr, *, strict: bool = False) -> None:
        """Refuse a dotted path into values that are never objects (``price.amount`` where every ``price``
        is a number); with ``strict``, refuse a path no item has too (else it just matches nothing)."""
        for path in where.attributes():
            if self.known(path):
                continue
            self._check_not_into_scalars(path)
            if strict:
                names = self.attributes()
                known = ", ".join(names[:KNOWN_SHOWN]) + (", ..." if len(names) > KNOWN_SHOWN else "")
                raise ValidationError(
                    f"filters.{path}", "is not an attribute of any item", f"filter on one of: {known or 'none yet'}"
                )

    def _check_not_into_scalars(self, path: str) -> None:
        parts = path.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            prefix = ".".join(parts[:cut])
            if self.known(prefix):
                shapes = self._shapes.get(prefix, {})
                if not (shapes.get(OBJECT) or shapes.get(EMPTY_OBJECT)):
                    rest = ".".join(parts[cut:])
                    raise ValidationError(
                        f"filters.{path}",
                        f"{prefix!r} never holds an object (its values are strings, numbers, booleans, null or "
                        f"lists of them), so nothing is at {rest!r} inside it",
                        f"filter on {prefix!r} itself",
                    )
                return

    def match_expr(self, where: FilterExpr) -> Labels:
        """Sorted rows that satisfy a parsed expression."""
        return self._eval(where.root)

    def _eval(self, node: Node) -> Labels:
        if isinstance(node, Condition):
            return self._condition(node)
        if isinstance(node, Not):
            return np.setdiff1d(self._all(), self._eval(node.part), assume_unique=True)
        if isinstance(node, And):
            return self._and(node)
        return _union([self._eval(part) for part in node.parts])

    def _and(self, node: And) -> Labels:
        """Intersect the positive parts first, then take the negated ones away (no complement built)."""
        result: Labels | None = None
        for part in node.parts:
            if not isinstance(part, Not):
                rows = self._eval(part)
                result = rows if result is None else np.intersect1d(result, rows, assume_unique=True)
                if len(result) == 0:
                    return result
        if result is None:
            result = self._all()
        for part in node.parts:
            if isinstance(part, Not):
                result = np.setdiff1d(result, self._eval(part.part), assume_unique=True)
        return result

    def _condition(self, cond: Condition) -> Labels:
        path, op = cond.attribute, cond.op
        if op == "in":
            return _union([self._value_rows(path, key) for key in cond.values])
        if op == "nin":
            inside = self._condition(Condition(path, "in", cond.values))
            return np.setdiff1d(self._path_rows(path, PRESENT), inside, assume_unique=True)
        if op == "all":
            return reduce(np.intersect1d, (self._value_rows(path, key) for key in cond.values))
        if op == "range":
            return self._range(path, cond.bounds)
        if op == "exists":
            return self._path_rows(path, PRESENT)
        if op == "empty":
            return np.setdiff1d(self._all(), self._path_rows(path, FILLED), assume_unique=True)
        return self._text(path, cond.text, fold=op == "itext")

    # -- the arrays conditions are answered from ------------------------------------------------------
    def _all(self) -> Labels:
        if self._universe is None:
            self._universe = _array(self._rows)
        return self._universe

    def _value_rows(self, path: str, key: ValueKey) -> Labels:
        cached = self._cache.get((path, key))
        if cached is None:
            rows = self._postings.get(path, {}).get(key)
            if not rows:  # not cached: a filter's values no row holds would grow the cache without bound
                return _NONE
            cached = self._cache[(path, key)] = _array(rows)
        return cached

    def _path_rows(self, path: str, which: str) -> Labels:
        """Every row holding ``path`` (PRESENT), or holding a non-empty value there (FILLED)."""
        cached = self._derived.get((path, which))
        if cached is None:
            rows: set[int] = set()
            for key, found in self._postings.get(path, {}).items():
                if which == PRESENT or key not in (NULL_KEY, EMPTY_STRING_KEY):
                    rows |= found
            for kind, found in self._shapes.get(path, {}).items():
                if which == PRESENT or kind in (OBJECT, LIST):
                    rows |= found
            cached = self._derived[(path, which)] = _array(rows)
        return cached

    def _column(self, path: str) -> tuple[Labels, np.ndarray]:
        """The rows holding one number at ``path`` and those numbers, by row."""
        column = self._columns.get(path)
        if column is None:
            numbers = self._numeric.get(path, {})
            rows = np.fromiter(numbers.keys(), dtype=np.int64, count=len(numbers))
            vals = np.fromiter(numbers.values(), dtype=np.float64, count=len(numbers))
            order = np.argsort(rows, kind="stable")
            column = self._columns[path] = (rows[order], vals[order])
        return column

    def _range(self, path: str, bounds: tuple[tuple[str, float], ...]) -> Labels:
        rows, vals = self._column(path)
        keep = np.ones(len(rows), dtype=bool)
        for op, bound in bounds:
            keep &= _NUMPY_TESTS[op](vals, bound)
        found = rows[keep]
        several = [
            row
            for row, numbers in self._multi.get(path, {}).items()
            if any(all(RANGE_TESTS[op](n, bound) for op, bound in bounds) for n in numbers)
        ]
        return np.union1d(found, np.array(several, dtype=np.int64)) if several else found

    def _text(self, path: str, text: str, *, fold: bool) -> Labels:
        needle = text.casefold() if fold else text
        keys = [
            key
            for key in self._postings.get(path, {})
            if key[0] == "s" and needle in (str(key[1]).casefold() if fold else str(key[1]))
        ]
        return _union([self._value_rows(path, key) for key in keys])
