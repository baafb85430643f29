"""CPU time of the learned pipeline's policy stage alone (query understanding + context + the plan), per query.

    PYTHONPATH=src python benchmarks/bench_ltr_policy_cpu.py --items 20000 --queries 300 --index /tmp/ltr-20k

The catalog and queries are ``bench_ltr_latency.py``'s (WordNet synsets, hashing encoder, exact index; the lemmas
of random synsets). The index is built in ``--index`` on first use and reopened after (built by the tree that runs
this file: give each tree its own folder). Each query runs once, as in that benchmark: a plain dense search
(untimed), then the stage, timed with this thread's CPU clock (``time.thread_time_ns``), so the figure does not
count the time spent waiting for a core on a loaded machine. ``--warm`` leaves the dense search out (the stage's
code and data stay in the CPU's caches) and runs the queries ``--passes`` times. Runs on older trees too (no
``untuned_plan``: ``plan``; no ``checked_once``: none). Prints JSON: mean and median µs per query, and a digest of
every query's context and plan (equal across trees that plan alike).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from xmodal import Engine, Item, Query
from xmodal.encoders import HashingEncoder
from xmodal.ltr.pipeline import Pipeline

try:
    from xmodal.store.termstats import checked_once
except ImportError:  # an older tree: no full-text statistics to check once per search
    checked_once = contextlib.nullcontext  # type: ignore[assignment]


POS = ("noun", "verb", "adj", "adv")


def wordnet_items(n: int) -> list[Item]:
    """``bench_ltr_latency.py``'s catalog (copied: this file runs on trees whose benchmark imports newer APIs)."""
    lex = (
        "adj.all adj.pert adv.all Tops act animal artifact attribute body cognition communication event feeling "
        "food group location motive object person phenomenon plant possession process quantity relation shape "
        "state substance time body change cognition communication competition consumption contact creation "
        "emotion motion perception possession social stative weather adj.ppl"
    ).split()
    items: list[Item] = []
    for pos in POS:
        for line in Path(f"/usr/share/wordnet/data.{pos}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):
                continue
            head, _, gloss = line.partition(" | ")
            parts = head.split()
            code = int(parts[1])
            items.append(
                Item.create(
                    f"{pos}{parts[0]}",
                    title=parts[4].replace("_", " "),
                    text=gloss.split(";")[0],
                    created_at=1.0,
                    attributes={"category": lex[code] if code < len(lex) else "other", "pos": pos},
                )
            )
            if len(items) >= n:
                return items
    return items


def main() -> None:
    os.environ.setdefault("XMODAL_AUTOTUNE", "off")  # no background fit of the default mode beside the timing
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--warm", action="store_true", help="no dense search between the queries")
    ap.add_argument("--passes", type=int, default=1)
    args = ap.parse_args()
    items = wordnet_items(args.items)
    new = not args.index.exists()
    engine = Engine.open(args.index, encoder=HashingEncoder(), index="exact")
    if new:
        engine.add(items)
    pipe = Pipeline(engine)
    rng = np.random.default_rng(0)
    queries = [Query(text=items[int(i)].title, k=10) for i in rng.integers(len(items), size=args.queries)]
    vectors = [engine.encode_query(q) for q in queries]
    pipe.prepare(Query(text="warm up"))  # starts the full-text statistics' background pass where there is one
    time.sleep(2)
    refresh = getattr(engine, "refresh", lambda: None)
    untuned = hasattr(pipe, "untuned_plan")
    spent: list[int] = []
    seen: list[Any] = []
    for n in range(args.passes):
        for q, v in zip(queries, vectors, strict=True):
            if not args.warm:
                engine.search_vector(v, k=q.k)
            with checked_once():
                refresh()
                a = time.thread_time_ns()
                prepared = pipe.prepare(q, vector=v) if untuned else pipe.prepare(q)
                plan = pipe.untuned_plan(prepared) if untuned else pipe.plan(prepared)
                spent.append(time.thread_time_ns() - a)
            if n == 0:
                seen.append((prepared.context, prepared.available, plan.to_list(), plan.indices))
    us = np.asarray(spent) / 1000
    out = {
        "items": len(engine),
        "queries": len(queries),
        "warm": args.warm,
        "passes": args.passes,
        "policy_cpu_us_mean": round(float(us.mean()), 2),
        "policy_cpu_us_p50": round(float(np.median(us)), 2),
        "digest": hashlib.sha1(json.dumps(seen, default=str).encode()).hexdigest()[:12],
    }
    print(json.dumps(out))
    engine.close()


if __name__ == "__main__":
    main()
