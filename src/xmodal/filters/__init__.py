"""Metadata filters: the filter language, its parsed form, and the attribute table that answers it.

A filter is a JSON object; every key must hold. A key is an attribute *path* (a name, or a dotted path
into nested objects: ``meta.brand``) or a logical operator (``and`` / ``or`` with a list of filter
objects, ``not`` with one). A path's condition is a value (equality), a list (any of them) or an object
of operators (``eq``, ``ne``, ``in``/``any``, ``nin``, ``all``, ``contains``, ``gt``, ``gte``, ``lt``,
``lte``, ``exists``, ``is_null``, ``is_empty``, ``text_contains``, ``text_icontains``, ``not``), all of
which must hold; any operator may be written with a leading ``$`` (``$in``, ``$or``), as Chroma and
LlamaIndex users write them. A condition on a list holds when it holds for one of its elements::

    {"tags": "red"}                                          # "red" is one of the tags (or the tag)
    {"price": {"gte": 10, "lt": 20}, "meta.brand": {"ne": "acme"}}
    {"or": [{"color": "red"}, {"not": {"sale": true}}]}
    {"$and": [{"year": {"$gt": 2020}}, {"authors.name": {"$in": ["Ann", "Bo"]}}]}

An item without the path satisfies no condition on it except ``exists: false`` and ``is_empty: true``
(``not`` of a condition does match it). A path no item has matches nothing (``strict`` searches refuse it);
a dotted path into values that are never objects is an error. The docs (``docs/filters.md``) have the
whole language with its semantics; :mod:`.nodes` is the reference evaluation.

:func:`parse_filters` / :meth:`FilterExpr.parse` turn the object into a tree (:mod:`.nodes`), the
:class:`FilterExpr` that goes down to a vector backend (see :mod:`xmodal.backends.base`): the local
backend resolves it to rows through the engine's :class:`AttributeTable`; a database backend translates
it into its own filter language.

Two names are an item's own fields, not attributes (no attribute may take them):

- ``parent``: the id of the item a segment belongs to, ``{"parent": "doc1"}`` (or a list of ids);
  whole items have none, so they never match;
- ``span``: the segment's position, its page number or its start in seconds: ``{"span": 3}`` (page
  3), ``{"span": {"gte": 60, "lt": 120}}`` (pages 60–119, or clips starting in the second minute).
  On the command line: ``--where parent=doc1 --where span>=60 --where span<120``.
"""

from __future__ import annotations

from .expr import FilterExpr, parsed_once
from .nodes import OPS, RANGE_OPS, And, Condition, Node, Not, Or, ValueKey, value_key, values_at
from .syntax import MAX_FILTER_DEPTH, filterable, parse_filters
from .table import AttributeTable
from .where import parse_filter_json, parse_where

__all__ = [
    "MAX_FILTER_DEPTH",
    "OPS",
    "RANGE_OPS",
    "And",
    "AttributeTable",
    "Condition",
    "FilterExpr",
    "Node",
    "Not",
    "Or",
    "ValueKey",
    "filterable",
    "parse_filter_json",
    "parse_filters",
    "parse_where",
    "parsed_once",
    "value_key",
    "values_at",
]
