"""A simulation harness: simulated users search a real catalog and click with position bias.

The catalog is WordNet's nouns (Debian ``wordnet-base``): an item per synset, titled by its first
lemma, described by its gloss, with two attributes (``category``: its lexicographer file such as
``animal``; ``kind``: its hypernym's first lemma). Four kinds of queries, each with its natural winner:

- ``name``: an item's lemma (lexical search wins);
- ``attribute``: "<kind> <category>", every item of that kind is relevant (structured search wins);
- ``descriptive``: words of the gloss with typos and dropped words (dense char-n-gram search wins);
- ``head``: a few kind names asked again and again whose relevant item is one users prefer, learned
  only from clicks (the memory index wins once it has seen them).

Users examine position *p* with probability ``1/p**eta`` and click an examined relevant item with
probability ``p_click`` (and an irrelevant one with ``p_noise``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..records import Hits, Item, Query
from .features import candidate_features, freshness
from .fusion import FusedHit
from .pipeline import Pipeline
from .policy import LinearBandit, Plan, equal_plan
from .ranker import LambdaRanker, estimate_propensities
from .strategies.memory import PairStats
from .text import STOPWORDS, normalize_query, tokens
from .training import LoggedList, ndcg_at, training_set

WORDNET = Path("/usr/share/wordnet/data.noun")
LEXNAMES = (
    "adj.all adj.pert adv.all Tops act animal artifact attribute body cognition communication event feeling food "
    "group location motive object person phenomenon plant possession process quantity relation shape state "
    "substance time change cognition communication competition consumption contact creation emotion motion "
    "perception possession social stative weather adj.ppl"
).split()
ARMS = ("lexical", "structured", "dense:text", "memory", "explore")
QUERY_KINDS = ("name", "attribute", "descriptive", "head")


@dataclass(frozen=True, slots=True)
class SimQuery:
    text: str
    kind: str
    relevant: frozenset[str]


SIM_NOW = 1.7e9  # the simulated clock starts here
SIM_USER = "simulated-user"


def wordnet_catalog(
    n_items: int = 5000,
    *,
    seed: int = 0,
    path: Path = WORDNET,
    min_group: int = 8,
    added_over_days: float = 90.0,
) -> list[Item]:
    """``n_items`` noun synsets, taken in whole hypernym groups of at least ``min_group`` members, added
    at random moments over the ``added_over_days`` before :data:`SIM_NOW` (when an item was added says
    nothing about its relevance)."""
    synsets: dict[str, tuple[str, str, str, str | None]] = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):
            continue
        head, _, gloss = line.partition(" | ")
        parts = head.split()
        offset, lexfile, n_words = parts[0], int(parts[1]), int(parts[3], 16)
        lemma = parts[4].replace("_", " ")
        rest = parts[4 + 2 * n_words :]
        hyper = next((rest[i + 1] for i in range(1, len(rest) - 1) if rest[i] == "@"), None)
        definition = gloss.split(";")[0].strip()
        synsets[offset] = (lemma, LEXNAMES[lexfile] if lexfile < len(LEXNAMES) else "other", definition, hyper)
    groups: dict[str, list[str]] = {}
    for offset, (_, _, _, hyper) in synsets.items():
        if hyper is not None and hyper in synsets:
            groups.setdefault(hyper, []).append(offset)
    eligible = sorted(h for h, members in groups.items() if len(members) >= min_group)
    rng = np.random.default_rng(seed)
    added = np.random.default_rng([seed, 1]).uniform(0.0, added_over_days * 86400, len(synsets))
    items: list[Item] = []
    for hyper in rng.permutation(eligible):
        kind = synsets[str(hyper)][0]
        for offset in groups[str(hyper)]:
            lemma, category, definition, _ = synsets[offset]
            items.append(
                Item.create(
                    f"wn{offset}",
                    title=lemma,
                    text=definition,
                    created_at=SIM_NOW - float(added[len(items)]),
                    attributes={"category": category, "kind": kind},
                )
            )
        if len(items) >= n_items:
            break
    return items[:n_items]


def _typo(word: str, rng: np.random.Generator) -> str:
    if len(word) < 4:
        return word
    i = int(rng.integers(1, len(word) - 2))
    if rng.random() < 0.5:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # swap two letters
    return word[:i] + word[i + 1 :]  # drop one


@dataclass
class QueryGenerator:
    """Draws queries of the four kinds from a catalog (seeded)."""

    items: Sequence[Item]
    seed: int = 0
    mix: tuple[float, float, float, float] = (0.25, 0.25, 0.25, 0.25)
    n_head: int = 20
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.by_kind: dict[str, list[Item]] = {}
        self.by_title: dict[str, set[str]] = {}
        for item in self.items:
            self.by_kind.setdefault(str(item.attributes["kind"]), []).append(item)
            self.by_title.setdefault(item.title.lower(), set()).add(item.id)
        # head queries name a kind of 30-80 items; the preferred one is found by exploring, kept by memory
        sized = [k for k in self.by_kind if 30 <= len(self.by_kind[k]) <= 80] or list(self.by_kind)
        big = sorted(sized, key=lambda k: (-len(self.by_kind[k]), k))[: self.n_head]
        self.head = [(k, self.by_kind[k][int(self.rng.integers(len(self.by_kind[k])))].id) for k in big]
        self.kinds = sorted(self.by_kind)
        zipf = 1.0 / np.arange(1, len(self.head) + 1) ** 1.1
        self.head_p = zipf / zipf.sum()

    def sample(self) -> SimQuery:
        kind = QUERY_KINDS[int(self.rng.choice(4, p=self.mix))]
        made: SimQuery = getattr(self, f"_{kind}")()
        return made

    def _name(self) -> SimQuery:
        item = self.items[int(self.rng.integers(len(self.items)))]
        return SimQuery(item.title, "name", frozenset(self.by_title[item.title.lower()]))

    def _attribute(self) -> SimQuery:
        kind = self.kinds[int(self.rng.integers(len(self.kinds)))]
        members = self.by_kind[kind]
        return SimQuery(f"{kind} {members[0].attributes['category']}", "attribute", frozenset(i.id for i in members))

    def _descriptive(self) -> SimQuery:
        item = self.items[int(self.rng.integers(len(self.items)))]
        title = set(tokens(item.title))
        words = [w for w in tokens(item.text) if w not in STOPWORDS and w not in title and not re.match(r"\d", w)]
        kept = [w for w in words if self.rng.random() < 0.7] or words or tokens(item.title)
        text = " ".join(_typo(w, self.rng) for w in kept[:6])
        return SimQuery(text, "descriptive", frozenset({item.id}))

    def _head(self) -> SimQuery:
        kind, target = self.head[int(self.rng.choice(len(self.head), p=self.head_p))]
        return SimQuery(kind, "head", frozenset({target}))


def clicks(
    shown: Sequence[str],
    relevant: frozenset[str],
    rng: np.random.Generator,
    *,
    eta: float = 1.0,
    p_click: float = 0.9,
    p_noise: float = 0.02,
) -> list[bool]:
    """Position-biased clicks: position p is examined with probability 1/p**eta."""
    out = []
    for pos, item_id in enumerate(shown, start=1):
        examined = rng.random() < 1.0 / pos**eta
        p = p_click if item_id in relevant else p_noise
        out.append(bool(examined and rng.random() < p))
    return out


def provenance(fused: Sequence[FusedHit]) -> list[tuple[str, ...]]:
    """Per fused hit, the strategies that found it."""
    return [tuple(sorted(h.sources)) for h in fused]


def clone_stats(stats: dict[str, dict[str, PairStats]]) -> dict[str, dict[str, PairStats]]:
    return {k: {i: PairStats(p.impressions, p.actions, p.prior) for i, p in v.items()} for k, v in stats.items()}


@dataclass
class Step:
    """What happened at one simulated search (kept for training the ranker)."""

    query: SimQuery
    x: np.ndarray
    plan: Plan
    fused: list[FusedHit]
    shown: list[str]
    clicked: list[bool]
    randomized: bool
    success: bool
    X: np.ndarray | None = None  # ranker features of fused[:rank_depth], computed when served


class Simulator:
    """Runs policies over one stream of simulated queries against a pipeline (no logging to disk)."""

    def __init__(
        self,
        pipeline: Pipeline,
        queries: Sequence[SimQuery],
        *,
        budget: int = 100,
        k: int = 10,
        seed: int = 0,
        now: float = SIM_NOW,
        eta: float = 1.0,
    ) -> None:
        self.pipeline, self.queries, self.budget, self.k, self.seed, self.now = pipeline, queries, budget, k, seed, now
        self.eta = eta  # position bias of the simulated users: position p is examined with 1/p**eta
        self.base_memory = clone_stats(pipeline.memory.stats)
        self.base_history = {k: list(v) for k, v in pipeline.memory.history_.items()}
        self._static: dict[str, tuple[dict[str, Hits], np.ndarray]] = {}

    def static_runs(self, text: str) -> tuple[dict[str, Hits], np.ndarray]:
        """Runs of the stateless strategies at full budget depth, computed once per query text."""
        if text not in self._static:
            query = Query(text=text, k=self.k)
            vector = self.pipeline.engine.encode_query(query)
            runs = {
                a: self.pipeline.strategies[a].retrieve(query, self.budget, vector=vector)
                for a in ("lexical", "structured", "dense:text")
            }
            self._static[text] = (runs, vector)
        return self._static[text]

    def logged_order(self, fused: list[FusedHit], promote_fresh: float, now: float) -> list[FusedHit]:
        """The fused order, or with ``promote_fresh`` > 0 its first ``rank_depth`` candidates re-ordered by
        ``1 - i/n + promote_fresh × freshness`` (the freshness feature of the ranker)."""
        if promote_fresh <= 0:
            return fused
        head = fused[: self.pipeline.config.rank_depth]
        rows = [self.pipeline.engine.row_of(h.id) for h in head]
        meta = self.pipeline.item_meta(rows)
        fresh = [freshness(meta[r][0], now) if r in meta else 0.0 for r in rows]
        score = [1.0 - i / len(head) + promote_fresh * f for i, f in enumerate(fresh)]
        order = sorted(range(len(head)), key=lambda i: (-score[i], i))
        return [head[i] for i in order] + fused[len(head) :]

    def reset(self) -> None:
        self.pipeline.start_over()
        self.pipeline.memory.stats = clone_stats(self.base_memory)
        self.pipeline.memory.history_ = {k: list(v) for k, v in self.base_history.items()}
        self.pipeline.popularity.clear()
        self.pipeline.explore.rng = np.random.default_rng(self.seed)

    def run(
        self,
        policy: LinearBandit | Sequence[str],
        *,
        randomize: float = 0.0,
        keep: bool = False,
        features: bool = False,
        learn_memory: bool = True,
        promote_fresh: float = 0.0,
    ) -> dict[str, Any]:
        """Run one policy (a bandit, or a fixed set of arms) over the query stream.

        ``promote_fresh`` > 0 makes the logged order that of a production ranker with a freshness boost:
        the top candidates are shown by ``fused rank score + promote_fresh × freshness``, so where an
        item is shown follows a feature that has nothing to do with relevance."""
        self.reset()
        rng = np.random.default_rng(self.seed + 1)
        success = np.zeros(len(self.queries), dtype=bool)
        steps: list[Step] = []
        chosen: dict[str, int] = {}
        held = self.pipeline.policy
        if isinstance(policy, LinearBandit):  # the deployment's policy is the one simulated: what reads its state
            self.pipeline.policy = policy  # (the day-zero rules, the tuned fusion's handover) reads this one's
        try:
            for t, sq in enumerate(self.queries):
                query = Query(text=sq.text, k=self.k, user=SIM_USER, logged=True)  # a logged search by a known user
                static, vector = self.static_runs(sq.text)
                prepared = self.pipeline.prepare(query, now=self.now + 60 * t, vector=vector)
                if isinstance(policy, LinearBandit):
                    plan = self.pipeline.plan(prepared, policy)
                else:
                    plan = equal_plan(policy, prepared.available, self.budget)
                # no dense back-fill: every plan, fixed or learned, is judged on its own strategies
                found = self.pipeline.candidates(prepared, plan, vector, cached=static, backfill=False)
                fused = found.fused
                ordered = self.logged_order(fused, promote_fresh, self.now + 60 * t)
                top = self.pipeline.arrange(prepared, plan, ordered, found.explored, self.k)
                randomized = bool(rng.random() < randomize)
                if randomized:
                    top = [top[i] for i in rng.permutation(len(top))]
                shown = [h.id for h in top]
                clicked = clicks(shown, sq.relevant, rng, eta=self.eta)
                success[t] = any(i in sq.relevant for i in shown)
                X = None
                if features:  # before this impression's feedback reaches the memory index (no label leakage)
                    X = candidate_features(
                        self.pipeline,
                        query,
                        vector,
                        fused[: self.pipeline.config.rank_depth],
                        prepared.understanding,
                        now=self.now + 60 * t,
                    )
                for a in plan.allocations:
                    chosen[a.strategy] = chosen.get(a.strategy, 0) + 1
                if learn_memory:
                    key = normalize_query(sq.text)
                    self.pipeline.memory.add_impression(key, shown)
                    for item_id, c in zip(shown, clicked, strict=True):
                        if c:
                            self.pipeline.memory.add_action(key, item_id, 1.0)
                            self.pipeline.popularity[item_id] = self.pipeline.popularity.get(item_id, 0.0) + 1.0
                if isinstance(policy, LinearBandit):
                    learn(policy, prepared.x, [a.strategy for a in plan.allocations], provenance(top), clicked)
                if keep:
                    steps.append(Step(sq, prepared.x, plan, fused, shown, clicked, randomized, bool(success[t]), X))
        finally:
            self.pipeline.policy = held
        return {"success": success, "steps": steps, "chosen": chosen}


def learn(
    policy: LinearBandit,
    x: np.ndarray,
    arms: Sequence[str],
    prov: Sequence[Sequence[str]],
    clicked: Sequence[bool],
) -> None:
    """Semi-bandit credit: arms that supplied shown items are observed, and rewarded if one was clicked
    (``prov``: per shown item, the names of the strategies that found it)."""
    sources = [set(p) for p in prov]
    supplied = sorted({a for a in arms if any(a in s for s in sources)})
    policy.observe(x, supplied)
    for arm in supplied:
        if any(c and arm in s for c, s in zip(clicked, sources, strict=True)):
            policy.credit(x, arm, 1.0)


def logged_lists(steps: Sequence[Step]) -> list[LoggedList]:
    """Training lists from simulated impressions: features of the shown items, their positions, clicks."""
    out = []
    for step in steps:
        if step.X is None:
            continue
        row_of = {h.id: i for i, h in enumerate(step.fused[: len(step.X)])}
        rows = [row_of[i] for i in step.shown if i in row_of]
        positions = [p + 1 for p, i in enumerate(step.shown) if i in row_of]
        labels = [float(c) for i, c in zip(step.shown, step.clicked, strict=True) if i in row_of]
        out.append(LoggedList(step.X[rows], positions, labels))
    return out


def ranker_experiment(
    sim: Simulator,
    *,
    train_fraction: float = 0.7,
    randomize: float = 0.1,
    arms: Sequence[str] = ("lexical", "structured", "dense:text", "memory"),
    seed: int = 0,
    promote_fresh: float = 0.0,
) -> dict[str, Any]:
    """Log sessions under a fixed plan (a share of them with randomised positions), train lambdarank with
    and without propensity correction on the first part, and compare nDCG@10 on the held-out rest.

    ``promote_fresh`` > 0 logs under a freshness-boosted order (:meth:`Simulator.logged_order`): naive
    click training then mistakes "shown high" for "relevant" and learns the boost; propensity weighting
    should not."""
    steps: list[Step] = sim.run(arms, randomize=randomize, keep=True, features=True, promote_fresh=promote_fresh)[
        "steps"
    ]
    cut = int(len(steps) * train_fraction)
    train, test = steps[:cut], steps[cut:]
    lists = logged_lists(train)
    rand = [(p + 1, c) for s in train if s.randomized for p, c in enumerate(s.clicked)]
    props = estimate_propensities([p for p, _ in rand], [c for _, c in rand], sim.k)
    results: dict[str, Any] = {
        "train_sessions": len(train),
        "test_sessions": len(test),
        "randomized_sessions": sum(s.randomized for s in train),
        "promote_fresh": promote_fresh,
        "propensities": [round(float(p), 4) for p in props],
    }
    ndcg: dict[str, list[float]] = {"fused": []}
    models = {}
    for name, weights in (("naive", None), ("ipw", props)):
        X, y, groups, w = training_set(lists, weights)
        models[name] = LambdaRanker(seed=seed).fit(X, y, groups, sample_weight=w, feature_names=sim.pipeline.features)
        ndcg[name] = []
    for step in test:
        if step.X is None or not len(step.X):
            continue
        cands = [h.id for h in step.fused[: len(step.X)]]
        ndcg["fused"].append(ndcg_at(cands, step.query.relevant))
        for name, model in models.items():
            scores = model.score(step.X)
            order = [cands[i] for i in sorted(range(len(cands)), key=lambda i: (-scores[i], i))]
            ndcg[name].append(ndcg_at(order, step.query.relevant))
    results["ndcg@10"] = {k: round(float(np.mean(v)), 4) for k, v in ndcg.items()}
    base = results["ndcg@10"]["fused"]
    results["relative_gain"] = {k: round(v / base - 1, 4) for k, v in results["ndcg@10"].items() if k != "fused"}
    results["freshness_gain_share"] = {k: round(m.importance()["freshness"], 4) for k, m in models.items()}
    results["models"] = models
    return results
