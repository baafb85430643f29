"""The feedback log: impressions and events are committed, checked and survive a reopen."""

from __future__ import annotations

from pathlib import Path

import pytest

from xmodal import Engine, NotFoundError, ValidationError
from xmodal.encoders import HashingEncoder

from .conftest import text_items


def test_search_log_then_feedback_is_durable(tmp_path: Path) -> None:
    eng = Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact")
    eng.add(text_items(20))
    result = eng.search("item 3 black", k=5, log=True)
    assert result.query_id is not None and result.to_dict()["query_id"] == result.query_id
    top = result.hits.ids[0]
    eng.feedback(result.query_id, top, "click")
    eng.feedback(result.query_id, result.hits.ids[1], "add_to_cart", position=2, value=19.5)
    qid = result.query_id
    eng.close()
    eng = Engine.open(tmp_path / "idx")
    log = eng.feedback_log
    imp = log.impression(qid)
    assert imp.shown == tuple(result.hits.ids.tolist()) and imp.query == "item 3 black"
    assert imp.normalized == "item 3 black"
    events = log.events(qid)
    assert [(e.item_id, e.event, e.position, e.value) for e in events] == [
        (top, "click", 1, None),
        (result.hits.ids[1], "add_to_cart", 2, 19.5),
    ]
    assert log.popularity()[top] == 1.0
    eng.close()


def test_log_impression_with_user_and_context(engine: Engine) -> None:
    engine.add(text_items(10))
    result = engine.search("item 1", k=3)
    qid = engine.log_impression("item 1", result, user="u1", context={"page": "home"})
    imp = engine.feedback_log.impression(qid)
    assert imp.user == "u1" and imp.context["page"] == "home"
    assert engine.feedback_log.user_stats("u1")["searches"] == 1.0


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda e, q, i: e.feedback("nope", i), NotFoundError, "query_id"),
        (lambda e, q, i: e.feedback(q, "not-shown"), ValidationError, "item_id"),
        (lambda e, q, i: e.feedback(q, i, "purchase"), ValidationError, "unknown event type"),
        (lambda e, q, i: e.feedback(q, i, position=9), ValidationError, "position"),
        (lambda e, q, i: e.feedback(q, i, position=0), ValidationError, "out of range"),
        (lambda e, q, i: e.feedback(q, i, position=2), ValidationError, "shown at 1"),
        (lambda e, q, i: e.feedback(q, i, value=float("nan")), ValidationError, "value"),
    ],
)
def test_bad_feedback_is_refused_and_not_stored(engine: Engine, call: object, error: type, words: str) -> None:
    engine.add(text_items(10))
    result = engine.search("item 2", k=3, log=True)
    assert result.query_id is not None
    with pytest.raises(error, match=words):
        call(engine, result.query_id, result.hits.ids[0])  # type: ignore[operator]
    assert engine.feedback_log.events() == []


def test_listeners_hear_committed_events(engine: Engine) -> None:
    engine.add(text_items(10))
    heard: list[tuple[str, str]] = []
    engine.feedback_log.subscribe(lambda ev, imp: heard.append((ev.item_id, imp.query)))
    result = engine.search("item 4", k=3, log=True)
    assert result.query_id is not None
    engine.feedback(result.query_id, result.hits.ids[2], "like")
    assert heard == [(result.hits.ids[2], "item 4")]
