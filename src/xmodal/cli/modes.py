"""``xmodal modes``: every search mode, one line each with its description."""

from __future__ import annotations

import argparse
from typing import Any

from ..modes import describe_modes
from .common import mode_lines, print_json


def register(subparsers: Any) -> None:
    """Add the ``modes`` subcommand (it needs no index)."""
    parser = subparsers.add_parser("modes", help="list the search modes, one line each")
    parser.add_argument("--json", action="store_true", help="print JSON: a list of {name, description}")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.json:
        print_json([{"name": name, "description": line} for name, line in describe_modes().items()])
    else:
        print("\n".join(mode_lines()))
    return 0
