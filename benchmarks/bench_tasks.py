"""The ML-task purposes on real data: kNN-vote classification, clustering and image near-duplicates.

Run:  python benchmarks/bench_tasks.py
      (options: --per-class 30 --per-lexfile 40 --dup-sources 200 --distractors 200 --k 10 --folds 5 --seed 0)

- **classify**: macro-F1 of the kNN vote (``xmodal.tasks.evaluate``: stratified 5-fold cross-validation, k = 10,
  distance and uniform weighting) on Debian ``openclipart-png`` categories (the category folders with at least
  40 images, ``unsorted`` and ``special`` left out; ``--per-class`` images each, through the offline encoder's
  image side) and on WordNet lexicographer files (Debian ``wordnet-base``: ``--per-lexfile`` synsets of each of
  the 45 files, the lemmas as title and the gloss as text, through its text side), next to a
  logistic-regression probe (scikit-learn, C = 1 and 10) on the same vectors and the same folds.
- **cluster**: adjusted Rand index and NMI of k-means (k = the number of labels) and HDBSCAN
  (min_cluster_size 10; its noise counted as one more cluster) against the same labels.
- **dedup**: ``--dup-sources`` distinct images, each with three copies (half size; JPEG quality 50; 10% of
  width and height cropped off at a seeded offset), among ``--distractors`` other images, in an index of
  their own; ``xmodal.tasks.dedup`` (images; thresholds calibrated on the index) must put each copy with its
  source and nothing else. Precision and recall over pairs (a group of n holds n(n-1)/2), and the share of
  copies found per transformation. On clip-art (sources distinct: a candidate whose 32x32 grey thumbnail
  correlates >= 0.9 with an already chosen one is skipped, as the package holds the same drawing in several
  colours and sizes; so are flat images) and on photos (128x128 tiles of the scikit-image and scikit-learn
  sample photos, flat tiles left out).

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import random
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from xmodal import Engine, Item  # noqa: E402
from xmodal.imaging import to_rgb  # noqa: E402
from xmodal.tasks import cluster, dedup, evaluate  # noqa: E402
from xmodal.tasks.data import labelled, load  # noqa: E402
from xmodal.tasks.metrics import clustering_scores, macro_f1, stratified_folds  # noqa: E402

CLIPART = Path("/usr/share/openclipart/png")
WORDNET = Path("/usr/share/wordnet")
LEXNAMES = Path("/usr/share/man/man5/lexnames.5WN.gz")
MAX_PIXELS = 4_000_000


def clipart_files() -> dict[str, list[Path]]:
    out = {}
    for folder in sorted(CLIPART.iterdir()):
        files = sorted(folder.rglob("*.png"))
        if folder.name not in ("unsorted", "special") and len(files) >= 40:
            out[folder.name] = files
    return out


def open_image(path: Path) -> Image.Image | None:
    try:
        with Image.open(path) as im:
            if im.size[0] * im.size[1] > MAX_PIXELS:
                return None
            im.load()
            rgb = to_rgb(im)
    except (OSError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None
    rgb.thumbnail((512, 512))
    return rgb


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def clipart_items(per_class: int, seed: int) -> list[Item]:
    rng = random.Random(seed)
    items = []
    for category, files in clipart_files().items():
        chosen = 0
        for path in rng.sample(files, len(files)):
            if chosen == per_class:
                break
            if open_image(path) is None:
                continue
            items.append(Item.create(f"{category}/{path.name}", image=str(path), attributes={"category": category}))
            chosen += 1
    return items


def lexnames() -> dict[str, str]:
    text = gzip.decompress(LEXNAMES.read_bytes()).decode()
    return dict(re.findall(r"^(\d\d)\s+(\S+)", text, flags=re.M))


def wordnet_items(per_file: int, seed: int) -> list[Item]:
    names = lexnames()
    by_file: dict[str, list[tuple[str, str, str]]] = {}
    for pos in ("noun", "verb", "adj", "adv"):
        for line in (WORDNET / f"data.{pos}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue
            head, gloss = line.split("|", 1)
            fields = head.split()
            count = int(fields[3], 16)
            lemmas = [fields[4 + 2 * i].replace("_", " ") for i in range(count)]
            by_file.setdefault(names[fields[1]], []).append((fields[0] + pos[0], ", ".join(lemmas), gloss.strip()))
    rng = random.Random(seed)
    items = []
    for lexfile, synsets in sorted(by_file.items()):
        for offset, title, gloss in rng.sample(synsets, min(per_file, len(synsets))):
            items.append(Item.create(offset, title=title, text=gloss, attributes={"lexfile": lexfile}))
    return items


def probe(engine: Engine, label: str, folds: int, seed: int, c: float) -> float:
    """Macro-F1 of a logistic-regression probe on the same vectors and folds as the kNN evaluation."""
    from sklearn.linear_model import LogisticRegression

    data = load(engine)
    where, labels = labelled(data, label)
    keep = [i for i, lab in enumerate(labels) if Counter(labels)[lab] >= folds]
    x, y = data.vectors[where[keep]], np.asarray([labels[i] for i in keep])
    fold_of = stratified_folds(y.tolist(), folds, seed)
    predicted = np.empty(len(y), dtype=object)
    for fold in range(folds):
        test = fold_of == fold
        model = LogisticRegression(C=c, max_iter=3000).fit(x[~test], y[~test])
        predicted[test] = model.predict(x[test])
    return macro_f1(y.tolist(), [str(p) for p in predicted])


def classification(engine: Engine, label: str, k: int, folds: int, seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for weighting in ("distance", "uniform"):
        start = time.perf_counter()
        report = evaluate(engine, label, k=k, weighting=weighting, folds=folds, seed=seed)
        out[f"knn_{weighting}_macro_f1"] = round(report.macro_f1, 4)
        out[f"knn_{weighting}_accuracy"] = round(report.accuracy, 4)
        out[f"knn_{weighting}_seconds"] = round(time.perf_counter() - start, 2)
        out["items"], out["labels"] = report.items, len(report.f1)
    for c in (1.0, 10.0):
        out[f"logreg_C{c:g}_macro_f1"] = round(probe(engine, label, folds, seed, c), 4)
    truth = {item.id: str(item.attributes[label]) for item in load(engine).items}
    for method, options in (("kmeans", {"n_clusters": out["labels"]}), ("hdbscan", {"min_cluster_size": 10})):
        start = time.perf_counter()
        result = cluster(engine, method=method, seed=seed, **options)  # type: ignore[arg-type]
        ids = sorted(truth)
        scores = clustering_scores([truth[i] for i in ids], [result.assignment[i] for i in ids])
        out[f"{method}_ari"], out[f"{method}_nmi"] = round(scores["ari"], 4), round(scores["nmi"], 4)
        out[f"{method}_clusters"] = len(result.clusters)
        out[f"{method}_noise"] = len(result.noise)
        out[f"{method}_seconds"] = round(time.perf_counter() - start, 2)
        if method == "kmeans":
            out["kmeans_example_names"] = [c.name for c in result.clusters[:5]]
    return out


def grey_thumb(image: Image.Image) -> np.ndarray | None:
    a = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.BOX), dtype=np.float32).ravel()
    if a.std() < 8:
        return None  # flat: nothing to tell copies apart by
    a = a - a.mean()
    return a / np.linalg.norm(a)


def distinct(images: list[Image.Image], limit: int) -> tuple[list[Image.Image], int]:
    """Up to ``limit`` images whose thumbnails correlate below 0.9 with every one kept before."""
    kept: list[Image.Image] = []
    thumbs: list[np.ndarray] = []
    skipped = 0
    for image in images:
        thumb = grey_thumb(image)
        if thumb is None or (thumbs and float(np.max(np.stack(thumbs) @ thumb)) >= 0.9):
            skipped += 1
            continue
        kept.append(image)
        thumbs.append(thumb)
        if len(kept) == limit:
            break
    return kept, skipped


def copies(image: Image.Image, rng: random.Random) -> dict[str, bytes]:
    w, h = image.size
    jpeg = io.BytesIO()
    image.save(jpeg, "JPEG", quality=50)
    cw, ch = int(w * 0.1), int(h * 0.1)
    left, top = rng.randint(0, cw), rng.randint(0, ch)
    cropped = image.crop((left, top, left + w - cw, top + h - ch))
    resized = image.resize((max(8, w // 2), max(8, h // 2)), Image.Resampling.BICUBIC)
    return {"resized": png(resized), "jpeg": jpeg.getvalue(), "cropped": png(cropped)}


def photo_tiles() -> list[Image.Image]:
    from skimage import data
    from sklearn.datasets import load_sample_images

    names = "astronaut brick camera cell chelsea clock coffee coins grass gravel hubble_deep_field "
    names += "immunohistochemistry moon retina rocket"
    photos = [np.asarray(getattr(data, n)()) for n in names.split()]
    photos += list(load_sample_images().images)
    tiles = []
    for array in photos:
        image = Image.fromarray(array).convert("RGB")
        w, h = image.size
        for top in range(0, h - 127, 128):
            for left in range(0, w - 127, 128):
                tiles.append(image.crop((left, top, left + 128, top + 128)))
    return tiles


def dedup_block(name: str, pool: list[Image.Image], sources: int, distractors: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    rng.shuffle(pool)
    chosen, skipped = distinct(pool, sources + distractors)
    src, others = chosen[:sources], chosen[sources:]
    items, truth = [], {}
    for i, image in enumerate(src):
        items.append(Item.create(f"s{i}", image=png(image)))
        truth[f"s{i}"] = i
        for how, data in copies(image, rng).items():
            items.append(Item.create(f"s{i}-{how}", image=data))
            truth[f"s{i}-{how}"] = i
    items += [Item.create(f"d{i}", image=png(image)) for i, image in enumerate(others)]
    with tempfile.TemporaryDirectory() as folder, Engine.open(Path(folder) / "idx") as engine:
        start = time.perf_counter()
        report = engine.add(items)
        encode_s = time.perf_counter() - start
        start = time.perf_counter()
        result = dedup(engine, signals=("image",), seed=seed)
        dedup_s = time.perf_counter() - start
    predicted = {frozenset((a, b)) for g in result.groups for i, a in enumerate(g.ids) for b in g.ids[i + 1 :]}
    members: dict[int, list[str]] = {}
    for item_id, group in truth.items():
        members.setdefault(group, []).append(item_id)
    true = {frozenset((a, b)) for ids in members.values() for i, a in enumerate(ids) for b in ids[i + 1 :]}
    hit = predicted & true
    per_copy = {}
    for how in ("resized", "jpeg", "cropped"):
        found = sum(frozenset((f"s{i}", f"s{i}-{how}")) in predicted for i in range(len(src)))
        per_copy[how] = round(found / max(1, len(src)), 4)
    return {
        "set": name,
        "sources": len(src),
        "distractors": len(others),
        "items": len(items),
        "rejected": len(report.rejected),
        "skipped_not_distinct_or_flat": skipped,
        "precision": round(len(hit) / max(1, len(predicted)), 4),
        "recall": round(len(hit) / max(1, len(true)), 4),
        "copy_recall": per_copy,
        "thresholds": [t.to_dict() for t in result.thresholds],
        "encode_seconds": round(encode_s, 1),
        "dedup_seconds": round(dedup_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--per-lexfile", type=int, default=40)
    parser.add_argument("--dup-sources", type=int, default=200)
    parser.add_argument("--distractors", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", action="append", default=[], choices=["clipart", "wordnet", "dedup"])
    args = parser.parse_args()
    out: dict[str, Any] = {"k": args.k, "folds": args.folds, "seed": args.seed, "encoder": "offline"}
    with tempfile.TemporaryDirectory() as folder:
        if "clipart" not in args.skip:
            with Engine.open(Path(folder) / "clipart") as engine:
                start = time.perf_counter()
                engine.add(clipart_items(args.per_class, args.seed))
                out["clipart"] = {"encode_seconds": round(time.perf_counter() - start, 1)}
                out["clipart"] |= classification(engine, "category", args.k, args.folds, args.seed)
            print(json.dumps(out["clipart"]), file=sys.stderr)
        if "wordnet" not in args.skip:
            with Engine.open(Path(folder) / "wordnet") as engine:
                start = time.perf_counter()
                engine.add(wordnet_items(args.per_lexfile, args.seed))
                out["wordnet"] = {"encode_seconds": round(time.perf_counter() - start, 1)}
                out["wordnet"] |= classification(engine, "lexfile", args.k, args.folds, args.seed)
            print(json.dumps(out["wordnet"]), file=sys.stderr)
    if "dedup" not in args.skip:
        rng = random.Random(args.seed)
        files = [path for paths in clipart_files().values() for path in paths]
        files += sorted((CLIPART / "unsorted").rglob("*.png")) + sorted((CLIPART / "special").rglob("*.png"))
        pool = [
            im for im in (open_image(p) for p in rng.sample(files, 3 * (args.dup_sources + args.distractors))) if im
        ]
        out["dedup_clipart"] = dedup_block("clipart", pool, args.dup_sources, args.distractors, args.seed)
        print(json.dumps(out["dedup_clipart"]), file=sys.stderr)
        out["dedup_photos"] = dedup_block("photos", photo_tiles(), args.dup_sources, args.distractors, args.seed)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
