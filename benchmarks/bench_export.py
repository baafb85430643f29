"""Export throughput: ``Engine.export`` of every item to JSON Lines and Parquet (with and without vectors), a
filtered export, and the floor in the same run: the store's rows read by one SQL query and written as JSON
Lines with no item view (what any export must at least do).

Run:  python benchmarks/bench_export.py [--n 100000] [--rounds 3]

Data: WordNet (Debian ``wordnet-base``): ``n`` synsets as items (title: the lemma, text: the gloss,
attributes: part of speech, lexicographer file, lemma count, and a list of the synset's lemmas), 384-d
vectors from the ``hashing`` encoder (export reads vectors, it does not compute them), no extensions. The
figure is the median over rounds of items per second, the file written to a temporary folder on the same
disk. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_search import WORDNET  # noqa: E402

from xmodal import Engine, Item  # noqa: E402

TARGET = 20_000  # items/s


def synsets(n: int) -> list[Item]:
    """The first ``n`` WordNet synsets (cycled when ``n`` is larger) as items."""
    items: list[Item] = []
    for part in ("noun", "verb", "adj", "adv"):
        for line in (WORDNET / f"data.{part}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or " | " not in line:
                continue
            head, gloss = line.split(" | ", 1)
            fields = head.split()
            count = int(fields[3], 16)
            lemmas = [fields[4 + 2 * i].replace("_", " ") for i in range(count)]
            attributes = {"pos": fields[2], "lexfile": int(fields[1]), "lemmas": lemmas, "n_lemmas": count}
            items.append(Item.create(f"{part}-{fields[0]}", title=lemmas[0], text=gloss.strip(), attributes=attributes))
    while len(items) < n:
        items += [
            Item.create(f"{i.id}-{len(items)}", title=i.title, text=i.text, attributes=i.attributes)
            for i in items[: n - len(items)]
        ]
    return items[:n]


def floor(index: Path, out: Path) -> int:
    """Every row of the store as a JSON line, straight from SQLite (no item view, no vectors)."""
    db = sqlite3.connect(index / "store.sqlite")
    count = 0
    with out.open("w", encoding="utf-8") as f:
        cursor = db.execute(
            "SELECT id, modality, title, text, attributes, created_at, updated_at FROM items ORDER BY row"
        )
        while rows := cursor.fetchmany(5000):
            for id_, modality, title, text, attrs, created, updated in rows:
                record = {
                    "id": id_,
                    "modality": modality,
                    "title": title,
                    "text": text,
                    "attributes": json.loads(attrs),
                }
                f.write(json.dumps({**record, "created_at": created, "updated_at": updated}, ensure_ascii=False) + "\n")
            count += len(rows)
    db.close()
    return count


def rate(fn: Any, rounds: int) -> dict[str, Any]:
    rates, items = [], 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        items = fn()
        rates.append(items / (time.perf_counter() - t0))
    return {"items": items, "items_per_s": round(statistics.median(rates)), "rounds": [round(r) for r in rates]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        engine = Engine.open(folder / "idx", encoder="hashing", index="exact", extensions=[])
        t0 = time.perf_counter()
        engine.add(synsets(args.n))
        print(f"indexed {args.n} items in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        out: dict[str, Any] = {"n": args.n, "target_items_per_s": TARGET}
        with engine:
            cases = {
                "jsonl": {"path": "a.jsonl"},
                "jsonl_vectors": {"path": "a.jsonl", "with_vectors": True},
                "parquet": {"path": "a.parquet"},
                "parquet_vectors": {"path": "a.parquet", "with_vectors": True},
                "jsonl_filtered_noun": {"path": "a.jsonl", "filters": {"pos": "n"}},
            }
            for name, options in cases.items():
                path = folder / options.pop("path")
                out[name] = rate(
                    lambda path=path, options=options: engine.export(path, force=True, **options).items, args.rounds
                )
                print(f"{name}: {out[name]}", file=sys.stderr)
            out["floor_sqlite_json"] = rate(lambda: floor(folder / "idx", folder / "floor.jsonl"), args.rounds)
        out["jsonl_vs_floor"] = round(out["jsonl"]["items_per_s"] / out["floor_sqlite_json"]["items_per_s"], 3)
        out["met"] = {name: out[name]["items_per_s"] >= TARGET for name in cases}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
