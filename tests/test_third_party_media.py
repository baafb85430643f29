"""A medium from outside the package (``tests/toyparts/media.py``, named by dotted path, never registered) goes
end to end: a catalog item carries it under ``media``, its loader checks and keeps it, the toy encoder makes a
vector kind from it, and a search finds the item through it, in the API, the CLI and the REST API. The index
names the loader in its ``media`` setting (``Engine.open(media=...)``, ``xmodal --media-loader``), recorded
so that every later open allows it; data alone cannot name a loader to import (tests/test_media_allowlist.py)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.test_third_party import cli
from tests.toyparts.media import ENCODER, NAME, GlyphEncoder, glyph_file
from xmodal import Engine, Item, Query
from xmodal.provenance import names_of

WRITER = "write-key-0001"
AUTH = {"Authorization": f"Bearer {WRITER}"}


def catalog(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "g1.json").write_bytes(glyph_file("zzzz"))
    (folder / "g2.json").write_bytes(glyph_file("qqqq"))
    (folder / "bad.json").write_bytes(b'{"glyphs": "not runes"}')
    lines = [
        {"id": "g1", "title": "plain", "media": {NAME: "g1.json"}},
        {"id": "g2", "title": "plain", "media": {NAME: "g2.json"}},
        {"id": "t1", "title": "banana cabana"},
        {"id": "bad", "title": "plain", "media": {NAME: "bad.json"}},
        {"id": "nosuch", "title": "plain", "media": {"nosuch.module:Loader": "g1.json"}},
    ]
    path = folder / "catalog.jsonl"
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    return path


def test_a_dotted_path_medium_is_loaded_kept_encoded_and_searched(tmp_path: Path) -> None:
    folder = tmp_path / "cat"
    catalog(folder)
    with Engine.open(tmp_path / "idx", encoder=GlyphEncoder(), index="exact", extensions=[], media=[NAME]) as engine:
        assert engine.settings["media"] == [NAME]
        report = engine.add(
            [
                Item.create("g1", title="plain", media={NAME: "g1.json"}),
                Item.create("g2", title="plain", media={NAME: "g2.json"}),
                Item.create("only", media={NAME: glyph_file("xyxy")}),  # bytes, no text
                Item.create("t1", title="banana cabana"),
                Item.create("bad", title="plain", media={NAME: "bad.json"}),
            ],
            base_dir=folder,
        )
        assert report.added == ["g1", "g2", "only", "t1"]
        assert [r.where for r in report.rejected] == ["bad"] and f"media.{NAME}" in report.rejected[0].reason
        g1 = engine.get("g1")
        assert g1.modality == f"{NAME}+text" and set(engine.vectors("g1")) == {"text", "glyphs", "combined"}
        assert set(engine.vectors("only")) == {"glyphs"} and engine.get("only").modality == NAME
        kept = g1.media[NAME]
        assert isinstance(kept, str) and kept.startswith("media/") and kept.endswith(".glyphs")
        assert engine.media.path(kept).read_bytes() == glyph_file("zzzz")  # kept, not referenced
        hits = engine.search(Query(text="zzz", k=2))
        assert hits.hits.ids.tolist()[0] == "g1" and "dense:glyphs" in names_of(hits.hits.provenance[0])
        assert engine.vector_count("glyphs") == 3  # a kind the core never named, indexed on demand
        by_glyphs = engine.search(Query(media={NAME: glyph_file("qq")}, k=1))  # a glyph query
        assert by_glyphs.hits.ids.tolist() == ["g2"]
        with pytest.raises(Exception, match="no media loader"):
            Item.create("x", media={"nosuch.module:Loader": "a"})


def test_the_cli_and_the_rest_api_load_a_dotted_path_medium(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from xmodal.serve import ApiKey, ServeConfig, create_app

    index, path = tmp_path / "idx", catalog(tmp_path / "cat")
    done = cli(index, "--encoder", ENCODER, "--index-kind", "exact", "--media-loader", NAME, "add", str(path), "--json")
    assert done.returncode == 1, done.stderr  # two items rejected, the others added
    report = json.loads(done.stdout)
    assert report["added"] == 3 and [r["where"].rsplit(":", 1)[1] for r in report["rejected"]] == ["4", "5"]
    assert "no media loader" in report["rejected"][1]["reason"]
    done = cli(index, "search", "zzz", "-k", "1", "--mode", "dense", "--json")
    assert done.returncode == 0, done.stderr
    hit = json.loads(done.stdout)["hits"][0]
    assert hit["id"] == "g1" and hit["modality"] == f"{NAME}+text" and set(hit["media"]) == {NAME}
    query = tmp_path / "q.json"
    query.write_bytes(glyph_file("qqq"))
    done = cli(index, "search", "--media", f"{NAME}={query}", "-k", "1", "--mode", "dense", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["hits"][0]["id"] == "g2"
    config = ServeConfig(keys=(ApiKey(WRITER, frozenset({"write"}), "writer"),), mcp=False, log_requests=False)
    with (
        Engine.open(index) as engine,
        TestClient(create_app(engine, config), headers=AUTH, base_url="http://localhost") as client,
    ):
        body = {"id": "g3", "title": "plain", "media_base64": {NAME: base64.b64encode(glyph_file("vvvv")).decode()}}
        r = client.post("/items", json={"items": [body]})
        assert r.status_code == 200 and r.json()["added"] == ["g3"], r.text
        r = client.post("/search", json={"text": "vvv", "k": 1, "log": False, "mode": "dense"})
        assert r.status_code == 200, r.text
        hit = r.json()["hits"][0]
        assert hit["id"] == "g3" and hit["modality"] == f"{NAME}+text" and hit["media"][NAME].endswith(".glyphs")
        r = client.post(
            "/items", json={"items": [{"id": "g4", "media_base64": {NAME: base64.b64encode(b"x").decode()}}]}
        )
        assert (
            r.status_code == 200 and r.json()["added"] == [] and "not a glyph file" in r.json()["rejected"][0]["reason"]
        )


def test_a_query_targets_a_third_party_vector_kind_and_an_unknown_kind_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from xmodal.errors import ValidationError
    from xmodal.serve import ServeConfig, create_app

    index = tmp_path / "idx"
    with Engine.open(index, encoder=GlyphEncoder(), index="exact", media=[NAME]) as engine:
        engine.add([Item.create("g1", title="zzzz", media={NAME: glyph_file("abab")}), Item.create("t1", title="zz")])
        assert engine.vector_kinds() == ["text", "glyphs", "combined"]
        for mode in ("dense", "learned"):
            hits = engine.search(Query(text="abab", target="glyphs", mode=mode, k=2)).hits
            dense = [name for p in hits.provenance for name in names_of(p) if name.startswith("dense:")]
            assert hits.ids.tolist()[0] == "g1" and set(dense) == {"dense:glyphs"}, mode  # t1 has no glyphs
        assert engine.similar("t1", k=1, target="glyphs").hits.ids.tolist() == ["g1"]
        for mode in ("dense", "learned"):
            with pytest.raises(ValidationError, match=r"target: .*'audio'.*use one of any, text, glyphs, combined"):
                engine.search(Query(text="abab", target="audio", mode=mode))
        with TestClient(
            create_app(engine, ServeConfig(mcp=False, log_requests=False)), base_url="http://localhost"
        ) as client:
            r = client.post("/search", json={"text": "abab", "target": "glyphs", "mode": "dense", "log": False})
            assert r.status_code == 200 and r.json()["hits"][0]["id"] == "g1", r.text
            r = client.post("/search", json={"text": "abab", "target": "audio", "log": False})
            assert r.status_code == 422 and "glyphs" in r.text, r.text
            assert client.get("/items/t1/similar", params={"target": "glyphs", "k": 1}).json()["hits"][0]["id"] == "g1"
            spec = client.get("/openapi.json").json()["components"]["schemas"]["SearchRequest"]
            assert spec["properties"]["target"]["enum"] == ["any", "text", "glyphs", "combined"]
    done = cli(index, "search", "abab", "--target", "glyphs", "--mode", "dense", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["hits"][0]["id"] == "g1", done.stderr
    done = cli(index, "search", "abab", "--target", "audio")
    assert done.returncode == 2 and "unknown --target 'audio' (use one of any, text, glyphs, combined)" in done.stderr
