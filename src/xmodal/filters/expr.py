""":class:`FilterExpr`: a parsed filter, what a vector backend is given (see :mod:`xmodal.backends.base`)."""

from __future__ import annotations

from collections.abc import Mapping
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
        root = parse_filters(filters)
        return None if root is None else cls(root)

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
