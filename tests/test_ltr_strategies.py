"""Candidate generators: BM25F, query understanding, structured, memory, explore, dense."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from xmodal import Engine, Item, Query
from xmodal.encoders import HashingEncoder
from xmodal.filters import value_key
from xmodal.ltr.extension import pipeline
from xmodal.ltr.pipeline import Pipeline
from xmodal.ltr.strategies import LexicalStrategy
from xmodal.ltr.strategies.structured import leaf
from xmodal.ltr.text import (
    OneEditIndex,
    english_words,
    english_words_loaded,
    normalize_query,
    singular,
    stem,
    stems,
    within_one_edit,
)

COLORS = ["red", "green", "blue", "black"]
MATERIALS = ["leather", "canvas", "suede"]
CATEGORIES = ["boots", "sneakers", "sandals", "bags"]


def products(n: int = 120) -> list[Item]:
    return [
        Item.create(
            f"p{i}",
            title=f"{COLORS[i % 4]} {MATERIALS[i % 3]} {CATEGORIES[(i // 4) % 4]} model {i}",
            text=f"comfortable product number {i}",
            created_at=1000.0 + i,
            attributes={
                "color": COLORS[i % 4],
                "material": MATERIALS[i % 3],
                "category": CATEGORIES[(i // 4) % 4],
                "price": float(i),
            },
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    eng = Engine.open(tmp_path_factory.mktemp("shop") / "idx", encoder=HashingEncoder(), index="exact")
    eng.add(products())
    yield Pipeline(eng)
    eng.close()


def test_text_helpers() -> None:
    assert stem("boots") == "boot" and stem("berries") == "berry" and stem("2024") == "2024"
    assert normalize_query("The Red Boots") == "red boot"
    plurals = {"boots": "boot", "categories": "category", "boxes": "box", "shapes": "shape", "horses": "horse"}
    assert {word: singular(word) for word in plurals} == plurals
    assert [singular(w) for w in ("building", "clothing", "status", "glass", "analysis", "bus", "2024")] == [
        "building",
        "clothing",
        "status",
        "glass",
        "analysis",
        "bus",
        "2024",
    ]
    assert (
        within_one_edit("leather", "leahter")
        and within_one_edit("boots", "bots")
        and not within_one_edit("red", "blue")
    )


@settings(max_examples=300, deadline=None)
@example(["abcde", "abc"], "abcd")  # one longer and one shorter: the shorter first
@example(["abd", "abc", "bac"], "abc")  # the first in the words' order, not the key itself
@given(
    st.lists(st.text("abc", min_size=2, max_size=6), min_size=0, max_size=40),
    st.text("abc", min_size=2, max_size=6),
)
def test_one_edit_index_finds_what_a_scan_of_every_word_finds(words: list[str], key: str) -> None:
    """The first word within one edit of the key, that length first, then one shorter, then one longer, each in
    the words' order: what query understanding's scan of the vocabulary returned."""
    scan = next(
        (w for n in (len(key), len(key) - 1, len(key) + 1) for w in words if len(w) == n and within_one_edit(key, w)),
        None,
    )
    index = OneEditIndex(words)
    assert index.first(key) == scan
    assert index.first(key) == scan  # remembered


def test_bm25_weights_titles_above_bodies(engine: Engine) -> None:
    engine.add(
        [
            Item.create("body", title="plain thing", text="a lantern and more words here"),
            Item.create("title", title="lantern", text="a plain thing and more words here"),
        ]
    )
    lexical = LexicalStrategy(engine)
    assert lexical.retrieve(Query(text="lantern"), 10).ids.tolist() == ["title", "body"]
    assert lexical.retrieve(Query(text="lantern"), 10).provenance == ("lexical", "lexical")


def test_bm25_is_incremental_and_persisted(engine: Engine) -> None:
    engine.add([Item.create("a", title="copper kettle")])
    lexical = pipeline(engine).lexical  # the ltr extension's strategy follows the engine's writes
    engine.add([Item.create("b", title="copper pan")])
    assert set(lexical.retrieve(Query(text="copper"), 5).ids.tolist()) == {"a", "b"}
    engine.delete(["a"])
    assert lexical.retrieve(Query(text="copper"), 5).ids.tolist() == ["b"]
    engine.checkpoint()
    engine.add([Item.create("c", title="copper lamp")])  # after the checkpoint: in the store at once
    reopened = LexicalStrategy(engine)
    assert set(reopened.retrieve(Query(text="copper"), 5).ids.tolist()) == {"b", "c"}


def test_lexical_index_lives_in_the_store(engine: Engine, tmp_path: Path) -> None:
    lexical = LexicalStrategy(engine, popularity_weight=1.0)
    assert lexical.index is engine.store.fulltext
    engine.add([Item.create("a", title="copper teapot"), Item.create("b", title="copper teapot")])
    engine.checkpoint()
    assert not (engine.path / "ltr" / "lexical.json").exists()
    assert lexical.index.known_fraction(stems("copper teapots kettle")) == 2 / 3
    assert lexical.retrieve(Query(text="copper"), 2).ids.tolist() == ["a", "b"]
    lexical.popularity["b"] = 5.0  # the prior reorders equal matches
    assert lexical.retrieve(Query(text="copper"), 2).ids.tolist() == ["b", "a"]
    assert (
        lexical.scores(Query(text="copper"))[engine.row_of("b")]
        > lexical.scores(Query(text="copper"))[engine.row_of("a")]
    )


def test_query_understanding_with_stems_and_typos(shop: Pipeline) -> None:
    found = shop.understanding.understand("red leahter boot for winter")
    assert found.slots == {"color": ["red"], "material": ["leather"], "category": ["boots"]}
    assert found.rest == "for winter"


def test_a_value_after_a_negation_is_excluded_from_every_run_of_the_default_search(shop: Pipeline) -> None:
    """ "boots not red", "non-leather bags": the negated value is neither a slot nor a ranking word, and the default
    (learned) search leaves out every item that holds it, whichever strategy found it; items without the attribute
    stay. A word that only contains a negation ("knot") or one with no value after it negates nothing."""
    found = shop.understanding.understand("boots not red")
    assert found.slots == {"category": ["boots"]} and found.excluded == {"color": ["red"]} and found.rest == ""
    assert found.constraints() == {"color": {"not": ["red"]}}
    both = shop.understanding.understand("non-leather bags without suede")
    assert both.excluded == {"material": ["leather", "suede"]} and both.slots == {"category": ["bags"]}
    for text in ("red boots", "knot red boots", "boots not for winter"):
        assert shop.understanding.understand(text).constraints() is None, text
    engine = shop.engine
    hits = engine.search(Query(text="boots not red", mode="learned", k=30), explain=True)
    assert hits.explain is not None and hits.explain["constraints"] == {"color": {"not": ["red"]}}
    colors = {engine.get(i).attributes["color"] for i in hits.hits.ids.tolist()}
    assert len(hits.items) == 30 and "red" not in colors and len(colors) == 3
    assert "red" in {engine.get(i).attributes["color"] for i in engine.search(Query(text="boots", k=30)).hits.ids}
    # the caller's own filters still hold beside the exclusion
    cheap = engine.search(Query(text="boots not red", mode="learned", k=30, filters={"price": {"lt": 40}}))
    assert cheap.items and all(i.attributes["price"] < 40 and i.attributes["color"] != "red" for i in cheap.items)


def test_a_price_bound_holds_for_every_run_of_the_default_search(shop: Pipeline) -> None:
    """ "under 40", "between 10 and 20 dollars", "at least $100": bounds on the catalog's price attribute, kept by
    every run; an amount followed by a unit ("300 pages") or a phrase with no amount ("under the sea") is none."""
    found = shop.understanding.understand("red boots under 40")
    assert found.bounds == {"price": {"lt": 40.0}} and found.slots == {"color": ["red"], "category": ["boots"]}
    assert found.rest == "" and found.constraints() == {"price": {"lt": 40.0}}
    assert shop.understanding.understand("boots between 10 and 20 dollars").bounds == {"price": {"gte": 10, "lte": 20}}
    assert shop.understanding.understand("bags at least $100, not red").constraints() == {
        "color": {"not": ["red"]},
        "price": {"gte": 100.0},
    }
    # an amount with a unit, no amount, or a bound on another attribute ("color", here) bounds no price
    for text in ("boots under 300 pages", "boots under the sea", "model 40 boots", "boots color over 3 for me"):
        assert shop.understanding.understand(text).bounds == {}, text
    engine = shop.engine
    hits = engine.search(Query(text="boots under 40", mode="learned", k=10), explain=True)
    assert hits.explain is not None and hits.explain["constraints"] == {"price": {"lt": 40.0}}
    assert hits.items and all(i.attributes["price"] < 40 for i in hits.items)
    assert any(i.attributes["category"] == "boots" for i in hits.items)


def test_query_understanding_reads_a_plural_as_its_singular_but_no_other_word_of_the_same_stem(shop: Pipeline) -> None:
    """A value is matched in the singular or the plural ("sneaker", "leathers"), never by a word derived from it
    that the light stemmer would merge with it: "booting" (stem "boot") is not the category "boots"."""
    understand = shop.understanding.understand
    assert stem("booting") == stem("boots")
    assert understand("black sneaker").slots == {"color": ["black"], "category": ["sneakers"]}
    assert understand("leathers").slots == {"material": ["leather"]}
    assert understand("booting").slots == {} and understand("booting").rest == "booting"


def test_a_query_for_the_members_of_a_category_that_match_other_words(shop: Pipeline) -> None:
    """``ranks_members``: the slots read at least as many words as are left (stop words aside), and some are left."""
    understand = shop.understanding.understand
    assert understand("boots winter").ranks_members()
    assert understand("red leather boots for winter").ranks_members()  # three words read, one left
    assert not understand("red boots").ranks_members()  # nothing left to rank the members by
    assert not understand("boots for a long winter walk").ranks_members()  # more words left than read
    assert not understand("winter walk").ranks_members()  # no slots


def test_a_flat_structured_run_that_ranks_its_slots_members_keeps_its_weight(shop: Pipeline) -> None:
    """Every boot is "comfortable", so the structured run for "boots comfortable" is flat (an NQC of 0) and NQC
    alone would weigh it 0 beside a committed run; it is what the query asks for, so it keeps its planned weight.
    Other runs keep theirs as NQC scales them."""
    prepared = shop.prepare(Query(text="boots comfortable"))
    runs = {
        "lexical": shop.strategies["lexical"].retrieve(Query(text="red leather boots model 5"), 20),  # committed
        "structured": shop.strategies["structured"].retrieve(prepared.query, 20),
    }
    assert np.ptp(runs["structured"].scores[:10]) == 0 and np.ptp(runs["lexical"].scores[:10]) > 0
    planned = {"lexical": 1.0, "structured": 0.8}
    plain = shop.fusion_weights(runs, planned)
    assert plain["structured"] == 0.0 and plain["lexical"] == 1.0
    held = shop.fusion_weights(runs, planned, understanding=prepared.understanding)
    assert held == {"lexical": 1.0, "structured": 0.8}
    red = shop.prepare(Query(text="red boots"))  # slots read the whole query: as NQC says
    assert shop.fusion_weights(runs, planned, understanding=red.understanding) == plain


def test_query_understanding_reads_the_word_list_only_for_a_word_near_a_value(shop: Pipeline) -> None:
    """The English word list (``english_words``, ~0.1 s to read) is read for the first word one edit from an
    attribute value, not for a query without one; the slots found are the same either way."""
    english_words.cache_clear()
    found = shop.understanding.understand("winter clothing for travelling")
    assert not english_words_loaded() and found.slots == {}
    assert shop.understanding.understand("red leahter boots").slots["material"] == ["leather"]
    assert english_words_loaded()
    assert shop.understanding.understand("winter clothing for travelling") == found
    assert shop.understanding.understand("scandal boots").slots == {"category": ["boots"]}  # English, no typo


def test_a_hierarchical_values_last_level_and_nothing_else_is_read_as_its_category() -> None:
    assert leaf("noun.animal") == "animal" and leaf("Clothing > Shoes > Boots") == "Boots"
    assert leaf("use::editing") == "editing" and leaf("contrib/games") == "games"
    assert leaf("boots") is None and leaf("3.5") is None and leaf("v1.2") is None and leaf("U.S.A") is None


def test_a_category_named_by_its_last_level_is_read_only_in_a_keyword_query_for_its_members(
    tmp_path: Path,
) -> None:
    kinds = ["Clothing > Men > Boots", "Clothing > Women > Boots", "Clothing > Women > Dresses", "animal"]
    items = [
        Item.create(
            f"i{n}",
            title=f"item {n}",
            text=["winter lined", "summer light", "lined evening", "a warm winter coat"][n % 4],
            attributes={"category": kinds[n % 4], "tags": ["use::winter", "made-of::leather"][: 1 + n % 2]},
        )
        for n in range(40)
    ]
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as eng:
        eng.add([*items, Item.create("named", title="boots lined", text="a shop's name")])
        understand = pipeline(eng).understanding.understand
        found = understand("boots lined")
        # every value that ends in the word, whichever branch it is under
        assert found.slots == {"category": kinds[:2]} and found.rest == "lined" and found.leaf
        assert understand("lined boots").ranks_members()
        assert understand("boots").slots == {"category": kinds[:2]}  # the category's name alone: its members
        assert not understand("boots for the winter").slots  # words of a sentence
        assert not understand("boots-lined").slots  # one compound word: a name
        assert not understand("boots linned").slots  # a word no item holds: a typo of a name
        assert understand("animal lined").slots == {"category": ["animal"]}  # a whole value as before
        assert not understand("animal lined").leaf
        assert not understand("leather lined").slots  # a tag's last level: tags are no category
        # the item titled with the query's words still comes first: a title is looked for in such a query
        assert eng.search("boots lined", k=3).hits.ids[0] == "named"
        members = eng.search("boots winter", k=5, mode="structured").items
        assert members and all(it.attributes["category"] in kinds[:2] for it in members)


def test_structured_search_filters_by_the_slots(shop: Pipeline) -> None:
    hits = shop.strategies["structured"].retrieve(Query(text="black suede bags"), 50)
    assert len(hits) > 0
    for item_id in hits.ids.tolist():
        attrs = shop.engine.get(item_id).attributes
        assert (attrs["color"], attrs["material"], attrs["category"]) == ("black", "suede", "bags")
    assert len(shop.strategies["structured"].retrieve(Query(text="nothing to see"), 10)) == 0


def test_structured_batch_is_each_query_retrieved_alone(shop: Pipeline) -> None:
    """A batch (:meth:`StructuredStrategy.retrieve_many`) answers each request as :meth:`retrieve` does: slots
    found or not, filled up by dense search (one matrix search per filters and depth) or not, with or
    without the query's vector."""
    strategy = shop.strategies["structured"]
    texts = ["black suede bags", "nothing to see", "red boots", "black bags model", "red leather", "red boots"]
    requests = [
        (
            Query(text=t, filters={"price": {"lt": 60}} if i == 4 else {}),
            depth,
            None if i % 3 else shop.engine.encode_query(Query(text=t)),
        )
        for i, t in enumerate(texts)
        for depth in (5, 40)
    ]
    batch = strategy.retrieve_many(requests)
    for (query, depth, vector), hits in zip(requests, batch, strict=True):
        alone = strategy.retrieve(query, depth, vector=vector)
        assert hits.ids.tolist() == alone.ids.tolist() and hits.provenance == alone.provenance
        np.testing.assert_allclose(hits.scores, alone.scores, rtol=1e-6)
    assert any(len(h) and min(h.scores) < 2.0 for h in batch)  # some filled up by dense search (cosines, < 2)


words = st.lists(
    st.sampled_from([*COLORS, *MATERIALS, *CATEGORIES, "model", "comfortable", "3", "x"]), min_size=1, max_size=4
)
filters = st.one_of(
    st.just({}),
    st.builds(lambda c: {"color": c}, st.sampled_from(COLORS)),
    st.builds(lambda p: {"price": {"lt": p}}, st.integers(0, 130)),
)


@settings(max_examples=40, deadline=None)
@given(text=words, where=filters, name=st.sampled_from(["lexical", "structured", "memory", "explore", "dense:text"]))
def test_filtered_strategies_never_return_non_matching_items(
    shop: Pipeline, text: list[str], where: dict[str, object], name: str
) -> None:
    query = Query(text=" ".join(text), filters=where, k=10)
    slots = shop.understanding.understand(query.text).filters() if name == "structured" else {}
    for item_id in shop.strategies[name].retrieve(query, 30).ids.tolist():
        attrs = shop.engine.get(item_id).attributes
        for attr, cond in {**slots, **where}.items():
            if isinstance(cond, dict):
                assert attrs[attr] < cond["lt"]
            elif isinstance(cond, list):
                assert value_key(attrs[attr]) in {value_key(c) for c in cond}
            else:
                assert value_key(attrs[attr]) == value_key(cond)


def test_memory_cold_start_then_real_feedback(tmp_path: Path) -> None:
    eng = Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact")
    eng.add(products(40))
    result = eng.search("red leather boots model 0", mode="memory", k=3, log=True)
    assert result.hits.ids.tolist()[0] == "p0"  # predicted query: the title
    target = "p36"
    for _ in range(3):  # users keep choosing p36 for "boots for hiking"
        r = eng.search("boots for hiking", mode="learned", k=20, log=True)
        if target in r.hits.ids.tolist():
            assert r.query_id is not None
            eng.feedback(r.query_id, target, "add_to_cart")
    assert "p36" in eng.search("boots for hiking", mode="learned", k=20).hits.ids.tolist()
    assert eng.search("boots for hiking", mode="memory", k=1).hits.ids.tolist() == ["p36"]
    eng.close()


def test_explore_is_seeded_and_mixes_new_popular_random(shop: Pipeline) -> None:
    from xmodal.ltr.strategies import ExploreStrategy

    a = ExploreStrategy(shop.engine, seed=3).retrieve(Query(text="anything"), 9)
    b = ExploreStrategy(shop.engine, seed=3).retrieve(Query(text="anything"), 9)
    assert a.ids.tolist() == b.ids.tolist() and len(a) == 9
    assert a.ids.tolist()[0] == "p119"  # the newest item leads


def test_memory_counts_expected_examinations_and_query_history(tmp_path: Path) -> None:
    from xmodal.ltr.strategies import MemoryStrategy

    eng = Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact")
    eng.add(products(10))
    memory = MemoryStrategy(eng, cold_start=False)
    key = normalize_query("Boots")  # the pipeline logs impressions under the normalised query
    memory.add_impression(key, ["p1", "p2", "p4"])
    memory.add_action(key, "p4", 1.0)
    pairs = memory.lookup("Boots")
    assert pairs["p1"].impressions == 1.0 and pairs["p4"].impressions == pytest.approx(1 / 3)  # 1/position
    assert memory.history("boots!") == (1, 1.0) and memory.history("sandals") == (0, 0.0)
    eng.close()


def test_explore_walks_through_the_pool_of_a_repeated_unanswered_query(tmp_path: Path) -> None:
    from xmodal.ltr.strategies import ExploreStrategy, MemoryStrategy

    eng = Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact")
    eng.add(products(60))
    memory = MemoryStrategy(eng, cold_start=False)
    explore = ExploreStrategy(eng, seed=0, memory=memory)
    seen: set[str] = set()
    tops: list[str] = []
    for _ in range(6):  # six searches, 10 shown each, never a click
        shown = explore.retrieve(Query(text="something unusual"), 10).ids.tolist()
        tops.append(shown[0])
        seen |= set(shown)
        memory.add_impression(normalize_query("something unusual"), shown)
    assert len(set(tops)) == 6  # an item looked at (shown first) and passed over is not shown first again
    assert len(seen) == 60  # the least looked-at first: six searches of ten cover the sixty items
    clicked = tops[0]  # shown first, so looked at the most
    memory.add_action(normalize_query("something unusual"), clicked, 1.0)
    # acted on or not, an item keeps its examinations: exploration is for the items looked at least
    assert explore._looked_at("something unusual")[eng.row_of(clicked)] == 1.0
    assert clicked not in explore.retrieve(Query(text="something unusual"), 10).ids.tolist()
    eng.close()
