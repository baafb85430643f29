"""``python -m xmodal.serve [serve|mcp] --index DIR ...``: the same as ``xmodal serve`` / ``xmodal mcp``."""

from __future__ import annotations

import argparse
import sys

from ..cli.common import add_global_options
from ..cli.serve import register


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("serve", "mcp"):
        argv = ["serve", *argv]  # global options may follow the command name here
    parser = argparse.ArgumentParser(prog="python -m xmodal.serve")
    add_global_options(parser)
    subparsers = parser.add_subparsers(dest="command", required=True)
    register(subparsers)
    for sub in subparsers.choices.values():
        add_global_options(sub)
    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
