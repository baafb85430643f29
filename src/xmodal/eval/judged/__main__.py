"""``python -m xmodal.eval.judged NAME FOLDER [--items N] [--per-kind N] [--seed S]``: build a judged set."""

from __future__ import annotations

import argparse
import json
import sys
import time

from ...errors import XmodalError
from . import DEFAULT_ITEMS, DEFAULT_PER_KIND, SETS, build_set


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xmodal.eval.judged", description=__doc__)
    parser.add_argument("name", choices=sorted(SETS))
    parser.add_argument("folder")
    parser.add_argument("--items", type=int, default=DEFAULT_ITEMS, help=f"catalog size (default {DEFAULT_ITEMS})")
    parser.add_argument("--per-kind", type=int, default=DEFAULT_PER_KIND, help="queries a kind, at most")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        built = build_set(args.name, args.folder, items=args.items, per_kind=args.per_kind, seed=args.seed)
    except XmodalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    summary = {"folder": str(built.folder), "items": built.items, "queries": built.queries}
    print(json.dumps({**summary, "seconds": round(time.perf_counter() - start, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
