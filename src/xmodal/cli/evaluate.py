"""``xmodal eval QUERIES.jsonl``: recall@1/5/10, MRR and nDCG@10 of a judged query set."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..eval.metrics import METRICS
from ..eval.runner import evaluate, read_queries
from ..ingest.catalog import estimate_records
from .common import (
    HelpFormatter,
    UsageError,
    add_query_options,
    engine_of,
    modes_epilog,
    print_json,
    progress_bar,
    query_options,
)


def register(subparsers: Any) -> None:
    """Add the ``eval`` subcommand."""
    parser = subparsers.add_parser(
        "eval",
        help="score a query set with relevance judgments",
        description='QUERIES.jsonl holds one object a line: {"text": "...", "image": "path relative to the file", '
        '"relevant": ["id", ...]} (text or image or both; other keys ignored; bad lines are skipped '
        "and reported). -k is the search depth (MRR counts ranks within it).",
        epilog=modes_epilog(),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("queries", metavar="QUERIES.jsonl")
    add_query_options(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    options = query_options(args)
    path = Path(args.queries)
    if not path.is_file():
        raise UsageError(f"{path}: no such query file")
    with (
        engine_of(args) as engine,
        progress_bar(estimate_records(path), "evaluating", "query", quiet=args.quiet) as bar,
    ):
        report = evaluate(engine, read_queries(path), base_dir=path.parent, progress=bar.update, **options)
        mode = options.get("mode")
        if mode is not None and mode.startswith("generative") and report.queries:  # shown by `xmodal genret status`
            from ..genret.extension import note_evaluation

            note_evaluation(engine, mode, str(path), report.to_dict())
    if args.json:
        print_json(report.to_dict())
    else:
        print(f"queries     {report.queries} (k={report.k}, skipped {len(report.skipped)})")
        for name in METRICS:
            print(f"{name:<11} {report.metrics[name]:.4f}")
        if report.unknown_relevant:
            print(f"warning: {report.unknown_relevant} relevant id(s) are not in the index")
        for rejection in report.skipped:
            print(f"skipped {rejection.where}: {rejection.reason}")
    return 0 if report.queries else 1
