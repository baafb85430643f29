"""The learned retrieval pipeline: understand → featurise → plan → retrieve → fuse → rank.

One :class:`Pipeline` per engine (opened by the ``ltr`` extension). Its strategies come from the strategy
registry (:mod:`xmodal.ltr.strategies.registry`) as configured (``LTRConfig.strategies``, else the index's
``ltr/strategies.json``, else the defaults), each with a spec the pipeline reasons on. It owns the bandit
policy (one arm per strategy) and the optional ranker, learns online from the feedback log (impressions
observe the strategies that supplied shown items; positive events credit them), and persists its derived
state under ``<index>/ltr/``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..courtesy import step_aside
from ..errors import ConfigError, StorageError, ValidationError, XmodalError
from ..feedback.postgres_log import PostgresFeedbackLog
from ..provenance import names_of
from ..records import Hits, Query, VectorKind
from ..store.files import folder_lock
from ..store.sqlite import StoredItem
from ..store.termstats import checked_once
from . import explore_config, strategy_config
from .completion import complete
from .context import ANSWERED_RATE, CONTEXT_FEATURES, context_vector, query_context, unanswered
from .exploration import ExploreBudget, ExploreSettings, eligible, place
from .features import FeatureLayout, align, candidate_features
from .fusion import FusedHit, committed_weights, fuse, to_hits
from .item_meta import ItemMeta
from .phrase import query_name, query_phrase, tiers_first
from .policy import Allocation, LinearBandit, Plan, allocate, equal_plan, load_policy, make_policy
from .ranker import LambdaRanker
from .repeats import Repeats, Shown, demote, may_turn, passed_over, pin, query_key, turns_over
from .scores import SCORE_MEANING, relevance, shown_scores
from .strategies import (
    ExploreStrategy,
    LexicalStrategy,
    MemoryStrategy,
    QueryUnderstanding,
    Strategy,
    Understanding,
)
from .strategies.base import BatchStrategy
from .strategies.registry import Built, Probe, StrategyContext, StrategySpec, build_strategies
from .text import compound, stems
from .tuned import FOLDER as TUNED_FOLDER
from .tuned import (
    HANDOVER,
    NO_MODEL,
    UNTUNABLE,
    Configuration,
    TunedFusion,
    Untunable,
    fitted_on,
    load_untunable,
    save_untunable,
    tuned_depths,
)

if TYPE_CHECKING:
    from ..extension import EngineView
    from ..feedback.base import FeedbackStore
    from ..feedback.log import Event, Impression

log = logging.getLogger(__name__)


EXPLORE_MODES = ("always", "unanswered", "never")
#: names of the learned states shared through a PostgreSQL store (:mod:`xmodal.store.postgres_state`)
POLICY_STATE, RANKER_STATE = "ltr/policy", "ltr/ranker"
#: over a shared store, the policy is saved there after this many impressions learned from (and at checkpoints)
SHARE_EVERY = 1000
#: whether a search's explanation lists each hit (its raw strategy scores and features): the per-hit part only
#: a caller that shows the explanation needs (:func:`hits_unexplained`); the plan and context are always there
_EXPLAIN_HITS: ContextVar[bool] = ContextVar("xmodal_ltr_explain_hits", default=True)


@contextmanager
def hits_unexplained() -> Iterator[None]:
    """Searches run in this block (on this thread or task) leave the per-hit part (``hits``) out of their
    explanation: for a caller that keeps the explanation only to log the impression (its ``context``, ``plan``
    and ``mode``), as the server does for a search not asked to ``explain``."""
    token = _EXPLAIN_HITS.set(False)
    try:
        yield
    finally:
        _EXPLAIN_HITS.reset(token)


@dataclass(frozen=True, slots=True)
class LTRConfig:
    """Hyperparameters of the pipeline (budget = total candidates drawn per query)."""

    budget: int = 100
    policy: str = "linucb"
    fusion: str = "convex-minmax"
    #: query-dependent fusion: each run's weight scaled by its query-performance prediction
    #: (:func:`fusion.committed_weights`); False fuses with the plan's weights as they are
    committed: bool = True
    #: score completion: the other runs' candidates scored by the lexical strategy (BM25F, :mod:`.completion`),
    #: so a dense-only hit holding the query's words gets their credit; off by default: on the judged sets it
    #: gains on some query kinds and loses a little on others, and it turned a tie into a wrong first hit on a
    #: small catalog (docs/benchmarks.md, "Score completion"); False: absent from a run scores 0 there
    complete: bool = False
    #: every view of a chosen family: the dense search of each vector kind the catalog holds (text, image,
    #: combined) joins the plan when one of them is chosen and their indices are within the policy's margin (at
    #: day zero they all tie), and they are fused as one piece of evidence, an item's best view
    #: (:meth:`LinearBandit.select`'s ``families``, :func:`fusion.convex`'s ``families``); off by default: with
    #: the offline encoder, whose text-to-image similarity goes through ImageNet's class names, it helped the
    #: image and text+image queries of the demo's judged set and hurt its text queries, and it did not take the
    #: demo's off-topic words out of their top three (docs/benchmarks.md, "The day-zero plan"); meant for a
    #: crossmodal encoder. False: the policy's ``max_arms`` strategies, every run counted on its own
    views: bool = False
    explore: str = "unanswered"  # which queries' plans may explore: "always", "unanswered" or "never"
    popularity_weight: float = 0.0
    rank_depth: int = 50
    seed: int = 0
    #: registry names or dotted paths of the strategy sources, in order (None: the index's saved list, else
    #: :data:`~xmodal.ltr.strategies.registry.DEFAULT_STRATEGIES`)
    strategies: tuple[str, ...] | None = None
    #: which calls may explore, how often, and the best position an explored item may take
    #: (:mod:`xmodal.ltr.exploration`; None: the index's ``ltr/exploration.json``, else the defaults)
    exploration: ExploreSettings | None = None
    #: fit the fusion on the catalog's pseudo-queries in the background as it grows (:mod:`.autotune`), from
    #: 1,000 items; None: the index's setting (``xmodal ltr autotune on|off``), on unless turned off there
    #: (docs/benchmarks.md, "The self-tuned fusion by default"); ``xmodal ltr tune`` fits it on request
    autotune: bool | None = None

    def __post_init__(self) -> None:
        if self.explore not in EXPLORE_MODES:
            raise ValidationError("explore", f"unknown mode {self.explore!r}", f"use one of {', '.join(EXPLORE_MODES)}")
        if self.strategies is not None:
            object.__setattr__(self, "strategies", strategy_config.check(self.strategies))


@dataclass(frozen=True, slots=True)
class Prepared:
    """A query made ready for planning: its understanding, logged context and feature vector; its repeat
    key and state (:mod:`xmodal.ltr.repeats`) and what it got last in that state, if anything."""

    query: Query
    understanding: Understanding
    context: dict[str, Any]
    x: np.ndarray
    available: tuple[str, ...]
    key: str = ""
    state: tuple[float, int] = (0.0, 0)
    repeat: Shown | None = None
    answers: tuple[str, ...] = ()  # items acted on for this query at a credible rate, best first
    #: items users looked at for this query and passed over (:func:`repeats.passed_over`), for a failing
    #: query that is re-planned (no repeat in the same state, or its top turns over); empty otherwise
    passed: frozenset[str] = frozenset()
    turnover: bool = False  # a failing query's top turns over without an event (:func:`repeats.turns_over`)


@dataclass(frozen=True, slots=True)
class Candidates:
    """A plan's runs; the relevance strategies' runs fused (``fused``, with the ``weights`` they were fused
    with); and the exploring strategies' items (``explored``), placed later (:func:`exploration.place`)."""

    runs: dict[str, Hits]
    fused: list[FusedHit]
    explored: list[FusedHit]
    weights: dict[str, float]
    configuration: dict[str, Any] | None = None  # the self-tuned model's choice, when it fused them
    phrased: int = 0  # the fused head's items that hold the query's words as a phrase, moved first (:mod:`.phrase`)
    titled: int = 0  # the fused head's items titled with the query's words, moved first (:mod:`.phrase`)
    spare: list[FusedHit] = field(default_factory=list)  # the items of runs that ran but were not fused


def may_explore(mode: str, context: Mapping[str, Any]) -> bool:
    """Whether a query's plan may draw from the exploring strategy: ``always``; ``never``; or ``unanswered``
    (the default), only for a query searched before that rarely got a positive action
    (:func:`context.unanswered`). A new or well-answered query gets the most precise plan, and exploration
    (as the floor, or as the main strategy when the policy rates it best) goes where plans have been failing."""
    if mode == "unanswered":
        return unanswered(context)
    return mode == "always"


class Pipeline:
    """Strategies + contextual bandit + fusion + ranker over one engine."""

    def __init__(
        self,
        engine: EngineView,
        config: LTRConfig | None = None,
        *,
        feedback: FeedbackStore | None = None,
        folder: Path | None = None,
    ) -> None:
        self.engine = engine
        self.config = config or LTRConfig()
        self.dir: Path = folder if folder is not None else engine.path / "ltr"
        self.feedback = feedback
        self.popularity: dict[str, float] = feedback.popularity() if feedback is not None else {}
        self.lexical = LexicalStrategy(engine, popularity_weight=self.config.popularity_weight)
        self.lexical.popularity = self.popularity
        self.understanding = QueryUnderstanding(engine)
        self.memory = MemoryStrategy(engine, feedback, folder=self.dir)  # its state: <dir>/memory.sqlite
        self.explore = ExploreStrategy(
            engine, seed=self.config.seed, understanding=self.understanding, memory=self.memory
        )
        self.explore.popularity = self.popularity
        self.context = StrategyContext(
            engine, self.lexical, self.understanding, self.memory, self.explore, feedback, self.dir, self.config.seed
        )
        self.strategy_names = self.config.strategies or strategy_config.configured(self.dir)
        self.specs: dict[str, StrategySpec] = {}
        self.strategies: dict[str, Strategy] = {}
        self.sources: dict[str, str] = {}
        self.layout = FeatureLayout((), ())
        #: kinds the index holds that the configured strategies serve none of (asked again after a change of them)
        self._unserved: set[str] = set()
        self._install(build_strategies(self.strategy_names, self.context))
        self.shared = feedback.shared_state if feedback is not None else None  # several servers: in the store
        self._policy_marks: tuple[int, int] = (0, 0)  # the shared feedback log's position the loaded policy reflects
        self._unshared = 0  # impressions learned from since the policy was last saved
        self.policy = self._load_policy()
        self.ranker: LambdaRanker | None = None
        self.ranker_status = "no ranker trained: fused order"
        self._load_ranker()
        self._pending: dict[str, tuple[np.ndarray, set[str]]] = {}
        self.repeats = Repeats()
        self.exploration = self.config.exploration or explore_config.configured(self.dir)
        self.explore_budget = ExploreBudget(self.exploration.budget)
        self._catalog_version = 0  # a change to the catalog lets a repeated query's top change
        self.tuned: TunedFusion | None = None
        self.tuned_status = NO_MODEL
        self.untunable: Untunable | None = None  # the last fit's finding, when it found too little to tune on
        self._load_tuned()
        #: called after every write (the ``ltr`` extension's self-tuning, :mod:`.autotune`); they must not read
        #: the catalog through the engine (a write is in progress, or the engine is still opening)
        self.on_grow: list[Callable[[], object]] = []
        self._followers = (self.understanding, self.memory)  # the lexical index is in the store itself
        self._meta = ItemMeta(engine)
        self.dirty = False
        if isinstance(feedback, PostgresFeedbackLog):
            self._follow_shared(feedback)
        elif feedback is not None:
            feedback.subscribe_impressions(self.on_impression)
            feedback.subscribe(self.on_event)

    def _follow_shared(self, feedback: PostgresFeedbackLog) -> None:
        """Over a shared store: learn from every server's feedback, from the position the policy loaded reflects
        (what was logged since it was saved is replayed into it first), and use a ranker trained on any server."""
        with feedback.holding():
            at = feedback.subscribe_from(self._policy_marks, self.on_impression, self.on_event)
            self.popularity.clear()  # the replay counted events the prior had already: counted once, up to `at`
            self.popularity.update(feedback.popularity(until=at[1]))
        if self.shared is not None:
            self.shared.follow(RANKER_STATE, self._ranker_saved)

    def item_meta(self, rows: Sequence[int]) -> dict[int, tuple[float, str]]:
        """(creation time, modality) of each row: the ranker's freshness and modality features (:class:`ItemMeta`)."""
        return self._meta.get(rows)

    def close(self) -> None:
        """Stop background work and close the memory index's state (the policy is saved by :meth:`save`)."""
        try:
            self._meta.close()
        finally:
            self.memory.close()

    # -- keeping in step with the catalog (the LTR extension forwards the engine's changes) ----------
    def on_put(self, stored: Sequence[StoredItem]) -> None:
        self._catalog_version += 1
        self._meta.put({s.row: (s.item.created_at, str(s.item.modality)) for s in stored})
        for follower in self._followers:
            follower.on_put(stored)
        held = self._held_if_new_kind(stored)
        if held:
            self.refresh_strategies()  # the first vectors of a kind: its dense strategy joins
            self._unserved = held - self._served_kinds()  # none configured for it: not asked again per write
        for watcher in self.on_grow:
            watcher()

    def _served_kinds(self) -> set[str]:
        return {str(s.kind) for s in self.specs.values() if s.kind is not None}

    def _held_if_new_kind(self, stored: Sequence[StoredItem]) -> set[str]:
        """The kinds the index holds when ``stored`` (a write, this process's or another's: it comes with its
        vectors) brings a kind no strategy serves yet and the index holds one no strategy serves; else none.
        Only then is the index asked for its kinds and their counts: on a database backend (Milvus) each is a
        server query, and this runs at every write applied."""
        written = {str(kind) for s in stored for kind in s.vectors} - self._served_kinds() - self._unserved
        if not written:
            return set()
        held = set(self.context.vector_kinds())
        return held if held - self._served_kinds() else set()

    def on_delete(self, rows: Sequence[int]) -> None:
        self._catalog_version += 1
        self._meta.delete(rows)
        for follower in self._followers:
            follower.on_delete(rows)

    # -- the strategies ------------------------------------------------------------------------------
    def _install(self, built: Sequence[Built]) -> None:
        self.specs = {b.spec.name: b.spec for b in built}
        self._unserved = set()
        self.strategies = {b.spec.name: b.strategy for b in built}
        self.sources = {b.spec.name: b.source for b in built}  # the registry entry each came from
        kinds = tuple(s.kind for s in self.specs.values() if s.kind is not None)
        self.layout = FeatureLayout(tuple(self.specs), kinds)
        #: with ``config.views``, arm → family for the families with several arms (the dense search of each vector
        #: kind): the policy takes a chosen arm's family-mates within its margin too (:meth:`LinearBandit.select`)
        #: and fusion counts an item's best view among them (:func:`fusion.convex`); else empty
        self.families = _shared_families(self.specs) if self.config.views else {}

    @property
    def features(self) -> tuple[str, ...]:
        """The ranker's feature names for this pipeline's strategies (:class:`FeatureLayout`)."""
        return self.layout.names

    def refresh_strategies(self) -> None:
        """Build the configured strategies again (a new vector kind, a changed list); the policy keeps what
        it learned for every arm and gains a fresh one for each new strategy."""
        self._install(build_strategies(self.strategy_names, self.context))
        self.policy = self._reconcile(self.policy)

    def set_strategies(self, names: Sequence[str], *, save: bool = True) -> None:
        """Use the strategy sources ``names`` from now on (each must load), saved for the index."""
        checked = strategy_config.check(names)
        built = build_strategies(checked, self.context)  # a source that does not load changes nothing
        self.strategy_names = checked
        self._install(built)
        self.policy = self._reconcile(self.policy)
        if save:
            strategy_config.save(self.dir, checked)

    # -- state ------------------------------------------------------------------------------------
    def _explorer(self) -> str | None:
        return next((s.name for s in self.specs.values() if s.explores), None)

    def _load_policy(self) -> LinearBandit:
        if self.shared is not None:  # the newest policy any server saved (this server's folder is only a cache)
            marks = self.shared.load(POLICY_STATE, self.dir / "policy")
            if marks is not None and len(marks) == 2:
                self._policy_marks = (marks[0], marks[1])
                return self._reconcile(load_policy(self.dir / "policy"))
        elif (self.dir / "policy" / "policy.json").exists():
            return self._reconcile(load_policy(self.dir / "policy"))
        return make_policy(
            self.config.policy,
            list(self.strategies),
            len(CONTEXT_FEATURES),
            budget=self.config.budget,
            seed=self.config.seed,
            always=self._explorer(),
        )

    def _reconcile(self, policy: LinearBandit) -> LinearBandit:
        """The policy over this pipeline's arms, in strategy order; arms it has no strategy for now (a
        vector kind deleted, a strategy removed) keep their state at the end."""
        arms = [*self.strategies, *(a for a in policy.arms if a not in self.strategies)]
        if arms == policy.arms:
            return policy
        new = [a for a in arms if a not in policy.arms]
        if new:
            log.info("learned pipeline: new strategies %s join the policy with no history", ", ".join(new))
        return policy.with_arms(arms)

    def _ranker_saved(self) -> None:
        """Another server saved a ranker (``xmodal ltr train`` there): use it here too."""
        if self.shared is not None and self.shared.load(RANKER_STATE, self.dir) is not None:
            self._load_ranker(fetch=False)

    def _load_ranker(self, *, fetch: bool = True) -> None:
        if fetch and self.shared is not None:
            self.shared.load(RANKER_STATE, self.dir)  # the newest ranker any server trained, if any
        path = self.dir / "ranker.txt"
        if not path.exists():
            return
        try:
            self.ranker = LambdaRanker.load(path)
            self.ranker_status = f"lambdarank model {path.name}"
        except XmodalError as exc:  # a broken model never breaks search
            self.ranker, self.ranker_status = None, f"ranker unusable ({exc}): fused order"
            log.warning("%s", self.ranker_status)

    def _load_tuned(self) -> None:
        folder = self.dir / TUNED_FOLDER
        if not (folder / "tuning.json").exists():
            found = load_untunable(folder)
            if found is not None:
                self.set_untunable(found, save=False)
            return
        try:
            self.set_tuned(TunedFusion.load(folder), save=False)
        except XmodalError as exc:  # a broken model never breaks search: the bandit's plan instead
            self.tuned, self.tuned_status = None, f"self-tuned fusion unusable ({exc})"
            log.warning("%s", self.tuned_status)

    def set_tuned(self, model: TunedFusion | None, save: bool = True) -> None:
        """Use the self-tuned fusion ``model`` (:mod:`.selftune`) from now on (None: the bandit's plan only)."""
        self.tuned = model
        if model is None:
            self.tuned_status = NO_MODEL
        elif not model.accepted:
            self.tuned_status = "self-tuned fusion not used: no better than the default on held-out items"
        else:
            self.tuned_status = "self-tuned fusion"
        if model is not None:
            self.untunable = None
        if model is not None and save:
            self.dir.mkdir(parents=True, exist_ok=True)
            with folder_lock(self.dir):
                model.save(self.dir / TUNED_FOLDER)
                (self.dir / TUNED_FOLDER / UNTUNABLE).unlink(missing_ok=True)
            # the bandit's prior, only for a model not used: an accepted model's choice "the untuned plan" was
            # fitted on the plan of the policy as it is (seeding it there cost the judged sets, docs/benchmarks.md)
            if not model.accepted and float(self.policy.counts_.sum()) == 0:  # no real search learned from yet
                policy = self.policy.with_arms(self.policy.arms)  # a copy: searches may be reading this one
                model.seed_policy(policy)
                self.policy, self.dirty = policy, True
        self._catalog_version += 1  # a repeated query's top may change with the new fusion

    def set_untunable(self, found: Untunable, save: bool = True) -> None:
        """A fit found the catalog too small, or with too little text, to tune on (:class:`~.tuned.Untunable`):
        without a model in use, ``explain`` says so, and the default mode keeps its untuned fusion (a model fitted
        before, on a larger catalog, stays in use). ``save``: remembered in the index for other processes."""
        self.untunable = found
        if self.tuned is None:
            self.tuned_status = f"not self-tuned: {found.reason}; the untuned fusion instead"
        if save:
            self.dir.mkdir(parents=True, exist_ok=True)
            with folder_lock(self.dir):
                save_untunable(self.dir / TUNED_FOLDER, found)

    def tuned_active(self) -> bool:
        """Whether searches use the self-tuned fusion: one was fitted, beat the default on held-out items, and
        the bandit has not yet learned from :data:`~.selftune.HANDOVER` observations of real searches."""
        return self.tuned is not None and self.tuned.accepted and float(self.policy.counts_.sum()) < HANDOVER

    def set_ranker(self, ranker: LambdaRanker | None, save: bool = True) -> None:
        self.ranker = ranker
        self.ranker_status = "lambdarank model" if ranker is not None else "no ranker trained: fused order"
        if ranker is not None and save:
            self.dir.mkdir(parents=True, exist_ok=True)
            with folder_lock(self.dir):  # another process's save waits its turn (xmodal.store.files)
                ranker.save(self.dir / "ranker.txt")
            if self.shared is not None:  # every server uses it
                self.shared.save(RANKER_STATE, self.dir, ["ranker.txt", "ranker.txt.json"])

    def save(self) -> None:
        """Checkpoint the policy, when it changed since the last save."""
        if not self.dirty:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        if isinstance(self.feedback, PostgresFeedbackLog) and self.shared is not None:
            with self.feedback.holding():  # the policy as it reflects the shared log up to `marks`, exactly
                self.dirty, self._unshared = False, 0
                folder = self.dir / "policy"
                with folder_lock(self.dir):
                    self.policy.save(folder)
                    files = sorted(
                        p.name
                        for p in folder.iterdir()
                        if p.is_file() and not p.name.endswith(".tmp") and not p.name.startswith(".")
                    )
                    self.shared.save(POLICY_STATE, folder, files, self.feedback.delivered())
            return
        with folder_lock(self.dir):  # another process's save waits its turn (xmodal.store.files)
            self.policy.save(self.dir / "policy")
        self.dirty = False

    # -- the query path -----------------------------------------------------------------------------
    def prepare(self, query: Query, now: float | None = None, vector: np.ndarray | None = None) -> Prepared:
        """Understand the query (the attribute values it excludes and its price bounds become a filter of its own,
        :meth:`Understanding.constraints`) and build its context (logged) and feature vector (for the policy); find
        what the same query got last in the same state (:mod:`xmodal.ltr.repeats`), unless it is a failing query
        whose remembered top turns over (:func:`repeats.turns_over`: all of it passed over; at most once in
        ``TURNOVER`` searches without an event)."""
        found = self.understanding.understand(query.text)
        constraints = found.constraints()
        if constraints is not None:  # "shirt not blue", "bag under 50": every run keeps to them
            query = replace(
                query, filters={"and": [dict(query.filters), constraints]} if query.filters else constraints
            )
        memory = self.memory.facts(query.text)  # read once for the evidence, history, answer rate and answers
        memory_hits = memory.evidence()
        terms = stems(query.text or "")
        user = self.feedback.user_stats(query.user) if self.feedback is not None and query.user else None
        ctx = query_context(
            query,
            slots=found.slots,
            slot_words=len(found.matched),
            memory_hits=memory_hits,
            known_terms=self.lexical.index.known_fraction(terms),
            history=memory.history,
            answer_rate=memory.answer_rate(),
            now=now,
            user=user,
        )
        available = self.available(query, found, memory_hits)
        key, state = query_key(query, vector), (float(ctx["actions"]), self._catalog_version)
        repeat = self.repeats.get(key, state)
        answers = memory.answers(ANSWERED_RATE) if ctx["actions"] else ()
        failing = unanswered(ctx)
        passed = passed_over(memory.pairs) if failing and (repeat is None or may_turn(repeat)) else frozenset()
        turnover = repeat is not None and failing and turns_over(repeat, passed)
        if turnover:
            repeat = None  # a failing query's top turns over: the re-plan of a feedback event
        elif repeat is not None:
            passed = frozenset()
        return Prepared(
            query, found, ctx, context_vector(ctx), available, key, state, repeat, answers, passed, turnover
        )

    def plan(self, prepared: Prepared, policy: LinearBandit | None = None) -> Plan:
        """The plan for a prepared query: while the self-tuned fusion is active (:meth:`tuned_active`), every
        available relevance strategy with an equal share (the model weighs their runs, :meth:`candidates`),
        each drawn at least as deep as the policy's plan draws it (the model may choose that plan instead,
        which then needs no run again), and exploration as the policy's plan has it; else the policy's plan
        (:meth:`untuned_plan`), which a query of another kind than the model was fitted on keeps too
        (:func:`.tuned.fitted_on`: an image, another medium, a target vector kind)."""
        planned = self.untuned_plan(prepared, policy)
        if policy is not None or not self.tuned_active() or self.tuned is None or not fitted_on(prepared.query):
            return planned
        explorer = self._explorer()
        explored = tuple(a for a in planned.allocations if a.strategy == explorer)
        arms = [a for a in self.tuned.arms if a in prepared.available]
        if not arms:
            return planned
        room = planned.budget - sum(a.depth for a in explored)
        deeper = planned.depths()
        relevant = tuple(Allocation(a, max(d, deeper.get(a, 0)), 1.0) for a, d in tuned_depths(arms, room).items())
        leads = bool(explored) and planned.allocations[0].strategy == explorer
        allocations = (*explored, *relevant) if leads else (*relevant, *explored)
        return Plan(allocations, planned.budget, planned.indices, source="tuned", untuned=planned)

    def untuned_plan(self, prepared: Prepared, policy: LinearBandit | None = None) -> Plan:
        """The policy's plan for a prepared query: relevance strategies, and exploration where it may.

        - The relevance strategies are the policy's choice; a repeat of a query in the same state
          (:mod:`xmodal.ltr.repeats`) keeps the ones it had, so its top hits stay.
        - The memory index is kept when this query's results were acted on before: an answer users found
          is never dropped because the policy prefers other strategies for queries like it. For a query
          whose searches keep failing (:func:`context.unanswered`), only when its best item is a credible
          answer (``answer_rate`` at least :data:`context.ANSWERED_RATE`): an item clicked once in many
          showings at the top is not one.
        - Exploration only for a call that may explore (:func:`exploration.eligible`: logged, and by default
          naming a user), a query the config lets explore (:func:`may_explore`), within the deployment's
          budget. It draws its own few candidates (at most k, a quarter of the budget), set aside from the
          relevance strategies' share whether or not this search explores, so their runs do not change
          with it. Its items never go above position ``exploration.top`` (:func:`exploration.place`).
          It *leads* (every position from ``top`` on) for a query whose plans keep failing, or one for which
          the policy rates it best, when its pool is on topic (query understanding found attribute slots, so
          it explores the items that match them); else it is the floor (every second position from ``top``)."""
        ctx = prepared.context
        policy = policy or self.policy
        explorer = self._explorer()
        explore = self._may_explore(prepared, explorer)
        failing = unanswered(ctx)
        credible = not failing or float(ctx.get("answer_rate", 0.0)) >= ANSWERED_RATE
        keep = (self.memory.name,) if ctx.get("actions", 0.0) > 0 and credible else ()
        lead = (str(explorer),) if explore and failing and ctx.get("slots") else ()
        chosen = policy.select(
            prepared.x, prepared.available, explore=explore, keep=keep, lead=lead, families=self.families
        )
        relevant = tuple(a.strategy for a in chosen.allocations if a.strategy != explorer)
        order = self._like_views(prepared, relevant, chosen.indices)
        if prepared.repeat is not None:
            order = tuple(a for a in prepared.repeat.order if a in prepared.available)
        reserve = self._explore_depth(prepared) if explorer is not None else 0
        allocations = allocate(order, chosen.budget - reserve, share=policy.share, min_depth=policy.min_depth)
        role = next((i for i, a in enumerate(chosen.allocations) if a.strategy == explorer), None)
        if role is not None and reserve > 0:
            leads = role == 0 and bool(ctx.get("slots"))  # without slots its pool is the whole catalog: the floor
            explored = Allocation(str(explorer), reserve, 1.0 if leads else policy.floor_weight)
            allocations = (explored, *allocations) if leads else (*allocations, explored)
        return Plan(allocations, chosen.budget, chosen.indices)

    def _like_views(self, prepared: Prepared, order: tuple[str, ...], indices: Mapping[str, float]) -> tuple[str, ...]:
        """``order`` with each chosen view of a family whose views the policy cannot tell apart (their indices
        tie: no feedback yet) replaced by the family's view of the query's own modality (:func:`query_kind`: an
        image query against the items' image vectors, a text query against their text vectors), each family
        once: registry order would put the text view first for every query, and fuse the image query's vector
        with the items' text vectors. With ``config.views`` every view joins instead (:meth:`LinearBandit.select`)."""
        wanted = query_kind(prepared.query)
        if self.config.views or wanted is None:
            return order
        out: list[str] = []
        for name in order:
            spec = self.specs.get(name)
            pick = name
            if spec is not None and spec.kind is not None and spec.kind != wanted:
                mates = [a for a in prepared.available if a in self.specs and self.specs[a].family == spec.family]
                like = next((a for a in mates if self.specs[a].kind == wanted), None)
                if like is not None and like in indices and abs(indices[like] - indices.get(name, np.nan)) < 1e-9:
                    pick = like
            if pick not in out:
                out.append(pick)
        return tuple(out)

    def _may_explore(self, prepared: Prepared, explorer: str | None) -> bool:
        """Whether this search explores: a call that may, a query the config lets explore, and budget left."""
        if explorer is None or explorer not in prepared.available or not self._explores_for(prepared.query):
            return False
        return self.explore_budget.admit(may_explore(self.config.explore, prepared.context))

    def _explores_for(self, query: Query) -> bool:
        settings = self.exploration
        return self.config.explore != "never" and settings.budget > 0 and eligible(query, settings.calls)

    def _explore_depth(self, prepared: Prepared) -> int:
        """Candidates set aside for exploration: at most k and a quarter of the budget, for calls that may explore."""
        if not self._explores_for(prepared.query):
            return 0
        return min(prepared.query.k, self.config.budget // 4)

    def _explores(self, name: str) -> bool:
        spec = self.specs.get(name)
        return spec is not None and spec.explores

    def available(self, query: Query, found: Understanding, memory_hits: int) -> tuple[str, ...]:
        """Strategies that can return anything for this query (each spec judges, see :class:`StrategySpec`)."""
        probe = Probe(query, len(found.slots), memory_hits)
        target = str(query.target)  # read once for every spec
        return tuple(name for name, spec in self.specs.items() if spec.available(probe, target))

    def retrieve(
        self, prepared: Prepared, plan: Plan, vector: np.ndarray | None, cached: Mapping[str, Hits] | None = None
    ) -> dict[str, Hits]:
        """Each planned strategy's run at its depth; ``cached`` holds deeper runs of stateless strategies for
        this query (the simulator's), cut to the planned depth instead of retrieved again."""
        cached = cached or {}
        return {
            a.strategy: (
                cached[a.strategy].take(range(min(a.depth, len(cached[a.strategy]))))
                if a.strategy in cached
                else self.run(a.strategy, prepared.query, a.depth, vector)
            )
            for a in plan.allocations
        }

    def run(self, name: str, query: Query, depth: int, vector: np.ndarray | None) -> Hits:
        """One strategy's run; one that cannot run (no generative model loadable, a part not set up: a
        :class:`ConfigError` or :class:`StorageError`) contributes nothing to this query instead of failing
        the search. A bad query (a :class:`ValidationError`) still fails it."""
        strategy = self.strategies.get(name)
        if strategy is None:
            return Hits.empty()
        step_aside()  # a background (anonymous) search lets foreground ones run between strategies: xmodal.courtesy
        try:
            return strategy.retrieve(query, depth, vector=vector)
        except (ConfigError, StorageError) as exc:
            log.warning("strategy %s failed (%s): left out of this query", name, exc)
            return Hits.empty()

    def candidates(
        self,
        prepared: Prepared,
        plan: Plan,
        vector: np.ndarray | None,
        cached: Mapping[str, Hits] | None = None,
        *,
        backfill: bool = True,
        committed: bool | None = None,
        completed: bool = True,
        phrased: bool = True,
    ) -> Candidates:
        """The plan's runs: the relevance strategies' fused, the exploring strategies' set apart. When the
        relevance strategies found fewer than ``k`` items (and ``backfill``), dense search fills the list up
        (within the budget, fused at half weight). With ``committed`` (default: the config's), each run's
        weight is scaled by its query-performance prediction (:meth:`fusion_weights`); with ``completed``, missing
        scores are completed (:meth:`fuse`); with ``phrased``, the fused head's items that hold the query's words
        as a phrase come first (:mod:`.phrase`)."""
        found = self._candidates(
            prepared, plan, vector, cached, backfill=backfill, committed=committed, completed=completed
        )
        if not phrased:
            return found
        fused, held, titled = self.phrases_first(found.fused, prepared.query.text, prepared.understanding, found.spare)
        return replace(found, fused=fused, phrased=held, titled=titled) if held or titled else found

    def phrases_first(
        self, fused: list[FusedHit], text: str | None, understanding: Understanding, spare: Sequence[FusedHit] = ()
    ) -> tuple[list[FusedHit], int, int]:
        """``fused`` with its head's items that hold ``text``'s words as a phrase first, then before them its items
        titled with those words (:mod:`.phrase`), and how many of each; ``fused`` itself when the query has no
        phrase and no title to look for. No title is looked for when query understanding read attribute slots:
        a query that names an attribute value asks for the members of a category, not for the item of that title
        (docs/benchmarks.md, "Exact titles first"); unless a slot was read from a word that is only a value's last
        level (:attr:`Understanding.leaf`), weaker evidence than a title, or from a part of a compound word
        (:func:`.text.compound`: "libnl-utils" is a name, not the members of ``utils`` that hold "libnl").
        ``spare``: the items of runs that ran but were not fused, which join a tier they belong to
        (:func:`.phrase.tiers_first`)."""
        phrase = query_phrase(text)
        name = None if understanding.slots and not (understanding.leaf or compound(text)) else query_name(text)
        return tiers_first(fused, phrase, name, self.item_texts, spare)

    def item_texts(self, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """Each item's title and text, read alone from the store (deleted ones left out)."""
        rows = {row: item_id for item_id in ids if (row := self.engine.find_row(item_id)) is not None}
        return {rows[row]: texts for row, texts in self.engine.item_texts(list(rows)).items()}

    def _candidates(
        self,
        prepared: Prepared,
        plan: Plan,
        vector: np.ndarray | None,
        cached: Mapping[str, Hits] | None,
        *,
        backfill: bool,
        committed: bool | None,
        completed: bool,
    ) -> Candidates:
        """:meth:`candidates` before the phrase tier."""
        query = prepared.query
        runs = self.retrieve(prepared, plan, vector, cached)
        relevance = {name: hits for name, hits in runs.items() if not self._explores(name)}
        planned = {a.strategy: a.weight for a in plan.allocations if a.strategy in relevance}
        if plan.source == "tuned" and self.tuned is not None:
            return self._tuned_candidates(prepared, plan, vector, runs, relevance)
        understood = prepared.understanding
        weights = self.fusion_weights(relevance, planned, committed, understood)
        fused = self.fuse(relevance, weights, query, vector, completed)
        if backfill and len(fused) < query.k:
            dense = next((a for a in prepared.available if self._family(a) == "dense" and a not in runs), None)
            room = min(query.k, plan.budget - sum(len(h) for h in runs.values()))
            if dense is not None and room > 0:  # candidates drawn stay within the budget
                runs[dense] = relevance[dense] = self.run(dense, query, room, vector)
                weights = self.fusion_weights(relevance, {**planned, dense: 0.5}, committed, understood)
                fused = self.fuse(relevance, weights, query, vector, completed)
        used = {name: w for name, w in weights.items() if len(relevance[name])}  # the scale of the fused scores
        return Candidates(runs, fused, self._explored(runs), used)

    def _tuned_candidates(
        self,
        prepared: Prepared,
        plan: Plan,
        vector: np.ndarray | None,
        runs: dict[str, Hits],
        relevance: dict[str, Hits],
    ) -> Candidates:
        """The runs fused as the self-tuned model chooses for this query, each cut to its equal share (what the
        model was fitted on); the others' items (fused among themselves) are ``spare``: they follow every kept one
        when the runs it keeps found fewer than ``k`` items, and join the phrase tiers (:meth:`phrases_first`).
        When it chooses the untuned plan, or the query asks for the members of a category
        (:meth:`Understanding.ranks_members`), that plan's candidates, from the same runs cut to that plan's
        depths."""
        assert self.tuned is not None
        explored = sum(a.depth for a in plan.allocations if a.strategy not in relevance)
        shares = tuned_depths(list(relevance), plan.budget - explored)
        relevance = {n: hits.take(range(min(shares[n], len(hits)))) for n, hits in relevance.items()}
        # a query for the members of a category keeps the untuned plan's rule (:meth:`fusion_weights`), which no
        # configuration of the model knows of
        members = prepared.understanding.ranks_members()
        configuration = None if members else self.tuned.choose(prepared.x, relevance)
        if configuration is None and plan.untuned is not None:
            found = self._candidates(
                prepared, plan.untuned, vector, runs, backfill=True, committed=None, completed=True
            )
            return replace(found, configuration={"untuned": True})
        if configuration is None:  # a plan made without its fallback: every run, equally
            configuration = Configuration(tuple((n, 1.0) for n in relevance), committed=False)
        weights = configuration.apply(relevance)
        # not completed: the model's gains were measured on runs fused as they are (:func:`.selftune.all_gains`)
        fused = self.fuse({n: relevance[n] for n in weights}, weights, prepared.query, vector, completed=False)
        left = {n: hits for n, hits in relevance.items() if n not in weights and len(hits)}
        spare = [replace(h, score=0.0) for h in fuse(self.config.fusion, left)] if left else []
        if len(fused) < prepared.query.k:
            have = {h.id for h in fused}
            fused += [h for h in spare if h.id not in have]
        used = {n: w for n, w in weights.items() if len(relevance[n])}
        return Candidates(runs, fused, self._explored(runs), used, configuration.to_dict(), spare=spare)

    def fuse(
        self,
        runs: Mapping[str, Hits],
        weights: Mapping[str, float],
        query: Query,
        vector: np.ndarray | None,
        completed: bool = True,
    ) -> list[FusedHit]:
        """The runs fused with ``weights`` by the configured method, each candidate's missing scores completed
        by the runs' strategies (:mod:`.completion`) when ``completed`` and ``config.complete``."""
        filled = None
        if completed and self.config.complete:
            filled = complete(self.strategies, runs, query, vector, self.engine.find_row)
        return fuse(self.config.fusion, runs, weights, filled, self.families)

    def fusion_weights(
        self,
        runs: Mapping[str, Hits],
        planned: Mapping[str, float],
        committed: bool | None = None,
        understanding: Understanding | None = None,
    ) -> dict[str, float]:
        """The weights the runs are fused with: the plan's, each scaled by the run's normalised query
        commitment relative to the most committed run's (:func:`fusion.committed_weights`) when ``committed``
        (default: ``config.committed``), so a run with no signal for this query hardly moves the fused list.

        But when the query's ``understanding`` says it asks for the members of its slots' category that match the
        rest of its words (:meth:`Understanding.ranks_members`: "games chess"), the structured run, which is
        exactly that, keeps its planned weight: many members often match the rest equally well, and a flat run
        has an NQC of 0 (docs/benchmarks.md, "Members of a category")."""
        use = self.config.committed if committed is None else committed
        weights = {name: planned.get(name, 1.0) for name in runs}
        if not use:
            return weights
        scaled = committed_weights(runs, weights)
        if understanding is not None and understanding.ranks_members():
            scaled.update({name: weights[name] for name in runs if self._family(name) == "structured"})
        return scaled

    def _explored(self, runs: Mapping[str, Hits]) -> list[FusedHit]:
        """The exploring strategies' items, in rank order (ties by strategy name), each once."""
        found = sorted(
            (rank, name, item_id, float(score))
            for name, hits in runs.items()
            if self._explores(name)
            for rank, (item_id, score) in enumerate(hits, start=1)
        )
        out: dict[str, FusedHit] = {}
        for rank, name, item_id, score in found:
            out.setdefault(item_id, FusedHit(item_id, 0.0, {name: (rank, score)}))
        return list(out.values())

    def _family(self, name: str) -> str | None:
        spec = self.specs.get(name)
        return None if spec is None else spec.family

    def rank(
        self, prepared: Prepared, vector: np.ndarray | None, fused: list[FusedHit]
    ) -> tuple[list[FusedHit], np.ndarray | None, str]:
        """Re-order the head of the fused list with the ranker (each hit keeps its fused score and gains the
        ranker's); on any failure keep the fused order."""
        if self.ranker is None:
            return fused, None, self.ranker_status
        head = fused[: self.config.rank_depth]
        try:
            X = candidate_features(self, prepared.query, vector, head, prepared.understanding)
            scores = self.ranker.score(align(X, self.features, self.ranker.feature_names_))
        except (XmodalError, ValueError) as exc:
            return fused, None, f"ranker failed ({exc}): fused order"
        values: list[float] = scores.tolist()  # plain floats: the sort and the hits read each many times
        order = sorted(range(len(head)), key=lambda i: (-values[i], i))
        reranked = [FusedHit(head[i].id, head[i].score, head[i].sources, values[i]) for i in order]
        return reranked + fused[len(head) :], X[order], self.ranker_status

    def rank_many(
        self, prepared: Sequence[Prepared], vectors: Sequence[np.ndarray | None], fused: Sequence[list[FusedHit]]
    ) -> list[tuple[list[FusedHit], np.ndarray | None, str]]:
        """:meth:`rank` for many queries, the ranker scoring every query's head in one call (the same scores
        as one call per query: each row is scored alone). A query with no candidates, or every query should
        that call fail, is ranked alone."""
        ranker = self.ranker
        if ranker is None:
            return [(list(f), None, self.ranker_status) for f in fused]
        alone = [self.rank(p, v, f) for p, v, f in zip(prepared, vectors, fused, strict=True) if not f]
        todo = [i for i, f in enumerate(fused) if f]
        heads = [fused[i][: self.config.rank_depth] for i in todo]
        try:
            blocks = [
                candidate_features(self, prepared[i].query, vectors[i], head, prepared[i].understanding)
                for i, head in zip(todo, heads, strict=True)
            ]
            scores = ranker.score(align(np.vstack(blocks), self.features, ranker.feature_names_)) if todo else None
        except (XmodalError, ValueError):
            return [self.rank(p, v, f) for p, v, f in zip(prepared, vectors, fused, strict=True)]
        ranked = iter(alone)
        out: list[tuple[list[FusedHit], np.ndarray | None, str]] = [
            next(ranked) if not f else ([], None, "") for f in fused
        ]
        at = 0
        for i, head, X in zip(todo, heads, blocks, strict=True):
            assert scores is not None
            mine, at = scores[at : at + len(head)], at + len(head)
            order = sorted(range(len(head)), key=functools.partial(_by_score, mine))
            reranked = [_ranked(head[j], mine[j]) for j in order]
            out[i] = (reranked + fused[i][len(head) :], X[order], self.ranker_status)
        return out

    def arrange(
        self, prepared: Prepared, plan: Plan, ranked: Sequence[FusedHit], explored: Sequence[FusedHit], k: int
    ) -> list[FusedHit]:
        """The list shown: for a failing query that new feedback re-plans, or whose top turns over
        (:attr:`Prepared.turnover`), the items users passed over go below the others (:attr:`Prepared.passed`,
        :func:`repeats.demote`: skips are negative evidence); the answers users found for this query come
        first (items acted on at a credible rate, :meth:`MemoryStrategy.answers`: evidence that takes the top
        positions, whichever strategy's order they have); a repeat of the query in the same state gets its top
        hits back first (:func:`repeats.pin`); exploration's items are placed from position ``exploration.top`` on
        (:func:`exploration.place`: every position when exploration leads the plan, else every second); and
        what the query got is remembered. Returns the first ``k``."""
        top = self.exploration.top
        ranked = pin(demote(ranked, prepared.passed), prepared.answers)
        if prepared.repeat is not None:
            ranked = pin(ranked, prepared.repeat.top)
        lead = bool(plan.allocations) and self._explores(plan.allocations[0].strategy)
        shown = place(ranked, explored, top=top, every=1 if lead else 2, limit=k)
        order = tuple(a.strategy for a in plan.allocations if not self._explores(a.strategy))
        served = prepared.repeat.served + 1 if prepared.repeat is not None else 1
        turned = prepared.repeat.turned if prepared.repeat is not None else prepared.turnover
        remembered = Shown(prepared.state, order, tuple(h.id for h in shown[: top - 1]), served, turned)
        self.repeats.put(prepared.key, remembered)
        return shown

    def start_over(self) -> None:
        """Forget what repeated queries got and the exploration budget's counts (a simulated run's start)."""
        self.repeats.clear()
        self.explore_budget.reset()

    @checked_once()  # the stages read one state of the full-text statistics (xmodal.store.termstats)
    def search(
        self, query: Query, vector: np.ndarray | None, *, plan: Plan | None = None
    ) -> tuple[Hits, dict[str, Any]]:
        """The learned search: returns the hits (scores: :mod:`xmodal.ltr.scores`) and the explanation (plan,
        contributions, each hit's raw strategy scores and features)."""
        prepared = self.prepare(query, vector=vector)
        plan = plan or self.plan(prepared)
        found = self.candidates(prepared, plan, vector)
        step_aside()
        ranked, X, status = self.rank(prepared, vector, found.fused)
        return self._shown(prepared, plan, found, (ranked, X, status))

    @checked_once()
    def search_many(
        self, queries: Sequence[Query], vectors: Sequence[np.ndarray | None]
    ) -> list[tuple[Hits, dict[str, Any]]]:
        """:meth:`search` for many queries, each with its vector: the same hits and explanations as searching
        them one by one in order (state the searches change, the repeat memo and the exploration budget, is
        read and changed in that order), with the work that does not depend on order done together: each
        strategy that can (:class:`BatchStrategy`, dense search: one matrix search) retrieves for every query
        in one call, and the ranker scores every query's candidates in one call. A query whose repeat key
        (:func:`repeats.query_key`) came earlier in the batch starts a new round, so it sees what the earlier
        one got."""
        out: list[tuple[Hits, dict[str, Any]]] = []
        start, seen = 0, set[str]()
        for i, (query, vector) in enumerate(zip(queries, vectors, strict=True)):
            key = query_key(query, vector)
            if key in seen:
                out += self._search_round(queries[start:i], vectors[start:i])
                start, seen = i, set()
            seen.add(key)
        return out + self._search_round(queries[start:], vectors[start:])

    def _search_round(
        self, queries: Sequence[Query], vectors: Sequence[np.ndarray | None]
    ) -> list[tuple[Hits, dict[str, Any]]]:
        """:meth:`search_many` for queries with distinct repeat keys."""
        prepared = [self.prepare(q, vector=v) for q, v in zip(queries, vectors, strict=True)]
        plans = [self.plan(p) for p in prepared]
        batched = self.retrieve_batched(prepared, plans, vectors)
        found = [
            self.candidates(p, plan, v, runs)
            for p, plan, v, runs in zip(prepared, plans, vectors, batched, strict=True)
        ]
        ranked = self.rank_many(prepared, vectors, [f.fused for f in found])
        return [self._shown(*args) for args in zip(prepared, plans, found, ranked, strict=True)]

    def _shown(
        self,
        prepared: Prepared,
        plan: Plan,
        found: Candidates,
        ranked: tuple[list[FusedHit], np.ndarray | None, str],
    ) -> tuple[Hits, dict[str, Any]]:
        """The hits shown for a ranked query (:meth:`arrange`), and its explanation."""
        order, X, status = ranked
        query = prepared.query
        shown = self.arrange(prepared, plan, order, found.explored, query.k)
        scores = shown_scores(shown, self.config.fusion, found.weights, self.families)
        features = (
            None if X is None or not _EXPLAIN_HITS.get() else {h.id: row for h, row in zip(order, X, strict=False)}
        )
        details = self.explain(prepared, plan, found, shown, scores, features, status)
        return to_hits(shown, query.k, scores), details

    def retrieve_batched(
        self, prepared: Sequence[Prepared], plans: Sequence[Plan], vectors: Sequence[np.ndarray | None]
    ) -> list[dict[str, Hits]]:
        """The runs of the planned strategies that retrieve for many queries at once (:class:`BatchStrategy`):
        one call per strategy over every query that plans it, each at its planned depth; for each query, its
        runs by strategy name (pass them to :meth:`candidates` as ``cached``). A strategy whose batch call
        cannot run is left out here, so each query runs it alone (and a failure there costs that query only)."""
        wanted: dict[str, list[tuple[int, int]]] = {}
        for i, plan in enumerate(plans):
            for a in plan.allocations:
                if isinstance(self.strategies.get(a.strategy), BatchStrategy):
                    wanted.setdefault(a.strategy, []).append((i, a.depth))
        out: list[dict[str, Hits]] = [{} for _ in plans]
        for name, asked in wanted.items():
            strategy = self.strategies[name]
            assert isinstance(strategy, BatchStrategy)
            try:
                found = strategy.retrieve_many([(prepared[i].query, depth, vectors[i]) for i, depth in asked])
            except (ConfigError, StorageError) as exc:
                log.warning("strategy %s failed for a batch (%s): each query runs it alone", name, exc)
                continue
            for (i, _), hits in zip(asked, found, strict=True):
                out[i][name] = hits
        return out

    def explain(
        self,
        prepared: Prepared,
        plan: Plan,
        found: Candidates,
        shown: Sequence[FusedHit],
        scores: Sequence[float],
        features: Mapping[str, np.ndarray] | None,
        status: str,
    ) -> dict[str, Any]:
        ids = {h.id for h in shown}
        contributions: dict[str, dict[str, Any]] = {
            name: {
                "depth": plan.depths().get(name, len(hits)),
                "backfill": name not in plan.depths(),
                "returned": len(hits),
                "in_results": sum(1 for i in hits.ids.tolist() if i in ids),
            }
            for name, hits in found.runs.items()
        }
        if self.lexical.name in contributions:
            fixes = self.lexical.read(prepared.query).fixes  # the words its run read as typos of catalog words
            if fixes:
                contributions[self.lexical.name]["read_as"] = fixes
        per_hit = (
            [self._explain_hit(hit, score, found, features) for hit, score in zip(shown, scores, strict=True)]
            if _EXPLAIN_HITS.get()
            else None  # not asked for (:func:`hits_unexplained`)
        )
        return {
            "mode": "learned",
            "context": prepared.context,
            "plan": plan.to_list(),
            "budget": plan.budget,
            "policy": {"kind": self.policy.kind, "indices": {k: round(v, 6) for k, v in plan.indices.items()}},
            "fusion": self.config.fusion,
            "tuning": self._tuning(prepared.query, plan, found),
            "weights": {name: round(w, 6) for name, w in found.weights.items()},
            "phrase_first": found.phrased,
            "title_first": found.titled,
            "score": SCORE_MEANING,
            "exploration": {
                "may_explore": self._explores_for(prepared.query),
                "top": self.exploration.top,
                "repeat": prepared.repeat is not None,
            },
            "strategies": contributions,
            **({"constraints": kept} if (kept := prepared.understanding.constraints()) else {}),
            "ranker": status,
            **({"hits": per_hit} if per_hit is not None else {}),
        }

    def _tuning(self, query: Query, plan: Plan, found: Candidates) -> dict[str, Any]:
        """``explain``'s account of the self-tuned fusion for one search: its status, whether it planned this
        search, the configuration it chose, and why a query it would not plan keeps the untuned plan."""
        out = {"status": self.tuned_status, "active": plan.source == "tuned", "chosen": found.configuration}
        if self.tuned_active() and not fitted_on(query):
            out["untuned"] = "an image, another medium or a target vector kind: the model was fitted on text queries"
        return out

    def _explain_hit(
        self, hit: FusedHit, score: float, found: Candidates, features: Mapping[str, np.ndarray] | None
    ) -> dict[str, Any]:
        """One shown hit's explanation: its score, relevance, fused score, each strategy's rank and raw score,
        and the ranker's score and features when a ranker ordered it."""
        entry: dict[str, Any] = {
            "id": hit.id,
            "score": score,
            "relevance": round(relevance(self.config.fusion, hit.score, found.weights, self.families), 6),
            "fused": round(hit.score, 6),
            "sources": {s: {"rank": r, "score": round(v, 6)} for s, (r, v) in hit.sources.items()},
        }
        if hit.ranker is not None:
            entry["ranker"] = round(hit.ranker, 6)
        row = None if features is None else features.get(hit.id)
        if row is not None:
            entry["features"] = {name: round(float(v), 6) for name, v in zip(self.features, row, strict=True)}
        return entry

    @checked_once()
    def single(self, name: str, query: Query, vector: np.ndarray | None) -> tuple[Hits, dict[str, Any]]:
        """One strategy alone at depth k (the per-strategy search modes; scores: the strategy's own)."""
        prepared = self.prepare(query, vector=vector)
        plan = Plan((Allocation(name, query.k, 1.0),), query.k, {name: 0.0})
        if name not in self.strategies:
            raise ConfigError(
                f"strategy {name!r} is not one of this index's learned strategies ({', '.join(self.strategies)}); "
                f"add it with `xmodal ltr strategies add {name}`"
            )
        hits = self.strategies[name].retrieve(query, query.k, vector=vector)
        return hits, {
            "mode": name,
            "context": prepared.context,
            "plan": plan.to_list(),
            "strategies": {name: len(hits)},
        }

    @checked_once()
    def uniform(self, query: Query, vector: np.ndarray | None) -> tuple[Hits, dict[str, Any]]:
        """Every available strategy with an equal share of the budget and equal weights (the baseline);
        exploration's items placed as the floor's are."""
        prepared = self.prepare(query, vector=vector)
        plan = equal_plan(prepared.available, prepared.available, self.config.budget)
        found = self.candidates(prepared, plan, vector, backfill=False, committed=False, completed=False, phrased=False)
        shown = place(found.fused, found.explored, top=self.exploration.top, every=2, limit=query.k)
        scores = shown_scores(shown, self.config.fusion, found.weights, self.families)
        details = self.explain(prepared, plan, found, shown, scores, None, "fused order")
        return to_hits(shown, query.k, scores), {**details, "mode": "uniform"}

    # -- online learning ------------------------------------------------------------------------------
    def learn(
        self, x: np.ndarray, plan_arms: Sequence[str], provenance: Sequence[str], rewarded: Sequence[bool]
    ) -> None:
        """Semi-bandit update for one impression: arms that supplied shown items are observed; an arm
        is rewarded once if any item it supplied got a positive event."""
        supplied = _supplied(plan_arms, provenance)
        self.dirty = True
        self.policy.observe(x, sorted(supplied))
        won = {arm for arm in supplied for p, r in zip(provenance, rewarded, strict=True) if r and arm in names_of(p)}
        for arm in sorted(won):
            self.policy.credit(x, arm, 1.0)

    def on_impression(self, impression: Impression) -> None:
        self.memory.on_impression(impression)
        if impression.mode != "learned" or not impression.plan:
            return
        x = context_vector(impression.context)
        arms = [str(a["strategy"]) for a in impression.plan if a.get("strategy") in self.policy.arms]
        supplied = _supplied(arms, impression.provenance)
        self.policy.observe(x, sorted(supplied))
        self.dirty = True
        self._unshared += 1
        if self.shared is not None and self._unshared >= SHARE_EVERY:
            self.save()  # a server (re)opening replays the shared log from here, not from far back
        self._pending[impression.query_id] = (x, set())
        while len(self._pending) > 10_000:  # credit only recent impressions
            self._pending.pop(next(iter(self._pending)))

    def on_event(self, event: Event, impression: Impression) -> None:
        self.memory.on_event(event, impression)
        self.popularity[event.item_id] = self.popularity.get(event.item_id, 0.0) + event.reward
        pending = self._pending.get(event.query_id)
        if pending is None or event.reward <= 0:
            return
        x, credited = pending
        position = event.position - 1
        for arm in names_of(impression.provenance[position]):
            if arm in self.policy.arms and arm not in credited:
                credited.add(arm)
                self.policy.credit(x, arm, 1.0)
                self.dirty = True


def _ranked(hit: FusedHit, score: float) -> FusedHit:
    """``hit`` with the ranker's score (built directly: ``dataclasses.replace`` costs a few µs a hit)."""
    return FusedHit(hit.id, hit.score, hit.sources, float(score))


def _by_score(scores: np.ndarray, i: int) -> tuple[float, int]:
    """The sort key of the ranker's order: best score first, ties by fused position."""
    return -float(scores[i]), i


def query_kind(query: Query) -> str | None:
    """The vector kind of a query's own modality, which its vector is compared with on day zero
    (:meth:`Pipeline._like_views`): ``image`` for an image alone, ``text`` for a text (with an image too: its
    vector, the mean of the two, against the items' text vectors measured better on the demo's judged set than
    against their combined vectors); None for other media (no preference)."""
    if query.media:
        return None
    if query.image is not None and not query.text:
        return str(VectorKind.IMAGE)
    return str(VectorKind.TEXT) if query.text else None


def _shared_families(specs: Mapping[str, StrategySpec]) -> dict[str, str]:
    """Arm → family for the families of more than one arm, exploring arms left out."""
    counts: dict[str, int] = {}
    for spec in specs.values():
        counts[spec.family] = counts.get(spec.family, 0) + 1
    return {n: s.family for n, s in specs.items() if counts[s.family] > 1 and not s.explores}


def _supplied(arms: Sequence[str], provenance: Sequence[str]) -> set[str]:
    shown_sources = {s for p in provenance for s in names_of(p)}
    return {a for a in arms if a in shown_sources}


__all__ = ["LTRConfig", "Pipeline", "Prepared", "StorageError", "hits_unexplained"]
