"""The store's full-text index: transactional with the items, BM25F, stemming, filters, migration."""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xmodal import Engine, Item, Query, StorageError
from xmodal.encoders import HashingEncoder
from xmodal.errors import ValidationError
from xmodal.ltr.strategies import LexicalStrategy
from xmodal.records import VectorKind
from xmodal.store.analysis import terms
from xmodal.store.fulltext import FullText
from xmodal.store.sqlite import SCHEMA_VERSION, SQLiteStore


def _put(store: SQLiteStore, *items: Item) -> list[int]:
    return store.put([(item, {}) for item in items])


def _ids(store: SQLiteStore, text: str, depth: int = 10, allowed: set[int] | None = None) -> list[str]:
    pairs = store.fulltext.top(terms(text), depth, allowed)
    found = store.get_rows([row for row, _ in pairs], with_vectors=False)
    return [found[row].item.id for row, _ in pairs]


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "store.sqlite")


# -- transactional with the items ---------------------------------------------------------------
def test_a_committed_item_is_searchable_and_a_deleted_one_never(store: SQLiteStore) -> None:
    _put(store, Item.create("a", title="copper kettle"), Item.create("b", title="copper pan"))
    assert sorted(_ids(store, "copper")) == ["a", "b"]
    store.delete(["a"])
    assert _ids(store, "copper") == ["b"] and _ids(store, "kettle") == []
    assert len(store.fulltext) == 1


def test_an_update_reindexes_the_item(store: SQLiteStore) -> None:
    _put(store, Item.create("a", title="copper kettle"))
    _put(store, Item.create("a", title="brass lamp"))
    assert _ids(store, "copper") == [] and _ids(store, "lamp") == ["a"]
    assert len(store.fulltext) == 1


def test_a_failed_transaction_leaves_neither_item_nor_terms(store: SQLiteStore) -> None:
    good: tuple[Item, dict[Any, np.ndarray]] = (Item.create("good", title="velvet curtain"), {})
    bad: tuple[Item, dict[Any, np.ndarray]] = (Item.create("bad", title="velvet cushion"), {"no kind": np.zeros(4)})
    with pytest.raises(ValidationError):  # the second item's vector kind fails after the first was indexed
        store.put([good, bad])
    assert store.count() == 0 and _ids(store, "velvet") == [] and len(store.fulltext) == 0


def test_a_failing_index_write_rolls_the_item_back(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: FullText, rows: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(FullText, "put_many", broken)  # the store writes each batch's full-text rows at once
    with pytest.raises(RuntimeError):
        _put(store, Item.create("a", title="linen towel"))
    monkeypatch.undo()
    assert store.count() == 0 and store.get("a") is None and _ids(store, "linen") == []


def test_another_connection_sees_commits_at_once(tmp_path: Path) -> None:
    writer, reader = SQLiteStore(tmp_path / "s.sqlite"), SQLiteStore(tmp_path / "s.sqlite")
    assert _ids(reader, "walnut") == []
    _put(writer, Item.create("w", title="walnut desk"))
    assert _ids(reader, "walnut") == ["w"]
    writer.delete(["w"])
    assert _ids(reader, "walnut") == []


def test_the_strategy_finds_new_items_with_no_further_call(engine: Engine) -> None:
    lexical = LexicalStrategy(engine)  # opened before the writes: nothing to subscribe, load or catch up
    engine.add([Item.create("a", title="oak table")])
    assert lexical.retrieve(Query(text="oak"), 5).ids.tolist() == ["a"]
    engine.delete(["a"])
    assert len(lexical.retrieve(Query(text="oak"), 5)) == 0
    engine.checkpoint()
    assert not (engine.path / "ltr" / "lexical.json").exists()


# -- analysis and scoring -----------------------------------------------------------------------
def test_stemming_joins_word_forms(store: SQLiteStore) -> None:
    _put(store, Item.create("shoe", title="run shoe"), Item.create("other", title="walking stick"))
    assert _ids(store, "running shoes") == ["shoe"]
    assert _ids(store, "Walks") == ["other"]
    assert terms("Generalizations, CAFÉ!") == ["general", "cafe"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=40))
def test_ascii_text_is_tokenized_as_the_folding_path_would(text: str) -> None:
    """ASCII text skips the accent folding (NFKD leaves it unchanged): the tokens are the same."""
    import unicodedata

    from xmodal.store.analysis import _WORD, tokens

    folded = "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))
    assert tokens(text) == _WORD.findall(folded)


def test_title_is_weighted_above_body(store: SQLiteStore) -> None:
    _put(
        store,
        Item.create("body", title="plain thing", text="a lantern and more words here"),
        Item.create("title", title="lantern", text="a plain thing and more words here"),
    )
    assert _ids(store, "lantern") == ["title", "body"]


def _reference_bm25f(docs: dict[int, tuple[list[str], list[str]]], query: list[str]) -> dict[int, float]:
    """BM25F written out plainly (k1 1.2, b 0.75, weights 3 and 1, idf log(1 + (N - df + .5) / (df + .5)))."""
    n = len(docs)
    avg = [max(sum(len(d[f]) for d in docs.values()) / n, 1e-9) for f in (0, 1)]
    out: dict[int, float] = {}
    for term in set(query):
        df = sum(1 for d in docs.values() if term in d[0] or term in d[1])
        if not df:
            continue
        idf = max(math.log(1 + (n - df + 0.5) / (df + 0.5)), 1e-6)
        for row, fields in docs.items():
            tf = sum(
                w * Counter(fields[f])[term] / (0.25 + 0.75 * len(fields[f]) / avg[f]) for f, w in ((0, 3.0), (1, 1.0))
            )
            if tf:
                out[row] = out.get(row, 0.0) + idf * tf / (1.2 + tf)
    return out


def test_scores_are_exact_bm25f(store: SQLiteStore) -> None:
    rng = np.random.default_rng(3)
    words = "red green blue lamp desk chair oak steel glass lantern kettle the a of".split()
    items = [
        Item.create(
            f"i{i}",
            title=" ".join(rng.choice(words, rng.integers(0, 4))),
            text=" ".join(rng.choice(words, rng.integers(0, 12))),
        )
        for i in range(60)
    ]
    rows = _put(store, *items)
    docs = {row: (terms(item.title), terms(item.text)) for row, item in zip(rows, items, strict=True)}
    for query in (["lamp"], ["red", "oak", "the"], ["kettl", "unknown"], ["a", "a", "desk"]):
        expected, got = _reference_bm25f(docs, query), store.fulltext.score(query)
        assert got.keys() == expected.keys()
        assert all(math.isclose(got[r], expected[r], rel_tol=1e-9) for r in expected)
        assert np.allclose(store.fulltext.score_rows(query, rows), [expected.get(r, 0.0) for r in rows])
        top = store.fulltext.top(query, 5)
        assert [r for r, _ in top] == sorted(expected, key=lambda r: (-expected[r], r))[:5]
    assert store.fulltext.known_fraction(["lamp", "nothing", "lamp", "zzz"]) == 0.5
    assert store.fulltext.known_fraction([]) == 0.0


def test_filters_apply_before_the_cut(engine: Engine) -> None:
    # 20 strong blue matches outrank 5 weak red ones: a cut before the filter would return no red item
    blue = [Item.create(f"b{i}", title="lamp", attributes={"color": "blue"}) for i in range(20)]
    red = [
        Item.create(f"r{i}", title="desk", text="lamp " + "word " * 30, attributes={"color": "red"}) for i in range(5)
    ]
    engine.add(blue + red)
    lexical = LexicalStrategy(engine)
    assert set(lexical.retrieve(Query(text="lamp"), 10).ids.tolist()) <= {b.id for b in blue}
    filtered = lexical.retrieve(Query(text="lamp", filters={"color": "red"}), 3)
    assert len(filtered) == 3 and all(i.startswith("r") for i in filtered.ids.tolist())
    assert sorted(lexical.retrieve(Query(text="lamp", filters={"color": "red"}), 10).ids.tolist()) == [
        r.id for r in red
    ]
    assert len(lexical.retrieve(Query(text="lamp", filters={"color": "green"}), 10)) == 0


GARBAGE = [
    '"',
    '""',
    "'",
    "*",
    "lamp*",
    "NEAR(lamp desk)",
    "NEAR",
    "-lamp",
    "title:lamp",
    "body : x",
    "a AND",
    "OR",
    "NOT lamp",
    "(",
    ")",
    "^lamp",
    "{title body}: lamp",
    "+",
    "lamp\x00desk",
    "🙂 lamp",
    "电脑桌",
    "straße",
    "x" * 5000,
    "   ",
    "",
    "\\",
    "%",
    "_",
    "lamp_desk",
    "؟",
    "\u200b",
    "\ud800",
]


@pytest.mark.parametrize("text", GARBAGE)
def test_query_syntax_in_user_text_never_raises(engine: Engine, text: str) -> None:
    engine.add([Item.create("a", title="lamp desk"), Item.create("b", title="电脑 桌", text="lamp_desk straße")])
    lexical = LexicalStrategy(engine)
    hits = lexical.index.top(terms(text), 10)
    assert all(isinstance(row, int) for row, _ in hits)
    if text.strip() and text != "\ud800":
        lexical.retrieve(Query(text=text), 10)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> SQLiteStore:
    store = SQLiteStore(tmp_path_factory.mktemp("garbage") / "s.sqlite")
    _put(
        store,
        Item.create("a", title="lamp desk NEAR", text='quoted "text" with * and -minus'),
        Item.create("b", title="电脑桌", text="straße café"),
    )
    return store


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=40))
def test_any_text_is_a_harmless_query(shared: SQLiteStore, text: str) -> None:
    store = shared
    pairs = store.fulltext.top(terms(text), 5)
    assert len(pairs) <= 5 and store.fulltext.known_fraction(terms(text)) <= 1.0


# -- an index written before the full-text index (schema 1) --------------------------------------
def _downgrade_to_v1(path: Path) -> None:
    """Make the store what today's main writes: schema 1, no full-text tables, no analyzer in meta."""
    db = sqlite3.connect(path)
    for table in ("fulltext", "fulltext_sizes", "fulltext_totals"):
        db.execute(f"DROP TABLE {table}")
    db.execute("DELETE FROM meta WHERE key = 'fulltext_analyzer'")
    db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    db.commit()
    db.close()


def test_a_schema_1_index_is_migrated_on_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        engine.add(
            [Item.create(f"k{i}", title=f"kettle {i}", text="copper") for i in range(30)]
            + [Item.create("pan", title="frying pans")]
        )
        engine.delete(["k0"])
    _downgrade_to_v1(tmp_path / "idx" / "store.sqlite")
    old = sqlite3.connect(tmp_path / "idx" / "store.sqlite")
    assert not old.execute("SELECT name FROM sqlite_master WHERE name = 'fulltext'").fetchall()
    old.close()

    with Engine.open(tmp_path / "idx") as engine:
        assert len(engine) == 30
        assert engine.store.get_meta("schema_version") == SCHEMA_VERSION
        migrated = engine.store.get_meta("fulltext_migrated")
        assert migrated["from_schema"] == 1 and migrated["items"] == 30
        lexical = LexicalStrategy(engine)
        assert lexical.retrieve(Query(text="frying pan"), 3).ids.tolist()[0] == "pan"
        assert len(lexical.retrieve(Query(text="copper"), 100)) == 29
        assert "k0" not in lexical.retrieve(Query(text="kettle 0"), 100).ids.tolist()

    def no_rebuild(*args: object) -> int:
        raise AssertionError("the index was rebuilt again")

    monkeypatch.setattr(FullText, "rebuild", no_rebuild)
    with Engine.open(tmp_path / "idx") as engine:  # one-time: the second open rebuilds nothing
        assert len(LexicalStrategy(engine).retrieve(Query(text="copper"), 100)) == 29


def test_a_new_analyzer_rebuilds_the_index(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite")
    _put(store, Item.create("a", title="running shoes"))
    store.set_meta("fulltext_analyzer", "light-suffix-0")
    store._db.execute("DELETE FROM fulltext")  # as if its terms came from another analyzer
    store.close()
    reopened = SQLiteStore(tmp_path / "s.sqlite")
    assert reopened.get_meta("fulltext_analyzer") == FullText.analyzer()
    assert _ids(reopened, "run shoe") == ["a"] and len(reopened.fulltext) == 1


def test_a_newer_schema_is_still_refused(tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "s.sqlite").close()
    db = sqlite3.connect(tmp_path / "s.sqlite")
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(StorageError, match=f"schema version {SCHEMA_VERSION + 1}"):
        SQLiteStore(tmp_path / "s.sqlite")


def test_opening_a_current_store_writes_nothing(tmp_path: Path) -> None:
    _put(SQLiteStore(tmp_path / "s.sqlite"), Item.create("a", title="lamp"))
    watcher = sqlite3.connect(tmp_path / "s.sqlite")
    before = watcher.execute("PRAGMA data_version").fetchone()[0]  # changes when another connection commits
    reopened = SQLiteStore(tmp_path / "s.sqlite")
    assert _ids(reopened, "lamp") == ["a"]
    reopened.close()
    assert watcher.execute("PRAGMA data_version").fetchone()[0] == before
    watcher.close()


def test_vector_kinds_are_untouched(store: SQLiteStore) -> None:
    row = store.put([(Item.create("v", title="lamp"), {VectorKind.TEXT: np.ones(4, dtype=np.float32)})])[0]
    assert store.get_rows([row], with_vectors=True)[row].vectors[VectorKind.TEXT].tolist() == [1.0] * 4


def test_top_skips_a_frequent_terms_postings_and_ranks_as_the_full_query(store: SQLiteStore) -> None:
    rng = np.random.default_rng(7)
    words = [f"w{i}" for i in range(300)]  # w0, w1 in more than 5% of the items, most in a few
    items = []
    for i in range(400):  # "the" in a third of the items (its share of a score matters), others skewed
        the = ["the"] * int(rng.integers(1, 4)) if i % 3 == 0 else []
        body = " ".join(the + list(rng.choice(words, 6, p=_zipf(len(words)))))
        items.append(Item.create(f"i{i}", title=str(rng.choice(words)), text=body))
    _put(store, *items)
    statements: list[str] = []
    store.fulltext._db.set_trace_callback(statements.append)  # type: ignore[attr-defined]
    skipped = 0
    for query in (["the", "w30"], ["the", "w0", "w17"], ["the", "w299"], ["the"], ["w1", "w0", "the", "w60", "w61"]):
        full = store.fulltext.score(query)
        for depth in (1, 5, 50, 500):
            statements.clear()
            top = store.fulltext.top(query, depth)
            assert [r for r, _ in top] == sorted(full, key=lambda r: (-full[r], r))[:depth], (query, depth)
            assert all(math.isclose(s, full[r], rel_tol=1e-12) for r, s in top)
            skipped += not any("'the'" in sql and "fulltext_instances" in sql for sql in statements)
    assert skipped >= 5  # the frequent term's postings were skipped where a cut exists


def _zipf(n: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1)
    return np.asarray(weights / weights.sum())


def test_stemming_from_many_threads_gives_each_word_its_own_stem() -> None:
    """The search server stems queries on its reader threads while the writer stems new items. One
    Snowball stemmer shared by them keeps the word being stemmed in itself, so concurrent calls mixed
    their words up: an IndexError (a 500 under bench_abuse.py's long queries) or, silently, a wrong
    stem, cached and stored. Each thread now stems with its own."""
    import sys
    import threading

    import snowballstemmer

    from xmodal.store.analysis import stem_word

    roots = ("nation", "organ", "hope", "relate", "condition", "sensitiv", "rational", "formal", "care")
    suffixes = ("al", "ization", "fulness", "ational", "iveness", "ousli", "biliti", "ing", "ed", "s")
    words = [f"{r}{s}{'x' * n}{s}" for n in range(40) for r in roots for s in suffixes]
    reference = snowballstemmer.stemmer("english")
    expected = {w: reference.stemWord(w) for w in words}
    stem = stem_word.__wrapped__  # past the cache: every call stems
    wrong: list[str] = []

    def worker(offset: int) -> None:
        try:
            for w in words[offset:] + words[:offset]:
                if stem(w) != expected[w]:
                    wrong.append(w)
        except IndexError as exc:
            wrong.append(repr(exc))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [threading.Thread(target=worker, args=(n * 97,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not wrong, f"{len(wrong)} wrong stems, e.g. {wrong[:3]}"


def test_the_c_stemmer_stems_as_the_pure_python_one() -> None:
    """``snowballstemmer`` hands stemming to PyStemmer's C library when it is installed (a dependency, for the
    build's speed); an index's stored terms and a query's must not depend on which one ran: every word of a
    sample of WordNet's glosses (when the Debian package is here) and made-up words get the same stem."""
    import random

    import snowballstemmer
    from snowballstemmer.english_stemmer import EnglishStemmer

    from xmodal.store.analysis import tokens

    stemmer = pytest.importorskip("Stemmer").Stemmer("english", 0)
    assert isinstance(snowballstemmer.stemmer("english"), type(stemmer))  # what the analyzer uses
    rng = random.Random(0)
    roots = ("nation", "organ", "hope", "relate", "condition", "sensitiv", "rational", "formal", "care", "fly")
    suffixes = ("", "al", "ization", "fulness", "ational", "iveness", "ousli", "biliti", "ing", "ed", "s", "ies", "'s")
    words = {r + s for r in roots for s in suffixes}
    letters = "abcdefghijklmnopqrstuvwxyzyeiouéßæαβжи日"
    words.update(t for _ in range(5_000) for t in tokens("".join(rng.choices(letters, k=rng.randint(1, 12)))))
    gloss = Path("/usr/share/wordnet/data.noun")
    if gloss.exists():
        words.update(sorted(set(tokens(gloss.read_text(encoding="latin-1"))))[::20])
    python = EnglishStemmer()
    assert [w for w in sorted(words) if stemmer.stemWord(w) != python.stemWord(w)] == []
