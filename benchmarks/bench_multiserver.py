"""Several servers, one truth (issue 18, part 3): ``--servers`` ``xmodal serve`` processes and ``--cli-writers``
``xmodal add`` writers (plus one writer through the servers' REST API) on one PostgreSQL store (vectors: each
server's local backend, built from the store and following its change log). Measures:

- the fraction of acknowledged writes found by a search on every live server within 1 s, and the p50/p99
  visibility lag (an acknowledged write: ``xmodal add`` exited 0, or ``POST /items`` answered 200), each
  server searched by a thread of its own from the acknowledgement on, every 5 ms until found;
- ``kill -9`` of one server while writes go on (some of them to it), then a restart: every acknowledged write
  is in the store and searchable on every server at the end (nothing acknowledged is lost);
- a click logged through one server's ``POST /feedback`` changes the next plan (``explain``) on another.

Prints JSON. ``--milvus`` puts the vectors in one Milvus standalone server (``LocalMilvus``) shared by all (one
collection for every process, named from the store); ``--milvus-restart`` also stops and restarts that server
(same ports) while the writes go on, and checks at the end that every acknowledged write is searchable.

    python benchmarks/bench_multiserver.py --servers 3 --cli-writers 2 --cli-batches 6 --batch 5 --rest-writes 60
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from xmodal import Engine, Item
from xmodal.backends.milvus_server import free_ports
from xmodal.store.postgres_server import LocalPostgres

COLORS = ("red", "blue", "green", "black", "white")
KINDS = ("boots", "sneakers", "sandals", "bag", "jacket", "scarf")
MATERIALS = ("leather", "canvas", "suede", "wool", "cotton")
CLICK_QUERY = "comfortable walking sneakers"
VISIBLE_S = 1.0
KEY = "bench-multiserver-key"


def catalog(n: int) -> list[Item]:
    return [
        Item.create(
            f"seed{i}",
            title=f"{COLORS[i % 5]} {MATERIALS[(i // 5) % 5]} {KINDS[i % 6]}",
            text=f"a {KINDS[i % 6]} for every day, model {i}",
            attributes={"color": COLORS[i % 5], "kind": KINDS[i % 6]},
        )
        for i in range(n)
    ]


class Server:
    """One ``xmodal serve`` process over the shared store, with a state folder of its own."""

    def __init__(self, url: str, state: Path, port: int) -> None:
        self.index, self.port, self.proc = f"{url}&state={state}", port, None
        self.base = f"http://127.0.0.1:{port}"
        self.alive = False
        self.config = state.parent / "serve.json"
        self.config.write_text(
            json.dumps({"keys": [{"key": KEY, "scopes": ["admin"], "rate": 100000, "burst": 100000}]})
        )
        self.client = httpx.Client(base_url=self.base, timeout=30, headers={"Authorization": f"Bearer {KEY}"})
        self.log = Path(os.environ.get("BENCH_LOGS", str(state.parent))) / f"{state.name}.log"

    def start(self) -> Server:
        cmd = [sys.executable, "-m", "xmodal.cli", "--index", self.index, "serve", "--port", str(self.port)]
        cmd += ["--config", str(self.config), "--log-level", "warning"]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if self.client.get("/health").status_code == 200:
                    self.alive = True
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server on {self.port} did not start: see {self.log}")

    def kill(self) -> None:
        self.alive = False
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.client.close()

    def found(self, tag: str, n: int) -> bool:
        """Whether a search for the items tagged ``tag`` finds all ``n`` of them."""
        body = {"text": "item", "k": max(n, 1), "mode": "dense", "filters": {"tag": tag}, "log": False}
        r = self.client.post("/search", json=body)
        return r.status_code == 200 and len(r.json()["hits"]) == n


class Visibility:
    """Checks each acknowledged write on every live server: the lag until a search there finds it."""

    def __init__(self, servers: list[Server]) -> None:
        self.servers = servers
        self.lags: list[float] = []  # seconds, per (write, live server)
        self.late: list[tuple[str, int]] = []
        self.acked: list[tuple[str, int]] = []  # (tag, items)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def acknowledged(self, tag: str, n: int, at: float) -> None:
        with self._lock:
            self.acked.append((tag, n))
        for server in [s for s in self.servers if s.alive]:  # each server checked on its own, all at once
            thread = threading.Thread(target=self._check, args=(tag, n, at, server), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _check(self, tag: str, n: int, at: float, server: Server) -> None:
        """Search ``server`` for the write until it finds it: the lag from the acknowledgement."""
        while True:
            try:
                if server.found(tag, n):
                    lag = time.perf_counter() - at
                    with self._lock:
                        self.lags.append(lag)
                        if lag > VISIBLE_S:
                            self.late.append((tag, server.port))
                    break
            except httpx.HTTPError:
                if not server.alive:
                    break  # killed meanwhile: checked at the end
            if time.perf_counter() - at > 30:
                with self._lock:
                    self.lags.append(float("inf"))  # not found in 30 s
                    self.late.append((tag, server.port))
                break
            time.sleep(0.005)

    def join(self) -> None:
        for thread in self._threads:
            thread.join()


def cli_writer(
    index: str, folder: Path, name: str, batches: int, size: int, seen: Visibility, errors: list[str]
) -> None:
    """``xmodal add`` of ``batches`` catalogs of ``size`` items each, one process per catalog."""
    for b in range(batches):
        tag = f"{name}-{b}"
        path = folder / f"{tag}.jsonl"
        rows = [{"id": f"{tag}-{i}", "title": f"item {tag} {i}", "attributes": {"tag": tag}} for i in range(size)]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        done = subprocess.run(
            [sys.executable, "-m", "xmodal.cli", "--index", index, "add", str(path)], capture_output=True, text=True
        )
        if done.returncode == 0:
            seen.acknowledged(tag, size, time.perf_counter())
        else:
            errors.append(f"{tag}: {done.stderr[-300:]}")


def rest_writer(servers: list[Server], writes: int, seen: Visibility, refused: list[str], pause: float) -> None:
    """One item per ``POST /items``, round-robin over the servers (a killed one refuses: not acknowledged)."""
    for i in range(writes):
        server = servers[i % len(servers)]
        tag = f"rest-{i}"
        item = {"id": tag, "title": f"item rest {i}", "attributes": {"tag": tag}}
        try:
            r = server.client.post("/items", json={"items": [item]})
            if r.status_code == 200 and r.json().get("added") == [tag]:
                seen.acknowledged(tag, 1, time.perf_counter())
            else:
                refused.append(f"{tag}: {r.status_code}")
        except httpx.HTTPError as exc:
            refused.append(f"{tag}: {type(exc).__name__}")
        time.sleep(pause)


def found_soon(server: Server, tag: str, n: int, wait_s: float = 60.0) -> bool:
    """Whether ``server`` finds the write within ``wait_s`` (after a Milvus restart it reloads the collection
    and the writer catches up what Milvus missed first)."""
    deadline = time.perf_counter() + wait_s
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if server.found(tag, n):
                return True
        if time.perf_counter() > deadline:
            return False
        time.sleep(0.2)


def click(servers: list[Server]) -> dict[str, Any]:
    """A click through one server's POST /feedback; the next plan on another server."""
    a, b = servers[0], servers[1]
    query = {"text": CLICK_QUERY, "k": 10, "mode": "learned", "explain": True}
    before = b.client.post("/search", json={**query, "log": False}).json()["explain"]
    shown = a.client.post("/search", json={**query, "log": True}).json()
    chosen = shown["hits"][-1]["id"]
    start = time.perf_counter()
    r = a.client.post("/feedback", json={"query_id": shown["query_id"], "item_id": chosen, "event": "click"})
    assert r.status_code == 200, r.text
    acked = time.perf_counter()
    after = b.client.post("/search", json={**query, "log": False}).json()
    took = time.perf_counter() - acked
    plan = lambda ex: [p["strategy"] for p in ex["plan"]]  # noqa: E731
    return {
        "plan_before_on_other": plan(before),
        "plan_after_on_other": plan(after["explain"]),
        "actions_after_on_other": after["explain"]["context"]["actions"],
        "clicked_item_shown_on_other": chosen in [h["id"] for h in after["hits"]],
        "changed": plan(before) != plan(after["explain"]),
        "feedback_ack_ms": round((acked - start) * 1000, 1),
        "next_search_on_other_ms": round(took * 1000, 1),
    }


def main() -> None:
    os.environ.setdefault("XMODAL_AUTOTUNE", "off")  # no background fit of the default mode beside the timing
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=3)
    parser.add_argument("--cli-writers", type=int, default=2)
    parser.add_argument("--cli-batches", type=int, default=6)
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--rest-writes", type=int, default=60)
    parser.add_argument("--seed-items", type=int, default=300)
    parser.add_argument("--milvus", action="store_true", help="vectors in one Milvus standalone server (else local)")
    parser.add_argument("--milvus-restart", action="store_true", help="with --milvus: stop/start it during the writes")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, LocalPostgres() as pg, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        vectors, milvus = "local", None
        if args.milvus:
            from xmodal.backends.milvus_server import LocalMilvus

            milvus = LocalMilvus(folder / "milvus", settings={"proxy.timeTickInterval": 50}).start()
            stack.callback(milvus.stop)
            vectors = f"milvus://127.0.0.1:{milvus.port}"
        url = f"{pg.url}?schema=bench_multi&vectors={vectors}&media={folder / 'media'}"
        with Engine.open(
            f"{url}&state={folder / 'setup'}", encoder="hashing", dim=64, index="flat" if args.milvus else "exact"
        ) as setup:
            setup.add(catalog(args.seed_items))
        ports = free_ports(args.servers)
        servers = [Server(url, folder / f"server{i}", port).start() for i, port in enumerate(ports)]
        try:
            out: dict[str, Any] = {"servers": args.servers, "cli_writers": args.cli_writers, "vectors": vectors}
            out["click"] = click(servers)
            seen, errors, refused = Visibility(servers), list[str](), list[str]()
            writers = [
                threading.Thread(
                    target=cli_writer,
                    args=(
                        f"{url}&state={folder / f'writer{w}'}",
                        folder,
                        f"cli{w}",
                        args.cli_batches,
                        args.batch,
                        seen,
                        errors,
                    ),
                )
                for w in range(args.cli_writers)
            ]
            writers.append(threading.Thread(target=rest_writer, args=(servers, args.rest_writes, seen, refused, 0.05)))
            for t in writers:
                t.start()
            victim = servers[-1]
            time.sleep(3.0)
            victim.kill()  # kill -9 while the writers go on (the REST writer sends every third write to it)
            killed_at = time.perf_counter()
            time.sleep(2.0)
            victim.start()
            out["victim_down_s"] = round(time.perf_counter() - killed_at, 1)
            if args.milvus_restart and milvus is not None:
                down = time.perf_counter()
                milvus.restart(down_s=1.0)  # the writers go on: a write Milvus cannot take is caught up later
                out["milvus_restart_s"] = round(time.perf_counter() - down, 1)
            for t in writers:
                t.join()
            seen.join()
            # the end: every acknowledged write is in the store and found on every server (the restarted one too)
            missing = [(tag, s.port) for tag, n in seen.acked for s in servers if not found_soon(s, tag, n)]
            with Engine.open(f"{url}&state={folder / 'audit'}") as audit:
                ids = [tag if tag.startswith("rest") else f"{tag}-{i}" for tag, n in seen.acked for i in range(n)]
                in_store = sum(item_id in audit for item_id in ids)
            acked_items = sum(n for _, n in seen.acked)
            lags = np.asarray(seen.lags) * 1000
            out["writes"] = {
                "acknowledged_writes": len(seen.acked),
                "acknowledged_items": acked_items,
                "in_store_at_end": in_store,
                "missing_on_some_server_at_end": len(missing),
                "rest_refused_or_failed": len(refused),
                "cli_failed": len(errors),
                "checks": len(seen.lags),
                "visible_within_1s_fraction": round(float((lags <= VISIBLE_S * 1000).mean()), 4),
                "lag_p50_ms": round(float(np.percentile(lags, 50)), 1),
                "lag_p99_ms": round(float(np.percentile(lags, 99)), 1),
                "lag_max_ms": round(float(lags.max()), 1),
                "late": seen.late[:10],
            }
            if milvus is not None:
                from pymilvus import MilvusClient

                client = MilvusClient(uri=milvus.uri)
                out["milvus_collections"] = len(client.list_collections())  # one shared by every process
                client.close()
            out["errors"] = errors[:3]
            out["wall_s"] = round(time.perf_counter() - started, 1)
            print(json.dumps(out, indent=2))
        finally:
            for s in servers:
                s.stop()


if __name__ == "__main__":
    main()
