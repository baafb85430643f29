"""The MCP ``add_items`` tool (issue 14): items with media as base64 (bounded by the server's REST limits) or
by path inside the one folder the server takes files from (anything else refused alike), files split into
segments, one bad item rejected alone, the write scope over HTTP."""

from __future__ import annotations

import base64
import io
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("mcp")

from xmodal import Engine, Query  # noqa: E402
from xmodal.encoders import HashingEncoder  # noqa: E402
from xmodal.errors import ConfigError  # noqa: E402
from xmodal.serve import ApiKey, ServeConfig, create_app  # noqa: E402
from xmodal.serve.mcp import build_mcp  # noqa: E402
from xmodal.serve.mcp_add import NO_PATH  # noqa: E402
from xmodal.serve.policy import Limits  # noqa: E402
from xmodal.serve.testing import serve_in_thread  # noqa: E402

from .test_serve_mcp import structured  # noqa: E402
from .test_serve_mcp_collection import call  # noqa: E402

READER, WRITER = "mcp-reader-0002", "mcp-writer-0002"


def png(color: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact", extensions=[]) as eng:
        yield eng


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    out = tmp_path / "uploads"
    out.mkdir()
    (out / "red.png").write_bytes(png((220, 30, 30)))
    (out / "sub").mkdir()
    (out / "sub" / "green.png").write_bytes(png((30, 200, 40)))
    secret = tmp_path / "secret.png"
    secret.write_bytes(png((1, 2, 3)))
    os.symlink(secret, out / "link.png")  # inside the folder, pointing out of it
    return out


def test_base64_and_folder_paths_are_added_and_a_bad_item_is_rejected_alone(
    engine: Engine, folder: Path, tmp_path: Path
) -> None:
    server = build_mcp(engine, media_folder=folder)
    items = [
        {"id": "note", "title": "A note about whales", "attributes": {"kind": "note"}},
        {"id": "blue", "title": "blue square", "image_base64": b64(png((20, 40, 220)))},
        {"id": "red", "title": "red square", "image_path": "red.png"},  # relative to the folder
        {"id": "green", "title": "green square", "image_path": str(folder / "sub" / "green.png")},
        {"id": "sound", "title": "a sound", "media_base64": {"image": b64(png((9, 9, 9)))}},
        {"id": "bad64", "title": "x", "image_base64": "not base64!"},
        {"id": "nofile", "title": "x", "image_path": "missing.png"},
        {"id": "escape", "title": "x", "image_path": "../secret.png"},
        {"id": "link", "title": "x", "image_path": "link.png"},
        {"id": "abs", "title": "x", "image_path": str(tmp_path / "secret.png")},
        {"id": "odd", "title": "x", "colour": "red"},
        {"title": "no id"},
    ]
    got = structured(call(server, "add_items", {"items": items}))
    assert sorted(got["added"]) == ["blue", "green", "note", "red", "sound"]
    reasons = {r["where"]: r["reason"] for r in got["rejected"]}
    assert set(reasons) == {"bad64", "nofile", "escape", "link", "abs", "odd", "items[11]"}
    assert "image_base64: is not valid base64" in reasons["bad64"]
    for name in ("nofile", "escape", "link", "abs"):  # one answer whether the file exists or not
        assert f"image_path: {NO_PATH}" in reasons[name] and str(folder) in reasons[name]
    assert "colour: unknown field" in reasons["odd"] and "id: missing" in reasons["items[11]"]
    assert engine.get("red").image is not None and engine.get("note").attributes["kind"] == "note"
    assert engine.search(Query(text="blue square", k=1)).hits.ids[0] == "blue"


def test_without_a_folder_no_path_is_accepted(engine: Engine, folder: Path) -> None:
    got = structured(
        call(build_mcp(engine), "add_items", {"items": [{"id": "r", "image_path": str(folder / "red.png")}]})
    )
    assert got["added"] == [] and "paths are not accepted" in got["rejected"][0]["reason"]


def test_the_rest_limits_bound_the_files_of_a_call(engine: Engine, folder: Path) -> None:
    big = png((10, 10, 10), (400, 400))
    limits = Limits(ServeConfig(max_body_bytes=len(big) + 100, max_image_bytes=len(big) + 100, max_batch=3))
    server = build_mcp(engine, limits=limits, media_folder=folder)
    first = {"id": "a", "title": "a", "image_base64": b64(big)}
    second = {"id": "b", "title": "b", "image_base64": b64(big)}  # past max_body_bytes with the first
    got = structured(call(server, "add_items", {"items": [first, second]}))
    assert got["added"] == ["a"] and "max_body_bytes" in got["rejected"][0]["reason"]
    too_many = call(server, "add_items", {"items": [{"id": str(i), "title": "t"} for i in range(4)]})
    assert too_many.is_error and "1 to 3 item objects" in too_many.content[0].text
    small = Limits(ServeConfig(max_image_bytes=100))
    refused = structured(call(build_mcp(engine, limits=small), "add_items", {"items": [first]}))
    assert refused["added"] == [] and "at most 100 are accepted" in refused["rejected"][0]["reason"]
    broken = {"id": "broken", "title": "b", "image_base64": b64(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)}
    assert "broken" not in structured(call(server, "add_items", {"items": [broken]}))["added"]  # decoded: refused


def test_a_file_is_split_into_its_segments(engine: Engine, folder: Path) -> None:
    from tests.av_clips import need_tools, speak

    need_tools()
    wav = speak(folder / "talk.wav", "The blue whale is the largest animal that has ever lived.")
    server = build_mcp(engine, media_folder=folder)
    by_path = structured(call(server, "add_items", {"items": [{"id": "talk", "file_path": "talk.wav"}]}))
    assert by_path["added"][0] == "talk" and len(by_path["added"]) >= 2 and not by_path["rejected"]
    assert engine.get(by_path["added"][1]).parent == "talk"
    upload = {"id": "again", "file_base64": b64(wav.read_bytes()), "file_name": "again.wav", "title": "Again"}
    by_bytes = structured(call(server, "add_items", {"items": [upload]}))
    assert by_bytes["added"][0] == "again" and engine.get("again").title == "Again"
    nameless = structured(call(server, "add_items", {"items": [{"id": "n", "file_base64": b64(b"abc")}]}))
    assert "file_name: is missing" in nameless["rejected"][0]["reason"]
    hit = engine.search(Query(text="largest animal", k=1)).items[0]
    assert hit.parent in ("talk", "again")


def test_over_http_it_needs_the_write_scope_and_the_config_names_the_folder(engine: Engine, folder: Path) -> None:
    keys = (ApiKey(READER, frozenset({"read"})), ApiKey(WRITER, frozenset({"read", "write"})))
    config = ServeConfig(keys=keys, log_requests=False, mcp_media_folder=str(folder))
    item = {"items": [{"id": "r", "title": "red", "image_path": "red.png"}]}
    with serve_in_thread(create_app(engine, config)) as url:
        refused = call(f"{url}/mcp", "add_items", item, {"Authorization": f"Bearer {READER}"})
        assert refused.is_error and "'write' scope" in refused.content[0].text
        added = structured(call(f"{url}/mcp", "add_items", item, {"Authorization": f"Bearer {WRITER}"}))
        assert added["added"] == ["r"]
    with pytest.raises(ConfigError, match="mcp_media_folder must be an absolute folder path"):
        ServeConfig.from_dict({"mcp_media_folder": "uploads"})


def test_over_http_every_write_runs_on_the_servers_writer_thread(
    engine: Engine, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MCP writes queue behind REST's on the server's one writer thread (group commits, no write straddling a
    reindex switch), never on the tool call's own thread; over stdio there is none: they run at once."""
    threads: list[tuple[str, str]] = []
    for name in ("add", "delete", "delete_where", "update_attributes"):
        method = getattr(engine, name)

        def spy(*args: Any, _method: Any = method, _name: str = name, **kwargs: Any) -> Any:
            threads.append((_name, threading.current_thread().name))
            return _method(*args, **kwargs)

        monkeypatch.setattr(engine, name, spy)
    keys = (ApiKey(WRITER, frozenset({"read", "write"})),)
    config = ServeConfig(keys=keys, log_requests=False, mcp_media_folder=str(folder))
    auth = {"Authorization": f"Bearer {WRITER}"}
    items = {"items": [{"id": "r", "title": "red", "image_path": "red.png"}, {"id": "t", "title": "tea"}]}
    with serve_in_thread(create_app(engine, config)) as url:
        assert structured(call(f"{url}/mcp", "add_items", items, auth))["added"] == ["r", "t"]
        update = {"id": "t", "attributes": {"shelf": 2}}
        assert structured(call(f"{url}/mcp", "update_attributes", update, auth))["item"]["data"]["attributes"] == {
            "shelf": 2
        }
        assert structured(call(f"{url}/mcp", "delete_where", {"filters": {"shelf": 2}}, auth))["deleted"] == 1
        gone = structured(call(f"{url}/mcp", "delete_items", {"ids": ["r", "x"]}, auth))
        assert gone == {"deleted": 1, "not_found": ["x"]}
    assert [n for n, _ in threads] == ["add", "update_attributes", "delete_where", "delete"]
    assert {t for _, t in threads} == {"xmodal-writer"}
    threads.clear()
    assert structured(call(build_mcp(engine), "add_items", {"items": [{"id": "s", "title": "sofa"}]}))["added"] == ["s"]
    assert [n for n, _ in threads] == ["add"] and threads[0][1] != "xmodal-writer"  # no writer thread here
