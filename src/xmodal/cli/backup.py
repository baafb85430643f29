"""``xmodal backup DEST`` and ``xmodal restore BACKUP [--replace]``.

``backup`` works on the folder without opening the index (no model, no catalog load), so it runs beside a
server that keeps serving and writing (:mod:`xmodal.store.backup`). ``restore`` verifies, checks and swaps
(:mod:`xmodal.restore`); it refuses an index that a server or command has open.

With ``--index postgres://…`` both work on the index's PostgreSQL schema and media folder
(:mod:`xmodal.store.postgres_backup`: ``pg_dump`` in one snapshot; a restore in one transaction).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..location import is_postgres, parse_postgres
from ..restore import restore
from ..store.backup import write_backup
from ..store.postgres_backup import is_pg_backup, restore_pg, write_pg_backup
from .common import UsageError, print_json


def register(subparsers: Any) -> None:
    """Add ``backup`` and ``restore`` to the ``xmodal`` parser (``--index DIR`` is a global option)."""
    backup = subparsers.add_parser(
        "backup",
        help="copy the index into a new folder, consistent while a server keeps serving and writing",
        description="Back up the index (store, media and derived state, with a manifest of checksums) into the "
        "new folder DEST. Safe while `xmodal serve` runs and writes continue: the backup holds every write "
        "acknowledged before it started.",
    )
    backup.add_argument("destination", metavar="DEST", help="a new folder for the backup (must not exist)")
    backup.add_argument("--json", action="store_true", help="print the summary as JSON")
    backup.set_defaults(handler=run_backup)

    restore_cmd = subparsers.add_parser(
        "restore",
        help="restore a backup into the index folder (verified and checked before it replaces anything)",
        description="Restore the backup folder BACKUP into --index DIR: every file's checksum is verified and "
        "the restored index is checked before it takes the place of DIR; a failed restore leaves DIR as it "
        "was. An index open in a server or command is never replaced: stop it first.",
    )
    restore_cmd.add_argument("backup", metavar="BACKUP", help="the folder `xmodal backup` wrote")
    restore_cmd.add_argument("--replace", action="store_true", help="replace the index already in DIR")
    restore_cmd.add_argument("--json", action="store_true", help="print the summary as JSON")
    restore_cmd.set_defaults(handler=run_restore)


def run_backup(args: argparse.Namespace) -> int:
    if args.index and is_postgres(str(args.index)):
        manifest = write_pg_backup(parse_postgres(str(args.index)), Path(args.destination))
    else:
        manifest = write_backup(_index(args), Path(args.destination))
    summary = {"destination": args.destination, **manifest.summary()}
    if args.json:
        print_json(summary)
        return 0
    print(
        f"backed up {manifest.items} items (change {manifest.store_seq}) to {args.destination}: "
        f"{len(manifest.files)} files, {manifest.bytes / 1e6:.1f} MB in {manifest.seconds:.1f} s"
    )
    if manifest.missing_media:
        print(f"warning: {len(manifest.missing_media)} media files the items name were missing from the index")
    return 0


def run_restore(args: argparse.Namespace) -> int:
    if args.index and is_postgres(str(args.index)):
        summary = restore_pg(Path(args.backup), parse_postgres(str(args.index)), replace=args.replace)
        if args.json:
            print_json(summary)
        else:
            print(
                f"restored {summary['items']} items (change {summary['store_seq']}) into {summary['index']} from "
                f"{summary['backup']} in {summary['seconds']:.1f} s"
                f"{' (the old index was replaced)' if summary['replaced'] else ''}; "
                "each server rebuilds its vectors from the store on opening"
            )
        return 0
    if is_pg_backup(Path(args.backup)):
        raise UsageError(f"{args.backup} is a backup of a postgres:// index: restore it with --index postgres://…")
    report = restore(Path(args.backup), _index(args), replace=args.replace)
    if args.json:
        print_json(report.to_dict())
        return 0
    print(
        f"restored {report.items} items (change {report.store_seq}) into {report.index} from {report.backup} "
        f"in {report.seconds:.1f} s{' (the old index was replaced)' if report.replaced else ''}"
    )
    for line in report.repaired:
        print(f"repaired: {line}")
    return 0


def _index(args: argparse.Namespace) -> Path:
    if not args.index:
        raise UsageError("no index folder: pass --index DIR (or set XMODAL_INDEX)")
    return Path(args.index)
