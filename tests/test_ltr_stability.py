"""Exploration that users do not notice (issue 19, part 6) and scores that mean something (part 7)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xmodal import Engine, Item, ValidationError
from xmodal.cli import main
from xmodal.encoders import HashingEncoder
from xmodal.ltr import explore_config
from xmodal.ltr.exploration import ExploreBudget, ExploreSettings, eligible, place
from xmodal.ltr.extension import pipeline
from xmodal.ltr.fusion import FusedHit
from xmodal.ltr.memory_state import PairStats
from xmodal.ltr.repeats import PASSED_LOOKED, TURNOVER, Repeats, Shown, demote, passed_over, pin, turns_over
from xmodal.ltr.scores import non_increasing, relevance
from xmodal.ltr.strategies import QueryUnderstanding
from xmodal.provenance import names_of
from xmodal.records import Query

from .test_ltr_strategies import products


def hit(item: str, source: str = "lexical", score: float = 1.0) -> FusedHit:
    return FusedHit(item, score, {source: (1, score)})


# -- placement ---------------------------------------------------------------------------------------
def test_explored_items_go_from_position_top_every_position_when_leading_every_second_as_the_floor() -> None:
    ranked = [hit(f"r{i}") for i in range(8)]
    explored = [hit(f"e{i}", "explore", 0.0) for i in range(8)]
    lead = [h.id for h in place(ranked, explored, top=4, every=1)][:10]
    assert lead == ["r0", "r1", "r2", "e0", "e1", "e2", "e3", "e4", "e5", "e6"]
    floor = [h.id for h in place(ranked, explored, top=4, every=2)][:10]
    assert floor == ["r0", "r1", "r2", "e0", "r3", "e1", "r4", "e2", "r5", "e3"]


def test_an_explored_item_the_relevance_order_holds_keeps_its_better_place_with_both_sources() -> None:
    ranked = [hit("a"), hit("b"), hit("c"), hit("d"), hit("x")]
    explored = [hit("b", "explore", 0.0), hit("x", "explore", 0.0), hit("y", "explore", 0.0)]
    shown = place(ranked, explored, top=4, every=1)
    assert [h.id for h in shown] == ["a", "b", "c", "x", "y", "d"]
    assert set(shown[1].sources) == {"lexical", "explore"} and set(shown[3].sources) == {"lexical", "explore"}
    assert shown[3].score == 1.0  # the relevance order's fused score, not exploration's


@settings(max_examples=200, deadline=None)
@given(
    n_ranked=st.integers(0, 12),
    explored=st.lists(st.integers(0, 20), max_size=12, unique=True),
    top=st.integers(1, 6),
    every=st.integers(1, 3),
)
def test_placement_never_puts_an_item_without_evidence_above_top(
    n_ranked: int, explored: list[int], top: int, every: int
) -> None:
    ranked = [hit(f"i{i}") for i in range(n_ranked)]
    out = place(ranked, [hit(f"i{i}", "explore", 0.0) for i in explored], top=top, every=every)
    ids = [h.id for h in out]
    assert sorted(ids) == sorted({f"i{i}" for i in range(n_ranked)} | {f"i{i}" for i in explored})  # each once
    for position, h in enumerate(out, start=1):
        if set(h.sources) == {"explore"} and position < top:  # only once the relevance order has run out
            assert all(r.id in ids[: position - 1] for r in ranked)


def test_pin_puts_the_remembered_top_first_in_its_order() -> None:
    ranked = [hit(i) for i in "abcde"]
    assert [h.id for h in pin(ranked, ("d", "zz", "a"))] == ["d", "a", "b", "c", "e"]


def test_items_looked_at_without_a_credible_action_are_passed_over_and_go_below_the_others() -> None:
    pairs = {
        "top": PairStats(impressions=PASSED_LOOKED, actions=0.0),  # looked at three times, never acted on
        "glance": PairStats(impressions=1.0, actions=0.0),  # one look is not evidence
        "found": PairStats(impressions=20.0, actions=1.0),  # acted on once: evidence for, not against
        "answer": PairStats(impressions=4.0, actions=3.0),
        "predicted": PairStats(impressions=0.0, actions=0.0, prior=0.5),
        "low": PairStats(impressions=PASSED_LOOKED - 0.01, actions=0.0),
    }
    assert passed_over(pairs) == {"top"}
    assert passed_over(pairs, looked=1.0) == {"top", "glance", "low"}
    ranked = [hit(i) for i in ("top", "answer", "found", "glance", "new")]
    assert [h.id for h in demote(ranked, passed_over(pairs))] == ["answer", "found", "glance", "new", "top"]
    assert demote(ranked, frozenset()) == ranked


def test_repeats_answer_only_in_the_same_state_and_stay_bounded() -> None:
    memo = Repeats(size=2)
    memo.put("q1", Shown((0.0, 1), ("lexical",), ("a", "b", "c")))
    assert memo.get("q1", (0.0, 1)) is not None
    assert memo.get("q1", (1.0, 1)) is None and memo.get("q1", (0.0, 2)) is None  # new feedback, new catalog
    memo.put("q2", Shown((0.0, 1), (), ()))
    memo.put("q3", Shown((0.0, 1), (), ()))
    assert memo.get("q1", (0.0, 1)) is None and memo.get("q3", (0.0, 1)) is not None


def test_a_top_turns_over_once_all_of_it_is_passed_over_and_then_only_after_turnover_searches() -> None:
    top = ("a", "b", "c")
    assert turns_over(Shown((0.0, 1), (), top), frozenset("abcx"))  # first in its state: on the evidence
    assert not turns_over(Shown((0.0, 1), (), top, served=50), frozenset("ab"))  # "c" not yet passed over
    assert not turns_over(Shown((0.0, 1), (), top, served=TURNOVER - 1, turned=True), frozenset("abc"))
    assert turns_over(Shown((0.0, 1), (), top, served=TURNOVER, turned=True), frozenset("abc"))
    assert not turns_over(Shown((0.0, 1), (), ()), frozenset("abc"))  # nothing to turn over


# -- which calls explore, and how often --------------------------------------------------------------
def test_only_logged_calls_explore_and_by_default_only_those_naming_a_user() -> None:
    assert not eligible(Query(text="x"), "identified") and not eligible(Query(text="x", user="u"), "identified")
    assert not eligible(Query(text="x", logged=True), "identified")
    assert eligible(Query(text="x", logged=True, user="u"), "identified")
    assert eligible(Query(text="x", logged=True), "logged") and not eligible(Query(text="x"), "logged")
    assert eligible(Query(text="x"), "all")


@pytest.mark.parametrize("share", [0.0, 0.1, 0.25, 1.0])
def test_the_budget_bounds_the_share_of_searches_that_explore(share: float) -> None:
    budget = ExploreBudget(share)
    admitted = [budget.admit(True) for _ in range(40)]
    assert sum(admitted) == math.ceil(share * 40)
    assert all(sum(admitted[:n]) <= math.ceil(share * n) for n in range(1, 41))
    assert not ExploreBudget(1.0).admit(False)  # a search that does not want to explore never does


def test_bad_exploration_settings_name_the_field() -> None:
    with pytest.raises(ValidationError, match="exploration.budget"):
        ExploreSettings(budget=1.5)
    with pytest.raises(ValidationError, match="exploration.calls"):
        ExploreSettings(calls="everyone")
    with pytest.raises(ValidationError, match="exploration.top"):
        ExploreSettings(top=0)


@pytest.fixture
def shop(tmp_path: Path) -> Engine:
    eng = Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact")
    eng.add(products(120))
    return eng


def _reopened(shop: Engine, tmp_path: Path, explore: ExploreSettings) -> Engine:
    """The shop's index reopened with these exploration settings saved."""
    shop.close()
    explore_config.save(tmp_path / "idx" / "ltr", explore)
    return Engine.open(tmp_path / "idx")


def _explored(engine: Engine, text: str, n: int, **options: object) -> list[bool]:
    """Per search of ``text`` (n times, logged), whether its plan explored."""
    out = []
    for _ in range(n):
        result = engine.search(text, mode="learned", k=10, log=True, explain=True, **options)  # type: ignore[arg-type]
        assert result.explain is not None
        out.append("explore" in {a["strategy"] for a in result.explain["plan"]})
    return out


def test_anonymous_and_unlogged_searches_do_not_explore_unless_configured(shop: Engine, tmp_path: Path) -> None:
    assert not any(_explored(shop, "comfortable boots", 4))  # logged, but anonymous
    for _ in range(3):
        result = shop.search("comfortable boots", mode="learned", k=10, explain=True, user="u1")  # not logged
        assert result.explain is not None and not result.explain["exploration"]["may_explore"]
    assert any(_explored(shop, "comfortable boots", 4, user="u1"))
    shop = _reopened(shop, tmp_path, ExploreSettings(calls="logged"))
    assert any(_explored(shop, "comfortable boots", 4))  # configured: anonymous logged searches explore too
    shop.close()


def test_a_deployment_budget_bounds_the_searches_that_explore(shop: Engine, tmp_path: Path) -> None:
    shop = _reopened(shop, tmp_path, ExploreSettings(budget=0.25))
    explored = _explored(shop, "comfortable boots", 20, user="u1")  # each one would explore (never answered)
    assert 1 <= sum(explored) <= math.ceil(0.25 * 20)
    shop.close()


#: searches of a new failing query before every item of its top 3 is passed over: position 3 is looked at
#: a third of the time (PASSED_LOOKED expected looks in 9 searches)
PASSED_SEARCHES = 9


def test_the_same_query_without_new_feedback_keeps_its_top_3_and_new_feedback_lets_it_change(
    shop: Engine, tmp_path: Path
) -> None:
    shop = _reopened(shop, tmp_path, ExploreSettings(budget=1.0))
    tops, explored_at = [], set()
    for _ in range(20):
        result = shop.search("comfortable walking shoes", mode="learned", k=10, log=True, user="u1")
        tops.append(tuple(result.hits.ids[:3].tolist()))
        explored_at |= {i + 1 for i, p in enumerate(result.hits.provenance) if names_of(p) == ("explore",)}
    assert explored_at and min(explored_at) >= 4  # exploration ran, below the top 3
    assert len(set(tops[:PASSED_SEARCHES])) == 1  # kept until users have passed over all of it
    assert sum(a != b for a, b in zip(tops, tops[1:], strict=False)) <= 1  # then it may turn over once in 20
    assert result.query_id is not None
    clicked = result.hits.ids[5]
    shop.feedback(result.query_id, clicked, "click", position=6)
    after = shop.search("comfortable walking shoes", mode="learned", k=10, log=True, user="u1")
    assert clicked in after.hits.ids[:3].tolist()  # the item acted on has evidence now
    shop.close()


def test_new_feedback_on_a_failing_query_puts_the_items_users_passed_over_below_fresh_ones(
    shop: Engine, tmp_path: Path
) -> None:
    shop = _reopened(shop, tmp_path, ExploreSettings(budget=1.0))
    text = "comfortable walking shoes"
    for _ in range(12):  # positions 1-3 looked at 12, 6 and 4 times (expected), never acted on
        result = shop.search(text, mode="learned", k=10, log=True, user="u1")
    before = result.hits.ids[:3].tolist()
    assert result.query_id is not None
    clicked = result.hits.ids[6]
    shop.feedback(result.query_id, clicked, "click", position=7)  # 1 action in 12 searches: still failing
    tops = []
    for _ in range(5):
        after = shop.search(text, mode="learned", k=10, log=True, user="u1")
        tops.append(after.hits.ids[:3].tolist())
    assert tops[0][0] == clicked  # the item acted on has evidence now
    assert not set(before) & set(tops[0])  # the items passed over lost their top positions to fresh ones
    assert all(t == tops[0] for t in tops)  # and with no new feedback the new top 3 stays
    shop.close()


# -- query understanding -----------------------------------------------------------------------------
def _changes_per_window(tops: list[tuple[str, ...]], repeats: int = 20) -> list[int]:
    """For each run of ``repeats`` repeats (a search and the ``repeats`` after it), how often the top 3 changed."""
    changed = [a != b for a, b in zip(tops, tops[1:], strict=False)]
    return [sum(changed[i : i + repeats]) for i in range(len(changed) - repeats + 1)]


def test_a_failing_query_repeated_without_feedback_turns_its_top_3_over_once_passed_over_at_most_once_in_20(
    shop: Engine, tmp_path: Path
) -> None:
    assert TURNOVER == 20  # the bound: 20 repeats with no feedback change the top 3 at most once
    shop = _reopened(shop, tmp_path, ExploreSettings(budget=1.0))
    text, tops, explored_at = "comfortable walking shoes", [], set()
    for _ in range(3 * TURNOVER + 1):  # never acted on: a failing query
        result = shop.search(text, mode="learned", k=10, log=True, user="u1")
        tops.append(tuple(result.hits.ids[:3].tolist()))
        explored_at |= {i + 1 for i, p in enumerate(result.hits.provenance) if names_of(p) == ("explore",)}
    assert explored_at and min(explored_at) >= 4  # exploration was on, below the top 3
    assert max(_changes_per_window(tops)) <= 1
    changed_at = [i for i in range(1, len(tops)) if tops[i] != tops[i - 1]]
    # the first top 3 is kept until all of it is passed over (position 3: 3 expected looks in 9 searches),
    # each later one for TURNOVER searches; each time fresh items replace the ones passed over
    assert changed_at == [PASSED_SEARCHES, PASSED_SEARCHES + TURNOVER, PASSED_SEARCHES + 2 * TURNOVER]
    for before, after in zip([0, *changed_at], changed_at, strict=False):
        assert not set(tops[before]) & set(tops[after])
    shop.close()


def test_an_answered_query_repeated_without_feedback_never_turns_its_top_3_over(shop: Engine, tmp_path: Path) -> None:
    shop = _reopened(shop, tmp_path, ExploreSettings(budget=1.0))
    text = "comfortable walking shoes"
    for _ in range(15):  # 15 actions in 15 searches: answered, and still after 41 more (15 >= 0.25 x 56)
        result = shop.search(text, mode="learned", k=10, log=True, user="u1")
        assert result.query_id is not None
        shop.feedback(result.query_id, result.hits.ids[0], "click", position=1)
    tops = []
    for _ in range(2 * TURNOVER + 1):
        result = shop.search(text, mode="learned", k=10, log=True, user="u1")
        tops.append(tuple(result.hits.ids[:3].tolist()))
    assert len(set(tops)) == 1
    shop.close()


def test_typo_tolerance_never_reads_a_correctly_spelled_word_as_another(tmp_path: Path) -> None:
    eng = Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact")
    eng.add([Item.create(f"b{i}", title=f"novel {i}", attributes={"category": "books"}) for i in range(5)])
    eng.add([Item.create(f"t{i}", title=f"travel mug {i}", attributes={"category": "mugs"}) for i in range(5)])
    understanding = QueryUnderstanding(eng)
    assert understanding.understand("books").slots == {"category": ["books"]}
    assert understanding.understand("boots").slots == {}  # an English word, one edit from "books"
    assert understanding.understand("bokos").slots == {"category": ["books"]}  # a typo is still tolerated
    assert understanding.understand("travle mugs").slots == {"category": ["mugs"]}
    eng.close()


def test_a_word_of_the_catalog_is_not_read_as_another_either(tmp_path: Path) -> None:
    eng = Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact")
    eng.add([Item.create(f"b{i}", title=f"hand crafted item {i}", attributes={"brand": "zorbax"}) for i in range(5)])
    eng.add([Item.create("z", title="zorbix limited edition")])  # "zorbix": a word of this catalog
    understanding = QueryUnderstanding(eng)
    assert understanding.understand("zorbix").slots == {}
    assert understanding.understand("zorbaxx").slots == {"brand": ["zorbax"]}
    eng.close()


# -- scores ------------------------------------------------------------------------------------------
def test_isotonic_fit_is_non_increasing_and_keeps_the_mean() -> None:
    values = [0.9, 0.5, 0.7, 0.0, 0.6, 0.2]
    fitted = non_increasing(values)
    assert np.all(np.diff(fitted) <= 1e-12) and fitted.sum() == pytest.approx(sum(values))
    assert non_increasing([1.0, 0.5, 0.2]).tolist() == [1.0, 0.5, 0.2]  # already in order: unchanged


@pytest.mark.parametrize(
    ("fusion", "total", "expected"),
    [("convex-minmax", 2.0, 1.0), ("convex-minmax", 0.5, 0.25), ("rrf", 2 / 61, 1.0), ("convex-zscore", 0.0, 0.5)],
)
def test_relevance_is_the_fused_score_over_the_best_possible(fusion: str, total: float, expected: float) -> None:
    assert relevance(fusion, total, {"lexical": 1.0, "dense:text": 1.0}) == pytest.approx(expected)


@pytest.mark.parametrize("mode", ["learned", "uniform"])
def test_default_mode_scores_are_in_0_1_follow_the_order_and_explain_keeps_raw_scores(shop: Engine, mode: str) -> None:
    for text in ["red leather boots", "comfortable product", "blue canvas sneakers model 7"]:
        result = shop.search(text, mode=mode, k=10, explain=True)
        scores = result.hits.scores.astype(float)
        assert len(scores) == 10 and np.all((scores >= 0) & (scores <= 1)) and np.all(np.diff(scores) <= 1e-9)
        assert scores[0] > 0 and (mode == "uniform" or scores[-1] > 0)  # the last hit is not forced to 0
        for score, provenance in zip(scores, result.hits.provenance, strict=True):
            assert score > 0 or names_of(provenance) == ("explore",)  # 0: explored, no relevance evidence
        assert result.explain is not None and "[0, 1]" in result.explain["score"]
        for entry, score, provenance in zip(result.explain["hits"], scores, result.hits.provenance, strict=True):
            assert entry["score"] == pytest.approx(score, abs=1e-6)
            assert set(entry["sources"]) == set(names_of(provenance))
            assert all("score" in raw and "rank" in raw for raw in entry["sources"].values())
    raw = pipeline(shop).strategies["lexical"].retrieve(Query(text="red leather boots"), 10)
    assert float(raw.scores[0]) > 1  # the raw BM25F score, kept in explain, is on its own scale
    shop.close()


def test_the_cli_shows_sets_and_resets_the_exploration_settings(
    shop: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = shop.path
    shop.close()
    assert main(["--index", str(folder), "ltr", "explore", "set", "--budget", "0.05", "--calls", "logged"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["budget"], shown["calls"], shown["top"]) == (0.05, "logged", 4) and shown["saved"]
    engine = Engine.open(folder)
    assert pipeline(engine).exploration == ExploreSettings(budget=0.05, calls="logged")
    engine.close()
    assert main(["--index", str(folder), "ltr", "explore", "set", "--calls", "everyone"]) == 2
    assert "exploration.calls" in capsys.readouterr().err
    assert main(["--index", str(folder), "ltr", "explore", "reset"]) == 0
    assert json.loads(capsys.readouterr().out)["saved"] is None


def test_placement_stops_at_the_limit_with_the_same_head() -> None:
    ranked = [hit(f"r{i}") for i in range(50)]
    explored = [hit(f"e{i}", "explore", 0.0) for i in range(10)]
    full = place(ranked, explored, top=4, every=2)
    assert place(ranked, explored, top=4, every=2, limit=10) == full[:10]
