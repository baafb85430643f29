"""Durability and load against a real server process: kill -9 mid write burst loses no acknowledged
write; 32 concurrent clients get zero errors and every acknowledged write is found afterwards; an idle
keep-alive connection stays open for the configured time, longer than clients keep theirs."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from xmodal.errors import ConfigError  # noqa: E402
from xmodal.serve.config import ServeConfig  # noqa: E402
from xmodal.serve.testing import free_port, run_load, spawn_server  # noqa: E402

KEY = "durable-writer-01"
ENV = {"XMODAL_API_KEYS": f"{KEY}:write"}


def config(tmp_path: Path) -> Path:
    path = tmp_path / "serve.toml"
    path.write_text("rate = 100000.0\nburst = 100000\nlog_requests = false\nmcp = false\n")
    return path


def all_present(url: str, ids: list[str]) -> list[str]:
    with httpx.Client(base_url=url, timeout=30) as client:
        return [i for i in ids if client.get(f"/items/{i}").status_code != 200]


def start_burst(url: str, acked: list[str], writers: int = 8) -> list[threading.Thread]:
    """Writer threads adding 3-item batches until the server goes away; acknowledged ids go to ``acked``."""
    lock = threading.Lock()

    def writer(n: int) -> None:
        with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=10) as client:
            for i in range(100_000):
                ids = [f"w{n}-{i}-{j}" for j in range(3)]
                try:
                    r = client.post("/items", json={"items": [{"id": x, "title": f"burst {x}"} for x in ids]})
                except httpx.HTTPError:
                    return  # the server is gone
                if r.status_code == 200:
                    with lock:
                        acked.extend(r.json()["added"])
                elif r.status_code == 503:
                    return  # shutting down: the write was refused, not acknowledged

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acked) < 150 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(acked) >= 150, "the burst did not get going"
    return threads


def test_kill_9_mid_write_burst_loses_no_acknowledged_write(tmp_path: Path) -> None:
    index, cfg = tmp_path / "idx", config(tmp_path)
    port = free_port()
    proc = spawn_server(index, port, config=cfg, env=ENV, log=tmp_path / "server.log")
    acked: list[str] = []
    threads = start_burst(f"http://127.0.0.1:{port}", acked)
    proc.kill()  # SIGKILL in the middle of the burst
    proc.wait(10)
    for t in threads:
        t.join(15)

    port2 = free_port()
    proc2 = spawn_server(index, port2, config=cfg, env=ENV, log=tmp_path / "server.log")
    try:
        missing = all_present(f"http://127.0.0.1:{port2}", acked)
        assert missing == [], f"{len(missing)} acknowledged items lost, e.g. {missing[:5]}"
        assert httpx.get(f"http://127.0.0.1:{port2}/health").json()["items"] >= len(acked)
    finally:
        proc2.terminate()
        assert proc2.wait(30) == 0  # graceful shutdown on SIGTERM


def test_sigterm_mid_write_burst_drains_and_loses_nothing(tmp_path: Path) -> None:
    index = tmp_path / "idx"
    port = free_port()
    proc = spawn_server(index, port, config=config(tmp_path), env=ENV, log=tmp_path / "server.log")
    acked: list[str] = []
    threads = start_burst(f"http://127.0.0.1:{port}", acked)
    proc.terminate()  # graceful: in-flight requests finish, queued writes commit, indexes checkpoint
    assert proc.wait(30) == 0
    for t in threads:
        t.join(15)
    from xmodal import Engine

    with Engine.open(index) as engine:
        missing = [i for i in acked if i not in engine]
    assert missing == [], f"{len(missing)} acknowledged items lost, e.g. {missing[:5]}"


def test_load_32_clients_zero_errors_and_every_write_found(tmp_path: Path) -> None:
    port = free_port()
    proc = spawn_server(tmp_path / "idx", port, config=config(tmp_path), env=ENV, log=tmp_path / "server.log")
    url = f"http://127.0.0.1:{port}"
    try:
        report = asyncio.run(run_load(url, clients=32, seconds=3.0, write_every=5, key=KEY))
        summary = report.summary()
        assert report.errors == [], report.errors[:5]
        assert summary["search"]["n"] > 50 and summary["write"]["n"] > 10, summary
        assert all_present(url, report.acked) == []
        proc.terminate()  # graceful: drains the write queue, checkpoints, exits 0
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def ask_health(sock: socket.socket) -> bytes:
    """One ``GET /health`` on an open connection: the answer's status line (b"" when the server had closed the
    connection), its headers and body read to the end."""
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    with sock.makefile("rb") as reader:
        status = reader.readline()
        length = 0
        while (line := reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        reader.read(length)
    return status


def test_an_idle_keep_alive_connection_stays_open_for_keep_alive_seconds(tmp_path: Path) -> None:
    """The server's ``keep_alive``: a connection idle for less is served again, one idle for longer is closed
    by the server; by default it outlives httpx's own idle expiry (which this package's client uses), so a
    client never reuses a connection the server is closing (uvicorn's 5 s against httpx's 5 s: a ReadError
    about once in 3,000 requests under load)."""
    assert ServeConfig().keep_alive > 60 > httpx.Limits(max_connections=1).keepalive_expiry  # and load balancers'
    with pytest.raises(ConfigError, match="keep_alive must be a positive integer"):
        ServeConfig.from_dict({"keep_alive": 0})
    path = tmp_path / "serve.toml"
    path.write_text("keep_alive = 2\nlog_requests = false\nmcp = false\n")
    port = free_port()
    proc = spawn_server(tmp_path / "idx", port, config=path, log=tmp_path / "server.log")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            assert ask_health(sock).startswith(b"HTTP/1.1 200")
            time.sleep(1.0)
            assert ask_health(sock).startswith(b"HTTP/1.1 200")  # the same connection, served again
            time.sleep(3.0)
            sock.settimeout(1.0)  # closed a second ago: a server still holding it (uvicorn's 5 s) times out here
            assert sock.recv(1) == b""  # the server closed it after 2 s idle
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_server_in_a_thread_keeps_its_apps_keep_alive(tmp_path: Path) -> None:
    """``serve_in_thread`` (the tests' server) holds an idle connection as long as the app's config says."""
    from xmodal import Engine
    from xmodal.encoders import HashingEncoder
    from xmodal.serve import create_app
    from xmodal.serve.testing import serve_in_thread

    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        app = create_app(engine, ServeConfig(keep_alive=1, log_requests=False, mcp=False))
        with serve_in_thread(app) as url, socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as sock:
            assert ask_health(sock).startswith(b"HTTP/1.1 200")
            time.sleep(2.0)
            sock.settimeout(2.0)  # a server holding it the default 65 s times out here
            assert sock.recv(1) == b""  # closed after 1 s idle
