"""Milvus calls per write applied with the LTR extension on a shared store (issue 18, follow-up): one writer
engine and one reader engine over one PostgreSQL + one Milvus 2.3.5 server, the real ``MilvusClient`` of each
wrapped to count its calls by name; ``--writes`` single-item adds on the writer. Prints JSON: calls per write on
the writer (its upsert and any query) and on the reader (which applies each write it hears of).

    PYTHONPATH=src python benchmarks/bench_milvus_queries.py --writes 50
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from xmodal import Engine, Item
from xmodal.backends.milvus_server import LocalMilvus
from xmodal.store.postgres_server import LocalPostgres


class Spy:
    """A ``MilvusClient`` counting the calls made through it."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.calls: collections.Counter[str] = collections.Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return counted


def spy_on(engine: Engine) -> Spy:
    spy = Spy(engine.backend.client)  # type: ignore[attr-defined]
    engine.backend.client = spy  # type: ignore[attr-defined]
    return spy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writes", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalPostgres() as pg:
        folder = Path(tmp)
        milvus = LocalMilvus(folder / "milvus").start()
        try:
            where = f"{pg.url}?schema=bench_q&vectors=milvus://127.0.0.1:{milvus.port}"
            writer = Engine.open(
                f"{where}&state={folder / 'a'}", encoder="hashing", dim=64, index="flat", extensions=["ltr"]
            )
            reader = Engine.open(f"{where}&state={folder / 'b'}")
            writer.add([Item.create("first", title="the first item")])
            time.sleep(2)  # the reader hears of it and its dense strategy joins (its one look at the kinds)
            mine, theirs = spy_on(writer), spy_on(reader)
            start = time.perf_counter()
            for i in range(args.writes):
                writer.add([Item.create(f"i{i}", title=f"item number {i}")])
            took = time.perf_counter() - start
            deadline = time.monotonic() + 30
            while reader.applied_seq() < writer.applied_seq() and time.monotonic() < deadline:
                time.sleep(0.01)
            out = {
                "writes": args.writes,
                "seconds": round(took, 2),
                "writer_calls": dict(mine.calls),
                "reader_calls": dict(theirs.calls),
                "writer_queries_per_write": round(mine.calls["query"] / args.writes, 3),
                "reader_queries_per_write": round(theirs.calls["query"] / args.writes, 3),
            }
            writer.close()
            reader.close()
        finally:
            milvus.stop()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
