"""Collection commands: ``count`` (with a filter), ``update`` (attributes, no re-encoding), the filter and
``--all`` forms of ``delete``, ``get`` of several ids and ``search --queries`` (a batch)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..audit import acting_as
from ..batch import member_position
from ..errors import ValidationError
from ..records import Query
from ..view import item_view, items_view
from .common import (
    UsageError,
    add_filter_options,
    cli_actor,
    engine_of,
    filters_of,
    guarded_as,
    print_json,
    query_options,
    shorten,
)


def register(subparsers: Any) -> None:
    """Add ``count`` and ``update`` to the ``xmodal`` parser."""
    count = subparsers.add_parser("count", help="count the items (that match a filter)")
    add_filter_options(count)
    count.add_argument("--json", action="store_true", help="print JSON")
    count.set_defaults(handler=run_count)

    update = subparsers.add_parser(
        "update",
        help="set an item's attributes without encoding it again",
        description="Update an item's attributes; title, text, media and vectors are kept as they are.",
    )
    update.add_argument("id", help="the stored item's id")
    update.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help='an attribute; VALUE is read as JSON when it is JSON (12, true, null, ["a","b"], {"brand":"x"}), '
        "else as text; repeat",
    )
    update.add_argument("--replace", action="store_true", help="replace all the attributes (default: merge)")
    update.add_argument("--json", action="store_true", help="print the updated item as JSON")
    update.set_defaults(handler=run_update)


def add_delete_options(parser: argparse.ArgumentParser) -> None:
    """The filter and ``--all`` forms of ``delete`` (its ids become optional)."""
    add_filter_options(parser)
    parser.add_argument("--all", action="store_true", help="delete every item (with --yes)")
    parser.add_argument("--yes", action="store_true", help="confirm a delete by filter or --all")
    parser.add_argument(
        "--purge-feedback",
        action="store_true",
        help="also drop the feedback log's events of the deleted items (by default it keeps only their ids)",
    )


def run_count(args: argparse.Namespace) -> int:
    filters = filters_of(args)
    with engine_of(args) as engine:
        found = engine.count(filters, strict=args.strict)
    print_json({"count": found}) if args.json else print(found)
    return 0


def run_update(args: argparse.Namespace) -> int:
    if not args.set and not args.replace:
        raise UsageError("give at least one --set NAME=VALUE (e.g. --set color=red)")
    attributes = dict(_set_arg(value) for value in args.set)
    with engine_of(args) as engine:
        item = engine.update_attributes(args.id, attributes, merge=not args.replace)
    if args.json:
        print_json(item_view(item))
    else:
        print(f"updated {item.id}: {json.dumps(item.attributes, ensure_ascii=False)}")
    return 0


def _set_arg(value: str) -> tuple[str, Any]:
    name, sep, raw = value.partition("=")
    if not sep or not name:
        raise UsageError(f"--set {value!r} is not NAME=VALUE (write e.g. --set color=red)")
    try:
        return name, json.loads(raw)
    except ValueError:
        return name, raw


def run_delete_where(args: argparse.Namespace) -> int:
    """``delete --where …`` / ``--filter …`` / ``--all``: refused without ``--yes``, and with ids."""
    filters = filters_of(args)
    if args.ids:
        raise UsageError("give ids, or --where/--filter/--all, not both")
    if args.all and filters:
        raise UsageError("--all deletes every item: drop --where/--filter, or drop --all to delete the matches")
    if not args.all and not filters:
        raise UsageError("the filter is empty: it would delete every item (to do that, use --all --yes)")
    if not args.yes:
        what = "every item" if args.all else "every item that matches the filter"
        raise UsageError(f"this deletes {what}; add --yes to confirm (`xmodal count` with the filter says how many)")
    purge = args.purge_feedback
    with engine_of(args) as engine, acting_as(cli_actor()):
        deleted = (
            engine.clear(purge_feedback=purge)
            if args.all
            else engine.delete_where(filters, strict=args.strict, purge_feedback=purge)
        )
    if args.json:
        print_json({"deleted": deleted})
    else:
        print(f"deleted {deleted} item{'s' * (deleted != 1)}")
    return 0


def add_search_batch_options(parser: argparse.ArgumentParser) -> None:
    """``search --queries FILE`` (a batch) and ``--with-vectors``."""
    parser.add_argument(
        "--queries",
        metavar="FILE",
        help="search a batch: one query per line, a text or a JSON object (text, image, k, offset, filters, "
        "target, mode, group, strict; the command line's options are the defaults); prints one JSON result a line",
    )
    parser.add_argument("--with-vectors", action="store_true", help="give each hit's vector (JSON output)")
    parser.add_argument(
        "--cursor", metavar="CURSOR", help="the next page: the cursor the previous page printed (same query)"
    )


def run_search_batch(args: argparse.Namespace) -> int:
    """``search --queries FILE``: every line's query in one ``Engine.search_many`` call, one JSON line each."""
    if args.text or args.image or args.media or args.vector_file or args.log or args.cursor:
        raise UsageError(
            "--queries reads the queries from its file: drop the text, --image, --media, --vector-file, --cursor"
        )
    defaults = {**query_options(args), "offset": args.offset, "group": args.group}
    lines = _query_lines(Path(args.queries))
    queries = []
    for number, raw in lines:
        try:
            queries.append(Query(**{**defaults, **raw}))
        except (TypeError, ValidationError) as exc:
            raise UsageError(f"{args.queries} line {number}: {exc}") from None
    options = {"with_vectors": args.with_vectors, "explain": args.explain}
    with engine_of(args) as engine:
        try:
            results = engine.search_many(queries, base_dir=Path(args.queries).parent, **options)
        except ValidationError as exc:
            number, field = lines[member_position(exc.field)][0], exc.field.partition(".")[2] or exc.field
            raise UsageError(f"{args.queries} line {number}: {field}: {exc.problem}") from None
    for result in results:
        print_json(result.to_dict())
    return 0


def _query_lines(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The non-blank lines of a queries file, by line number: a JSON object, or a text (``{"text": line}``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--queries {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line) if line.lstrip().startswith("{") else {"text": line}
        except (ValueError, RecursionError) as exc:
            problem = "nested too deeply" if isinstance(exc, RecursionError) else f"not valid JSON ({exc})"
            raise UsageError(f"{path} line {number}: {problem}; write a text or a JSON object") from None
        if not isinstance(raw, dict):
            raise UsageError(f"{path} line {number}: not a JSON object")
        out.append((number, raw))
    if not out:
        raise UsageError(f"--queries {str(path)!r} holds no query (write one per line)")
    return out


def run_get_many(args: argparse.Namespace) -> int:
    """``get ID ID ...`` (or ``--with-vectors``): ``{"items": [...], "missing": [...], "withheld": {...}}``,
    screened by the guards as a search's hits are; exit status 1 when any id is missing or withheld."""
    with engine_of(args) as engine, guarded_as(args):
        fetched = engine.get_many(args.ids, with_vectors=args.with_vectors, screen=True, safe=args.safe)
    views = items_view(fetched.items, fetched.vectors)
    if args.json or args.with_vectors:
        print_json({"items": views, "missing": list(fetched.missing), "withheld": dict(fetched.withheld)})
    else:
        for view in views:
            print(f"{view['id']}\t{view['title'] or shorten(view['text'], 70)}")
    if fetched.missing:
        print(f"not found: {', '.join(fetched.missing)}", file=sys.stderr)
    for item_id, category in fetched.withheld.items():
        print(f"withheld by the guards: {item_id} (category {category!r})", file=sys.stderr)
    return 1 if fetched.missing or fetched.withheld else 0


def read_vector(path: Path) -> Any:
    """A query vector from a ``.npy`` file or a JSON list of numbers (checked by the engine), or a
    :class:`UsageError` saying what the file should hold."""
    fix = "give a .npy file or a JSON file holding one list of numbers"
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--vector-file {str(path)!r} does not exist ({fix})") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"--vector-file {str(path)!r} cannot be read: {exc} ({fix})") from None


def wants_delete_where(args: argparse.Namespace) -> bool:
    """Whether a ``delete`` command line is the filter or ``--all`` form."""
    return bool(args.all or args.where or args.filter)


__all__ = [
    "add_delete_options",
    "add_search_batch_options",
    "read_vector",
    "register",
    "run_delete_where",
    "run_get_many",
    "run_search_batch",
    "wants_delete_where",
]
