"""Self-tuning from pseudo-queries: the queries made from items, the fast gains, the fitted model end to end."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xmodal import Engine, Item
from xmodal.cli import main
from xmodal.encoders import HashingEncoder
from xmodal.errors import ConfigError
from xmodal.ltr import autotune, selftune
from xmodal.ltr.extension import autotuner, deferred_tuning, pipeline
from xmodal.ltr.fusion import fuse
from xmodal.ltr.pipeline import Pipeline
from xmodal.ltr.pseudo import KINDS, CatalogWords, PseudoQuery, pseudo_queries
from xmodal.ltr.selftune import all_gains, tune, weight_matrix
from xmodal.ltr.simulate import WORDNET, wordnet_catalog
from xmodal.ltr.strategies import base
from xmodal.ltr.tuned import (
    HANDOVER,
    NO_MODEL,
    TunedFusion,
    Untunable,
    configurations,
    describe,
    features,
    fitted_on,
    gain,
    pick,
    tuned_depths,
)
from xmodal.records import Hits, Query
from xmodal.store.fulltext import FullText
from xmodal.store.termstats import TermStats

from .test_ltr_strategies import products

needs_wordnet = pytest.mark.skipif(not WORDNET.exists(), reason="Debian wordnet-base is not installed")


def test_pseudo_queries_of_every_kind_are_made_from_the_item_and_judged_by_it() -> None:
    items = [
        Item.create(
            "a",
            title="red kettle",
            text="a kettle of steel for boiling water on a stove",
            attributes={"room": "kitchen"},
        ),
        Item.create(
            "b", title="blue kettle", text="an electric kettle that boils water fast", attributes={"room": "kitchen"}
        ),
        Item.create("c", title="x", text=""),
    ]
    similar = {"steel": "iron", "boiling": "heating", "water": "liquid", "stove": "oven", "kettle": "pot"}.get
    queries = pseudo_queries(items, seed=3, similar=similar)
    assert pseudo_queries(items, seed=3, similar=similar) == queries  # seeded, stable
    made = {(q.item, q.kind): q for q in queries}
    assert {k for (i, k) in made if i == "a"} == set(KINDS)
    assert made[("a", "paraphrase")].text == "iron heating liquid oven"  # other words, none of the title's
    assert "paraphrase" not in {q.kind for q in pseudo_queries(items, seed=3)}  # only with a similarity
    assert made[("a", "name")].text == "red kettle"
    typo = made[("a", "misspelled")].text
    assert typo != "red kettle" and typo.startswith("red ") and abs(len(typo) - len("red kettle")) <= 1
    assert "kettle" not in made[("a", "description")].text.split()  # the thing described, not named
    assert made[("a", "fragment")].text in "a kettle of steel for boiling water on a stove"
    water = made[("a", "attribute")]
    assert water.text.startswith("kitchen ") and water.relevant[0] == "a"
    if water.text == "kitchen water":  # both kettles hold the value and the word: both answer it
        assert set(water.relevant) == {"a", "b"}
    assert not any(q.item == "c" and q.kind != "name" for q in queries)  # no text, no queries of it
    kitchen = made[("a", "category")]  # made once, from the first item in it, and judged by both
    assert (kitchen.text, kitchen.relevant) == ("kitchen", ("a", "b")) and ("b", "category") not in made


def test_a_category_query_names_a_hierarchical_value_by_its_last_level_and_leaves_out_kinds_of_item() -> None:
    items = [
        Item.create(f"i{n}", title=f"thing {n}", attributes={"folder": "signs_and_symbols/flags", "pos": "noun"})
        for n in range(2)
    ] + [Item.create(f"j{n}", title=f"other {n}", attributes={"pos": "noun"}) for n in range(40)]
    made = [q for q in pseudo_queries(items, seed=1) if q.kind == "category"]
    assert [(q.text, q.relevant) for q in made] == [("flags", ("i0", "i1"))]  # not "noun": 42 of 42 items hold it


@needs_wordnet
def test_catalog_words_of_the_sampled_items_judge_their_attribute_queries_as_all_words_do() -> None:
    items = wordnet_catalog(300, seed=4)
    chosen = items[::7]
    full, few = CatalogWords(items), CatalogWords(items, wanted=chosen)
    assert few.frequency == full.frequency
    made = [few.attribute(item, 5) for item in chosen]
    assert made == [full.attribute(item, 5) for item in chosen]
    assert sum(q is not None and len(q.relevant) > 1 for q in made) > 3  # judged by other items too
    assert pseudo_queries(chosen, 5, catalog=few) == pseudo_queries(chosen, 5, catalog=full)


def _random_runs(rng: np.random.Generator) -> dict[str, Hits]:
    runs = {}
    for name in ("dense", "lexical", "memory"):
        n = int(rng.integers(0, 30))
        ids = [f"i{j}" for j in rng.choice(40, size=n, replace=False)]
        scores = np.sort(rng.random(n) * (5 if name == "lexical" else 1))[::-1]
        runs[name] = Hits.of(ids, scores.tolist())
    return runs


@pytest.mark.parametrize("fusion", ["convex-minmax", "convex-zscore", "rrf"])
def test_all_gains_equals_fusing_each_configuration(fusion: str) -> None:
    rng = np.random.default_rng(7)
    configs = configurations(("dense", "lexical", "memory"))
    for _ in range(25):
        runs = _random_runs(rng)
        relevant = [f"i{j}" for j in rng.choice(40, size=int(rng.integers(1, 4)), replace=False)]
        expected = [gain(fuse(fusion, {n: runs[n] for n in c.apply(runs)}, c.apply(runs)), relevant) for c in configs]
        np.testing.assert_allclose(all_gains(fusion, runs, configs, relevant), expected, atol=1e-9)


def test_the_weight_matrix_is_what_each_configuration_applies() -> None:
    rng = np.random.default_rng(11)
    configs = configurations(("dense", "lexical", "memory"))
    for _ in range(60):
        runs = _random_runs(rng)
        if rng.random() < 0.3:  # a run scoring below 0 in its head: no NQC scaling for the configurations keeping it
            name = str(rng.choice(list(runs)))
            runs[name] = Hits.of(list(runs[name].ids), (np.asarray(runs[name].scores) - 0.5).tolist())
        names = sorted(runs)
        W = weight_matrix(names, runs, configs)
        for j, config in enumerate(configs):
            applied = config.apply(runs)
            assert [W[i, j] for i in range(len(names))] == [applied.get(n, 0.0) for n in names]  # exactly


def _observed_one_by_one(pipe: Pipeline, queries: list[PseudoQuery], arms: tuple[str, ...]) -> list[selftune._Observed]:
    """What a fit learns from each pseudo-query, the plain way: one query at a time, each strategy run alone
    (:meth:`Pipeline.run`), every configuration fused by :func:`fuse` and judged by :func:`gain`."""
    configs = configurations(arms)
    out = []
    for q in queries:
        query = Query(text=q.text, k=10)
        vector = pipe.engine.encode_query(query)
        prepared = pipe.prepare(query, vector=vector)
        plan = pipe.untuned_plan(prepared)
        usable = [a for a in arms if a in prepared.available]
        deepest = max([pipe.config.budget, *(a.depth for a in plan.allocations)])
        full = {a: pipe.run(a, query, deepest, vector) for a in {*usable, *plan.depths()} if a in arms}
        default = pipe.candidates(prepared, plan, vector, cached=full).fused
        runs = {
            a: full[a].take(range(min(d, len(full[a])))) for a, d in tuned_depths(usable, pipe.config.budget).items()
        }
        gains = [
            gain(fuse(pipe.config.fusion, {n: runs[n] for n in w}, w), q.relevant)
            for w in (c.apply(runs) for c in configs)
        ]
        supplied = {a: float(bool(set(q.relevant) & set(h.ids[:10].tolist()))) for a, h in full.items()}
        x = features(prepared.x, runs, arms)
        out.append(selftune._Observed(q, x, np.append(gains, gain(default, q.relevant)), prepared.x, supplied))
    return out


@needs_wordnet
def test_the_batched_fit_learns_what_one_query_at_a_time_learns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fit retrieves a batch's runs together (dense search: matrix searches; lexical and structured BM25F:
    on the index's postings in memory, :mod:`xmodal.store.bm25_matrix`) and scores every configuration at once;
    the gains, features and fitted model are those of the plain query-by-query way (BM25F in SQL)."""
    monkeypatch.setattr(selftune, "BATCH", 100)  # several batches
    monkeypatch.setattr(base, "MATRIX_CELLS", 250 * 30)  # matrix searches of 30 queries
    sql = {"runs": 0}  # BM25F queries the index answered in SQL

    def counted(
        self: FullText, query_terms: list[str], depth: int | None, stats: Any = None
    ) -> list[tuple[int, float]]:
        sql["runs"] += 1
        return run_in_sql(self, query_terms, depth, stats)

    run_in_sql = FullText._run
    monkeypatch.setattr(FullText, "_run", counted)
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        engine.add(wordnet_catalog(250, seed=3))
        pipe = pipeline(engine)
        assert base.matrix_rows(engine) == 30
        model = tune(pipe, sample=50, seed=0)
        assert sql["runs"] == 0  # every lexical and structured run of the fit scored on the postings in memory
        assert model is not None and model.report["queries"] > 2 * selftune.BATCH
        everything = [stored.item for stored in engine.iter_items()]
        chosen = selftune.sample_items([i for i in everything if i.parent is None], 50, 0)
        catalog = CatalogWords(everything)
        similar = selftune.word_neighbours(engine, catalog.frequency, chosen)
        assert similar is not None
        queries = pseudo_queries(chosen, 0, KINDS, catalog=catalog, similar=similar)
        arms = model.arms
        with monkeypatch.context() as patched:  # the held postings (xmodal.store.postings) left out: SQL it is
            patched.setattr(TermStats, "scored", lambda *args, **kwargs: None)
            plain = _observed_one_by_one(pipe, queries, arms)
        assert sql["runs"] > len(queries) // 2  # the plain way: BM25F in SQL, query by query
        asked = [Query(text=q.text, k=10) for q in queries]
        sql["runs"] = 0
        batched = selftune._observe_many(pipe, queries, asked, engine.encode_queries(asked), arms, configurations(arms))
        assert batched is not None and sql["runs"] == 0
        assert [o.query for o in batched] == [o.query for o in plain]
        np.testing.assert_allclose(np.stack([o.gains for o in batched]), np.stack([o.gains for o in plain]), atol=1e-6)
        # features to float32's precision: a matrix search's cosines may differ from one vector's in the last bit
        np.testing.assert_allclose(np.stack([o.x for o in batched]), np.stack([o.x for o in plain]), atol=1e-6)
        assert [o.supplied for o in batched] == [o.supplied for o in plain]
        reference = selftune._select(plain, arms, configurations(arms), 0)
        for key in ("anchor", "penalty", "margin", "accepted", "validation"):
            assert model.report[key] == reference.report[key]
        np.testing.assert_allclose(model.coef, reference.coef, atol=1e-5)
        X = (np.stack([o.x for o in plain]) - reference.mean) / reference.scale
        X1 = np.hstack([X, np.ones((len(X), 1))])
        np.testing.assert_array_equal(  # the same configuration chosen for every query
            pick(X1 @ model.coef, model.anchor, model.margin), pick(X1 @ reference.coef, model.anchor, model.margin)
        )


def test_a_catalog_too_small_to_tune_on_keeps_the_untuned_fusion_and_explain_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        engine.add(products(5))
        pipe = pipeline(engine)
        before = [it.id for it in engine.search("red boots", mode="learned", k=5).items]
        with pytest.raises(Untunable, match=r"too small .* from 5 items, 200 needed") as found:
            tune(pipe)
        pipe.set_untunable(found.value)
        assert describe(None, pipe.dir) == {"tuned": False, "reason": found.value.reason, "seq": 5}
        explain = engine.search("red boots", mode="learned", k=5, explain=True).explain
        assert explain is not None and explain["tuning"]["active"] is False
        assert explain["tuning"]["status"].startswith("not self-tuned: the catalog is too small")
        assert [it.id for it in engine.search("red boots", mode="learned", k=5).items] == before  # untuned, as before
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:  # another process
        explain = engine.search("red boots", mode="learned", explain=True).explain
        assert explain is not None and "from 5 items" in explain["tuning"]["status"]
        # the autotuner does not try again after every write, only once the catalog has grown by half
        monkeypatch.setattr(autotune, "MIN_ITEMS", 3)
        tuner = engine.extension("ltr").autotuner
        assert tuner is not None
        tuner.enabled = True
        engine.add(products(7)[5:])
        tuner.wait(timeout=60)
        found = pipeline(engine).untunable
        assert not tuner.due() and found is not None and found.seq == 5  # not tried again
        engine.add(products(8)[7:])  # 8 >= 1.5 x 5: tried again, too small still
        tuner.wait(timeout=60)
        found = pipeline(engine).untunable
        assert found is not None and found.seq == 8 and "from 8 items" in found.reason


@needs_wordnet
def test_tuned_fusion_is_fitted_saved_used_and_handed_over(tmp_path: Path) -> None:
    items = wordnet_catalog(200, seed=1)
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        engine.add(items)
        pipe = pipeline(engine)
        model = tune(pipe, sample=60, seed=0)
        assert model is not None
        report = describe(model, pipe.dir)
        valid = report["validation"]
        assert valid["queries"] > 10 and set(valid["by_kind"]) <= set(KINDS)
        assert report["accepted"] == (valid["tuned"] >= valid["default"])
        policy = pipe.policy.with_arms(pipe.policy.arms)  # a copy with no real search learned from
        model.seed_policy(policy)
        theta = dict(zip(policy.arms, policy.theta(), strict=True))
        assert all(not theta[a].any() for a in policy.arms if a not in model.arms)
        assert any(theta[a].any() for a in model.arms)  # the strategies whose heads held judged items
        before = np.array(pipe.policy.theta())
        for accepted in (True, False):  # the prior seeds the bandit only for a model that is not used
            report = {"accepted": accepted}
            pipe.set_tuned(
                TunedFusion(model.arms, model.configs, model.mean, model.scale, model.coef, report, model.prior)
            )
            assert np.array_equal(np.array(pipe.policy.theta()), before) == accepted
        pipe.set_tuned(model)
        forced = TunedFusion(model.arms, model.configs, model.mean, model.scale, model.coef, {"accepted": True})
        pipe.set_tuned(forced, save=False)
        result = engine.search("a domestic animal", mode="learned", explain=True)
        assert result.explain is not None
        tuning = result.explain["tuning"]
        assert tuning["active"] is True and tuning["chosen"] is not None
        assert set(result.explain["weights"]) <= set(tuning["chosen"]["weights"])
        planned = {p["strategy"] for p in result.explain["plan"]}
        assert planned >= {a for a in model.arms if a in ("dense", "lexical")}  # every available one runs
        # a query for the members of a category that match another word keeps the untuned plan and its rule
        members = next(
            text
            for item in items
            for text in [f"{item.attributes['kind']} {item.text.split()[-1]}"]
            if pipe.prepare(Query(text=text)).understanding.ranks_members()
        )
        chosen = engine.search(members, mode="learned", explain=True).explain["tuning"]["chosen"]
        assert chosen == {"untuned": True}
        # a query of another kind than the pseudo-queries (here: one vector kind only) keeps the untuned plan
        targeted = engine.search(Query(text="a domestic animal", target="text"), explain=True).explain
        assert targeted is not None and targeted["tuning"]["active"] is False and targeted["tuning"]["untuned"]
        assert fitted_on(Query(text="a")) and not fitted_on(Query(image=np.zeros((4, 4, 3), dtype=np.uint8)))
        pipe.policy.counts_[:] = HANDOVER  # the bandit has learned enough from real searches: it plans
        assert engine.search("a domestic animal", mode="learned", explain=True).explain["tuning"]["active"] is False
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:  # saved with the index
        loaded = pipeline(engine).tuned
        assert loaded is not None and loaded.report == model.report
        np.testing.assert_allclose(loaded.coef, model.coef)


def test_a_broken_tuning_file_falls_back_with_the_reason(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        engine.add(products(20))
    folder = tmp_path / "idx" / "ltr" / "tuned"
    folder.mkdir(parents=True)
    (folder / "tuning.json").write_text(json.dumps({"format": 1, "arms": ["dense"]}))
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        result = engine.search("red", mode="learned", explain=True)
        assert result.explain is not None
        assert result.explain["tuning"]["active"] is False
        assert (
            "unusable" in result.explain["tuning"]["status"] and "xmodal ltr tune" in result.explain["tuning"]["status"]
        )


def until(done: Any, timeout: float = 30.0) -> bool:
    """Whether ``done()`` came true within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@needs_wordnet
def test_adding_a_catalog_tunes_it_in_the_background_and_close_stops_a_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(autotune, "MIN_ITEMS", 50)
    monkeypatch.setattr(autotune, "SETTLE", 0.5)
    items = wordnet_catalog(200, seed=2)
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        tuner = engine.extension("ltr").autotuner
        assert tuner is not None
        assert tuner.enabled  # on by default (LTRConfig.autotune, the index's ltr/autotune.json)
        engine.add(items[:30])  # below the threshold: nothing starts
        assert not tuner.running and pipeline(engine).tuned is None
        engine.add(items[30:70])
        assert not tuner.running  # due, but it waits for the writes to pause
        explain = engine.search("a domestic animal", mode="learned", k=3, explain=True).explain
        assert explain is not None and "once the writes pause" in explain["tuning"]["status"]
        assert until(lambda: tuner.running)  # then it starts; searches go on meanwhile
        assert engine.search("a domestic animal", mode="learned", k=3).hits
        tuner.wait(timeout=300)
        tuned = pipeline(engine).tuned
        assert tuned is not None and tuned.report["items"] == 70
        engine.add(items[70:95])  # grown by a third: the fit stands
        time.sleep(2 * autotune.SETTLE)
        assert not tuner.running and pipeline(engine).tuned is tuned
        engine.add(items[95:110])  # 110 >= 1.5 x 70: refitted once the writes pause
        assert until(lambda: tuner.running)
        started = time.perf_counter()
    assert time.perf_counter() - started < 20  # closing stopped the fit between two queries
    assert not tuner.running
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        kept = pipeline(engine).tuned  # the stopped fit left the finished one in place
        assert kept is not None and kept.report["items"] == 70


@needs_wordnet
def test_writes_that_go_on_hold_a_fit_until_the_catalog_has_grown_busy_growth_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load of many writes (a REST ingest) is not refitted at every growth by half: a due fit waits for a pause in
    the writes, unless the catalog grows BUSY_GROWTH times meanwhile."""
    monkeypatch.setattr(autotune, "MIN_ITEMS", 20)
    monkeypatch.setattr(autotune, "SETTLE", 600.0)  # the writes never pause here
    items = wordnet_catalog(200, seed=2)
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        tuner = autotuner(engine)
        assert tuner is not None
        for start in range(0, 70, 10):  # 70 items: due since 20, not yet 4 x 20
            engine.add(items[start : start + 10])
            assert not tuner.running
        assert tuner.due() and not tuner.due(busy=True)
        engine.add(items[70:80])  # 80 = 4 x 20: it starts while the writes go on
        assert tuner.running
        assert until(lambda: not tuner.running, timeout=300)  # (wait() would wait for the writes' pause too)
        tuned = pipeline(engine).tuned
        assert tuned is not None and tuned.report["items"] == 80
        engine.add(items[80:200])  # 200 >= 1.5 x 80 but < 4 x 80: held again
        assert tuner.due() and not tuner.running
        started = time.perf_counter()
    assert time.perf_counter() - started < 5  # closing cancelled the look again


def test_a_server_starts_the_fit_that_no_write_has_started_yet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An index of enough items that was never tuned (built before self-tuning, or with it off, or a stop cut its
    fit short): opening it starts no fit, a server starting on it does, and serves searches meanwhile."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from xmodal.serve import ServeConfig, create_app

    monkeypatch.setattr(autotune, "MIN_ITEMS", 50)
    monkeypatch.setenv(autotune.ENV, "off")
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        engine.add(wordnet_catalog(200, seed=2)[:70])
    monkeypatch.delenv(autotune.ENV)
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        tuner = autotuner(engine)
        assert tuner is not None and not tuner.running and pipeline(engine).tuned is None
        app = create_app(engine, ServeConfig(log_requests=False, mcp=False))
        with TestClient(app, base_url="http://localhost") as client:
            assert tuner.running
            answer = client.post("/search", json={"text": "a domestic animal", "k": 3})
            assert answer.status_code == 200 and answer.json()["hits"], answer.text
            tuner.wait(timeout=300)
        tuned = pipeline(engine).tuned
        assert tuned is not None and tuned.report["items"] == 70


@needs_wordnet
def test_a_bulk_load_holds_the_tuner_and_one_fit_on_the_whole_catalog_starts_at_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(autotune, "MIN_ITEMS", 50)
    items = wordnet_catalog(200, seed=2)
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        with deferred_tuning(engine) as tuner:
            assert tuner is not None
            for start in range(0, 160, 40):  # 160 items in four writes, each past the threshold
                engine.add(items[start : start + 40])
                assert not tuner.running
        assert tuner.running
        tuner.wait(timeout=300)
        tuned = pipeline(engine).tuned
        assert tuned is not None and tuned.report["items"] == 160


def test_an_index_turns_self_tuning_off_and_on_through_its_own_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    index = tmp_path / "idx"
    with Engine.open(index, encoder=HashingEncoder(), index="exact") as engine:
        engine.add(products(3))
        tuner = autotuner(engine)
        assert tuner is not None and tuner.enabled
    assert main(["--index", str(index), "ltr", "autotune", "off"]) == 0
    assert json.loads(capsys.readouterr().out)["autotune"] is False
    with Engine.open(index) as engine:
        tuner = autotuner(engine)
        assert tuner is not None and not tuner.enabled
    monkeypatch.setenv(autotune.ENV, "on")  # the process's setting, over the index's
    assert autotune.configured(index / "ltr")
    monkeypatch.setenv(autotune.ENV, "sometimes")
    with pytest.raises(ConfigError, match="XMODAL_AUTOTUNE='sometimes': use on or off"):
        autotune.configured(index / "ltr")
    monkeypatch.delenv(autotune.ENV)
    assert main(["--index", str(index), "ltr", "autotune"]) == 0
    assert json.loads(capsys.readouterr().out)["autotune"] is False  # show
    (index / "ltr" / autotune.FILE).write_text("{not json")
    assert main(["--index", str(index), "ltr", "autotune"]) == 2
    assert "ltr autotune on" in capsys.readouterr().err
    assert main(["--index", str(index), "ltr", "autotune", "on"]) == 0
    with Engine.open(index) as engine:
        tuner = autotuner(engine)
        assert tuner is not None and tuner.enabled


def test_close_ends_a_fit_that_is_waiting_for_the_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fit searches the engine (its locks) between checks of its stop signal: closing must stop it before
    taking those locks, or the close waits for a fit that waits for the close (seen under load)."""
    searching = threading.Event()

    engine = Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact")

    def fit_searching_until_stopped(pipe: Pipeline, *, stop: threading.Event) -> None:
        while not stop.is_set():
            engine.search("comfortable product", mode="dense", k=3)
            searching.set()
        return None

    monkeypatch.setattr(autotune, "tune", fit_searching_until_stopped)
    monkeypatch.setattr(autotune, "grown_enough", lambda growth, busy=False: True)
    tuner = engine.extension("ltr").autotuner
    assert tuner is not None
    tuner.enabled = False  # not started by the add: by the call below
    engine.add(products(20))
    tuner.enabled = True
    assert tuner.consider() and searching.wait(30)
    pipe = pipeline(engine)
    assert pipe.tuned_status == "no self-tuned fusion yet: one is being fitted on the catalog"
    closer = threading.Thread(target=engine.close, daemon=True)
    closer.start()
    closer.join(30)
    assert not closer.is_alive(), "Engine.close waited for a fit that waited for the engine's locks"
    assert not tuner.running
    assert pipe.tuned_status == NO_MODEL  # the stopped fit left no model
