"""Dense search latency while one large ``add`` runs in another thread (issue 13, defect 5).

Run:  PYTHONPATH=.:src python benchmarks/bench_write_stall.py [--n 5000] [--extensions default|slow|none] [--delay 0.3]

A thread adds ``--n`` items in one batch (the engine commits it in chunks) while another runs dense
searches back to back; prints one JSON object with the add time and the searches' p50, p99 and max.
``--extensions slow`` opens the test suite's slow toy extension (``on_put`` sleeps ``--delay`` seconds a
chunk): the derived-index work a search must not wait for.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

from xmodal import Engine, Item, Query
from xmodal.encoders import HashingEncoder

SLOW = "tests.toyparts.extension:SlowToyExtension"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--extensions", choices=["default", "slow", "none"], default="default")
    parser.add_argument("--delay", type=float, default=0.3)
    args = parser.parse_args()
    extensions = {"default": None, "slow": [SLOW], "none": []}[args.extensions]
    if args.extensions == "slow":
        from tests.toyparts.extension import SlowToyExtension

        SlowToyExtension.delay = args.delay
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine.open(Path(tmp) / "idx", encoder=HashingEncoder(), index="exact", extensions=extensions)
        engine.add([Item.create(f"s{i}", title=f"seed item {i}") for i in range(500)])
        batch = [Item.create(f"b{i}", title=f"batch item {i} " + "lorem ipsum " * 20) for i in range(args.n)]
        latencies: list[float] = []
        done = threading.Event()

        def searcher() -> None:
            while not done.is_set():
                start = time.perf_counter()
                engine.search(Query(text="batch item", k=10, mode="dense"))
                latencies.append(time.perf_counter() - start)

        thread = threading.Thread(target=searcher)
        thread.start()
        time.sleep(0.3)
        start = time.perf_counter()
        engine.add(batch)
        add_s = time.perf_counter() - start
        done.set()
        thread.join()
        engine.close()
    latencies.sort()
    ms = [round(v * 1000, 1) for v in latencies]
    print(
        json.dumps(
            {
                "n": args.n,
                "extensions": args.extensions,
                "delay_s": args.delay if args.extensions == "slow" else None,
                "add_s": round(add_s, 2),
                "searches": len(ms),
                "p50_ms": ms[len(ms) // 2],
                "p99_ms": ms[int(len(ms) * 0.99)],
                "max_ms": ms[-1],
            }
        )
    )


if __name__ == "__main__":
    main()
