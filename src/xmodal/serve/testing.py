"""Running a real server for tests and benchmarks: in a thread, or as a child process that can be killed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import ServeConfig


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """Run ``app`` under uvicorn in a background thread; yields its base URL; stops it (gracefully) on exit. An
    xmodal app's idle connections are kept its config's ``keep_alive`` seconds, as ``xmodal serve`` keeps them."""
    import uvicorn

    served = getattr(getattr(app, "state", None), "xmodal", None)  # create_app's Served; None for another app
    keep_alive = served.config.keep_alive if served is not None else ServeConfig().keep_alive
    config = uvicorn.Config(
        app,
        host=host,
        port=port or free_port(host),
        log_level="warning",
        access_log=False,
        timeout_keep_alive=keep_alive,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{config.port}"
    finally:
        server.should_exit = True
        thread.join(30)


def spawn_server(
    index: Path,
    port: int,
    *,
    config: Path | None = None,
    encoder: str | None = "hashing",  # None: the config's (or the default)
    env: dict[str, str] | None = None,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``python -m xmodal.serve`` as a child process (so a test can ``kill -9`` it) and wait until it answers."""
    cmd = [
        sys.executable,
        "-m",
        "xmodal.serve",
        "serve",
        "--index",
        str(index),
        *(["--encoder", encoder] if encoder is not None else []),
        "--index-kind",
        "exact",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    if config is not None:
        cmd += ["--config", str(config)]
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(cmd, stdout=out, stderr=out, env={**os.environ, **(env or {})})
    wait_ready(f"http://127.0.0.1:{port}", proc)
    return proc


def wait_ready(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 60.0) -> None:
    """Poll ``/health`` until it answers 200."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready in {timeout:.0f} s")


@dataclass(slots=True)
class LoadReport:
    """What a load run saw: latencies per kind (seconds), errors, and the ids whose writes were acknowledged."""

    seconds: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"search": [], "write": []})
    errors: list[str] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seconds": round(self.seconds, 3),
            "errors": len(self.errors),
            "acked_writes": len(self.acked),
        }
        total = sum(len(v) for v in self.latencies.values())
        out["requests"] = total
        out["throughput_rps"] = round(total / self.seconds, 1) if self.seconds else 0.0
        for kind, values in self.latencies.items():
            if values:
                ms = sorted(v * 1000 for v in values)
                out[kind] = {
                    "n": len(ms),
                    "p50_ms": round(ms[len(ms) // 2], 3),
                    "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3),
                }
        return out


QUERIES = ("red shoe", "blue hat", "green", "item 3")


async def run_load(
    url: str,
    *,
    clients: int = 32,
    seconds: float = 3.0,
    write_every: int = 5,
    key: str = "",
    prefix: str = "load",
    queries: tuple[str, ...] = QUERIES,
    mode: str | None = None,
    log: bool = False,
) -> LoadReport:
    """``clients`` concurrent clients for ``seconds``: each sends searches (in ``mode``, None: the index's
    default; ``log``: impressions recorded), and every ``write_every``-th request adds one new item; a write
    counts as acknowledged only on a 200 that lists its id."""
    import asyncio

    import httpx

    report = LoadReport()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as client:
        start = time.perf_counter()
        stop = start + seconds

        async def worker(n: int) -> None:
            i = 0
            while time.perf_counter() < stop:
                i += 1
                # staggered per client, so writes start with the first round, not after every client's
                # first write_every - 1 searches (a loaded server may not finish those in a short run)
                write = write_every > 0 and (i + n) % write_every == 0
                t0 = time.perf_counter()
                try:
                    if write:
                        item_id = f"{prefix}-{n}-{i}"
                        r = await client.post(
                            "/items",
                            json={
                                "items": [{"id": item_id, "title": f"load item {n} {i}", "attributes": {"client": n}}]
                            },
                        )
                        ok = r.status_code == 200 and r.json()["added"] == [item_id]
                        if ok:
                            report.acked.append(item_id)
                    else:
                        query: dict[str, Any] = {"text": queries[i % len(queries)], "k": 10, "log": log}
                        if mode is not None:
                            query["mode"] = mode
                        r = await client.post("/search", json=query)
                        ok = r.status_code == 200
                    if not ok:
                        report.errors.append(f"{r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as exc:
                    report.errors.append(f"{type(exc).__name__}: {exc}")
                report.latencies["write" if write else "search"].append(time.perf_counter() - t0)

        await asyncio.gather(*(worker(n) for n in range(clients)))
        report.seconds = time.perf_counter() - start
    return report
