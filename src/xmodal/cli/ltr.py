"""``xmodal feedback|simulate|train-ranker|ltr``: the learning-to-rank-and-retrieve commands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import ConfigError, XmodalError
from ..provenance import names_of
from .common import HelpFormatter, UsageError, engine_of, print_json, progress_bar

STRATEGIES_HELP = """\
The learned search mode draws candidates from strategies. Which ones an index uses is saved in
<index>/ltr/strategies.json (default: lexical, structured, dense, memory, explore, generative;
dense gives one strategy per vector kind the index has, generative is available once
`xmodal genret train` has trained a model). A strategy is a registry name (built-in, or an
entry point of the group xmodal.strategies of an installed package) or a dotted path
'package.module:Name' to a Strategy class (built as Name(context), with a `name` and
`retrieve(query, depth, *, vector=None) -> Hits`) or to a factory with `build(context)`.

  xmodal --index DIR ltr strategies list
  xmodal --index DIR ltr strategies add mypackage.strategies:MyStrategy
  xmodal --index DIR ltr strategies remove generative
  xmodal --index DIR ltr strategies set lexical dense memory explore
  xmodal --index DIR ltr strategies reset

A change takes effect when the index is next opened (a running server: restart it); the policy keeps
what it learned for every strategy it knew and gives a new one a fresh arm."""

EXPLORE_HELP = """\
Exploration shows items no relevance strategy would, so that feedback reaches them. Its settings are
saved in <index>/ltr/exploration.json:
  --budget   the share of eligible searches that may explore (default 0.2; 0 turns it off)
  --calls    which searches may explore: identified (logged, naming a user; the default), logged
             (anonymous logged searches too) or all (also searches that are not logged)
  --top      the best position an explored item may take without evidence (default 4)

  xmodal --index DIR ltr explore show
  xmodal --index DIR ltr explore set --budget 0.1 --calls logged
  xmodal --index DIR ltr explore reset

A change takes effect when the index is next opened (a running server: restart it)."""


def register(subparsers: Any) -> None:
    """Add ``feedback`` (search/event/show/stats), ``simulate``, ``train-ranker`` and ``ltr strategies``."""
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
    _register_strategies(subparsers)


def _register_strategies(subparsers: Any) -> None:
    ltr = subparsers.add_parser(
        "ltr",
        help="the learned pipeline's settings (its strategies, exploration)",
        description=STRATEGIES_HELP,
        formatter_class=HelpFormatter,
    )
    ltr_commands = ltr.add_subparsers(dest="ltr_command", metavar="SUBCOMMAND")
    ltr.set_defaults(handler=lambda args: _fail("give a subcommand: strategies, explore, tune or autotune"))
    strat = ltr_commands.add_parser(
        "strategies",
        help="list, add or remove the strategies of the learned search mode",
        description=STRATEGIES_HELP,
        formatter_class=HelpFormatter,
    )
    commands = strat.add_subparsers(dest="strategies_command", metavar="SUBCOMMAND")
    strat.set_defaults(handler=lambda args: _fail("give a subcommand: list, add, remove, set or reset"))
    listing = commands.add_parser("list", help="the configured strategies, what each builds, and what is installed")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=run_strategies_list)
    add = commands.add_parser("add", help="add a strategy (registry name or package.module:Name)")
    add.add_argument("name")
    add.set_defaults(handler=run_strategies_add)
    remove = commands.add_parser("remove", help="remove a strategy from the list")
    remove.add_argument("name")
    remove.set_defaults(handler=run_strategies_remove)
    given = commands.add_parser("set", help="replace the list (in plan order of preference)")
    given.add_argument("names", nargs="+")
    given.set_defaults(handler=run_strategies_set)
    reset = commands.add_parser("reset", help="back to the default strategies")
    reset.set_defaults(handler=run_strategies_reset)
    explore = ltr_commands.add_parser(
        "explore",
        help="show or change the exploration settings (budget, which calls, top position)",
        description=EXPLORE_HELP,
        formatter_class=HelpFormatter,
    )
    commands = explore.add_subparsers(dest="explore_command", metavar="SUBCOMMAND")
    explore.set_defaults(handler=lambda args: _fail("give a subcommand: show, set or reset"))
    commands.add_parser("show", help="the settings in use").set_defaults(handler=run_explore_show)
    change = commands.add_parser("set", help="change one or more settings (the others keep theirs)")
    change.add_argument("--budget", type=float, help="share of eligible searches that may explore, 0 to 1")
    change.add_argument("--calls", help="identified, logged or all")
    change.add_argument("--top", type=int, help="best position (1-based) for an explored item")
    change.set_defaults(handler=run_explore_set)
    commands.add_parser("reset", help="back to the defaults").set_defaults(handler=run_explore_reset)
    tune = ltr_commands.add_parser(
        "tune",
        help="fit the default mode's fusion on pseudo-queries made from the catalog (no feedback needed)",
    )
    tune.add_argument("--sample", type=int, default=1000, help="items to make pseudo-queries of (default: 1000)")
    tune.add_argument("--seed", type=int, default=0)
    tune.set_defaults(handler=run_tune)
    background = ltr_commands.add_parser(
        "autotune",
        help="show, or turn on or off, self-tuning in the background of adds (on by default, from 1,000 items)",
    )
    background.add_argument("state", nargs="?", choices=("show", "on", "off"), default="show")
    background.set_defaults(handler=run_autotune)


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
                "provenance": list(imp.provenance),  # display strings ("lexical+memory")
                "sources": [list(names_of(p)) for p in imp.provenance],
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


# -- ltr strategies ------------------------------------------------------------------------------------
def _fail(message: str) -> int:
    raise UsageError(message)


def _ltr_folder(args: argparse.Namespace) -> Path:
    if not args.index:
        raise UsageError("no index folder: pass --index DIR (or set XMODAL_INDEX)")
    path = Path(args.index)
    if not (path / "store.sqlite").is_file():
        raise UsageError(f"{path} is not an xmodal index (create it with: xmodal --index {path} add CATALOG)")
    return path / "ltr"


def _save(folder: Path, names: list[str]) -> int:
    from ..ltr import strategy_config
    from ..ltr.strategies.registry import check_names

    try:
        check_names(names)
        strategy_config.save(folder, names)
    except (ConfigError, XmodalError) as exc:
        raise UsageError(str(exc)) from None
    print_json({"strategies": names, "saved": str(folder / strategy_config.FILE)})
    return 0


def run_strategies_add(args: argparse.Namespace) -> int:
    from ..ltr import strategy_config

    folder = _ltr_folder(args)
    names = list(strategy_config.configured(folder))
    if args.name in names:
        raise UsageError(f"strategy {args.name!r} is already used ({', '.join(names)})")
    return _save(folder, [*names, args.name])


def run_strategies_remove(args: argparse.Namespace) -> int:
    from ..ltr import strategy_config

    folder = _ltr_folder(args)
    names = list(strategy_config.configured(folder))
    if args.name not in names:
        raise UsageError(f"strategy {args.name!r} is not used (used: {', '.join(names)})")
    kept = [n for n in names if n != args.name]
    if not kept:
        raise UsageError("the learned pipeline needs at least one strategy; add another before removing this one")
    strategy_config.save(folder, kept)  # removing never needs the strategy to load
    print_json({"strategies": kept, "saved": str(folder / strategy_config.FILE)})
    return 0


def run_strategies_set(args: argparse.Namespace) -> int:
    return _save(_ltr_folder(args), list(args.names))


def run_strategies_reset(args: argparse.Namespace) -> int:
    from ..ltr import strategy_config

    folder = _ltr_folder(args)
    strategy_config.reset(folder)
    print_json({"strategies": list(strategy_config.configured(folder)), "saved": None})
    return 0


def run_strategies_list(args: argparse.Namespace) -> int:
    from ..ltr import strategy_config
    from ..ltr.extension import pipeline
    from ..ltr.strategies.registry import STRATEGIES, factory_of

    folder = _ltr_folder(args)
    names = strategy_config.configured(folder)
    configured = []
    for name in names:
        try:
            factory_of(name)
            configured.append({"name": name, "loads": True})
        except ConfigError as exc:
            configured.append({"name": name, "loads": False, "error": str(exc)})
    arms: list[dict[str, Any]] = []
    error = None
    if all(c["loads"] for c in configured):
        try:
            with engine_of(args) as engine:
                pipe = pipeline(engine)
                arms = [{**spec.to_dict(), "source": pipe.sources.get(n, "")} for n, spec in pipe.specs.items()]
        except XmodalError as exc:
            error = str(exc)
    out = {
        "strategies": configured,
        "saved": (folder / strategy_config.FILE).exists(),
        "arms": arms,
        "installed": STRATEGIES.names(),
    }
    if error is not None:
        out["error"] = error
    if args.json:
        print_json(out)
        return 0
    print(f"strategies ({'saved in ' + str(folder / strategy_config.FILE) if out['saved'] else 'the defaults'}):")
    for c in configured:
        print(f"  {c['name']}{'' if c['loads'] else '  (does not load: ' + str(c.get('error')) + ')'}")
    if arms:
        print("arms: " + ", ".join(f"{a['name']} ({a['family']})" for a in arms))
    print("installed: " + ", ".join(STRATEGIES.names()))
    if error is not None:
        print(f"error: {error}")
    return 0


# -- ltr explore ---------------------------------------------------------------------------------------
def _explore_out(folder: Path) -> dict[str, Any]:
    from ..ltr import explore_config

    try:
        settings = explore_config.configured(folder)
    except XmodalError as exc:
        raise UsageError(str(exc)) from None
    saved = folder / explore_config.FILE
    return {
        "budget": settings.budget,
        "calls": settings.calls,
        "top": settings.top,
        "saved": str(saved) if saved.exists() else None,
    }


def run_explore_show(args: argparse.Namespace) -> int:
    print_json(_explore_out(_ltr_folder(args)))
    return 0


def run_explore_set(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..ltr import explore_config

    folder = _ltr_folder(args)
    given = {k: v for k, v in (("budget", args.budget), ("calls", args.calls), ("top", args.top)) if v is not None}
    if not given:
        raise UsageError("give at least one of --budget, --calls, --top")
    try:
        explore_config.save(folder, replace(explore_config.configured(folder), **given))
    except XmodalError as exc:
        raise UsageError(str(exc)) from None
    print_json(_explore_out(folder))
    return 0


def run_explore_reset(args: argparse.Namespace) -> int:
    from ..ltr import explore_config

    folder = _ltr_folder(args)
    explore_config.reset(folder)
    print_json(_explore_out(folder))
    return 0


def run_tune(args: argparse.Namespace) -> int:
    from ..ltr.extension import pipeline
    from ..ltr.selftune import tune
    from ..ltr.tuned import Untunable, describe

    if args.sample < 50:
        raise UsageError(f"--sample must be at least 50 items, got {args.sample}")
    with engine_of(args) as engine:
        pipe = pipeline(engine)
        with progress_bar(None, "pseudo-queries", "query") as bar:

            def advance(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            try:
                model = tune(pipe, sample=args.sample, seed=args.seed, progress=advance)
            except Untunable as found:
                pipe.set_untunable(found)  # searches' explain says why, in every process
                raise UsageError(f"{found.reason}: the default mode keeps its untuned fusion") from found
        pipe.set_tuned(model)
        print_json(describe(model, pipe.dir))
    return 0


def run_autotune(args: argparse.Namespace) -> int:
    """``xmodal ltr autotune [show|on|off]``: the index's own setting (``<index>/ltr/autotune.json``); a change
    takes effect when the index is next opened."""
    from ..ltr import autotune

    folder = _ltr_folder(args)
    if args.state != "show":
        autotune.save(folder, args.state == "on")
    try:
        enabled = autotune.configured(folder)
    except XmodalError as exc:
        raise UsageError(str(exc)) from None
    saved = folder / autotune.FILE
    print_json({"autotune": enabled, "min_items": autotune.MIN_ITEMS, "saved": str(saved) if saved.exists() else None})
    return 0
