"""The core commands: ``add``, ``search``, ``similar``, ``get``, ``delete`` and ``info``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..audit import acting_as
from ..errors import ValidationError
from ..ingest.catalog import add_catalogs, estimate_records
from ..records import GROUPS, MAX_K, SAFE_LEVELS, Item, Query
from ..results import SearchResult
from ..snippets import snippet
from ..splitters import CHUNK_CHARS, MAX_PAGES, OVERLAP_CHARS, SplitOptions
from ..view import item_view
from .cluster import add_cluster_options, run_cluster_add
from .collection import (
    add_delete_options,
    add_search_batch_options,
    read_vector,
    run_delete_where,
    run_get_many,
    run_search_batch,
    wants_delete_where,
)
from .common import (
    MODES_EPILOG,
    HelpFormatter,
    StageBars,
    UsageError,
    add_guard_options,
    add_query_options,
    add_target_option,
    cli_actor,
    engine_of,
    guarded_as,
    print_json,
    progress_bar,
    query_options,
    shorten,
)


def register(subparsers: Any) -> None:
    """Add the core subcommands to the ``xmodal`` parser."""
    add = subparsers.add_parser(
        "add",
        help="add JSON Lines / CSV catalogs and folders of images",
        description="Add items; exit status 1 when any item was rejected (the report says which and why).",
    )
    add.add_argument(
        "paths",
        nargs="+",
        metavar="FILE",
        help="a .jsonl or .csv catalog, a document (PDF, .txt, .md, .html: a parent item plus one item per page "
        "or chunk), or a folder of images and documents",
    )
    add.add_argument(
        "--ocr",
        choices=["auto", "always", "never"],
        default="auto",
        help="OCR PDF pages with tesseract: auto (pages without a text layer, and scans; default), always, never",
    )
    add.add_argument(
        "--audio-segments",
        choices=["windows", "turns"],
        default="windows",
        help="split sound files into fixed windows with overlap (default) or speaker turns (cut where the voice "
        "changes; needs the audio extra)",
    )
    add.add_argument(
        "--pages-from-images",
        action="store_true",
        help="read image files as pages of documents (scans: OCR'd, one item per page of a multi-page TIFF) "
        "instead of as image items",
    )
    add.add_argument(
        "--max-pages",
        type=int,
        default=MAX_PAGES,
        metavar="N",
        help=f"refuse a document of more than N pages or chunks (default: {MAX_PAGES})",
    )
    add.add_argument(
        "--chunk-chars",
        type=int,
        default=CHUNK_CHARS,
        metavar="N",
        help=f"characters per chunk of a long text file (default: {CHUNK_CHARS})",
    )
    add.add_argument(
        "--overlap-chars",
        type=int,
        default=OVERLAP_CHARS,
        metavar="N",
        help=f"characters a chunk repeats from the one before (default: {OVERLAP_CHARS})",
    )
    add.add_argument(
        "--allow-outside-images",
        action="store_true",
        help="let catalog image paths leave the catalog's folder (absolute or ../ paths, links to outside)",
    )
    add.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="follow symbolic links under a folder of images (rejected otherwise); a link must lead inside "
        "the folder unless --allow-outside-images is given too",
    )
    add.add_argument(
        "--name-as-text",
        action="store_true",
        help="embed the file names of a folder's images as their text (image+text items)",
    )
    add.add_argument("--json", action="store_true", help="print the report as JSON")
    add.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_cluster_options(add)
    add.set_defaults(handler=run_add)

    search = subparsers.add_parser(
        "search", help="search with a text and/or an image", epilog=MODES_EPILOG, formatter_class=HelpFormatter
    )
    search.add_argument("text", nargs="?", default="", help="query text")
    search.add_argument("--image", metavar="PATH", help="query image")
    search.add_argument(
        "--audio", metavar="PATH", help="query sound: items that sound like it (an index made with --encoder audio)"
    )
    search.add_argument(
        "--media",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a query medium by its loader's name (e.g. image=cat.png, or package.module:Loader=file); repeat",
    )
    add_query_options(search)
    search.add_argument(
        "--group",
        choices=[g for g in GROUPS if g],
        default=None,
        help="one hit per parent item (the best segment of each document or video)",
    )
    search.add_argument(
        "--safe",
        choices=SAFE_LEVELS,
        default=None,
        help="SafeSearch level for sensitive images and toxic text in the hits: strict (left out), moderate "
        "(the guards policy; default) or off (shown); --json shows why a hit is flagged under 'guard'",
    )
    search.add_argument(
        "--vector-file",
        metavar="PATH",
        help="search with your own query vector instead of text: a .npy file or a JSON list of numbers",
    )
    search.add_argument(
        "--offset", type=int, default=0, metavar="N", help="skip the first N hits (the next page; default: 0)"
    )
    add_search_batch_options(search)
    search.add_argument("--explain", action="store_true", help="include the plan and per-hit features (JSON: explain)")
    search.add_argument("--log", action="store_true", help="log the impression; prints the query id for feedback")
    search.set_defaults(handler=run_search)

    similar = subparsers.add_parser("similar", help="items closest to a stored item (the item itself left out)")
    similar.add_argument("id", help="the stored item's id")
    similar.add_argument("-k", type=int, default=10, metavar="N", help="number of hits (default: 10)")
    add_target_option(similar)
    similar.add_argument("--json", action="store_true", help="print JSON")
    similar.set_defaults(handler=run_similar)

    get = subparsers.add_parser("get", help="show one item (or several: JSON, missing ids listed)")
    get.add_argument("ids", nargs="+", metavar="ID")
    get.add_argument("--with-vectors", action="store_true", help="include the item's vectors by kind (JSON)")
    get.add_argument("--json", action="store_true")
    add_guard_options(get, "the item (one id: withheld is an error naming the category)")
    get.set_defaults(handler=run_get)

    delete = subparsers.add_parser(
        "delete",
        help="delete items by id, by filter (--where/--filter --yes) or all (--all --yes)",
        description="Delete items (and their segments) by id; or every item that matches --where/--filter, "
        "or every item with --all: those two need --yes.",
    )
    delete.add_argument("ids", nargs="*", metavar="ID")
    add_delete_options(delete)
    delete.add_argument("--json", action="store_true")
    delete.set_defaults(handler=run_delete)

    init = subparsers.add_parser(
        "init",
        help="create an empty index with its settings (--encoder NAME --option k=v …, --dim, --backend)",
        description="Create the index folder with the encoder, dimension and backend given as global options, "
        "and print its settings; an existing index is left as it is (the options given must match it).",
    )
    init.add_argument("--json", action="store_true", help="print the index's info as JSON")
    init.set_defaults(handler=run_init)

    info = subparsers.add_parser("info", help="item counts, encoder, dimension and index kind")
    info.add_argument("--json", action="store_true")
    info.set_defaults(handler=run_info)


def run_init(args: argparse.Namespace) -> int:
    with engine_of(args, create=True) as engine:
        info = engine.info()
    if args.json:
        print_json(info)
    else:
        encoder = info["encoder"]
        print(f"index {info['path']}: encoder {encoder.get('name')}, {info['dim']} dimensions, {info['items']} items")
    return 0


def run_add(args: argparse.Namespace) -> int:
    from ..ltr.extension import deferred_tuning

    if args.max_pages < 1 or args.chunk_chars < 50 or not 0 <= args.overlap_chars < args.chunk_chars:
        raise UsageError("--max-pages must be ≥ 1, --chunk-chars ≥ 50 and 0 ≤ --overlap-chars < --chunk-chars")
    total = sum(estimate_records(p, follow_symlinks=args.follow_symlinks) or 0 for p in args.paths)
    with (
        engine_of(args, create=True) as engine,
        progress_bar(total or None, "adding", "item", quiet=args.quiet) as bar,
        StageBars(quiet=args.quiet) as stages,
    ):
        options = SplitOptions(
            max_pages=args.max_pages,
            ocr=args.ocr,
            chunk_chars=args.chunk_chars,
            overlap_chars=args.overlap_chars,
            images_as_pages=args.pages_from_images,
            progress=stages.update,
            extra={"segments": args.audio_segments},
        )
        with deferred_tuning(engine):  # one fit at the end, on the whole catalog
            if args.cluster:
                report = run_cluster_add(args, engine, options, bar)
            else:
                report = add_catalogs(
                    engine,
                    args.paths,
                    progress=bar.update,
                    allow_outside=args.allow_outside_images,
                    name_as_text=args.name_as_text,
                    follow_symlinks=args.follow_symlinks,
                    split_options=options,
                )
        _finish_tuning(engine, quiet=args.quiet)
    if args.json:
        print_json({**report.to_dict(), **getattr(args, "cluster_figures", {})})
    else:
        print(f"added {len(report.added)} item{'s' * (len(report.added) != 1)}", end="")
        print(f"; rejected {len(report.rejected)}:" if report.rejected else "")
        for rejection in report.rejected:
            print(f"  {rejection.where}: {rejection.reason}")
    return 1 if report.rejected else 0


def _finish_tuning(engine: Any, *, quiet: bool) -> None:
    """Wait for the default mode's self-tuning that the add started (:mod:`xmodal.ltr.autotune`), if any:
    a process that exits would stop it. Ctrl-C skips it (the next add starts it again)."""
    from ..ltr.extension import autotuner

    tuner = autotuner(engine)
    if tuner is None or not tuner.running:
        return
    if not quiet:
        print("self-tuning the default search mode on the catalog (Ctrl-C skips it) ...", file=sys.stderr)
    try:
        tuner.wait()
    except KeyboardInterrupt:
        print("self-tuning skipped: the next add starts it again", file=sys.stderr)


def run_search(args: argparse.Namespace) -> int:
    if args.queries is not None:
        return run_search_batch(args)
    if args.with_vectors and not args.json:
        raise UsageError("--with-vectors prints the hits' vectors as JSON: add --json")
    if args.vector_file is not None:
        return run_vector_search(args)
    options = query_options(args)
    media = dict(_media_arg(m) for m in args.media)
    if args.audio:
        media["audio"] = args.audio
    with engine_of(args) as engine:  # opened first: the index settings allow its media loaders
        try:
            query = Query(
                text=args.text or None,
                image=args.image,
                media=media,
                group=args.group,
                offset=args.offset,
                safe=args.safe,
                **options,
            )
        except ValidationError as exc:
            raise UsageError(str(exc)) from None
        options = {"log": args.log, "explain": args.explain, "with_vectors": args.with_vectors, "cursor": args.cursor}
        result = engine.search(query, base_dir=Path.cwd(), **options)
    if args.json:
        print_json(result.to_dict())
    else:
        _print_hits(result)
        if result.explain is not None:
            print_json(result.explain)
        if result.query_id is not None:
            print(f"query id: {result.query_id}")
    return 0


def run_vector_search(args: argparse.Namespace) -> int:
    """``search --vector-file``: a dense search with the caller's own vector."""
    options = query_options(args)
    if args.text or args.image or args.audio or args.media or args.group or options.pop("mode", "dense") != "dense":
        raise UsageError("--vector-file searches by the vector alone: drop the text, --image, --media, --group, --mode")
    vector = read_vector(Path(args.vector_file))
    with engine_of(args) as engine:
        result = engine.search_by_vector(
            vector, offset=args.offset, with_vectors=args.with_vectors, cursor=args.cursor, **options
        )
    print_json(result.to_dict()) if args.json else _print_hits(result)
    return 0


def _media_arg(value: str) -> tuple[str, str]:
    name, sep, path = value.rpartition("=")
    if not sep or not name or not path:
        raise UsageError(f"--media {value!r} is not NAME=PATH (write e.g. --media image=cat.png)")
    return name, path


def run_similar(args: argparse.Namespace) -> int:
    if not 1 <= args.k <= MAX_K:
        raise UsageError(f"-k must be from 1 to {MAX_K}, got {args.k} (pass e.g. -k 10)")
    with engine_of(args) as engine:
        result = engine.similar(args.id, k=args.k, target=args.target)
    if args.json:
        print_json(result.to_dict())
    else:
        _print_hits(result)
    return 0


def _print_hits(result: SearchResult) -> None:
    if not len(result.hits):
        print("no hits")
    else:
        width = max(2, *(len(shorten(item.id, 40)) for item in result.items))
        print(f"{'#':>3}  {'score':>7}  {'id':<{width}}  {'modality':<10}  title")
        for rank, ((_, score), item) in enumerate(zip(result.hits, result.items, strict=True), 1):
            title = shorten(item.title or item.text, 70) + _segment(item)
            print(f"{rank:>3}  {score:>7.4f}  {shorten(item.id, 40):<{width}}  {item.modality.value:<10}  {title}")
            if item.parent is not None and item.text and result.query_text:
                print(f"{'':>14}{snippet(item.text, result.query_text, 160)}")
    print(f"took {result.took_ms:.1f} ms (query encoding {result.encode_ms:.1f} ms)", file=sys.stderr)
    if result.next_cursor is not None:
        print(f"next page: --cursor {result.next_cursor}", file=sys.stderr)


def _segment(item: Item) -> str:
    """`` (of doc1, page 3)`` / `` (of v1, 12.5–20.0 s)`` for a segment, empty for a whole item."""
    if item.parent is None:
        return ""
    span = item.span
    where = ""
    if span is not None and span.page is not None:
        where = f", page {span.page}"
    elif span is not None and span.start is not None:
        where = f", {span.start:g}–{span.end:g} s" if span.end is not None else f", from {span.start:g} s"
    return f"  (of {shorten(item.parent, 40)}{where})"


def run_get(args: argparse.Namespace) -> int:
    if len(args.ids) > 1 or args.with_vectors:
        return run_get_many(args)
    with engine_of(args) as engine, guarded_as(args):  # screened as a search's hits: withheld is an error
        item = item_view(engine.get(args.ids[0], screen=True, safe=args.safe))
        guard = engine.item_guard(args.ids[0])
    if guard is not None:  # what the guards found in its text (flagged, or quarantined: left out of searches)
        item["guard"] = guard
    if args.json:
        print_json(item)
    else:
        for key, value in item.items():
            print(f"{key:<11} {value}")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    if wants_delete_where(args):
        return run_delete_where(args)
    if not args.ids:
        raise UsageError("give the ids to delete, or --where/--filter (or --all) with --yes")
    with engine_of(args) as engine, acting_as(cli_actor()):
        missing = [i for i in dict.fromkeys(args.ids) if i not in engine]
        deleted = engine.delete(list(dict.fromkeys(args.ids)), purge_feedback=args.purge_feedback)
    if args.json:
        print_json({"deleted": deleted, "not_found": missing})
    else:
        print(f"deleted {deleted} item{'s' * (deleted != 1)}")
        if missing:
            print(f"not found (nothing to delete): {', '.join(missing)}", file=sys.stderr)
    return 0


def run_info(args: argparse.Namespace) -> int:
    with engine_of(args) as engine:
        info = engine.info()
    if args.json:
        print_json(info)
        return 0
    modalities = ", ".join(f"{m} {n}" for m, n in sorted(info["modalities"].items())) or "none"
    segments = ", ".join(f"{m} {n}" for m, n in sorted(info.get("segments", {}).items())) or "none"
    vectors = ", ".join(f"{kind} {n}" for kind, n in info["vectors"].items()) or "none"
    encoder = info["encoder"]
    rows = [
        ("index", info["path"]),
        ("items", f"{info['items']} ({modalities})"),
        ("segments", f"{sum(info.get('segments', {}).values())} ({segments})"),
        ("vectors", vectors),
        ("encoder", f"{encoder.get('name')} ({', '.join(f'{k}={v}' for k, v in encoder.items() if k != 'name')})"),
        ("dimension", info["dim"]),
        ("backend", info["backend"]),
        ("index kind", info["index"]),
        ("attributes", ", ".join(info["attributes"]) or "none"),
    ]
    for name, guards in info.get("guards", {}).items():
        documents = ", ".join(f"{n} {status}" for status, n in guards["documents"].items())
        source = guards["policy"]["source"]
        rows.append((name, f"classifier {guards['classifier']}; items {documents}; policy {source}"))
    for name, marker in info.get("stale", {}).items():
        rows.append(("stale", f"{name}: {marker['reason']}; fix: {marker['fix']}"))
    if "reindex" in info:
        job = info["reindex"]
        rows.append(("reindex", f"to {job['encoder']}: {job['done']}/{job['total']} items (`xmodal reindex --status`)"))
    for key, value in rows:
        print(f"{key:<11} {value}")
    return 0
