"""``xmodal scroll`` (a page of items by cursor) and ``xmodal export PATH`` (JSON Lines or Parquet)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from ..collection import MAX_PAGE
from ..view import items_view
from .common import (
    UsageError,
    add_filter_options,
    add_guard_options,
    engine_of,
    filters_of,
    guarded_as,
    print_json,
    shorten,
)


def register(subparsers: Any) -> None:
    """Add ``scroll`` and ``export`` to the ``xmodal`` parser."""
    scroll = subparsers.add_parser(
        "scroll",
        help="list items (that match a filter) a page at a time",
        description="A page of the items that match the filter, in the order they were first added. The next "
        "page: the same command with --cursor (printed on stderr; in JSON, next_cursor).",
    )
    add_filter_options(scroll)
    scroll.add_argument("--limit", type=int, default=100, metavar="N", help="items per page (default: 100)")
    scroll.add_argument("--cursor", metavar="CURSOR", help="the next_cursor of the previous page")
    scroll.add_argument("--with-vectors", action="store_true", help="include each item's vectors (JSON)")
    scroll.add_argument(
        "--json", action="store_true", help='print {"items": [...], "next_cursor": ..., "withheld": {...}}'
    )
    add_guard_options(scroll, "the page (withheld items are left out and counted by category)")
    scroll.set_defaults(handler=run_scroll)

    export = subparsers.add_parser(
        "export",
        help="write the items (that match a filter) to JSON Lines or Parquet",
        description="Write every item (or those that match --where/--filter) to PATH: JSON Lines (.jsonl), or "
        "Parquet (.parquet, needs pyarrow: pip install 'xmodal[export]'). A PATH that exists is an error "
        "unless --force.",
    )
    export.add_argument("path", metavar="PATH", help="the file to write (.jsonl or .parquet)")
    export.add_argument("--format", choices=["jsonl", "parquet"], help="the format (default: by the extension)")
    add_filter_options(export)
    export.add_argument("--with-vectors", action="store_true", help="include each item's vectors")
    export.add_argument("--force", action="store_true", help="replace PATH if it exists")
    export.add_argument("--json", action="store_true", help="print the report as JSON")
    add_guard_options(export, "the items (withheld items are not written, and counted by category)")
    export.set_defaults(handler=run_export)


def run_scroll(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= MAX_PAGE:
        raise UsageError(f"--limit must be from 1 to {MAX_PAGE}, got {args.limit} (pass e.g. --limit 100)")
    if args.with_vectors and not args.json:
        raise UsageError("--with-vectors prints the vectors as JSON: add --json")
    filters = filters_of(args)
    with engine_of(args) as engine, guarded_as(args):
        page = engine.scroll(
            filters,
            limit=args.limit,
            cursor=args.cursor,
            with_vectors=args.with_vectors,
            strict=args.strict,
            safe=args.safe,
        )
    if args.json:
        views = items_view(page.items, page.vectors)
        print_json({"items": views, "next_cursor": page.next_cursor, "withheld": dict(page.withheld)})
        return 0
    for item in page.items:
        print(f"{item.id}\t{shorten(item.title or item.text, 70)}")
    if page.withheld:
        print(f"withheld by the guards: {_counted(page.withheld)}", file=sys.stderr)
    if page.next_cursor is not None:
        print(f"next page: --cursor {page.next_cursor}", file=sys.stderr)
    return 0


def run_export(args: argparse.Namespace) -> int:
    filters = filters_of(args)
    with engine_of(args) as engine, guarded_as(args):
        report = engine.export(
            args.path,
            format=args.format,
            filters=filters,
            strict=args.strict,
            with_vectors=args.with_vectors,
            force=args.force,
            safe=args.safe,
        )
    if args.json:
        print_json(report.to_dict())
    else:
        rate = report.items / report.seconds if report.seconds > 0 else 0.0
        print(f"exported {report.items} items to {report.path} ({report.format}, {rate:,.0f} items/s)")
        if report.withheld:
            print(f"withheld by the guards (not written): {_counted(report.withheld)}")
    return 0


def _counted(withheld: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {category}" for category, n in withheld.items())
