from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from xmodal import ConfigError, Engine, Item, Query, StorageError, ValidationError
from xmodal.encoders import HashingEncoder
from xmodal.store.sqlite import SQLiteStore


def test_wal_and_full_sync(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite")
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store.get_meta("schema_version") == 3  # 2: with the full-text index; 3: media by name, segments
    store.close()


def test_schema_version_mismatch_is_refused(tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "s.sqlite").close()
    db = sqlite3.connect(tmp_path / "s.sqlite")
    db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StorageError, match="schema version 99"):
        SQLiteStore(tmp_path / "s.sqlite")


def test_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "store.sqlite").write_bytes(b"garbage" * 100)
    with pytest.raises(StorageError):
        Engine.open(tmp_path, encoder="hashing")


def test_upsert_keeps_row_and_created_time(engine: Engine) -> None:
    engine.add([Item.create("a", title="first")])
    row, created = engine.row_of("a"), engine.get("a").created_at
    engine.add([Item.create("a", title="second")])
    assert engine.row_of("a") == row and engine.get("a").created_at == created
    assert engine.get("a").title == "second" and len(engine) == 1


def test_settings_are_fixed_at_creation(tmp_path: Path) -> None:
    Engine.open(tmp_path / "i", encoder="hashing", dim=128, index="exact").close()
    with pytest.raises(ConfigError, match="dim"):
        Engine.open(tmp_path / "i", dim=64)
    with pytest.raises(ConfigError, match="index"):
        Engine.open(tmp_path / "i", index="hnsw")
    with Engine.open(tmp_path / "i") as engine:
        assert engine.info()["dim"] == 128 and engine.encoder.dim == 128


def test_matryoshka_dim_renormalises() -> None:
    full, small = HashingEncoder(), HashingEncoder(dim=64)
    from xmodal.encoders import Content

    v_full = full.encode([Content(text="a cup of coffee")])
    v_small = small.encode([Content(text="a cup of coffee")])
    assert v_small.shape == (1, 64)
    assert np.isclose(np.linalg.norm(v_small), 1.0, atol=1e-5)
    np.testing.assert_allclose(v_small[0], v_full[0, :64] / np.linalg.norm(v_full[0, :64]), rtol=1e-5)


def test_combined_vector_is_mean_of_text_and_image(engine: Engine, tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (16, 16), (0, 120, 255)).save(tmp_path / "p.png")
    engine.add([Item.create("p", title="blue product", image="p.png")], base_dir=tmp_path)
    vecs = engine.vectors("p")
    mean = vecs["text"] + vecs["image"]
    np.testing.assert_allclose(vecs["combined"], mean / np.linalg.norm(mean), rtol=1e-5)
    for target in ("text", "image", "combined", "any"):
        assert engine.search(Query(text="blue product", target=target)).hits.ids.tolist() == ["p"]


def test_item_validation() -> None:
    with pytest.raises(ValidationError, match="id"):
        Item.create("", title="x")
    with pytest.raises(ValidationError, match="attributes.tags: has type set"):
        Item.create("a", title="x", attributes={"tags": {"a", "b"}})  # lists and objects are fine, sets are not
    with pytest.raises(ValidationError, match="no title, text or image"):
        Item.create("a")
    with pytest.raises(ValidationError, match="modality"):
        Item.create("a", title="x", modality="smell")
    with pytest.raises(ValidationError, match="target: not a vector kind name"):
        Query(text="x", target="Side ways!")  # a kind the index lacks is refused when searched (test_target)
    with pytest.raises(ValidationError, match="k"):
        Query(text="x", k=10**9)


def test_lone_surrogates_are_refused() -> None:
    for kwargs in ({"title": "bad \ud800"}, {"title": "ok", "attributes": {"c": "\udfff"}}):
        with pytest.raises(ValidationError, match="lone surrogate"):
            Item.create("a", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="lone surrogate"):
        Item.create("a\ud800", title="x")
    with pytest.raises(ValidationError, match="lone surrogate"):
        Query(text="\ud800")
