"""``xmodal feedback|simulate|train-ranker``: the learning-to-rank-and-retrieve commands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import UsageError, engine_of, print_json


def register(subparsers: Any) -> None:
    """Add ``feedback`` (search/event/show/stats), ``simulate`` and ``train-ranker``."""
    fb = subparsers.add_parser("feedback", help="log searches and user events (clicks, likes, adds, plays)")
    commands = fb.add_subparsers(dest="feedback_command", metavar="SUBCOMMAND")
    search = commands.add_parser("search", help="search and log the impression; prints the query_id")
    search.add_argument("text")
    search.add_argument("-k", type=int, default=10)
    search.add_argument(
        "--mode", default=None, help="search mode, see `xmodal modes` (default: the index's default mode)"
    )
    search.add_argument("--user", default=None, help="user id (for history features)")
    search.add_argument("--explain", action="store_true", help="include the plan, contributions and features")
    search.set_defaults(handler=run_search)
    event = commands.add_parser("event", help="record an event on an item shown for a logged query")
    event.add_argument("query_id")
    event.add_argument("item_id")
    event.add_argument("--event", default="click", help="click, like, add_to_cart or play (default: click)")
    event.add_argument("--position", type=int, default=None, help="1-based position it was shown at")
    event.add_argument("--value", type=float, default=None, help="optional value (e.g. a price or seconds played)")
    event.set_defaults(handler=run_event)
    show = commands.add_parser("show", help="a logged impression and its events")
    show.add_argument("query_id")
    show.set_defaults(handler=run_show)
    stats = commands.add_parser("stats", help="counts of logged impressions and events")
    stats.set_defaults(handler=run_stats)
    fb.set_defaults(handler=lambda args: _usage())

    sim = subparsers.add_parser("simulate", help="simulated users on WordNet: bandit vs fixed strategy sets")
    sim.add_argument("--items", type=int, default=3000, help="catalog size (default: 3000)")
    sim.add_argument("--searches", type=int, default=2000, help="simulated searches (default: 2000)")
    sim.add_argument("--budget", type=int, default=100, help="candidates per query (default: 100)")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--out", default="simulation", help="folder for the JSON and PNG (default: ./simulation)")
    sim.set_defaults(handler=run_simulate)

    train = subparsers.add_parser("train-ranker", help="train the LightGBM lambdarank ranker from the feedback log")
    train.add_argument("--naive", action="store_true", help="no propensity correction (for comparison)")
    train.add_argument("--trees", type=int, default=150, help="boosting rounds (default: 150)")
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(handler=run_train)


def _usage() -> int:
    raise UsageError("give a subcommand: search, event, show or stats")


def run_search(args: argparse.Namespace) -> int:
    if not 1 <= args.k <= 1000:
        raise UsageError(f"-k must be from 1 to 1000, got {args.k}")
    with engine_of(args) as engine:
        mode = {} if args.mode is None else {"mode": args.mode}  # none given: the index's default mode
        result = engine.search(args.text, k=args.k, user=args.user, log=True, explain=args.explain, **mode)
        print_json(result.to_dict())
    return 0


def run_event(args: argparse.Namespace) -> int:
    with engine_of(args) as engine:
        engine.feedback(args.query_id, args.item_id, args.event, position=args.position, value=args.value)
        print_json({"ok": True, "query_id": args.query_id, "item_id": args.item_id, "event": args.event})
    return 0


def run_show(args: argparse.Namespace) -> int:

    with engine_of(args) as engine:
        log = engine.feedback_log
        imp = log.impression(args.query_id)
        events = [
            {"item_id": e.item_id, "event": e.event, "position": e.position, "value": e.value, "timestamp": e.timestamp}
            for e in log.events(args.query_id)
        ]
        print_json(
            {
                "query_id": imp.query_id,
                "query": imp.query,
                "normalized": imp.normalized,
                "user": imp.user,
                "mode": imp.mode,
                "timestamp": imp.timestamp,
                "context": imp.context,
                "plan": imp.plan,
                "shown": list(imp.shown),
                "provenance": list(imp.provenance),
                "events": events,
            }
        )
    return 0


def run_stats(args: argparse.Namespace) -> int:

    with engine_of(args) as engine:
        print_json(engine.feedback_log.counts())
    return 0


def run_simulate(args: argparse.Namespace) -> int:
    from ..ltr.simreport import bandit_benchmark, build, write_report

    if args.items < 100 or args.searches < 10 or args.budget < 1:
        raise UsageError("--items must be >= 100, --searches >= 10 and --budget >= 1")
    sim = build(args.items, args.searches, budget=args.budget, seed=args.seed)
    result = bandit_benchmark(sim)
    files = write_report(result, Path(args.out))
    summary = {k: v for k, v in result.items() if not k.startswith("_") and k != "per_kind"}
    print_json({**summary, "files": [str(f) for f in files]})
    return 0


def run_train(args: argparse.Namespace) -> int:
    from ..ltr.train import train_ranker

    if args.trees < 1:
        raise UsageError(f"--trees must be at least 1, got {args.trees}")
    with engine_of(args) as engine:
        print_json(train_ranker(engine, ipw=not args.naive, seed=args.seed, n_estimators=args.trees))
    return 0
