"""The memory typo tolerance keeps for the words it read (:mod:`xmodal.ltr.spelling`'s candidates cache), at worst.

Run:  python benchmarks/bench_typo_cache.py [--words 300] [--length 32]

Reads ``--words`` distinct random words of ``--length`` letters (the longest read as typos: each has ~54 one-edit
candidates per letter, with their stems) as queries of a catalog that holds none of their candidates, so every
word's candidates are made and kept, and prints as JSON the memory the cache then holds (``tracemalloc``: what
was allocated and not freed), the words and candidates kept, and the bound.
"""

from __future__ import annotations

import argparse
import json
import random
import string
import tracemalloc

from xmodal.ltr import spelling
from xmodal.ltr.spelling import read_query


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--words", type=int, default=300)
    parser.add_argument("--length", type=int, default=spelling.MAX_LENGTH)
    args = parser.parse_args()
    rng = random.Random(0)
    words = ["".join(rng.choice(string.ascii_lowercase) for _ in range(args.length)) for _ in range(args.words)]
    spelling._candidates.cache_clear()
    tracemalloc.start()
    for word in words:
        read_query(word, lambda terms: {})
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    cache = spelling._candidates.cache
    report = {
        "words": args.words,
        "length": args.length,
        "held_mb": round(held / 2**20, 1),
        "peak_mb": round(peak / 2**20, 1),
        "words_kept": len(cache),
        "candidates_kept": int(cache.currsize),
        "candidates_bound": spelling.CANDIDATES_KEPT,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
