"""End-to-end ingest through ``Engine.add`` (store included) with the offline encoder, on real data.

Run:  python benchmarks/bench_ingest.py [--texts 2000] [--images 500] [--queries 50] [--peers]

Data:
- text: WordNet noun synsets (Debian ``wordnet-base``) as text items: title = first lemma,
  text = the full gloss (definition and usage examples), in file order.
- images: Debian ``openclipart-png`` PNGs as image-only items, a seeded sample over all folders.

Timed: ``Engine.add`` on a fresh index folder (image read + decode, encoding, SQLite commit with
WAL + synchronous=FULL, index update), models already loaded and the ONNX export already cached
(the one-off costs are reported separately). Query encoding latency is ``Engine.encode_query`` for
short WordNet lemma queries and for clip-art image queries. ``--peers`` also times the bare encoder
on the same data (the engine's overhead as a ratio), the sentence-transformers fp32 text backend and
EfficientNet-Lite0 in eager torch (64 images).
The machine may be shared: ``cpu_s`` (process CPU time), the load average and the usable cores are
printed beside every wall-clock figure. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from xmodal import Engine, Item, Query
from xmodal.encoders import Content, create_encoder
from xmodal.errors import XmodalError
from xmodal.imaging import load_image

WORDNET = Path("/usr/share/wordnet/data.noun")
CLIPART = Path("/usr/share/openclipart/png")


def wordnet_items(n: int) -> list[Item]:
    """The first ``n`` noun synsets as text items."""
    items = []
    for line in WORDNET.read_text(encoding="latin-1").splitlines():
        if line.startswith("  ") or " | " not in line:
            continue
        head, gloss = line.split(" | ", 1)
        fields = head.split()
        items.append(Item.create(f"wn-{fields[0]}", title=fields[4].replace("_", " "), text=gloss.strip()))
        if len(items) >= n:
            break
    return items


def clipart_items(n: int, seed: int = 0) -> list[Item]:
    """A seeded sample of ``n`` clip-art PNGs as image-only items."""
    paths = sorted(CLIPART.rglob("*.png"))
    chosen = random.Random(seed).sample(paths, min(n, len(paths)))
    return [Item.create(f"clip-{i}", image=str(p)) for i, p in enumerate(chosen)]


@contextmanager
def timed(out: dict[str, float]) -> Iterator[None]:
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    out["wall_s"] = round(time.perf_counter() - wall, 3)
    out["cpu_s"] = round(time.process_time() - cpu, 3)


def rate(count: int, timing: dict[str, float], unit: str) -> dict[str, Any]:
    """Wall-clock rate, plus the CPU cost per item and the rate it bounds on idle cores.

    ``cpu_bound_per_s`` = cores × 1000 / cpu_ms_per_item is an upper bound (perfect use of every
    usable core); on a shared machine it is the figure least disturbed by other processes.
    """
    cores = len(os.sched_getaffinity(0))
    cpu_ms = 1000 * timing["cpu_s"] / max(1, count)
    return {
        "count": count,
        **timing,
        f"{unit}_per_s": round(count / timing["wall_s"], 1),
        "cpu_ms_per_item": round(cpu_ms, 2),
        "cpu_bound_per_s": round(cores * 1000 / cpu_ms, 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def ingest(items: list[Item], unit: str) -> dict[str, Any]:
    """Add ``items`` to a fresh engine on the offline encoder (warm models)."""
    timing: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, Engine.open(Path(tmp) / "idx", encoder=ENCODER) as engine:
        with timed(timing):
            report = engine.add(items)
    out = rate(len(report.added), timing, unit)
    # a few clip-art PNGs are huge (e.g. 623 Mpx) and are refused as decompression bombs
    out["rejected"] = len(report.rejected)
    return out


def latency_ms(run: Callable[[], object], repeats: int) -> dict[str, float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 2), "p90_ms": round(samples[int(0.9 * (len(samples) - 1))], 2)}


def query_latency(engine: Engine, texts: list[str], images: list[Item], repeats: int) -> dict[str, Any]:
    text_queries = iter(texts * (repeats // max(1, len(texts)) + 1))
    image_queries = iter(images * (repeats // max(1, len(images)) + 1))
    return {
        "text": latency_ms(lambda: engine.encode_query(Query(text=next(text_queries))), repeats),
        "image": latency_ms(lambda: engine.encode_query(Query(image=next(image_queries).image)), repeats),
    }


def bare_encoder(texts: list[Item], images: list[Item]) -> dict[str, Any]:
    """The same work without the engine: decode + encode only (the peer for the engine overhead)."""
    text_t: dict[str, float] = {}
    with timed(text_t):
        ENCODER.encode_documents([Content(text=i.document_text) for i in texts])
    image_t: dict[str, float] = {}
    with timed(image_t):
        decoded = []
        for item in images:
            try:
                decoded.append(load_image(item.image) if item.image is not None else None)
            except XmodalError:
                continue
        ENCODER.encode_documents([Content(image=im) for im in decoded if im is not None])
    return {"text": rate(len(texts), text_t, "items"), "images": rate(len(decoded), image_t, "images")}


def torch_text(texts: list[Item]) -> dict[str, Any]:
    encoder = create_encoder("offline", text_backend="torch")
    encoder.encode_documents([Content(text="warm up")])
    timing: dict[str, float] = {}
    with timed(timing):
        encoder.encode_documents([Content(text=i.document_text) for i in texts])
    return rate(len(texts), timing, "items")


def torch_images(images: list[Item], n: int = 64) -> dict[str, Any]:
    """EfficientNet-Lite0 in eager torch on the same preprocessed pixels (the peer of the ONNX path)."""
    import numpy as np
    import torch

    from xmodal.encoders.efficientnet import _torch_network, preprocess

    decoded = []
    for item in images:
        try:
            decoded.append(load_image(item.image))
        except XmodalError:
            continue
        if len(decoded) >= n:
            break
    network = _torch_network()
    timing: dict[str, float] = {}
    with timed(timing), torch.no_grad():
        for start in range(0, len(decoded), 16):
            network(torch.from_numpy(np.stack([preprocess(im) for im in decoded[start : start + 16]])))
    onnx: dict[str, float] = {}
    with timed(onnx):
        ENCODER.image.probabilities(decoded)
    out = rate(len(decoded), timing, "images")
    out["onnx_cpu_ratio"] = round(timing["cpu_s"] / onnx["cpu_s"], 2)
    return out


def main() -> None:
    os.environ.setdefault("XMODAL_AUTOTUNE", "off")  # no background fit of the default mode beside the timing
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--peers", action="store_true", help="also time the bare encoder and the torch text backend")
    args = parser.parse_args()
    for path in (WORDNET, CLIPART):
        if not path.exists():
            sys.exit(f"{path} not found: apt-get install wordnet-base openclipart-png")

    global ENCODER
    load: dict[str, float] = {}
    with timed(load):
        ENCODER = create_encoder("offline")
        ENCODER.encode_documents(
            [Content(text="warm up"), Content(image=load_image(str(next(CLIPART.rglob("*.png")))))]
        )
    texts, images = wordnet_items(args.texts), clipart_items(args.images)
    result: dict[str, Any] = {
        "machine": {
            "usable_cores": len(os.sched_getaffinity(0)),
            "cpu_count": os.cpu_count(),
            "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
        },
        "model_load_and_warmup": load,
        "text": ingest(texts, "items"),
        "images": ingest(images, "images"),
    }
    with tempfile.TemporaryDirectory() as tmp, Engine.open(Path(tmp) / "idx", encoder=ENCODER) as engine:
        lemmas = [i.title for i in texts[: args.queries]]
        result["query_encoding"] = query_latency(engine, lemmas, images[: args.queries], args.queries)
    if args.peers:
        bare = bare_encoder(texts, images)
        bare["engine_overhead_ratio"] = {
            "text": round(result["text"]["wall_s"] / bare["text"]["wall_s"], 3),
            "images": round(result["images"]["wall_s"] / bare["images"]["wall_s"], 3),
        }
        result["peer_bare_encoder"] = bare
        peer = torch_text(texts)
        peer["int8_speedup"] = round(result["text"]["items_per_s"] / peer["items_per_s"], 3)
        peer["int8_cpu_ratio"] = round(peer["cpu_ms_per_item"] / result["text"]["cpu_ms_per_item"], 2)
        result["peer_torch_text"] = peer
        result["peer_torch_images"] = torch_images(images)
    result["targets_met"] = {
        "text_250_per_s": result["text"]["items_per_s"] >= 250,
        "images_100_per_s": result["images"]["images_per_s"] >= 100,
    }
    print(json.dumps(result, indent=2))


ENCODER: Any = None

if __name__ == "__main__":
    main()
