"""An index written by xmodal 0.1.0 (the release before the open core) opens with every part intact:
items, vectors, the feedback log, the learned pipeline's state and the trained generative model.

The fixture ``tests/data/index-v0.1.0`` was built by ``tests/data/make_index_v0_1_0.py`` run on that
release (commit 37ae63c)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from xmodal import Engine, Item, Query

FIXTURE = Path(__file__).parent / "data" / "index-v0.1.0"


@pytest.fixture
def old_index(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURE, tmp_path / "idx"))


def test_an_index_of_the_previous_release_opens_with_everything(old_index: Path) -> None:
    pytest.importorskip("torch")
    from xmodal.genret.extension import live_genret

    with Engine.open(old_index) as engine:
        assert len(engine) == 41 and "t29" not in engine
        assert engine.settings["extensions"] == ["ltr", "genret"] and engine.default_mode == "learned"
        counts = engine.feedback_log.counts()
        assert counts["impressions"] == 9 and counts["events"] == 9
        status = live_genret(engine).status()
        assert status["trained"] and status["live"]["items"] == 41
        for mode in engine.modes():
            hits = engine.search(Query(text="red cotton shirt", k=5, mode=mode)).hits
            assert len(hits) >= 1 and "t29" not in hits.ids.tolist(), mode
            if mode in ("dense", "learned", "uniform", "generative-rerank"):  # single strategies may find fewer
                assert len(hits) == 5, mode
        assert engine.search(Query(text="red cotton shirt", k=3, mode="lexical")).hits.ids[0].startswith("t")
        engine.add([Item.create("new", title="violet linen scarf")])
        assert engine.search(Query(text="violet linen scarf", k=1, mode="lexical")).hits.ids.tolist() == ["new"]
        assert live_genret(engine).status()["live"]["items"] == 42  # the trie follows new writes
    with Engine.open(old_index) as engine:  # and the checkpoints written on close reopen
        assert len(engine) == 42 and live_genret(engine).status()["live"]["items"] == 42
        assert engine.search(Query(text="violet linen scarf", k=1, mode="dense")).hits.ids.tolist() == ["new"]


def test_an_index_of_the_previous_release_takes_the_new_filters_and_nested_attributes(old_index: Path) -> None:
    """Issue 16: attributes were scalars; the store keeps them as JSON already, so nothing is migrated."""
    with Engine.open(old_index) as engine:

        def ids(filters: dict[str, object]) -> set[str]:
            return set(engine.search(Query(text="red cotton shirt", k=50, mode="dense", filters=filters)).hits.ids)

        reds = ids({"color": "red"})
        assert reds and ids({"color": {"$eq": "red"}}) == reds
        assert ids({"not": {"color": "red"}}) == {s.item.id for s in engine.iter_items()} - reds
        assert ids({"or": [{"color": "red"}, {"price": {"lt": 3}}]}) >= reds
        assert ids({"nosuch": 1}) == set()
        engine.add(
            [Item.create("nested", title="red cotton shirt", attributes={"color": ["red", "white"], "m": {"k": None}})]
        )
        assert "nested" in ids({"color": "white"}) and "nested" in ids({"m.k": None})
    with Engine.open(old_index) as engine:
        assert engine.get("nested").attributes == {"color": ["red", "white"], "m": {"k": None}}
