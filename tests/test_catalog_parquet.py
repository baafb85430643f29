"""Parquet catalogs: the JSON Lines fields as columns (nested or as JSON text), CSV's attributes.NAME
columns, what `xmodal export` writes, and the same rejections as the other readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xmodal import Engine
from xmodal.encoders import HashingEncoder
from xmodal.ingest.catalog import Located, add_catalogs, estimate_records, read_catalog
from xmodal.ingest.prepare import Rejection

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def test_columns_nested_json_and_attribute_columns(tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    table = pa.table(
        {
            "id": ["a", "b", None, "d"],
            "title": ["red shoe", "blue hat", "no id", "bad"],
            "attributes": [{"size": 40}, {"size": 2}, None, {"size": 1}],
            "attributes.color": ["red", "blue", None, "green"],
            "span": [None, None, None, "{not json"],
        }
    )
    pq.write_table(table, path)
    records = list(read_catalog(path))
    assert estimate_records(path) == 4
    first = records[0]
    assert isinstance(first, Located) and first.item.attributes == {"size": 40, "color": "red"}
    assert isinstance(records[2], Rejection) and records[2].where == f"{path}:row 3" and "id" in records[2].reason
    assert isinstance(records[3], Rejection) and "span" in records[3].reason


def test_an_unknown_column_rejects_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"id": ["a"], "titel": ["x"]}), path)
    [only] = list(read_catalog(path))
    assert isinstance(only, Rejection) and "titel" in only.reason and "no row of this file was read" in only.reason


def test_an_export_reads_back_with_its_vectors(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "a", encoder=HashingEncoder(), index="exact", extensions=[]) as engine:
        add_catalogs(engine, [_jsonl(tmp_path)])
        engine.export(tmp_path / "out.parquet", with_vectors=True)
        before = {s.item.id: s.vectors["text"] for s in engine.store.iter_all()}
    with Engine.open(tmp_path / "b", encoder=HashingEncoder(), index="exact", extensions=[]) as again:
        report = add_catalogs(again, [tmp_path / "out.parquet"])
        assert sorted(report.added) == sorted(before) and not report.rejected
        after = {s.item.id: s.vectors["text"] for s in again.store.iter_all()}
    assert all(np.allclose(after[i], before[i], atol=1e-6) for i in before)  # re-normalised: float32 rounding


def _jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "x", "title": "one", "attributes": {"n": 1}}\n{"id": "y", "title": "two"}\n')
    return path
