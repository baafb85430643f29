"""Collection commands: ``count`` (with a filter), ``update`` (attributes, no re-encoding) and the filter and
``--all`` forms of ``delete``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from .common import UsageError, add_filter_options, engine_of, filters_of, print_json


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
        from ..view import item_view

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
    with engine_of(args) as engine:
        deleted = engine.clear() if args.all else engine.delete_where(filters, strict=args.strict)
    if args.json:
        print_json({"deleted": deleted})
    else:
        print(f"deleted {deleted} item{'s' * (deleted != 1)}")
    return 0


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


__all__ = ["add_delete_options", "read_vector", "register", "run_delete_where", "wants_delete_where"]
