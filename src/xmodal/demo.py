"""The demo behind ``./scripts/demo``: build the sample catalog, index it, search it, score it; then a PDF,
a narration and a video (:mod:`xmodal.demo_media`) searched by text down to the page, time and shot.

    python -m xmodal.demo [--size N] [--encoder offline|hashing] [--data DIR] [--index DIR] [--rebuild]

The catalog (:mod:`xmodal.samples`) is cached under ``--data`` and the index in ``--index``; both are
reused when they were built with the same settings, so running the demo again takes seconds. The
index folder holds a ``demo.json`` marker saying what it was built from; a folder without one is
never overwritten.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import demo_media
from .engine import Engine
from .errors import XmodalError
from .eval.metrics import METRICS
from .eval.runner import EvalQuery, evaluate, read_queries
from .ingest.catalog import add_catalogs, estimate_records
from .ingest.prepare import Rejection
from .ltr.extension import autotuner, deferred_tuning, pipeline
from .records import Query, Target
from .results import SearchResult
from .samples import DEFAULT_SIZE, Catalog, build_catalog

MARKER = "demo.json"
HIDDEN = frozenset({"folder", "grayscale", "product"})  # attributes left out of the printed results


@dataclass(frozen=True, slots=True)
class Example:
    """One example search: what it shows and the query (an image path is relative to the catalog folder)."""

    label: str
    text: str | None = None
    image: str | None = None  # relative to the catalog folder
    filters: dict[str, Any] = field(default_factory=dict)
    target: str = Target.ANY


EXAMPLES = (
    Example("text", text="a cup of coffee"),
    Example("text", text="cat"),
    Example("text", text="an astronaut in a space suit"),
    Example(
        "image: a mirrored crop of the cat photo (not in the catalog)",
        image="queries/photo/chelsea-flipped.png",
        target=Target.IMAGE,
    ),
    Example(
        "image: the stereo pair's other view of the motorcycle (not in the catalog)",
        image="queries/photo/motorcycle-right.png",
        target=Target.IMAGE,
    ),
    Example(
        "text+image: the cat photo's crop and the word 'tiger'", text="tiger", image="queries/photo/chelsea-flipped.png"
    ),
    Example("filtered: clip-art only", text="cat", filters={"kind": "clipart"}),
    Example("filtered: WordNet nouns only", text="a vehicle with wheels", filters={"source": "wordnet", "pos": "noun"}),
    Example("text → image vectors only, clip-art", text="a guitar", filters={"kind": "clipart"}, target=Target.IMAGE),
    Example(
        "text → image vectors only, one category",
        text="a red car",
        filters={"category": "transportation"},
        target=Target.IMAGE,
    ),
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        catalog = _catalog(args)
        with _index(args, catalog) as engine:
            for example in EXAMPLES:
                _show(example, engine, catalog, args.k)
            if not args.no_media:
                for label, text in demo_media.EXAMPLES:
                    _show_segments(label, text, engine)
            if not args.no_eval:
                _score(engine, catalog)
    except (XmodalError, OSError, FileExistsError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m xmodal.demo", description="Build, index, search and score the sample catalog."
    )
    p.add_argument("--size", type=int, default=DEFAULT_SIZE, help="clip-art images (WordNet entries: twice as many)")
    p.add_argument("--encoder", default="offline", help="encoder for a new index (default: offline)")
    p.add_argument("--data", type=Path, default=Path(".cache/samples"), help="where the catalog is cached")
    p.add_argument("--index", type=Path, default=Path("demo-index"), help="index folder (default: demo-index)")
    p.add_argument("--index-kind", default=None, help="vector index for a new index (default: the engine's, auto)")
    p.add_argument("-k", type=int, default=5, help="results shown per example search")
    p.add_argument("--rebuild", action="store_true", help="rebuild the catalog and the index")
    p.add_argument("--no-eval", action="store_true", help="skip scoring the query set")
    p.add_argument("--no-media", action="store_true", help="leave out the PDF, narration and video")
    return p


def _catalog(args: argparse.Namespace) -> Catalog:
    start = time.perf_counter()
    catalog = build_catalog(args.data / f"size-{args.size}", args.size, force=args.rebuild)
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(catalog.counts.items()) if kind not in ("items", "queries"))
    print(
        f"sample catalog: {catalog.counts.get('items', 0)} items ({counts}), {catalog.counts.get('queries', 0)} "
        f"judged queries in {catalog.root} ({time.perf_counter() - start:.1f} s)"
    )
    for note in catalog.skipped:
        print(f"  note: {note}")
    return catalog


def _fingerprint(catalog: Catalog, encoder: str, index_kind: str | None, media: bool) -> dict[str, str]:
    digest = hashlib.sha256(catalog.catalog.read_bytes()).hexdigest()
    out = {"catalog": digest, "encoder": encoder, "index": index_kind or "default"}
    return out | ({"media": str(demo_media.VERSION)} if media else {})


def _index(args: argparse.Namespace, catalog: Catalog) -> Engine:
    """Open the demo index, building it first unless it already holds this catalog."""
    wanted = _fingerprint(catalog, args.encoder, args.index_kind, not args.no_media)
    marker = args.index / MARKER
    have = json.loads(marker.read_text()) if marker.is_file() else None
    if have == wanted and not args.rebuild:
        engine = Engine.open(args.index)
        print(f"index: reusing {args.index} ({len(engine)} items, encoder {engine.encoder.name})")
        _tune_if_due(engine)
        return engine
    if args.index.exists() and any(args.index.iterdir()):
        if have is None:
            raise FileExistsError(f"{args.index} is not a demo index (no {MARKER}); pass another --index folder")
        shutil.rmtree(args.index)
    return _build(args, catalog, wanted)


def _build(args: argparse.Namespace, catalog: Catalog, wanted: dict[str, str]) -> Engine:
    from tqdm import tqdm

    start, cpu = time.perf_counter(), time.process_time()
    engine = Engine.open(args.index, encoder=args.encoder, index=args.index_kind)
    try:
        total = estimate_records(catalog.catalog)
        with deferred_tuning(engine) as tuner:  # the default mode self-tunes once, on the whole catalog
            # disable=None: a bar on a terminal only (a log or a pipe gets the summary line below, no bar)
            with tqdm(total=total, desc="indexing", unit="item", file=sys.stderr, leave=False, disable=None) as bar:
                report = add_catalogs(engine, [catalog.catalog], progress=bar.update)
            if not args.no_media:
                _add_media(engine, args.data / "media")
        took, cpu = time.perf_counter() - start, time.process_time() - cpu
        waited = time.perf_counter()
        if tuner is not None:
            tuner.wait()
        tuning = time.perf_counter() - waited
        engine.checkpoint()
    except BaseException:
        engine.close()
        raise
    print(
        f"index: built {args.index} with encoder {engine.encoder.name} ({engine.encoder.dim}-d): "
        f"{len(report.added)} items in {took:.1f} s ({len(report.added) / took:.0f} items/s; {cpu:.0f} s of CPU)"
    )
    if tuner is not None:
        print(f"index: the default mode's self-tuning took {tuning:.1f} s more: {pipeline(engine).tuned_status}")
    for rejection in report.rejected[:5]:
        print(f"  rejected {rejection.where}: {rejection.reason}")
    (args.index / MARKER).write_text(json.dumps(wanted))
    return engine


def _tune_if_due(engine: Engine) -> None:
    """Fit the default mode on a reused index that is due a fit (built before self-tuning, or its fit skipped),
    so that its searches are those of a fresh build."""
    tuner = autotuner(engine)
    if tuner is None or not tuner.consider():  # started only when one is due
        return
    waited = time.perf_counter()
    tuner.wait()
    tuning = time.perf_counter() - waited
    print(f"index: the default mode's self-tuning took {tuning:.1f} s: {pipeline(engine).tuned_status}")


def _add_media(engine: Engine, folder: Path) -> None:
    start = time.perf_counter()
    made = demo_media.make(folder)
    for note in made.notes:
        print(f"  note: {note}")
    added, rejected = demo_media.add(engine, made.files)
    names = ", ".join(p.name for p in made.files) or "none"
    print(f"media: added {names} as {added} items (pages, 8 s windows, shots) in {time.perf_counter() - start:.1f} s")
    for rejection in rejected[:5]:
        print(f"  rejected {rejection.where}: {rejection.reason}")


def _show_segments(label: str, text: str, engine: Engine) -> None:
    start = time.perf_counter()
    hits = list(demo_media.segments_of(engine, text))
    print(f'\n── {label}: "{text}" ({(time.perf_counter() - start) * 1000:.0f} ms)')
    if not hits:
        print("   (no segments: the media were not added)")
    for rank, (score, item) in enumerate(hits, 1):
        span = item.span
        where = (
            f"page {span.page}"
            if span is not None and span.page is not None
            else f"{clock(span.start or 0.0)}–{clock(span.end or 0.0)}"
            if span is not None
            else ""
        )
        said = " ".join(item.text.split())[:60]
        print(f"  {rank:>2}  {score:.3f}  {str(item.parent)[:24]:<24}  {where:<13}  {said}")


def clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def _show(example: Example, engine: Engine, catalog: Catalog, k: int) -> None:
    if example.image is not None and not (catalog.root / example.image).is_file():
        print(f"\n── {example.label}: skipped, {example.image} is not in this catalog")
        return
    query = Query(text=example.text, image=example.image, filters=example.filters, k=k, target=example.target)
    result = engine.search(query, base_dir=catalog.root)
    print("\n" + _heading(example, result))
    if not len(result.hits):
        print("   (no results)")
    for rank, ((item_id, score), item) in enumerate(zip(result.hits, result.items, strict=True), 1):
        attrs = " ".join(f"{key}={value}" for key, value in sorted(item.attributes.items()) if key not in HIDDEN)
        title = item.title or "(image only)"
        print(f"  {rank:>2}  {score:.3f}  {item_id[:40]:<40}  {item.modality.value:<10}  {title[:30]:<30}  {attrs}")


def _heading(example: Example, result: SearchResult) -> str:
    parts = [f'"{example.text}"'] if example.text else []
    if example.image:
        parts.append(f"image {example.image}")
    parts += [f"--where {key}={value}" for key, value in example.filters.items()]
    if example.target != Target.ANY:
        parts.append(f"--target {example.target}")
    return f"── {example.label}: {' '.join([' + '.join(parts[:2]), *parts[2:]])} ({result.took_ms:.0f} ms)"


def _score(engine: Engine, catalog: Catalog) -> None:
    """Score the judged queries per kind of query, then all together (the mean over every query)."""
    kinds = [
        str(json.loads(line).get("kind", "other")) for line in catalog.queries.read_text().splitlines() if line.strip()
    ]
    groups: dict[str, list[EvalQuery | Rejection]] = defaultdict(list)
    for kind, entry in zip(kinds, read_queries(catalog.queries), strict=True):
        groups[kind].append(entry)
    start = time.perf_counter()
    print(f"\nevaluation on {catalog.queries} (top 10, target any):")
    print(f"  {'queries':<18} {'n':>5}  " + "  ".join(f"{name:>9}" for name in METRICS))
    sums, total = dict.fromkeys(METRICS, 0.0), 0
    for kind in sorted(groups):
        report = evaluate(engine, groups[kind], base_dir=catalog.root, k=10)
        _row(kind, report.queries, report.metrics)
        total += report.queries
        for name in METRICS:
            sums[name] += report.metrics.get(name, 0.0) * report.queries
        for rejection in report.skipped[:3]:
            print(f"    skipped {rejection.where}: {rejection.reason}")
    _row("all", total, {name: value / max(total, 1) for name, value in sums.items()})
    print(f"  ({time.perf_counter() - start:.1f} s)")


def _row(kind: str, n: int, metrics: dict[str, float]) -> None:
    figures = "  ".join(f"{metrics.get(name, 0.0):>9.3f}" for name in METRICS)
    print(f"  {kind:<18} {n:>5}  {figures}")


if __name__ == "__main__":
    sys.exit(main())
