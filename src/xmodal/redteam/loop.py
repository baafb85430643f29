"""The red-teaming loop, FLIRT-style (Mehrabi et al., 2023: feedback loop in-context red teaming) without a
language model: the "in-context exemplars" are a pool of attacks per category; each round, parents are drawn
from the pool (weighted by how well they evaded the target), mutated (:mod:`.mutators`), and judged by the
target (:mod:`.target`); the pool then keeps the best-scoring attacks — those that got through first, then the
ones the guard was least sure of (FLIRT's scoring strategy, with duplicates dropped for diversity).

Round 0 is the seeds themselves. Each round also measures the false-refusal rate on a fresh sample of the benign
set, plain and mutated the same way (an encoded or leetspeak benign query refused is a false refusal too).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .mutators import IMAGE, Variant, check_mutators, mutate
from .seeds import check_categories
from .target import Target, Verdict

EXAMPLES = 3  # successful attacks kept per category and round, for the report


@dataclass(frozen=True)
class Config:
    rounds: int = 5
    per_round: int = 40  # attacks generated per category and round
    pool_size: int = 24  # exemplars kept per category
    max_depth: int = 4  # mutations stacked at most on one seed
    benign_per_round: int = 400
    seed: int = 0
    mutators: tuple[str, ...] | None = None

    def check(self) -> None:
        from ..errors import ValidationError

        for name in ("rounds", "per_round", "pool_size", "max_depth", "benign_per_round"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name in ("rounds", "benign_per_round") else 1):
                raise ValidationError(name, f"must be a positive integer, got {value!r}")


@dataclass
class _Scored:
    variant: Variant
    verdict: Verdict

    @property
    def key(self) -> tuple[int, float]:
        return (1 if self.verdict.blocked is False else 0, 1.0 - self.verdict.score)


@dataclass
class RoundStats:
    """One category in one round: attacks tried, checked, through; by last mutation; a few that got through."""

    attempts: int = 0
    checked: int = 0
    successes: int = 0
    by_mutator: dict[str, list[int]] = field(default_factory=dict)  # name -> [checked, through]
    not_checked: dict[str, int] = field(default_factory=dict)  # why -> count
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def asr(self) -> float | None:
        return self.successes / self.checked if self.checked else None

    def add(self, item: _Scored) -> None:
        self.attempts += 1
        how = item.variant.lineage[-1] if item.variant.lineage else "seed"
        if item.verdict.blocked is None:
            self.not_checked[item.verdict.reason] = self.not_checked.get(item.verdict.reason, 0) + 1
            return
        self.checked += 1
        counts = self.by_mutator.setdefault(how, [0, 0])
        counts[0] += 1
        if item.verdict.blocked is False:
            self.successes += 1
            counts[1] += 1
            if len(self.examples) < EXAMPLES:
                text = item.variant.text
                self.examples.append(
                    {"text": text if len(text) <= 240 else text[:239] + "…", "lineage": list(item.variant.lineage)}
                )

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "checked": self.checked,
            "successes": self.successes,
            "attack_success_rate": None if self.asr is None else round(self.asr, 5),
            "by_mutator": {k: {"checked": v[0], "through": v[1]} for k, v in sorted(self.by_mutator.items())},
            "not_checked": self.not_checked,
            "examples": self.examples,
        }


@dataclass
class BenignStats:
    """False refusals on one round's benign sample: plain, and under one random text mutation each."""

    texts: int = 0
    refused: int = 0
    mutated: int = 0
    mutated_refused: int = 0
    refused_examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "texts": self.texts,
            "refused": self.refused,
            "false_refusal_rate": round(self.refused / self.texts, 5) if self.texts else None,
            "mutated_texts": self.mutated,
            "mutated_refused": self.mutated_refused,
            "false_refusal_rate_mutated": round(self.mutated_refused / self.mutated, 5) if self.mutated else None,
            "refused_examples": self.refused_examples,
        }


@dataclass
class Result:
    config: Config
    categories: list[str]
    rounds: list[dict[str, RoundStats]]  # round -> category -> stats (round 0: the seeds)
    benign: list[BenignStats]  # round -> false refusals
    benign_sources: dict[str, int]
    image_status: str


def _pick(pool: Sequence[_Scored], rng: random.Random, config: Config, names: list[str]) -> _Scored:
    open_ = [p for p in pool if not p.variant.terminal and len(p.variant.lineage) < config.max_depth]
    if not open_:
        open_ = list(pool)
    weights = [0.05 + (1.0 if p.verdict.blocked is False else 0.0) + (1.0 - p.verdict.score) for p in open_]
    return rng.choices(open_, weights)[0]


def _select(pool: list[_Scored], children: list[_Scored], size: int) -> list[_Scored]:
    seen: set[str] = set()
    out: list[_Scored] = []
    for item in sorted([*pool, *children], key=lambda s: s.key, reverse=True):  # stable: the pool first on ties
        if item.verdict.blocked is None or item.variant.text in seen:
            continue
        seen.add(item.variant.text)
        out.append(item)
        if len(out) >= size:
            break
    return out


def _benign_round(
    target: Target, benign: Sequence[str], rng: random.Random, config: Config, names: list[str]
) -> BenignStats:
    stats = BenignStats()
    sample = rng.sample(list(benign), min(config.benign_per_round, len(benign)))
    text_names = [n for n in names if n != IMAGE]
    for i, text in enumerate(sample):
        if target.judge(Variant(text)).blocked:
            stats.refused += 1
            if len(stats.refused_examples) < EXAMPLES:
                stats.refused_examples.append(text[:200])
        stats.texts += 1
        if text_names and i % 4 == 0:  # a quarter of the sample, mutated
            child = mutate(Variant(text), rng, text_names)
            verdict = target.judge(child)
            if verdict.blocked is not None:
                stats.mutated += 1
                stats.mutated_refused += bool(verdict.blocked)
    return stats


def run(
    target: Target,
    seeds: Mapping[str, Sequence[str]],
    benign: Mapping[str, Sequence[str]],
    config: Config | None = None,
) -> Result:
    """Red-team ``target`` from ``seeds`` (category -> texts) for ``config.rounds`` rounds."""
    config = config or Config()
    config.check()
    categories = check_categories(seeds)
    names = check_mutators(list(config.mutators) if config.mutators is not None else None)
    rng = random.Random(config.seed)
    benign_texts = [t for texts in benign.values() for t in texts]
    pools: dict[str, list[_Scored]] = {}
    first: dict[str, RoundStats] = {}
    for category in categories:
        stats = first[category] = RoundStats()
        scored = [_Scored(Variant(t), target.judge(Variant(t))) for t in seeds[category]]
        for item in scored:
            stats.add(item)
        pools[category] = _select([], scored, config.pool_size) or scored
    rounds = [first]
    benign_stats = [_benign_round(target, benign_texts, rng, config, names)] if benign_texts else [BenignStats()]
    image_status = "checked"
    for _ in range(config.rounds):
        current: dict[str, RoundStats] = {}
        for category in categories:
            stats = current[category] = RoundStats()
            children: list[_Scored] = []
            for _ in range(config.per_round):
                parent = _pick(pools[category], rng, config, names)
                variant = parent.variant
                if variant.terminal or len(variant.lineage) >= config.max_depth:
                    variant = Variant(rng.choice(list(seeds[category])))
                child = mutate(variant, rng, names)
                verdict = target.judge(child)
                if verdict.blocked is None:
                    image_status = verdict.reason
                item = _Scored(child, verdict)
                stats.add(item)
                children.append(item)
            pools[category] = _select(pools[category], children, config.pool_size)
        rounds.append(current)
        benign_stats.append(_benign_round(target, benign_texts, rng, config, names) if benign_texts else BenignStats())
    if IMAGE not in names:
        image_status = "not run (the image mutator was not chosen)"
    return Result(config, categories, rounds, benign_stats, {k: len(v) for k, v in benign.items()}, image_status)
