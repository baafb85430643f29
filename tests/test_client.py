"""xmodal.Client and AsyncClient against a real server on 127.0.0.1: the same script of calls run on an
Engine and on a Client gives the same results and the same errors (class, message, field, fix)."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

import xmodal  # noqa: E402
from xmodal import Engine, Item, Query  # noqa: E402
from xmodal.client import AsyncClient, Client, plans  # noqa: E402
from xmodal.client.decode import error_of  # noqa: E402
from xmodal.collection import Fetched, Page  # noqa: E402
from xmodal.encoders import HashingEncoder  # noqa: E402
from xmodal.errors import (  # noqa: E402
    AccessDenied,
    ConnectionFailed,
    DiskFull,
    ImageError,
    NotFoundError,
    RemoteError,
    StorageError,
    ValidationError,
    XmodalError,
)
from xmodal.serve import ApiKey, ServeConfig, create_app  # noqa: E402
from xmodal.serve.testing import free_port, serve_in_thread  # noqa: E402

from .test_serve_api import png  # noqa: E402

WRITER, READER = "client-writer-0001", "client-reader-0001"
FAST = {"rate": 1e6, "burst": 1_000_000}
KEYS = (
    ApiKey(WRITER, frozenset({"read", "write"}), "writer", **FAST),  # type: ignore[arg-type]
    ApiKey(READER, frozenset({"read"}), "reader", **FAST),  # type: ignore[arg-type]
)


def open_engine(path: Path) -> Engine:
    return Engine.open(path, encoder=HashingEncoder(), index="exact")


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Engine, Client, Engine]]:
    """An embedded engine, and a client of a server over another engine opened the same way."""
    local, remote = open_engine(tmp_path / "local"), open_engine(tmp_path / "remote")
    with serve_in_thread(create_app(remote, ServeConfig(keys=KEYS, log_requests=False))) as url:
        with Client(url, api_key=WRITER) as client:
            yield local, client, remote
    local.close()
    remote.close()


def catalog(folder: Path) -> list[Item]:
    (folder / "photo.png").write_bytes(png(3))
    return [
        Item.create("red", title="red running shoe", attributes={"color": "red", "price": 59, "tags": ["sale"]}),
        Item.create("blue", title="blue coffee mug", text="ceramic", attributes={"color": "blue", "maker": {"n": "A"}}),
        Item.create("pic", title="a picture of a shoe", image=png(1), attributes={"color": "green"}),
        Item.create("path", image="photo.png", attributes={"color": "red", "price": None}),
        Item.create("page2", title="hiking boots guide, page two", parent="blue", span=2),
        Item.create("clip", title="a clip about mugs", parent="blue", span={"start": 1.5, "end": 3.0}),
        Item.create("missing", title="broken", image="no-such.png"),
        Item.create("corrupt", title="corrupt", image=b"not an image at all"),
        Item.create("red", title="the same id again"),
        Item.create("own", title="own vector"),
        Item.create("nan", title="vector with a NaN"),
    ]


def noise_png(side: int) -> bytes:
    """A PNG that does not compress (random pixels): about 3 × side² bytes."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(side).integers(0, 255, (side, side, 3), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


def own_vectors() -> dict[str, Any]:
    rng = np.random.default_rng(7)
    # a NaN in one vector for every kind: the client checks it (JSON cannot carry it) naming "vectors", not the
    # kind the engine would expand it to; by kind both name "vectors.text"
    return {"own": {"text": rng.normal(size=384)}, "nan": {"text": [float("nan")] * 384}, "ghost": [0.1] * 384}


def outcome(fn: Callable[[], Any]) -> Any:
    """What a call gave, comparable between an engine and a client: the result without timings and
    timestamps, or the error's class, message, field and fix."""
    try:
        return ("ok", comparable(fn()))
    except XmodalError as exc:
        return ("error", type(exc).__name__, str(exc), getattr(exc, "field", None), getattr(exc, "fix", None))


def comparable(value: Any) -> Any:
    if isinstance(value, xmodal.SearchResult):  # scores as the view rounds them (6 digits)
        ids, scores = value.hits.ids.tolist(), [round(float(s), 6) for s in value.hits.scores]
        hits = ids, scores, value.hits.provenance, [comparable(i) for i in value.items], value.query_id is not None
        return hits, comparable(value.vectors), value.next_cursor is not None  # a cursor names its own index
    if isinstance(value, Page):
        return comparable(list(value.items)), value.next_cursor is not None, comparable(value.vectors)
    if isinstance(value, Fetched):
        return comparable(list(value.items)), value.missing, comparable(value.vectors)
    if isinstance(value, np.ndarray):
        return value.dtype.name, value.tolist()
    if isinstance(value, tuple):
        return tuple(comparable(v) for v in value)
    if isinstance(value, Item):
        return (value.id, value.modality, value.title, value.text, value.attributes, value.parent, value.span,
                sorted(value.media))  # fmt: skip
    if isinstance(value, xmodal.AddReport):  # Pillow's message names the address of a buffer
        return sorted(value.added), sorted((r.where, re.sub("0x[0-9a-f]+", "0x", r.reason)) for r in value.rejected)
    if isinstance(value, list):
        return [comparable(v) for v in value]
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if k != "path"}
    return value


def script(index: Any, folder: Path) -> list[Any]:
    """The same calls, on an Engine or a Client."""
    vec = HashingEncoder().encode_documents([xmodal.encoders.Content(text="red running shoe")])[0]
    steps: list[Callable[[], Any]] = [
        lambda: index.add(catalog(folder), base_dir=folder, vectors=own_vectors()),
        lambda: len(index),
        lambda: ("red" in index, "nope" in index, 3 in index),
        lambda: index.count(),
        lambda: index.count({"color": "red"}),
        lambda: index.count({"or": [{"tags": "sale"}, {"maker.n": "A"}]}),
        lambda: index.count({"nope": 1}),
        lambda: index.count({"nope": 1}, strict=True),
        lambda: index.count({"color": {"bogus": 1}}),
        lambda: [index.get(i) for i in ("red", "blue", "pic", "path", "page2", "clip", "own")],
        lambda: index.get("nope"),
        lambda: index.search("red shoe"),
        lambda: index.search("red shoe", mode="dense", k=3),
        lambda: index.search("shoe", mode="dense", k=2, offset=1, filters={"color": {"ne": "blue"}}),
        lambda: index.search("shoe", mode="dense", filters={"price": {"gte": 10}}, strict=True),
        lambda: index.search("shoe", mode="dense", filters={"nope": 1}, strict=True),
        lambda: index.search("mug", mode="dense", group="parent"),
        lambda: index.search(Query(image=png(1), k=2, target="image", mode="dense")),
        lambda: index.search(Query(text="a shoe", image="photo.png", mode="dense"), base_dir=folder),
        lambda: index.search(Query(image="gone.png"), base_dir=folder),
        lambda: index.search("shoe", target="nope"),
        lambda: index.search("shoe", k=0),
        lambda: index.search("shoe", mode="no-such-mode"),
        lambda: index.search("   "),
        lambda: index.search("shoe", filters={"color.x": 1}),
        lambda: index.search_by_vector(vec, k=3),
        lambda: index.search_by_vector(vec, k=2, offset=1, filters={"color": "red"}),
        lambda: index.search_by_vector(vec[:10]),
        lambda: index.search_by_vector([float("inf")] * 384),
        lambda: index.search_by_vector(vec, k=10_001),
        lambda: index.search("red shoe", mode="dense", k=3, with_vectors=True),
        lambda: index.search("nothing matches", mode="dense", filters={"color": "none"}, with_vectors=True),
        lambda: index.search_by_vector(vec, k=3, target="text", with_vectors=True),
        lambda: index.search_many(["red shoe", Query(text="mug", k=2, offset=1), "boots"], mode="dense"),
        lambda: index.search_many(["red shoe", Query(image=png(1), target="image")], with_vectors=True, mode="dense"),
        lambda: index.search_many(["a", "b", "c", Query(text="d", target="nope")]),
        lambda: index.search_many(["a", "b", "c", "d", "e"], filters={"nope": 1}, strict=True, mode="dense"),
        lambda: index.search_many(["a", Query(text="b", k=0)]),
        lambda: index.search_many([]),
        lambda: index.search_by_vectors([vec, -vec, vec], k=2, filters={"color": {"ne": "blue"}}, with_vectors=True),
        lambda: index.search_by_vectors([vec, vec, vec[:10]]),
        lambda: index.search_by_vectors([vec[:10], vec[:10], vec[:10]]),
        lambda: index.search_by_vectors([vec, vec, [float("nan")] * 384]),
        lambda: index.search_by_vectors([vec, vec], target="nope"),
        lambda: index.search_by_vectors(vec),
        lambda: index.search_by_vectors([]),
        lambda: index.get_many(["clip", "nope", "red", "clip", "page2"]),
        lambda: index.get_many(["own", "pic", "gone"], with_vectors=True),
        lambda: index.get_many("red"),
        lambda: index.get_many(["red", 3]),
        lambda: index.vectors("path"),
        lambda: index.vectors("nope"),
        lambda: pages(lambda cursor: index.scroll({"color": {"ne": "blue"}}, limit=2, cursor=cursor)),
        lambda: pages(lambda cursor: index.scroll(limit=3, cursor=cursor, with_vectors=True)),
        lambda: pages(lambda cursor: index.search("shoe", mode="dense", k=2, cursor=cursor)),
        lambda: index.scroll(limit=0),
        lambda: index.scroll(cursor="not-a-cursor"),
        lambda: index.scroll({"nope": 1}, strict=True),
        lambda: exported(index, folder, "all.jsonl"),
        lambda: exported(index, folder, "red.jsonl", filters={"color": "red"}, with_vectors=True),
        lambda: exported(index, folder, "all.parquet", with_vectors=True),
        lambda: exported(index, folder, "all.jsonl"),
        lambda: exported(index, folder, "all.txt"),
        lambda: index.similar("red", k=3),
        lambda: index.similar("nope"),
        lambda: index.similar("red", target="image"),
        lambda: index.update_attributes("blue", {"color": "navy", "price": 3}),
        lambda: index.update_attributes("blue", {"only": True}, merge=False),
        lambda: index.update_attributes("nope", {"a": 1}),
        lambda: index.update_attributes("blue", {"span": 1}),
        lambda: index.count({"only": True}),
        lambda: feedback(index),
        lambda: index.feedback("no-such-query", "red"),
        lambda: index.delete(["pic", "nope"]),
        lambda: index.delete_where({"color": "red"}),
        lambda: index.delete_where({}),
        lambda: index.info(),
        lambda: index.clear(),
        lambda: (index.count(), len(index)),
    ]
    return [outcome(step) for step in steps]


def pages(fetch: Callable[[str | None], Any]) -> list[Any]:
    """Every page a cursor leads to, from the first."""
    out, cursor = [], None
    while True:
        page = fetch(cursor)
        out.append(comparable(page))
        cursor = page.next_cursor
        if cursor is None or len(out) > 20:
            return out


def exported(index: Any, folder: Path, name: str, **options: Any) -> Any:
    """An export's records, without what differs between two indexes (timestamps, and the folder written)."""
    side = folder / type(index).__name__
    side.mkdir(exist_ok=True)
    try:
        report = index.export(side / name, **options)
    except ValidationError as exc:
        return type(exc).__name__, str(exc).replace(str(side), "<folder>"), exc.field, exc.fix
    if report.format == "parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(side / name).to_pylist()
    else:
        rows = [json.loads(line) for line in (side / name).read_text().splitlines()]
    drop = {"created_at", "updated_at"}
    return report.format, report.items, [{k: v for k, v in row.items() if k not in drop} for row in rows]


def feedback(index: Any) -> Any:
    result = index.search("red running shoe", log=True)
    assert result.query_id
    index.feedback(result.query_id, result.items[0].id, "click", position=1)
    try:
        index.feedback(result.query_id, "blue", "click")  # not shown for this query
    except ValidationError as exc:
        return type(exc).__name__, str(exc), exc.field, exc.fix
    return "no error"


def test_the_same_script_gives_the_same_results_and_errors(
    pair: tuple[Engine, Client, Engine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local, client, _ = pair
    monkeypatch.setattr(plans, "EXPORT_PAGE", 3)  # an export of 7 items in 3 pages
    folder = tmp_path / "files"
    folder.mkdir()
    small = Client(client.url, api_key=WRITER, batch_size=2)  # batches split over requests: errors renumbered
    with small:
        expected, got = script(local, folder), script(small, folder)
    for n, (want, have) in enumerate(zip(expected, got, strict=True)):
        assert have == want, f"step {n}"
    kinds = {o[1] for o in expected if o[0] == "error"}  # the script reaches each kind of error it means to
    assert {"ValidationError", "ImageError", "NotFoundError"} <= kinds, kinds


def test_items_and_results_are_the_engines_records(pair: tuple[Engine, Client, Engine], tmp_path: Path) -> None:
    _, client, remote = pair
    (tmp_path / "photo.png").write_bytes(png(3))
    client.add(catalog(tmp_path)[:6], base_dir=tmp_path)
    for item_id in ("red", "blue", "pic", "path", "page2", "clip"):
        assert client.get(item_id) == remote.get(item_id)  # every field, timestamps and media references included
    assert client.media("pic") == png(1) and client.media("path") == png(3)
    assert client.thumbnail("pic", size=32)[:2] == b"\xff\xd8"  # a JPEG
    result, direct = client.search("red shoe", mode="dense"), remote.search("red shoe", mode="dense")
    assert client.search("red shoe", mode="dense").items[0].id == remote.search("red shoe", mode="dense").items[0].id
    assert result.items == direct.items and result.hits.provenance == direct.hits.provenance
    assert result.hits.ids.dtype == object and result.hits.scores.dtype == np.float32
    assert np.allclose(result.hits.scores, direct.hits.scores, atol=1e-6)
    odd = "dir/a file?#%41 é.png"  # every character a path could misread
    assert client.add([Item.create(odd, title="odd id", attributes={"o": 1})]).added == [odd]
    assert client.get(odd) == remote.get(odd) and odd in client
    assert client.update_attributes(odd, {"o": 2}).attributes == {"o": 2}
    assert odd not in {i.id for i in client.similar(odd, k=8).items} and client.delete([odd]) == 1
    assert client.modes() == remote.modes()
    assert dict(client.facets())["color"] == [("red", 2), ("blue", 1), ("green", 1)]
    assert client.health()["items"] == 6


def test_an_add_is_split_into_requests_and_nothing_is_lost(pair: tuple[Engine, Client, Engine], tmp_path: Path) -> None:
    _, client, remote = pair
    items = [Item.create(f"n{i}", title=f"item {i}", image=png(i) if i % 10 == 0 else None) for i in range(95)]
    items.insert(40, Item.create("bad", title="bad image", image=b"xx"))
    small = Client(client.url, api_key=WRITER, batch_size=30, max_body_bytes=4_000)
    seen: list[int] = []
    with small:
        report = small.add(items, progress=seen.append)
        huge = small.add([Item.create("huge", title="big", image=noise_png(64))])
    assert sorted(report.added) == sorted(f"n{i}" for i in range(95)) and remote.count() == 95
    assert [r.where for r in report.rejected] == ["bad"] and sum(seen) == 96
    assert huge.added == [] and "4,000" in huge.rejected[0].reason and "huge" not in remote


def test_errors_the_server_adds(pair: tuple[Engine, Client, Engine]) -> None:
    _, client, _ = pair
    with Client(client.url) as anonymous:
        with pytest.raises(AccessDenied) as denied:
            anonymous.add([Item.create("x", title="x")])
        assert denied.value.status == 401 and "api_key" in denied.value.fix and denied.value.request_id
        assert anonymous.count() == 0  # reads are open
    with Client(client.url, api_key=READER) as reader, pytest.raises(AccessDenied) as denied:
        reader.clear()
    assert denied.value.status == 403 and "write" in str(denied.value)
    with Client(client.url, api_key="unknown-key-123") as stranger, pytest.raises(AccessDenied):
        stranger.count()
    with pytest.raises(ValidationError) as bad:
        client.search("shoe", filters={"price": float("nan")})  # not JSON: refused before sending
    assert bad.value.field == "body"


def test_a_rate_limit_is_a_remote_error_with_retry_after(tmp_path: Path) -> None:
    slow = ApiKey("slow-client-key-1", frozenset({"read"}), "slow", rate=0.5, burst=1)
    with open_engine(tmp_path / "idx") as engine:
        config = ServeConfig(keys=(slow,), log_requests=False, refusal_delay=0.0)
        with serve_in_thread(create_app(engine, config)) as url, Client(url, api_key=slow.key) as client:
            client.count()
            with pytest.raises(RemoteError) as limited:
                client.count()
    assert limited.value.status == 429 and limited.value.retry_after and limited.value.retry_after > 0
    assert not isinstance(limited.value, AccessDenied) and "retry after" in str(limited.value)


def test_no_server_is_a_connection_error_naming_the_url_and_the_fix() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, retries=0) as client, pytest.raises(ConnectionFailed) as failed:
        client.search("anything")
    assert failed.value.url == url and url in str(failed.value) and "xmodal --index DIR serve" in failed.value.fix
    assert isinstance(failed.value, ConnectionError) and failed.value.status == 0


def test_a_server_too_slow_for_the_timeout_is_a_connection_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as listener:  # accepts the connection, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with Client(url, timeout=0.3) as client, pytest.raises(ConnectionFailed) as failed:
            client.count()
    assert "within 0.3 s" in str(failed.value) and "timeout=" in failed.value.fix


class DroppingServer:
    """An HTTP/1.1 server on 127.0.0.1 that answers the first request of each connection and keeps it open, then
    closes it when the next request comes, without an answer: an idle kept-alive connection expiring just as the
    client reuses it. ``seen``: (method, path) of every request it read."""

    def __init__(self) -> None:
        import socket
        import threading

        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.seen: list[tuple[str, str]] = []
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # closed
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: Any) -> None:
        with conn, conn.makefile("rb") as reader:
            for answered in (False, True):
                head = reader.readline().split()
                if not head:
                    return
                length = 0
                while (line := reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    length = int(value) if name.strip().lower() == b"content-length" else length
                reader.read(length)
                self.seen.append((head[0].decode(), head[1].decode()))
                if answered:
                    return  # closed under the request
                body = b'{"count": 7}'
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(body), body)
                )

    def close(self) -> None:
        self.listener.close()


def test_a_read_whose_connection_was_lost_under_it_is_sent_once_more_a_write_never() -> None:
    server = DroppingServer()
    try:
        with Client(server.url, retries=0) as client:
            assert client.count() == 7  # a new connection, answered
            assert client.count() == 7  # its kept-alive connection closed under it: sent again on a new one
            assert server.seen == [("POST", "/count")] * 3 and server.connections == 2
            with pytest.raises(ConnectionFailed) as failed:
                client.feedback("q1", "a")  # a write: the server may have applied it, so it is not sent twice
            assert server.seen[3:] == [("POST", "/feedback")] and "check (get, count)" in failed.value.fix
    finally:
        server.close()


def test_the_async_client_sends_a_lost_read_once_more_a_write_never() -> None:
    server = DroppingServer()

    async def run() -> None:
        async with AsyncClient(server.url, retries=0) as client:
            assert await client.count() == 7
            assert await client.count() == 7
            with pytest.raises(ConnectionFailed):
                await client.feedback("q1", "a")

    try:
        asyncio.run(run())
        assert server.seen == [("POST", "/count")] * 3 + [("POST", "/feedback")] and server.connections == 2
    finally:
        server.close()


def test_which_calls_are_reads() -> None:
    def first(plan: Any) -> Any:
        return next(plan)

    assert first(plans.search("red boots")).repeatable  # the client's default: nothing logged
    assert not first(plans.search("red boots", log=True)).repeatable  # an impression logged: a write
    assert not first(plans.search_many(["a", "b"], log=True)).repeatable
    assert first(plans.search_many(["a", "b"])).repeatable
    assert first(plans.search_by_vector([0.1, 0.2])).repeatable and first(plans.count()).repeatable
    assert first(plans.get("a")).repeatable and not first(plans.feedback("q1", "a")).repeatable
    assert not first(plans.delete(["a"])).repeatable  # DELETE: its answer (whether it existed) would change


def test_key_and_url_from_the_environment(pair: tuple[Engine, Client, Engine], monkeypatch: pytest.MonkeyPatch) -> None:
    _, client, remote = pair
    monkeypatch.setenv("XMODAL_URL", client.url)
    monkeypatch.setenv("XMODAL_API_KEY", WRITER)
    with Client() as from_env:
        assert from_env.url == client.url
        assert from_env.add([Item.create("e1", title="from the environment")]).added == ["e1"]
    assert "e1" in remote


@pytest.mark.parametrize(
    ("status", "body", "kind", "check"),
    [
        (422, {"error": "item 'a b': image: file not found: x.png (fix it)", "field": "image", "fix": "fix it",
               "type": "ImageError"}, ImageError, lambda e: (e.item, e.problem) == ("a b", "file not found: x.png")),
        (404, {"error": "no item with id 'x'", "field": "id", "type": "NotFoundError"}, NotFoundError,
         lambda e: str(e) == "no item with id 'x'"),
        (507, {"error": "disk full", "fix": "free space on the disk holding /srv/idx, then retry", "type": "DiskFull"},
         DiskFull, lambda e: e.folder == "/srv/idx"),
        (500, {"error": "store damaged", "type": "StorageError"}, StorageError, lambda e: str(e) == "store damaged"),
        (500, {"error": "internal error"}, RemoteError, lambda e: e.status == 500),
        (503, {"error": "queue full", "fix": "retry shortly"}, RemoteError, lambda e: e.retry_after == 1.0),
        (400, {"error": "not valid JSON", "field": "body", "fix": "send JSON"}, ValidationError,
         lambda e: str(e) == "body: not valid JSON (send JSON)"),
        (404, {"error": "Not Found"}, RemoteError, lambda e: e.status == 404),
        (502, b"<html>bad gateway</html>", RemoteError, lambda e: "bad gateway" in str(e)),
    ],
)  # fmt: skip
def test_error_bodies_map_to_the_engines_classes(status: int, body: Any, kind: type, check: Any) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    exc = error_of(status, content, request_id="rid-1", retry_after="1")
    assert type(exc) is kind and exc.request_id == "rid-1" and check(exc)


def test_async_client_runs_the_same_operations(pair: tuple[Engine, Client, Engine], tmp_path: Path) -> None:
    local, client, _ = pair
    (tmp_path / "photo.png").write_bytes(png(3))
    local.add(catalog(tmp_path), base_dir=tmp_path)

    async def main() -> list[Any]:
        async with AsyncClient(client.url, api_key=WRITER) as aclient:
            steps = [
                aclient.add(catalog(tmp_path), base_dir=tmp_path),
                aclient.count({"color": "red"}),
                aclient.contains("red"),
                aclient.get("clip"),
                aclient.search("red shoe", mode="dense", k=3),
                aclient.search_by_vector(np.ones(384), k=2),
                aclient.search_many(["red shoe", "mug"], mode="dense", with_vectors=True),
                aclient.get_many(["red", "nope"], with_vectors=True),
                aclient.similar("red", k=2),
                aclient.update_attributes("red", {"color": "pink"}),
                aclient.delete_where({"color": "pink"}),
                aclient.get("nope"),
            ]
            out = [await outcome_async(step) for step in steps]
            # concurrent searches on one connection pool
            results = await asyncio.gather(*(aclient.search(f"item {i}", mode="dense") for i in range(8)))
            out.append(len(results))
            return out

    expected = [
        outcome(lambda: local.add(catalog(tmp_path), base_dir=tmp_path)),
        outcome(lambda: local.count({"color": "red"})),
        outcome(lambda: "red" in local),
        outcome(lambda: local.get("clip")),
        outcome(lambda: local.search("red shoe", mode="dense", k=3)),
        outcome(lambda: local.search_by_vector(np.ones(384), k=2)),
        outcome(lambda: local.search_many(["red shoe", "mug"], mode="dense", with_vectors=True)),
        outcome(lambda: local.get_many(["red", "nope"], with_vectors=True)),
        outcome(lambda: local.similar("red", k=2)),
        outcome(lambda: local.update_attributes("red", {"color": "pink"})),
        outcome(lambda: local.delete_where({"color": "pink"})),
        outcome(lambda: local.get("nope")),
        8,
    ]
    assert asyncio.run(main()) == expected


async def outcome_async(awaitable: Any) -> Any:
    try:
        return ("ok", comparable(await awaitable))
    except XmodalError as exc:
        return ("error", type(exc).__name__, str(exc), getattr(exc, "field", None), getattr(exc, "fix", None))


def test_async_client_over_an_in_process_transport(tmp_path: Path) -> None:
    with open_engine(tmp_path / "idx") as engine:
        app = create_app(engine, ServeConfig(keys=KEYS, log_requests=False))

        async def main() -> tuple[Any, ...]:
            transport = httpx.ASGITransport(app=app)
            async with AsyncClient("http://127.0.0.1", api_key=WRITER, transport=transport) as aclient:
                added = await aclient.add([Item.create(f"i{n}", title=f"item {n}") for n in range(5)])
                page = await aclient.scroll(limit=2)
                written = await aclient.export(tmp_path / "out.jsonl", with_vectors=True)  # pages fetched on the loop
                assert (page.next_cursor, written.items) != (None, 0)
                return added.added, (await aclient.search("item 3", mode="dense")).items[0].id, await aclient.info()

        added, top, info = asyncio.run(main())
        assert added == [f"i{n}" for n in range(5)] and top == "i3" and engine.count() == 5
        lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
        assert [row["id"] for row in lines] == added and len(lines[0]["vectors"]["text"]) == 384
        assert info == {k: v for k, v in engine.info().items() if k != "path"}


def test_async_connection_failure() -> None:
    async def main() -> None:
        async with AsyncClient(f"http://127.0.0.1:{free_port()}", retries=0) as aclient:
            await aclient.count()

    with pytest.raises(ConnectionFailed):
        asyncio.run(main())


SHARED = [
    "add", "delete", "delete_where", "clear", "update_attributes", "feedback", "get", "get_many", "vectors", "count",
    "search", "search_many", "search_by_vector", "search_by_vectors", "similar", "info", "modes", "backup",
    "scroll", "export",
]  # fmt: skip


@pytest.mark.parametrize("name", SHARED)
def test_methods_take_the_engines_arguments(name: str) -> None:
    engine = inspect.signature(getattr(Engine, name))
    for cls in (Client, AsyncClient):
        mine = inspect.signature(getattr(cls, name))
        assert [(p.name, p.kind, p.default) for p in mine.parameters.values()] == [
            (p.name, p.kind, p.default) for p in engine.parameters.values()
        ], f"{cls.__name__}.{name}"


def test_sync_and_async_clients_have_the_same_methods() -> None:
    def public(cls: type) -> dict[str, inspect.Signature]:
        return {n: inspect.signature(f) for n, f in vars(cls).items() if callable(f) and not n.startswith("_")}

    sync, aio = public(Client), public(AsyncClient)
    assert set(aio) - set(sync) == {"contains", "aclose"} and set(sync) - set(aio) == set()
    assert all(sync[n] == aio[n] for n in sync)
    assert all(inspect.iscoroutinefunction(getattr(AsyncClient, n)) for n in aio)


def test_import_xmodal_does_not_import_httpx() -> None:
    import subprocess
    import sys

    code = "import sys, xmodal; print('httpx' in sys.modules); xmodal.Client; print('httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]


def test_a_named_index_by_argument_or_url(tmp_path: Path) -> None:
    admin = ApiKey("client-admin-0001", frozenset({"admin"}), "admin", **FAST)  # type: ignore[arg-type]
    with open_engine(tmp_path / "docs") as docs, open_engine(tmp_path / "pics") as pics:
        docs.add([Item.create(f"d{i}", title=f"document {i}") for i in range(4)])
        config = ServeConfig(keys=(*KEYS, admin), log_requests=False, backup_dir=str(tmp_path / "backups"))
        app = create_app(None, config, indexes={"docs": docs, "pics": pics})
        with (
            serve_in_thread(app) as url,
            Client(url, index="pics", api_key=WRITER) as by_name,
            Client(f"{url}/indexes/docs", api_key=admin.key) as by_url,
        ):
            assert (by_name.index, by_url.index, by_url.url) == ("pics", "docs", url)
            assert by_name.add([Item.create("p1", title="a picture")]).added == ["p1"]
            assert "p1" in pics and "p1" not in docs and by_name.count() == 1 and by_url.count() == 4
            assert by_url.get("d2") == docs.get("d2") and by_url.search("document 2", mode="dense").items[0].id == "d2"
            with pytest.raises(NotFoundError):
                by_name.get("d2")  # another index's item
            assert by_name.health()["status"] == "ok"  # a route of the server, not under the index
            assert [(i["name"], i["items"]) for i in by_name.indexes()] == [("docs", 4), ("pics", 1)]
            made = by_url.backup("docs-1")
            assert made["items"] == 4 and (tmp_path / "backups" / "docs-1" / "manifest.json").exists()
            with pytest.raises(AccessDenied):
                by_name.backup("pics-1")  # a write key, not an admin one
            with pytest.raises(ValidationError) as bad:
                by_url.backup("../escape")
            assert bad.value.field == "name"
            with Client(url, index="nope", api_key=WRITER) as unknown, pytest.raises(RemoteError) as missing:
                unknown.count()
            assert missing.value.status == 404 and "docs" in str(missing.value)
    with pytest.raises(xmodal.ConfigError):
        Client("http://127.0.0.1:1/indexes/docs", index="pics")
