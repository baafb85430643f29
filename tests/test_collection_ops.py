"""Collection operations on the engine: count with a filter, offset, delete by filter, clear, attribute updates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xmodal import Engine, Item
from xmodal.encoders import HashingEncoder
from xmodal.errors import NotFoundError, ValidationError
from xmodal.records import MAX_K, Query

from .conftest import text_items


class CountingEncoder(HashingEncoder):
    """The hashing encoder, counting the documents it encodes (an update must encode none)."""

    def __init__(self) -> None:
        super().__init__()
        self.documents = 0

    def encode_documents(self, batch: Any) -> Any:
        self.documents += len(batch)
        return super().encode_documents(batch)


def test_count_with_and_without_filters(engine: Engine) -> None:
    engine.add(text_items(20))
    assert engine.count() == 20 == len(engine)
    assert engine.count({"color": "red"}) == 5
    assert engine.count({"or": [{"color": "red"}, {"price": {"gte": 18}}]}) == 7  # t0,4,8,12,16 + t18,19
    assert engine.count({"not": {"color": "red"}}) == 15
    assert engine.count({"no_such_key": 1}) == 0
    with pytest.raises(ValidationError, match="no_such_key"):
        engine.count({"no_such_key": 1}, strict=True)


def test_offset_pages_are_the_full_ranking_cut_in_pieces(engine: Engine) -> None:
    engine.add(text_items(40))
    full = engine.search("item thing", k=30, filters={"color": {"ne": "black"}})
    pages = [engine.search("item thing", k=10, offset=o, filters={"color": {"ne": "black"}}) for o in (0, 10, 20)]
    assert [i for p in pages for i in p.hits.ids.tolist()] == full.hits.ids.tolist()
    assert all(len(p.hits) == 10 and len(p.items) == 10 for p in pages)
    last = engine.search("item thing", k=10, offset=25, filters={"color": {"ne": "black"}})
    assert last.hits.ids.tolist() == full.hits.ids.tolist()[25:]  # never short: 30 match, 5 are left


def test_offset_past_the_end_is_empty_and_bad_offsets_name_the_field(engine: Engine) -> None:
    engine.add(text_items(5))
    result = engine.search("item", k=10, offset=50)
    assert len(result.hits) == 0 and result.items == ()
    for bad in (-1, 1.5, True, MAX_K):
        with pytest.raises(ValidationError, match="offset"):
            Query(text="item", k=10, offset=bad)


def test_delete_where_goes_through_the_write_path(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        engine.add(text_items(20))
        seq = engine.last_seq()
        assert engine.delete_where({"color": "red"}) == 5
        assert engine.last_seq() > seq  # in the change log: other processes and extensions follow it
        assert engine.count() == 15 and engine.count({"color": "red"}) == 0
        hits = engine.search("item red", k=100)
        assert len(hits.hits) == 15 and not any(i.attributes["color"] == "red" for i in hits.items)
        assert "t0" not in engine
        with pytest.raises(NotFoundError):
            engine.get("t0")
        assert engine.delete_where({"color": "red"}) == 0
        assert engine.delete_where({"no_such_key": 1}) == 0
    with Engine.open(tmp_path / "idx") as reopened:  # the derived structures reopen without the deleted items
        assert reopened.count() == 15
        assert len(reopened.search("item red", k=100).hits) == 15


def test_delete_where_refuses_an_empty_filter_and_points_to_clear(engine: Engine) -> None:
    engine.add(text_items(3))
    for empty in ({}, None):
        with pytest.raises(ValidationError, match="clear") as err:
            engine.delete_where(empty)  # type: ignore[arg-type]
        assert err.value.field == "filters"
    assert engine.count() == 3


def test_delete_where_deletes_the_segments_of_a_matched_parent(engine: Engine) -> None:
    engine.add([Item.create("doc", title="manual", attributes={"kind": "doc"})])
    engine.add([Item.create(f"doc#p{i}", text=f"page {i}", parent="doc", span=i) for i in range(1, 4)])
    assert engine.count() == 4
    assert engine.delete_where({"kind": "doc"}) == 1
    assert engine.count() == 0


def test_clear_empties_the_index(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        engine.add(text_items(12))
        assert engine.clear() == 12
        assert engine.count() == 0 and len(engine.search("item", k=10).hits) == 0
        assert engine.clear() == 0
        engine.add(text_items(2))
        assert engine.count() == 2
    with Engine.open(tmp_path / "idx") as reopened:
        assert reopened.count() == 2


def test_update_attributes_without_encoding(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    with Engine.open(tmp_path / "idx", encoder=encoder, index="exact") as engine:
        engine.add(text_items(8))
        encoded, vectors = encoder.documents, engine.vectors("t1")
        assert encoded > 0
        item = engine.update_attributes("t1", {"color": "purple", "meta": {"brand": "acme"}})
        assert encoder.documents == encoded  # no encoder call
        assert item.attributes == {"color": "purple", "price": 1.0, "n": 1, "meta": {"brand": "acme"}}
        assert engine.get("t1").attributes == item.attributes and engine.get("t1").title == "item 1 green"
        after = engine.vectors("t1")
        assert after.keys() == vectors.keys() and all(np.array_equal(after[k], vectors[k]) for k in vectors)
        assert engine.count({"color": "purple"}) == 1 and engine.count({"meta.brand": "acme"}) == 1
        hits = engine.search("item 1 green", k=3, filters={"color": "purple"})
        assert hits.hits.ids.tolist() == ["t1"]
        assert engine.count({"color": "green"}) == 1  # t5 only: t1's old value is gone
        replaced = engine.update_attributes("t1", {"only": True}, merge=False)
        assert replaced.attributes == {"only": True} and engine.count({"color": "purple"}) == 0
        assert encoder.documents == encoded
    with Engine.open(tmp_path / "idx", encoder=CountingEncoder()) as reopened:
        assert reopened.get("t1").attributes == {"only": True} and reopened.count({"only": True}) == 1


def test_update_attributes_bad_input(engine: Engine) -> None:
    engine.add(text_items(2))
    with pytest.raises(NotFoundError, match="nope"):
        engine.update_attributes("nope", {"a": 1})
    with pytest.raises(ValidationError, match="attributes.parent"):
        engine.update_attributes("t0", {"parent": "t1"})
    with pytest.raises(ValidationError, match="attributes"):
        engine.update_attributes("t0", ["a"])  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="attributes.x"):
        engine.update_attributes("t0", {"x": float("nan")})
    assert engine.get("t0").attributes["color"] == "red"


def test_search_by_vector_pages_and_checks_the_vector(engine: Engine) -> None:
    engine.add(text_items(30))
    vector = engine.vectors("t3")["text"]
    full = engine.search_by_vector(vector, k=12, filters={"color": {"ne": "red"}})
    assert full.hits.ids.tolist()[0] == "t3" and len(full.items) == 12
    assert all(item.attributes["color"] != "red" for item in full.items)
    page = engine.search_by_vector(vector.tolist(), k=4, offset=8, filters={"color": {"ne": "red"}})
    assert page.hits.ids.tolist() == full.hits.ids.tolist()[8:12]
    assert len(engine.search_by_vector(vector, k=5, offset=100).hits) == 0
    bad = vector.copy()
    bad[7] = np.nan
    with pytest.raises(ValidationError, match="position 7") as err:
        engine.search_by_vector(bad)
    assert err.value.field == "vector"
    with pytest.raises(ValidationError, match="dimensions"):
        engine.search_by_vector(vector[:10])
    with pytest.raises(ValidationError, match="vector"):
        engine.search_by_vector(["a", "b"])
    with pytest.raises(ValidationError, match="offset"):
        engine.search_by_vector(vector, offset=-1)
    with pytest.raises(ValidationError, match="vector"):
        engine.search_vector(np.full(engine.dim, np.inf))


def test_add_with_own_vectors_encodes_nothing(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    with Engine.open(tmp_path / "idx", encoder=encoder, index="exact") as engine:
        engine.add(text_items(6))
        encoded, dim = encoder.documents, engine.dim
        rng = np.random.default_rng(0)
        mine = rng.normal(size=dim).astype(np.float32)
        report = engine.add(
            [Item.create("own", title="anything", attributes={"color": "teal"}), Item.create("bare", title="x")],
            vectors={"own": {"text": (mine * 3).tolist()}, "bare": mine},
        )
        assert report.added == ["own", "bare"] and not report.rejected
        assert encoder.documents == encoded  # neither item was encoded
        stored = engine.vectors("own")["text"]
        assert np.allclose(stored, mine / np.linalg.norm(mine), atol=1e-6)  # normalised
        hits = engine.search_by_vector(mine, k=2)
        assert set(hits.hits.ids.tolist()) == {"own", "bare"} and hits.hits.scores[0] > 0.99
        assert engine.search_by_vector(mine, k=1, filters={"color": "teal"}).hits.ids.tolist() == ["own"]


def test_add_with_bad_vectors_rejects_only_those_items(engine: Engine) -> None:
    dim = engine.dim
    good = np.ones(dim, dtype=np.float32)
    nan = good.copy()
    nan[5] = np.nan
    items = [Item.create(f"v{i}", title=f"v{i}") for i in range(7)]
    report = engine.add(
        items,
        vectors={
            "v0": good,
            "v1": good[:-1],
            "v2": nan,
            "v3": {"sound": good},
            "v4": np.zeros(dim),
            "v6": [1e300] * dim,
            "ghost": good,
        },
    )
    assert report.added == ["v5", "v0"]  # v5 encoded, v0 with its own vector
    reasons = {r.where: r.reason for r in report.rejected}
    assert f"vectors.text: has {dim - 1} dimensions, the index has {dim}" in reasons["v1"]
    assert "vectors.text: has a NaN or infinite value at position 5" in reasons["v2"]
    assert "vectors.sound: the index has no vector kind 'sound'" in reasons["v3"]
    assert "vectors.text: has no direction" in reasons["v4"]
    assert "vectors.text: has a value beyond float32 at position 0" in reasons["v6"]
    assert "not in this add" in reasons["ghost"]
    assert sorted(engine.store.get(i) is not None for i in ("v1", "v2", "v3", "v4")) == [False] * 4
    with pytest.raises(ValidationError, match="vectors"):
        engine.add(items, vectors=[good])  # type: ignore[arg-type]
