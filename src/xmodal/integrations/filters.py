"""LangChain's and LlamaIndex's metadata filters, translated into xmodal's filter language once.

Both integrations keep a document's (or node's) metadata under one attribute, :data:`METADATA`, so a
metadata key ``source`` is the attribute path ``metadata.source`` (any key works, ``parent`` and
``span`` included). The translations here only rename paths and operators; the result is parsed and
checked by :mod:`xmodal.filters` like any other filter, so a bad one is refused with the field named.

* LangChain's form is the Mongo-style dict that PGVector, Chroma and most stores take:
  ``{"source": "a.pdf"}``, ``{"page": {"$gte": 3}}``, ``{"$and": [...]}``, ``{"$or": [...]}``,
  ``{"$not": ...}``, with ``$eq $ne $gt $gte $lt $lte $in $nin $exists $contains $between $like $ilike``.
* LlamaIndex's form is ``MetadataFilters`` (read here by attribute, without importing LlamaIndex): each
  ``FilterOperator`` and each ``FilterCondition`` (``and``, ``or``, ``not``: none of them holds), nested.
  ``!=`` and ``nin`` hold for a node without the key, as in LlamaIndex's own ``SimpleVectorStore``; the keys
  ``ref_doc_id``, ``doc_id`` and ``document_id`` name the node's document (the item's ``parent``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ValidationError, brief

#: The attribute that holds a document's metadata.
METADATA = "metadata"
#: LlamaIndex's names for a node's document (``node.ref_doc_id``), stored as the item's parent.
DOCUMENT_KEYS = frozenset({"ref_doc_id", "doc_id", "document_id"})

_LOGICAL = {"$and": "and", "$or": "or", "$not": "not", "and": "and", "or": "or", "not": "not"}


def metadata_path(key: str) -> str:
    """The attribute path of a metadata key."""
    return f"{METADATA}.{key}"


# -- LangChain -------------------------------------------------------------------------------------
def langchain_filter(filter: Mapping[str, Any] | None) -> dict[str, Any]:
    """xmodal's filter for a LangChain filter dict (``{}`` for none)."""
    if filter is None:
        return {}
    if callable(filter) or not isinstance(filter, Mapping):
        raise ValidationError(
            "filter",
            f"{brief(filter)} is not a filter dict",
            'give a dict such as {"source": "a.pdf", "page": {"$gte": 3}} (see docs/filters.md)',
        )
    out: dict[str, Any] = {}
    for key, value in filter.items():
        logical = _LOGICAL.get(key)
        if logical == "not":
            out["not"] = langchain_filter(value) if isinstance(value, Mapping) else [langchain_filter(v) for v in value]
        elif logical is not None:
            if not isinstance(value, (list, tuple)):
                raise ValidationError(f"filter.{key}", "must be a list of filters", f'give {{"{key}": [{{...}}, ...]}}')
            out[logical] = [langchain_filter(v) for v in value]
        else:
            out[metadata_path(str(key))] = _langchain_condition(str(key), value)
    return out


def _langchain_condition(key: str, condition: Any) -> Any:
    """A condition with LangChain's operators that xmodal spells otherwise translated (the rest kept)."""
    if not isinstance(condition, Mapping):
        return condition
    out: dict[str, Any] = {}
    for op, arg in condition.items():
        name = str(op).lstrip("$")
        if name == "between":
            if not isinstance(arg, (list, tuple)) or len(arg) != 2:
                raise ValidationError(f"filter.{key}.$between", f"{brief(arg)} is not [low, high]", "give two numbers")
            out["gte"], out["lte"] = arg
        elif name in ("like", "ilike"):
            out.update(_like(key, name, arg))
        else:
            out[op] = arg
    return out


def _like(key: str, op: str, pattern: Any) -> dict[str, Any]:
    """SQL ``LIKE`` patterns xmodal can answer: ``%text%`` (contains) and, for ``$like``, ``text`` (equals)."""
    fix = "use '%text%' (contains), or $eq for an exact value"
    if not isinstance(pattern, str):
        raise ValidationError(f"filter.{key}.${op}", f"{brief(pattern)} is not a pattern string", fix)
    inner = pattern[1:-1] if len(pattern) >= 2 and pattern[0] == pattern[-1] == "%" else None
    if inner is not None and not any(c in inner for c in "%_"):
        return {"text_contains" if op == "like" else "text_icontains": inner}
    if op == "like" and not any(c in pattern for c in "%_"):
        return {"eq": pattern}
    raise ValidationError(f"filter.{key}.${op}", f"the pattern {pattern!r} is not supported", fix)


# -- LlamaIndex ------------------------------------------------------------------------------------
_LLAMA_OPERATORS = {
    "==": "eq",
    ">": "gt",
    ">=": "gte",
    "<": "lt",
    "<=": "lte",
    "in": "in",
    "any": "in",  # one of the list's elements is one of the values
    "all": "all",
    "contains": "contains",
    "text_match": "text_contains",
    "text_match_insensitive": "text_icontains",
}
_LLAMA_NEGATED = {"!=": "eq", "nin": "in"}  # hold where the positive does not, a node without the key included


def llamaindex_filter(filters: Any) -> dict[str, Any]:
    """xmodal's filter for a LlamaIndex ``MetadataFilters`` (``{}`` for none or an empty one)."""
    if filters is None or not getattr(filters, "filters", None):
        return {}
    parts = [llamaindex_filter(f) if hasattr(f, "filters") else _llama_one(f) for f in filters.filters]
    condition = _enum_value(getattr(filters, "condition", None) or "and")
    if condition == "and":
        return {"and": parts}
    if condition == "or":
        return {"or": parts}
    if condition == "not":
        return {"not": {"or": parts}}
    raise ValidationError("filters.condition", f"unknown condition {condition!r}", "use and, or or not")


def _llama_one(one: Any) -> dict[str, Any]:
    key, value = str(one.key), one.value
    path = "parent" if key in DOCUMENT_KEYS else metadata_path(key)
    op = _enum_value(one.operator)
    if op == "is_empty":
        return {path: {"is_empty": True}}
    if op in _LLAMA_NEGATED:
        return {"not": {path: {_LLAMA_NEGATED[op]: value}}}
    if op not in _LLAMA_OPERATORS:
        raise ValidationError(
            f"filters.{key}", f"unknown operator {op!r}", f"use one of {', '.join([*_LLAMA_OPERATORS, 'is_empty'])}"
        )
    name = _LLAMA_OPERATORS[op]
    if name in ("in", "all") and not isinstance(value, (list, tuple)):
        value = [value]
    return {path: {name: value}}


def _enum_value(value: Any) -> str:
    """An enum member's value, or the string itself."""
    return str(getattr(value, "value", value))
