"""The full-text postings held in memory (:mod:`xmodal.store.postings`) score exactly as the SQL path does, and
stay so through this store's adds, replacements, deletes and a rolled-back write; another connection's item
writes drop them (the SQL path scores, right) until the background pass holds everything again."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xmodal import Item, ValidationError
from xmodal.store import postings as postings_module
from xmodal.store import termstats
from xmodal.store.analysis import terms
from xmodal.store.postings import Postings
from xmodal.store.sqlite import SQLiteStore

WORDS = (
    "amber basalt copper dune ember fjord glacier harbor iris jade kelp lagoon marsh nectar onyx pebble quartz "
    "river slate tundra umber violet willow xenon yarrow zinc"
).split()


SKEW = [1 / (i + 1) for i in range(len(WORDS))]  # some terms in most items (NumPy's path), some in a few


def _item(rng: random.Random, item_id: str) -> Item:
    title = " ".join(rng.choices(WORDS, weights=SKEW, k=rng.randint(0, 3)))
    return Item.create(item_id, title=title, text=" ".join(rng.choices(WORDS, weights=SKEW, k=rng.randint(1, 12))))


def _wait_complete(store: SQLiteStore) -> None:
    store.fulltext.stats.lookup(["amber"])
    loader = store.fulltext.stats._loader
    if loader is not None:
        loader.join(10)
    assert store.fulltext.stats._postings is not None


def _texts_truth(store: SQLiteStore) -> dict[int, tuple[str, str]]:
    db = sqlite3.connect(store.path)
    texts = {int(r): (str(t), str(b)) for r, t, b in db.execute("SELECT rowid, title, body FROM fulltext")}
    db.close()
    return texts


def _same_as_sql(store: SQLiteStore, rng: random.Random, queries: int = 40) -> None:
    """Every query's scores and top lists from the held postings equal the SQL path's, bit for bit."""
    fulltext = store.fulltext
    held = fulltext.stats._postings
    assert held is not None
    # the postings equal those built afresh from what the database holds
    fresh = Postings.of(_texts_truth(store))
    assert fresh is not None
    assert held.size == fresh.size
    assert {t: (list(r), list(held._tfs[t])) for t, r in held._rows.items()} == {
        t: (list(r), list(fresh._tfs[t])) for t, r in fresh._rows.items()
    }
    for _ in range(queries):
        query = terms(" ".join(rng.choices([*WORDS, "nosuchword"], k=rng.randint(1, 5))))
        stats = fulltext._stats(query)
        if stats is None:
            assert fulltext.score(query) == {} and fulltext.top(query, 10) == []
            continue
        sql_all = fulltext._run(query, None, stats)
        assert fulltext._held(stats, None) == sql_all
        assert fulltext.score(query) == dict(sql_all)
        for depth in (1, 3, 10, 1000):
            assert fulltext._held(stats, depth) == fulltext._run(query, depth, stats)
            assert fulltext.top(query, depth) == fulltext._run(query, depth, stats)
        allowed = set(rng.sample(sorted(dict(sql_all)), k=len(sql_all) // 2))
        assert (
            fulltext.top(query, 5, allowed)
            == sorted(((r, s) for r, s in sql_all if r in allowed), key=lambda p: (-p[1], p[0]))[:5]
        )


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore(tmp_path / "store.sqlite")
    yield s
    s.close()


@pytest.mark.parametrize("small", [0, 48, 10**9])  # NumPy always, the default mix, plain Python always
def test_held_postings_score_as_sql_through_writes(
    store: SQLiteStore, small: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postings_module, "SMALL", small)
    rng = random.Random(small % 97)
    store.put([(_item(rng, f"i{i}"), {}) for i in range(60)])
    _wait_complete(store)
    _same_as_sql(store, rng)
    for step in range(24):
        kind = step % 4
        if kind == 0:
            store.put([(_item(rng, f"n{step}-{j}"), {}) for j in range(4)])
        elif kind == 1:
            store.put([(_item(rng, f"i{rng.randrange(60)}"), {}) for _ in range(3)])  # replacements
        elif kind == 2:
            store.delete([f"i{rng.randrange(60)}", f"n{step - 2}-0", f"n{step - 2}-1"])
        else:
            bad: tuple[Item, dict[str, Any]] = (Item.create("bad", title="onyx"), {"no kind": np.zeros(4)})
            with pytest.raises(ValidationError):  # rolled back: nothing held changes
                store.put([(_item(rng, "rolled"), {}), bad])
        assert store.fulltext.stats._postings is not None  # this store's writes keep them
        _same_as_sql(store, rng, queries=15)
    store.delete([f"i{i}" for i in range(60)] + [f"n{s}-{j}" for s in range(24) for j in range(4)])
    held = store.fulltext.stats._postings
    assert held is not None and held.size == 0 and not held._rows
    assert store.fulltext.top(terms("amber dune"), 10) == []


def test_another_connections_writes_are_caught_up_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(9)
    mine, other = SQLiteStore(tmp_path / "store.sqlite"), SQLiteStore(tmp_path / "store.sqlite")
    stats = mine.fulltext.stats
    try:
        mine.put([(_item(rng, f"i{i}"), {}) for i in range(40)])
        _wait_complete(mine)
        held = stats._postings
        # another connection's adds, replacements and deletes: read back through the change log, nothing dropped
        other.put([(Item.create("x", title="quartzite amber", text="amber amber"), {})])
        other.put([(_item(rng, "i5"), {}), (_item(rng, "i6"), {})])
        other.delete(["i3"])
        quartz = terms("quartzite")
        assert [r for r, _ in mine.fulltext.top(quartz, 3)] == [
            r for r, (t, _) in _texts_truth(mine).items() if quartz[0] in t.split()
        ]
        assert stats._postings is held
        _same_as_sql(mine, rng)
        other.delete(["x"])
        mine.put([(_item(rng, "i7"), {})])  # this store's write after another's: caught up inside its transaction
        assert stats._postings is held
        _same_as_sql(mine, rng)
        with termstats.checked_once():  # a search: the refresh's read of the change log's position is the check
            other.put([(_item(rng, "i8"), {})])
            mine.last_seq()
            assert stats._postings is held
        _same_as_sql(mine, rng)
        # many rows changed at once: dropped (a background pass reads everything again), the SQL path scores
        other.put([(_item(rng, f"b{i}"), {}) for i in range(5)])
        monkeypatch.setattr(termstats, "CATCH_UP_ROWS", 4)
        monkeypatch.setattr(termstats, "RELOAD_AFTER_S", 1e9)  # no background pass to hold them again meanwhile
        query = terms("amber dune")
        top = mine.fulltext.top(query, 5)
        assert stats._postings is None
        assert top == mine.fulltext._run(query, 5)
        monkeypatch.setattr(termstats, "RELOAD_AFTER_S", 0.0)
        _wait_complete(mine)  # held again, with the other connection's writes in
        _same_as_sql(mine, rng)
        # a change the log does not explain (the totals do not come out as the file's): dropped, not trusted
        monkeypatch.setattr(termstats, "RELOAD_AFTER_S", 1e9)
        with sqlite3.connect(mine.path) as db:
            db.execute("INSERT INTO changes (row, op) VALUES (1, 'put')")
            db.execute("UPDATE fulltext_totals SET body = body + 1")
        assert mine.fulltext.top(query, 5) == mine.fulltext._run(query, 5)
        assert stats._postings is None
    finally:
        mine.close()
        other.close()


def test_an_index_over_the_limit_is_scored_in_sql(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(termstats, "MAX_POSTINGS", 50)
    rng = random.Random(2)
    store.put([(_item(rng, f"i{i}"), {}) for i in range(5)])
    _wait_complete(store)
    store.put([(_item(rng, f"j{i}"), {}) for i in range(30)])  # grown past it by writes: let go
    assert store.fulltext.stats._postings is None
    query = terms("amber basalt")
    stats = store.fulltext._stats(query)
    assert stats is not None and store.fulltext.top(query, 7) == store.fulltext._run(query, 7, stats)


def test_built_at_once_as_row_by_row() -> None:
    rng = random.Random(4)
    texts = {
        row: (" ".join(rng.choices(WORDS, k=rng.randint(0, 3))), " ".join(rng.choices(WORDS, k=rng.randint(0, 9))))
        for row in rng.sample(range(500), 120)
    }
    at_once = Postings.of(texts)
    one_by_one = Postings()
    for row in rng.sample(sorted(texts), len(texts)):  # any order: each term's rows stay ascending
        one_by_one.add(row, *texts[row])
    assert at_once is not None and at_once.size == one_by_one.size
    assert {t: (list(r), list(at_once._tfs[t])) for t, r in at_once._rows.items()} == {
        t: (list(r), list(one_by_one._tfs[t])) for t, r in one_by_one._rows.items()
    }
    for row in texts:
        assert (at_once._title_len[row], at_once._body_len[row]) == (
            len(texts[row][0].split()),
            len(texts[row][1].split()),
        )
        assert (one_by_one._title_len[row], one_by_one._body_len[row]) == (
            at_once._title_len[row],
            at_once._body_len[row],
        )
    assert Postings.of(texts, stop=lambda: True) is None  # a closing store does not wait for the build
