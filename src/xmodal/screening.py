"""Screening stored items outside a search — a ``get``, a scroll's page, an export's batch — the way a search's
hits are screened: the caller's guards policy (:func:`~xmodal.extension.as_caller`) at the query's ``safe``
level. Each screen keeps, annotates or redacts items, never adds one; an item a screen leaves out is
*withheld*, with the finding that withheld it (its category, rule and evidence), so that a ``get`` can refuse
it naming the category and a listing can count what it left out, by category.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import GuardBlocked
from .extension import Screen
from .records import Hits, Item

Finding = dict[str, str]


@dataclass(frozen=True, slots=True)
class Screened:
    """What the screens let through: the items kept (as the caller may see them: personal data redacted where
    the policy says so), their positions in the items given, the findings of the flagged ones by id, and the
    finding that withheld each item left out, by id."""

    items: tuple[Item, ...]
    kept: tuple[int, ...]
    flags: Mapping[str, list[Finding]] = field(default_factory=dict)
    withheld: Mapping[str, Finding] = field(default_factory=dict)

    def unchanged(self, items: Sequence[Item]) -> bool:
        """True when the screens kept every one of ``items`` as it was (nothing withheld, nothing redacted)."""
        return len(self.items) == len(items) and all(a is b for a, b in zip(self.items, items, strict=True))

    def counts(self) -> dict[str, int]:
        """The items withheld, by category."""
        return dict(sorted(Counter(f["category"] for f in self.withheld.values()).items()))


def screen_items(
    screens: Sequence[tuple[str, Screen]], items: Sequence[Item], caller: str | None, safe: str | None
) -> Screened:
    """``items`` through every screen (see the module docstring)."""
    items = tuple(items)
    if not screens or not items:
        return Screened(items, tuple(range(len(items))))
    hits = Hits.of([item.id for item in items], [0.0] * len(items))
    flags: dict[str, list[Finding]] = {}
    withheld: dict[str, Finding] = {}
    shown = items
    for name, screen in screens:
        before = shown
        hits, shown, found = screen.screen_hits(hits, shown, caller, safe)
        for item_id, findings in found.items():
            flags.setdefault(item_id, []).extend(findings)
        left = {item.id for item in shown}
        for item in before:
            if item.id not in left and item.id not in withheld:
                withheld[item.id] = _why(name, screen, item, caller, safe)
    position = {item.id: j for j, item in enumerate(items)}
    kept = tuple(position[item.id] for item in shown)
    return Screened(shown, kept, {k: v for k, v in flags.items() if k not in withheld}, withheld)


def _why(name: str, screen: Screen, item: Item, caller: str | None, safe: str | None) -> Finding:
    """The finding that withheld ``item``: the screen's own account (``why_withheld``), or its name alone."""
    explain: Any = getattr(screen, "why_withheld", None)
    found = explain(item, caller, safe) if callable(explain) else None
    if isinstance(found, dict) and "category" in found:
        return {str(k): str(v) for k, v in found.items()}
    return {"category": name, "action": "block", "rule": name, "evidence": "left out by the extension"}


def refuse(item_id: str, finding: Mapping[str, str]) -> GuardBlocked:
    """The error of a ``get`` for an item withheld from the caller: it names the category (never a silent
    "not found")."""
    evidence = f"{finding.get('rule', '')}: {finding.get('evidence', '')}".strip(": ")
    return GuardBlocked(
        "id",
        f"item {item_id!r} is withheld by the guards (category '{finding['category']}': {evidence})",
        "an API key whose guards policy allows this category ([keys.NAME] in the guards policy) can read it",
    )
