"""``xmodal redteam``: automated red-teaming of the guards (FLIRT-style mutation and selection), reporting per
category and round the attack success rate, and the false-refusal rate on a benign set, as JSON and a plot."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .common import UsageError, print_json


def register(subparsers: Any) -> None:
    """Add ``redteam``."""
    from ..redteam.benign import SOURCES
    from ..redteam.mutators import MUTATORS
    from ..redteam.seeds import CATEGORIES

    parser = subparsers.add_parser(
        "redteam",
        help="red-team the guards: mutate seed attacks, keep what gets through, iterate; report ASR and false refusals",
        description="Starts from seed attacks per category, mutates them (paraphrase, casing, leetspeak, language "
        "mixing, base64/rot13/hex/url, reversal, splitting, zero-width and homoglyph insertion, text rendered into "
        "images), keeps the variants that get through the query guard, and iterates. Needs no index: the guards "
        "run under the built-in policy, or --policy FILE.",
    )
    parser.add_argument(
        "--categories", default=",".join(CATEGORIES), help=f"comma-separated (default: all: {','.join(CATEGORIES)})"
    )
    parser.add_argument("--seeds", metavar="FILE", help='seed attacks: JSON {"category": [texts]} or JSON Lines')
    parser.add_argument("--rounds", type=int, default=5, help="rounds after the seeds (default: 5)")
    parser.add_argument("--per-round", type=int, default=40, help="attacks per category and round (default: 40)")
    parser.add_argument("--pool", type=int, default=24, help="exemplars kept per category (default: 24)")
    parser.add_argument("--mutators", help=f"comma-separated (default: all: {','.join(MUTATORS)})")
    parser.add_argument(
        "--benign", default="wordnet,queries,debian,contrast", help=f"benign sources (of {','.join(SOURCES)})"
    )
    parser.add_argument("--benign-per-source", type=int, default=3000, help="texts sampled per source (default 3000)")
    parser.add_argument("--benign-per-round", type=int, default=400, help="benign texts judged per round (default 400)")
    parser.add_argument("--policy", metavar="FILE.toml", help="a guards policy file (default: the built-in policy)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--out", metavar="FILE.json", help="write the JSON report here (default: stdout)")
    parser.add_argument("--plot", metavar="FILE.png", help="write the plot (matplotlib) here")
    parser.set_defaults(handler=run)


def _names(value: str | None, flag: str) -> list[str] | None:
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise UsageError(f"{flag}: give at least one name")
    return names


def run(args: argparse.Namespace) -> int:
    import tomllib

    from ..guards import policy as policies
    from ..redteam import benign, loop, report, seeds
    from ..redteam.target import GuardTarget

    categories = _names(args.categories, "--categories")
    chosen = seeds.load(Path(args.seeds), categories) if args.seeds else seeds.builtin(categories)
    policy = None
    if args.policy:
        try:
            policy = policies.parse(tomllib.loads(Path(args.policy).read_text(encoding="utf-8")), args.policy)
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"--policy: {args.policy} is not valid TOML ({exc})") from None
    mutators = _names(args.mutators, "--mutators")
    config = loop.Config(
        rounds=args.rounds,
        per_round=args.per_round,
        pool_size=args.pool,
        benign_per_round=args.benign_per_round,
        seed=args.seed,
        mutators=tuple(mutators) if mutators is not None else None,
    )
    config.check()
    texts = benign.load(_names(args.benign, "--benign") or [], args.benign_per_source, seed=args.seed)
    result = loop.run(GuardTarget(policy), chosen, texts, config)
    data = report.to_json(result)
    if args.plot:
        report.plot(result, Path(args.plot))
        data["plot"] = args.plot
    if args.out:
        Path(args.out).write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        _summary(data)
    else:
        print_json(data)
    return 0


def _summary(data: dict[str, Any]) -> None:
    for category, figures in data["summary"]["categories"].items():
        print(
            f"{category:16s} attack success after the last round: {figures['final_attack_success_rate']}",
            file=sys.stderr,
        )
    print(f"false refusals (last round): {data['summary']['final_false_refusal_rate']}", file=sys.stderr)
