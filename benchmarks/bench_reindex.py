"""Searches served while ``xmodal reindex`` re-embeds the index: zero errors, p50 at most 2× the idle p50.

Run:  python benchmarks/bench_reindex.py --items 100000
      (options: --queries 200 --from-dim 64 --to-dim 128 --priority 10 --batch 256)
      python benchmarks/bench_reindex.py --items 20000 --index postgres   # a PostgreSQL store (issue 15 part 3)

``--index postgres`` starts a PostgreSQL server of its own (as the tests do: Debian's ``postgresql``, an
unprivileged user, a temporary folder, 127.0.0.1) and puts the index in it; ``--index postgres://…`` uses
that server instead (schema ``bench_reindex``, dropped first). There the benchmark also keeps searching
through ``--switch`` and reports how long the serving engine took to follow it (its dimension turned to
``--to-dim``, every search meanwhile answered).

The index: ``--items`` text items encoded with the hashing encoder (``dim=--from-dim``), exact local index,
no extensions (the dense path a server answers), built under a temporary folder. One engine opened in this
process serves dense text searches (k = 10, varied words) one after another: first **idle** for
``--queries`` searches, then **during** a real ``xmodal reindex --encoder hashing --encoder-option
dim=--to-dim`` run in a subprocess (the CLI, at its default niceness ``--priority``) until it finishes. Every
search must succeed; the figure is the ratio of the p50 latencies in the same run (target ≤ 2). The
reindex's own throughput and the switch time follow. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

from xmodal import Engine, Item  # noqa: E402

WORDS = "red green blue black white apple car tree cat boat house river stone cloud bird lamp chair road".split()


def build(path: Path | str, n: int, dim: int) -> float:
    start = time.perf_counter()
    with Engine.open(path, encoder="hashing", encoder_options={"dim": dim}, index="exact", extensions=[]) as engine:
        batch = 5000
        for first in range(0, n, batch):
            engine.add(
                Item.create(f"i{i}", title=" ".join(WORDS[(i * p) % len(WORDS)] for p in (1, 3, 7)) + f" {i}")
                for i in range(first, min(n, first + batch))
            )
    return time.perf_counter() - start


def search_once(engine: Engine, i: int, errors: list[str]) -> float:
    text = f"{WORDS[i % len(WORDS)]} {WORDS[(i * 5) % len(WORDS)]}"
    start = time.perf_counter()
    try:
        hits = engine.search(text, k=10, mode="dense")
        if not hits.items:
            errors.append(f"{text!r}: no hits")
    except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
        errors.append(f"{text!r}: {exc!r}")
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--from-dim", type=int, default=64)
    parser.add_argument("--to-dim", type=int, default=128)
    parser.add_argument("--priority", type=int, default=10)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument(
        "--index", default=None, help="postgres (a server of its own) or postgres://… (default: a folder)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-reindex-") as tmp, contextlib.ExitStack() as stack:
        path: Path | str = Path(tmp) / "idx"
        if args.index is not None:
            path = postgres_index(args.index, Path(tmp), stack)
        build_s = build(path, args.items, args.from_dim)
        errors: list[str] = []
        with Engine.open(path) as engine:
            for i in range(20):  # warm-up
                search_once(engine, i, errors)
            idle = [search_once(engine, i, errors) for i in range(args.queries)]
            env = {**os.environ, "PYTHONPATH": str(SRC)}
            command = [
                sys.executable, "-m", "xmodal.cli", "--index", str(path), "reindex", "--encoder", "hashing",
                "--encoder-option", f"dim={args.to_dim}", "--priority", str(args.priority),
                "--batch", str(args.batch), "-q", "--json",
            ]  # fmt: skip
            started = time.perf_counter()
            job = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            during: list[float] = []
            i = 0
            while job.poll() is None:
                during.append(search_once(engine, i, errors))
                i += 1
            reindex_s = time.perf_counter() - started
            out, err = job.communicate()
            if job.returncode != 0:
                raise SystemExit(f"reindex failed ({job.returncode}): {err.decode()}")
            status = json.loads(out)
            following: dict[str, Any] = {}
            if isinstance(path, str):  # a postgres store: the serving engine follows the switch, searching on
                started = time.perf_counter()
                switched, following = switch_while_serving(engine, path, env, args.to_dim, errors)
                switch_s = time.perf_counter() - started
        if not isinstance(path, str):
            started = time.perf_counter()
            switched = subprocess.run(
                [sys.executable, "-m", "xmodal.cli", "--index", str(path), "reindex", "--switch", "--json"],
                env=env,
                capture_output=True,
                check=True,
            )
            switch_s = time.perf_counter() - started
        with Engine.open(path) as engine:
            after_dim = engine.dim
    idle_p50, during_p50 = statistics.median(idle), statistics.median(during)
    print(
        json.dumps(
            {
                "items": args.items,
                "build_s": round(build_s, 1),
                "idle": {"searches": len(idle), "p50_ms": round(idle_p50, 3)},
                "during_reindex": {
                    "searches": len(during),
                    "errors": len(errors),
                    "first_errors": errors[:3],
                    "p50_ms": round(during_p50, 3),
                    "p95_ms": round(sorted(during)[int(0.95 * (len(during) - 1))], 3) if during else None,
                },
                "p50_ratio": round(during_p50 / idle_p50, 3),
                "target_p50_ratio": 2.0,
                "met": not errors and during_p50 <= 2 * idle_p50,
                "reindex": {
                    "seconds": round(reindex_s, 1),
                    "items_per_s": round(status["done"] / reindex_s, 1),
                    "state": status["state"],
                    "priority": args.priority,
                },
                "store": "postgres" if args.index else "folder",
                "switch_s": round(switch_s, 2),
                **({"following_switch": following} if following else {}),
                "switched": json.loads(switched.stdout)["switched"],
                "dim_after": after_dim,
            }
        )
    )


def postgres_index(index: str, tmp: Path, stack: contextlib.ExitStack) -> str:
    """The ``postgres://`` location of the benchmark's index: on a server of its own (``postgres``), or on the
    server ``index`` names (schema ``bench_reindex``, dropped first)."""
    if index == "postgres":
        from xmodal.store.postgres_server import LocalPostgres

        server = LocalPostgres().start()
        stack.callback(server.stop)
        index = server.url
    import psycopg

    with psycopg.connect(index, autocommit=True) as db:
        db.execute("DROP SCHEMA IF EXISTS bench_reindex CASCADE")
    return f"{index}{'&' if '?' in index else '?'}schema=bench_reindex&state={tmp / 'state'}"


def switch_while_serving(
    engine: Engine, url: str, env: dict[str, str], to_dim: int, errors: list[str]
) -> tuple[subprocess.CompletedProcess[bytes], dict[str, Any]]:
    """``reindex --switch`` in a subprocess while ``engine`` keeps searching, until it serves ``to_dim``."""
    command = [sys.executable, "-m", "xmodal.cli", "--index", url, "reindex", "--switch", "--json"]
    started = time.perf_counter()
    job = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    latencies: list[float] = []
    i = 0
    while engine.dim != to_dim:
        latencies.append(search_once(engine, i, errors))
        i += 1
        if job.poll() not in (None, 0):
            raise SystemExit(f"switch failed ({job.returncode}): {job.communicate()[1].decode()}")
        if time.perf_counter() - started > 900:
            raise SystemExit("the serving engine did not follow the switch within 900 s")
    served_new = time.perf_counter() - started
    out, err = job.communicate()
    exited = time.perf_counter() - started
    after = [search_once(engine, i + j, errors) for j in range(50)]
    return subprocess.CompletedProcess(command, job.returncode, out, err), {
        "searches_until_new_encoder_served": len(latencies),
        "max_ms": round(max(latencies), 1) if latencies else None,
        "new_encoder_served_after_s": round(served_new, 2),
        "switch_process_exited_after_s": round(exited, 2),
        "p50_after_ms": round(statistics.median(after), 3),
    }


if __name__ == "__main__":
    main()
