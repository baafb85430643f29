"""The offline encoder's image→text bridges on clip-art text→image search, at category level.

    python benchmarks/bench_bridge.py [--seed 0] [--no-tune] [--by-vocabulary]

Items: every image of Debian ``openclipart-png`` that xmodal decodes, embedded by the offline encoder's
image path (EfficientNet-Lite0 class probabilities, then a bridge into the all-MiniLM-L6-v2 int8 text
space). Exact dense search (inner product), Recall@K = a relevant image in the top K. Bridges compared in
the same run: ``labels`` (the first bridge: class phrases), ``wordnet`` with the shipped defaults, and
the WordNet settings tuned here; next to each, the expected recall of a uniformly random ranking.

Categories are the folders that directly hold at least 5 images (not ``unsorted``); they are split at
random (``--seed``) into a **tune** half and a **test** half, and settings are chosen on the tune half
only. Query sets:

- ``folder``: the folder's name ("big cats", "meats and eggs"); every image under the folder
  (subfolders included) is relevant.
- ``name`` (the definition of docs/benchmarks/genret.md, round 3): an image's name words that are not
  folder words ("tabby", "red apple"); every image in its own folder is relevant. At most
  ``--names`` queries per half, drawn at random.
- ``generic`` (test only, never tuned on): a fixed list of everyday phrasings ("an animal",
  "something to eat", "a vehicle"...), each relevant to the images under the folders listed with it.

The image probabilities are cached in ``benchmarks/out/bridge_clipart_probs.npz`` (git-ignored), the
class text vectors in the encoder cache. Prints one JSON object and writes it to
``benchmarks/out/bridge.json``.
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "out"
CLIPART = Path("/usr/share/openclipart/png")
sys.path.insert(0, str(ROOT.parent / "src"))
MIN_CATEGORY = 5
KS = (1, 5, 10)

# Everyday phrasings and the folders whose images answer them (test only: never used to tune).
GENERIC = {
    "an animal": ["animals"],
    "a wild animal": ["animals/mammals/bears", "animals/mammals/big_cats"],
    "a pet": ["animals/mammals/dogs", "animals/mammals/housecats"],
    "a bird": ["animals/birds"],
    "a fish": ["animals/fish"],
    "an insect": ["animals/bugs"],
    "something to eat": ["food"],
    "something to drink": ["food/beverages"],
    "a fruit": ["food/fruit"],
    "a vegetable": ["food/vegetables"],
    "a sweet dessert": ["food/desserts"],
    "a vehicle": ["transportation/vehicles"],
    "a boat": ["transportation/boating"],
    "a plant": ["plants"],
    "a flower": ["plants/flowers"],
    "a tree": ["plants/trees"],
    "a piece of furniture": ["buildings/furniture"],
    "a house": ["buildings/homes"],
    "clothing": ["people/clothing"],
    "a hat": ["people/clothing/hats"],
    "a weapon": ["tools/weapons"],
    "a musical instrument": ["recreation/music"],
    "a toy": ["recreation/toys", "tools/toys"],
    "a computer": ["computer/hardware"],
    "a telephone": ["office/telephone"],
    "a clock": ["signs_and_symbols/clocks"],
    "a flag": ["signs_and_symbols/flags"],
    "sports equipment": ["recreation/sports"],
}


# -- data --------------------------------------------------------------------------------------------
def probabilities(refresh: bool = False) -> tuple[np.ndarray, list[str]]:
    """Class probabilities of every clip-art image xmodal decodes, and the images' paths under CLIPART."""
    from xmodal.encoders.efficientnet import EfficientNetLite0, _softmax
    from xmodal.errors import ImageError
    from xmodal.imaging import load_image

    path = OUT / "bridge_clipart_probs.npz"
    if path.exists() and not refresh:
        with np.load(path) as data:
            return data["probs"], data["paths"].tolist()
    files = sorted(CLIPART.rglob("*.png"))
    net = EfficientNetLite0()
    probs, kept = [], []
    for s in range(0, len(files), 64):
        images = []
        for p in files[s : s + 64]:
            try:
                images.append(load_image(str(p), None, item=str(p)))
                kept.append(str(p.relative_to(CLIPART)))
            except ImageError:
                continue
        probs.append(_softmax(net.run(images)[0]))
    out = np.concatenate(probs)
    OUT.mkdir(exist_ok=True)
    np.savez(path, probs=out, paths=np.array(kept))
    return out, kept


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[_\-\s]+", text) if w]


def _norm(word: str) -> str:
    return word.lower().removesuffix("s")


def name_query(rel: str) -> str:
    """Round 3's query: the first 4 name words that are not folder words (lower case, plural s dropped)."""
    parts = rel.split("/")
    folder_words = {_norm(w) for f in parts[:-1] for w in _words(f)}
    stem = re.sub(r"_\d+$", "", parts[-1].removesuffix(".png"))
    words = [w for w in _words(stem) if not w.isdigit() and _norm(w) not in folder_words]
    return " ".join(words[:4])


Query = tuple[str, frozenset[int]]


def dictionary_words() -> frozenset[str]:
    """Every WordNet lemma's words (lower case, plural s dropped as :func:`_norm` does), from Debian's
    ``wordnet-base``."""
    from xmodal.samples import read_synsets

    return frozenset(_norm(w) for s in read_synsets() for lemma in s.lemmas for w in _words(lemma) if len(w) > 1)


def by_vocabulary(queries: list[Query], vocabulary: frozenset[str]) -> tuple[list[Query], list[Query]]:
    """The queries whose every word (of two letters or more) is a dictionary word, and the rest (artists'
    names, codes like "70pt27step"): what a text model can know and what no model can."""
    known = [q for q in queries if all(_norm(w) in vocabulary for w in q[0].split() if len(w) > 1)]
    return known, [q for q in queries if q not in known]


def query_sets(paths: list[str], seed: int, names: int) -> dict[str, list[Query]]:
    """``folder_tune``, ``folder_test``, ``name_tune``, ``name_test`` and ``generic`` queries."""
    folder_of = ["/".join(p.split("/")[:-1]) for p in paths]
    direct: dict[str, list[int]] = {}
    for i, folder in enumerate(folder_of):
        direct.setdefault(folder, []).append(i)
    categories = sorted(f for f, members in direct.items() if len(members) >= MIN_CATEGORY and "unsorted" not in f)
    order = np.random.default_rng(seed).permutation(len(categories))
    half = {categories[i]: ("tune" if n < len(categories) // 2 else "test") for n, i in enumerate(order)}

    def under(prefix: str) -> frozenset[int]:
        return frozenset(i for i, f in enumerate(folder_of) if f == prefix or f.startswith(prefix + "/"))

    sets: dict[str, list[Query]] = {k: [] for k in ("folder_tune", "folder_test", "name_tune", "name_test")}
    for folder in categories:
        text = " ".join(_words(folder.split("/")[-1])).lower()
        sets[f"folder_{half[folder]}"].append((text, under(folder)))
    rng = np.random.default_rng(seed + 1)
    for split in ("tune", "test"):
        asked = [
            (name_query(paths[i]), frozenset(direct[folder_of[i]]))
            for i in range(len(paths))
            if half.get(folder_of[i]) == split and name_query(paths[i])
        ]
        pick = rng.choice(len(asked), size=min(names, len(asked)), replace=False)
        sets[f"name_{split}"] = [asked[i] for i in sorted(pick)]
    sets["generic"] = [(text, frozenset().union(*(under(f) for f in folders))) for text, folders in GENERIC.items()]
    return sets


# -- scoring -----------------------------------------------------------------------------------------
def recall(items: np.ndarray, queries: np.ndarray, relevant: list[frozenset[int]]) -> dict[str, float]:
    scores = queries @ items.T
    k = max(KS)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    top = np.take_along_axis(part, np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1), axis=1)
    out = {}
    for k in KS:
        hits = [any(int(x) in rel for x in row[:k]) for row, rel in zip(top, relevant, strict=True)]
        out[f"recall@{k}"] = round(float(np.mean(hits)), 4)
    return out


def chance(n: int, relevant: list[frozenset[int]]) -> dict[str, float]:
    """Expected recall@k of a uniformly random ranking of ``n`` items."""
    sizes = np.array([len(r) for r in relevant], float)
    out = {}
    for k in KS:
        miss = np.prod([np.maximum(n - sizes - i, 0) / (n - i) for i in range(k)], axis=0)
        out[f"recall@{k}"] = round(float(np.mean(1 - miss)), 4)
    return out


class Bench:
    """Query vectors once; image vectors per bridge setting, from the cached probabilities."""

    def __init__(self, probs: np.ndarray, sets: dict[str, list[Query]]) -> None:
        from xmodal.encoders.minilm import MiniLMText

        self.text = MiniLMText("int8")
        self.probs = probs
        self.sets = sets
        texts = sorted({t for queries in sets.values() for t, _ in queries})
        vectors = self.text.encode(texts)
        self.qvec = {t: vectors[i] for i, t in enumerate(texts)}

    def bridge(self, recipe: Any, top_k: int, temperature: float) -> Any:
        from xmodal.encoders.bridge import ClassBridge

        return ClassBridge(self.text.encode, "minilm-int8", recipe, top_k=top_k, temperature=temperature)

    def score(self, bridge: Any, names: list[str]) -> dict[str, dict[str, float]]:
        items = bridge.vectors(self.probs)
        out = {}
        for name in names:
            queries = self.sets[name]
            qv = np.stack([self.qvec[t] for t, _ in queries])
            out[name] = recall(items, qv, [r for _, r in queries])
        return out

    def chance(self, names: list[str]) -> dict[str, dict[str, float]]:
        return {name: chance(len(self.probs), [r for _, r in self.sets[name]]) for name in names}


def objective(scores: dict[str, dict[str, float]], rand: dict[str, dict[str, float]], names: list[str]) -> float:
    """The mean over query sets of R@10 / random R@10."""
    return float(np.mean([scores[n]["recall@10"] / rand[n]["recall@10"] for n in names]))


def tune(bench: Bench, rand: dict[str, dict[str, float]], log: Callable[[str], None]) -> dict[str, Any]:
    """Coordinate search on the tune half: the class-table weights at top-10, T=1, then top-k and T."""
    from xmodal.encoders.bridge import WordNetRecipe

    names = ["folder_tune", "name_tune"]
    best: tuple[float, dict[str, Any]] = (-1.0, {})
    for gloss, hyper, decay, depth in itertools.product((0.0, 0.5, 1.0), (0.5, 1.0, 2.0), (0.5, 0.7, 0.9), (3, 5)):
        recipe = WordNetRecipe(gloss_weight=gloss, hypernym_weight=hyper, decay=decay, min_depth=depth)
        value = objective(bench.score(bench.bridge(recipe, 10, 1.0), names), rand, names)
        if value > best[0]:
            best = (value, {"gloss_weight": gloss, "hypernym_weight": hyper, "decay": decay, "min_depth": depth})
            log(f"tune: {best}")
    table = best[1]
    return {**mixing(bench, rand, WordNetRecipe(**table), log), **table}


def mixing(bench: Bench, rand: dict[str, dict[str, float]], recipe: Any, log: Callable[[str], None]) -> dict[str, Any]:
    """The best top-k and temperature of a recipe on the tune half."""
    names = ["folder_tune", "name_tune"]
    chosen: tuple[float, dict[str, Any]] = (-1.0, {})
    for top_k, temperature in itertools.product((3, 10, 30, 100), (0.5, 1.0, 2.0, 4.0, 8.0)):
        value = objective(bench.score(bench.bridge(recipe, top_k, temperature), names), rand, names)
        if value > chosen[0]:
            chosen = (value, {"top_k": top_k, "temperature": temperature})
            log(f"tune {recipe.tag()[:7]}: {chosen}")
    return {"objective": round(chosen[0], 4), **chosen[1]}


def shipped_matches(bench: Bench, paths: list[str], name: str) -> float:
    """Least cosine between the bench's vectors of bridge ``name`` (its defaults) and the offline encoder's own
    with ``bridge=name``, on 16 images: the bench measures what the encoder ships."""
    from xmodal.encoders import Content, create_encoder
    from xmodal.encoders.bridge import TEMPERATURES, recipe
    from xmodal.imaging import load_image

    rows = list(range(0, len(paths), max(1, len(paths) // 16)))[:16]
    images = [load_image(str(CLIPART / paths[i]), None, item=paths[i]) for i in rows]
    shipped = create_encoder("offline", bridge=name).encode_documents([Content(image=im) for im in images])
    mine = bench.bridge(recipe(name), 10, TEMPERATURES[name]).vectors(bench.probs[rows])
    return round(float(np.min(np.sum(shipped * mine, axis=1))), 5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--names", type=int, default=1000, help="image-name queries per half (default 1000)")
    parser.add_argument("--no-tune", action="store_true", help="skip the tuning grid (shipped settings only)")
    parser.add_argument(
        "--check-encoder",
        choices=["wordnet", "labels"],
        default="wordnet",
        help="compare this bridge's bench vectors with the offline encoder's own on 16 images (default wordnet)",
    )
    parser.add_argument("--refresh", action="store_true", help="recompute the cached image probabilities")
    parser.add_argument(
        "--by-vocabulary",
        action="store_true",
        help="also score the name queries split into those made of dictionary words and the rest",
    )
    args = parser.parse_args()
    from xmodal.encoders.bridge import TEMPERATURES, LabelRecipe, WordNetRecipe
    from xmodal.encoders.offline import OfflineEncoder

    started = time.time()

    def log(text: str) -> None:
        print(f"[{time.time() - started:6.1f}s] {text}", file=sys.stderr, flush=True)

    probs, paths = probabilities(args.refresh)
    log(f"{len(paths)} images")
    sets = query_sets(paths, args.seed, args.names)
    if args.by_vocabulary:
        vocabulary = dictionary_words()
        for split in ("tune", "test"):
            sets[f"name_{split}_dictionary"], sets[f"name_{split}_other"] = by_vocabulary(
                sets[f"name_{split}"], vocabulary
            )
    bench = Bench(probs, sets)
    names = list(sets)
    rand = bench.chance(names)
    defaults = {k: p.default for k, p in inspect.signature(OfflineEncoder.__init__).parameters.items()}
    top_k = int(defaults["top_k"])
    shipped = bench.bridge(WordNetRecipe(), top_k, TEMPERATURES["wordnet"])
    rows: dict[str, Any] = {
        "random ranking (expected)": rand,
        f"labels bridge (before: top_k {top_k}, T 1)": bench.score(bench.bridge(LabelRecipe(), top_k, 1.0), names),
        f"wordnet bridge (shipped: top_k {top_k}, T {shipped.temperature:g})": bench.score(shipped, names),
    }
    result: dict[str, Any] = {"images": len(paths), "queries": {n: len(q) for n, q in sets.items()}}
    if not args.no_tune:
        labels = mixing(bench, rand, LabelRecipe(), log)
        result["labels_tuned"] = labels
        tuned_labels = bench.bridge(LabelRecipe(), labels["top_k"], labels["temperature"])
        rows["labels bridge (top_k and T tuned here)"] = bench.score(tuned_labels, names)
        tuned = tune(bench, rand, log)
        result["tuned"] = tuned
        recipe = WordNetRecipe(**{k: tuned[k] for k in ("gloss_weight", "hypernym_weight", "decay", "min_depth")})
        rows["wordnet bridge (tuned here)"] = bench.score(
            bench.bridge(recipe, tuned["top_k"], tuned["temperature"]), names
        )
    if args.check_encoder:
        result["shipped_encoder_min_cosine"] = shipped_matches(bench, paths, args.check_encoder)
    result["recall"] = rows
    result["r10_over_random"] = {
        row: {n: round(v[n]["recall@10"] / rand[n]["recall@10"], 3) for n in names} for row, v in rows.items()
    }
    result["seconds"] = round(time.time() - started, 1)
    OUT.mkdir(exist_ok=True)
    (OUT / "bridge.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
