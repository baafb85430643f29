"""The lexical index: yesterday's in-memory BM25F (a JSON dump) against the store's FTS5 BM25F.

    python benchmarks/bench_lexical.py --samples /tmp/xmodal-samples --items 20000

"old" is the index xmodal had before issue 12 (copied below as :class:`OldBM25`: BM25F in Python
dicts, light suffix stemmer, ``ltr/lexical.json`` written on every close). "new" is
:mod:`xmodal.store.fulltext` (BM25F from SQLite FTS5 postings, Snowball stems, written in the item's
transaction). A third ranking, "fts5_bm25", is FTS5's built-in ``bm25()`` over the same stored terms
(title weight 3, body 1): the alternative the new index was chosen against.

Quality (rankings as ``xmodal eval --mode lexical`` makes them: the strategy's top 10):

- ``wordnet``: the judged set of docs/benchmarks/ltr.md — 3,000 WordNet nouns, 300 queries
  (exact names, attribute queries, descriptive queries with typos);
- ``demo``: the demo's sample catalog and its 498 judged queries (``xmodal.samples``; image-only
  queries count as misses for every lexical ranking, as in ``xmodal eval``);
- ``simulator``: the LTR benchmark's stream (``bench_bandit.py``: ``build(5000, 5000, seed=0)``),
  lexical alone — success@10 (a relevant item in the top 10) per query kind, as the fixed set
  "lexical" scores there (the strategy is stateless with the popularity prior off, its default).

Each gives recall@10, MRR and nDCG@10 for old, new and fts5_bm25, and the agreement of new with
old: overlap@10 (shared items / 10) and Kendall's tau-b over the union of both top 10s (an item
missing from a list ranks 11th in it).

Scale (``--items`` WordNet nouns): build time, disk size, the first query in a fresh process
(old: load the JSON; new: open the store), query latency (top 10, and the ranker's feature on 50
rows), and what indexing adds to ``SQLiteStore.put``. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xmodal.eval.metrics import score_ranking
from xmodal.ltr.simreport import build
from xmodal.ltr.simulate import QueryGenerator, wordnet_catalog
from xmodal.ltr.strategies.base import top_rows
from xmodal.ltr.text import stem, tokens
from xmodal.records import Item
from xmodal.samples import build_catalog
from xmodal.store.analysis import terms
from xmodal.store.fulltext import FullText
from xmodal.store.sqlite import SQLiteStore

HERE = Path(__file__).resolve().parent


# -- the index before issue 12 (src/xmodal/ltr/strategies/lexical.py at 5d19e48), for comparison ----
def old_terms(text: str) -> list[str]:
    """The old analyzer: tokens and the light suffix stripper."""
    return [stem(t) for t in tokens(text)]


class OldBM25:
    """Postings per term of per-field term counts; BM25F (k1 1.2, b 0.75, title 3, body 1)."""

    def __init__(self, k1: float = 1.2, b: float = 0.75, weights: tuple[float, float] = (3.0, 1.0)) -> None:
        self.k1, self.b, self.weights = k1, b, weights
        self.postings: dict[str, dict[int, tuple[int, int]]] = {}
        self.lengths: dict[int, tuple[int, int]] = {}
        self.total = [0, 0]

    def put(self, row: int, title: Sequence[str], body: Sequence[str]) -> None:
        tc, bc = Counter(title), Counter(body)
        for term in tc.keys() | bc.keys():
            self.postings.setdefault(term, {})[row] = (tc.get(term, 0), bc.get(term, 0))
        self.lengths[row] = (len(title), len(body))
        self.total[0] += len(title)
        self.total[1] += len(body)

    def score(self, query: Sequence[str]) -> dict[int, float]:
        n = len(self.lengths)
        if n == 0:
            return {}
        avg = [max(self.total[f] / n, 1e-9) for f in range(2)]
        out: dict[int, float] = {}
        for term in sorted(set(query)):  # sorted: the original summed in set order (hash-seeded ties)
            posting = self.postings.get(term)
            if not posting:
                continue
            df = len(posting)
            idf = max(math.log(1.0 + (n - df + 0.5) / (df + 0.5)), 1e-6)
            for row, (tt, tb) in posting.items():
                lt, lb = self.lengths[row]
                tf = self.weights[0] * tt / (1 - self.b + self.b * lt / avg[0])
                tf += self.weights[1] * tb / (1 - self.b + self.b * lb / avg[1])
                out[row] = out.get(row, 0.0) + idf * tf / (self.k1 + tf)
        return out

    def score_rows(self, query: Sequence[str], rows: Sequence[int]) -> np.ndarray:
        n = len(self.lengths)
        out = np.zeros(len(rows))
        if n == 0:
            return out
        avg = [max(self.total[f] / n, 1e-9) for f in range(2)]
        for term in sorted(set(query)):
            posting = self.postings.get(term)
            if not posting:
                continue
            df = len(posting)
            idf = max(math.log(1.0 + (n - df + 0.5) / (df + 0.5)), 1e-6)
            for i, row in enumerate(rows):
                counts = posting.get(row)
                if counts is not None:
                    lt, lb = self.lengths[row]
                    tf = self.weights[0] * counts[0] / (1 - self.b + self.b * lt / avg[0])
                    tf += self.weights[1] * counts[1] / (1 - self.b + self.b * lb / avg[1])
                    out[i] += idf * tf / (self.k1 + tf)
        return out

    def to_json(self) -> dict[str, Any]:
        docs: dict[int, list[dict[str, int]]] = {row: [{}, {}] for row in self.lengths}
        for term, posting in self.postings.items():
            for row, (tt, tb) in posting.items():
                if tt:
                    docs[row][0][term] = tt
                if tb:
                    docs[row][1][term] = tb
        return {
            "k1": self.k1,
            "b": self.b,
            "weights": list(self.weights),
            "docs": {str(r): [d[0], d[1], list(self.lengths[r])] for r, d in docs.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OldBM25:
        index = cls(float(data["k1"]), float(data["b"]), (float(data["weights"][0]), float(data["weights"][1])))
        for key, (title, body, lengths) in data["docs"].items():
            row = int(key)
            for term in title.keys() | body.keys():
                index.postings.setdefault(term, {})[row] = (int(title.get(term, 0)), int(body.get(term, 0)))
            index.lengths[row] = (int(lengths[0]), int(lengths[1]))
            index.total[0] += int(lengths[0])
            index.total[1] += int(lengths[1])
        return index


# -- the two indexes over one catalog --------------------------------------------------------------
class Pair:
    """The old and the new index over the same (id, title, text) records."""

    def __init__(self, docs: Sequence[tuple[str, str, str]], folder: Path) -> None:
        self.ids = [d[0] for d in docs]
        self.old = OldBM25()
        for row, (_, title, text) in enumerate(docs, 1):
            self.old.put(row, old_terms(title), old_terms(text))
        self.store = SQLiteStore(folder / "store.sqlite")
        # image-only items get a placeholder image reference: the store keeps it, the index sees no text
        made = [Item.create(i, title=t, text=x, image=None if t or x else "image.png") for i, t, x in docs]
        rows = self.store.put([(item, {}) for item in made])
        self.new_ids = dict(zip(rows, self.ids, strict=True))

    def old_top(self, text: str | None, k: int = 10) -> list[str]:
        return [self.ids[r - 1] for r, _ in top_rows(self.old.score(old_terms(text or "")), k)]

    def new_top(self, text: str | None, k: int = 10) -> list[str]:
        return [self.new_ids[r] for r, _ in self.store.fulltext.top(terms(text), k)]

    def fts5_top(self, text: str | None, k: int = 10) -> list[str]:
        distinct = sorted(set(terms(text)))
        if not distinct:
            return []
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in distinct)
        sql = "SELECT rowid FROM fulltext WHERE fulltext MATCH ? ORDER BY bm25(fulltext, 3.0, 1.0), rowid LIMIT ?"
        return [self.new_ids[r] for (r,) in self.store._db.execute(sql, (match, k))]


def kendall_tau(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Kendall's tau-b of two top-k lists over their union (a missing item ranks k + 1)."""
    union = list(dict.fromkeys([*a, *b]))
    if len(union) < 2:
        return None
    ra = [a.index(x) if x in a else len(a) for x in union]
    rb = [b.index(x) if x in b else len(b) for x in union]
    concordant = discordant = ties_a = ties_b = 0
    for i in range(len(union)):
        for j in range(i + 1, len(union)):
            da, db = np.sign(ra[i] - ra[j]), np.sign(rb[i] - rb[j])
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif da == db:
                concordant += 1
            else:
                discordant += 1
    denom = math.sqrt((concordant + discordant + ties_a) * (concordant + discordant + ties_b))
    return (concordant - discordant) / denom if denom else None


def judged(pair: Pair, queries: Sequence[tuple[str | None, frozenset[str]]]) -> dict[str, Any]:
    """Metrics of old, new and fts5_bm25 on a judged set, and new's agreement with old."""
    rankers: dict[str, Callable[[str | None], list[str]]] = {
        "old": pair.old_top,
        "new": pair.new_top,
        "fts5_bm25": pair.fts5_top,
    }
    out: dict[str, Any] = {"queries": len(queries), "text_queries": sum(1 for t, _ in queries if t)}
    runs = {name: [rank(text) if text else [] for text, _ in queries] for name, rank in rankers.items()}
    for name, lists in runs.items():
        sums: Counter[str] = Counter()
        for ranking, (_, relevant) in zip(lists, queries, strict=True):
            sums.update(score_ranking(ranking, relevant))
        out[name] = {m: round(sums[m] / len(queries), 4) for m in ("recall@10", "mrr", "ndcg@10")}
    overlap, taus, same = [], [], 0
    for a, b in zip(runs["old"], runs["new"], strict=True):
        if a or b:
            overlap.append(len(set(a) & set(b)) / max(len(a), len(b)))
            same += a == b
            tau = kendall_tau(a, b)
            if tau is not None:
                taus.append(tau)
    out["new_vs_old"] = {
        "overlap@10": round(float(np.mean(overlap)), 4),
        "kendall_tau": round(float(np.mean(taus)), 4),
        "identical_top10": round(same / max(len(overlap), 1), 4),
        "ndcg@10_change": round(out["new"]["ndcg@10"] - out["old"]["ndcg@10"], 4),
    }
    return out


def wordnet_set(folder: Path) -> dict[str, Any]:
    items = wordnet_catalog(3000, seed=0)
    generator = QueryGenerator(items, seed=5, mix=(1 / 3, 1 / 3, 1 / 3, 0))
    queries = [(q.text, q.relevant) for q in (generator.sample() for _ in range(300))]
    return judged(Pair([(i.id, i.title, i.text) for i in items], folder), queries)


def demo_set(samples: Path, folder: Path) -> dict[str, Any]:
    catalog = build_catalog(samples, 1500)
    records = [json.loads(line) for line in catalog.catalog.read_text().splitlines() if line.strip()]
    docs = [(r["id"], r.get("title") or "", r.get("text") or "") for r in records]
    lines = [json.loads(line) for line in catalog.queries.read_text().splitlines() if line.strip()]
    queries = [(q.get("text"), frozenset(q["relevant"])) for q in lines]
    return {"catalog": str(catalog.catalog), **judged(Pair(docs, folder), queries)}


def simulator_stream(folder: Path) -> dict[str, Any]:
    """Lexical alone on bench_bandit's stream (seed 0): success@10 overall and per query kind."""
    sim = build(5000, 5000, seed=0, folder=folder / "sim")
    items = [s.item for s in sim.pipeline.engine.store.iter_all()]
    pair = Pair([(i.id, i.title, i.text) for i in items], folder)
    out: dict[str, Any] = {"searches": len(sim.queries)}
    for name, rank in (("old", pair.old_top), ("new", pair.new_top), ("fts5_bm25", pair.fts5_top)):
        cache: dict[str, list[str]] = {}
        hit: dict[str, list[bool]] = {}
        for q in sim.queries:
            if q.text not in cache:
                cache[q.text] = rank(q.text)
            hit.setdefault(q.kind, []).append(bool(set(cache[q.text]) & q.relevant))
        every = [h for kind in hit.values() for h in kind]
        out[name] = {"success": round(float(np.mean(every)), 4)}
        out[name] |= {kind: round(float(np.mean(v)), 4) for kind, v in sorted(hit.items())}
    sim.pipeline.engine.close()
    return out


# -- scale ------------------------------------------------------------------------------------------
FRESH_OLD = """
import json, sys, time
sys.path.insert(0, {here!r})
from bench_lexical import OldBM25, old_terms
from xmodal.ltr.strategies.base import top_rows
start = time.perf_counter()
index = OldBM25.from_json(json.loads(open({path!r}).read())["index"])
loaded = time.perf_counter()
top_rows(index.score(old_terms({query!r})), 10)
print(json.dumps({{"load_s": loaded - start, "first_query_s": time.perf_counter() - start}}))
"""
FRESH_NEW = """
import json, sys, time
from pathlib import Path
from xmodal.store.analysis import terms
from xmodal.store.sqlite import SQLiteStore
start = time.perf_counter()
store = SQLiteStore(Path({path!r}))
loaded = time.perf_counter()
store.fulltext.top(terms({query!r}), 10)
print(json.dumps({{"load_s": loaded - start, "first_query_s": time.perf_counter() - start}}))
"""


def fresh(code: str) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"fresh process failed: {done.stderr}")
    return {k: round(v, 4) for k, v in json.loads(done.stdout).items()}


def percentiles(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(1000 * float(np.median(samples)), 3),
        "p95_ms": round(1000 * float(np.percentile(samples, 95)), 3),
    }


def scale(n_items: int, n_queries: int, folder: Path) -> dict[str, Any]:
    items = wordnet_catalog(n_items, seed=0)
    out: dict[str, Any] = {"items": len(items)}
    start = time.perf_counter()
    old = OldBM25()
    for row, item in enumerate(items, 1):
        old.put(row, old_terms(item.title), old_terms(item.text))
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    path = folder / "lexical.json"
    path.write_text(json.dumps({"format_version": 1, "seq": len(items), "index": old.to_json()}))
    out["old"] = {
        "build_s": round(build_s, 3),
        "save_on_every_close_s": round(time.perf_counter() - start, 3),
        "disk_bytes": path.stat().st_size,
    }

    entries = [(item, {}) for item in items]
    timings = {}
    for label, enabled in (("without_index", False), ("with_index", True)):
        store = SQLiteStore(folder / f"store-{label}.sqlite")
        saved = FullText.put, FullText.remove
        if not enabled:
            FullText.put = FullText.remove = lambda *a, **k: None  # type: ignore[method-assign]
        try:
            start = time.perf_counter()
            for i in range(0, len(entries), 500):
                store.put(entries[i : i + 500])
            timings[label] = time.perf_counter() - start
        finally:
            FullText.put, FullText.remove = saved  # type: ignore[method-assign]
        if enabled:
            new_store = store
        else:
            store.close()
    db = new_store._db
    start = time.perf_counter()
    db.execute("BEGIN IMMEDIATE")
    n = new_store.fulltext.rebuild((s.row, s.item.title, s.item.text) for s in new_store.iter_all())
    db.execute("COMMIT")
    rebuild_s = time.perf_counter() - start
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = db.execute("SELECT name, SUM(pgsize) FROM dbstat WHERE name LIKE 'fulltext%' GROUP BY name").fetchall()
    out["new"] = {
        "build_s (one transaction, as the schema-1 migration)": round(rebuild_s, 3),
        "items_rebuilt": n,
        "store_put_s_with_index": round(timings["with_index"], 3),
        "store_put_s_without_index": round(timings["without_index"], 3),
        "put_overhead_ms_per_item": round(1000 * (timings["with_index"] - timings["without_index"]) / len(items), 3),
        "save_on_every_close_s": 0.0,
        "disk_bytes": int(sum(size for _, size in pages)),
        "disk_bytes_by_table": {name: int(size) for name, size in pages},
    }

    generator = QueryGenerator(items, seed=1)
    texts = [generator.sample().text for _ in range(n_queries)]
    first = texts[0]
    out["old"]["fresh_process"] = fresh(FRESH_OLD.format(here=str(HERE), path=str(path), query=first))
    new_store.close()
    out["new"]["fresh_process"] = fresh(FRESH_NEW.format(path=str(folder / "store-with_index.sqlite"), query=first))
    new_store = SQLiteStore(folder / "store-with_index.sqlite")
    lat: dict[str, dict[str, list[float]]] = {"old": {"top10": [], "rows50": []}, "new": {"top10": [], "rows50": []}}
    for text in texts:
        t0 = time.perf_counter()
        top_rows(old.score(old_terms(text)), 10)
        t1 = time.perf_counter()
        new_store.fulltext.top(terms(text), 10)
        t2 = time.perf_counter()
        # the ranker's candidates (same rows in both): 25 lexical ones and 25 others, as when dense shares the plan
        row_sample = [r for r, _ in new_store.fulltext.top(terms(text), 25)] + list(range(1, 26))
        t2 = time.perf_counter()
        old.score_rows(old_terms(text), row_sample)
        t3 = time.perf_counter()
        new_store.fulltext.score_rows(terms(text), row_sample)
        t4 = time.perf_counter()
        lat["old"]["top10"].append(t1 - t0)
        lat["new"]["top10"].append(t2 - t1)
        lat["old"]["rows50"].append(t3 - t2)
        lat["new"]["rows50"].append(t4 - t3)
    for name in ("old", "new"):
        out[name]["query_top10"] = percentiles(lat[name]["top10"])
        out[name]["ranker_feature_50_rows"] = percentiles(lat[name]["rows50"])
    out["queries"] = f"{len(texts)} simulated queries (QueryGenerator seed 1: names, attributes, descriptive, head)"
    new_store.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=20000, help="catalog size of the scale part (WordNet nouns)")
    ap.add_argument("--queries", type=int, default=500, help="queries timed in the scale part")
    ap.add_argument(
        "--samples",
        type=Path,
        default=Path(tempfile.gettempdir()) / "xmodal-samples",
        help="folder of the demo's sample catalog (built there when missing; about 20 s)",
    )
    ap.add_argument("--skip", nargs="*", default=[], choices=["wordnet", "demo", "simulator", "scale"])
    args = ap.parse_args()
    out: dict[str, Any] = {"sqlite": sqlite3.sqlite_version}
    with tempfile.TemporaryDirectory(prefix="xmodal-bench-lexical-") as tmp:
        root = Path(tmp)
        parts: dict[str, Callable[[], dict[str, Any]]] = {
            "wordnet": lambda: wordnet_set(root / "wordnet"),
            "demo": lambda: demo_set(args.samples, root / "demo"),
            "simulator": lambda: simulator_stream(root / "simulator"),
            "scale": lambda: scale(args.items, args.queries, root / "scale"),
        }
        for name, part in parts.items():
            if name in args.skip:
                continue
            (root / name).mkdir()
            start = time.perf_counter()
            out[name] = part()
            out[name]["took_s"] = round(time.perf_counter() - start, 1)
            print(f"{name}: done in {out[name]['took_s']} s", file=sys.stderr)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
