"""The demo's judged queries per query on two indexes, and the paired difference with a bootstrap interval.

    python benchmarks/bench_demo_paired.py run INDEX QUERIES ROOT OUT.json   # per-query metrics on one index
    python benchmarks/bench_demo_paired.py compare BEFORE.json AFTER.json    # mean, paired difference, 95% interval

``run`` scores every query of the demo's ``queries.jsonl`` (``ROOT``: the sample catalog's folder, for image
queries) as ``./scripts/demo`` does (``evaluate(k=10)``, the index's default mode), and the ``wordnet-synonym``
queries also in the ``lexical`` and ``dense`` modes. ``run`` each index with the code that built it (an index of
another full-text layout is migrated when it opens). ``compare`` prints per kind and mode the means before and
after and the mean paired difference with its 95% bootstrap interval (2,000 resamples of the queries, seed 0).
"""

from __future__ import annotations

import json
import random
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from xmodal import Engine
from xmodal.eval.runner import EvalQuery, EvalReport, read_queries, score_queries
from xmodal.ingest.prepare import Rejection

MODES = {"wordnet-synonym": ["lexical", "dense"]}


def run(index: Path, queries: Path, root: Path, out: Path) -> None:
    lines = [line for line in queries.read_text().splitlines() if line.strip()]
    kinds = [str(json.loads(line).get("kind", "other")) for line in lines]
    groups: dict[str, list[EvalQuery | Rejection]] = defaultdict(list)
    for kind, entry in zip(kinds, read_queries(queries), strict=True):
        groups[kind].append(entry)
    found: dict[str, list[dict[str, float]]] = {}
    with Engine.open(index) as engine:
        for kind, entries in sorted(groups.items()):
            for mode in [None, *MODES.get(kind, [])]:
                report = EvalReport(k=10)
                scored = score_queries(engine, entries, report, base_dir=root, k=10, mode=mode)
                found[f"{kind}/{mode or 'default'}"] = [s.metrics for s in scored]
    out.write_text(json.dumps(found))


def _interval(before: list[float], after: list[float], rng: random.Random, n: int = 2000) -> tuple[float, ...]:
    d = [b - a for a, b in zip(before, after, strict=True)]
    means = sorted(sum(d[rng.randrange(len(d))] for _ in d) / len(d) for _ in range(n))
    return sum(d) / len(d), means[int(0.025 * n)], means[int(0.975 * n) - 1]


def compare(before_path: Path, after_path: Path) -> None:
    before: dict[str, Any] = json.loads(before_path.read_text())
    after: dict[str, Any] = json.loads(after_path.read_text())
    rng = random.Random(0)
    every: tuple[list[float], list[float]] = ([], [])
    for key in sorted(before):
        for metric in ("ndcg@10", "recall@10"):
            x, y = [m[metric] for m in before[key]], [m[metric] for m in after[key]]
            mean, low, high = _interval(x, y, rng)
            print(
                f"{key:28s} {metric:9s} n={len(x):3d}  {sum(x) / len(x):.3f} -> {sum(y) / len(y):.3f}  "
                f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"
            )
            if key.endswith("/default") and metric == "ndcg@10":
                every[0].extend(x)
                every[1].extend(y)
    mean, low, high = _interval(*every, rng)
    n = len(every[0])
    print(
        f"{'all/default':28s} ndcg@10   n={n}  {sum(every[0]) / n:.3f} -> {sum(every[1]) / n:.3f}  "
        f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"
    )


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "run":
        run(*(Path(a) for a in sys.argv[2:6]))
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        compare(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        raise SystemExit(__doc__)
