"""Request ids on every answer, the one Host check of REST and MCP, clipped echoes and the /mcp metrics
label, against a real uvicorn server on 127.0.0.1 (issue 13, defects 8 and 12)."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from xmodal import Engine, Item  # noqa: E402
from xmodal.encoders import HashingEncoder  # noqa: E402
from xmodal.errors import ConfigError  # noqa: E402
from xmodal.serve import ApiKey, ServeConfig, create_app  # noqa: E402
from xmodal.serve.testing import free_port, serve_in_thread, wait_ready  # noqa: E402

SLOW = "slow-key-00001"
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with Engine.open(tmp_path_factory.mktemp("hosts") / "idx", encoder=HashingEncoder(), index="exact") as engine:
        engine.add([Item.create("lamp", title="desk lamp")])
        yield engine


def boom_app(engine: Engine, config: ServeConfig) -> Any:
    """The real app plus one route that fails the way a bug would (an exception no handler knows)."""
    app = create_app(engine, config)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    return app


@pytest.fixture(scope="module")
def served(engine: Engine) -> Iterator[str]:
    config = ServeConfig(
        keys=(ApiKey(SLOW, frozenset({"read"}), "slow", rate=0.5, burst=1),), max_body_bytes=10_000, log_requests=False
    )
    with serve_in_thread(boom_app(engine, config)) as url:
        yield url


def same_id(r: Any) -> str:
    """The answer's X-Request-ID, checked to be the one its error body quotes."""
    rid = r.headers["x-request-id"]
    assert rid and r.json()["request_id"] == rid, (r.status_code, r.headers, r.text)
    return str(rid)


def test_every_kind_of_answer_carries_its_request_id(served: str) -> None:
    url = served
    assert httpx.get(f"{url}/health").headers["x-request-id"]  # success
    assert httpx.get(f"{url}/items/nope").status_code == 404 and same_id(httpx.get(f"{url}/items/nope"))
    bad = httpx.post(f"{url}/search", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and same_id(bad)
    big = httpx.post(f"{url}/search", json={"text": "x" * 20_000})  # over max_body_bytes, by Content-Length
    assert big.status_code == 413 and same_id(big) and big.json()["field"] == "body"

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused while streaming
        yield b'{"text": "'
        for _ in range(20):
            yield b"x" * 1000

    streamed = httpx.post(f"{url}/search", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413 and same_id(streamed)
    limited = [httpx.get(f"{url}/facets", headers={"Authorization": f"Bearer {SLOW}"}) for _ in range(3)]
    assert limited[-1].status_code == 429 and same_id(limited[-1])
    unknown_key = httpx.post(f"{url}/mcp", json=INIT, headers={**MCP_HEADERS, "Authorization": "Bearer wrong-key-1"})
    assert unknown_key.status_code == 401 and same_id(unknown_key) and unknown_key.json()["field"] == "Authorization"


def test_a_500_carries_its_own_request_id_in_header_and_body(served: str, caplog: pytest.LogCaptureFixture) -> None:
    with httpx.Client(base_url=served) as client, caplog.at_level(logging.ERROR, "xmodal.serve"):
        first = client.get("/boom", headers={"X-Request-ID": "boom-1"})
        ok = client.get("/health", headers={"X-Request-ID": "fine-2"})
        second = client.get("/boom")  # the same connection: no id left over from an earlier request
    assert first.status_code == 500 and same_id(first) == "boom-1"
    assert "internal error" in first.json()["error"] and "a bug" not in first.text  # no internals leak
    assert ok.headers["x-request-id"] == "fine-2"
    assert second.status_code == 500 and same_id(second) not in ("boom-1", "fine-2", "-")
    assert any(r.getMessage() == "unhandled error" and r.exc_info for r in caplog.records)  # logged with traceback


def test_a_foreign_host_gets_421_on_rest_the_page_and_mcp(served: str) -> None:
    port = served.rsplit(":", 1)[1]
    for method, path in [("GET", "/health"), ("GET", "/items/lamp"), ("GET", "/"), ("POST", "/mcp")]:
        r = httpx.request(method, f"{served}{path}", json=INIT, headers={**MCP_HEADERS, "Host": f"evil.example:{port}"})
        assert r.status_code == 421, (path, r.status_code, r.text)
        body = r.json()
        assert body["field"] == "Host" and "evil.example" in body["error"] and "--allowed-host" in body["fix"]
        assert same_id(r)
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost", f"[::1]:{port}", f"LOCALHOST.:{port}"):
        assert httpx.get(f"{served}/items/lamp", headers={"Host": host}).status_code == 200, host
    assert (
        httpx.post(f"{served}/mcp", json=INIT, headers={**MCP_HEADERS, "Host": f"localhost:{port}"}).status_code == 200
    )
    # MCP keeps the SDK's Origin check, fed the same hosts: a page on another site cannot call it
    foreign = httpx.post(f"{served}/mcp", json=INIT, headers={**MCP_HEADERS, "Origin": "http://evil.example"})
    assert foreign.status_code == 403
    own = httpx.post(f"{served}/mcp", json=INIT, headers={**MCP_HEADERS, "Origin": f"http://127.0.0.1:{port}"})
    assert own.status_code == 200


def test_allowed_hosts_setting_adds_names_for_rest_and_mcp(engine: Engine) -> None:
    config = ServeConfig(allowed_hosts=("search.example", "api.example:8443"), log_requests=False)
    with serve_in_thread(create_app(engine, config)) as url:
        port = url.rsplit(":", 1)[1]

        def status(host: str, path: str = "/health") -> int:
            return httpx.post(f"{url}{path}", json=INIT, headers={**MCP_HEADERS, "Host": host}).status_code

        assert httpx.get(f"{url}/health", headers={"Host": f"search.example:{port}"}).status_code == 200
        assert status(f"search.example:{port}", "/mcp") == 200  # the SDK's own check agrees
        assert status("api.example:8443", "/mcp") == 200 and status("api.example:9000", "/mcp") == 421
        assert httpx.get(f"{url}/health", headers={"Host": "api.example:9000"}).status_code == 421
        assert httpx.get(f"{url}/health", headers={"Host": f"localhost:{port}"}).status_code == 200


def test_which_hosts_are_allowed_by_default_and_on_every_interface(caplog: pytest.LogCaptureFixture) -> None:
    from xmodal.serve.hosts import allowed_hosts

    loopback = allowed_hosts(ServeConfig())
    assert loopback is not None and loopback.names() == ["127.0.0.1", "[::1]", "localhost"]
    lan = allowed_hosts(ServeConfig(host="10.1.2.3", allowed_hosts=("[fd00::5]:80",)))
    assert lan is not None and lan.allows("10.1.2.3:8080") and lan.allows("[fd00::5]:80") and not lan.allows("x")
    assert not lan.allows("[fd00::5]:81") and not lan.allows("") and not lan.allows(None)
    assert allowed_hosts(ServeConfig(allowed_hosts=("*",))) is None
    with caplog.at_level(logging.WARNING, "xmodal.serve"):
        assert allowed_hosts(ServeConfig(host="0.0.0.0")) is None  # names unknown: any Host, with a warning
    assert any("--allowed-host" in r.getMessage() for r in caplog.records)
    every = allowed_hosts(ServeConfig(host="0.0.0.0", allowed_hosts=("search.example",)))
    assert every is not None and every.allows("search.example") and not every.allows("evil.example")


def test_allowed_hosts_setting_is_checked() -> None:
    assert ServeConfig.from_dict({"allowed_hosts": ["a.example", " b.example:81 "]}).allowed_hosts == (
        "a.example",
        "b.example:81",
    )
    for bad in ("a.example", ["http://a.example/"], ["a b"], [""], [3]):
        with pytest.raises(ConfigError, match="allowed_hosts"):
            ServeConfig.from_dict({"allowed_hosts": bad})


def test_serve_command_takes_allowed_hosts(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        engine.add([Item.create("a", title="a")])
    port = free_port()
    cmd = [sys.executable, "-m", "xmodal.serve", "serve", "--index", str(tmp_path / "idx"), "--port", str(port)]
    cmd += ["--allowed-host", "search.example", "--allowed-host", "other.example", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc)
        assert httpx.get(f"{url}/health", headers={"Host": "other.example"}).status_code == 200
        assert httpx.get(f"{url}/health", headers={"Host": "evil.example"}).status_code == 421
    finally:
        proc.terminate()
        proc.wait(30)
    bad = subprocess.run([*cmd[:-2], "--allowed-host", "http://x/"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "--allowed-host" in bad.stderr


def test_a_long_rejected_input_is_not_echoed_whole(served: str) -> None:
    from xmodal.serve.echo import clip_message

    long_id = "x" * 60_000  # what a URL can carry; the clip is the same at 100 kB
    r = httpx.get(f"{served}/items/{long_id}")
    assert r.status_code == 404 and len(r.text) < 500 and "x" * 80 + "\u2026" in r.json()["error"]
    big = "y" * 100_000
    r = httpx.post(f"{served}/search", json={"text": "a", "filters": {big[:9000]: "v"}, "strict": True})  # < limit
    assert r.status_code == 422 and len(r.text) < 1500 and "y" * 81 not in r.text, r.text[:300]
    assert clip_message(f"no item with id {big!r}") == f"no item with id '{'y' * 80}\u2026'"
    assert clip_message("mode 'short' is fine") == "mode 'short' is fine"
    assert len(clip_message("z" * 5000)) == 81 and len(clip_message("z " * 5000)) == 1001


def test_mcp_requests_are_labelled_in_metrics(served: str) -> None:
    assert httpx.post(f"{served}/mcp", json=INIT, headers=MCP_HEADERS).status_code == 200
    text = httpx.get(f"{served}/metrics").text
    assert 'xmodal_requests_total{method="POST",route="/mcp",status="200"}' in text
    assert 'route="unmatched",status="200"' not in text
