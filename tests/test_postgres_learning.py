"""Several servers over one PostgreSQL store share what they learn: the feedback log is in the store, every
server's learners hear of every server's impressions and events (LISTEN/NOTIFY, then the log's tail in order),
the bandit policy a server (re)opens with is the newest one saved in the store plus the feedback logged since,
and a ranker trained on one server is used by all."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xmodal import Engine

from .test_feedback_log import check_user_window
from .test_ltr_strategies import products

pytest.importorskip("psycopg", reason="the postgres store needs psycopg: pip install 'xmodal[postgres]'")

from xmodal.feedback import postgres_log  # noqa: E402
from xmodal.feedback.postgres_log import PostgresFeedbackLog  # noqa: E402
from xmodal.ltr.extension import pipeline  # noqa: E402
from xmodal.ltr.pipeline import RANKER_STATE  # noqa: E402
from xmodal.store import postgres_state  # noqa: E402

from .test_postgres_store import location as store_location  # noqa: E402
from .test_postgres_store import wait_for  # noqa: E402

QUERY = "comfortable shoes for walking"


def location(server: Any, schema: str, state: Path) -> str:
    return store_location(server, schema, state, vectors="local")


def strategies(result: Any) -> set[str]:
    return {a["strategy"] for a in result.explain["plan"]}


def learned(engine: Engine) -> dict[str, np.ndarray]:
    """The bandit's reward sums by arm name: a server that opened on an empty store gains the dense arm when
    the other server's first write reaches it (its NOTIFY may arrive after a search), so compare by name."""
    policy = pipeline(engine).policy
    return {arm: policy.b_[i].copy() for i, arm in enumerate(policy.arms)}


def changed(engine: Engine, before: dict[str, np.ndarray]) -> bool:
    return any(not np.allclose(b, before.get(arm, 0.0)) for arm, b in learned(engine).items())


def test_a_click_on_one_server_changes_the_next_plan_on_another(
    postgres_server: Any, postgres_schema: str, tmp_path: Path
) -> None:
    first = Engine.open(location(postgres_server, postgres_schema, tmp_path / "a"), encoder="hashing", index="exact")
    second = Engine.open(location(postgres_server, postgres_schema, tmp_path / "b"))
    try:
        assert isinstance(first.feedback_log, PostgresFeedbackLog)
        first.add(products(80))
        before = second.search(QUERY, mode="learned", k=10, explain=True)
        assert "memory" not in strategies(before)  # nobody acted on anything for this query yet
        counts, b = pipeline(second).policy.counts_.sum(), learned(second)

        shown = first.search(QUERY, mode="learned", k=10, log=True, explain=True)
        assert shown.query_id is not None
        chosen = shown.hits.ids[-1]
        first.feedback(shown.query_id, chosen, "click")

        # the next plan on the other server keeps the memory index: the click is in the shared log
        after = second.search(QUERY, mode="learned", k=10, explain=True)
        assert after.explain is not None and "memory" in strategies(after)
        assert after.explain["context"]["actions"] > 0 and chosen in after.hits.ids.tolist()
        # and its bandit policy learned from the impression and the click (delivered on NOTIFY)
        took = wait_for(lambda: changed(second, b), 1.0)
        assert took < 1.0 and pipeline(second).policy.counts_.sum() > counts
        assert not changed(second, learned(first)) and not changed(first, learned(second))
        assert second.feedback_log.counts() == {"impressions": 1, "events": 1}
        assert pipeline(second).popularity.get(chosen) == 1.0 == pipeline(first).popularity.get(chosen)
    finally:
        first.close()  # saves the policy in the store, with the log position it reflects
    try:
        # a click on the second server after the first saved: a new server starts from the saved policy and
        # replays what was logged since, so it agrees with the server that saw everything live
        again = second.search(QUERY, mode="learned", k=10, log=True)
        assert again.query_id is not None
        second.feedback(again.query_id, again.hits.ids[0], "like")
        third = Engine.open(location(postgres_server, postgres_schema, tmp_path / "c"))
        try:
            assert np.allclose(pipeline(third).policy.b_, pipeline(second).policy.b_)
            assert np.allclose(pipeline(third).policy.A_, pipeline(second).policy.A_)
            assert pipeline(third).popularity == pipeline(second).popularity
            assert "memory" in strategies(third.search(QUERY, mode="learned", k=10, explain=True))
        finally:
            third.close()
    finally:
        second.close()


def test_a_ranker_trained_on_one_server_is_used_by_every_server(
    postgres_server: Any, postgres_schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xmodal.ltr.train import train_ranker

    first = Engine.open(location(postgres_server, postgres_schema, tmp_path / "a"), encoder="hashing", index="exact")
    second = Engine.open(location(postgres_server, postgres_schema, tmp_path / "b"))
    try:
        first.add(products(80))
        rng = np.random.default_rng(0)
        for text in ["red boots", "leather bags", "blue canvas sneakers", "green sandals", "black suede boots"] * 3:
            r = second.search(text, mode="learned", k=8, log=True)  # feedback logged on the second server
            assert r.query_id is not None
            second.feedback(r.query_id, r.hits.ids[int(rng.integers(len(r.hits)))], "click")
        assert pipeline(second).ranker is None
        shared, loads = pipeline(first).shared, []
        assert shared is not None
        load = shared.load
        monkeypatch.setattr(shared, "load", lambda name, folder: loads.append(name) or load(name, folder))
        hold = postgres_state._hold  # the first server records its save late: its notice comes back before that

        def late(folder: Path, name: str, version: int) -> None:
            if tmp_path / "a" in folder.parents:  # the first server's folders (its ltr/ folder holds the ranker)
                time.sleep(0.3)
            hold(folder, name, version)

        monkeypatch.setattr(postgres_state, "_hold", late)
        train_ranker(first, n_estimators=20)  # trained on the first server, from the shared log
        wait_for(lambda: pipeline(second).ranker is not None, 1.0)
        time.sleep(0.5)  # the notice reached both servers' listeners
        assert RANKER_STATE not in loads  # the first server's own save is no news to it: not fetched back
        ranked = second.search("red boots", mode="learned", k=8, explain=True)
        assert ranked.explain is not None and ranked.explain["ranker"].startswith("lambdarank")
        assert (tmp_path / "b" / "ltr" / "ranker.txt").read_bytes() == (
            tmp_path / "a" / "ltr" / "ranker.txt"
        ).read_bytes()
    finally:
        first.close()
        second.close()


def test_a_users_history_is_their_last_searches(
    postgres_server: Any, postgres_schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in the SQLite log: what a signed-in user's search reads of their history is their last ``USER_WINDOW``
    searches, through the (client_id, seq) index."""
    with Engine.open(location(postgres_server, postgres_schema, tmp_path / "a"), encoder="hashing") as engine:
        engine.add(products(5))
        check_user_window(
            engine.feedback_log, ["p0", "p1"], lambda n: monkeypatch.setattr(postgres_log, "USER_WINDOW", n)
        )


def test_the_default_index_keeps_its_feedback_in_its_own_file(tmp_path: Path) -> None:
    from xmodal.feedback.log import FeedbackLog

    with Engine.open(tmp_path / "idx", encoder="hashing") as engine:
        assert type(engine.feedback_log) is FeedbackLog and engine.feedback_log.shared_state is None


def test_a_server_shares_its_policy_as_it_learns(
    postgres_server: Any, postgres_schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only at close: every ``SHARE_EVERY`` impressions, so a server opening later replays little."""
    from xmodal.ltr import pipeline as pipeline_module

    monkeypatch.setattr(pipeline_module, "SHARE_EVERY", 2)
    engine = Engine.open(location(postgres_server, postgres_schema, tmp_path / "a"), encoder="hashing", index="exact")
    try:
        engine.add(products(40))
        shared = engine.feedback_log.shared_state
        assert shared is not None and shared.version("ltr/policy") == 0
        for text in ("red boots", "leather bags", "green sandals", "blue sneakers"):
            engine.search(text, mode="learned", k=5, log=True)
        assert shared.version("ltr/policy") == 2  # saved after the 2nd and the 4th impression
        marks = shared.load("ltr/policy", tmp_path / "copy")
        assert marks == list(engine.feedback_log.marks())
    finally:
        engine.close()


def test_a_generative_model_trained_on_one_server_is_used_by_every_server(
    postgres_server: Any, postgres_schema: str, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from xmodal import Item, Query
    from xmodal.genret.build import train_engine
    from xmodal.genret.config import TrainConfig
    from xmodal.genret.extension import live_genret

    from .conftest import text_items

    tiny = TrainConfig(
        levels=2, codebook_size=16, epochs=30, batch=32, lr=5e-3, d_model=32, n_layers=1, n_heads=2, n_prefix=2,
        finetune_epochs=1, kmeans_iters=10, min_steps=0, device="cpu",
    )  # fmt: skip
    first = Engine.open(location(postgres_server, postgres_schema, tmp_path / "a"), encoder="hashing", index="exact")
    second = Engine.open(location(postgres_server, postgres_schema, tmp_path / "b"))
    try:
        first.add(text_items(64))
        query = Query(text="item 5 red", k=5, mode="generative-rerank")
        train_engine(first, config=tiny, progress=False)
        wait_for(lambda: live_genret(second).model is not None, 5.0)  # told by the store, fetched, loaded
        assert second.search(query).hits.ids.tolist() == first.search(query).hits.ids.tolist()
        first.add([Item.create("late", title="item late blue", text="word3 thing")])  # after training: in both tries
        wait_for(lambda: second.applied_seq() == first.applied_seq(), 1.0)
        model = live_genret(second).model
        assert model is not None and len(model.trie) == 65 == len(live_genret(first).model.trie)  # type: ignore[union-attr]
        third = Engine.open(location(postgres_server, postgres_schema, tmp_path / "c"))  # opens with the model
        try:
            assert live_genret(third).model is not None
            assert third.search(query).hits.ids.tolist() == first.search(query).hits.ids.tolist()
        finally:
            third.close()
    finally:
        first.close()
        second.close()
