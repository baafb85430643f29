"""The full-text index's document frequencies, totals and rows' stored terms held in memory equal what SQLite
answers, through adds, replacements, deletes, a rolled-back write and another connection's writes, before,
during and after the background pass that reads the whole vocabulary (and the rows' terms)."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xmodal import Item, ValidationError
from xmodal.store import termstats
from xmodal.store.analysis import terms
from xmodal.store.sqlite import SQLiteStore

WORDS = "amber basalt copper dune ember fjord glacier harbor iris jade kelp lagoon marsh nectar onyx".split()


def _truth(store: SQLiteStore) -> tuple[tuple[int, int, int], dict[str, int]]:
    """What the database holds now, read on a connection of its own."""
    db = sqlite3.connect(store.path)
    db.execute("CREATE VIRTUAL TABLE temp.v USING fts5vocab(main, fulltext, row)")
    docs, title, body = db.execute("SELECT docs, title, body FROM fulltext_totals").fetchone()
    df = {str(t): int(d) for t, d in db.execute("SELECT term, doc FROM temp.v")}
    db.close()
    return (int(docs), int(title), int(body)), df


def _texts_truth(store: SQLiteStore) -> dict[int, tuple[str, str]]:
    """Each indexed row's stored (title, body) terms, read on a connection of its own."""
    db = sqlite3.connect(store.path)
    texts = {int(r): (str(t), str(b)) for r, t, b in db.execute("SELECT rowid, title, body FROM fulltext")}
    db.close()
    return texts


def _check(store: SQLiteStore, probe: list[str]) -> None:
    """Every held answer (for the index's terms and for terms in no item, for every row and for rows that
    are not indexed) equals the database's."""
    totals, df = _truth(store)
    held_totals, held = store.fulltext.stats.lookup([*df, *probe])
    assert held_totals == totals
    assert held == {t: df.get(t, 0) for t in [*df, *probe]}
    texts = _texts_truth(store)
    rows = list(range(max(texts, default=0) + 3))
    stats = store.fulltext.stats
    assert stats.texts(rows, store.fulltext._read_texts) == texts
    assert stats.texts(rows[::-1], store.fulltext._read_texts) == texts  # again: what was kept is right
    for text in ("amber dune", "glacier iris kelp", "nectar zzz"):
        query = terms(text)
        assert store.fulltext.known_fraction(query) == sum(df.get(t, 0) > 0 for t in query) / len(query)


def _item(rng: random.Random, item_id: str) -> Item:
    return Item.create(item_id, title=" ".join(rng.sample(WORDS, 2)), text=" ".join(rng.choices(WORDS, k=6)))


def _wait_complete(store: SQLiteStore) -> None:
    loader = store.fulltext.stats._loader
    if loader is not None:
        loader.join(10)
    assert store.fulltext.stats.complete()
    assert store.fulltext.stats._texts_complete  # the rows' terms came with the vocabulary


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore(tmp_path / "store.sqlite")
    yield s
    s.close()


def test_held_figures_equal_sqlite_through_adds_replacements_and_deletes(store: SQLiteStore) -> None:
    rng = random.Random(3)
    probe = terms("zebra unknownword")
    store.put([(_item(rng, f"i{i}"), {}) for i in range(40)])
    _check(store, probe)  # partly held: the terms asked for, and the background pass starts
    _wait_complete(store)
    _check(store, probe)
    for step in range(30):
        kind = step % 3
        if kind == 0:
            store.put([(_item(rng, f"n{step}-{j}"), {}) for j in range(3)])
        elif kind == 1:
            store.put([(_item(rng, f"i{rng.randrange(40)}"), {})])  # a replacement: old terms out, new in
        else:
            store.delete([f"i{rng.randrange(40)}", f"n{step - 2}-0"])
        assert store.fulltext.stats.complete()  # this store's writes keep the vocabulary whole
        _check(store, probe)
    store.delete([f"i{i}" for i in range(40)] + [f"n{s}-{j}" for s in range(30) for j in range(3)])
    _check(store, probe)
    assert store.fulltext.stats.lookup(["amber"])[0] == (0, 0, 0)


def test_a_rolled_back_write_changes_nothing_held(store: SQLiteStore) -> None:
    rng = random.Random(5)
    store.put([(_item(rng, f"i{i}"), {}) for i in range(10)])
    store.fulltext.stats.lookup(["amber"])
    _wait_complete(store)
    bad: tuple[Item, dict[str, Any]] = (Item.create("bad", title="onyx quartzite"), {"no kind": np.zeros(4)})
    with pytest.raises(ValidationError):
        store.put([(Item.create("good", title="quartzite amber"), {}), bad])
    _check(store, terms("quartzite"))
    assert store.fulltext.stats.lookup(terms("quartzite"))[1] == dict.fromkeys(terms("quartzite"), 0)


def test_another_connections_writes_are_noticed(tmp_path: Path) -> None:
    rng = random.Random(7)
    mine, other = SQLiteStore(tmp_path / "store.sqlite"), SQLiteStore(tmp_path / "store.sqlite")
    try:
        mine.put([(_item(rng, f"i{i}"), {}) for i in range(20)])
        mine.fulltext.stats.lookup(["amber"])
        _wait_complete(mine)
        other.put([(Item.create("x", title="quartzite amber", text="amber amber"), {})])
        _check(mine, terms("quartzite"))  # the held vocabulary was dropped: read again from SQLite
        other.delete(["i3", "i4"])
        mine.put([(_item(rng, "i5"), {})])  # a write of this store after another's: the stale figures go
        _check(mine, [])
        # a write that leaves the items alone (the feedback log's tables, say) keeps what is held
        termstats.RELOAD_AFTER_S = 0.0
        mine.fulltext.stats.lookup(["amber"])
        _wait_complete(mine)
        with sqlite3.connect(mine.path) as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('unrelated', '1')")
        assert mine.fulltext.stats.complete()
        _check(mine, [])
    finally:
        termstats.RELOAD_AFTER_S = 5.0
        mine.close()
        other.close()


def test_a_search_block_checks_for_other_connections_writes_once(tmp_path: Path) -> None:
    """Within :func:`termstats.checked_once` (one search) the data-version check runs at the first read only; a
    commit another connection makes during the block is seen by the next block and by a read outside any."""
    rng = random.Random(11)
    mine, other = SQLiteStore(tmp_path / "store.sqlite"), SQLiteStore(tmp_path / "store.sqlite")
    stats = mine.fulltext.stats
    checks = 0
    real = stats._data_version

    def counted() -> int:
        nonlocal checks
        checks += 1
        return real()

    try:
        mine.put([(_item(rng, f"i{i}"), {}) for i in range(20)])
        stats.lookup(["amber"])
        _wait_complete(mine)
        stats._data_version = counted  # type: ignore[method-assign]
        quartz = terms("quartzite")
        with termstats.checked_once():
            assert stats.lookup(quartz)[1] == dict.fromkeys(quartz, 0)
            other.put([(Item.create("x", title="quartzite amber", text="amber"), {})])
            with termstats.checked_once():  # a block inside a block is the outer one's
                assert stats.lookup(quartz)[1] == dict.fromkeys(quartz, 0)  # the search's one state
            assert stats.texts([0, 1], mine.fulltext._read_texts) == {
                r: t for r, t in _texts_truth(mine).items() if r in (0, 1)
            }
            stats.generation()
            assert stats.complete()
        assert checks == 1
        with termstats.checked_once():  # the next search sees the commit
            assert stats.lookup(quartz)[1] == dict.fromkeys(quartz, 1)
            stats.lookup(["amber"])
        assert checks == 2
        other.delete(["x"])
        assert stats.lookup(quartz)[1] == dict.fromkeys(quartz, 0)  # outside a block: checked at every read
        stats.lookup(quartz)
        assert checks == 4
        with termstats.checked_once():  # this store's own writes join what is held at once, in a block too
            stats.lookup(quartz)
            mine.put([(Item.create("y", title="quartzite"), {})])
            assert stats.lookup(quartz)[1] == dict.fromkeys(quartz, 1)
        _check(mine, quartz)
        # a search's refresh reads the change log's position first: that read is its check, no stage runs one
        before = checks
        other.put([(Item.create("z", title="quartzite"), {})])
        with termstats.checked_once():
            mine.last_seq()
            assert stats.lookup(quartz)[1] == dict.fromkeys(quartz, 2)  # another connection's item write: seen
            row, text = next(iter(_texts_truth(mine).items()))
            assert stats.texts([row], mine.fulltext._read_texts) == {row: text}
        with termstats.checked_once():
            mine.last_seq()
            assert stats.lookup(quartz)[1] == dict.fromkeys(quartz, 2)
        assert checks == before
        epoch = stats._epoch
        with sqlite3.connect(mine.path) as db:  # a write that leaves the items alone keeps what is held
            db.execute("INSERT OR REPLACE INTO meta VALUES ('unrelated', '2')")
        with termstats.checked_once():
            mine.last_seq()
            stats.lookup(quartz)
        assert stats._epoch == epoch  # nothing dropped
        _check(mine, quartz)
    finally:
        mine.close()
        other.close()


def test_writes_during_the_background_pass_are_replayed_on_top_of_it(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(11)
    store.put([(_item(rng, f"i{i}"), {}) for i in range(50)])
    stats = store.fulltext.stats
    monkeypatch.setattr(termstats, "CHUNK", 2)
    real = stats._read_all
    wrote: list[bool] = []

    def read_all_with_writes() -> Any:
        out = real()  # the snapshot is read; then this store commits twice before the pass installs it
        store.put([(_item(rng, "late"), {})])
        store.delete(["i1"])
        wrote.append(True)
        return out

    monkeypatch.setattr(stats, "_read_all", read_all_with_writes)
    stats.lookup(["amber"])
    _wait_complete(store)
    assert wrote
    _check(store, [])


def test_a_vocabulary_over_the_limit_stays_on_disk(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(termstats, "MAX_TERMS", 3)
    store.put([(_item(random.Random(1), f"i{i}"), {}) for i in range(10)])
    store.fulltext.stats.lookup(["amber"])
    loader = store.fulltext.stats._loader
    assert loader is not None
    loader.join(10)
    assert not store.fulltext.stats.complete()
    _check(store, ["zebra"])


@pytest.mark.parametrize("limit", ["MAX_ROWS", "MAX_TEXT_CHARS"])
def test_rows_over_the_limit_are_read_on_demand(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch, limit: str
) -> None:
    """An index of more items than MAX_ROWS (or more text than MAX_TEXT_CHARS): the pass reads the vocabulary
    but not the rows' terms, which are read per search and kept (within the limit), and stay right through
    writes."""
    monkeypatch.setattr(termstats, limit, 4 if limit == "MAX_ROWS" else 200)
    rng = random.Random(13)
    store.put([(_item(rng, f"i{i}"), {}) for i in range(10)])
    stats = store.fulltext.stats
    stats.lookup(["amber"])
    loader = stats._loader
    assert loader is not None
    loader.join(10)
    assert stats.complete() and not stats._texts_complete
    _check(store, [])
    assert len(stats._texts) <= 4 if limit == "MAX_ROWS" else stats._text_chars <= 200
    a, b = sorted(_texts_truth(store))[:2]
    first = store.get_rows([a, b])  # rows held, then rewritten by this store: the new terms are read
    stats.texts([a, b], store.fulltext._read_texts)
    store.put([(Item.create(first[a].item.id, title="quartzite", text="basalt"), {})])
    _check(store, [])
    store.delete([first[b].item.id])
    _check(store, [])
