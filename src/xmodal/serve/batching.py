"""Group commit on the writer thread: many small ``POST /items`` requests, one ``Engine.add`` call; many
searches' impressions, one transaction of the feedback log."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from ..engine import Engine
from ..feedback.base import FeedbackStore
from ..ingest.prepare import AddReport
from ..records import Item
from .writer import Failed

log = logging.getLogger(__name__)


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


def log_many(feedback: FeedbackStore, calls: Sequence[Callable[[], str]]) -> list[str | Failed]:
    """Log several searches' impressions (each call logs one, e.g. ``Engine.log_impression``: its query id)
    in one transaction of the feedback log (:meth:`~xmodal.feedback.log.FeedbackLog.batch`: one fsync for
    all). A call that fails is that request's error (a :class:`Failed`; its impression is not written), the
    others are committed; should the transaction itself fail, none is, and every request gets its error."""
    try:
        with feedback.batch():
            return [_alone(call) for call in calls]
    except Exception as exc:  # noqa: BLE001 - rolled back: every request of the group gets the error
        log.warning("%d impressions could not be committed (%s)", len(calls), exc)
        return [Failed(exc)] * len(calls)


def _alone(call: Callable[[], str]) -> str | Failed:
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 - that request's error
        return Failed(exc)
