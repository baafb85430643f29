"""The filter language: a JSON object parsed into a tree of :mod:`~xmodal.filters.nodes`.

A filter object maps keys to conditions, all of which must hold. A key is either a logical operator
(``and`` / ``or``: a list of filter objects; ``not``: a filter object) or a *path*: an attribute name, or
a dotted path into nested objects (``meta.brand``). A condition on a path is

- a scalar (string, number, boolean, null): equality (on a list: one of its elements is equal);
- a list of scalars: one of them (``in``);
- an object of operators, all of which must hold: ``eq``, ``ne``, ``in`` (``any``), ``nin``, ``all``,
  ``contains``, ``not_contains``, ``gt``, ``gte``, ``lt``, ``lte``, ``exists``, ``is_null``,
  ``is_empty``, ``text_contains`` (``text_match``), ``text_icontains`` (``text_match_insensitive``) and
  ``not`` (a condition on the same path, negated).

Every operator and logical key may also be written with a leading ``$`` (``$and``, ``$in``, ``$ne``...),
as Chroma, MongoDB and LlamaIndex users write them. Errors name the field (``filters.or[1].price.gt``)
and the fix; nesting deeper than :data:`MAX_FILTER_DEPTH` levels is refused without recursing further.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ValidationError, brief
from .nodes import RANGE_OPS, And, Condition, Node, Not, Or, ValueKey, finite_number, value_key

#: How deep ``and`` / ``or`` / ``not`` may nest in one filter.
MAX_FILTER_DEPTH = 32
LOGIC = ("and", "or", "not")
#: Operator names (a leading ``$`` is dropped first) → the native name.
OPERATORS: dict[str, str] = {
    **{name: name for name in ("eq", "ne", "in", "nin", "all", "contains", "not_contains", *RANGE_OPS)},
    **{name: name for name in ("exists", "is_null", "is_empty", "text_contains", "text_icontains", "not")},
    "any": "in",
    "text_match": "text_contains",
    "text_match_insensitive": "text_icontains",
}
OPERATOR_LIST = "eq, ne, in, nin, all, contains, gt, gte, lt, lte, exists, is_null, is_empty, text_contains, not"
SCALAR_FIX = "use a string, number, boolean or null"


def parse_filters(filters: Mapping[str, Any] | None) -> Node | None:
    """The tree of a user filter object (None for ``None`` or ``{}``), or a :class:`ValidationError`."""
    if filters is None:
        return None
    if not isinstance(filters, Mapping):
        raise ValidationError("filters", f"{brief(filters)} is not an object", 'write e.g. {"color": "red"}')
    return _object(filters, "filters", 0) if filters else None


def logic_name(key: str) -> str | None:
    """``and`` / ``or`` / ``not`` for a logical key (``$`` allowed), else None."""
    name = key[1:] if key[:1] == "$" else key
    return name if name in LOGIC else None


def filterable(path: str) -> bool:
    """Whether a filter can name this attribute path (not a logical word, no ``$`` or empty part)."""
    return (
        bool(path) and path not in LOGIC and path[0] != "$" and path[0] != "." and path[-1] != "." and ".." not in path
    )


def _object(spec: Mapping[str, Any], field: str, depth: int) -> Node:
    """Every key of a filter object: a conjunction (one key: its node alone)."""
    if depth > MAX_FILTER_DEPTH:
        raise _too_deep()
    parts = [_key(key, value, field, depth) for key, value in spec.items()]
    return parts[0] if len(parts) == 1 else And(tuple(parts))


DEPTH_FIX = "flatten it: conditions in one object must all hold; or-lists take many alternatives"


def _too_deep() -> ValidationError:
    return ValidationError("filters", f"nests and/or/not more than {MAX_FILTER_DEPTH} levels deep", DEPTH_FIX)


def _key(key: object, value: Any, field: str, depth: int) -> Node:
    if not isinstance(key, str):
        raise ValidationError(field, f"key {brief(key)} is not a string", "name an attribute or and/or/not")
    if type(value) in _SCALARS and filterable(key):  # the common case, {"color": "red"}, at once
        return Condition(key, "in", (_scalar(value, f"{field}.{key}"),))
    logic = logic_name(key)
    if logic is not None:
        return _logic(logic, value, f"{field}.{key}", depth + 1)
    if not filterable(key):
        raise ValidationError(
            f"{field}.{key}", "is not an attribute path", "write a name or a dotted path such as meta.brand"
        )
    return _condition(key, value, f"{field}.{key}", depth)


def _logic(name: str, value: Any, field: str, depth: int) -> Node:
    if name == "not" and isinstance(value, Mapping):
        return Not(_nested(value, field, depth))
    if not isinstance(value, (list, tuple)) or not value:
        shape = "a filter object (or a list of them)" if name == "not" else "a non-empty list of filter objects"
        raise ValidationError(field, f"takes {shape}, got {brief(value)}", f'write e.g. {{"{name}": [{{"a": 1}}]}}')
    parts = [_nested(part, f"{field}[{i}]", depth) for i, part in enumerate(value)]
    node = parts[0] if len(parts) == 1 else (Or(tuple(parts)) if name == "or" else And(tuple(parts)))
    return Not(node) if name == "not" else node


def _nested(value: Any, field: str, depth: int) -> Node:
    if not isinstance(value, Mapping) or not value:
        raise ValidationError(field, f"{brief(value)} is not a non-empty filter object", 'write e.g. {"color": "red"}')
    return _object(value, field, depth)


def _condition(path: str, spec: Any, field: str, depth: int) -> Node:
    """The condition on one path: a scalar, a list of scalars, or an object of operators."""
    if depth > MAX_FILTER_DEPTH:
        raise _too_deep()
    if isinstance(spec, Mapping):
        if not spec:
            raise ValidationError(field, "is an empty condition", f"give an operator: {OPERATOR_LIST}")
        return _operators(path, spec, field, depth)
    if isinstance(spec, (list, tuple)):
        return Condition(path, "in", _keys(spec, field))
    return Condition(path, "in", (_scalar(spec, field),))


def _operators(path: str, spec: Mapping[str, Any], field: str, depth: int) -> Node:
    parts: list[Node] = []
    bounds: list[tuple[str, float]] = []
    for key, arg in spec.items():
        op = OPERATORS.get(key[1:] if isinstance(key, str) and key.startswith("$") else key)
        where = f"{field}.{key}"
        if op is None:
            raise ValidationError(
                where,
                f"unknown operator {brief(key)}",
                f"use {OPERATOR_LIST}; a nested attribute is a dotted path ({path}.{key})",
            )
        if op in RANGE_OPS:
            bounds.append((op, _bound(arg, where)))
        elif op == "not":
            parts.append(Not(_condition(path, arg, where, depth + 1)))
        else:
            parts.append(_operator(path, op, arg, where))
    if bounds:
        parts.insert(0, Condition(path, "range", bounds=tuple(bounds)))
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def _operator(path: str, op: str, arg: Any, field: str) -> Node:
    if op in ("eq", "contains"):
        return Condition(path, "in", (_scalar(arg, field),))
    if op in ("ne", "not_contains"):
        return Condition(path, "nin", (_scalar(arg, field),))
    if op in ("in", "nin", "all"):
        return Condition(path, op, _keys(arg, field))
    if op in ("text_contains", "text_icontains"):
        if not isinstance(arg, str) or not arg:
            raise ValidationError(field, f"{brief(arg)} is not a non-empty string", "give the text to look for")
        return Condition(path, "text" if op == "text_contains" else "itext", text=arg)
    if not isinstance(arg, bool):
        raise ValidationError(field, f"{brief(arg)} is not true or false", f'write e.g. {{"{op}": true}}')
    node = {
        "exists": Condition(path, "exists"),
        "is_empty": Condition(path, "empty"),
        "is_null": Condition(path, "in", (value_key(None),)),
    }[op]
    if op == "is_null" and not arg:
        return Condition(path, "nin", (value_key(None),))
    return node if arg else Not(node)


def _keys(values: Any, field: str) -> tuple[ValueKey, ...]:
    if not isinstance(values, (list, tuple)):
        raise ValidationError(field, f"{brief(values)} is not a list", 'give a list of values, e.g. ["red", "blue"]')
    if not values:
        raise ValidationError(field, "empty list", "give at least one value")
    return tuple(dict.fromkeys(_scalar(v, f"{field}[{i}]") for i, v in enumerate(values)))


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _scalar(value: object, field: str) -> ValueKey:
    if value is not None and not isinstance(value, (str, int, float, bool)):
        raise ValidationError(field, f"value {brief(value)} is not a string, number, boolean or null", SCALAR_FIX)
    if (isinstance(value, float) or (isinstance(value, int) and abs(value) > 2**53)) and not finite_number(value):
        raise ValidationError(field, f"{brief(value)} is NaN or infinite", "use a finite number")
    return value_key(value)


def _bound(bound: object, field: str) -> float:
    if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not finite_number(bound):
        raise ValidationError(field, f"bound {brief(bound)} is not a finite number", "use a number")
    return float(bound)
