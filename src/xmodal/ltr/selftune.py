"""Self-tuned, query-dependent fusion: fitted on the catalog's own pseudo-queries before any feedback.

A new index has no feedback, so the bandit's plan and the runs' weights start from nothing; the catalog
still says a lot about which strategy answers which kind of query. :func:`tune` makes pseudo-queries from
a sample of items (:mod:`.pseudo`), runs every relevance strategy the query can use (for :data:`BATCH`
queries at once: dense search as matrix searches, the lexical and structured strategies' BM25F on the
full-text index's postings held in memory, :mod:`xmodal.store.bm25_matrix`; :func:`_runs`), and scores each of a
fixed set of fusion *configurations* (a weight per strategy, 0 leaving its run out, optionally scaled by
each run's query-performance prediction, :func:`.fusion.committed_weights`) by the nDCG@10 it gives the
query's judged items. A ridge regression per configuration then predicts that gain from features of the
query and of the runs it produced (:func:`features`: the query context of :mod:`.context`; each run's
top score, margin, spread, NQC and fill; the overlap between runs' heads), and a query is fused with the
configuration of highest predicted gain, unless it beats the configuration best on average (the anchor)
by less than a margin chosen on held-out items (:class:`TunedFusion`). The same pseudo-queries give the
bandit a prior (each strategy's linear model starts from how often its head held a judged item) when the model
is not used: a model in use chose "the untuned plan" for some queries as the policy planned them unseeded.

Items are split, not queries: one in four items' pseudo-queries (all kinds) are held out and judge the
fitted model against the untuned default on the same queries; the model is used only if it is at least as
good there (``accepted``, with both figures in ``tuning.json`` and in ``explain``). It is refitted by
running :func:`tune` again (``xmodal ltr tune``, or :mod:`.autotune` in the background of writes) and hands
over to the bandit once the policy has learned from :data:`HANDOVER` observations of real searches.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError, StorageError
from ..records import Hits, Item, Query, VectorKind
from ..store import bm25_matrix
from ..vectormath import normalize
from .context import CONTEXT_FEATURES
from .fusion import NORMALISERS, commitment, fuse
from .pseudo import KINDS, CatalogWords, PseudoQuery, content, draw, pseudo_queries, words
from .strategies.base import BatchStrategy
from .text import stem
from .tuned import (
    HEAD,
    PRIOR_WEIGHT,
    Configuration,
    TunedFusion,
    Untunable,
    configurations,
    features,
    gain,
    pick,
    tuned_depths,
)

if TYPE_CHECKING:
    from ..extension import EngineView
    from .pipeline import Pipeline

LAMBDAS = (0.3, 3.0, 30.0, 300.0)  # ridge penalties tried; the one best on the held-out items is kept
MARGINS = (0.0, 0.01, 0.03, 0.1)  # how much better than the anchor a prediction must be (chosen the same way)
HOLD_OUT = 4  # one item in this many is held out
MIN_QUERIES = 200  # fewer pseudo-queries than this: too small a catalog to tune on
BATCH = 1_024  # pseudo-queries retrieved together (each batching strategy bounds its own matrix searches)
VOCABULARY = 5_000  # the most frequent content words of the catalog a paraphrase draws its words from


@dataclass(slots=True)
class _Observed:
    query: PseudoQuery
    x: np.ndarray
    gains: np.ndarray  # per configuration, then the untuned plan's
    context: np.ndarray  # the policy's context vector
    supplied: dict[str, float]  # per strategy that ran: 1 when its head holds a judged item


def sample_items(items: Sequence[Item], most: int, seed: int) -> list[Item]:
    """At most ``most`` items, chosen by a seeded hash of their ids (stable as the catalog grows)."""
    ranked = sorted(items, key=lambda item: draw(seed, f"sample\x00{item.id}"))
    return ranked[:most]


def held_out(item: str, seed: int) -> bool:
    return draw(seed, f"split\x00{item}") % HOLD_OUT == 0


def _fit(X: np.ndarray, Y: np.ndarray, penalty: float) -> np.ndarray:
    """Ridge regression of every column of ``Y`` on ``X`` (standardised) plus an unpenalised intercept."""
    Xb = np.hstack([X, np.ones((len(X), 1))])
    reg = np.eye(Xb.shape[1]) * penalty
    reg[-1, -1] = 0.0
    coef: np.ndarray = np.linalg.solve(Xb.T @ Xb + reg, Xb.T @ Y)
    return coef


def _realised(X: np.ndarray, gains: np.ndarray, coef: np.ndarray, anchor: int, margin: float) -> np.ndarray:
    chosen = pick(np.hstack([X, np.ones((len(X), 1))]) @ coef, anchor, margin)
    out: np.ndarray = gains[np.arange(len(gains)), chosen]
    return out


def tune(
    pipeline: Pipeline,
    *,
    sample: int = 1_000,
    seed: int = 0,
    kinds: Sequence[str] = KINDS,
    progress: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
) -> TunedFusion | None:
    """Fit the fusion model on pseudo-queries of up to ``sample`` items; None when ``stop`` is set meanwhile.
    Raises :class:`~.tuned.Untunable` when the catalog is too small or has too little text to make
    :data:`MIN_QUERIES` queries of."""
    engine = pipeline.engine
    bm25_matrix.prepare(engine.fulltext)  # the rows' terms load meanwhile: the lexical runs score on them
    try:
        return _tune(pipeline, sample=sample, seed=seed, kinds=kinds, progress=progress, stop=stop)
    finally:
        bm25_matrix.release(engine.fulltext)  # the fit is over: its postings' memory goes


def _tune(
    pipeline: Pipeline,
    *,
    sample: int,
    seed: int,
    kinds: Sequence[str],
    progress: Callable[[int, int], None] | None,
    stop: threading.Event | None,
) -> TunedFusion | None:
    started = time.perf_counter()
    engine = pipeline.engine
    seq = engine.last_seq()  # the catalog as of this change (what the autotuner measures growth from)
    everything = [stored.item for stored in engine.iter_items()]
    chosen = sample_items([i for i in everything if i.parent is None], sample, seed)
    catalog = CatalogWords(everything, wanted=chosen)  # read once: the paraphrases' vocabulary, the judgments
    similar = None
    if "paraphrase" in kinds:
        similar = word_neighbours(engine, catalog.frequency, chosen, stop)
        if similar is None:  # stopped
            return None
    queries = pseudo_queries(chosen, seed, kinds, catalog=catalog, similar=similar)
    if len(queries) < MIN_QUERIES:
        raise Untunable(
            f"the catalog is too small or has too little text to tune on: {len(queries)} pseudo-queries from "
            f"{len(chosen)} items, {MIN_QUERIES} needed",
            seq,
        )
    arms = tuned_arms(pipeline)
    configs = configurations(arms)
    asked = [Query(text=q.text, k=HEAD) for q in queries]
    vectors = engine.encode_queries(asked)  # one encoder call for every pseudo-query
    observed: list[_Observed] = []
    for start in range(0, len(queries), BATCH):
        if stop is not None and stop.is_set():
            return None
        end = start + BATCH
        part = _observe_many(pipeline, queries[start:end], asked[start:end], vectors[start:end], arms, configs, stop)
        if part is None:
            return None
        observed += part
        if progress is not None:
            progress(min(end, len(queries)), len(queries))
    model = _select(observed, arms, configs, seed)
    model.report.update(
        {
            "items": len(everything),
            "seq": seq,
            "sampled": len(chosen),
            "queries": len(queries),
            "kinds": {k: sum(1 for q in queries if q.kind == k) for k in kinds},
            "seconds": round(time.perf_counter() - started, 3),
            "at": time.time(),
        }
    )
    return model


def tuned_arms(pipeline: Pipeline) -> tuple[str, ...]:
    """The strategies the model weighs: every relevance strategy but the generative one; of the dense views, only
    the text one (the pseudo-queries are text), as the untuned plan keeps a query's own view unless
    ``LTRConfig.views`` (:meth:`~.pipeline.Pipeline.untuned_plan`): a text query's search of the image vectors
    adds runs the plan would not draw, and three times as many configurations to choose among."""
    specs = pipeline.specs
    return tuple(
        name
        for name, spec in specs.items()
        if not spec.explores
        and spec.family != "generative"
        and (pipeline.config.views or spec.kind is None or spec.kind == VectorKind.TEXT)
    )


def _encode_words(engine: EngineView, vocabulary: Sequence[str], stop: threading.Event | None) -> np.ndarray | None:
    parts = []
    for i in range(0, len(vocabulary), 256):
        if stop is not None and stop.is_set():
            return None
        parts.append(engine.encode_queries([Query(text=w) for w in vocabulary[i : i + 256]]))
    return normalize(np.vstack(parts))


def word_neighbours(
    engine: EngineView, frequency: Mapping[str, int], items: Sequence[Item], stop: threading.Event | None = None
) -> Callable[[str], str | None] | None:
    """For each content word of ``items``' text, the closest of the catalog's :data:`VOCABULARY` most frequent
    content words under the index's encoder that is another word (not the same stem): what a paraphrase
    says instead (:mod:`.pseudo`'s ``paraphrase`` kind). None when ``stop`` is set meanwhile."""
    vocabulary = sorted(frequency, key=lambda w: (-frequency[w], w))[:VOCABULARY]
    needed = sorted({w.lower() for item in items for w in words(item.text) if content(w)})
    if not vocabulary or not needed:
        return lambda word: None
    V, Q = _encode_words(engine, vocabulary, stop), _encode_words(engine, needed, stop)
    if V is None or Q is None:
        return None
    stems_of = [stem(v) for v in vocabulary]
    found: dict[str, str] = {}
    for start in range(0, len(needed), 2048):
        sims = Q[start : start + 2048] @ V.T
        nearest = np.argsort(-sims, axis=1)[:, :8]
        for word, row in zip(needed[start : start + 2048], nearest, strict=True):
            own = stem(word)
            match = next((vocabulary[j] for j in row if stems_of[j] != own and vocabulary[j] != word), None)
            if match is not None:
                found[word] = match
    return found.get


def _observe_many(
    pipeline: Pipeline,
    pseudo: Sequence[PseudoQuery],
    queries: Sequence[Query],
    vectors: np.ndarray,
    arms: Sequence[str],
    configs: Sequence[Configuration],
    stop: threading.Event | None = None,
) -> list[_Observed] | None:
    """What :func:`tune` learns from each of a batch of pseudo-queries: every query prepared and planned (in
    order, as one by one), then each strategy's runs for the whole batch retrieved together (:func:`_runs`),
    each at the deepest any use of it needs (the untuned plan's depth, the tuned plan's share, and
    ``budget``), then per query the untuned plan's fused list (its runs cut to its depths), every
    configuration's gain on the runs cut to the tuned shares, and the features. None when ``stop`` is set
    meanwhile (looked at between two strategies' runs and between two queries)."""
    prepared = [pipeline.prepare(query, vector=vector) for query, vector in zip(queries, vectors, strict=True)]
    plans = [pipeline.untuned_plan(p) for p in prepared]
    budget = pipeline.config.budget
    wanted: list[dict[str, int]] = []
    for p, plan in zip(prepared, plans, strict=True):
        usable = [a for a in arms if a in p.available]
        deepest = max([budget, *(a.depth for a in plan.allocations)])
        wanted.append(dict.fromkeys((a for a in {*usable, *plan.depths()} if a in arms), deepest))
    fetched = _runs(pipeline, queries, vectors, wanted, stop)
    if fetched is None:
        return None
    out = []
    for i, (q, p, plan) in enumerate(zip(pseudo, prepared, plans, strict=True)):
        if stop is not None and stop.is_set():
            return None
        full = fetched[i]
        default = pipeline.candidates(p, plan, vectors[i], cached=full).fused  # each run cut to its depth
        usable = [a for a in arms if a in p.available]
        runs = {a: full[a].take(range(min(d, len(full[a])))) for a, d in tuned_depths(usable, budget).items()}
        gains = all_gains(pipeline.config.fusion, runs, configs, q.relevant)
        relevant = set(q.relevant)
        supplied = {a: float(bool(relevant & set(hits.ids[:HEAD].tolist()))) for a, hits in full.items()}
        x = features(p.x, runs, arms)
        out.append(_Observed(q, x, np.append(gains, gain(default, q.relevant)), p.x, supplied))
    return out


def _runs(
    pipeline: Pipeline,
    queries: Sequence[Query],
    vectors: np.ndarray,
    wanted: Sequence[Mapping[str, int]],
    stop: threading.Event | None = None,
) -> list[dict[str, Hits]] | None:
    """Per query, the run of each strategy ``wanted`` names at the depth it names: a strategy that answers many
    queries at once (:class:`.strategies.base.BatchStrategy`, dense search: one matrix search) in one call for
    the batch, the others (or one whose batch call cannot run) query by query (:meth:`Pipeline.run`). None
    when ``stop`` is set meanwhile."""
    out: list[dict[str, Hits]] = [{} for _ in queries]
    by_strategy: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for i, depths in enumerate(wanted):
        for name, depth in depths.items():
            by_strategy[name].append((i, depth))
    for name, asked in by_strategy.items():
        if stop is not None and stop.is_set():
            return None
        strategy = pipeline.strategies.get(name)
        found: list[Hits] | None = None
        if isinstance(strategy, BatchStrategy):
            try:
                found = strategy.retrieve_many([(queries[i], depth, vectors[i]) for i, depth in asked])
            except (ConfigError, StorageError):  # each query runs it alone: a failure costs that query only
                found = None
        if found is None:
            found = []
            for i, depth in asked:
                if stop is not None and stop.is_set():
                    return None
                found.append(pipeline.run(name, queries[i], depth, vectors[i]))
        for (i, _), hits in zip(asked, found, strict=True):
            out[i][name] = hits
    return out


def _applied(runs: Mapping[str, Hits], configs: Sequence[Configuration]) -> list[dict[str, float]]:
    """``[c.apply(runs) for c in configs]`` with each run's NQC computed once, not once per configuration."""
    known = {name: commitment(hits) for name, hits in runs.items()}
    return [config.apply(runs, known) for config in configs]


@lru_cache(maxsize=16)
def _grid(configs: tuple[Configuration, ...], names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Each configuration's weight of each of ``names`` (configurations × names), and whether it is committed."""
    grid = np.array([[dict(c.weights).get(name, 0.0) for name in names] for c in configs], dtype=np.float64)
    grid.flags.writeable = False
    return grid, np.array([c.committed for c in configs])


def weight_matrix(names: Sequence[str], runs: Mapping[str, Hits], configs: Sequence[Configuration]) -> np.ndarray:
    """The weight each configuration gives each run (``names`` × configurations, 0: left out): what
    :meth:`.tuned.Configuration.apply` gives, for every configuration at once. A configuration's weights on the
    runs that found anything (all of them equally when it weighs none of those), each scaled by its run's NQC
    over the largest NQC among the runs the configuration keeps when it is ``committed`` (unless none of those
    filled the NQC's depth, one scored below 0 there, or none has any NQC: :func:`.fusion.committed_weights`)."""
    if not names:
        return np.zeros((0, len(configs)))
    found = np.array([len(runs[name]) > 0 for name in names])
    grid, committed = _grid(tuple(configs), tuple(names))
    given = np.where(found[None, :] & (grid > 0), grid, 0.0)
    kept = given > 0
    none = ~kept.any(axis=1)
    given[none] = found.astype(np.float64)  # none of its strategies ran: every run that did, equally
    kept[none] = found
    facts = [commitment(runs[name]) for name in names]
    nqcs = np.array([f.nqc for f in facts])
    filled = np.array([f.filled for f in facts])
    negative = np.array([f.negative for f in facts])
    best = np.where(kept, nqcs[None, :], -np.inf).max(axis=1)
    scaled = committed & (kept & filled[None, :]).any(axis=1) & ~(kept & negative[None, :]).any(axis=1) & (best > 0.0)
    out = given.copy()
    out[scaled] = given[scaled] * nqcs[None, :] / best[scaled, None]
    result: np.ndarray = out.T
    return result


def all_gains(
    fusion: str, runs: Mapping[str, Hits], configs: Sequence[Configuration], relevant: Sequence[str]
) -> np.ndarray:
    """The gain of every configuration on one query's runs. For a convex fusion (the default) all at once:
    the runs' normalised scores (a candidate × run matrix, as :func:`.fusion.convex` computes them) times
    each configuration's weights, ranked as :func:`.fusion.fuse` ranks (ties by item id); any other fusion
    one configuration at a time through :func:`.fusion.fuse`."""
    normaliser = NORMALISERS.get(fusion.removeprefix("convex-")) if fusion.startswith("convex-") else None
    if normaliser is None:
        fused = [fuse(fusion, {name: runs[name] for name in w}, w) for w in _applied(runs, configs)]
        return np.array([gain(f, relevant) for f in fused])
    names = sorted(runs)
    ids = sorted({i for name in names for i in runs[name].ids.tolist()})
    if not ids:
        return np.zeros(len(configs))
    position = {item: i for i, item in enumerate(ids)}
    S = np.zeros((len(ids), len(names)))
    present = np.zeros((len(ids), len(names)))
    for j, name in enumerate(names):
        hits = runs[name]
        if len(hits) == 0:
            continue
        scaled = normaliser(np.asarray(hits.scores, dtype=np.float64))
        seen: set[str] = set()
        for item, value in zip(hits.ids.tolist(), scaled.tolist(), strict=True):
            if item not in seen:
                seen.add(item)
                S[position[item], j] = value
                present[position[item], j] = 1.0
    W = weight_matrix(names, runs, configs)
    totals = np.round(S @ W, 12)  # candidates × configurations
    totals[present @ (W > 0) == 0] = -np.inf  # found by no run the configuration fuses: not in its list
    wanted = [position[i] for i in relevant if i in position]
    if not wanted:
        return np.zeros(len(configs))
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(set(relevant)), HEAD)))
    out = np.zeros(len(configs))
    order = np.arange(len(ids))
    for row in wanted:
        mine = totals[row]
        if not np.isfinite(mine).any():
            continue
        ahead = (totals > mine).sum(axis=0) + ((totals == mine) & (order < row)[:, None]).sum(axis=0)
        out += np.where((ahead < HEAD) & np.isfinite(mine), 1.0 / np.log2(ahead + 2.0), 0.0)
    return out / ideal


def _select(
    observed: Sequence[_Observed], arms: Sequence[str], configs: Sequence[Configuration], seed: int
) -> TunedFusion:
    train = [o for o in observed if not held_out(o.query.item, seed)]
    valid = [o for o in observed if held_out(o.query.item, seed)]
    X = np.stack([o.x for o in train])
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale < 1e-9] = 1.0
    Xt, Yt = (X - mean) / scale, np.stack([o.gains for o in train])
    Xv, Yv = (np.stack([o.x for o in valid]) - mean) / scale, np.stack([o.gains for o in valid])
    best_fixed = int(np.argmax(Yt.mean(axis=0)))  # the anchor
    fits = {penalty: _fit(Xt, Yt, penalty) for penalty in LAMBDAS}
    tried = {
        (penalty, margin): _realised(Xv, Yv, fits[penalty], best_fixed, margin)
        for penalty in LAMBDAS
        for margin in MARGINS
    }
    penalty, margin = max(tried, key=lambda pm: (round(float(tried[pm].mean()), 4), pm[1], pm[0]))
    realised = tried[(penalty, margin)]
    default = Yv[:, -1]
    by_kind: dict[str, dict[str, float]] = {}
    groups: dict[str, list[int]] = defaultdict(list)
    for i, o in enumerate(valid):
        groups[o.query.kind].append(i)
    for kind, rows in sorted(groups.items()):
        by_kind[kind] = {
            "queries": len(rows),
            "tuned": round(float(realised[rows].mean()), 4),
            "default": round(float(default[rows].mean()), 4),
            "best_fixed": round(float(Yv[rows, best_fixed].mean()), 4),
        }
    report = {
        "penalty": penalty,
        "anchor": best_fixed,
        "margin": margin,
        "validation": {
            "queries": len(valid),
            "tuned": round(float(realised.mean()), 4),
            "default": round(float(default.mean()), 4),
            "best_fixed": round(float(Yv[:, best_fixed].mean()), 4),
            "by_kind": by_kind,
        },
        "accepted": bool(realised.mean() >= default.mean()),
    }
    coef = _fit(np.vstack([Xt, Xv]), np.vstack([Yt, Yv]), penalty)  # refitted on every item once chosen
    return TunedFusion(arms, configs, mean, scale, coef, report, _prior(observed, arms))


def _prior(observed: Sequence[_Observed], arms: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each strategy's pseudo-observations as a bandit's (A, b) increments, scaled to :data:`PRIOR_WEIGHT`."""
    dim = len(CONTEXT_FEATURES)
    A, b = np.zeros((len(arms), dim, dim)), np.zeros((len(arms), dim))
    weight = PRIOR_WEIGHT / max(len(observed), 1)
    for o in observed:
        outer = np.outer(o.context, o.context)
        for i, arm in enumerate(arms):
            if arm in o.supplied:
                A[i] += weight * outer
                b[i] += weight * o.supplied[arm] * o.context
    return A, b
