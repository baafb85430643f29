"""``xmodal audit``: the admin audit log (who deleted what, and when)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from .common import engine_of, print_json


def register(subparsers: Any) -> None:
    audit = subparsers.add_parser(
        "audit",
        help="the admin audit log: who deleted which items, when",
        description="Print the newest entries of the index's admin audit log (each delete: the actor — an API "
        "key's name, cli:<user> or library:<user> —, the ids asked for, every id deleted with the segments, the "
        "options and the time), newest first.",
    )
    audit.add_argument("--limit", type=int, default=50, help="how many entries (default 50)")
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(handler=run_audit)


def run_audit(args: argparse.Namespace) -> int:
    with engine_of(args) as engine:
        entries = engine.audit_log(max(1, args.limit))
    if args.json:
        print_json(entries)
        return 0
    for entry in entries:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(entry["at"]))
        deleted = ", ".join(entry["deleted"]) or "nothing"
        print(f"{at}Z  {entry['actor']}  {entry['action']}  {deleted}")
    if not entries:
        print("no entries")
    return 0
