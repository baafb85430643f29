"""``xmodal check [--full] [--repair]``: the store against the vector indexes and extensions derived from it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..check import CheckReport, check, damaged, repair
from ..errors import StorageError
from ..store.health import store_file_problems
from .common import open_engine, print_json


def register(subparsers: Any) -> None:
    """Add the ``check`` subcommand."""
    parser = subparsers.add_parser(
        "check",
        help="compare the store with the vector indexes and extensions (exit 1 when they differ)",
        description="Check that every stored item is in the catalog and the vector indexes and that each "
        "extension is caught up; exit status 1 when anything differs or the store is damaged.",
    )
    parser.add_argument("--full", action="store_true", help="SQLite integrity_check of the store (slower)")
    parser.add_argument("--repair", action="store_true", help="rebuild the derived data from the store when it differs")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        engine = open_engine(args)
    except StorageError as exc:  # a store too damaged to open: SQLite's own account of it
        report = damaged(
            Path(args.index),
            store_file_problems(Path(args.index) / "store.sqlite", full=args.full) or [str(exc)],
            full=args.full,
        )
    else:
        with engine:
            report = repair(engine, full=args.full) if args.repair else check(engine, full=args.full)
    _print(report, as_json=args.json)
    return 0 if report.ok else 1


def _print(report: CheckReport, *, as_json: bool) -> None:
    if as_json:
        print_json(report.to_dict())
        return
    for line in report.repaired:
        print(f"repaired: {line}")
    for item in report.rows:
        print(f"{'ok' if item.ok else 'MISMATCH':<9} {item.name}: store {item.store}, index {item.derived}")
    for ext in report.extensions:
        print(f"{'ok' if ext.ok else 'BEHIND':<9} extension {ext.name}: change {ext.seq} of {ext.applied_seq}")
    print(
        f"{'ok' if not report.store else 'DAMAGED':<9} store.sqlite ({'integrity' if report.full else 'quick'} check)"
    )
    for line in report.problems():
        print(f"problem: {line}")
    if not report.ok:
        print(f"fix: {report.fix()}")
