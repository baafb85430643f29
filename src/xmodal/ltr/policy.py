"""Contextual bandits that choose which strategies to draw candidates from, and how many each.

One linear model per strategy (disjoint arms) predicts the chance that the strategy supplies an
item the user acts on, given the query context:

- LinUCB: L. Li, W. Chu, J. Langford and R. E. Schapire, "A Contextual-Bandit Approach to
  Personalized News Article Recommendation" (WWW 2010), index ``θ̂·x + α √(xᵀ A⁻¹ x)``;
- linear Thompson sampling: S. Agrawal and N. Goyal, "Thompson Sampling for Contextual Bandits with
  Linear Payoffs" (ICML 2013), index ``θ̃·x`` with ``θ̃ ~ N(θ̂, v² A⁻¹)``.

Arms are ranked by their index; the plan draws from the arms whose index is within ``margin`` of
the best (at most ``max_arms``), fused with equal weights, plus an exploration floor (``always``,
fused with ``floor_weight``) when no chosen arm explores, and splits the candidate budget
geometrically down that order (half to the first, a half of the rest to the next, ...), never below
``min_depth`` and never above the budget. Feedback is semi-bandit: every arm that supplied a shown item is observed,
and is rewarded when an item it supplied gets a positive event. State is persisted as JSON + ``.npy``.

LinUCB's plan is a function of its state, the query's context and its hyperparameters, so it keeps each plan it made
(:data:`PLAN_MEMO` of them) until one of them changes; the state changes only through the policy (its arrays are
read-only from outside), which drops the kept plans and θ̂ then.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StorageError, ValidationError
from ..store.files import write_json

POLICY_FORMAT = 2  # 2: context gained the query-history features
#: plans a deterministic policy keeps for the contexts it was asked about since its state last changed
PLAN_MEMO = 4096


@dataclass(frozen=True, slots=True)
class Allocation:
    strategy: str
    depth: int
    weight: float

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "depth": self.depth, "weight": round(self.weight, 6)}


@dataclass(frozen=True, slots=True)
class Plan:
    """Which strategies to run with how many candidates each (``sum(depth) <= budget``, except that a tuned
    plan draws each strategy at least as deep as its ``untuned`` fallback, so it may go past it)."""

    allocations: tuple[Allocation, ...]
    budget: int
    indices: Mapping[str, float]
    #: ``"policy"``: the bandit chose the strategies; ``"tuned"``: every available one, fused by the
    #: self-tuned model (:mod:`xmodal.ltr.selftune`)
    source: str = "policy"
    #: a tuned plan's fallback: the policy's plan, which the self-tuned model may choose for a query
    untuned: Plan | None = None

    @property
    def total(self) -> int:
        return sum(a.depth for a in self.allocations)

    def depths(self) -> dict[str, int]:
        return {a.strategy: a.depth for a in self.allocations}

    def weights(self) -> dict[str, float]:
        return {a.strategy: a.weight for a in self.allocations}

    def to_list(self) -> list[dict[str, Any]]:
        return [a.to_dict() for a in self.allocations]


def allocate(order: Sequence[str], budget: int, *, share: float = 0.5, min_depth: int = 5) -> tuple[Allocation, ...]:
    """Split ``budget`` geometrically down ``order`` (equal fusion weights); every depth is >= ``min_depth``
    (or the whole budget when it is smaller); the depths add up to at most ``budget``."""
    if budget < 1:
        raise ValidationError("budget", f"must be >= 1, got {budget}", "use e.g. budget=100")
    out, remaining = [], budget
    for i, arm in enumerate(order):
        last = i == len(order) - 1
        depth = remaining if last else min(remaining, max(min_depth, round(remaining * share)))
        if depth < min(min_depth, budget) or depth <= 0:
            break
        out.append(Allocation(arm, depth, 1.0))
        remaining -= depth
    return tuple(out)


def equal_plan(arms: Sequence[str], available: Sequence[str], budget: int) -> Plan:
    """Equal shares of the budget and equal weights for the arms of a fixed set that can answer the query
    (the uniform baseline, and the fixed sets the bandit is compared with)."""
    use = [a for a in arms if a in available]
    share = max(budget // max(len(use), 1), 1)
    return Plan(tuple(Allocation(a, share, 1.0) for a in use), budget, dict.fromkeys(use, 0.0))


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def _with_families(order: list[str], rest: Sequence[str], families: Mapping[str, str], always: str) -> list[str]:
    """``order`` with each arm of ``rest`` whose family one of ``order``'s (not the exploring arm's) has,
    placed after the last arm of its family (``rest`` keeps its order)."""
    out = list(order)
    for arm in rest:
        family = families.get(arm)
        mates = [i for i, a in enumerate(out) if a != always and family is not None and families.get(a) == family]
        if mates:
            out.insert(mates[-1] + 1, arm)
    return out


class LinearBandit:
    """Shared state and updates of the disjoint linear bandits; subclasses define :meth:`indices`."""

    kind = "linear"
    #: whether the indices are a function of the state and the context alone (no draw from the generator), so
    #: that :meth:`select` may keep the plans it made until the state changes
    deterministic = False

    def __init__(
        self,
        arms: Sequence[str],
        dim: int,
        *,
        budget: int = 100,
        ridge: float = 1.0,
        share: float = 0.5,
        min_depth: int = 5,
        margin: float = 0.1,
        max_arms: int = 2,
        always: str | None = "explore",
        floor_weight: float = 0.9,
        seed: int = 0,
    ) -> None:
        if not arms or len(set(arms)) != len(arms):
            raise ValidationError("arms", "must be a non-empty list of distinct strategy names")
        self.arms, self.dim, self.budget = list(arms), dim, budget
        self.ridge, self.share, self.min_depth, self.seed = ridge, share, min_depth, seed
        self.margin, self.max_arms, self.always, self.floor_weight = margin, max_arms, always, floor_weight
        self._A = np.stack([np.eye(dim) * ridge for _ in arms])
        self._A_inv = np.stack([np.eye(dim) / ridge for _ in arms])
        self._b = np.zeros((len(arms), dim))
        self._version = 0  # moves with every change of the state
        self._theta: tuple[int, np.ndarray] | None = None  # (the version it was computed at, θ̂ of every arm)
        self._plans: dict[tuple[Any, ...], Plan] = {}  # select's arguments (and the version) -> its plan
        self.counts_ = np.zeros(len(arms))
        self.rng_ = np.random.default_rng(seed)

    # The learned state, read-only from outside: it changes only through :meth:`observe`, :meth:`credit`,
    # :meth:`add_evidence` or by replacing a whole array, each of which drops what is derived from it (θ̂).
    @property
    def A_(self) -> np.ndarray:
        return _read_only(self._A)

    @A_.setter
    def A_(self, value: np.ndarray) -> None:
        self._A = np.array(value, dtype=np.float64)
        self._changed()

    @property
    def A_inv_(self) -> np.ndarray:
        return _read_only(self._A_inv)

    @A_inv_.setter
    def A_inv_(self, value: np.ndarray) -> None:
        self._A_inv = np.array(value, dtype=np.float64)
        self._changed()

    @property
    def b_(self) -> np.ndarray:
        return _read_only(self._b)

    @b_.setter
    def b_(self, value: np.ndarray) -> None:
        self._b = np.array(value, dtype=np.float64)
        self._changed()

    def _changed(self) -> None:
        self._version += 1  # what was derived from the state before (θ̂, the kept plans) is not used again
        self._plans = {}

    def hyperparameters(self) -> tuple[Any, ...]:
        """What :meth:`select` reads besides the state and its arguments (:meth:`params`, as a tuple)."""
        return (
            self.budget,
            self.share,
            self.min_depth,
            self.margin,
            self.max_arms,
            self.always,
            self.floor_weight,
        )

    def theta(self) -> np.ndarray:
        """θ̂ = A⁻¹ b of every arm (computed once per state; read-only)."""
        version, held = self._version, self._theta  # (read first: a change while computing moves it)
        if held is not None and held[0] == version:
            return held[1]
        theta: np.ndarray = np.einsum("aij,aj->ai", self._A_inv, self._b)
        theta.flags.writeable = False
        self._theta = (version, theta)
        return theta

    def indices(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def select(
        self,
        x: np.ndarray,
        available: Sequence[str] | None = None,
        budget: int | None = None,
        *,
        explore: bool = True,
        keep: Sequence[str] = (),
        lead: Sequence[str] = (),
        families: Mapping[str, str] | None = None,
    ) -> Plan:
        """The plan for context ``x``: available arms by decreasing index, budget split down the order;
        ``explore=False`` leaves the exploring arm out of this query's plan (main strategy and floor);
        arms in ``lead`` open the plan (the largest share, full weight) and arms in ``keep`` join the main
        strategies (full weight, after the chosen ones) when they are available.

        ``families`` (arm → family) makes ``max_arms`` a limit on families of evidence rather than on arms:
        an arm of a chosen arm's family (e.g. the dense search of each vector kind the catalog holds: one query
        vector against the items' text, image and combined vectors) joins it when its index is within
        ``margin`` of the best too, right after its family's last chosen arm. With no feedback every index ties,
        so the day-zero plan holds every view of a chosen family instead of the first ``max_arms`` arms in
        registry order; once feedback separates them, a family's weak views fall out of the margin.

        A :attr:`deterministic` policy answers a question it was asked in the same state (the same context,
        arguments and hyperparameters) with a copy of the plan it made then."""
        x = self._check(x)
        key: tuple[Any, ...] | None = None
        plans = self._plans  # a change of the state starts another dict (and moves the version in the key)
        if self.deterministic:  # the same question in the same state gets the same plan: made once
            key = (
                self._version,
                x.tobytes(),
                None if available is None else tuple(available),
                budget,
                explore,
                tuple(keep),
                tuple(lead),
                tuple(families.items()) if families else None,
                self.hyperparameters(),
            )
            made = plans.get(key)
            if made is not None:
                return Plan(made.allocations, made.budget, dict(made.indices))
        plan = self._select(x, available, budget, explore, keep, lead, families)
        if key is not None:
            if len(plans) >= PLAN_MEMO:
                plans.clear()
            plans[key] = Plan(plan.allocations, plan.budget, dict(plan.indices))
        return plan

    def _select(
        self,
        x: np.ndarray,
        available: Sequence[str] | None,
        budget: int | None,
        explore: bool,
        keep: Sequence[str],
        lead: Sequence[str],
        families: Mapping[str, str] | None,
    ) -> Plan:
        scores: list[float] = self.indices(x).tolist()  # the same doubles, compared as Python floats
        arms, always = self.arms, self.always
        allowed = set(arms if available is None else available)
        if not explore:
            allowed.discard(str(always))
        ranked = sorted(  # ties go to exploitation: the exploring arm after the others
            (a for a, arm in enumerate(arms) if arm in allowed),
            key=lambda a: (-scores[a], arms[a] == always, a),
        )
        best = scores[ranked[0]] if ranked else 0.0
        close = [arms[a] for a in ranked if scores[a] >= best - self.margin]
        order = close[: self.max_arms]
        if families:
            order = _with_families(order, close[self.max_arms :], families, str(always))
        if always in order[1:]:  # exploration is a main strategy only when rated best; else only the floor
            order.remove(str(always))
        if lead:
            first = [arm for arm in dict.fromkeys(lead) if arm in allowed]
            order = first + [arm for arm in order if arm not in first]
        order += [arm for arm in keep if arm in allowed and arm not in order and arm != always]
        floor = always is not None and always in allowed and always not in order
        if floor:  # an exploration floor: feedback no greedy plan would collect, fused a little below the rest
            order.append(str(always))
        allocations = allocate(order, budget or self.budget, share=self.share, min_depth=self.min_depth)
        if floor:
            allocations = tuple(
                Allocation(a.strategy, a.depth, self.floor_weight) if a.strategy == always else a for a in allocations
            )
        return Plan(allocations, budget or self.budget, {arms[a]: scores[a] for a in ranked})

    # -- learning (semi-bandit) -----------------------------------------------------------------
    def observe(self, x: np.ndarray, arms: Sequence[str]) -> None:
        """Arms that supplied shown items were tried in context ``x`` (reward 0 until :meth:`credit`)."""
        x = self._check(x)
        for arm in arms:
            a = self.arms.index(arm)
            self._A[a] += np.outer(x, x)
            ax = self._A_inv[a] @ x
            self._A_inv[a] -= np.outer(ax, ax) / (1.0 + x @ ax)  # Sherman–Morrison
            self.counts_[a] += 1
            self._changed()

    def credit(self, x: np.ndarray, arm: str, reward: float = 1.0) -> None:
        """Reward an observed arm (once per impression: an item it supplied got a positive event)."""
        self._b[self.arms.index(arm)] += reward * self._check(x)
        self._changed()

    def add_evidence(self, arm: str, A: np.ndarray, b: np.ndarray) -> None:
        """Add evidence gathered elsewhere to an arm's model (``A`` and ``b`` summed in, A⁻¹ recomputed):
        a prior that real feedback then outweighs (:meth:`~xmodal.ltr.tuned.TunedFusion.seed_policy`)."""
        a = self.arms.index(arm)
        self._A[a] = self._A[a] + A
        self._A_inv[a] = np.linalg.inv(self._A[a])
        self._b[a] = self._b[a] + b
        self._changed()

    def update(self, x: np.ndarray, arm: str, reward: float) -> None:
        """One full observation (the classic bandit update)."""
        self.observe(x, [arm])
        self.credit(x, arm, reward)

    def _check(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if x.shape[0] != self.dim:
            raise ValidationError("context", f"has {x.shape[0]} features, the policy expects {self.dim}")
        return x

    def with_arms(self, arms: Sequence[str]) -> LinearBandit:
        """This policy over ``arms``: an arm it knows keeps its learned state (by name), a new one starts as
        a fresh arm does; the generator's state carries over. Returns a new policy."""
        if not arms or len(set(arms)) != len(arms):
            raise ValidationError("arms", "must be a non-empty list of distinct strategy names")
        new = make_policy(self.kind, arms, self.dim, **self.params())
        new.rng_.bit_generator.state = self.rng_.bit_generator.state
        for a, arm in enumerate(arms):
            if arm in self.arms:
                old = self.arms.index(arm)
                new._A[a], new._A_inv[a], new._b[a], new.counts_[a] = (
                    self._A[old],
                    self._A_inv[old],
                    self._b[old],
                    self.counts_[old],
                )
        new._changed()
        return new

    # -- persistence ------------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "ridge": self.ridge,
            "share": self.share,
            "min_depth": self.min_depth,
            "margin": self.margin,
            "max_arms": self.max_arms,
            "always": self.always,
            "floor_weight": self.floor_weight,
            "seed": self.seed,
        }

    def save(self, directory: Path) -> None:
        """Write ``policy.json`` (format, kind, arms, hyperparameters, RNG state) and the arrays as ``.npy``."""
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "A.npy", self.A_)
        np.save(directory / "b.npy", self.b_)
        np.save(directory / "counts.npy", self.counts_)
        meta = {
            "format_version": POLICY_FORMAT,
            "kind": self.kind,
            "arms": self.arms,
            "dim": self.dim,
            "params": self.params(),
            "rng": self.rng_.bit_generator.state,
        }
        write_json(directory / "policy.json", meta, indent=2)


class LinUCB(LinearBandit):
    """LinUCB with disjoint linear models (Li et al. 2010, Algorithm 1)."""

    kind = "linucb"
    deterministic = True

    def __init__(self, arms: Sequence[str], dim: int, *, alpha: float = 0.5, **options: Any) -> None:
        super().__init__(arms, dim, **options)
        self.alpha = alpha

    def hyperparameters(self) -> tuple[Any, ...]:
        return (*super().hyperparameters(), self.alpha)

    def indices(self, x: np.ndarray) -> np.ndarray:
        width = np.sqrt(np.einsum("i,aij,j->a", x, self._A_inv, x))
        out: np.ndarray = self.theta() @ x + self.alpha * width
        return out

    def params(self) -> dict[str, Any]:
        return {**super().params(), "alpha": self.alpha}


class LinearThompson(LinearBandit):
    """Linear Thompson sampling (Agrawal & Goyal 2013) with a seeded generator."""

    kind = "thompson"

    def __init__(self, arms: Sequence[str], dim: int, *, v: float = 0.3, **options: Any) -> None:
        super().__init__(arms, dim, **options)
        self.v = v

    def indices(self, x: np.ndarray) -> np.ndarray:
        chol = np.linalg.cholesky(self._A_inv + 1e-12 * np.eye(self.dim))
        z = self.rng_.standard_normal((len(self.arms), self.dim))
        sample = self.theta() + self.v * np.einsum("aij,aj->ai", chol, z)
        out: np.ndarray = sample @ x
        return out

    def params(self) -> dict[str, Any]:
        return {**super().params(), "v": self.v}


POLICIES: dict[str, type[LinearBandit]] = {"linucb": LinUCB, "thompson": LinearThompson}


def make_policy(kind: str, arms: Sequence[str], dim: int, **options: Any) -> LinearBandit:
    """A new policy by name (``linucb`` or ``thompson``)."""
    if kind not in POLICIES:
        raise ValidationError("policy", f"unknown policy {kind!r}", f"use one of {', '.join(POLICIES)}")
    return POLICIES[kind](arms, dim, **options)


def load_policy(directory: Path) -> LinearBandit:
    """Load a saved policy; a file of another format version or a damaged file is a :class:`StorageError`."""
    path = directory / "policy.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StorageError(f"{path}: unreadable policy file ({exc}); delete the folder to start a new policy") from exc
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if version != POLICY_FORMAT:
        raise StorageError(
            f"{path}: policy format version {version!r}, this xmodal reads {POLICY_FORMAT}; "
            "delete the folder to start a new policy (the feedback log can retrain it)"
        )
    try:
        policy = make_policy(meta["kind"], meta["arms"], int(meta["dim"]), **meta["params"])
        policy.A_ = np.load(directory / "A.npy", allow_pickle=False)
        policy.b_ = np.load(directory / "b.npy", allow_pickle=False)
        policy.counts_ = np.load(directory / "counts.npy", allow_pickle=False)
        policy.A_inv_ = np.linalg.inv(policy.A_)
        policy.rng_.bit_generator.state = meta["rng"]
    except (OSError, KeyError, ValueError, np.linalg.LinAlgError) as exc:
        raise StorageError(f"{directory}: damaged policy ({exc}); delete the folder to start a new policy") from exc
    shape = (len(policy.arms), policy.dim)
    if policy.b_.shape != shape or policy.A_.shape != (*shape, policy.dim):
        raise StorageError(f"{directory}: policy arrays do not match its {shape[0]} arms and {shape[1]} features")
    return policy
