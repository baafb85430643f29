"""Distributed add on one node: ``xmodal.ingest.ray_ingest.ray_add`` on a local Ray cluster against the
one-process add (``add_catalogs``, what ``xmodal add`` runs) of the same catalog, in the same run.

Run:  python benchmarks/bench_ray_ingest.py [--texts 2000] [--images 200] [--encoder offline] [--rounds 2]

Data: a JSON Lines catalog of WordNet noun synsets (Debian ``wordnet-base``; title = first lemma, text = the
gloss) plus a seeded sample of Debian ``openclipart-png`` images (image items, read from the catalog's folder).
Both adds write a fresh index folder with the same encoder (default ``offline``: MiniLM int8 + EfficientNet-Lite0),
models loaded beforehand: the one-process add on an engine whose model is loaded, the Ray add timed from
its workers' first batch (``startup_s``, starting the workers and loading their models, is reported apart,
and ``ratio_with_startup`` counts it). Rounds alternate the two adds (the machine may be shared: the load
average is printed) and the best round of each is compared. ``ratio`` = Ray items/s ÷ one-process items/s
(target ≥ 0.8); ``per_worker`` is each Ray worker's own rate (items ÷ its decode + encode seconds), the figure
the capacity plan scales by. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import CLIPART, wordnet_items  # noqa: E402
from PIL import Image  # noqa: E402

from xmodal import Engine  # noqa: E402
from xmodal.encoders import Content  # noqa: E402
from xmodal.ingest.catalog import add_catalogs  # noqa: E402


def write_catalog(folder: Path, texts: int, images: int) -> Path:
    """WordNet text items and clip-art image items (copied beside the catalog) as one JSON Lines file."""
    rows = [{"id": it.id, "title": it.title, "text": it.text} for it in wordnet_items(texts)]
    pngs = sorted(CLIPART.rglob("*.png"))
    (folder / "img").mkdir()
    for i, png in enumerate(random.Random(0).sample(pngs, min(images, len(pngs)))):
        shutil.copy(png, folder / "img" / f"{i}.png")
        rows.append({"id": f"img-{i}", "image": f"img/{i}.png"})
    catalog = folder / "catalog.jsonl"
    catalog.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return catalog


def one_process(catalog: Path, index: Path, encoder: str) -> dict[str, Any]:
    with Engine.open(index, encoder=encoder, extensions=[]) as engine:
        warm = [Content(text="warm up"), Content(image=Image.new("RGB", (32, 32), (128, 128, 128)))]
        for sample in warm:  # the models loaded, as the Ray workers load theirs before their timing
            engine.encoder.encode_documents([sample])
        started = time.perf_counter()
        report = add_catalogs(engine, [catalog])
        seconds = time.perf_counter() - started
    return {"items": len(report.added), "rejected": len(report.rejected), "seconds": round(seconds, 3)}


def on_ray(catalog: Path, index: Path, encoder: str, workers: int | None, batch: int) -> dict[str, Any]:
    from xmodal.ingest.ray_ingest import ray_add

    with Engine.open(index, encoder=encoder, extensions=[]) as engine:
        result = ray_add(engine, [catalog], workers=workers, batch_size=batch)
    figures = result.to_dict()
    return {
        "items": len(result.report.added),
        "rejected": len(result.report.rejected),
        "seconds": round(result.seconds, 3),
        "startup_s": round(result.startup_seconds, 3),
        "workers": result.workers,
        "per_worker": figures["per_worker"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--encoder", default="offline")
    parser.add_argument("--workers", type=int, default=None, help="default: one per CPU")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import ray

    from xmodal.ingest.ray_cluster import start_local

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        catalog = write_catalog(folder, args.texts, args.images)
        started = time.perf_counter()
        start_local(ray)
        cluster_s = time.perf_counter() - started
        singles, rays = [], []
        try:
            for r in range(args.rounds):
                singles.append(one_process(catalog, folder / f"single{r}", args.encoder))
                rays.append(on_ray(catalog, folder / f"ray{r}", args.encoder, args.workers, args.batch))
        finally:
            ray.shutdown()
    single = min(singles, key=lambda f: f["seconds"])
    best = min(rays, key=lambda f: f["seconds"])
    single_rate = single["items"] / single["seconds"]
    ray_rate = best["items"] / best["seconds"]
    print(
        json.dumps(
            {
                "items": single["items"],
                "texts": args.texts,
                "images": args.images,
                "encoder": args.encoder,
                "cores": os.cpu_count(),
                "cluster_start_s": round(cluster_s, 2),
                "one_process": {**single, "items_per_s": round(single_rate, 1)},
                "ray": {**best, "items_per_s": round(ray_rate, 1)},
                "ratio": round(ray_rate / single_rate, 3),
                "ratio_with_startup": round((best["items"] / (best["seconds"] + best["startup_s"])) / single_rate, 3),
                "rounds": {"one_process_s": [f["seconds"] for f in singles], "ray_s": [f["seconds"] for f in rays]},
                "load_avg_1m": round(os.getloadavg()[0], 2),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
