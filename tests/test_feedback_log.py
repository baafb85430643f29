"""The feedback log: impressions and events are committed, checked and survive a reopen."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from xmodal import Engine, NotFoundError, ValidationError
from xmodal.encoders import HashingEncoder
from xmodal.feedback import log as feedback_log
from xmodal.feedback.base import FeedbackStore
from xmodal.feedback.log import Impression
from xmodal.provenance import Provenance, names_of

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


def test_a_batch_commits_its_impressions_together_and_they_are_heard_after_it(engine: Engine) -> None:
    engine.add(text_items(10))
    log = engine.feedback_log
    heard: list[str] = []
    log.subscribe_impressions(lambda imp: heard.append(imp.query_id))
    result = engine.search("item 1", k=3)
    with log.batch():
        first = engine.log_impression("item 1", result)
        with log.batch():  # nested: part of the outer one
            second = engine.log_impression("item 2", result, context={"page": "home"})
        assert heard == []  # nothing heard before the commit
    assert heard == [first, second]
    alone = engine.log_impression("item 3", result)  # outside a batch: committed and heard at once
    assert heard[-1] == alone and log.counts()["impressions"] == 3
    again = Engine.open(engine.path)  # another connection sees both: committed
    try:
        assert again.feedback_log.impression(second).context == {"page": "home"}
        assert again.feedback_log.impression(first).shown == tuple(result.hits.ids.tolist())
    finally:
        again.close()


def test_a_batch_that_fails_keeps_none_of_its_impressions(engine: Engine) -> None:
    engine.add(text_items(10))
    log = engine.feedback_log
    heard: list[str] = []
    log.subscribe_impressions(lambda imp: heard.append(imp.query_id))
    result = engine.search("item 1", k=3)
    with pytest.raises(RuntimeError, match="boom"), log.batch():
        engine.log_impression("item 1", result)
        raise RuntimeError("boom")
    assert log.counts()["impressions"] == 0 and heard == []


def test_an_impression_that_fails_in_a_batch_leaves_the_others(engine: Engine) -> None:
    engine.add(text_items(10))
    log = engine.feedback_log
    with log.batch():
        kept = log.log_impression("a", ["t0", "t1"], scores=[0.5, 0.4], provenance=["dense", "lexical+dense"])
        with pytest.raises(ValidationError, match="differ in length"):
            log.log_impression("b", ["t0", "t1"], scores=[0.5])
        with pytest.raises(sqlite3.IntegrityError):  # an SQL error halfway: that impression's rows all go
            log.log_impression("c", ["t2", None])  # type: ignore[list-item] # its query row is written first
    assert log.counts()["impressions"] == 1
    imp = log.impression(kept)
    assert imp.scores == (0.5, 0.4) and [names_of(p) for p in imp.provenance] == [("dense",), ("lexical+dense",)]


def test_listeners_hear_an_impression_as_it_reads_back(engine: Engine) -> None:
    engine.add(text_items(10))
    log = engine.feedback_log
    heard: list[Impression] = []
    log.subscribe_impressions(heard.append)
    context = {"page": "home", "weight": np.float32(0.5), "pair": (1, 2)}  # stored as JSON: read back as such
    for batched in (False, True):
        with log.batch() if batched else contextlib.nullcontext():
            qid = log.log_impression(
                "Red Shoe",
                ["t0", "t1", "t2"],
                provenance=["dense", Provenance(("lexical", "memory")), ""],
                context=context,
                plan=[{"strategy": "lexical", "depth": 5}],
                mode="learned",
                user="u",
            )
        assert heard[-1] == log.impression(qid)
        assert [names_of(p) for p in heard[-1].provenance] == [("dense",), ("lexical", "memory"), ()]


def test_a_failing_listener_does_not_fail_a_committed_batch(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    engine.add(text_items(10))
    log = engine.feedback_log
    heard: list[str] = []

    def fails(imp: Impression) -> None:
        raise RuntimeError("listener bug")

    log.subscribe_impressions(fails)
    log.subscribe_impressions(lambda imp: heard.append(imp.query_id))
    with log.batch():
        a = log.log_impression("a", ["t0"])
        b = log.log_impression("b", ["t1"])
    assert heard == [a, b] and log.counts()["impressions"] == 2
    assert "listener failed" in caplog.text


def test_what_a_search_reads_from_the_log_does_not_scan_it(engine: Engine) -> None:
    """A learned search reads a user's history and a query's tail: through indexes, so its cost does not grow
    with the log (benchmarks/bench_feedback_scale.py: a user's search at 300,000 impressions was 30× dense's)."""
    engine.add(text_items(10))
    log = engine.feedback_log
    with log.batch():
        for i in range(50):
            log.log_impression(f"query {i % 7}", ["t0", "t1"], user=f"u{i % 5}")
    executed: list[str] = []
    with log._readers.reading() as db:
        db.set_trace_callback(executed.append)
        try:
            log.user_stats("u1")
            log.shown_since(20, "query 3")
            log.rewards_since(0, "query 3")
        finally:
            db.set_trace_callback(None)
        plans = {sql: [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}")] for sql in executed}
    assert len(plans) >= 4
    for sql, steps in plans.items():
        bounded = {s.split()[-1] for s in steps if s.startswith("CO-ROUTINE")}  # a LIMITed subquery's rows
        assert not [s for s in steps if s.startswith("SCAN") and s.split()[1] not in bounded], (sql, steps)


def test_a_users_history_is_their_last_searches(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a signed-in user's search reads of their history is bounded: their last ``USER_WINDOW`` searches."""
    engine.add(text_items(10))
    check_user_window(engine.feedback_log, ["t0", "t1"], lambda n: monkeypatch.setattr(feedback_log, "USER_WINDOW", n))


def check_user_window(log: FeedbackStore, ids: list[str], window: Callable[[int], None]) -> None:
    """``log.user_stats`` counts the last ``USER_WINDOW`` searches of a user (set by ``window``) and their events."""
    older = log.log_impression("a", [ids[0]], user="u")
    log.record_event(older, ids[0], "click")
    log.record_event(older, ids[0], "like")
    newer = [log.log_impression("b", [ids[1]], user="u") for _ in range(3)]
    log.record_event(newer[-1], ids[1], "click")
    log.log_impression("b", [ids[1]], user="someone else")
    window(3)
    assert log.user_stats("u") == {"searches": 3.0, "events": 1.0, "rate": 1 / 3}
    window(10)
    assert log.user_stats("u") == {"searches": 4.0, "events": 3.0, "rate": 0.75}
    assert log.user_stats("nobody") == {"searches": 0.0, "events": 0.0, "rate": 0.0}
