"""Issue 17 spike: does a classifier on the MiniLM sentence embedding (the ``offline`` encoder's text model, 384-d)
generalise better across injection/jailbreak sources than the shipped n-gram model, alone or combined with it?

Run:  nice -n 5 python benchmarks/bench_guards_embed.py [--wheels DIR] [--sources ...]

Same leave-one-source-out folds as ``benchmarks/bench_guards.py --skip-cost`` (its :func:`bench_guards.wheels`,
:func:`xmodal.guards.corpora.attack_sources`, :func:`xmodal.guards.train.benign_splits`, the 80/20 attack split of
:func:`xmodal.guards.train.fit_sources`, the same near-copy removal and benign test sets). Per fold, three readers,
each beside the same rules (``stopped`` = a rule or the classifier):

- ``ngram``: the shipped recipe (``train.fit_sources`` with ``train.SETTINGS``), read as the query guard reads
  (the text and its de-obfuscated readings): the row of the bench_guards table, recomputed.
- ``embed``: a logistic regression (class-balanced) on the L2-normalised MiniLM embedding of the text, trained on
  the same train parts (other sources' attacks 80%, benign 60%).
- ``combined``: a logistic regression on [embedding, the fold's n-gram logit (highest over the text and its
  readings), the 10 agent-address cues]. The n-gram model has seen its train part, so the combiner is fit on one
  half of the validation part (seeded), the threshold chosen on the other half.
- ``combined_no_embedding``: the same combiner without the embedding columns ([n-gram logit, cues], same halves):
  the control that tells the embedding's part from the refit on validation texts.

Thresholds: the same rule as the shipped model's, the lowest refusing at most 0.4% of each benign source's
validation texts (:func:`xmodal.guards.train._lowest`, per benign source). The embeddings are computed once
(int8 MiniLM, as the ``offline`` encoder) and cached in ``benchmarks/out/guard_embed_cache.npz``; the encoding
cost (CPU ms per text, ``time.process_time`` over all threads, and wall ms) is measured on a sample of texts.
Prints one JSON object (also written to ``benchmarks/out/guards_embed.json``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_guards import CACHE, wheels

from xmodal.encoders.minilm import DIM, MiniLMText
from xmodal.guards import corpora, train
from xmodal.guards.features import cue_matrix

OUT = Path(__file__).resolve().parent / "out"
EMBED_CACHE = OUT / "guard_embed_cache.npz"
C = 4.0


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


class Embeddings:
    """MiniLM vectors of texts, cached on disk by the text's SHA-1."""

    def __init__(self, path: Path = EMBED_CACHE) -> None:
        self.path = path
        self.rows: dict[str, np.ndarray] = {}
        if path.exists():
            data = np.load(path)
            self.rows = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
        self.model = MiniLMText("int8")
        self.encoded = 0

    def __call__(self, texts: list[str]) -> np.ndarray:
        missing = sorted({_key(t): t for t in texts if _key(t) not in self.rows}.items())
        if missing:
            vectors = self.model.encode([t for _, t in missing])
            self.rows.update((k, v) for (k, _), v in zip(missing, vectors, strict=True))
            self.encoded += len(missing)
            self.save()
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        return np.stack([self.rows[_key(t)] for t in texts])

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.rows)
        np.savez(self.path, keys=np.asarray(keys), vectors=np.stack([self.rows[k] for k in keys]))


def cost(texts: list[str], n: int = 400) -> dict[str, Any]:
    """Encoding cost per text of a seeded sample (fresh model, one warm-up batch first)."""
    sample = random.Random(3).sample(texts, min(n, len(texts)))
    model = MiniLMText("int8")
    model.encode(sample[:32])
    out: dict[str, Any] = {"texts": len(sample), "threads": model.threads or os.cpu_count()}
    cpu, wall = time.process_time(), time.perf_counter()
    model.encode(sample)
    out["cpu_ms_per_text"] = round(1000 * (time.process_time() - cpu) / len(sample), 3)
    out["wall_ms_per_text"] = round(1000 * (time.perf_counter() - wall) / len(sample), 3)
    out["mean_chars"] = round(statistics.mean(len(t) for t in sample), 1)
    return out


def ngram_logits(model: Any, texts: list[str]) -> np.ndarray:
    """The n-gram model's logit of the highest probability over each text and its readings (as the guard reads)."""
    train.stopped_many(None, texts)  # fills train._READ: the rules' verdict and the texts the classifier judges
    judged = [train._READ[t][1] for t in texts]
    flat = [r for group in judged for r in group]
    probs = model.probabilities(flat) if flat else np.zeros(0)
    out = np.zeros(len(texts))
    at = 0
    for i, group in enumerate(judged):
        out[i] = float(np.max(probs[at : at + len(group)]))
        at += len(group)
    p = np.clip(out, 1e-6, 1 - 1e-6)
    return np.asarray(np.log(p / (1 - p)))


def threshold(probs: np.ndarray, groups: list[str]) -> float:
    """The shipped rule: the lowest threshold refusing at most ``max_fpr`` of each benign group's texts."""
    names = np.asarray(groups)
    return max(train._lowest(probs[names == g], train.SETTINGS["max_fpr"]) for g in sorted(set(groups)))


def report(rules: dict[str, bool], scores: Any, cut: float, attacks: list[str], benign: dict[str, list[str]]) -> dict:
    """Stopped (rules / classifier / either) on ``attacks`` and false refusals per benign set, as train.evaluate."""
    hit = [(rules[t], bool(s >= cut)) for t, s in zip(attacks, scores(attacks), strict=True)]
    out: dict[str, Any] = {
        "threshold": round(cut, 4),
        "detected_rules": train._rate(h[0] for h in hit),
        "detected_classifier": train._rate(h[1] for h in hit),
        "detected": train._rate(h[0] or h[1] for h in hit),
        "false_refusals": {},
    }
    total = refused = 0
    for name, texts in benign.items():
        flags = [rules[t] or bool(s >= cut) for t, s in zip(texts, scores(texts), strict=True)]
        out["false_refusals"][name] = {"texts": len(texts), "refused": sum(flags)}
        total += len(texts)
        refused += sum(flags)
    out["false_refusals"]["all"] = {"texts": total, "refused": refused, "rate": round(refused / max(total, 1), 5)}
    return out


def fold(
    target: str, attacks: dict[str, list[str]], benign: dict[str, train.Split], embed: Embeddings
) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    others = {k: v for k, v in attacks.items() if k != target}
    train_att: list[str] = []
    val_att: list[str] = []
    for texts in others.values():
        parts = train.split(texts, (0.8, 0.2))
        train_att += parts.train
        val_att += parts.val
    train_ben = [t for s in benign.values() for t in s.train]
    val_ben = [t for s in benign.values() for t in s.val]
    val_groups = [name for name, s in benign.items() for _ in s.val]
    held_out = corpora.drop_overlap(attacks[target], [t for texts in others.values() for t in texts])
    test_ben = {name: s.test for name, s in benign.items()}
    everything = [*held_out, *[t for ts in test_ben.values() for t in ts]]
    rules = {t: r for t, (r, _) in zip(everything, train.stopped_many(None, everything), strict=True)}
    out: dict[str, Any] = {"held_out": len(held_out), "near_copies_dropped": len(attacks[target]) - len(held_out)}

    started = time.perf_counter()
    ngram = train.fit_sources(others, benign)
    out["ngram"] = report(
        rules, lambda ts: 1 / (1 + np.exp(-ngram_logits(ngram, ts))), ngram.threshold, held_out, test_ben
    )
    out["ngram"]["threshold"] = round(ngram.threshold, 4)

    x = embed([*train_att, *train_ben])
    y = np.array([1] * len(train_att) + [0] * len(train_ben))
    alone = LogisticRegression(C=C, class_weight="balanced", max_iter=3000).fit(x, y)
    cut = threshold(alone.predict_proba(embed(val_ben))[:, 1], val_groups)
    out["embed"] = report(rules, lambda ts: alone.predict_proba(embed(ts))[:, 1], cut, held_out, test_ben)

    def features(ts: list[str]) -> np.ndarray:
        return np.hstack([embed(ts), ngram_logits(ngram, ts)[:, None] / 10.0, cue_matrix(ts)])

    rng = random.Random(train.SEED)
    half_a = [rng.random() < 0.5 for _ in range(len(val_att) + len(val_ben))]
    val_texts = [*val_att, *val_ben]
    val_y = np.array([1] * len(val_att) + [0] * len(val_ben))
    fit_rows = [i for i, a in enumerate(half_a) if a]
    cut_rows = [i for i, a in enumerate(half_a) if not a and i >= len(val_att)]

    def without_embedding(ts: list[str]) -> np.ndarray:
        return features(ts)[:, DIM:]

    for name, make in (("combined", features), ("combined_no_embedding", without_embedding)):
        combiner = LogisticRegression(C=C, class_weight="balanced", max_iter=3000)
        combiner.fit(make([val_texts[i] for i in fit_rows]), val_y[fit_rows])
        cut_probs = combiner.predict_proba(make([val_texts[i] for i in cut_rows]))[:, 1]
        cut = threshold(cut_probs, [val_groups[i - len(val_att)] for i in cut_rows])
        out[name] = report(rules, lambda ts, c=combiner, m=make: c.predict_proba(m(ts))[:, 1], cut, held_out, test_ben)
        out[name]["fit_on"] = {"attacks": int(val_y[fit_rows].sum()), "benign": int((val_y[fit_rows] == 0).sum())}
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheels", type=Path, default=CACHE)
    parser.add_argument("--sources", nargs="+", choices=list(corpora.LOADERS))
    parser.add_argument("--cost-texts", type=int, default=400)
    args = parser.parse_args()
    out: dict[str, Any] = {"load_avg": os.getloadavg(), "cpus": len(os.sched_getaffinity(0)), "C": C}
    attacks = corpora.attack_sources(wheels(args.wheels), args.sources)
    benign = train.benign_splits()
    out["attacks"] = {k: len(v) for k, v in attacks.items()}
    all_texts = [*(t for v in attacks.values() for t in v), *(t for s in benign.values() for t in s.train + s.val)]
    all_texts += [t for s in benign.values() for t in s.test]
    out["embedding_cost"] = cost(all_texts, args.cost_texts)
    print(json.dumps({"embedding_cost": out["embedding_cost"]}), file=sys.stderr, flush=True)
    embed = Embeddings()
    started = time.perf_counter()
    embed(all_texts)
    out["embedded"] = {"texts": len(set(all_texts)), "new": embed.encoded, "seconds": time.perf_counter() - started}
    print(json.dumps({"embedded": out["embedded"]}), file=sys.stderr, flush=True)
    folds = {}
    for target in attacks:
        folds[target] = fold(target, attacks, benign, embed)
        print(json.dumps({target: folds[target]}), file=sys.stderr, flush=True)
    out["folds"] = folds
    out["summary"] = {
        name: {
            "detected": {t: f[name]["detected"] for t, f in folds.items()},
            "detected_mean": round(statistics.mean(f[name]["detected"] for f in folds.values()), 4),
            "false_refusals_max": max(f[name]["false_refusals"]["all"]["rate"] for f in folds.values()),
        }
        for name in ("ngram", "embed", "combined", "combined_no_embedding")
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "guards_embed.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
