""":class:`FilterExpr`: a parsed filter, what a vector backend is given (see :mod:`xmodal.backends.base`).

A search reads its filter at several places (the check before any work, the dense search, each strategy of the
learned mode that filters rows); within :func:`parsed_once` (the engine's search calls) the filter object is
parsed at the first of them and its expression reused at the others, whether they are given the object itself
or a copy of it (``dict(query.filters)``: the same keys holding the same objects). A filter of two
10,000-value lists takes ~10 ms to parse.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from .nodes import Condition, Node, conditions, evaluate
from .syntax import parse_filters


@dataclass(frozen=True, slots=True)
class FilterExpr:
    """A parsed filter: a tree of :class:`~xmodal.filters.nodes.Condition` joined by ``And``, ``Or`` and
    ``Not`` (:mod:`xmodal.filters.nodes`)."""

    root: Node

    @classmethod
    def parse(cls, filters: Mapping[str, Any] | None) -> FilterExpr | None:
        """The expression of a user filter object; None when there is no filter (``None`` or ``{}``)."""
        memo = _PARSED.get()
        if memo is None or not isinstance(filters, Mapping) or not filters:
            root = parse_filters(filters)
            return None if root is None else cls(root)
        for source, expr in memo:
            if _same(source, filters):
                return expr
        root = parse_filters(filters)
        expr = None if root is None else cls(root)
        if len(memo) < MEMO_SIZE:
            memo.append((filters, expr))
        return expr

    @property
    def conditions(self) -> tuple[Condition, ...]:
        """Every condition of the tree, left to right (whatever joins them)."""
        return tuple(conditions(self.root))

    def attributes(self) -> list[str]:
        """The paths the conditions test, each once, in order."""
        if isinstance(self.root, Condition):  # the common case, at once
            return [self.root.attribute]
        return list(dict.fromkeys(cond.attribute for cond in conditions(self.root)))

    def matches(self, attributes: Mapping[str, Any]) -> bool:
        """Whether an item with these (nested) attributes satisfies the filter: the reference evaluation."""
        return evaluate(self.root, attributes)


#: Filter objects a :func:`parsed_once` block keeps the expression of (a search has one, or two when a strategy
#: adds filters of its own to the user's)
MEMO_SIZE = 8
_PARSED: ContextVar[list[tuple[Mapping[str, Any], FilterExpr | None]] | None] = ContextVar(
    "xmodal_filters_parsed", default=None
)


@contextmanager
def parsed_once() -> Iterator[None]:
    """Within the block (in this context: one search), :meth:`FilterExpr.parse` of a filter object parsed
    before in it, or of a copy of one, returns the expression parsed then. Also a decorator:
    ``@parsed_once()`` runs each call of a function in a block of its own."""
    token = _PARSED.set([])
    try:
        yield
    finally:
        _PARSED.reset(token)


def _same(parsed: Mapping[str, Any], given: Mapping[str, Any]) -> bool:
    """Whether ``given`` is ``parsed`` or a copy of it: the same keys in the same order, each holding the very
    same object (not an equal one: ``True == 1``, and a list changed in place would be missed)."""
    if given is parsed:
        return True
    if len(given) != len(parsed):
        return False
    return all(k1 == k2 and v1 is v2 for (k1, v1), (k2, v2) in zip(parsed.items(), given.items(), strict=True))
