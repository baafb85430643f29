"""Group commit of item writes: many small ``POST /items`` requests, one ``Engine.add`` call."""

from __future__ import annotations

from collections.abc import Sequence

from ..engine import Engine
from ..ingest.prepare import AddReport
from ..records import Item


def add_many(engine: Engine, batches: Sequence[Sequence[Item]]) -> list[AddReport]:
    """Add several requests' items with as few ``Engine.add`` calls as possible; one report per request.

    Requests are merged in order until one shares an id with the merge so far (a later request must
    replace an earlier one, not be rejected as a duplicate), then the merge is committed and a new one
    starts. Each request's report holds its own added ids and the rejections of its own items."""
    reports: list[AddReport] = []
    merged: list[Sequence[Item]] = []
    ids: set[str] = set()
    for items in batches:
        mine = {item.id for item in items}
        if merged and ids & mine:
            reports.extend(_commit(engine, merged))
            merged, ids = [], set()
        merged.append(items)
        ids |= mine
    if merged:
        reports.extend(_commit(engine, merged))
    return reports


def _commit(engine: Engine, merged: list[Sequence[Item]]) -> list[AddReport]:
    if len(merged) == 1:
        return [engine.add(merged[0])]
    report = engine.add([item for items in merged for item in items])
    out = []
    for items in merged:
        mine = {item.id for item in items}
        out.append(
            AddReport(
                added=[i for i in report.added if i in mine], rejected=[r for r in report.rejected if r.where in mine]
            )
        )
    return out
