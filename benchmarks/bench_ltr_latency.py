"""Added latency of the learned pipeline (policy + fusion + phrase tier + ranker) over plain dense search.

    python benchmarks/bench_ltr_latency.py --items 100000 --queries 300

Catalog: WordNet synsets (Debian ``wordnet-base``; nouns, then verbs, adjectives and adverbs until
``--items``), one item per synset (title = first lemma, text = gloss, attributes = lexicographer
category and part of speech), hashing encoder, exact index. Queries: the lemmas of random synsets.
Per query it times, separately: plain dense search (``Engine.search_vector``, the peer), the
policy (query understanding + context + ``select``), the strategies' retrieval, fusion (the pipeline's
default, min-max convex, with query-dependent weights: each run's NQC; score completion when configured), and the
ranker (features of the top 50 + LightGBM scoring; the model is trained on the bench's own
features with random labels, only its size matters), and the arrangement of the list shown (a repeated
query's top kept, exploration's items placed, scores on [0, 1]); each query's stages run as one search
(``Engine.search``'s :func:`~xmodal.store.termstats.checked_once` block, its ``refresh`` first, untimed).
"added" = policy + fusion + ranker + arrange (the target); "learned_total" = the whole learned search after
encoding, strategies included. Prints JSON; query
encoding is excluded.

``--misspelled`` gives each query one typo in its longest word (the lexical run then reads it back,
:mod:`xmodal.ltr.spelling`: its cost is in the ``strategies`` stage).

``--tuned SAMPLE`` also fits the self-tuned fusion (:mod:`xmodal.ltr.selftune`, what ``xmodal ltr tune
--sample SAMPLE`` fits) and times, for the same queries in the same loop, the search that uses it: its plan
(every available strategy at an equal share), the strategies' runs, its fusion (the model's choice of
configuration, the runs fused with its weights), the same ranker and arrangement (the ``tuned_*`` stages;
``tuned_added`` = policy + fusion + ranker + arrange, and its difference from ``added``). A model that did not
beat the default on its held-out items (``accepted`` false, so searches would not use it) is timed all the same.

    python benchmarks/bench_ltr_latency.py --items 100000 --queries 300 --tuned 300
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from xmodal import Engine, Item, Query
from xmodal.encoders import HashingEncoder
from xmodal.ltr.features import candidate_features
from xmodal.ltr.fusion import fuse
from xmodal.ltr.phrase import query_phrase
from xmodal.ltr.pipeline import Pipeline
from xmodal.ltr.pseudo import typo
from xmodal.ltr.ranker import LambdaRanker
from xmodal.ltr.scores import shown_scores
from xmodal.ltr.selftune import tune
from xmodal.store.termstats import checked_once

POS = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}
LEX = (
    "adj.all adj.pert adv.all Tops act animal artifact attribute body cognition communication event feeling "
    "food group location motive object person phenomenon plant possession process quantity relation shape "
    "state substance time body change cognition communication competition consumption contact creation "
    "emotion motion perception possession social stative weather adj.ppl"
).split()


def wordnet_items(n: int) -> list[Item]:
    items: list[Item] = []
    for pos in POS:
        for line in Path(f"/usr/share/wordnet/data.{pos}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):
                continue
            head, _, gloss = line.partition(" | ")
            parts = head.split()
            lemma = parts[4].replace("_", " ")
            lex = int(parts[1])
            items.append(
                Item.create(
                    f"{pos}{parts[0]}",
                    title=lemma,
                    text=gloss.split(";")[0],
                    created_at=1.0,
                    attributes={"category": LEX[lex] if lex < len(LEX) else "other", "pos": pos},
                )
            )
            if len(items) >= n:
                return items
    return items


def lemmas(items: list[Item], n: int, rng: np.random.Generator) -> list[Query]:
    """Random synsets' first lemmas (one or two words: the phrase tier does not run)."""
    return [Query(text=items[int(i)].title, k=10) for i in rng.integers(len(items), size=n)]


def fragments(items: list[Item], n: int, rng: np.random.Generator) -> list[Query]:
    """Four consecutive words of random items' glosses, at least three of them not stop words."""
    out: list[Query] = []
    while len(out) < n:
        words = items[int(rng.integers(len(items)))].text.split()
        if len(words) < 4:
            continue
        at = int(rng.integers(len(words) - 3))
        text = " ".join(words[at : at + 4])
        if query_phrase(text) is not None:
            out.append(Query(text=text, k=10))
    return out


def misspelled(items: list[Item], n: int, rng: np.random.Generator) -> list[Query]:
    """Random synsets' first lemmas with one typo in their longest word (:func:`~xmodal.ltr.pseudo.typo`, the
    self-tuning's misspelled queries), for lemmas with a word of five letters or more: the lexical run reads the
    typo back (:mod:`xmodal.ltr.spelling`), so its time is in ``strategies``."""
    out: list[Query] = []
    while len(out) < n:
        i = int(rng.integers(len(items)))
        words = items[i].title.split()
        longest = max(range(len(words)), key=lambda j: len(words[j]))
        changed = typo(words[longest], items[i].id, 0)
        if changed is not None:
            out.append(Query(text=" ".join(words[:longest] + [changed] + words[longest + 1 :]), k=10))
    return out


def pct(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values) * 1000
    return {"p50_ms": round(float(np.percentile(arr, 50)), 3), "p95_ms": round(float(np.percentile(arr, 95)), 3)}


def main() -> None:
    os.environ.setdefault("XMODAL_AUTOTUNE", "off")  # no background fit of the default mode beside the timing
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--tuned", type=int, default=0, metavar="SAMPLE", help="also time the self-tuned fusion")
    ap.add_argument(
        "--fragments",
        action="store_true",
        help="queries of four consecutive words of an item's text (three not stop words: the phrase tier runs)",
    )
    ap.add_argument(
        "--misspelled",
        action="store_true",
        help="lemmas with one typo in their longest word (the lexical run reads it back: xmodal.ltr.spelling)",
    )
    args = ap.parse_args()
    t0 = time.perf_counter()
    items = wordnet_items(args.items)
    engine = Engine.open(Path(tempfile.mkdtemp()) / "idx", encoder=HashingEncoder(), index="exact")
    engine.add(items)
    build_s = time.perf_counter() - t0
    pipe = Pipeline(engine)
    setup_s = time.perf_counter() - t0 - build_s
    rng = np.random.default_rng(0)
    make = fragments if args.fragments else misspelled if args.misspelled else lemmas
    queries = make(items, args.queries, rng)
    vectors = [engine.encode_query(q) for q in queries]
    rows = [
        candidate_features(pipe, q, v, fuse("rrf", {"d": engine.search_vector(v, k=50)}), pipe.prepare(q).understanding)
        for q, v in zip(queries[:40], vectors[:40], strict=True)
    ]
    X = np.vstack(rows)
    pipe.set_ranker(
        LambdaRanker(n_estimators=150).fit(
            X, rng.integers(0, 2, len(X)), [len(r) for r in rows], feature_names=pipe.features
        ),
        save=False,
    )
    tuning = fit_tuned(pipe, args.tuned) if args.tuned else None
    stages = ("dense", "policy", "retrieve", "fusion", "phrase", "ranker", "arrange", "added", "learned_total")
    times: dict[str, list[float]] = {k: [] for k in stages}
    if tuning is not None:
        # its fusion stage is Pipeline.candidates, which puts the phrases first too: no phrase stage of its own
        times.update({f"tuned_{k}": [] for k in stages[1:] if k != "phrase"})
    for q, v in zip(queries, vectors, strict=True):
        a = time.perf_counter()
        engine.search_vector(v, k=q.k)
        b = time.perf_counter()
        with checked_once():  # one search, as Engine.search runs it: its full-text statistics checked once,
            engine.refresh()  # by the read of the change log's position every search starts with (untimed)
            b2 = time.perf_counter()
            prepared = pipe.prepare(q, vector=v)
            plan = pipe.untuned_plan(prepared)  # the plan without the self-tuned fusion (pipe.plan's when none is on)
            c = time.perf_counter()
            runs = pipe.retrieve(prepared, plan, v)
            d = time.perf_counter()
            # each run's weight scaled by its NQC (a structured run that ranks its slots' members: planned)
            weights = pipe.fusion_weights(runs, plan.weights(), understanding=prepared.understanding)
            fused = pipe.fuse(runs, weights, q, v)  # score completion when the config has it (off by default)
            e0 = time.perf_counter()
            fused, _, _ = pipe.phrases_first(fused, q.text, prepared.understanding)  # phrases, titles first
            e = time.perf_counter()
            ranked, _, _ = pipe.rank(prepared, v, fused)
            f = time.perf_counter()
            shown_scores(pipe.arrange(prepared, plan, ranked, [], q.k), pipe.config.fusion, weights)
            g = time.perf_counter()
        for key, value in (
            ("dense", b - a),
            ("policy", c - b2),
            ("retrieve", d - c),
            ("fusion", e0 - d),
            ("phrase", e - e0),
            ("ranker", f - e),
            ("arrange", g - f),
            ("added", (c - b2) + (e - d) + (f - e) + (g - f)),  # fusion and phrase: e - d
            ("learned_total", g - b2),
        ):
            times[key].append(value)
        if tuning is not None:
            for key, value in time_tuned(pipe, q, v).items():
                times[f"tuned_{key}"].append(value)
    out = {
        "items": len(engine),
        "queries": len(queries),
        "build_s": round(build_s, 1),
        "pipeline_setup_s": round(setup_s, 1),
        **{k: pct(v) for k, v in times.items()},
    }
    out["added_over_dense_p50_ratio"] = round(out["added"]["p50_ms"] / out["dense"]["p50_ms"], 3)
    out["learned_total_over_dense_p50_ratio"] = round(out["learned_total"]["p50_ms"] / out["dense"]["p50_ms"], 3)
    out["target_added_p50_ms"] = 5.0
    if tuning is not None:
        out["tuning"] = tuning
        out["tuned_added_minus_added_p50_ms"] = round(out["tuned_added"]["p50_ms"] - out["added"]["p50_ms"], 3)
        out["tuned_total_over_dense_p50_ratio"] = round(
            out["tuned_learned_total"]["p50_ms"] / out["dense"]["p50_ms"], 3
        )
        out["target_tuned_added_p50_ms"] = 2.0
    json.dump(out, sys.stdout, indent=2)
    print()
    engine.close()


def fit_tuned(pipe: Pipeline, sample: int) -> dict[str, object]:
    """Fit the self-tuned fusion on pseudo-queries of ``sample`` items and switch it on (even when not accepted:
    the latency of the search that uses it is what is measured); what the fit reported."""
    t0 = time.perf_counter()
    model = tune(pipe, sample=sample, seed=0)
    if model is None:
        raise SystemExit(f"--tuned {sample}: too few pseudo-queries to fit the self-tuned fusion on")
    accepted = model.accepted
    model.report["accepted"] = True  # timed all the same (see the docstring)
    pipe.set_tuned(model, save=False)
    assert pipe.tuned_active()
    return {
        "sample": sample,
        "fit_s": round(time.perf_counter() - t0, 1),
        "accepted": accepted,
        "configurations": len(model.configs),
        "queries": model.report.get("queries"),
    }


@checked_once()  # one search: its full-text statistics checked once (xmodal.store.termstats)
def time_tuned(pipe: Pipeline, q: Query, v: np.ndarray) -> dict[str, float]:
    """One search that uses the self-tuned fusion, by stage (seconds)."""
    pipe.engine.refresh()  # (untimed) every search's first read, as above
    b = time.perf_counter()
    prepared = pipe.prepare(q, vector=v)
    plan = pipe.plan(prepared)  # the tuned plan: every available strategy at an equal share
    c = time.perf_counter()
    runs = pipe.retrieve(prepared, plan, v)
    d = time.perf_counter()
    found = pipe.candidates(prepared, plan, v, cached=runs)  # the model's choice, its weights, fused
    e = time.perf_counter()
    ranked, _, _ = pipe.rank(prepared, v, found.fused)
    f = time.perf_counter()
    shown_scores(pipe.arrange(prepared, plan, ranked, found.explored, q.k), pipe.config.fusion, found.weights)
    g = time.perf_counter()
    return {
        "policy": c - b,
        "retrieve": d - c,
        "fusion": e - d,
        "ranker": f - e,
        "arrange": g - f,
        "added": (c - b) + (e - d) + (f - e) + (g - f),
        "learned_total": g - b,
    }


if __name__ == "__main__":
    main()
