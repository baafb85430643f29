"""The learned pipeline builds its strategies from the registry: specs instead of parsed names, dense per
vector kind the index has, structured provenance (old ``"a+b"`` log rows still read), a policy and a ranker
saved under another strategy set still load, and the generative strategy is an arm the bandit can choose."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from xmodal import Engine, Item, Query
from xmodal.encoders import HashingEncoder
from xmodal.errors import ConfigError, ValidationError
from xmodal.ltr.extension import pipeline
from xmodal.ltr.features import FeatureLayout, align
from xmodal.ltr.fusion import FusedHit, to_hits
from xmodal.ltr.pipeline import LTRConfig, Pipeline
from xmodal.ltr.policy import Allocation, Plan, make_policy
from xmodal.ltr.strategies.registry import DEFAULT_STRATEGIES, STRATEGIES, factory_of
from xmodal.provenance import Provenance, from_stored, names_of, to_stored

from .conftest import text_items
from .test_ltr_strategies import products

OLD_ARMS = ["lexical", "structured", "dense:text", "dense:image", "dense:combined", "memory", "explore"]


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Engine]:
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        engine.add(products(60))
        yield engine


def test_a_dense_strategy_is_available_while_its_kind_has_vectors(tmp_path: Path) -> None:
    """The per-query availability check keeps a yes until the engine applies another change: a delete of
    every item makes the dense arm unavailable at once, and the first add makes it available at once."""
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        engine.add(products(4))
        pipe = pipeline(engine)
        query = Query(text="red boots")
        assert "dense:text" in pipe.prepare(query).available
        assert "dense:text" in pipe.prepare(query).available  # the kept answer
        engine.delete([f"p{i}" for i in range(4)])
        assert "dense:text" not in pipe.prepare(query).available
        engine.add(products(2))
        assert "dense:text" in pipe.prepare(query).available


def test_default_strategies_build_in_todays_order_with_specs(shop: Engine) -> None:
    pipe = pipeline(shop)
    assert pipe.strategy_names == DEFAULT_STRATEGIES
    kinds = [k for k in ("text", "image", "combined") if shop.vector_count(k) > 0]  # type: ignore[arg-type]
    expected = ["lexical", "structured", *(f"dense:{k}" for k in kinds), "memory", "explore", "generative"]
    assert list(pipe.strategies) == expected and pipe.policy.arms == expected
    assert [s.kind for s in pipe.specs.values() if s.family == "dense"] == kinds
    assert [s.name for s in pipe.specs.values() if s.explores] == ["explore"] and pipe.policy.always == "explore"
    assert pipe.layout == FeatureLayout(tuple(expected), tuple(kinds))
    assert "generative" not in pipe.prepare(Query(text="red boots")).available  # no model trained
    image_only = pipe.prepare(Query(text="red boots", target="image")).available
    assert not any(pipe.specs[a].family == "dense" and pipe.specs[a].kind != "image" for a in image_only)


def test_every_built_in_is_registered_and_in_pyproject() -> None:
    names = {"lexical", "structured", "dense", "memory", "explore", "generative"}
    assert names <= set(STRATEGIES.names())
    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    section = pyproject.split('[project.entry-points."xmodal.strategies"]')[1].split("\n[")[0]
    for name in names:
        assert f"{name} = " in section
        reference = section.split(f"{name} = ")[1].split("\n")[0].strip().strip('"')
        module, _, attr = reference.partition(":")
        assert hasattr(__import__(module, fromlist=[attr]), attr)
    with pytest.raises(ConfigError, match="'nope'.*available:.*xmodal ltr strategies remove nope"):
        factory_of("nope")


def test_a_dense_strategy_joins_when_its_kind_gets_vectors(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        pipe = pipeline(engine)
        assert not any(s.family == "dense" for s in pipe.specs.values())  # an empty index has no vectors
        engine.add(text_items(12))
        dense = [s.name for s in pipe.specs.values() if s.family == "dense"]
        assert "dense:text" in dense and set(dense) <= set(pipe.policy.arms)
        assert pipe.policy.arms[: len(pipe.strategies)] == list(pipe.strategies)  # the configured order
        result = engine.search(Query(text="item 3 red", k=5, mode="learned"), explain=True)
        assert len(result.hits) == 5


def test_provenance_is_structured_and_old_log_rows_still_read() -> None:
    hit = FusedHit("x", 1.0, {"memory": (1, 0.9), "lexical": (2, 3.0)})
    prov = to_hits([hit], 1).provenance[0]
    assert isinstance(prov, Provenance) and prov.names == ("memory", "lexical") and prov == "memory+lexical"
    assert to_stored(prov) == '["memory", "lexical"]' and from_stored(to_stored(prov)) == prov
    assert names_of(from_stored('["memory", "lexical"]')) == ("memory", "lexical")
    assert names_of(from_stored("lexical+dense:text")) == ("lexical", "dense:text")  # written before
    assert names_of(from_stored("dense:text")) == ("dense:text",) and from_stored("") == ""
    assert names_of("similar:dense:image") == ("similar:dense:image",) and names_of("") == ()
    with pytest.raises(ValueError, match="non-empty"):
        Provenance([])


def test_a_click_on_an_old_a_plus_b_row_credits_both_arms(shop: Engine) -> None:
    pipe = pipeline(shop)
    result = shop.search("red leather boots", mode="learned", k=5, log=True)
    assert result.query_id is not None
    db = sqlite3.connect(shop.path / "store.sqlite")
    with db:  # the row as an older release wrote it
        db.execute(
            "UPDATE feedback_hits SET provenance = 'lexical+structured' WHERE query_id = ? AND position = 1",
            (result.query_id,),
        )
    db.close()
    assert shop.feedback_log.impression(result.query_id).provenance[0].names == ("lexical", "structured")
    before = pipe.policy.b_.copy()
    pipe._pending.pop(result.query_id)  # re-observe the impression as the log now reads it
    pipe.on_impression(shop.feedback_log.impression(result.query_id))
    shop.feedback(result.query_id, result.hits.ids[0], "click")
    changed = {arm for a, arm in enumerate(pipe.policy.arms) if not np.allclose(before[a], pipe.policy.b_[a])}
    assert changed == {"lexical", "structured"}


def test_the_policy_keeps_arms_by_name() -> None:
    policy = make_policy("linucb", ["a", "b"], 3, budget=20, seed=1)
    x = np.array([1.0, 0.5, 0.0])
    policy.update(x, "b", 1.0)
    grown = policy.with_arms(["c", "b", "a"])
    assert grown.arms == ["c", "b", "a"] and np.allclose(grown.b_[1], policy.b_[1])
    assert np.allclose(grown.A_[0], np.eye(3)) and grown.counts_.tolist() == [0, 1, 0]
    assert np.allclose(grown.indices(x)[1:], policy.indices(x)[::-1])
    with pytest.raises(ValidationError):
        policy.with_arms(["a", "a"])


def test_a_policy_and_ranker_saved_under_the_old_fixed_arms_still_load(shop: Engine, tmp_path: Path) -> None:
    pytest.importorskip("lightgbm")
    from xmodal.ltr.ranker import LambdaRanker

    folder = tmp_path / "old-ltr"
    old = make_policy("linucb", OLD_ARMS, pipeline(shop).policy.dim, budget=100, seed=0)
    old.update(np.ones(old.dim), "memory", 1.0)
    old.save(folder / "policy")
    old_layout = FeatureLayout(tuple(OLD_ARMS), ("text", "image", "combined"))
    rng = np.random.default_rng(0)
    X = rng.random((40, len(old_layout.names)))
    LambdaRanker(n_estimators=5).fit(X, rng.integers(0, 2, 40), [10] * 4, feature_names=old_layout.names).save(
        folder / "ranker.txt"
    )
    pipe = Pipeline(shop, feedback=shop.feedback_log, folder=folder)
    assert set(OLD_ARMS) <= set(pipe.policy.arms) and "generative" in pipe.policy.arms
    memory = pipe.policy.arms.index("memory")
    assert np.allclose(pipe.policy.b_[memory], old.b_[OLD_ARMS.index("memory")])  # learned state kept
    assert pipe.ranker is not None and pipe.ranker.feature_names_ == list(old_layout.names)
    hits, details = pipe.search(Query(text="red boots", k=5), shop.encode_query(Query(text="red boots")))
    assert len(hits) == 5 and details["ranker"].startswith("lambdarank")
    assert set(details["hits"][0]["features"]) == set(pipe.features)


def test_align_maps_columns_by_name() -> None:
    X = np.array([[1.0, 2.0, 3.0]])
    assert align(X, ["a", "b", "c"], ["c", "x", "a"]).tolist() == [[3.0, 0.0, 1.0]]
    assert align(X, ["a", "b", "c"], ["a", "b", "c"]) is X


def test_config_strategies_are_checked_and_a_failing_strategy_leaves_the_query(shop: Engine, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="strategies"):
        LTRConfig(strategies=("lexical", "lexical"))
    pipe = Pipeline(shop, LTRConfig(strategies=("lexical", "dense")), folder=tmp_path / "ltr")
    assert [s.family for s in pipe.specs.values()] == ["lexical", *["dense"] * (len(pipe.specs) - 1)]
    assert pipe.policy.always is None  # no exploring strategy configured: no floor
    hits, details = pipe.search(Query(text="red boots", k=5), None)
    assert len(hits) == 5 and {a["strategy"] for a in details["plan"]} <= set(pipe.strategies)
    with pytest.raises(ConfigError, match="not one of this index's learned strategies"):
        pipe.single("memory", Query(text="red boots"), None)
    pipe.set_strategies(["lexical", "generative"])  # generative without the genret extension's model
    plan = Plan((Allocation("generative", 5, 1.0), Allocation("lexical", 5, 1.0)), 10, {})
    hits, _ = pipe.search(Query(text="red boots", k=5), None, plan=plan)
    assert len(hits) == 5 and all(p.names == ("lexical",) for p in hits.provenance)  # type: ignore[attr-defined]
    assert json.loads((tmp_path / "ltr" / "strategies.json").read_text())["strategies"] == ["lexical", "generative"]


def test_generative_is_an_arm_the_bandit_can_choose_once_a_model_is_trained(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from xmodal.genret.build import train_engine

    from .test_genret_engine import TINY

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
            items = text_items(48)
            engine.add(items)
            pipe = pipeline(engine)
            query = Query(text=items[3].document_text, k=5)
            assert "generative" in pipe.policy.arms and "generative" not in pipe.prepare(query).available
            train_engine(engine, config=TINY, progress=False)
            prepared = pipe.prepare(query)
            assert "generative" in prepared.available  # the bandit may now choose it
            plan = pipe.policy.select(prepared.x, ["generative"], explore=False)
            assert [a.strategy for a in plan.allocations] == ["generative"]
            hits, details = pipe.search(query, engine.encode_query(query), plan=plan)
            assert len(hits) >= 1 and all(names_of(p) == ("generative",) for p in hits.provenance)
            assert details["strategies"]["generative"]["returned"] >= 1
            result = engine.search(query, mode="learned", explain=True)  # and through the engine
            assert "generative" in result.explain["policy"]["indices"]  # type: ignore[index]
        with Engine.open(tmp_path / "idx") as engine:  # reopened: still an arm, still available
            assert "generative" in pipeline(engine).prepare(query).available
    finally:
        torch.set_num_threads(threads)


def test_items_with_images_get_an_image_dense_arm(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    from PIL import Image

    path = tmp_path / "red.png"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(path)
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        engine.add([Item.create("p", title="red square", image=str(path)), Item.create("q", title="blue thing")])
        pipe = pipeline(engine)
        kinds = {s.kind for s in pipe.specs.values() if s.family == "dense"}
        assert {"image", "text"} <= kinds and all(f"cos:{k}" in pipe.features for k in kinds)


def test_a_source_that_builds_no_strategy_is_refused(shop: Engine, tmp_path: Path) -> None:
    from xmodal.ltr.strategies.registry import Built, FunctionFactory, StrategySpec

    STRATEGIES.register("junk", FunctionFactory(lambda ctx: [Built(StrategySpec("junk", "junk"), object())]))  # type: ignore[arg-type]
    try:
        with pytest.raises(ConfigError, match="'junk'.*does not implement the Strategy protocol"):
            Pipeline(shop, LTRConfig(strategies=("lexical", "junk")), folder=tmp_path / "ltr")
        with pytest.raises(ConfigError, match="two strategies are called 'lexical'"):
            STRATEGIES.register("again", "xmodal.ltr.strategies.registry:LEXICAL")
            Pipeline(shop, LTRConfig(strategies=("lexical", "again")), folder=tmp_path / "ltr")
    finally:
        STRATEGIES.unregister("junk")
        STRATEGIES.unregister("again")


def test_feedback_show_lists_each_hits_sources(shop: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    from xmodal.cli import main

    result = shop.search("red leather boots", mode="learned", k=3, log=True)
    assert result.query_id is not None
    shop.close()
    assert main(["--index", str(shop.path), "feedback", "show", result.query_id]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["sources"] == [list(names_of(p)) for p in result.hits.provenance]
    assert shown["provenance"] == [str(p) for p in result.hits.provenance]
