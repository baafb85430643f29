"""Metadata filters: parsing conditions and evaluating them to the set of matching rows.

A filter maps attribute names to conditions, all of which must hold:

- a scalar ``"red"`` / ``5`` / ``true``: equality,
- a list ``["red", "blue"]``: membership (``in``),
- an object with any of ``gt``, ``gte``, ``lt``, ``lte``: a numeric range.

:func:`parse_filters` turns that object into a :class:`FilterExpr`, the parsed expression that goes down
to a vector backend (see :mod:`xmodal.backends.base`): the local backend resolves it to rows through the
engine's :class:`AttributeTable`; a database backend translates it into its own filter language.

Two names are an item's own fields, not attributes (no attribute may take them):

- ``parent``: the id of the item a segment belongs to, ``{"parent": "doc1"}`` (or a list of ids);
  whole items have none, so they never match;
- ``span``: the segment's position, its page number or its start in seconds: ``{"span": 3}`` (page
  3), ``{"span": {"gte": 60, "lt": 120}}`` (pages 60–119, or clips starting in the second minute).
  On the command line: ``--where parent=doc1 --where span>=60 --where span<120``.

:class:`AttributeTable` keeps posting lists per (attribute, value) and a numeric column per
attribute, so a condition is answered without scanning items.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ValidationError, brief
from .index.base import Labels
from .records import AttributeValue

RANGE_OPS = ("gt", "gte", "lt", "lte")
ValueKey = tuple[str, object]


def value_key(value: object) -> ValueKey:
    """A hashable key that keeps ``True`` apart from ``1`` and ``1`` equal to ``1.0``."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", float(value))
    return ("s", str(value))


@dataclass(frozen=True, slots=True)
class Condition:
    """One attribute's condition: ``values`` (equality / membership, as :func:`value_key` keys) or
    ``bounds`` (a numeric range: ``(op, bound)`` pairs with op one of :data:`RANGE_OPS`, all must hold)."""

    attribute: str
    values: tuple[ValueKey, ...] = ()  # equality / membership
    bounds: tuple[tuple[str, float], ...] = ()  # numeric range

    def holds(self, value: object) -> bool:
        """Whether an item whose attribute has ``value`` (None: missing) satisfies this condition."""
        if value is None:
            return False
        if self.values:
            return value_key(value) in self.values
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False  # a range holds for numbers only, as in the attribute table
        return all(_RANGE_TESTS[op](float(value), bound) for op, bound in self.bounds)


_RANGE_TESTS: dict[str, Callable[[float, float], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


@dataclass(frozen=True, slots=True)
class FilterExpr:
    """A parsed filter: every condition must hold (a conjunction). What a vector backend is given."""

    conditions: tuple[Condition, ...]

    @classmethod
    def parse(cls, filters: Mapping[str, Any] | None) -> FilterExpr | None:
        """The expression of a user filter object; None when there is no filter (``None`` or ``{}``)."""
        conditions = parse_filters(filters or {})
        return cls(tuple(conditions)) if conditions else None

    def attributes(self) -> list[str]:
        return [cond.attribute for cond in self.conditions]

    def matches(self, attributes: Mapping[str, Any]) -> bool:
        """Whether an item with these attributes satisfies every condition (a reference evaluation)."""
        return all(cond.holds(attributes.get(cond.attribute)) for cond in self.conditions)


def parse_filters(filters: Mapping[str, Any]) -> list[Condition]:
    """Turn a user filter object into conditions, or raise a :class:`ValidationError` naming the field."""
    conditions = []
    for name, spec in filters.items():
        field = f"filters.{name}"
        if isinstance(spec, Mapping):
            conditions.append(Condition(name, bounds=_parse_range(field, spec)))
        elif isinstance(spec, (list, tuple)):
            if not spec:
                raise ValidationError(field, "empty list", "give at least one value")
            conditions.append(Condition(name, values=tuple(_scalar_key(field, v) for v in spec)))
        else:
            conditions.append(Condition(name, values=(_scalar_key(field, spec),)))
    return conditions


def _scalar_key(field: str, value: object) -> ValueKey:
    if not isinstance(value, (str, int, float, bool)):
        raise ValidationError(
            field, f"value {brief(value)} is not a string, number or boolean", "use a scalar or a list of them"
        )
    return value_key(value)


def _parse_range(field: str, spec: Mapping[str, Any]) -> tuple[tuple[str, float], ...]:
    unknown = set(spec) - set(RANGE_OPS)
    if unknown or not spec:
        raise ValidationError(field, f"unknown range operator(s) {sorted(unknown)}", "use gt, gte, lt, lte")
    bounds = []
    for op, bound in spec.items():
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not np.isfinite(bound):
            raise ValidationError(f"{field}.{op}", f"bound {brief(bound)} is not a finite number", "use a number")
        bounds.append((op, float(bound)))
    return tuple(bounds)


def parse_where(expressions: list[str]) -> dict[str, Any]:
    """Parse CLI ``FIELD=VALUE`` / ``FIELD>=N`` / ``FIELD<N`` expressions into a filter object.

    Values are read as JSON when they parse (``5``, ``true``, ``["a","b"]``), else as strings;
    a comma-free ``a|b`` is a membership list.
    """
    out: dict[str, Any] = {}
    for expr in expressions:
        name, op, raw = _split_where(expr)
        if op is None:
            out[name] = _cli_value(raw) if "|" not in raw else [_cli_value(v) for v in raw.split("|")]
        else:
            cond = out.setdefault(name, {})
            if not isinstance(cond, dict):
                raise ValidationError("--where", f"{name} has both a value and a range", "use one of them")
            cond[op] = _cli_value(raw)
    return out


def _split_where(expr: str) -> tuple[str, str | None, str]:
    """Split at the first operator: ``price<=20`` → (price, lte, 20); ``color=red`` → (color, None, red)."""
    positions = [(expr.find(tok), -len(tok), tok, op) for tok, op in _WHERE_OPS if expr.find(tok) > 0]
    if not positions:
        raise ValidationError("--where", f"{expr!r} is not FIELD=VALUE", "write e.g. --where color=red or price<20")
    at, _, token, op = min(positions)
    return expr[:at].strip(), op, expr[at + len(token) :]


_WHERE_OPS: tuple[tuple[str, str | None], ...] = ((">=", "gte"), ("<=", "lte"), (">", "gt"), ("<", "lt"), ("=", None))


def _cli_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


class AttributeTable:
    """Posting lists of rows per (attribute, value) plus a numeric value per (attribute, row)."""

    def __init__(self) -> None:
        self._postings: dict[str, dict[ValueKey, set[int]]] = {}
        self._numeric: dict[str, dict[int, float]] = {}
        self._cache: dict[tuple[str, ValueKey], Labels] = {}

    def attributes(self) -> list[str]:
        return sorted(self._postings)

    def values(self, attribute: str) -> dict[object, int]:
        """Each value of an attribute with how many rows carry it (for facets and query understanding)."""
        return {key[1]: len(rows) for key, rows in self._postings.get(attribute, {}).items() if rows}

    def add(self, row: int, attributes: Mapping[str, AttributeValue]) -> None:
        self.add_rows((row,), attributes)

    def add_rows(self, rows: Collection[int], attributes: Mapping[str, AttributeValue]) -> None:
        """Add rows that all carry the same attributes (one posting-list update per attribute)."""
        for name, value in attributes.items():
            key = value_key(value)
            self._postings.setdefault(name, {}).setdefault(key, set()).update(rows)
            self._cache.pop((name, key), None)
            if key[0] == "n":
                self._numeric.setdefault(name, {}).update(dict.fromkeys(rows, float(value)))

    def remove(self, row: int, attributes: Mapping[str, AttributeValue]) -> None:
        for name, value in attributes.items():
            key = value_key(value)
            self._postings.get(name, {}).get(key, set()).discard(row)
            self._cache.pop((name, key), None)
            self._numeric.get(name, {}).pop(row, None)

    def _rows(self, name: str, key: ValueKey) -> Labels:
        cached = self._cache.get((name, key))
        if cached is None:
            rows = self._postings.get(name, {}).get(key, ())
            cached = np.fromiter(sorted(rows), dtype=np.int64, count=len(rows))
            self._cache[(name, key)] = cached
        return cached

    def match(self, filters: Mapping[str, Any]) -> Labels | None:
        """Sorted rows that satisfy every condition; ``None`` when there is no filter."""
        where = FilterExpr.parse(filters)
        if where is None:
            return None
        self.check(where)
        return self.match_expr(where)

    def check(self, where: FilterExpr) -> None:
        """Refuse a condition on an attribute no item has (a typo would silently match nothing)."""
        for name in where.attributes():
            if name not in self._postings:
                known = ", ".join(self.attributes()) or "none yet"
                raise ValidationError(
                    f"filters.{name}", "is not an attribute of any item", f"filter on one of: {known}"
                )

    def match_expr(self, where: FilterExpr) -> Labels:
        """Sorted rows that satisfy every condition of a parsed expression."""
        result: Labels | None = None
        for cond in where.conditions:
            rows = self._match_one(cond)
            result = rows if result is None else np.intersect1d(result, rows, assume_unique=True)
        return result if result is not None else np.empty(0, dtype=np.int64)

    def _match_one(self, cond: Condition) -> Labels:
        if cond.values:
            parts = [self._rows(cond.attribute, key) for key in cond.values]
            return parts[0] if len(parts) == 1 else np.unique(np.concatenate(parts))
        column = self._numeric.get(cond.attribute, {})
        if not column:
            return np.empty(0, dtype=np.int64)
        rows = np.fromiter(column.keys(), dtype=np.int64, count=len(column))
        vals = np.fromiter(column.values(), dtype=np.float64, count=len(column))
        keep = np.ones(len(rows), dtype=bool)
        for op, bound in cond.bounds:
            keep &= {"gt": vals > bound, "gte": vals >= bound, "lt": vals < bound, "lte": vals <= bound}[op]
        return np.sort(rows[keep])
