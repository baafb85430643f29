"""What the embedded store costs on disk per item: ``store.sqlite`` after adding N items, table by table
(SQLite's ``dbstat``), and the vector index's checkpoint beside it. The figures feed docs/scale.md (the
PostgreSQL store's cost is estimated from them there).

Run:  python benchmarks/bench_store_size.py [--n 20000] [--dim 384] [--encoder hashing]

Items: WordNet noun synsets (Debian ``wordnet-base``: title = first lemma, text = the gloss, an attribute
``pos``), one ``text`` vector each of ``--dim`` float32 components. The hashing encoder is the default (the
bytes a vector takes do not depend on the model: ``dim`` × 4); the default extensions are on, so the
store holds the full-text index too. The WAL is checkpointed before measuring. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import wordnet_items  # noqa: E402

from xmodal import Engine, Item  # noqa: E402


def table_bytes(db: Path) -> dict[str, int]:
    """Bytes of each table and index (with its overflow pages), largest first."""
    con = sqlite3.connect(db)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = con.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
    finally:
        con.close()
    return {str(name): int(size) for name, size in rows}


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--encoder", default="hashing")
    args = parser.parse_args()
    items = [
        Item.create(it.id, title=it.title, text=it.text, attributes={"pos": "noun"}) for it in wordnet_items(args.n)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "idx"
        started = time.perf_counter()
        with Engine.open(index, encoder=args.encoder, dim=args.dim) as engine:
            report = engine.add(items)
        seconds = time.perf_counter() - started
        n = len(report.added)
        tables = table_bytes(index / "store.sqlite")
        store = (index / "store.sqlite").stat().st_size
        vectors_index = folder_bytes(index / "index") if (index / "index").exists() else 0
        text_bytes = sum(len(it.title.encode()) + len(it.text.encode()) for it in items[:n])
    print(
        json.dumps(
            {
                "items": n,
                "dim": args.dim,
                "encoder": args.encoder,
                "add_s": round(seconds, 2),
                "store_bytes_per_item": round(store / n, 1),
                "tables_bytes_per_item": {name: round(size / n, 1) for name, size in tables.items()},
                "vector_index_bytes_per_item": round(vectors_index / n, 1),
                "raw_vector_bytes": args.dim * 4,
                "text_bytes_per_item": round(text_bytes / n, 1),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
