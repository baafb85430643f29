"""What reading the text in query images (issue 17, part 2) adds to an image search: the guards with
``query_image_ocr`` on vs off (the peer), same index, same queries, interleaved, in the same run.

Run:  python benchmarks/bench_query_image_ocr.py [--photos 40] [--texts 10] [--rounds 3]

Query images: seeded smooth synthetic photo-like pictures (no text), real clip-art from Debian's
``openclipart-png`` (line art: the cheap check sends much of it to OCR), and pictures of benign text lines
rendered with DejaVu Sans (each a new image, so the OCR cache never answers). Reported per kind: p50/p95 search latency with OCR on and off, the
difference (what OCR adds), the share of images the cheap text-presence check sent to OCR, and the same
text image searched again (the cache). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from xmodal import Engine, Item, Query
from xmodal.encoders import HashingEncoder

CLIPART = Path("/usr/share/openclipart/png")
WORDS = "red blue running shoes lamp chair wooden table garden summer coffee mug green jacket".split()


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, format="PNG")
    return out.getvalue()


def clipart(n: int, rng: random.Random) -> list[bytes]:
    files = sorted(CLIPART.rglob("*.png")) if CLIPART.is_dir() else []
    out: list[bytes] = []
    for path in rng.sample(files, min(n * 3, len(files))):
        try:
            with Image.open(path) as img:
                img.load()
                background = Image.new("RGBA", img.size, (255, 255, 255, 255))
                out.append(_png(Image.alpha_composite(background, img.convert("RGBA"))))
        except OSError:
            continue
        if len(out) == n:
            break
    return out


def smooth(n: int, rng: random.Random) -> list[bytes]:
    gen = np.random.default_rng(rng.randrange(1 << 30))
    yy, xx = np.mgrid[0:360, 0:480]
    return [
        _png(
            Image.fromarray(
                np.clip(
                    np.stack([np.sin(xx / (40 + 9 * c) + gen.random() * 6) * 60 + 120 + yy * 0.1 for c in range(3)], -1)
                    + gen.normal(0, 3, (360, 480, 3)),
                    0,
                    255,
                ).astype(np.uint8)
            )
        )
        for _ in range(n)
    ]


def texts(n: int, rng: random.Random) -> list[bytes]:
    try:
        font: Any = ImageFont.truetype("DejaVuSans.ttf", 30)
    except OSError:
        font = ImageFont.load_default(size=30)
    out = []
    for _ in range(n):
        image = Image.new("RGB", (900, 160), (245, 240, 228))
        ImageDraw.Draw(image).text((20, 60), " ".join(rng.sample(WORDS, 6)), fill=(15, 15, 15), font=font)
        out.append(_png(image))
    return out


def build(path: Path, ocr: bool) -> Engine:
    (path / "guards").mkdir(parents=True)
    (path / "guards" / "policy.toml").write_text(f"[settings]\nquery_image_ocr = {'true' if ocr else 'false'}\n")
    engine = Engine.open(path, encoder=HashingEncoder(), index="exact", extensions=["guards"])
    engine.add([Item.create(f"i{n}", title=f"item {n} {WORDS[n % len(WORDS)]}") for n in range(200)])
    return engine


def timed(engine: Engine, image: bytes) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    found = engine.search(Query(image=image, k=10), explain=True)
    ms = (time.perf_counter() - start) * 1000
    return ms, (found.explain or {}).get("guards", {}).get("image_text", {})


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2) if values else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--texts", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    sets = {
        "smooth_photo": smooth(args.photos, rng),
        "clipart": clipart(args.photos, rng),
        "text": texts(args.texts, rng),
    }
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        on, off = build(Path(tmp) / "on", True), build(Path(tmp) / "off", False)
        try:
            for engine in (on, off):  # warm up: the model, the first tesseract run
                timed(engine, sets["text"][0])
            for kind, images in sets.items():
                if not images:
                    report[kind] = "not run (install openclipart-png)"
                    continue
                times: dict[str, list[float]] = {"on": [], "off": []}
                sent = 0
                for image in images[1:] if kind == "text" else images:
                    ms_off, _ = timed(off, image)
                    ms_on, note = timed(on, image)
                    times["off"].append(ms_off)
                    times["on"].append(ms_on)
                    sent += note.get("status") == "checked"
                p50_on, p50_off = pct(times["on"], 50), pct(times["off"], 50)
                report[kind] = {
                    "queries": len(times["on"]),
                    "sent_to_ocr": sent,
                    "p50_ms_ocr_on": p50_on,
                    "p50_ms_ocr_off": p50_off,
                    "p95_ms_ocr_on": pct(times["on"], 95),
                    "p95_ms_ocr_off": pct(times["off"], 95),
                    "p50_added_ms": round(p50_on - p50_off, 2),
                    "ratio_p50_on_vs_off": round(p50_on / p50_off, 3) if p50_off else None,
                }
            again = [timed(on, sets["text"][1])[0] for _ in range(5)]  # read once above: cached now
            report["text_repeated_p50_ms"] = round(statistics.median(again), 2)
        finally:
            on.close()
            off.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
