"""Exact phrases and titles first (xmodal.ltr.phrase): the fused head's items titled with the query, or holding its
words in order, lead."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from xmodal import Engine
from xmodal.encoders import HashingEncoder
from xmodal.ltr.extension import pipeline
from xmodal.ltr.fusion import FusedHit
from xmodal.ltr.phrase import HEAD, holds, query_name, query_phrase, tiers_first
from xmodal.ltr.tuned import Configuration, TunedFusion
from xmodal.records import Hits, Item, Query


def test_a_phrase_is_three_words_or_more_lower_cased_and_folded() -> None:
    assert query_phrase("Crème BRÛLÉE, torched") == "creme brulee torched"
    assert query_phrase("a crème brûlée of the house") == "a creme brulee of the house"  # stop words stay in it
    assert query_phrase("a cup of coffee") is None  # two words that are not stop words
    assert query_phrase("motor vehicle") is None and query_phrase(None) is None and query_phrase("") is None


def test_holds_whole_words_in_order_and_next_to_each_other() -> None:
    phrase = "red leather boots"
    assert holds("Pair of red, leather boots.", phrase)  # punctuation is not a word
    assert not holds("boots of red leather", phrase)  # not in order
    assert not holds("red soft leather boots", phrase)  # not next to each other
    assert not holds("bored leather bootsy", phrase)  # not whole words
    assert not holds("", phrase)
    assert holds("RED leather_x red\tLeather--boots!", phrase)  # ASCII: searched without tokenising
    assert not holds("red leather_boots", phrase)  # "_" is a word character: one token "leather_boots"
    assert holds("Crème: red leather boots", phrase) and holds("RÉD leather boots", "red leather boots")  # folded
    assert not holds("red leather bootsé", phrase)


def hits(ids: list[str]) -> list[FusedHit]:
    return [FusedHit(i, 1.0 - n / 100, {}) for n, i in enumerate(ids)]


def test_phrase_first_is_a_stable_partition_of_the_head_only() -> None:
    ids = [f"i{n}" for n in range(HEAD + 5)]
    holding = {"i3", "i7", f"i{HEAD + 2}"}  # the last one is below the head: left where it is
    texts = {i: ("a title", "red leather boots" if i in holding else "boots") for i in ids if i != "i5"}
    seen: list[list[str]] = []

    def read(asked: list[str]) -> dict[str, tuple[str, str]]:
        seen.append(list(asked))
        return {i: texts[i] for i in asked if i in texts}  # i5 was deleted: it holds nothing

    out, held, _ = tiers_first(hits(ids), "red leather boots", None, read)
    assert held == 2 and seen == [ids[:HEAD]]  # only the head's texts are read
    order = [h.id for h in out]
    assert order[:2] == ["i3", "i7"] and order[2:HEAD] == [i for i in ids[:HEAD] if i not in ("i3", "i7")]
    assert order[HEAD:] == ids[HEAD:]
    same, none, _ = tiers_first(hits(ids), "green canvas shoes", None, read)
    assert none == 0 and [h.id for h in same] == ids


def test_spare_hits_holding_the_phrase_or_the_title_join_their_tier_after_the_fused_ones() -> None:
    ids = [f"i{n}" for n in range(HEAD + 5)]
    deep = f"i{HEAD + 3}"  # in the fused list below its head, and first in a run left out of the fusion
    spare = [FusedHit(i, 0.0, {}) for i in (deep, "s1", "s2", "i4", "s3")]
    texts = {"i4": ("boots", "red leather boots"), deep: ("x", "red leather boots"), "s1": ("x", "red leather boots")}
    texts |= {"s2": ("x", "boots of red leather"), "s3": ("red leather boots", "")}

    def read(asked: list[str]) -> dict[str, tuple[str, str]]:
        return {i: texts.get(i, ("x", "boots")) for i in asked}

    out, held, titled = tiers_first(hits(ids), "red leather boots", "red leather boots", read, spare)
    order = [h.id for h in out]
    # the title tier (s3, a spare hit; its title holds the phrase too) before the rest of the phrase tier: the
    # fused head's i4, then deep and s1 (s2 holds the words, not the phrase)
    assert (held, titled) == (4, 1) and order[:4] == ["s3", "i4", deep, "s1"]
    assert order[4:] == [i for i in ids if i not in ("i4", deep)] and len(order) == len(set(order))
    assert out[2].score == hits(ids)[HEAD + 3].score  # a fused hit joins with its fused score
    same, none, _ = tiers_first(hits(ids), "green canvas shoes", None, read, spare)
    assert none == 0 and [h.id for h in same] == ids  # no spare hit holds it: nothing joins


def test_the_learned_search_puts_the_item_holding_the_phrase_first(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as eng:
        eng.add(
            [
                # every query word, not as the phrase, in a short text: lexical and dense search rank it first
                Item.create("near", title="boots", text="boots of red leather"),
                Item.create(
                    "verbatim",
                    title="winter catalogue",
                    text="our winter catalogue lists coats, scarves, gloves and red leather boots among many things",
                ),
                *[Item.create(f"other{n}", title=f"item {n}", text=f"a plain cotton shirt {n}") for n in range(20)],
            ]
        )
        pipe = pipeline(eng)
        query = Query(text="red leather boots", k=5)
        vector = eng.encode_query(query)
        prepared = pipe.prepare(query, vector=vector)
        plan = pipe.plan(prepared)
        fused = [h.id for h in pipe.candidates(prepared, plan, vector, phrased=False).fused]
        assert fused.index("near") < fused.index(
            "verbatim"
        )  # without the tier, the item holding the phrase is not first
        result = eng.search("red leather boots", k=5, explain=True)
        assert result.hits.ids[0] == "verbatim" and result.explain is not None
        assert result.explain["phrase_first"] == 1
        scores = np.asarray(result.hits.scores)
        assert np.all(np.diff(scores) <= 1e-12)  # the shown scores stay non-increasing
        assert eng.search("red leather", k=5, explain=True).explain["phrase_first"] == 0  # two words: no phrase


class _DenseAlone(TunedFusion):
    """A self-tuned fusion that fuses the dense run alone for every query."""

    def choose(self, context: np.ndarray, runs: Mapping[str, Hits]) -> Configuration | None:
        return Configuration(tuple((a, 1.0 if a.startswith("dense") else 0.0) for a in self.arms), committed=False)


def test_a_run_the_self_tuned_fusion_leaves_out_still_brings_the_item_holding_the_phrase(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as eng:
        eng.add(
            [
                # two of the query's words in a short text: dense search ranks all of these above the long text
                *[Item.create(f"near{n}", title=f"boots {n}", text=f"red boots {n}") for n in range(HEAD + 5)],
                Item.create(
                    "verbatim",
                    title="winter catalogue",
                    text="our winter catalogue lists coats, scarves, gloves and red leather boots among many things",
                ),
            ]
        )
        pipe = pipeline(eng)
        arms = tuple(pipe.policy.arms)
        pipe.set_tuned(_DenseAlone(arms, [], np.zeros(0), np.ones(0), np.zeros((1, 1)), {"accepted": True}), save=False)
        query = Query(text="red leather boots", k=5)
        vector = eng.encode_query(query)
        prepared = pipe.prepare(query, vector=vector)
        found = pipe.candidates(prepared, pipe.plan(prepared), vector, phrased=False)
        assert set(found.weights) == {a for a in arms if a.startswith("dense")}  # the lexical run is left out
        assert "verbatim" not in [h.id for h in found.fused[:HEAD]] and found.spare[0].id == "verbatim"
        result = eng.search("red leather boots", k=5, explain=True)
        assert result.hits.ids[0] == "verbatim" and result.explain is not None
        assert result.explain["phrase_first"] == 1 and result.explain["tuning"]["active"] is True


def test_title_first_moves_the_items_titled_with_the_query_words() -> None:
    assert query_name("Crème-BRÛLÉE!") == "creme brulee" and query_name("  ") is None and query_name(None) is None
    ids = [f"i{n}" for n in range(HEAD + 3)]
    titles = {
        "i4": "Crème brûlée",
        "i9": "crème brûlée, torched",
        "i11": "creme-brulee",
        f"i{HEAD + 1}": "creme brulee",
    }
    out, _, titled = tiers_first(
        hits(ids), None, "creme brulee", lambda asked: {i: (titles.get(i, "x"), "") for i in asked}
    )
    order = [h.id for h in out]
    assert titled == 2 and order[:2] == ["i4", "i11"]  # the same words; "torched" is one more, below the head stays
    assert order[2:HEAD] == [i for i in ids[:HEAD] if i not in ("i4", "i11")] and order[HEAD:] == ids[HEAD:]


def test_a_query_naming_an_item_puts_it_first_unless_it_names_an_attribute_value(tmp_path: Path) -> None:
    breeds = [
        Item.create(
            f"breed{n}", title=f"dog {n}", text=f"dog dog dog, a dog of breed {n}", attributes={"group": "hound"}
        )
        for n in range(12)
    ]
    text = "a domesticated carnivorous mammal that people keep as a pet or for work, in many breeds and sizes"
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as eng:
        eng.add([*breeds, Item.create("dog", title="Dog", text=text)])
        pipe = pipeline(eng)
        query = Query(text="dog", k=5)
        vector = eng.encode_query(query)
        prepared = pipe.prepare(query, vector=vector)
        fused = [h.id for h in pipe.candidates(prepared, pipe.plan(prepared), vector, phrased=False).fused]
        assert fused[0] != "dog"  # without the tier the breeds, which say "dog" more often, come first
        result = eng.search("dog", k=5, explain=True)
        assert result.hits.ids[0] == "dog" and result.explain is not None and result.explain["title_first"] == 1
        assert np.all(np.diff(np.asarray(result.hits.scores)) <= 1e-12)
        # "hound" names the breeds' attribute value: a category query, its members wanted, so no title tier
        eng.add([Item.create("hound", title="hound", text="any of several breeds of dog used for hunting")])
        explained = eng.search("hound", k=5, explain=True).explain
        assert explained is not None and explained["title_first"] == 0
        # a compound word that holds the value is a name ("libnl-utils" is no member of `utils`): titles first
        eng.add([Item.create("hound-dog", title="hound-dog", text="a song")])
        compound = eng.search("hound-dog", k=5, explain=True)
        assert compound.hits.ids[0] == "hound-dog" and compound.explain is not None
        assert compound.explain["title_first"] == 1
        assert eng.search("hound dog", k=5, explain=True).explain["title_first"] == 0  # typed apart: a category
