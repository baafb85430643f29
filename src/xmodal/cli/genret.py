"""``xmodal genret train|status``: train the generative index (GENIUS) and report how stale it is."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..genret.config import TrainConfig
from .common import UsageError, engine_of, print_json

DEFAULTS = TrainConfig()


def register(subparsers: Any) -> None:
    """Add ``genret train`` and ``genret status``."""
    parser = subparsers.add_parser("genret", help="generative retrieval: train the ID decoder, show its status")
    commands = parser.add_subparsers(dest="genret_command", metavar="SUBCOMMAND")
    train = commands.add_parser(
        "train",
        help="train semantic IDs and the ID decoder on the catalog (resumes an interrupted run)",
        description="Pairs come from the items' own views, positive feedback events and, with --queries, "
        'judgments in the `xmodal eval` format ({"text": ..., "image": ..., "relevant": [ids]}).',
    )
    train.add_argument("--queries", metavar="FILE.jsonl", help="judged queries to train on (xmodal eval format)")
    train.add_argument(
        "--epochs", type=int, default=DEFAULTS.epochs, help=f"decoder epochs (default: {DEFAULTS.epochs})"
    )
    train.add_argument(
        "--min-steps",
        type=int,
        default=None,
        help=f"train small catalogs for more epochs until this many batches (default: {DEFAULTS.min_steps})",
    )
    train.add_argument("--levels", type=int, default=None, help="residual levels L (default: by catalog size)")
    train.add_argument("--codebook-size", type=int, default=None, help="codes per level K (default: by catalog size)")
    train.add_argument(
        "--alpha",
        type=float,
        default=None,
        help=f"query augmentation Beta(α, α); 0 turns it off (default: {DEFAULTS.alpha:g})",
    )
    train.add_argument(
        "--self-noise",
        metavar="LOW,HIGH",
        default=None,
        help="draw the self pairs' queries afresh in every batch: the item plus noise of relative norm in "
        f"[LOW, HIGH] (default: {DEFAULTS.self_noise_min:g},{DEFAULTS.self_noise_max:g}; 0,0 keeps one fixed noisy "
        "copy per item)",
    )
    train.add_argument("--no-contrastive", action="store_true", help="plain residual k-means IDs (no fine-tuning)")
    train.add_argument("--no-feedback", action="store_true", help="do not train on the feedback log")
    train.add_argument(
        "--pseudo", action="store_true", help="also train on the catalog's pseudo-queries (names, descriptions…)"
    )
    train.add_argument("--fresh", action="store_true", help="ignore the checkpoint of an interrupted run")
    train.add_argument("--max-minutes", type=float, default=None, help="stop the decoder training after this long")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    train.add_argument("--json", action="store_true", help="print the summary as JSON")
    train.set_defaults(handler=run_train)
    status = commands.add_parser("status", help="how stale the generative model is, and its last evaluation")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=run_status)
    parser.set_defaults(handler=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    raise UsageError("give a subcommand: train or status")


def run_train(args: argparse.Namespace) -> int:
    from ..genret.build import train_engine

    if args.queries and not Path(args.queries).is_file():
        raise UsageError(f"{args.queries}: no such query file")
    if args.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {args.epochs}")
    if args.alpha is not None and args.alpha < 0:
        raise UsageError(f"--alpha must be >= 0 (0 turns augmentation off), got {args.alpha}")
    chosen: dict[str, Any] = {"alpha": args.alpha} if args.alpha is not None else {}
    if args.min_steps is not None:
        chosen["min_steps"] = args.min_steps
    if args.self_noise is not None:
        low, high = _noise_range(args.self_noise)
        chosen.update(self_noise_min=low, self_noise_max=high)
    config = TrainConfig(
        levels=args.levels,
        codebook_size=args.codebook_size,
        epochs=args.epochs,
        contrastive=not args.no_contrastive,
        seed=args.seed,
        max_minutes=args.max_minutes,
        **chosen,
    )
    with engine_of(args) as engine:
        summary = train_engine(
            engine,
            judgments=args.queries,
            config=config,
            progress=not args.quiet,
            resume=not args.fresh,
            feedback=not args.no_feedback,
            pseudo=args.pseudo,
        )
    if args.json:
        print_json(summary)
    else:
        print(
            f"trained on {summary['pairs']} pairs for {summary['items']} items in {summary['seconds']} s "
            f"({summary['epochs']} epochs{', stopped early' if summary['stopped_early'] else ''})"
        )
        print(f"pairs by source  {json.dumps(summary['sources'])}")
        print(
            f"buckets          {summary['buckets']} (collisions {summary['collisions']}, "
            f"largest {summary['max_bucket']})"
        )
        print(f"codebook usage   {summary['codebook_used']} perplexity {summary['perplexity']}")
        print(f"fit recall@10    {summary['last_evaluation'].get('recall@10')}")
        for skipped in summary["skipped_judgments"]:
            print(f"skipped {skipped['where']}: {skipped['reason']}")
    return 0


def _noise_range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"--self-noise takes LOW,HIGH (two numbers), got {text!r}") from None
    if not 0 <= low <= high:
        raise UsageError(f"--self-noise needs 0 <= LOW <= HIGH, got {text!r}")
    return low, high


def run_status(args: argparse.Namespace) -> int:
    from ..genret.extension import live_genret
    from ..stale import stale

    with engine_of(args) as engine:
        status = live_genret(engine).status()
        marker = stale(engine.store).get("genret")
    if marker is not None:
        status["stale"] = marker
    if marker is not None and not args.json:
        print(f"STALE             {marker['reason']}; fix: {marker['fix']}")
    if args.json:
        print_json(status)
        return 0
    if not status["trained"]:
        print(f"no generative model: {status['problem'] or 'not trained yet'}")
        print(f"fix: {status['fix']}")
        return 1
    print(
        f"trained           {status['age_hours']} h ago on {status['training'].get('items')} items, "
        f"{status['training'].get('pairs')} pairs"
    )
    print(f"ids               L={status['levels']} K={status['codebook_size']} dim={status['dim']}")
    print(
        f"since training    {status['items_changed_since_training']} items added/changed, "
        f"{status['items_deleted_since_training']} deleted, "
        f"{status['feedback_events_since_training']} feedback events"
    )
    live = status["live"]
    print(
        f"live trie         {live['items']} items in {live['buckets']} buckets "
        f"(collisions {live['collisions']}, {live['trie_bytes']} bytes)"
    )
    print(f"last evaluation   {json.dumps(status['last_evaluation'])}")
    return 0
