"""Bandit policies: plans within budget, contextual learning, determinism and persistence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xmodal import StorageError, ValidationError
from xmodal.ltr.policy import LinearBandit, allocate, load_policy, make_policy

ARMS = ["lexical", "structured", "dense:text", "memory", "explore"]


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 7), budget=st.integers(1, 500), share=st.floats(0.05, 0.95), min_depth=st.integers(1, 50))
def test_allocation_never_exceeds_the_budget(n: int, budget: int, share: float, min_depth: int) -> None:
    plan = allocate([f"s{i}" for i in range(n)], budget, share=share, min_depth=min_depth)
    assert sum(a.depth for a in plan) <= budget
    assert plan and all(a.depth >= 1 for a in plan)
    assert len({a.strategy for a in plan}) == len(plan)


@settings(max_examples=50, deadline=None)
@given(
    kind=st.sampled_from(["linucb", "thompson"]),
    budget=st.integers(1, 300),
    seed=st.integers(0, 99),
    available=st.sets(st.sampled_from(ARMS), min_size=1),
)
def test_selected_plans_never_exceed_the_budget(kind: str, budget: int, seed: int, available: set[str]) -> None:
    policy = make_policy(kind, ARMS, 4, budget=budget, seed=seed)
    x = np.random.default_rng(seed).random(4)
    plan = policy.select(x, sorted(available))
    assert plan.total <= budget and {a.strategy for a in plan.allocations} <= available


def _train(policy: LinearBandit, rounds: int, seed: int = 1) -> float:
    """Two contexts; arm 0 pays in the first, arm 1 in the second. Returns the late hit rate."""
    rng = np.random.default_rng(seed)
    hits = []
    for t in range(rounds):
        c = int(rng.integers(2))
        x = np.array([1.0, float(c == 0), float(c == 1)])
        top = policy.select(x).allocations[0].strategy
        best = policy.arms[c]
        reward = float(rng.random() < (0.8 if top == best else 0.1))
        policy.update(x, top, reward)
        if t >= rounds // 2:
            hits.append(top == best)
    return float(np.mean(hits))


@pytest.mark.parametrize("kind", ["linucb", "thompson"])
def test_policies_learn_which_strategy_suits_which_context(kind: str) -> None:
    policy = make_policy(kind, ["a", "b", "c"], 3, budget=30, seed=0)
    assert _train(policy, 600) > 0.85


@pytest.mark.parametrize("kind", ["linucb", "thompson"])
def test_seeded_policies_are_deterministic(kind: str) -> None:
    plans = []
    for _ in range(2):
        policy = make_policy(kind, ["a", "b", "c"], 3, seed=7)
        _train(policy, 100)
        plans.append([policy.select(np.array([1.0, 0.5, 0.5])).to_list() for _ in range(5)])
    assert plans[0] == plans[1]


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    policy = make_policy("thompson", ["a", "b", "c"], 3, seed=3)
    _train(policy, 200)
    policy.save(tmp_path / "p")
    loaded = load_policy(tmp_path / "p")
    x = np.array([1.0, 1.0, 0.0])
    assert loaded.select(x).to_list() == policy.select(x).to_list()  # same RNG state, same model
    assert np.allclose(loaded.A_inv_, policy.A_inv_)


def test_older_or_damaged_policy_files_are_clear_errors(tmp_path: Path) -> None:
    policy = make_policy("linucb", ["a", "b"], 2)
    policy.save(tmp_path / "p")
    meta = json.loads((tmp_path / "p" / "policy.json").read_text())
    (tmp_path / "p" / "policy.json").write_text(json.dumps({**meta, "format_version": 0}))
    with pytest.raises(StorageError, match="format version 0"):
        load_policy(tmp_path / "p")
    (tmp_path / "p" / "policy.json").write_text(json.dumps(meta))
    (tmp_path / "p" / "A.npy").write_bytes(b"garbage")
    with pytest.raises(StorageError, match="damaged"):
        load_policy(tmp_path / "p")


def test_bad_arguments() -> None:
    with pytest.raises(ValidationError, match="policy"):
        make_policy("epsilon", ["a"], 2)
    with pytest.raises(ValidationError, match="context"):
        make_policy("linucb", ["a"], 2).select(np.ones(3))


def test_exploration_is_left_out_of_plans_that_may_not_explore() -> None:
    policy = make_policy("linucb", ARMS, 3, budget=50, seed=0)
    x = np.array([1.0, 0.0, 1.0])
    for _ in range(30):  # the policy comes to rate exploration best in this context
        policy.update(x, "explore", 1.0)
    assert policy.select(x).allocations[0].strategy == "explore"
    plan = policy.select(x, explore=False)
    assert "explore" not in plan.depths() and plan.allocations
    assert "explore" not in plan.indices


def test_kept_arms_join_the_plan_within_the_budget() -> None:
    policy = make_policy("linucb", ARMS, 3, budget=40, seed=0)
    x = np.array([1.0, 1.0, 0.0])
    for _ in range(30):  # the policy comes to prefer lexical and structured over memory
        policy.update(x, "lexical", 1.0)
        policy.update(x, "structured", 1.0)
        policy.update(x, "memory", 0.0)
    assert "memory" not in policy.select(x, explore=False).depths()
    plan = policy.select(x, explore=False, keep=["memory"])
    assert plan.depths().get("memory", 0) > 0 and plan.weights()["memory"] == 1.0 and plan.total <= 40
    assert "memory" not in policy.select(x, [a for a in ARMS if a != "memory"], keep=["memory"]).depths()


def test_lead_arms_open_the_plan_with_the_largest_share() -> None:
    policy = make_policy("linucb", ARMS, 3, budget=40, seed=0)
    x = np.array([1.0, 1.0, 0.0])
    for _ in range(30):  # the policy rates lexical best and exploration worst here
        policy.update(x, "lexical", 1.0)
        policy.update(x, "explore", 0.0)
    plan = policy.select(x, lead=["explore"])
    assert plan.allocations[0].strategy == "explore" and plan.allocations[0].weight == 1.0
    assert plan.allocations[0].depth == max(plan.depths().values()) and plan.total <= 40
    assert "lexical" in plan.depths() and list(plan.depths()).count("explore") == 1
    assert "explore" not in policy.select(x, explore=False, lead=["explore"]).depths()  # lead never overrides it


VIEWS = ["lexical", "structured", "dense:text", "dense:image", "dense:combined", "memory", "explore"]
FAMILIES = {"dense:text": "dense", "dense:image": "dense", "dense:combined": "dense"}


def test_with_no_feedback_a_chosen_family_brings_every_view_not_the_first_arms_in_registry_order() -> None:
    policy = make_policy("linucb", VIEWS, 4, budget=100, always="explore")
    x = np.array([1.0, 0.3, 0.0, 1.0])
    available = ["lexical", "dense:text", "dense:image", "dense:combined"]
    plain = [a.strategy for a in policy.select(x, available, explore=False).allocations]
    assert plain == ["lexical", "dense:text"]  # every index ties: max_arms=2 cut in registry order
    plan = policy.select(x, available, explore=False, families=FAMILIES)
    assert [a.strategy for a in plan.allocations] == ["lexical", "dense:text", "dense:image", "dense:combined"]
    assert plan.total <= 100
    # a family not among the chosen ones does not join; the exploring arm is never a family-mate
    slots = policy.select(x, ["lexical", "structured", "dense:text", "dense:image"], explore=False, families=FAMILIES)
    assert [a.strategy for a in slots.allocations] == ["lexical", "structured"]


def test_a_view_that_feedback_puts_out_of_the_margin_leaves_the_family() -> None:
    policy = make_policy("linucb", VIEWS, 4, budget=100, always="explore", alpha=0.0)
    x = np.array([1.0, 0.3, 0.0, 1.0])
    for _ in range(20):  # lexical and dense:text pay, dense:image never does
        policy.update(x, "lexical", 1.0)
        policy.update(x, "dense:text", 1.0)
        policy.update(x, "dense:image", 0.0)
    plan = policy.select(
        x, ["lexical", "dense:text", "dense:image", "dense:combined"], explore=False, families=FAMILIES
    )
    names = [a.strategy for a in plan.allocations]
    assert names[:2] == ["lexical", "dense:text"] and "dense:image" not in names


def _fresh_plan(policy: LinearBandit, x: np.ndarray, **kwargs: object) -> list[dict[str, object]]:
    """The plan a policy with the same state and hyperparameters makes without any plan kept."""
    twin = make_policy(policy.kind, policy.arms, policy.dim, **policy.params())
    twin.A_, twin.A_inv_, twin.b_ = policy.A_, policy.A_inv_, policy.b_
    return twin.select(x, **kwargs).to_list()  # type: ignore[arg-type]


def test_a_kept_plan_is_made_again_after_every_change_of_the_state() -> None:
    """LinUCB keeps the plan it made for a context until its state changes (observe, credit, evidence added,
    an array replaced) or a hyperparameter does; each change gives the plan a new policy would make."""
    policy = make_policy("linucb", ARMS, 3, budget=60, seed=0)
    x, y = np.array([1.0, 0.5, 0.0]), np.array([1.0, 0.0, 1.0])
    first = policy.select(x)
    assert policy.select(x).to_list() == first.to_list() and policy.select(x) is not first  # a copy each time
    changes = [
        lambda: policy.observe(x, ["memory"]),
        lambda: policy.credit(x, "memory", 1.0),
        lambda: policy.update(y, "structured", 1.0),
        lambda: policy.add_evidence("lexical", np.eye(3) * 4, np.array([0.0, 0.0, 3.0])),
        lambda: setattr(policy, "b_", policy.b_ * 2),
        lambda: setattr(policy, "margin", 5.0),
        lambda: setattr(policy, "alpha", 3.0),
        lambda: setattr(policy, "max_arms", 4),
    ]
    seen = {json.dumps(first.to_list())}
    for change in changes:
        policy.select(x), policy.select(y, ARMS[:3], explore=False)  # kept
        change()
        for ctx, kwargs in ((x, {}), (y, {"available": ARMS[:3], "explore": False})):
            assert policy.select(ctx, **kwargs).to_list() == _fresh_plan(policy, ctx, **kwargs)  # type: ignore[arg-type]
        seen.add(json.dumps(policy.select(x).to_list()))
    assert len(seen) > 3  # the changes did change the plan


def test_the_learned_state_changes_only_through_the_policy() -> None:
    """Its arrays are read-only from outside (a write in place would leave a kept plan or θ̂ stale)."""
    policy = make_policy("linucb", ARMS, 3)
    for array in (policy.A_, policy.A_inv_, policy.b_, policy.theta()):
        with pytest.raises(ValueError, match="read-only"):
            array[0] += 1.0


def test_thompson_sampling_keeps_no_plan() -> None:
    policy = make_policy("thompson", ARMS, 3, seed=1)
    x = np.array([1.0, 0.5, 0.0])
    indices = [policy.select(x).indices for _ in range(3)]
    assert indices[0] != indices[1] != indices[2]  # a new draw each time
