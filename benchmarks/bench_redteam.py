"""Automated red-teaming of the guards (``xmodal redteam``, FLIRT-style): five rounds of mutation and selection
per category, the attack success rate (ASR) after each round and the false-refusal rate on the benign set beside
it; target: ASR < 5% in every category after five rounds.

Run:  python benchmarks/bench_redteam.py [--seeds 0 1 2 3] [--rounds 5] [--per-round 60] [--plot out.png]

Peer, in the same run: the query guard as it was before the red-teaming hardened it (the rules and the
classifier on the normalised text only: no de-obfuscated readings, no harmful-content / PII-extraction /
availability rules), re-created here from the same parts, against the same seeds and mutations. Seed 0 is the
one the hardening was developed against; the others were not looked at while writing it. Benign set: WordNet
glosses and lemmas, Debian package descriptions (3,000 each, sampled) and the over-refusal contrast set; each
round judges 1,000 of them plainly and 250 of those under one random text mutation. Image variants (text
rendered into a PNG) are reported as not checked: the query guard reads no images. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from xmodal.guards.check import MIN_WORDS, Guard
from xmodal.guards.normalize import bad_encoding, normalize
from xmodal.guards.policy import Policy
from xmodal.guards.rules import scan
from xmodal.redteam import benign, loop, report, seeds
from xmodal.redteam.mutators import Variant
from xmodal.redteam.target import NO_IMAGE_PATH, GuardTarget, Verdict

DEVELOPMENT_SEED = 0


class BeforeTarget:
    """The query guard before the red-teaming: size and encoding checks, the rules on the normalised text (and on
    a tag-character message), then the classifier — under the built-in policy's blocking categories."""

    def __init__(self) -> None:
        self.guard = Guard(Policy())

    def judge(self, variant: Variant) -> Verdict:
        if variant.image is not None:
            return Verdict(None, 0.0, NO_IMAGE_PATH)
        text = variant.text
        if len(text) > self.guard.policy.max_query_chars or bad_encoding(text):
            return Verdict(True, 1.0, "oversize or encoding")
        norm = normalize(text)
        found = scan(norm.text) + (scan(norm.hidden_message) if norm.hidden_message else [])
        if found:
            return Verdict(True, 1.0, found[0].rule)
        model = self.guard.model
        if model is None or len(norm.text.split()) < MIN_WORDS:
            return Verdict(False, 0.0, "allowed")
        p = model.probability(norm.text)
        return Verdict(p >= model.threshold, p if p < model.threshold else 1.0, f"classifier p={p:.3f}")


def _figures(result: loop.Result) -> dict[str, Any]:
    data = report.to_json(result)
    return {
        "final_asr": {c: v["final_attack_success_rate"] for c, v in data["summary"]["categories"].items()},
        "max_asr_rounds_1_on": {c: v["max_attack_success_rate"] for c, v in data["summary"]["categories"].items()},
        "asr_by_round": {
            c: [r["categories"][c]["attack_success_rate"] for r in data["rounds"]] for c in data["categories"]
        },
        "all_below_5pct": data["summary"]["all_below_target"],
        "false_refusal_rate_by_round": [r["benign"]["false_refusal_rate"] for r in data["rounds"]],
        "false_refusal_rate_mutated_by_round": [r["benign"]["false_refusal_rate_mutated"] for r in data["rounds"]],
        "false_refusal_rate_all_rounds": data["summary"]["false_refusal_rate_all_rounds"],
        "image_mutation": data["image_mutation"],
        "examples_through_last_round": {
            c: s["examples"] for c, s in data["rounds"][-1]["categories"].items() if s["examples"]
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=60)
    parser.add_argument("--benign-per-source", type=int, default=3000)
    parser.add_argument("--benign-per-round", type=int, default=1000)
    parser.add_argument("--plot", type=Path, help="the plot of the first unseen seed's run (PNG)")
    parser.add_argument("--skip-before", action="store_true", help="do not run the pre-hardening peer")
    args = parser.parse_args()
    texts = benign.load(["wordnet", "queries", "debian", "contrast"], args.benign_per_source, seed=11)
    out: dict[str, Any] = {
        "rounds": args.rounds,
        "per_round": args.per_round,
        "benign": {k: len(v) for k, v in texts.items()},
        "development_seed": DEVELOPMENT_SEED,
        "runs": {},
    }
    plotted = False
    for seed in args.seeds:
        config = loop.Config(rounds=args.rounds, per_round=args.per_round, benign_per_round=args.benign_per_round, seed=seed)  # fmt: skip
        start = time.perf_counter()
        after = loop.run(GuardTarget(), seeds.builtin(), texts, config)
        run: dict[str, Any] = {"after": _figures(after), "seconds_after": round(time.perf_counter() - start, 1)}
        if not args.skip_before:
            before = loop.run(BeforeTarget(), seeds.builtin(), texts, config)
            run["before"] = _figures(before)
            run["final_asr_ratio_after_over_before"] = {
                c: (round(a / b, 4) if b else None)
                for c in after.categories
                if (a := run["after"]["final_asr"][c]) is not None and (b := run["before"]["final_asr"][c]) is not None
            }
        out["runs"][str(seed)] = run
        if args.plot and seed != DEVELOPMENT_SEED and not plotted:
            report.plot(after, args.plot)
            out["plot"] = {"seed": seed, "path": str(args.plot)}
            plotted = True
        print(f"seed {seed}: {run['after']['final_asr']}", file=sys.stderr)
    unseen = [r for s, r in out["runs"].items() if int(s) != DEVELOPMENT_SEED]
    out["unseen_seeds_all_below_5pct"] = all(r["after"]["all_below_5pct"] for r in unseen) if unseen else None
    out["unseen_seeds_worst_final_asr"] = (
        {c: max(r["after"]["final_asr"][c] or 0.0 for r in unseen) for c in seeds.CATEGORIES} if unseen else None
    )
    print(json.dumps(out, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
