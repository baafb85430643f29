"""Generative retrieval (GENIUS) against exact dense search and FAISS HNSW, on real and synthetic data.

Parts (each prints one JSON object and writes it to ``benchmarks/out/genret_<part>[_<dataset>].json``):

    python benchmarks/bench_genret.py recall --dataset wordnet   # text→text
    python benchmarks/bench_genret.py recall --dataset clipart   # text→image, the query's own image is the hit
    python benchmarks/bench_genret.py recall --dataset clipart --relevance category  # any image of its folder
    python benchmarks/bench_genret.py scale                      # latency vs catalog size, memory, throughput
    python benchmarks/bench_genret.py train --items 100000       # training time at 100k items

Data:
- ``wordnet`` (Debian ``wordnet-base``): items are noun synset glosses; a synset's lemmas are its
  queries; the last lemma of each test synset is held out of training (a query never seen).
- ``clipart`` (Debian ``openclipart-png``): items are clip-art images; the query is the text of the
  file's folder and name; half the images have their name text as a training pair, the test queries
  are the names of the other half (the decoder has only seen those images' own embeddings).
  ``--relevance category``: a test/validation query is the image's name words without its folder words,
  and every image in the same leaf folder (e.g. ``science/medicine``) is relevant (category-level
  Recall@K: any relevant image in the top K). Queries come only from folders with at least 5 images
  (not ``unsorted``) and with a non-empty query left; training pairs are unchanged.
- synthetic clustered embeddings (Gaussian clusters on the unit sphere) for the size curve and the
  100k training time.

Embeddings come from the offline encoder (all-MiniLM-L6-v2 text, EfficientNet-Lite0 images bridged
into the text space) and are cached in ``benchmarks/out/`` (git-ignored). Query encoding time is not
included in latencies. Methods in the same run: exact dense (NumPy), FAISS HNSW, GENIUS, GENIUS-R and
the simpler generative baseline (residual k-means IDs, no contrastive fine-tuning, no augmentation),
plus the two single ablations.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "out"
DOCS = ROOT.parent / "docs" / "benchmarks"
WORDNET = Path("/usr/share/wordnet")
CLIPART = Path("/usr/share/openclipart/png")
sys.path.insert(0, str(ROOT.parent / "src"))

Rankings = list[np.ndarray]
# Relevant items per query: one target each (an int array) or a set of items each.
Relevant = np.ndarray | Sequence[Collection[int]]
MIN_CATEGORY = 5  # --relevance category: smallest leaf folder whose images are queries


# -- data --------------------------------------------------------------------------------------------
def wordnet_synsets(n: int, seed: int) -> list[tuple[list[str], str]]:
    """``n`` random noun synsets with at least two lemmas: (lemmas, gloss)."""
    found = []
    for line in (WORDNET / "data.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith("  ") or " | " not in line:
            continue
        head, gloss = line.split(" | ", 1)
        fields = head.split()
        count = int(fields[3], 16)
        lemmas = [re.sub(r"\(.*\)$", "", fields[4 + 2 * i]).replace("_", " ") for i in range(count)]
        lemmas = list(dict.fromkeys(lemma.lower() for lemma in lemmas))
        if len(lemmas) >= 2:
            found.append((lemmas, gloss.strip()))
    pick = np.random.default_rng(seed).choice(len(found), size=min(n, len(found)), replace=False)
    return [found[i] for i in sorted(pick)]


def clipart_files(n: int, seed: int) -> list[tuple[Path, str]]:
    """``n`` random clip-art files with their query text (folders and name, author tail dropped)."""
    files = sorted(CLIPART.rglob("*.png"))
    pick = np.random.default_rng(seed).choice(len(files), size=min(n, len(files)), replace=False)
    out = []
    for i in sorted(pick):
        path = files[i]
        folders = [p for p in path.relative_to(CLIPART).parts[:-1] if p != "unsorted"]
        stem = re.sub(r"_\d+$", "", path.stem)
        words = [w for w in re.split(r"[_\-\s]+", stem) if w and not w.isdigit()]
        text = " ".join([*(f.replace("_", " ") for f in folders), *words[:4]])
        out.append((path, text))
    return out


def _norm(word: str) -> str:
    return word.lower().removesuffix("s")


def clipart_category_query(path: Path) -> tuple[str, str]:
    """The image's leaf folder (relative path) and its query: the first 4 name words that are not folder
    words (compared in lower case without a plural s), so the query does not name the category."""
    folders = path.relative_to(CLIPART).parts[:-1]
    folder_words = {_norm(w) for f in folders for w in re.split(r"[_\-\s]+", f) if w}
    stem = re.sub(r"_\d+$", "", path.stem)
    words = [w for w in re.split(r"[_\-\s]+", stem) if w and not w.isdigit() and _norm(w) not in folder_words]
    return "/".join(folders), " ".join(words[:4])


def encode_texts(texts: list[str]) -> np.ndarray:
    from xmodal.encoders import Content, create_encoder

    enc = create_encoder("offline")
    out = [enc.encode_documents([Content(text=t) for t in texts[s : s + 256]]) for s in range(0, len(texts), 256)]
    return np.concatenate(out).astype(np.float32)


def encode_images(paths: list[Path]) -> tuple[np.ndarray, list[int]]:
    """Image vectors and the positions of the files that decoded (xmodal refuses e.g. decompression bombs)."""
    from xmodal.encoders import Content, create_encoder
    from xmodal.errors import ImageError
    from xmodal.imaging import load_image

    enc = create_encoder("offline")
    out, kept = [], []
    for s in range(0, len(paths), 64):
        images = []
        for i, p in enumerate(paths[s : s + 64], s):
            try:
                images.append(load_image(str(p), None, item=str(p)))
                kept.append(i)
            except ImageError:
                continue
        out.append(enc.encode_documents([Content(image=im) for im in images]))
    return np.concatenate(out).astype(np.float32), kept


def cached(name: str, make: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    path = OUT / f"genret_{name}.npz"
    if path.exists():
        with np.load(path) as data:
            return dict(data)
    OUT.mkdir(exist_ok=True)
    arrays = make()
    np.savez(path, **arrays)
    return arrays


def wordnet_dataset(n: int, test: int, seed: int, val: int = 1000) -> dict[str, np.ndarray]:
    """Items (gloss vectors), train pairs (all but the last lemma) and held-out queries (the last lemma):
    ``test`` synsets for the test split, ``val`` other synsets for the validation split."""

    def make() -> dict[str, np.ndarray]:
        synsets = wordnet_synsets(n, seed)
        items = encode_texts([gloss for _, gloss in synsets])
        lemmas = [(i, lemma) for i, (names, _) in enumerate(synsets) for lemma in names]
        vecs = encode_texts([lemma for _, lemma in lemmas])
        owner = np.array([i for i, _ in lemmas])
        last = np.r_[owner[1:] != owner[:-1], True]  # the last lemma of each synset
        return {
            "items": items,
            "train_q": vecs[~last],
            "train_t": owner[~last],
            "test_q": vecs[last],
            "test_t": owner[last],
        }

    data = cached(f"wordnet_{n}_{seed}", make)
    held = len(data["test_q"])
    pick = np.random.default_rng(seed + 1).choice(held, size=min(test, held), replace=False)
    rest = np.setdiff1d(np.arange(held), pick)  # validation: held-out lemmas of other synsets than the test's
    vpick = np.random.default_rng(seed + 2).choice(rest, size=min(val, len(rest)), replace=False)
    return {
        **data,
        "test_q": data["test_q"][pick],
        "test_t": data["test_t"][pick],
        "val_q": data["test_q"][vpick],
        "val_t": data["test_t"][vpick],
    }


def clipart_dataset(n: int, test: int, seed: int, val: int = 1000, relevance: str = "item") -> dict[str, np.ndarray]:
    """Items (image vectors); the name texts of half the items train; of the other half, ``test`` items
    are the test split and the next ``val`` the validation split. ``relevance="category"``: the queries
    are name words without folder words, only from eligible images, and ``group`` holds each item's folder."""

    def make() -> dict[str, np.ndarray]:
        files = clipart_files(n, seed)
        vectors, kept = encode_images([p for p, _ in files])
        return {"items": vectors, "texts": encode_texts([files[i][1] for i in kept]), "kept": np.array(kept)}

    data = cached(f"clipart_{n}_{seed}", make)
    order = np.random.default_rng(seed + 1).permutation(len(data["items"]))
    train, rest = order[: len(order) // 2], order[len(order) // 2 :]
    if relevance == "item":
        held, vheld = rest[:test], rest[test : test + val]
        return {
            "items": data["items"],
            "train_q": data["texts"][train],
            "train_t": train,
            "test_q": data["texts"][held],
            "test_t": held,
            "val_q": data["texts"][vheld],
            "val_t": vheld,
        }
    if "kept" not in data:
        raise SystemExit(f"{OUT}/genret_clipart_{n}_{seed}.npz predates --relevance category: delete it")
    files = clipart_files(n, seed)
    folders, names = zip(*(clipart_category_query(files[i][0]) for i in data["kept"]), strict=True)
    names_vec = cached(f"clipart_{n}_{seed}_names", lambda: {"names": encode_texts([t or "-" for t in names])})["names"]
    labels, group = np.unique(np.array(folders), return_inverse=True)
    size = np.bincount(group)
    ok = np.array(
        [
            size[g] >= MIN_CATEGORY and "unsorted" not in labels[g].split("/") and bool(t)
            for g, t in zip(group, names, strict=True)
        ]
    )
    asked = rest[ok[rest]]  # test/validation queries: the eligible images of the held-out half
    held, vheld = asked[:test], asked[test : test + val]
    return {
        "items": data["items"],
        "train_q": data["texts"][train],
        "train_t": train,
        "test_q": names_vec[held],
        "test_t": held,
        "val_q": names_vec[vheld],
        "val_t": vheld,
        "group": group,
    }


def relevant(data: dict[str, np.ndarray], targets: np.ndarray) -> Relevant:
    """The relevant items of each query: its target, or every item of the target's group (category)."""
    if "group" not in data:
        return targets
    groups = data["group"]
    members = {g: frozenset(np.flatnonzero(groups == g).tolist()) for g in np.unique(groups[targets]).tolist()}
    return [members[g] for g in groups[targets].tolist()]


def load(args: argparse.Namespace) -> dict[str, np.ndarray]:
    if args.dataset == "wordnet":
        return wordnet_dataset(args.items, args.test, args.seed, args.val)
    return clipart_dataset(args.items, args.test, args.seed, args.val, args.relevance)


def clustered(n: int, dim: int, seed: int, clusters: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(999).standard_normal((clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, 200_000):
        m = min(200_000, n - s)
        x = (
            centers[rng.integers(0, clusters, m)]
            + 0.6 * rng.standard_normal((m, dim)).astype(np.float32) / np.sqrt(dim) * 4
        )
        out[s : s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


# -- methods ------------------------------------------------------------------------------------------
def recall(rankings: Rankings, targets: Relevant) -> dict[str, float]:
    """Recall@k: the share of queries with a relevant item (its target, or any of its set) in the top k."""
    sets = [t if isinstance(t, Collection) else {int(t)} for t in targets]
    out = {}
    for k in (1, 5, 10):
        hits = [any(int(x) in s for x in r[:k].tolist()) for r, s in zip(rankings, sets, strict=True)]
        out[f"recall@{k}"] = round(float(np.mean(hits)), 4)
    return out


def chance(n: int, targets: Relevant) -> dict[str, float]:
    """Expected recall@k of a uniformly random ranking of ``n`` items."""
    sizes = np.array([len(t) if isinstance(t, Collection) else 1 for t in targets], float)
    out = {}
    for k in (1, 5, 10):
        miss = np.prod([np.maximum(n - sizes - i, 0) / (n - i) for i in range(min(k, n))], axis=0)
        out[f"recall@{k}"] = round(float(np.mean(1 - miss)), 4)
    return out


def exact(items: np.ndarray, queries: np.ndarray, k: int) -> Rankings:
    scores = queries @ items.T
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    return [row[np.argsort(-scores[i, row])] for i, row in enumerate(top)]


def hnsw(items: np.ndarray, m: int = 32, ef: int = 64) -> Any:
    import faiss

    index = faiss.IndexHNSWFlat(items.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    index.add(items)
    index.hnsw.efSearch = ef
    return index


def train_variant(
    data: dict[str, np.ndarray],
    *,
    contrastive: bool,
    alpha: float,
    epochs: int,
    seed: int,
    max_minutes: float | None,
    augment_self: bool = False,
    **extra: Any,
) -> Any:
    """A generative index on the items, trained on self pairs (noisy item vectors) plus the train pairs.

    Only the train pairs (real queries) are augmented unless ``augment_self``; ``extra`` goes to TrainConfig.
    """
    from xmodal.genret.config import TrainConfig
    from xmodal.genret.train import TrainingSet, fit

    items = data["items"]
    n = len(items)
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(items.shape).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    selfq = items + 0.3 * noise
    selfq /= np.linalg.norm(selfq, axis=1, keepdims=True)
    queries = np.concatenate([selfq, data["train_q"]]).astype(np.float32)
    targets = np.concatenate([np.arange(n), data["train_t"]]).astype(np.int64)
    real = np.concatenate([np.full(n, augment_self), np.ones(len(data["train_q"]), bool)])
    ts = TrainingSet(
        np.arange(n, dtype=np.int64),
        items,
        np.zeros(n, np.int64),
        queries,
        targets,
        {"self": n, "train_queries": len(data["train_q"])},
        real,
    )
    config = TrainConfig(
        epochs=epochs,
        contrastive=contrastive,
        alpha=alpha,
        seed=seed,
        device="cpu",
        max_minutes=max_minutes,
        min_steps=0,
        **extra,
    )
    return fit(ts, config, progress=False)


def generative_rankings(
    model: Any, items: np.ndarray, queries: np.ndarray, k: int, beam: int, rerank: bool, pool: int | None = None
) -> tuple[Rankings, float]:
    """GENIUS's rankings (full IDs at ``beam``) or GENIUS-R's, decoded as the ``generative-rerank`` mode decodes
    (:data:`~xmodal.genret.mode.RERANK_BEAM` beams of :func:`~xmodal.genret.mode.rerank_depth` tokens; ``beam``
    unused), and the batched ms per query."""
    from xmodal.genret.mode import RERANK_BEAM, rerank_depth

    start = time.perf_counter()
    sim = (lambda rows, q: items[rows] @ q) if rerank else None
    decoding = {"beam": RERANK_BEAM, "depth": rerank_depth(model)} if rerank else {"beam": beam}
    out = []
    for s in range(0, len(queries), 64):
        out += [rows for rows, _ in model.search(queries[s : s + 64], k, similarity=sim, pool=pool, **decoding)]
    return out, (time.perf_counter() - start) / len(queries) * 1000


# -- parts --------------------------------------------------------------------------------------------
# The variants of the ablation: (contrastive fine-tuning, query augmentation α).
def ablation_variants(alpha: float) -> dict[str, tuple[bool, float]]:
    return {
        "GENIUS": (True, alpha),
        "baseline (RQ k-means IDs, no contrastive, no aug)": (False, 0.0),
        "ablation: no augmentation": (True, 0.0),
        "ablation: no contrastive": (False, alpha),
    }


def evaluate_model(
    model: Any, items: np.ndarray, q: np.ndarray, t: Relevant, beam: int, pool: int | None
) -> dict[str, dict[str, float]]:
    """GENIUS and GENIUS-R recall (and batched ms per query) of one model on one split."""
    out = {}
    for rerank in (False, True):
        ranks, ms = generative_rankings(model, items, q, 10, beam, rerank, pool)
        out["GENIUS-R" if rerank else "GENIUS"] = {**recall(ranks, t), "ms_per_query_batched": round(ms, 2)}
    return out


def part_recall(args: argparse.Namespace) -> dict[str, Any]:
    """Recall on the test split: dense, HNSW, GENIUS/GENIUS-R, the baseline and the two single ablations."""
    t0 = time.perf_counter()
    data = load(args)
    items, q = data["items"], data["test_q"]
    t, vt = relevant(data, data["test_t"]), relevant(data, data["val_t"])
    prep_s = time.perf_counter() - t0
    result: dict[str, Any] = {
        "dataset": args.dataset,
        "relevance": args.relevance,
        "items": len(items),
        "train_pairs": len(data["train_q"]),
        "test_queries": len(q),
        "val_queries": len(data["val_q"]),
        "prepare_s": round(prep_s, 1),
        "beam": args.beam,
        "pool": args.pool,
        "alpha": args.alpha,
        "methods": {},
    }
    if "group" in data:
        result["categories"] = int(data["group"].max()) + 1
        result["relevant_per_test_query"] = round(float(np.mean([len(s) for s in t])), 1)
    dense = recall(exact(items, q, 10), t)
    result["methods"]["random ranking (expected)"] = chance(len(items), t)
    result["methods"]["exact dense"] = dense
    result["validation"] = {
        "random ranking (expected)": chance(len(items), vt),
        "exact dense": recall(exact(items, data["val_q"], 10), vt),
    }
    index = hnsw(items)
    _, labels = index.search(q, 10)
    result["methods"]["FAISS HNSW (M=32, ef=64)"] = recall(list(labels), t)
    for name, (contrastive, alpha) in ablation_variants(args.alpha).items():
        if (args.quick and name.startswith("ablation")) or (args.only_genius and name != "GENIUS"):
            continue
        t1 = time.perf_counter()
        model = train_variant(
            data, contrastive=contrastive, alpha=alpha, epochs=args.epochs, seed=args.seed, max_minutes=args.max_minutes
        )
        train_s = time.perf_counter() - t1
        for beam in [args.beam, *args.more_beams]:
            found = evaluate_model(model, items, q, t, beam, args.pool)
            suffix = "" if beam == args.beam else f" beam {beam}"
            result["methods"][f"{name}{suffix}"] = found["GENIUS"]
            result["methods"][f"{name}{suffix} + re-rank"] = found["GENIUS-R"]
            val = evaluate_model(model, items, data["val_q"], vt, beam, args.pool)
            result["validation"][f"{name}{suffix}"] = val["GENIUS"]
            result["validation"][f"{name}{suffix} + re-rank"] = val["GENIUS-R"]
        tr = model.meta["training"]
        result["methods"][name].update(
            {
                "train_s": round(train_s, 1),
                "epochs": tr["epochs"],
                "buckets": tr["buckets"],
                "max_bucket": tr["max_bucket"],
                "perplexity": tr["perplexity"],
                "decoder_loss": round(tr["decoder_loss"], 3),
            }
        )
    base = dense["recall@10"] or 1.0
    result["ratio_recall@10_vs_dense"] = {
        name: round(m["recall@10"] / base, 3) for name, m in result["methods"].items()
    }
    vbase = result["validation"]["exact dense"]["recall@10"] or 1.0
    result["validation_ratio_recall@10_vs_dense"] = {
        name: round(m["recall@10"] / vbase, 3) for name, m in result["validation"].items()
    }
    return result


# Settings tried on the validation split (never on the test queries): name -> train_variant keywords.
TUNE_GRID: dict[str, dict[str, Any]] = {
    "no augmentation": {"alpha": 0.0},
    "first design: α=2, half of each batch replaced, self pairs too": {
        "alpha": 2.0,
        "augment_share": 0.5,
        "augment_replace": True,
        "augment_self": True,
    },
    "α=2, replace half, real pairs only": {"alpha": 2.0, "augment_share": 0.5, "augment_replace": True},
    "α=2, add a mixed copy of every real pair, self pairs too": {"alpha": 2.0, "augment_self": True},
    "α=2, add a mixed copy of every real pair": {"alpha": 2.0},
    "α=0.5, add a mixed copy of every real pair": {"alpha": 0.5},
    "α=8, add a mixed copy of every real pair": {"alpha": 8.0},
}


def part_tune(args: argparse.Namespace) -> dict[str, Any]:
    """Query augmentation settings compared on the validation split only (contrastive fine-tuning on)."""
    data = load(args)
    items, q, t = data["items"], data["val_q"], relevant(data, data["val_t"])
    dense = recall(exact(items, q, 10), t)
    result: dict[str, Any] = {
        "dataset": args.dataset,
        "split": "validation",
        "items": len(items),
        "val_queries": len(q),
        "epochs": args.epochs,
        "beam": args.beam,
        "methods": {"exact dense": dense},
    }
    names = [n for n in TUNE_GRID if not args.grid or any(g in n for g in args.grid)]
    for name in names:
        kw = dict(TUNE_GRID[name])
        t1 = time.perf_counter()
        model = train_variant(
            data,
            contrastive=not args.no_contrastive,
            epochs=args.epochs,
            seed=args.seed,
            max_minutes=args.max_minutes,
            **kw,
        )
        train_s = round(time.perf_counter() - t1, 1)
        for beam in [args.beam, *args.more_beams]:
            found = evaluate_model(model, items, q, t, beam, args.pool)
            suffix = "" if beam == args.beam else f" beam {beam}"
            result["methods"][f"{name}{suffix}"] = {**found["GENIUS"], "train_s": train_s}
            result["methods"][f"{name}{suffix} + re-rank"] = found["GENIUS-R"]
        print(json.dumps({name: result["methods"][name]}), file=sys.stderr, flush=True)
    base = dense["recall@10"] or 1.0
    result["ratio_recall@10_vs_dense"] = {
        name: round(m["recall@10"] / base, 3) for name, m in result["methods"].items()
    }
    return result


def part_scale(args: argparse.Namespace) -> dict[str, Any]:
    """Latency vs catalog size: one decoder (trained on the first 20k items), new items enter by quantizer.
    GENIUS decodes full IDs at ``--beam``; GENIUS-R as the ``generative-rerank`` mode does (prefixes of
    ``rerank_depth`` tokens at ``RERANK_BEAM`` beams, :mod:`xmodal.genret.mode`)."""
    import faiss

    from xmodal.genret.config import TrainConfig
    from xmodal.genret.mode import RERANK_BEAM, rerank_depth
    from xmodal.genret.train import TrainingSet, fit

    dim, sizes = args.dim, sorted(args.sizes)
    full = clustered(max(sizes), dim, args.seed)
    queries = clustered(args.queries, dim, args.seed + 7)
    n_train = min(20_000, sizes[0])
    ts = TrainingSet(
        np.arange(n_train, dtype=np.int64),
        full[:n_train],
        np.zeros(n_train, np.int64),
        full[:n_train],
        np.arange(n_train, dtype=np.int64),
    )
    t0 = time.perf_counter()
    levels, k = (3, 256)
    config = TrainConfig(levels=levels, codebook_size=k, epochs=args.epochs, device="cpu", min_steps=0)
    model = fit(ts, config, progress=False)
    out: dict[str, Any] = {
        "dim": dim,
        "train_items": n_train,
        "train_s": round(time.perf_counter() - t0, 1),
        "levels": levels,
        "codebook_size": k,
        "beam": args.beam,
        "queries": args.queries,
        "sizes": {},
    }
    have = n_train
    for n in sizes:
        for s in range(have, n, 100_000):  # the living catalog: IDs from the trained quantizer, no retraining
            e = min(n, s + 100_000)
            model.put(np.arange(s, e, dtype=np.int64), full[s:e], np.zeros(e - s, np.int64))
        have = max(have, n)
        items = full[:n]
        row: dict[str, Any] = {}
        row["generative_ms"] = _latency(lambda v: model.search(v, 10, beam=args.beam), queries)
        row["generative_rerank_ms"] = _latency(
            lambda v, x=items: model.search(  # as the generative-rerank mode decodes, RERANK_POOL candidates
                v, 10, beam=RERANK_BEAM, depth=rerank_depth(model), similarity=lambda r, qq: x[r] @ qq
            ),
            queries,
        )
        row["exact_ms"] = _latency(lambda v, x=items: exact(x, v, 10), queries)
        if n <= args.hnsw_max:
            t1 = time.perf_counter()
            index = hnsw(items, m=16)
            row["hnsw_build_s"] = round(time.perf_counter() - t1, 1)
            row["hnsw_ms"] = _latency(lambda v, ix=index: ix.search(v, 10), queries)
            row["hnsw_bytes_per_item"] = round(len(faiss.serialize_index(index)) / n, 1)
        trie = model.trie.stats()
        row["trie_bytes_per_item"] = round(trie.nbytes / n, 1)
        row["buckets"], row["max_bucket"] = trie.buckets, trie.max_bucket
        row["vector_bytes_per_item"] = dim * 4
        batch = queries[:64]
        t1 = time.perf_counter()
        model.search(batch, 10, beam=args.beam)
        row["generative_batched_qps"] = round(len(batch) / (time.perf_counter() - t1), 1)
        row["generative_single_qps"] = round(1000 / row["generative_ms"]["p50"], 1)
        out["sizes"][n] = row
        print(json.dumps({n: row}), file=sys.stderr)
    first, last = out["sizes"][sizes[0]], out["sizes"][sizes[-1]]
    out["p50_ratio_largest_vs_smallest"] = {
        "generative": round(last["generative_ms"]["p50"] / first["generative_ms"]["p50"], 3),
        "generative_rerank": round(last["generative_rerank_ms"]["p50"] / first["generative_rerank_ms"]["p50"], 3),
        "exact": round(last["exact_ms"]["p50"] / first["exact_ms"]["p50"], 3),
    }
    _plot(out, sizes)
    return out


def _latency(search: Callable[[np.ndarray], object], queries: np.ndarray) -> dict[str, float]:
    search(queries[:1])  # warm up
    times = []
    for v in queries:
        t0 = time.perf_counter()
        search(v[None, :])
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50": round(float(np.percentile(times, 50)), 3), "p95": round(float(np.percentile(times, 95)), 3)}


def _plot(out: dict[str, Any], sizes: list[int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in [
        ("generative_ms", "GENIUS"),
        ("generative_rerank_ms", "GENIUS-R"),
        ("exact_ms", "exact dense"),
        ("hnsw_ms", "FAISS HNSW (M=16)"),
    ]:
        xs = [n for n in sizes if key in out["sizes"][n]]
        ax.plot(xs, [out["sizes"][n][key]["p50"] for n in xs], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("catalog size (items)")
    ax.set_ylabel("p50 latency per query (ms)")
    ax.set_title(f"Single-query latency vs catalog size ({out['dim']}-d, 1 thread)")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    DOCS.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(DOCS / "genret_latency.png", dpi=110)


def part_train(args: argparse.Namespace) -> dict[str, Any]:
    """Wall time of training at the default size on ``items`` synthetic items (self pairs + one view each)."""
    from xmodal.genret.config import TrainConfig
    from xmodal.genret.train import TrainingSet, fit

    items = clustered(args.items, args.dim, args.seed)
    views = clustered(args.items, args.dim, args.seed + 1)  # a second, noisier view of the same clusters
    views = items + 0.5 * (views - items)
    views /= np.linalg.norm(views, axis=1, keepdims=True)
    n = len(items)
    queries = np.concatenate([items, views]).astype(np.float32)
    targets = np.concatenate([np.arange(n), np.arange(n)]).astype(np.int64)
    ts = TrainingSet(np.arange(n, dtype=np.int64), items, np.zeros(n, np.int64), queries, targets)
    t0 = time.perf_counter()
    model = fit(ts, TrainConfig(epochs=args.epochs, device="cpu", min_steps=0), progress=True)  # bars: stderr
    total = time.perf_counter() - t0
    return {
        "items": n,
        "pairs": len(queries),
        "dim": args.dim,
        "epochs": args.epochs,
        "seconds": round(total, 1),
        "minutes": round(total / 60, 2),
        "training": model.meta["training"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["recall", "tune", "scale", "train"])
    parser.add_argument("--dataset", choices=["wordnet", "clipart"], default="wordnet")
    parser.add_argument("--items", type=int, default=None)
    parser.add_argument(
        "--relevance",
        choices=["item", "category"],
        default="item",
        help="clipart: a hit is the query's own image (item) or any image of its leaf folder",
    )
    parser.add_argument("--test", type=int, default=1000, help="test queries")
    parser.add_argument("--val", type=int, default=1000, help="validation queries (disjoint from the test split)")
    parser.add_argument("--pool", type=int, default=None, help="GENIUS-R candidate cap (default: the model's)")
    parser.add_argument("--grid", nargs="*", default=[], help="tune: only the settings whose name contains one")
    parser.add_argument("--no-contrastive", action="store_true", help="tune: without contrastive fine-tuning")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--beam", type=int, default=32)
    parser.add_argument("--max-minutes", type=float, default=None, help="cap each decoder training")
    parser.add_argument("--quick", action="store_true", help="skip the single ablations")
    parser.add_argument("--only-genius", action="store_true", help="train only the full GENIUS variant")
    parser.add_argument("--more-beams", type=int, nargs="*", default=[], help="also evaluate GENIUS at these beams")
    parser.add_argument("--tag", default="", help="suffix of the output file")
    parser.add_argument("--alpha", type=float, default=2.0, help="query augmentation α of the GENIUS variant")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--hnsw-max", type=int, default=300_000, help="largest catalog to build HNSW for")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.relevance == "category" and args.dataset != "clipart":
        parser.error("--relevance category needs --dataset clipart")
    import faiss
    import torch

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    if args.items is None:
        recall_items = 3000 if args.dataset == "wordnet" else 8121
        args.items = {"recall": recall_items, "tune": recall_items, "train": 100_000}.get(args.part, 0)
    start = time.perf_counter()
    parts = {"recall": part_recall, "tune": part_tune, "scale": part_scale, "train": part_train}
    result = parts[args.part](args)
    result.update(
        {
            "threads": args.threads,
            "wall_s": round(time.perf_counter() - start, 1),
            "command": "python benchmarks/bench_genret.py " + " ".join(sys.argv[1:]),
        }
    )
    OUT.mkdir(exist_ok=True)
    suffix = (f"_{args.dataset}" if args.part in ("recall", "tune") else "") + (f"_{args.tag}" if args.tag else "")
    (OUT / f"genret_{args.part}{suffix}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
