"""``xmodal reindex``: move an index to another encoder while it keeps serving (:mod:`xmodal.migration`).

``reindex --encoder NAME [--encoder-option k=v …]`` starts (or resumes) building the new vectors beside the
old ones; ``reindex`` alone resumes; ``--status`` shows progress; ``--switch`` makes them the index's in one
transaction; ``--abort`` drops them; ``--drop-previous`` drops the previous vector epoch's Milvus collection
(a ``postgres://`` index with ``vectors=milvus://…``: kept after a switch for the servers still following it).
``xmodal eval QUERIES --encoder next`` scores them before the switch.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .common import UsageError, encoder_options, engine_of, print_json, progress_bar


def register(subparsers: Any) -> None:
    """Add the ``reindex`` subcommand."""
    parser = subparsers.add_parser(
        "reindex",
        help="re-embed the index with another encoder while it serves; --status, --switch, --abort",
        description="Builds the new vectors beside the old ones (resumable: stop it and run it again), replaying "
        "the items added, updated or deleted meanwhile; searches keep using the old vectors until --switch, "
        "which swaps vectors and encoder in one transaction. Score both first with "
        "`xmodal eval QUERIES --encoder current|next|both`.",
    )
    parser.add_argument("--encoder", metavar="NAME", default=None, help="the new encoder (to start a reindex)")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--status", action="store_true", help="show the progress of the reindex under way")
    action.add_argument("--switch", action="store_true", help="switch the index to the new vectors (atomically)")
    action.add_argument("--abort", action="store_true", help="drop the new vectors; the index keeps its encoder")
    action.add_argument(
        "--drop-previous",
        action="store_true",
        help="drop the previous vector epoch's Milvus collection now (kept after a switch or restore for servers "
        "still following it; older ones go on their own)",
    )
    parser.add_argument("--batch", type=int, default=256, metavar="N", help="items encoded per batch (default: 256)")
    parser.add_argument(
        "--priority",
        type=int,
        default=10,
        metavar="NICE",
        help="CPU niceness of the build, so searches keep their latency (default: 10; 0 for full speed)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..migration import Reindex

    if not args.index:
        raise UsageError("no index folder: pass --index DIR (or set XMODAL_INDEX)")
    if args.batch < 1:
        raise UsageError(f"--batch must be at least 1, got {args.batch}")
    options = encoder_options(getattr(args, "encoder_option", None) or [])
    if args.encoder is None and options and (args.status or args.abort):
        raise UsageError("--encoder-option goes with --encoder NAME (or a resumed run or --switch that needs a key)")
    if args.encoder is not None and (args.status or args.switch or args.abort or args.drop_previous):
        raise UsageError("--encoder starts a reindex: give it alone, then --switch once it is complete")
    if args.drop_previous:
        return _drop_previous(args)
    with Reindex(args.index, options) as job:
        if args.status:
            return _show(job.status(), args.json)
        if args.abort:
            dropped = job.abort()
            _say(args, {"aborted": dropped}, "dropped the new vectors" if dropped else "no reindex was under way")
            return 0
        if args.switch:
            summary = job.switch()
            _say(args, summary, f"switched from {summary['from']} to {summary['to']}")
            for name in summary["stale"]:
                print(f"stale now: {name} (see `xmodal info`)", file=sys.stderr)
            return 0
        status = job.start(args.encoder, options) if args.encoder else job.status()
        if status["state"] == "none":
            raise UsageError("no reindex is under way: start one with `xmodal reindex --encoder NAME`")
        if args.priority:
            os.nice(args.priority)
        left = status["total"] - status["done"]
        with progress_bar(max(left, 0), f"reindex → {status['next']['name']}", "item", quiet=args.quiet) as bar:
            try:
                status = job.run(progress=bar.update, batch=args.batch)
            except KeyboardInterrupt:
                print("interrupted: run `xmodal reindex` again to continue where it stopped", file=sys.stderr)
                return 130
    return _show(status, args.json)


def _drop_previous(args: argparse.Namespace) -> int:
    """Drop the Milvus collections of every vector epoch but the current one (opening the index drops those
    older than the previous one): once no server still serves the previous epoch."""
    with engine_of(args) as engine:
        drop = getattr(engine.backend, "drop_old", None)
        dropped: list[str] = list(drop(keep_previous=False)) if callable(drop) else []
    text = f"dropped {', '.join(dropped)}" if dropped else "no collection of an older vector epoch to drop"
    _say(args, {"dropped": dropped}, text)
    return 0


def _say(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    if args.json:
        print_json(data)
    else:
        print(text)


def _show(status: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print_json(status)
        return 0
    if status["state"] == "none":
        print(f"no reindex under way (encoder {status['current_encoder']})")
        return 0
    print(f"current     {status['current_encoder']}")
    print(f"next        {status['next_encoder']}")
    print(f"progress    {status['done']}/{status['total']} items ({status['percent']}%), state {status['state']}")
    print(f"behind      {status['changes_behind']} change(s) to replay (done by the next run or --switch)")
    for failure in status["failures"]:
        print(f"refused     {failure['id']}: {failure['reason']}")
    if status["state"] == "ready":
        print("next step   `xmodal eval QUERIES --encoder both`, then `xmodal reindex --switch` (or --abort)")
    elif status["state"] == "building":
        print("next step   `xmodal reindex` to continue")
    return 0
