"""Serving under load on loopback: throughput, latency, errors, memory, acknowledged writes, kill -9, API overhead.

Run:  python benchmarks/bench_serve_load.py [--items 5000] [--clients 32] [--seconds 20] [--encoder hashing]
      [--mode dense] [--phases 1]

Data: WordNet synsets (Debian ``wordnet-base``) as text items (lemma as title, gloss as text, part of
speech and lexicographer file as attributes); queries are lemma names of synsets left out of the index.

Phases, one run, one server process (``python -m xmodal.serve``, uvicorn, one worker):

1. **API overhead**: p50 of ``Engine.search`` called in-process, then p50 of ``POST /search`` from one
   keep-alive client (same queries, same index, impression logging off), and their difference.
2. **Load**: ``--clients`` concurrent clients for ``--seconds`` (``--phases`` times, new clients each time,
   their figures summed); every 5th request of a client adds one
   item, the others search. Throughput, p50/p99 per kind, errors, server RSS (start, peak, end); after a
   graceful stop, every acknowledged write must be in the index.
3. **kill -9**: 8 writer threads add 3-item batches; the server is SIGKILLed mid burst, restarted, and
   every acknowledged item must be there.

The clients share the machine with the server (on a 2-core box they compete for CPU). Prints one JSON object.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # many readers in threads: one BLAS thread each (the server inherits it)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
from serverutil import memory_mb, percentile, wordnet  # noqa: E402

from xmodal import Engine  # noqa: E402
from xmodal.serve.testing import LoadReport, free_port, run_load, spawn_server  # noqa: E402

KEY = "bench-writer-key-01"
ENV = {"XMODAL_API_KEYS": f"{KEY}:write"}


def overhead(index: Path, queries: list[str], port: int, config: Path, log: Path) -> dict[str, Any]:
    """Engine.search in this process vs POST /search over loopback, interleaved query by query so both
    see the same machine load; plus the app alone in process (ASGI transport: no socket, no second process)."""
    from xmodal.serve import ServeConfig, create_app

    proc = spawn_server(index, port, config=config, env=ENV, log=log)
    direct, api, asgi = [], [], []
    try:
        with Engine.open(index) as engine, httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            for q in queries[:20]:
                engine.search(q)
                client.post("/search", json={"text": q, "log": False})
            for q in queries:
                t0 = time.perf_counter()
                engine.search(q, k=10)
                t1 = time.perf_counter()
                r = client.post("/search", json={"text": q, "k": 10, "log": False})
                t2 = time.perf_counter()
                assert r.status_code == 200, r.text
                direct.append((t1 - t0) * 1000)
                api.append((t2 - t1) * 1000)
            app = create_app(engine, ServeConfig(log_requests=False, mcp=False))

            async def in_process(target: Any, record: list[float]) -> float:
                transport = httpx.ASGITransport(app=target)
                async with httpx.AsyncClient(transport=transport, base_url="http://app") as aclient:
                    cpu = time.process_time()
                    for q in queries:
                        t0 = time.perf_counter()
                        await aclient.post("/search", json={"text": q, "k": 10, "log": False})
                        record.append((time.perf_counter() - t0) * 1000)
                    return (time.process_time() - cpu) * 1000 / len(queries)

            app_cpu = asyncio.run(in_process(app, asgi))
            client_cpu = asyncio.run(in_process(_empty_app, []))
            cpu = time.process_time()
            for q in queries:
                engine.search(q, k=10)
            engine_cpu = (time.process_time() - cpu) * 1000 / len(queries)
    finally:
        proc.terminate()
        proc.wait(60)
    d50, a50, i50 = statistics.median(direct), statistics.median(api), statistics.median(asgi)
    return {
        "queries": len(queries),
        "engine_p50_ms": round(d50, 3),
        "api_p50_ms": round(a50, 3),
        "added_p50_ms": round(a50 - d50, 3),
        "app_in_process_p50_ms": round(i50, 3),
        "app_added_p50_ms": round(i50 - d50, 3),
        "engine_cpu_ms_per_search": round(engine_cpu, 3),
        "app_added_cpu_ms_per_search": round(app_cpu - client_cpu - engine_cpu, 3),
        "engine_p99_ms": round(percentile(direct, 0.99), 3),
        "api_p99_ms": round(percentile(api, 0.99), 3),
        "target_added_p50_ms": 2.0,
    }


def overhead_runs(index: Path, queries: list[str], config: Path, log: Path, runs: int) -> dict[str, Any]:
    """The overhead phase ``runs`` times (other jobs on a shared machine make single runs noisy)."""
    each = [overhead(index, queries, free_port(), config, log) for _ in range(max(1, runs))]
    best = min(each, key=lambda r: r["added_p50_ms"])
    keys = ("added_p50_ms", "app_added_p50_ms", "app_added_cpu_ms_per_search")
    return {
        "best_run": best,
        "median_of_runs": {k: round(statistics.median(r[k] for r in each), 3) for k in keys},
        "runs": [{k: r[k] for k in ("engine_p50_ms", "api_p50_ms", *keys)} for r in each],
    }


async def _empty_app(scope: Any, receive: Any, send: Any) -> None:
    """A do-nothing ASGI app: what the in-process client itself costs."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def load(index: Path, queries: list[str], args: argparse.Namespace, config: Path, log: Path) -> dict[str, Any]:
    port = free_port()
    proc = spawn_server(index, port, config=config, env=ENV, log=log)
    samples = [memory_mb(proc.pid)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            samples.append(memory_mb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    report = LoadReport()
    try:
        for phase in range(args.phases):  # each phase a new set of clients (new connections), one after another
            found = asyncio.run(
                run_load(
                    f"http://127.0.0.1:{port}",
                    clients=args.clients,
                    seconds=args.seconds,
                    write_every=5,
                    key=KEY,
                    prefix=f"load{phase}",
                    queries=tuple(queries),
                    mode=args.mode,
                )
            )
            report.seconds += found.seconds
            report.errors += found.errors
            report.acked += found.acked
            for kind, values in found.latencies.items():
                report.latencies[kind] += values
    finally:
        done.set()
        sampler.join()
        samples.append(memory_mb(proc.pid))
        proc.terminate()
        exit_code = proc.wait(60)
    with Engine.open(index) as engine:
        missing = [i for i in report.acked if i not in engine]
    out = report.summary()
    out.update(
        clients=args.clients,
        phases=args.phases,
        mode=args.mode or "the index's default",
        graceful_exit_code=exit_code,
        acked_missing=len(missing),
        rss_mb={"start": round(samples[0], 1), "peak": round(max(samples), 1), "end": round(samples[-1], 1)},
        error_examples=report.errors[:3],
    )
    return out


def kill9(index: Path, config: Path, log: Path, seconds: float) -> dict[str, Any]:
    port = free_port()
    proc = spawn_server(index, port, config=config, env=ENV, log=log)
    acked: list[str] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": KEY}, timeout=10) as client:
            for i in range(1_000_000):
                ids = [f"k9-{n}-{i}-{j}" for j in range(3)]
                try:
                    r = client.post("/items", json={"items": [{"id": x, "title": f"kill test {x}"} for x in ids]})
                except httpx.HTTPError:
                    return
                if r.status_code == 200:
                    with lock:
                        acked.extend(r.json()["added"])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    proc.kill()
    proc.wait(30)
    for t in threads:
        t.join(30)
    port2 = free_port()
    t0 = time.perf_counter()
    proc2 = spawn_server(index, port2, config=config, env=ENV, log=log)
    restart_s = time.perf_counter() - t0
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port2}", timeout=30) as client:
            missing = [i for i in acked if client.get(f"/items/{i}").status_code != 200]
    finally:
        proc2.terminate()
        proc2.wait(60)
    return {"acked_before_kill": len(acked), "missing_after_restart": len(missing), "restart_s": round(restart_s, 2)}


def main() -> None:
    os.environ.setdefault("XMODAL_AUTOTUNE", "off")  # no background fit of the default mode beside the timing
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--kill-after", type=float, default=3.0)
    parser.add_argument("--overhead-runs", type=int, default=3, help="repeat the overhead phase; best and median")
    parser.add_argument("--overhead-only", action="store_true")
    parser.add_argument("--mode", default=None, help="the load phase's search mode (default: the index's)")
    parser.add_argument("--phases", type=int, default=1, help="load phases of --seconds, each with new clients")
    parser.add_argument(
        "--encoder", default="hashing", help="hashing (fast, measures the API) or offline (real models)"
    )
    args = parser.parse_args()
    items, queries = wordnet(args.items, args.queries)
    with tempfile.TemporaryDirectory(prefix="xmodal-bench-serve-") as tmp:
        root = Path(tmp)
        index, config, log = root / "idx", root / "serve.toml", root / "server.log"
        # the overhead phase searches as an anonymous caller, as fast as it can: not metered (issue 13 admission)
        config.write_text(
            "rate = 1000000.0\nburst = 1000000\nlog_requests = false\nmcp = false\n"
            "anonymous_cpu = 0.0\nanonymous_total_cpu = 0.0\n"
        )
        with Engine.open(index, encoder=args.encoder, index="exact") as engine:
            t0 = time.perf_counter()
            engine.add(items)
            build_s = time.perf_counter() - t0
        result: dict[str, Any] = {
            "benchmark": "serve_load",
            "data": "wordnet",
            "items": len(items),
            "encoder": args.encoder,
            "build_s": round(build_s, 2),
            "cpus": os.cpu_count(),
            "load_average_before": os.getloadavg(),
            "overhead": overhead_runs(index, queries, config, log, args.overhead_runs),
        }
        if not args.overhead_only:
            result["load"] = load(index, queries, args, config, log)
            result["kill9"] = kill9(index, config, log, args.kill_after)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
