"""Malformed and hostile requests get the documented 4xx with a clear message, and the server keeps serving."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from PIL import Image  # noqa: E402

from xmodal import Engine  # noqa: E402
from xmodal.encoders import HashingEncoder  # noqa: E402
from xmodal.serve import ApiKey, ServeConfig, create_app  # noqa: E402
from xmodal.serve.testing import serve_in_thread  # noqa: E402

WRITER = "write-key-0001"
LIMIT = 200_000


def image_bytes(size: tuple[int, int], fmt: str = "PNG", mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, 128).save(out, format=fmt)
    return out.getvalue()


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    engine = Engine.open(tmp_path_factory.mktemp("bad") / "idx", encoder=HashingEncoder(), index="exact")
    config = ServeConfig(
        keys=(ApiKey(WRITER, frozenset({"write"})),),
        max_body_bytes=LIMIT,
        max_pixels=1_000_000,
        log_requests=False,
        mcp=False,
        # hostile bodies cost real CPU (a 100k-deep JSON array, a decompression bomb); this module checks the
        # status and message each one gets, so anonymous CPU metering (tests/test_serve_limits.py) is off here
        anonymous_cpu=0.0,
        anonymous_total_cpu=0.0,
    )
    with serve_in_thread(create_app(engine, config)) as base:
        httpx.post(f"{base}/items", json={"items": [{"id": "a", "title": "apple"}]}, headers={"X-API-Key": WRITER})
        yield base
    engine.close()


def check(r: httpx.Response, status: int, *words: str) -> dict[str, object]:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert isinstance(body["error"], str) and body["error"]
    for word in words:
        assert word in json.dumps(body), (word, body)
    return dict(body)


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b'{"text": "apple"', 400, ["not valid JSON"]),
        (b"[" * 50_000 + b"]" * 50_000, 400, ["nested too deeply"]),
        (b'{"text": "x", "filters": {"a": NaN}}', 400, ["NaN is not valid JSON"]),
        (b'{"text": "x", "k": Infinity}', 400, ["Infinity"]),
        (b'{"text": "\\ud800 lone surrogate"}', 400, ["surrogate"]),
        (b"", 400, ["empty"]),
        (b'{"text": "\xff\xfeapple"}', 400, ["UTF-8"]),
        (b'{"text": 5}', 422, ["text"]),
        (b'{"text": "a", "k": "ten"}', 422, ['"k"']),
        (b'{"text": "a", "k": 0}', 422, ['"k"']),
        (b'{"text": "a", "k": 1e9}', 422, ['"k"']),
        (b'{"text": "a", "filters": []}', 422, ["filters"]),
        (b'{"text": "a", "filters": {"nope": 1}, "strict": true}', 422, ["filters.nope", "not an attribute"]),
        (b'{"text": "a", "filters": {"nope": {"between": 1}}}', 422, ["filters.nope.between", "unknown operator"]),
        (b'{"text": "a", "target": "audio"}', 422, ["target"]),
        (b'{"text": "a", "mode": "no-such-mode"}', 422, ["mode"]),
        (b'{"txt": "a"}', 422, ["txt"]),
        (b'{"text": "   "}', 422, ["empty"]),
        (b"[1, 2]", 422, ["body"]),
        (b'{"image_base64": "%%%"}', 422, ["image_base64", "base64"]),
    ],
)
def test_bad_search_bodies(url: str, body: bytes, status: int, words: list[str]) -> None:
    check(httpx.post(f"{url}/search", content=body, headers=JSON), status, *words)


def test_multipart_text_that_is_not_utf8_is_refused(url: str) -> None:
    boundary = "xmodalboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="text"\r\n\r\n'.encode()
        + b"\xff\xfeapple"
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    check(httpx.post(f"{url}/search", content=body, headers=headers), 400, "UTF-8", "text")
    items_body = body.replace(b'"text"', b'"items"')
    check(httpx.post(f"{url}/items", content=items_body, headers={**headers, "X-API-Key": WRITER}), 400, "UTF-8")
    ok = body.replace(b"\xff\xfeapple", "épée".encode())
    assert httpx.post(f"{url}/search", content=ok, headers=headers).status_code == 200


def test_unsupported_content_type(url: str) -> None:
    check(
        httpx.post(f"{url}/search", content=b"text=apple", headers={"content-type": "text/plain"}), 415, "Content-Type"
    )


def test_huge_bodies_are_refused(url: str) -> None:
    big = b'{"text": "' + b"a" * (LIMIT + 10) + b'"}'
    check(httpx.post(f"{url}/search", content=big, headers=JSON), 413, "larger than")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        yield b'{"text": "'
        for _ in range(30):
            yield b"a" * 10_000
        yield b'"}'

    check(httpx.post(f"{url}/search", content=chunks(), headers=JSON), 413, "larger than")
    upload = {"image": ("big.bin", b"\0" * (LIMIT + 1), "image/png")}
    check(httpx.post(f"{url}/search", files=upload), 413)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (image_bytes((64, 64))[:60], ["image", "corrupt or truncated"]),
        (b"this is plain text, not an image", ["image", "not a readable image"]),
        (image_bytes((2000, 2000), mode="L"), ["pixels exceeds the limit", "decompression bomb"]),  # 4 Mpx, a few kB
        (b"", ["empty"]),
    ],
    ids=["truncated", "not-an-image", "decompression-bomb", "empty"],
)
def test_bad_uploads(url: str, data: bytes, words: list[str]) -> None:
    assert len(data) < LIMIT
    # the first image query of the module may load the image side (30 s: a loaded machine took over 5)
    check(httpx.post(f"{url}/search", files={"image": ("q.png", data, "image/png")}, timeout=30), 422, *words)
    items = [{"id": "up", "title": "x", "image_base64": base64.b64encode(data).decode()}]
    r = httpx.post(f"{url}/items", json={"items": items}, headers={"X-API-Key": WRITER})
    assert r.status_code == 200 and r.json()["added"] == [] and r.json()["rejected"][0]["where"] == "up"


def test_image_as_a_text_field_is_refused(url: str) -> None:
    check(httpx.post(f"{url}/search", data={"image": "/etc/passwd"}, files={"x": ("x", b"1")}), 422, "file part")


def test_broken_multipart(url: str) -> None:
    r = httpx.post(
        f"{url}/search",
        content=b'--xx\r\nContent-Disposition: form-data; name="text"\r\n\r\napple',
        headers={"content-type": "multipart/form-data; boundary=xx"},
    )
    assert r.status_code in (400, 422) and r.json()["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/items/..%2F..%2Fetc%2Fpasswd",
        "/items/../../etc/passwd/media",
        "/items/a%2F..%2F..%2Fstore.sqlite/media",
        "/items/%2e%2e/thumbnail",
        "/static/../store.sqlite",
        "/static/%2e%2e/%2e%2e/pyproject.toml",
    ],
)
def test_path_traversal_finds_nothing(url: str, path: str) -> None:
    r = httpx.get(f"{url}{path}")
    assert r.status_code == 404, (path, r.status_code, r.text[:200])
    assert b"sqlite" not in r.content[:16] and b"[project]" not in r.content


def test_lone_surrogates_never_reach_the_index(url: str) -> None:
    """Python's json accepts "\\ud800"; stored, it would break every later response that includes it."""
    for body in (
        b'{"items": [{"id": "\\ud800", "title": "x"}]}',
        b'{"items": [{"id": "s1", "title": "x", "attributes": {"\\udfff": "v"}}]}',
    ):
        r = httpx.post(f"{url}/items", content=body, headers={**JSON, "X-API-Key": WRITER})
        check(r, 400, "surrogate")
    r = httpx.post(f"{url}/feedback", content=b'{"query_id": "\\ud800", "item_id": "a"}', headers=JSON)
    assert 400 <= r.status_code < 500 and r.json()["error"]
    assert httpx.get(f"{url}/facets").status_code == 200
    assert httpx.post(f"{url}/search", json={"text": "apple"}).status_code == 200


def test_items_cannot_name_server_files(url: str) -> None:
    items = [
        {"id": "p1", "title": "x", "image": "/etc/passwd"},
        {"id": "p2", "title": "x", "image_file": "../../etc/passwd"},
    ]
    r = httpx.post(f"{url}/items", json={"items": items}, headers={"X-API-Key": WRITER})
    assert r.json()["added"] == [] and {x["where"] for x in r.json()["rejected"]} == {"p1", "p2"}
    assert (
        "extra" in r.json()["rejected"][0]["reason"].lower()
        or "not permitted" in r.json()["rejected"][0]["reason"].lower()
    )


@pytest.mark.parametrize(
    ("body", "status"),
    [({"items": "x"}, 422), ({"items": [{"id": "x"}] * 1001}, 413), ({"things": []}, 422)],
)
def test_bad_item_batches(url: str, body: object, status: int) -> None:
    check(httpx.post(f"{url}/items", json=body, headers={"X-API-Key": WRITER}), status, "items")


@pytest.mark.parametrize(
    ("body", "status", "word"),
    [
        (b'{"query_id": "q"', 400, "JSON"),
        (b'{"query_id": 1, "item_id": "a"}', 422, "query_id"),
        (b'{"query_id": "q", "item_id": "a", "position": -1}', 422, "position"),
        (b'{"query_id": "q", "item_id": "a", "event": "DROP TABLE"}', 422, "event"),
        (b'{"query_id": "q\xff", "item_id": "a"}', 400, ""),
    ],
)
def test_bad_feedback(url: str, body: bytes, status: int, word: str) -> None:
    check(httpx.post(f"{url}/feedback", content=body, headers=JSON), status, word)


def test_missing_or_wrong_key(url: str) -> None:
    check(httpx.delete(f"{url}/items/a"), 401, "API key")
    check(httpx.delete(f"{url}/items/a", headers={"Authorization": "Basic abc"}), 401, "unknown API key")
    check(httpx.delete(f"{url}/items/a", headers={"X-API-Key": "x" * 10_000}), 401)


def test_still_serving_after_all_that(url: str) -> None:
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    assert httpx.post(f"{url}/search", json={"text": "apple"}).json()["hits"][0]["id"] == "a"
    assert 'kind="server"' not in httpx.get(f"{url}/metrics").text  # not one 5xx
