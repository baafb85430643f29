"""Typo tolerance of the lexical run (xmodal.ltr.spelling): a word in no item read as the catalog's commonest
word one edit away, only when it could be a typo."""

from __future__ import annotations

import random
import string
from collections.abc import Mapping, Sequence

import pytest

from xmodal import Engine, Item
from xmodal.ltr import spelling
from xmodal.ltr.spelling import edits1, read_query
from xmodal.ltr.strategies.lexical import LexicalStrategy
from xmodal.records import Query
from xmodal.store.analysis import terms


class Frequencies:
    """An index's document frequencies, counting the look-ups."""

    def __init__(self, df: Mapping[str, int]) -> None:
        self.df, self.asked = df, 0

    def __call__(self, query_terms: Sequence[str]) -> dict[str, int]:
        self.asked += 1
        return {t: self.df[t] for t in query_terms if self.df.get(t)}


def test_edits1_are_norvigs_four_kinds() -> None:
    found = edits1("kettle")
    assert {"ketle", "ketlte", "kettla", "kkettle", "kettlex"} - found == set()
    assert "kettle" not in found and "ketl" not in found
    # 6 deletions + 5 swaps + 6 · 25 changes + 7 · 26 insertions, less the repeats ("ketle" twice, …)
    assert len(found) < 6 + 5 + 6 * 25 + 7 * 26


def test_a_word_in_no_item_is_read_as_the_commonest_neighbour() -> None:
    df = {"kettl": 3, "settl": 1, "copper": 2}  # Snowball stems of "kettle", "settle", "copper"
    frequencies = Frequencies(df)
    reading = read_query("copper ketle", frequencies)
    assert reading.terms == ["copper", "kettl"] and reading.fixes == {"ketle": "kettle"}
    reading = read_query("copper kettle", frequencies)  # known: one look-up, nothing read otherwise
    assert reading.terms == terms("copper kettle") and reading.fixes == {}
    assert frequencies.asked == 3


def test_a_words_candidates_are_stemmed_once_whatever_the_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    """The candidates' terms do not depend on the catalog: a query read again after a write (with other
    frequencies) looks them up again but does not stem them again."""
    stemmed: list[int] = []
    monkeypatch.setattr(spelling, "stem_words", lambda words: stemmed.append(len(words)) or terms(" ".join(words)))
    spelling._candidates.cache_clear()
    before = read_query("copper kettel", Frequencies({"kettl": 3, "copper": 2}))
    after = read_query("copper kettel", Frequencies({"kettl": 3, "kestrel": 5, "copper": 2, "settl": 9}))
    assert before.fixes == after.fixes == {"kettel": "kettle"} and len(stemmed) == 1


def test_the_candidates_kept_are_bounded_by_their_number_not_by_words(monkeypatch: pytest.MonkeyPatch) -> None:
    """Long pasted words have many more candidates than typed ones: the cache holds at most CANDIDATES_KEPT
    candidates in all, dropping the words read least recently."""
    monkeypatch.setattr(spelling, "stem_words", lambda words: list(words))  # the stems' cost is not the point
    spelling._candidates.cache_clear()
    rng = random.Random(0)
    words = ["".join(rng.choice(string.ascii_lowercase) for _ in range(spelling.MAX_LENGTH)) for _ in range(120)]
    for word in words:
        read_query(word, Frequencies({}))
    cache = spelling._candidates.cache
    held = sum(len(c) for c in cache.values())
    assert cache.currsize == held <= spelling.CANDIDATES_KEPT
    assert words[-1] in {k[0] for k in cache} and words[0] not in {k[0] for k in cache}  # the last read, kept
    assert len(cache) < len(words)
    spelling._candidates.cache_clear()


def test_english_candidates_come_first() -> None:
    # "haved" (not a word) stems to the commonest term, "have"; "headed" is a word, and its term is in the catalog
    reading = read_query("haded", Frequencies({"have": 100, "head": 3}))
    assert reading.terms == ["head"] and reading.fixes == {"haded": "headed"}
    # with no English candidate in the catalog, any candidate may be read (a package name)
    assert read_query("packgekit", Frequencies({"packagekit": 1})).fixes == {"packgekit": "packagekit"}


def test_what_is_never_read_as_a_typo() -> None:
    frequencies = Frequencies({"book": 5, "kettl": 1, "abcd": 1, "kettle2": 1})
    # an English word (in no item) stays itself: "boots" is not "books"
    assert read_query("boots", frequencies).terms == ["boot"]
    # shorter than five letters, with a digit, or with no neighbour in the catalog
    assert read_query("abce", frequencies).fixes == {}
    assert read_query("kettle3", frequencies).fixes == {}
    assert read_query("zzzzzz", frequencies).terms == ["zzzzzz"]


def test_a_string_too_long_for_a_word_is_not_read_as_a_typo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its one-edit neighbours are never made: 4,096 letters took 15 s and 1 GB before."""
    word = "kettle" * (spelling.MAX_LENGTH // 6 + 1)  # one letter changed from a catalog word of that length
    frequencies = Frequencies({"kettle" * (spelling.MAX_LENGTH // 6) + "kettla": 1})
    monkeypatch.setattr(spelling, "_candidates", lambda w: pytest.fail(f"neighbours of a {len(w)}-letter string"))
    assert len(word) > spelling.MAX_LENGTH and read_query(word, frequencies).fixes == {}
    assert read_query("x" * 4096, frequencies).fixes == {}


def test_only_a_querys_first_words_are_read_as_typos() -> None:
    """Typo tolerance is for typed words: of a pasted text's unknown words, the first MAX_READ are read."""
    words = [f"plomvar{c}{d}" for c in "bcd" for d in "kmnpqtvwx"][: spelling.MAX_READ + 4]  # the stemmer keeps them
    frequencies = Frequencies({w: 1 for w in words})  # each a catalog word
    typos = [w[:6] + w[7:] for w in words]  # "plomvarbk" → "plomvabk": a letter dropped, in no item
    reading = read_query(" ".join(typos), frequencies)
    assert reading.fixes == dict(list(zip(typos, words, strict=True))[: spelling.MAX_READ])


def test_lexical_run_finds_items_despite_a_typo(engine: Engine) -> None:
    engine.add(
        [
            Item.create("k", title="copper kettle", text="boils water"),
            Item.create("p", title="packagekit", text="a system to install software"),
            Item.create("b", title="books", text="paper"),
        ]
    )
    lexical = LexicalStrategy(engine)
    assert lexical.retrieve(Query(text="packgekit"), 5).ids.tolist() == ["p"]
    assert lexical.retrieve(Query(text="coppr kettel"), 5).ids.tolist() == ["k"]
    assert lexical.read(Query(text="coppr kettel")).fixes == {"coppr": "copper", "kettel": "kettle"}
    assert lexical.read(Query(text="kettl")).fixes == {}  # the stem is an index term, but not a typo of one
    assert lexical.retrieve(Query(text="boots"), 5).ids.tolist() == []  # a real word is not a typo
    row = engine.row_of("p")
    assert lexical.score_rows(Query(text="packgekit"), [row])[0] > 0  # type: ignore[index]
    assert lexical.retrieve_many([(Query(text="packgekit"), 5, None)])[0].ids.tolist() == ["p"]


def test_explain_names_the_words_read_as_typos(engine: Engine) -> None:
    engine.add([Item.create("k", title="copper kettle", text="boils water"), Item.create("t", title="teapot")])
    found = engine.search(Query(text="kettel", k=2), explain=True)
    assert found.items[0].id == "k"
    assert found.explain is not None and found.explain["strategies"]["lexical"]["read_as"] == {"kettel": "kettle"}
    plain = engine.search(Query(text="kettle", k=2), explain=True).explain
    assert plain is not None and "read_as" not in plain["strategies"]["lexical"]
