"""Keyed searches' latency while an anonymous search runs beside them, with and without its stepping aside.

Run:  python benchmarks/bench_courtesy.py
      (options: --rounds 4 --block-seconds 5 --items 3000 --encoder offline --clients 4 --rate 5 --share 0.25)

In one process, as in the server (``xmodal.serve``) but without HTTP, so the comparison is of the mechanism
alone: the index of ``bench_abuse.py`` (``--items`` WordNet synsets, cached under ``benchmarks/out/``, copied
afresh), ``--clients`` keyed threads each sending a typical text search (a WordNet lemma, k = 10) ``--rate``
times a second, each inside :meth:`Admission.foreground` as ``POST /search`` does; and one anonymous thread
repeating the costliest accepted text search of ``bench_abuse.py`` (its long text, 1,472 characters, k = 1,000,
its 10,000-value filters every other time), paced to ``--share`` of a core (the default
``anonymous_total_cpu``: after each search it rests until its thread's CPU is back within the share).

Four conditions, in blocks of ``--block-seconds`` taken in turn for ``--rounds`` rounds (so a change in the
machine's load touches all alike): ``idle`` (no anonymous search), ``plain`` (the anonymous search run
as before: not marked background, so it never steps aside), ``courtesy`` (run through
:meth:`Admission.run`, as the server does: it steps aside for keyed searches between its stages,
:mod:`xmodal.courtesy`) and ``courtesy_1ms`` (the same with the interpreter's switch interval at 1 ms
instead of 5: a thread waiting for the interpreter lock gets it sooner; not what the server does). Reported per condition: the keyed searches' p50, p99 and max, and their ratio to
``idle``; the anonymous searches completed and their mean latency. Prints one JSON object.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from bench_abuse import cached_index, long_text, payloads  # noqa: E402
from serverutil import percentile, wordnet  # noqa: E402

from xmodal import Engine  # noqa: E402
from xmodal.records import Query  # noqa: E402
from xmodal.serve import ServeConfig  # noqa: E402
from xmodal.serve.admission import Admission  # noqa: E402

CONDITIONS = ("idle", "plain", "courtesy", "courtesy_1ms")
SWITCH_S = {"courtesy_1ms": 0.001}  # the interpreter's switch interval in that block (else its default, 5 ms)
LONG_TEXT_CHARS = 1472  # what bench_abuse.py finds the default guards accept (long_text_chars)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--block-seconds", type=float, default=5.0)
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--encoder", default="offline")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rate", type=float, default=5.0, help="searches per second per keyed client")
    parser.add_argument("--share", type=float, default=ServeConfig().anonymous_total_cpu, help="anonymous CPU share")
    args = parser.parse_args()
    items, queries = wordnet(args.items, 200)
    glosses = [item.text or "" for item in items[:200]]
    text = long_text(glosses, LONG_TEXT_CHARS)
    filters = json.loads(payloads(glosses, 10_000, LONG_TEXT_CHARS)["filters"]["content"])["filters"]
    index, _ = cached_index(args.items, args.encoder)
    with tempfile.TemporaryDirectory(prefix="xmodal-bench-courtesy-") as tmp:
        copy = Path(tmp) / "idx"
        shutil.copytree(index, copy)
        with Engine.open(copy, encoder=args.encoder) as engine:
            result = run(engine, args, queries, text, filters)
    print(json.dumps(result, indent=2))


def run(engine: Engine, args: argparse.Namespace, queries: list[str], text: str, filters: Any) -> dict[str, Any]:
    admission = Admission(ServeConfig())
    for q in queries[:20]:  # warm up: the models and the code paths
        engine.search(Query(text=q, k=10, logged=True))
    engine.search(Query(text=text, k=1000, filters=filters, logged=True))
    latencies: dict[str, list[float]] = {c: [] for c in CONDITIONS}
    anonymous: dict[str, list[float]] = {c: [] for c in CONDITIONS}
    condition = ["idle"]
    stop = threading.Event()

    def keyed(n: int) -> None:
        i, period = n, 1 / args.rate
        next_at = time.perf_counter() + n * period / args.clients
        while not stop.is_set():
            time.sleep(max(0.0, next_at - time.perf_counter()))
            now = condition[0]
            t0 = time.perf_counter()
            with admission.foreground(keyed=True):
                engine.search(Query(text=queries[i % len(queries)], k=10, logged=True))
            if condition[0] == now:
                latencies[now].append((time.perf_counter() - t0) * 1000)
            i += args.clients
            next_at = max(next_at + period, time.perf_counter())

    def anonymous_loop() -> None:
        n = 0
        while not stop.is_set():
            now = condition[0]
            if now == "idle":
                time.sleep(0.01)
                continue
            query = Query(text=text, k=1000, filters=filters if n % 2 else {}, logged=True)
            n += 1
            t0, cpu0 = time.perf_counter(), time.thread_time()
            if now.startswith("courtesy"):
                admission.run("192.0.2.1", functools.partial(engine.search, query))
            else:
                engine.search(query)
            wall, cpu = time.perf_counter() - t0, time.thread_time() - cpu0
            if condition[0] == now:
                anonymous[now].append(wall * 1000)
            time.sleep(max(0.0, cpu / args.share - wall))  # within the share of a core

    threads = [threading.Thread(target=keyed, args=(n,), daemon=True) for n in range(args.clients)]
    threads.append(threading.Thread(target=anonymous_loop, daemon=True))
    load_before = os.getloadavg()
    for thread in threads:
        thread.start()
    default_switch = sys.getswitchinterval()
    for _ in range(args.rounds):
        for c in CONDITIONS:
            sys.setswitchinterval(SWITCH_S.get(c, default_switch))
            condition[0] = c
            time.sleep(args.block_seconds)
    sys.setswitchinterval(default_switch)
    stop.set()
    for thread in threads:
        thread.join(30)
    summary: dict[str, Any] = {}
    for c in CONDITIONS:
        got = latencies[c]
        summary[c] = {
            "keyed_searches": len(got),
            "p50_ms": round(statistics.median(got), 2),
            "p99_ms": round(percentile(got, 0.99), 2),
            "max_ms": round(max(got), 2),
            "anonymous_searches": len(anonymous[c]),
            "anonymous_mean_ms": round(statistics.mean(anonymous[c]), 1) if anonymous[c] else None,
        }
    for c in CONDITIONS[1:]:
        summary[c]["p99_ratio_to_idle"] = round(summary[c]["p99_ms"] / summary["idle"]["p99_ms"], 2)
        summary[c]["p50_ratio_to_idle"] = round(summary[c]["p50_ms"] / summary["idle"]["p50_ms"], 2)
    return {
        "benchmark": "courtesy",
        "items": args.items,
        "encoder": args.encoder,
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "rounds": args.rounds,
        "block_seconds": args.block_seconds,
        "keyed_clients": args.clients,
        "keyed_rate_per_client": args.rate,
        "anonymous_share": args.share,
        "long_text_chars": LONG_TEXT_CHARS,
        "gate_waits": admission.gate.waits,
        "conditions": summary,
    }


if __name__ == "__main__":
    main()
