"""What a privacy-complete delete costs (issue 17, part 6): ``Engine.erase`` (``delete``) of one item with the scrub (the
default: vector checkpoint, extensions' state, full-text merge, WAL truncation) vs ``scrub=False`` (the peer:
the store transaction and the in-memory structures only), on the same index, interleaved, in the same run.

Run:  python benchmarks/bench_delete.py [--items 5000] [--deletes 20] [--index exact|hnsw]

Items: WordNet glosses when Debian's ``wordnet-base`` is installed (title = lemma, text = gloss), else seeded
synthetic sentences; the hashing encoder (no model), the default extensions (ltr, genret, guards).
Prints one JSON object: median and p95 milliseconds of each, and their ratio.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from xmodal import Engine, Item
from xmodal.encoders import HashingEncoder

WORDNET = Path("/usr/share/wordnet/data.noun")


def items(n: int, rng: random.Random) -> list[Item]:
    out: list[Item] = []
    if WORDNET.is_file():
        for line in WORDNET.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue
            head, gloss = line.split("|", 1)
            out.append(Item.create(f"w{len(out)}", title=head.split()[4].replace("_", " "), text=gloss.strip()))
            if len(out) == n:
                return out
    words = "red blue lamp chair table garden summer coffee green jacket river stone".split()
    return [
        Item.create(f"s{i}", title=" ".join(rng.sample(words, 3)), text=" ".join(rng.sample(words, 8)))
        for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--deletes", type=int, default=20)
    parser.add_argument("--index", default="exact")
    args = parser.parse_args()
    rng = random.Random(0)
    catalog = items(args.items, rng)
    with (
        tempfile.TemporaryDirectory() as tmp,
        Engine.open(Path(tmp) / "idx", encoder=HashingEncoder(), index=args.index) as engine,
    ):
        engine.add(catalog)
        engine.checkpoint()
        victims = rng.sample([item.id for item in catalog], 2 * args.deletes)
        times: dict[str, list[float]] = {"scrub": [], "no_scrub": []}
        for n, victim in enumerate(victims):
            scrub = n % 2 == 0
            start = time.perf_counter()
            engine.erase([victim], scrub=scrub)
            times["scrub" if scrub else "no_scrub"].append((time.perf_counter() - start) * 1000)
        store_mb = (Path(tmp) / "idx" / "store.sqlite").stat().st_size / 1e6
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        json.dumps(
            {
                "items": len(catalog),
                "index": args.index,
                "store_mb": round(store_mb, 1),
                "deletes_each": args.deletes,
                "median_ms_scrub": round(med["scrub"], 1),
                "median_ms_no_scrub": round(med["no_scrub"], 1),
                "p95_ms_scrub": round(sorted(times["scrub"])[int(0.95 * (len(times["scrub"]) - 1))], 1),
                "ratio_median_scrub_vs_no_scrub": round(med["scrub"] / med["no_scrub"], 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
