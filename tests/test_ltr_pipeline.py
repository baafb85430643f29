"""The learned search mode end to end: plan, explain, online learning, ranker fallback, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xmodal import Engine
from xmodal.encoders import HashingEncoder
from xmodal.ltr import explore_config
from xmodal.ltr.exploration import ExploreSettings
from xmodal.ltr.extension import pipeline
from xmodal.ltr.train import train_ranker
from xmodal.provenance import names_of

from .test_ltr_strategies import products


@pytest.fixture
def shop(tmp_path: Path) -> Engine:
    explore_config.save(tmp_path / "idx" / "ltr", ExploreSettings(budget=1.0))  # every eligible search may explore
    eng = Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact")
    eng.add(products(80))
    return eng


@pytest.mark.parametrize("mode", ["learned", "uniform", "lexical", "structured", "memory", "explore"])
def test_every_ltr_mode_searches_and_explains(shop: Engine, mode: str) -> None:
    result = shop.search("red leather boots", mode=mode, k=5, explain=True)
    assert 0 < len(result.hits) <= 5 and result.explain is not None
    assert result.explain["mode"] == mode and "context" in result.explain
    assert result.to_dict()["explain"]["plan"]
    shop.close()


def test_learned_explain_shows_plan_contributions_and_fallback(shop: Engine) -> None:
    result = shop.search("red leather boots", mode="learned", k=5, explain=True, log=True)
    ex = result.explain
    assert ex is not None and result.query_id is not None
    assert sum(a["depth"] for a in ex["plan"]) <= ex["budget"]
    assert ex["context"]["slots"] == {"color": ["red"], "material": ["leather"], "category": ["boots"]}
    assert set(ex["strategies"]) >= {a["strategy"] for a in ex["plan"]}
    assert ex["ranker"].startswith("no ranker") and all("sources" in h for h in ex["hits"])
    shop.close()


def test_learned_fusion_weighs_each_run_by_its_commitment_and_uniform_does_not(shop: Engine) -> None:
    ex = shop.search("red leather boots", mode="learned", k=5, explain=True).explain
    assert ex is not None
    planned = {a["strategy"]: a["weight"] for a in ex["plan"]}
    weights = ex["weights"]
    assert weights and all(0.0 <= w <= planned.get(name, 0.5) + 1e-6 for name, w in weights.items())
    # the most committed run keeps its planned weight, the others are scaled down by their NQC's ratio to it
    assert any(w == pytest.approx(planned.get(name, 0.5), abs=1e-6) for name, w in weights.items())
    assert any(w < planned.get(name, 0.5) - 1e-3 for name, w in weights.items())  # the query's runs differ
    uniform = shop.search("red leather boots", mode="uniform", k=5, explain=True).explain
    assert uniform is not None and set(uniform["weights"].values()) == {1.0}
    shop.close()


def test_feedback_credits_the_strategies_that_supplied_the_item(shop: Engine) -> None:
    pipe = pipeline(shop)
    before = pipe.policy.b_.copy()
    result = shop.search("red leather boots", mode="learned", k=5, log=True)
    assert result.query_id is not None
    supplier = names_of(result.hits.provenance[0])
    shop.feedback(result.query_id, result.hits.ids[0], "click")
    changed = {arm for a, arm in enumerate(pipe.policy.arms) if not np.allclose(before[a], pipe.policy.b_[a])}
    assert changed == {arm for arm in supplier if arm in pipe.policy.arms}
    shop.close()


def test_ranker_trained_from_the_log_is_used_and_a_broken_one_falls_back(tmp_path: Path) -> None:
    eng = Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact")
    eng.add(products(80))
    rng = np.random.default_rng(0)
    for text in ["red boots", "leather bags", "blue canvas sneakers", "green sandals", "black suede boots"] * 3:
        r = eng.search(text, mode="learned", k=8, log=True)
        assert r.query_id is not None
        eng.feedback(r.query_id, r.hits.ids[int(rng.integers(len(r.hits)))], "click")
    summary = train_ranker(eng, n_estimators=20)
    assert summary["impressions_used"] >= 2 and Path(summary["model"]).read_text().startswith("tree")
    ex = eng.search("red boots", mode="learned", k=5, explain=True).explain
    assert ex is not None and ex["ranker"].startswith("lambdarank") and "features" in ex["hits"][0]
    eng.close()
    (tmp_path / "idx" / "ltr" / "ranker.txt").write_text("not a model")
    eng = Engine.open(tmp_path / "idx")
    ex = eng.search("red boots", mode="learned", k=5, explain=True).explain
    assert ex is not None and "ranker unusable" in ex["ranker"] and "fused order" in ex["ranker"]
    eng.close()


def test_policy_state_survives_a_reopen(tmp_path: Path) -> None:
    eng = Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact")
    eng.add(products(40))
    r = eng.search("red boots", mode="learned", k=5, log=True)
    assert r.query_id is not None
    eng.feedback(r.query_id, r.hits.ids[0])
    b = pipeline(eng).policy.b_.copy()
    eng.close()
    eng = Engine.open(tmp_path / "idx")
    assert np.allclose(pipeline(eng).policy.b_, b) and b.any()
    eng.close()


def test_an_unknown_exploration_mode_names_the_field() -> None:
    from xmodal import ValidationError
    from xmodal.ltr.pipeline import LTRConfig

    with pytest.raises(ValidationError, match="explore"):
        LTRConfig(explore="sometimes")


def test_an_item_acted_on_for_a_query_stays_in_that_querys_plan(shop: Engine) -> None:
    first = shop.search("comfortable shoes for walking", mode="learned", k=10, log=True, explain=True)
    assert first.query_id is not None and first.explain is not None
    assert "memory" not in {a["strategy"] for a in first.explain["plan"]}  # no evidence yet
    chosen = first.hits.ids[-1]
    shop.feedback(first.query_id, chosen, "click", position=len(first.hits))
    again = shop.search("comfortable shoes for walking", mode="learned", k=10, log=True, explain=True)
    assert again.explain is not None and "memory" in {a["strategy"] for a in again.explain["plan"]}
    assert chosen in again.hits.ids.tolist()
    shop.close()


def test_a_query_whose_searches_keep_failing_is_led_by_exploration_below_its_top(shop: Engine) -> None:
    text = "boots"  # an attribute slot: exploration draws boots (20 of them), not the whole catalog
    first = shop.search(text, mode="learned", k=10, log=True, explain=True, user="u1")
    assert first.explain is not None
    assert "explore" not in {a["strategy"] for a in first.explain["plan"]}  # a new query gets the precise plan
    again = shop.search(text, mode="learned", k=10, log=True, explain=True, user="u1")  # never acted on
    assert again.explain is not None and again.explain["context"]["searches"] == 1
    plan = again.explain["plan"]
    # exploration leads the plan, beside the relevance strategies that keep the top positions
    assert (plan[0]["strategy"], plan[0]["weight"]) == ("explore", 1.0) and len(plan) > 1
    assert sum(a["depth"] for a in plan) <= again.explain["budget"]
    assert again.hits.ids[:3].tolist() == first.hits.ids[:3].tolist()  # no new feedback: the same top 3
    assert all("explore" in names_of(p) for p in again.hits.provenance[3:])  # leading: every position from 4
    assert set(again.hits.ids.tolist()) - set(first.hits.ids.tolist())  # it shows items the first search did not
    shop.close()


def test_a_failing_query_keeps_a_credible_answer_beside_exploration(shop: Engine) -> None:
    text = "boots"
    for _ in range(5):  # five searches, nothing acted on: exploration leads the plan
        result = shop.search(text, mode="learned", k=10, log=True, explain=True, user="u1")
    assert result.query_id is not None and result.explain is not None
    assert result.explain["plan"][0]["strategy"] == "explore"
    assert "memory" not in {a["strategy"] for a in result.explain["plan"]}
    chosen = result.hits.ids[4]
    assert "explore" in names_of(result.hits.provenance[4]) and chosen not in result.hits.ids[:3]
    shop.feedback(result.query_id, chosen, "click", position=5)  # an explored item is acted on
    result = shop.search(text, mode="learned", k=10, log=True, explain=True, user="u1")
    assert result.explain is not None
    ctx = result.explain["context"]
    assert ctx["searches"] == 5 and ctx["actions"] == 1.0 and ctx["answer_rate"] >= 0.25  # still failing
    plan = result.explain["plan"]
    assert plan[0]["strategy"] == "explore" and "memory" in {a["strategy"] for a in plan}
    assert sum(a["depth"] for a in plan) <= result.explain["budget"]
    assert result.hits.ids[0] == chosen  # new feedback: the answer users found leads, exploration fills below
    shop.close()


def test_a_stray_click_is_not_kept_beside_exploration(shop: Engine) -> None:
    text = "boots"
    first = shop.search(text, mode="learned", k=10, log=True, explain=True, user="u1")
    assert first.query_id is not None
    stray = first.hits.ids[0]
    shop.feedback(first.query_id, stray, "click", position=1)
    tops = set()
    for _ in range(7):  # shown again and again, never acted on again
        result = shop.search(text, mode="learned", k=10, log=True, explain=True, user="u1")
        tops.add(tuple(result.hits.ids[:3].tolist()))
    assert len(tops) == 1  # no new feedback: the same top 3
    shop.add(products(81)[-1:])  # the catalog changes: the query is planned again
    result = shop.search(text, mode="learned", k=10, log=True, explain=True, user="u1")
    assert result.explain is not None
    ctx = result.explain["context"]
    assert ctx["searches"] == 8 and ctx["actions"] == 1.0 and ctx["answer_rate"] < 0.25
    assert "memory" not in {a["strategy"] for a in result.explain["plan"]}  # one click in 8 showings: no answer
    assert result.explain["plan"][0]["strategy"] == "explore"
    shop.close()


def test_exploration_without_slots_stays_the_floor_of_a_failing_query(shop: Engine) -> None:
    text = "comfortable shoes for walking"  # no attribute slot: exploration's pool is the whole catalog
    for _ in range(3):
        result = shop.search(text, mode="learned", k=10, log=True, explain=True, user="u1")
    assert result.explain is not None and result.explain["context"]["searches"] == 2
    plan = result.explain["plan"]
    assert plan[0]["strategy"] != "explore"
    assert [a["weight"] for a in plan if a["strategy"] == "explore"] == [0.9]  # the floor
    explored = [i + 1 for i, p in enumerate(result.hits.provenance) if names_of(p) == ("explore",)]
    assert explored and set(explored) <= {4, 6, 8, 10}  # every second position from 4
    shop.close()


def _picture_shop(folder: Path) -> Engine:
    """Image+text items (coloured squares) and text-only ones: the catalog holds text, image and combined vectors."""
    from PIL import Image

    from xmodal import Item

    (folder / "img").mkdir(parents=True)
    items = []
    for n, (name, rgb) in enumerate({"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220)}.items()):
        Image.new("RGB", (24, 24), rgb).save(folder / "img" / f"{name}.png")
        items.append(
            Item.create(f"sq-{name}", title=f"{name} square picture", image=str(folder / "img" / f"{name}.png"))
        )
        items.append(Item.create(f"w{n}", title=f"word {n}", text=f"a square picture is described here, number {n}"))
    eng = Engine.open(folder / "idx", encoder=HashingEncoder(), index="exact")
    eng.add(items)
    return eng


def test_with_views_the_day_zero_plan_holds_the_dense_run_of_every_vector_kind(tmp_path: Path) -> None:
    from xmodal import Query
    from xmodal.ltr.pipeline import LTRConfig, Pipeline

    eng = _picture_shop(tmp_path)
    query = Query(text="square picture", k=4)
    vector = eng.encode_query(query)
    plain = Pipeline(eng, folder=tmp_path / "plain")
    assert {"dense:text", "dense:image", "dense:combined"} <= set(plain.prepare(query).available)
    # no feedback: every index ties, and max_arms=2 keeps the first two in registry order
    assert [a.strategy for a in plain.plan(plain.prepare(query)).allocations] == ["lexical", "dense:text"]
    views = Pipeline(eng, LTRConfig(views=True), folder=tmp_path / "views")
    plan = views.plan(views.prepare(query))
    assert [a.strategy for a in plan.allocations] == ["lexical", "dense:text", "dense:image", "dense:combined"]
    assert plan.total <= plan.budget
    hits, details = views.search(query, vector)
    assert {"dense:image", "dense:combined"} <= set(details["strategies"]) and len(hits) == 4
    # the dense views count once, by an item's best: the best possible fused score is lexical's weight plus the
    # largest view's, and each hit's relevance is its fused score over that (over the sum it would be lower)
    weights = details["weights"]
    best = weights.get("lexical", 0.0) + max(w for n, w in weights.items() if n.startswith("dense:"))
    assert len([n for n in weights if n.startswith("dense:")]) == 3 and best < sum(weights.values())
    for hit in details["hits"]:
        assert hit["fused"] <= best + 1e-6
        assert hit["relevance"] == pytest.approx(min(hit["fused"] / best, 1.0), abs=1e-5)
    scores = hits.scores.tolist()
    assert all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)
    eng.close()


def test_the_self_tuned_fusion_weighs_the_text_view_of_dense_search_unless_views(tmp_path: Path) -> None:
    from xmodal.ltr.pipeline import LTRConfig, Pipeline
    from xmodal.ltr.selftune import tuned_arms

    eng = _picture_shop(tmp_path)
    plain = Pipeline(eng, folder=tmp_path / "plain")
    # the pseudo-queries are text: of the dense views, the one the untuned plan gives a text query
    assert tuned_arms(plain) == ("lexical", "structured", "dense:text", "memory")
    views = Pipeline(eng, LTRConfig(views=True), folder=tmp_path / "views")
    assert set(tuned_arms(views)) == {"lexical", "structured", "dense:text", "dense:image", "dense:combined", "memory"}
    eng.close()


def test_on_day_zero_an_image_query_is_compared_with_the_items_image_vectors(tmp_path: Path) -> None:
    from xmodal import Query
    from xmodal.ltr.pipeline import Pipeline, query_kind

    eng = _picture_shop(tmp_path)
    pipe = Pipeline(eng, folder=tmp_path / "ltr")
    image = Query(image=str(tmp_path / "img" / "blue.png"), k=3)
    assert query_kind(image) == "image" and query_kind(Query(text="square", image=image.image)) == "text"
    assert {"dense:text", "dense:image"} <= set(pipe.prepare(image).available)
    # no feedback: the policy cannot tell the dense views apart, so the image's own view, not registry order's
    # first two (dense:text, dense:image: the image's vector against the items' text vectors as well)
    plan = pipe.plan(pipe.prepare(image))
    assert [a.strategy for a in plan.allocations] == ["dense:image"] and plan.total == plan.budget
    hits, _ = pipe.search(image, eng.encode_query(image))
    assert hits.ids[0] == "sq-blue"
    text = Query(text="square picture", k=3)
    assert [a.strategy for a in pipe.plan(pipe.prepare(text)).allocations] == ["lexical", "dense:text"]
    # once feedback tells the views apart, the policy's choice stands
    x = pipe.prepare(image).x
    for _ in range(30):
        pipe.policy.update(x, "dense:text", 1.0)
        pipe.policy.update(x, "dense:image", 0.0)
    names = [a.strategy for a in pipe.plan(pipe.prepare(image)).allocations]
    assert names[0] == "dense:text"
    eng.close()
