"""Uploads of documents, audio and video over REST (multipart ``POST /items``): each becomes its parent and
segments, searchable by text with page numbers and time ranges; the recording is served with byte ranges so
a player starts at a segment; deleting the parent removes every segment; a bad file is rejected alone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from tests.av_clips import encode, need_tools, talk, two_shots, typeset
from xmodal import Engine
from xmodal.encoders import HashingEncoder

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from xmodal.serve import ApiKey, ServeConfig, create_app  # noqa: E402
from xmodal.serve.testing import serve_in_thread  # noqa: E402

W = {"Authorization": "Bearer write-key-0001"}
KEYS = (ApiKey("write-key-0001", frozenset({"read", "write"}), "writer"),)
ADDED: dict[str, list[object]] = {}  # the upload's answer
PAGES = [["Lighthouses guide ships along rocky coasts."], ["Glaciers carve deep valleys into the mountains."]]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine, dict[str, bytes]]]:
    need_tools()
    work = tmp_path_factory.mktemp("work")
    files = {
        "atlas.pdf": typeset(PAGES),
        "talk.mp3": encode(talk(work), work / "talk.mp3", "-b:a", "64k").read_bytes(),
        "show.mp4": two_shots(work).read_bytes(),
        "broken.mp4": b"\x00\x00\x00\x18ftypisom" + b"\x00" * 200,
    }
    engine = Engine.open(tmp_path_factory.mktemp("idx") / "idx", encoder=HashingEncoder(), index="exact")
    with serve_in_thread(create_app(engine, ServeConfig(keys=KEYS, log_requests=False))) as url:
        items = [{"id": name, "title": name, "document_file": name} for name in files]
        parts = [("documents", (name, data)) for name, data in files.items()]
        answer = httpx.post(f"{url}/items", data={"items": json.dumps(items)}, files=parts, headers=W, timeout=300)
        assert answer.status_code == 200, answer.text
        ADDED.update(answer.json())
        expected = {"atlas.pdf", "atlas.pdf#p1", "atlas.pdf#p2", "talk.mp3", "talk.mp3#t0", "show.mp4", "show.mp4#t0"}
        assert expected | {"show.mp4#t3"} == set(ADDED["added"]), answer.text
        yield url, engine, files
    engine.close()


def test_uploads_become_segments_found_by_text(served: tuple[str, Engine, dict[str, bytes]]) -> None:
    url, engine, _ = served
    by_parent = {name: [s.item.id for s in engine.iter_items() if s.item.parent == name] for name in ("atlas.pdf",)}
    assert len(by_parent["atlas.pdf"]) == 2
    cases = [
        ("glaciers carve valleys", "atlas.pdf", {"page": 2}),
        ("the largest animal that lived on this planet", "talk.mp3", None),  # one 30 s window: all of it
        ("sheep in a green meadow", "show.mp4", {"start": 3.0, "end": 6.0}),
    ]
    for text, parent, span in cases:
        hit = httpx.post(f"{url}/search", json={"text": text, "k": 1, "mode": "dense"}, headers=W).json()["hits"][0]
        assert hit["parent"] == parent, (text, hit)
        if span is not None:
            assert hit["span"] == span
        else:
            assert hit["span"]["start"] == 0.0 and 14.0 < hit["span"]["end"] < 20.0
    shot = httpx.post(
        f"{url}/search", json={"text": "sheep in a green meadow", "k": 1, "mode": "dense"}, headers=W
    ).json()["hits"][0]
    thumb = httpx.get(
        shot["thumbnail_url"] if shot["thumbnail_url"].startswith("http") else url + shot["thumbnail_url"]
    )
    assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"  # the shot's key frame


def test_a_bad_file_is_rejected_alone(served: tuple[str, Engine, dict[str, bytes]]) -> None:
    _, engine, _ = served
    ids = {s.item.id for s in engine.iter_items()}
    assert {"atlas.pdf", "talk.mp3", "show.mp4"} <= ids and "broken.mp4" not in ids
    rejected = ADDED["rejected"]
    assert len(rejected) == 1 and "broken.mp4" in rejected[0]["where"] + rejected[0]["reason"], rejected


def test_the_recording_is_served_in_byte_ranges(served: tuple[str, Engine, dict[str, bytes]]) -> None:
    url, _, files = served
    whole = httpx.get(f"{url}/items/show.mp4/media?medium=video", headers=W)
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert whole.content == files["show.mp4"]
    part = httpx.get(f"{url}/items/talk.mp3/media?medium=audio", headers={**W, "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == files["talk.mp3"][100:200]
    assert part.headers["content-type"] == "audio/mpeg"


def test_deleting_a_parent_removes_all_its_segments(served: tuple[str, Engine, dict[str, bytes]]) -> None:
    url, engine, _ = served
    for parent in ("atlas.pdf", "talk.mp3", "show.mp4"):
        segments = [s.item.id for s in engine.iter_items() if s.item.parent == parent]
        assert segments, parent
        answer = httpx.delete(f"{url}/items/{parent}", headers=W)
        assert answer.status_code == 200 and answer.json()["deleted"] is True
        assert all(httpx.get(f"{url}/items/{quote(s, safe='')}", headers=W).status_code == 404 for s in segments)
        assert not [s for s in engine.iter_items() if s.item.parent == parent or s.item.id == parent]
    assert engine.count({}) == 0
