"""What a separate, lower-weighted BM25F field for WordNet usage examples would do to the lexical run (issue 19).

    python benchmarks/bench_examples_field.py FOLDER [FOLDER ...] [--weights 1 0.5 0.3 0.2 0] [--probe TEXT ...]

Each FOLDER holds a ``catalog.jsonl`` and a ``queries.jsonl`` with a ``kind`` key: the demo's sample catalog
(``.cache/samples/size-1500``) or a judged set built by ``benchmarks/bench_modes.py`` (its ``--work`` folder's
``wordnet``). An offline simulation, not the engine: BM25F over the items' analysed terms with
:mod:`xmodal.store.fulltext`'s formula and constants (``K1``, ``B``, ``FIELD_WEIGHTS``), first with the title and
one body field as the store has them (this row reproduces the engine's ``lexical`` mode), then with a WordNet
item's gloss split into its definition (the body) and its usage examples (the quoted sentences after it: a third
field of weight ``w``, normalised by its own length, or — the rows "body length" — both parts by the whole
body's length, as the one field is, so only the weights differ). Items whose id does not start with ``wordnet/`` keep
their whole text as the body. Prints one JSON object: per layout, nDCG@10 and R@10 per query kind, and the top
hits of each ``--probe`` query.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from xmodal.eval.metrics import ndcg_at_k, recall_at_k
from xmodal.store.analysis import terms
from xmodal.store.fulltext import FIELD_WEIGHTS, K1, B

EXAMPLES = re.compile(r'[;:]\s*"')  # where a WordNet gloss's usage examples start: 'definition; "example"; ...'


def split_gloss(gloss: str) -> tuple[str, str]:
    """(definition, examples) of a WordNet gloss; a gloss without examples is all definition."""
    found = EXAMPLES.search(gloss)
    if found is None or not gloss[: found.start()].strip():
        return gloss, ""
    return gloss[: found.start()], gloss[found.start() :]


class Simulation:
    """The items' fields as term counts: title, whole text, definition, examples."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.ids = [str(r["id"]) for r in records]
        self.fields: list[tuple[Counter[str], ...]] = []
        for r in records:
            text = str(r.get("text", ""))
            definition, examples = split_gloss(text) if str(r["id"]).startswith("wordnet/") else (text, "")
            self.fields.append(tuple(Counter(terms(t)) for t in (str(r.get("title", "")), text, definition, examples)))
        self.n = len(records)
        self.df: Counter[str] = Counter()
        self.postings: dict[str, set[int]] = defaultdict(set)
        for row, (title, text, _, _) in enumerate(self.fields):
            for term in set(title) | set(text):
                self.df[term] += 1
                self.postings[term].add(row)
        self.average = [max(sum(sum(f[i].values()) for f in self.fields) / max(self.n, 1), 1e-9) for i in range(4)]

    def search(self, text: str, w: float | None, k: int = 10, shared: bool = False) -> list[tuple[str, float]]:
        """The top ``k`` (id, score); ``w`` None: title + one body field (the store's layout), else title +
        definition + examples at weight ``w``, each normalised by its own length, or with ``shared`` both by the
        whole body's (so ``w = 1`` is the store's layout again). Rows that score 0 are not hits."""
        query = [t for t in dict.fromkeys(terms(text)) if t in self.df]
        rows = set().union(*(self.postings[t] for t in query)) if query else set()
        w_title, w_body = FIELD_WEIGHTS
        layout = [(0, w_title), (1, w_body)] if w is None else [(0, w_title), (2, w_body), (3, w)]
        out = []
        for row in rows:
            fields, score = self.fields[row], 0.0
            for term in query:
                tf = 0.0
                for i, weight in layout:
                    count = fields[i][term]
                    if count and weight:
                        norm = 1 if shared and i > 1 else i
                        tf += weight * count / ((1 - B) + B * sum(fields[norm].values()) / self.average[norm])
                if tf:
                    df = self.df[term]
                    score += max(math.log(1 + (self.n - df + 0.5) / (df + 0.5)), 1e-6) * tf / (K1 + tf)
            if score > 0:
                out.append((self.ids[row], score))
        out.sort(key=lambda pair: (-pair[1], pair[0]))
        return out[:k]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--weights", nargs="+", type=float, default=[1.0, 0.5, 0.3, 0.2, 0.0])
    parser.add_argument("--probe", nargs="*", default=["a cup of coffee", "an astronaut in a space suit"])
    args = parser.parse_args()
    report: dict[str, Any] = {}
    for folder in args.folders:
        sim = Simulation(read_jsonl(folder / "catalog.jsonl"))
        queries = [q for q in read_jsonl(folder / "queries.jsonl") if q.get("text") and q.get("relevant")]
        kinds = sorted({str(q.get("kind", "other")) for q in queries})
        layouts: dict[str, Any] = {}
        for w, shared in [(None, False), *((w, False) for w in args.weights), *((w, True) for w in args.weights)]:
            per_kind = {}
            for kind in kinds:
                chosen = [q for q in queries if str(q.get("kind", "other")) == kind]
                ranked = [
                    ([i for i, _ in sim.search(str(q["text"]), w, shared=shared)], set(q["relevant"])) for q in chosen
                ]
                per_kind[kind] = {
                    "queries": len(chosen),
                    "ndcg@10": round(sum(ndcg_at_k(r, rel, 10) for r, rel in ranked) / len(chosen), 4),
                    "recall@10": round(sum(recall_at_k(r, rel, 10) for r, rel in ranked) / len(chosen), 4),
                }
            probes = {text: [[i, round(s, 3)] for i, s in sim.search(text, w, 6, shared)] for text in args.probe}
            name = "one body field" if w is None else f"examples w={w:g}" + (", body length" if shared else "")
            layouts[name] = {"kinds": per_kind, "probes": probes}
        report[str(folder)] = layouts
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
