"""Does a search get slower as the feedback log grows? The learned (default) search of a signed-in user against
plain dense search, in the same loop, at several sizes of the impression log.

Run:  python benchmarks/bench_feedback_scale.py [--items 5000] [--sizes 0 30000 100000 300000] [--users 2000]
      [--queries 300]

Catalog: WordNet synsets (Debian ``wordnet-base``, as in ``bench_mode_throughput.py``), hashing encoder, exact
index. The log grows between measurements by impressions written straight to the engine's feedback log (in
batches, as the REST server's group commit writes them): a query drawn from the catalog's titles, a user drawn
from ``--users``, ten items shown. Then the memory index folds the log (``Engine.checkpoint``, what a server does
when idle), so each search reads only its own tail. Per size it times, per query and alternating, a learned search
with ``user`` set (the per-user history it reads: :meth:`~xmodal.feedback.log.FeedbackLog.user_stats`; the query's
memory: :meth:`~xmodal.feedback.log.FeedbackLog.shown_since` on the log's tail) and a dense search of the same
text: p50 of each and their ratio. A search whose cost grows with the log shows a ratio that grows with the size.
Prints one JSON object.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from serverutil import percentile, wordnet  # noqa: E402

from xmodal import Engine, Query  # noqa: E402


def grow(engine: Engine, titles: list[str], ids: list[str], users: int, count: int, rng: random.Random) -> float:
    """Append ``count`` impressions to the engine's log; seconds taken."""
    log = engine.feedback_log
    t0 = time.perf_counter()
    for start in range(0, count, 1000):
        with log.batch():
            for _ in range(min(1000, count - start)):
                log.log_impression(
                    rng.choice(titles), rng.sample(ids, 10), user=f"user-{rng.randrange(users)}", mode="learned"
                )
    return time.perf_counter() - t0


def timed(engine: Engine, queries: list[str], users: int, rng: random.Random) -> dict[str, float]:
    """p50 and p95 (ms) of a learned search with a user and of a dense search, one after the other per query."""
    learned, dense = [], []
    for text in queries:
        user = f"user-{rng.randrange(users)}"
        for mode, out in (("learned", learned), ("dense", dense)):
            t0 = time.perf_counter()
            engine.search(Query(text=text, mode=mode, user=user if mode == "learned" else None))
            out.append((time.perf_counter() - t0) * 1000)
    return {
        "learned_p50_ms": round(percentile(learned, 0.5), 3),
        "learned_p95_ms": round(percentile(learned, 0.95), 3),
        "dense_p50_ms": round(percentile(dense, 0.5), 3),
        "dense_p95_ms": round(percentile(dense, 0.95), 3),
        "ratio_p50": round(percentile(learned, 0.5) / percentile(dense, 0.5), 3),
    }


def main() -> None:
    os.environ.setdefault("XMODAL_AUTOTUNE", "off")  # no background fit beside the timing
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 30_000, 100_000, 300_000])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    items, queries = wordnet(args.items, args.queries)
    titles, ids = [i.title or i.id for i in items], [i.id for i in items]
    rows: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="xmodal-bench-feedback-") as tmp,
        Engine.open(Path(tmp) / "idx", encoder="hashing", index="exact") as engine,
    ):
        engine.add(items)
        logged = 0
        for size in sorted(args.sizes):
            grow_s = grow(engine, titles, ids, args.users, size - logged, rng)
            logged = size
            t0 = time.perf_counter()
            engine.checkpoint()
            fold_s = time.perf_counter() - t0
            timed(engine, queries[:50], args.users, rng)  # warm-up: lazy loads, caches
            rows.append(
                {"impressions": size, "grow_s": round(grow_s, 2), "fold_s": round(fold_s, 2)}
                | timed(engine, queries, args.users, rng)
            )
    first, last = rows[0], rows[-1]
    print(
        json.dumps(
            {
                "benchmark": "feedback_scale",
                "items": len(items),
                "users": args.users,
                "queries": len(queries),
                "cpus": os.cpu_count(),
                "load_average": os.getloadavg(),
                "rows": rows,
                "ratio_growth": round(last["ratio_p50"] / first["ratio_p50"], 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
