"""Document pages: page retrieval from the text layer, from OCR alone and from page images.

    python benchmarks/bench_pages.py --pages 40

The corpus is real prose: Debian's license texts (``/usr/share/common-licenses``: GPL-3, Apache-2.0,
MPL-2.0, LGPL-2.1, GFDL-1.3, Artistic; base-files, on every Debian machine) typeset into one PDF each with
reportlab (Times 10 pt on A4, about 4,000 characters a page), the first pages of each so that the corpus
holds ``--pages`` pages. The same pages are then rasterised at 150 dpi with scan-like damage (a slight
rotation, blur, Gaussian noise, speckles, JPEG at quality 60) into PDFs with no text layer, which
xmodal OCRs with tesseract.

Queries are real sentences of the pages' text layer that occur on one page only (one per page: 8 to 30
words), plus a shortened form of each (5 consecutive words of it). A query is right at k when its page
is in the top k. Reported (one JSON object):

- ``recall``: page R@1 / R@5 per source (``text_layer``: the typeset PDFs; ``ocr``: the scanned ones)
  × query form (``sentence``, ``short``) × ranking (``default``: the index's default mode, dense +
  lexical fused by the ltr extension; ``dense_text``: cosine over the page text vectors; ``dense_image``:
  over the page-image vectors; ``dense_combined``: over text+image);
- ``ocr``: character accuracy of OCR against the text layer (1 - edit distance / characters, whitespace
  normalised) over the scanned pages, mean and worst;
- ``throughput``: pages/s end to end into the store (split, render, OCR when needed, encode, commit) for
  the typeset PDFs (text layer) and for the scans (OCR), with the machine's CPU count.

Needs: pypdfium2 and reportlab (``pip install 'xmodal[documents,test]'``), tesseract
(``apt-get install tesseract-ocr tesseract-ocr-eng``) and the offline models (``xmodal[models]``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from xmodal import Engine, Query
from xmodal.ingest.catalog import add_catalogs
from xmodal.splitters import SplitOptions

LICENSES = Path("/usr/share/common-licenses")
DOCS = ("GPL-3", "Apache-2.0", "MPL-2.0", "LGPL-2.1", "GFDL-1.3", "Artistic")
SENTENCE = re.compile(r"(?<=[.;:])\s+(?=[A-Z(\"])")


def typeset(text: str, title: str) -> bytes:
    """``text`` as an A4 PDF in Times 10 pt (paragraphs at blank lines)."""
    from xml.sax.saxutils import escape

    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate

    out = io.BytesIO()
    style = getSampleStyleSheet()["BodyText"]
    style.fontName, style.fontSize, style.leading = "Times-Roman", 10, 12
    doc = SimpleDocTemplate(out, pagesize=A4, title=title, leftMargin=60, rightMargin=60, topMargin=60, bottomMargin=60)
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]
    doc.build([Paragraph(escape(p), style) for p in paragraphs])
    return out.getvalue()


def first_pages(pdf_bytes: bytes, n: int) -> bytes:
    """The first ``n`` pages of a PDF as a new PDF."""
    import pypdfium2 as pdfium

    src = pdfium.PdfDocument(pdf_bytes)
    dst = pdfium.PdfDocument.new()
    dst.import_pages(src, list(range(min(n, len(src)))))
    out = io.BytesIO()
    dst.save(out)
    return out.getvalue()


def scan(pdf_bytes: bytes, rng: random.Random) -> bytes:
    """The pages rendered at 150 dpi with scan damage, as an image-only PDF (no text layer)."""
    import pypdfium2 as pdfium
    from PIL import ImageFilter

    pages = []
    for page in pdfium.PdfDocument(pdf_bytes):
        image = page.render(scale=150 / 72).to_pil().convert("L")
        image = image.rotate(rng.uniform(-0.7, 0.7), resample=Image.Resampling.BICUBIC, fillcolor=255, expand=False)
        image = image.filter(ImageFilter.GaussianBlur(0.6))
        pixels = np.asarray(image, dtype=np.float32)
        noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, 12, pixels.shape)
        pixels = pixels + noise
        speckle = np.random.default_rng(rng.randrange(1 << 30)).random(pixels.shape) < 0.0015
        pixels[speckle] = 0
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=60)
        pages.append(Image.open(io.BytesIO(buf.getvalue())).convert("L"))
    out = io.BytesIO()
    pages[0].save(out, "PDF", save_all=True, append_images=pages[1:], resolution=150)
    return out.getvalue()


def build_corpus(folder: Path, total_pages: int, seed: int) -> tuple[Path, Path]:
    """Typeset PDFs under ``folder/typeset`` and their scans under ``folder/scanned`` (same file names)."""
    typeset_dir, scanned_dir = folder / "typeset", folder / "scanned"
    typeset_dir.mkdir(parents=True)
    scanned_dir.mkdir(parents=True)
    rng = random.Random(seed)
    per_doc = max(1, -(-total_pages // len(DOCS)))
    left = total_pages
    for name in DOCS:
        if left <= 0:
            break
        text = (LICENSES / name).read_text(encoding="utf-8", errors="replace")
        pdf = first_pages(typeset(text, f"{name} license"), min(per_doc, left))
        left -= count_pages(pdf)
        (typeset_dir / f"{name}.pdf").write_bytes(pdf)
        (scanned_dir / f"{name}.pdf").write_bytes(scan(pdf, rng))
    return typeset_dir, scanned_dir


def count_pages(pdf_bytes: bytes) -> int:
    import pypdfium2 as pdfium

    return len(pdfium.PdfDocument(pdf_bytes))


def norm(text: str) -> str:
    return " ".join(text.split())


def make_queries(pages: dict[str, str], seed: int) -> list[tuple[str, str, str]]:
    """``(form, query, page id)``: one sentence found on that page only, and 5 consecutive words of it."""
    rng = random.Random(seed)
    flat = {pid: norm(text) for pid, text in pages.items()}
    queries = []
    for pid in sorted(flat):
        sentences = [s.strip() for s in SENTENCE.split(flat[pid])]
        good = [s for s in sentences if 8 <= len(s.split()) <= 30]
        good = [s for s in good if sum(s in other for other in flat.values()) == 1]
        if not good:
            continue
        sentence = rng.choice(good)
        words = sentence.split()
        at = rng.randrange(0, len(words) - 4)
        queries.append(("sentence", sentence, pid))
        queries.append(("short", " ".join(words[at : at + 5]), pid))
    return queries


def recall(engine: Engine, queries: list[tuple[str, str, str]], id_map: dict[str, str]) -> dict[str, Any]:
    """R@1 and R@5 per query form and ranking; ``id_map`` maps a query's page id to this index's id."""
    out: dict[str, Any] = {}
    rankings: dict[str, dict[str, Any]] = {
        "default": {},
        "dense_text": {"mode": "dense", "target": "text"},
        "dense_image": {"mode": "dense", "target": "image"},
        "dense_combined": {"mode": "dense", "target": "combined"},
    }
    for form in ("sentence", "short"):
        mine = [(q, id_map[pid]) for f, q, pid in queries if f == form]
        for name, options in rankings.items():
            ranks = []
            for text, want in mine:
                found = [item.id for item in engine.search(Query(text=text, k=5, **options)).items]
                ranks.append(found.index(want) + 1 if want in found else None)
            out[f"{form}/{name}"] = {
                "queries": len(ranks),
                "R@1": round(sum(r == 1 for r in ranks) / max(len(ranks), 1), 3),
                "R@5": round(sum(r is not None for r in ranks) / max(len(ranks), 1), 3),
            }
    return out


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, one NumPy row at a time."""
    if not a or not b:
        return max(len(a), len(b))
    bb = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    idx = np.arange(len(b) + 1)
    row = idx.copy()
    for i, ch in enumerate(a, 1):
        cost = (bb != ord(ch)).astype(np.int64)
        t = np.empty_like(row)
        t[0] = i
        t[1:] = np.minimum(row[1:] + 1, row[:-1] + cost)
        row = np.minimum.accumulate(t - idx) + idx
    return int(row[-1])


def char_accuracy(truth: str, ocr: str) -> float:
    truth, ocr = norm(truth), norm(ocr)
    return max(0.0, 1 - edit_distance(truth, ocr) / max(len(truth), 1))


def ingest(path: Path, folder: Path, options: SplitOptions) -> tuple[Engine, float, int]:
    engine = Engine.open(path)
    warm = io.BytesIO()
    Image.new("RGB", (64, 64), (255, 255, 255)).save(warm, "PNG")
    engine.encode_queries(
        [Query(text="warm up"), Query(image=warm.getvalue())]
    )  # models loaded before the clock starts
    start = time.perf_counter()
    report = add_catalogs(engine, [folder], split_options=options)
    took = time.perf_counter() - start
    if report.rejected:
        print(json.dumps({"rejected": report.to_dict()["rejected"][:5]}), file=sys.stderr)
    pages = sum(1 for item_id in report.added if "#p" in item_id)
    return engine, took, pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=40, help="pages in the corpus (default: 40)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xmodal-bench-pages-") as tmp:
        root = Path(tmp)
        typeset_dir, scanned_dir = build_corpus(root / "corpus", args.pages, args.seed)
        clean, clean_s, clean_pages = ingest(root / "idx-text", typeset_dir, SplitOptions(ocr="never"))
        scanned, ocr_s, ocr_pages = ingest(root / "idx-ocr", scanned_dir, SplitOptions(ocr="auto"))
        try:
            truth = {s.item.id: s.item.text for s in clean.iter_items() if s.item.parent is not None}
            ocr_text = {s.item.id: s.item.text for s in scanned.iter_items() if s.item.parent is not None}
            queries = make_queries(truth, args.seed)
            same = {pid: pid for pid in truth}
            accuracy = [char_accuracy(truth[pid], ocr_text.get(pid, "")) for pid in sorted(truth)]
            result = {
                "corpus": {
                    "documents": [p.stem for p in sorted(typeset_dir.glob("*.pdf"))],
                    "pages": len(truth),
                    "characters_per_page": round(float(np.mean([len(t) for t in truth.values()])), 1),
                    "queries": {
                        "sentence": sum(f == "sentence" for f, _, _ in queries),
                        "short": sum(f == "short" for f, _, _ in queries),
                    },
                },
                "recall": {
                    "text_layer": recall(clean, queries, same),
                    "ocr": recall(scanned, queries, same),
                },
                "ocr": {
                    "char_accuracy_mean": round(float(np.mean(accuracy)), 4),
                    "char_accuracy_min": round(float(np.min(accuracy)), 4),
                    "pages_ocrd": len(ocr_text),
                },
                "throughput": {
                    "text_layer_pages_per_s": round(clean_pages / clean_s, 2),
                    "ocr_pages_per_s": round(ocr_pages / ocr_s, 3),
                    "cpus": os.cpu_count(),
                },
                "encoder": clean.info()["encoder"].get("name"),
                "default_mode": clean.default_mode,
            }
        finally:
            clean.close()
            scanned.close()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
