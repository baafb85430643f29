"""xmodal.Client against raw httpx calls: the client's overhead over the same requests, same run, same server.

Run:  python benchmarks/bench_client.py [--items 5000] [--searches 2000] [--adds 300] [--mode dense]

One server process (``python -m xmodal.serve``, uvicorn, one worker; ``--encoder``, hashing by default, on
the exact index) over WordNet synsets (Debian ``wordnet-base``) as text items; queries are lemma names of
synsets left out of the index. Then, interleaved in rounds of ``--round`` calls (the order of the two
flipped every round: client, raw, raw, client, ...; so both see the same machine load):

- **searches**: ``client.search(q, k=10, mode=M)`` (a :class:`~xmodal.SearchResult` with its hits and
  items) against ``http.post("/search", json={...}).json()`` on the very ``httpx.Client`` the xmodal client
  holds (the same connection pool, transport, headers and key);
- **adds**: ``client.add([10 items])`` against the same items posted as JSON (``--adds`` of each);
- **async searches**: ``AsyncClient.search`` against ``httpx.AsyncClient.post`` on its own client, one at a time.

``ratio_p50`` is the client's median time per call over the raw calls' (the target: at most 1.10; the
median, as a stall of the shared machine lands on either way at random); ``ratio`` the totals',
``ratio_trimmed`` the means without each way's slowest 2%; ``*_cpu_us`` this process's CPU per call of each
way; ``decode_us`` the client's own CPU per search answer (JSON to records), timed alone. ``no_server``: the
same two ways against ``httpx.MockTransport`` replaying a recorded search answer (no socket, no server: what
each way costs in this process alone, the bound the ratio nears as a server gets infinitely fast). Prints
one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from serverutil import wordnet

import xmodal
from xmodal import Item
from xmodal.client.decode import result_of
from xmodal.serve.testing import free_port, spawn_server

KEY = "bench-client-key-001"
TARGET = 1.10


class Timings:
    """Per-call wall seconds of each way, and the CPU seconds this process spent on each way in all."""

    def __init__(self) -> None:
        self.wall: dict[str, list[float]] = {"client": [], "raw": []}
        self.cpu = {"client": 0.0, "raw": 0.0}

    def rounds(self, n: int, size: int) -> list[tuple[str, range]]:
        """``n`` calls each way in rounds of ``size``, the order of the two ways flipped every round."""
        out = []
        for start in range(0, n, size):
            ways = ["client", "raw"] if (start // size) % 2 == 0 else ["raw", "client"]
            out += [(way, range(start, min(n, start + size))) for way in ways]
        return out

    def summary(self) -> dict[str, Any]:
        mine, raw = self.wall["client"], self.wall["raw"]
        return {
            "calls": len(mine),
            "client_p50_ms": round(statistics.median(mine) * 1000, 3),
            "raw_p50_ms": round(statistics.median(raw) * 1000, 3),
            "client_total_s": round(sum(mine), 3),
            "raw_total_s": round(sum(raw), 3),
            "ratio": round(sum(mine) / sum(raw), 4),
            "ratio_p50": round(statistics.median(mine) / statistics.median(raw), 4),
            "ratio_trimmed": round(trimmed(mine) / trimmed(raw), 4),
            # this process's CPU per call: what the client adds, free of the server's and the machine's noise
            "client_cpu_us": round(self.cpu["client"] / len(mine) * 1e6, 1),
            "raw_cpu_us": round(self.cpu["raw"] / len(raw) * 1e6, 1),
        }


def trimmed(values: list[float], cut: float = 0.02) -> float:
    """The mean without the slowest ``cut`` of the calls (a stall of the shared machine, not of either way)."""
    kept = sorted(values)[: max(1, int(len(values) * (1 - cut)))]
    return sum(kept) / len(kept)


def interleaved(calls: dict[str, Callable[[int], Any]], n: int, size: int) -> dict[str, Any]:
    """``n`` calls each way (``client`` and ``raw``), interleaved in rounds of ``size``."""
    timings = Timings()
    for way, batch in timings.rounds(n, size):
        cpu = time.process_time()
        for i in batch:
            t0 = time.perf_counter()
            calls[way](i)
            timings.wall[way].append(time.perf_counter() - t0)
        timings.cpu[way] += time.process_time() - cpu
    return timings.summary()


async def interleaved_async(calls: dict[str, Callable[[int], Awaitable[Any]]], n: int, size: int) -> dict[str, Any]:
    timings = Timings()
    for way, batch in timings.rounds(n, size):
        cpu = time.process_time()
        for i in batch:
            t0 = time.perf_counter()
            await calls[way](i)
            timings.wall[way].append(time.perf_counter() - t0)
        timings.cpu[way] += time.process_time() - cpu
    return timings.summary()


def searches(client: xmodal.Client, queries: list[str], args: argparse.Namespace) -> dict[str, Any]:
    http = client.http  # the raw calls share the client's connection pool

    def mine(i: int) -> None:
        result = client.search(queries[i % len(queries)], k=10, mode=args.mode)
        assert len(result.items) == len(result.hits)

    def raw(i: int) -> None:
        r = http.post("/search", json={"text": queries[i % len(queries)], "k": 10, "mode": args.mode, "log": False})
        assert r.status_code == 200, r.text
        r.json()

    for i in range(50):  # warm-up: connections, caches, the server's first queries
        mine(i)
        raw(i)
    out = interleaved({"client": mine, "raw": raw}, args.searches, args.round)
    body = http.post("/search", json={"text": queries[0], "k": 10, "mode": args.mode, "log": False}).content
    reps = 2000
    t0 = time.perf_counter()
    for _ in range(reps):
        result_of(json.loads(body))
    t1 = time.perf_counter()
    for _ in range(reps):
        json.loads(body)
    out["decode_us"] = round((2 * t1 - t0 - time.perf_counter()) / reps * 1e6, 1)  # records, beyond json.loads
    out["no_server"] = no_server(client.url, body, queries, args)
    return out


def no_server(url: str, body: bytes, queries: list[str], args: argparse.Namespace) -> dict[str, Any]:
    def answer(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    with xmodal.Client(url, api_key=KEY, transport=httpx.MockTransport(answer)) as client:
        http = client.http

        def mine(i: int) -> None:
            client.search(queries[i % len(queries)], k=10, mode=args.mode)

        def raw(i: int) -> None:
            http.post(
                "/search", json={"text": queries[i % len(queries)], "k": 10, "mode": args.mode, "log": False}
            ).json()

        out = interleaved({"client": mine, "raw": raw}, args.searches, args.round)
    return {
        key: out[key] for key in ("calls", "client_p50_ms", "raw_p50_ms", "ratio_p50", "client_cpu_us", "raw_cpu_us")
    }


def adds(client: xmodal.Client, items: list[Item], args: argparse.Namespace) -> dict[str, Any]:
    http, per = client.http, 10

    def batch(i: int, prefix: str) -> list[Item]:
        chosen = items[(i * per) % len(items) : (i * per) % len(items) + per]
        return [Item.create(f"{prefix}{i}-{n}", title=it.title, text=it.text, attributes=it.attributes)
                for n, it in enumerate(chosen)]  # fmt: skip

    def mine(i: int) -> None:
        assert len(client.add(batch(i, "c")).added) == per

    def raw(i: int) -> None:
        body = [{"id": it.id, "title": it.title, "text": it.text, "attributes": it.attributes} for it in batch(i, "r")]
        r = http.post("/items", json={"items": body})
        assert r.status_code == 200 and len(r.json()["added"]) == per, r.text

    return interleaved({"client": mine, "raw": raw}, args.adds, args.round)


def async_searches(url: str, queries: list[str], args: argparse.Namespace) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        async with xmodal.AsyncClient(url, api_key=KEY) as client:
            http = client.http

            async def mine(i: int) -> None:
                await client.search(queries[i % len(queries)], k=10, mode=args.mode)

            async def raw(i: int) -> None:
                body = {"text": queries[i % len(queries)], "k": 10, "mode": args.mode, "log": False}
                r = await http.post("/search", json=body)
                assert r.status_code == 200, r.text
                r.json()

            for i in range(50):
                await mine(i)
                await raw(i)
            return await interleaved_async({"client": mine, "raw": raw}, args.searches // 2, args.round)

    return asyncio.run(main())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--searches", type=int, default=2000)
    parser.add_argument("--adds", type=int, default=300)
    parser.add_argument(
        "--round", type=int, default=1, help="calls per round (the order of the two ways flips every round)"
    )
    parser.add_argument("--mode", default="dense")
    parser.add_argument("--encoder", default="hashing")
    args = parser.parse_args(argv)
    items, queries = wordnet(args.items, max(200, args.searches // 10))
    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        root = Path(tmp)
        config = root / "serve.toml"
        config.write_text(
            f'rate = 1000000.0\nburst = 1000000\nlog_requests = false\nmcp = false\n[[keys]]\nkey = "{KEY}"\n'
            'scopes = ["read", "write"]\n'
        )
        port = free_port()
        proc = spawn_server(root / "idx", port, config=config, encoder=args.encoder, log=root / "server.log")
        try:
            url = f"http://127.0.0.1:{port}"
            with xmodal.Client(url, api_key=KEY) as client:
                t0 = time.perf_counter()
                report = client.add(items)
                loaded = {"items": len(report.added), "rejected": len(report.rejected)}
                loaded["seconds"] = round(time.perf_counter() - t0, 2)
                result: dict[str, Any] = {"encoder": args.encoder, "mode": args.mode, "index": loaded}
                result["searches"] = searches(client, queries, args)
                result["adds"] = adds(client, items, args)
            result["async_searches"] = async_searches(url, queries, args)
        finally:
            proc.terminate()
            proc.wait(60)
    result["target_ratio"] = TARGET
    result["met"] = all(result[k]["ratio_p50"] <= TARGET for k in ("searches", "adds", "async_searches"))
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
