"""Off-policy estimators, checked against the Open Bandit Dataset sample and obp's own estimators."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xmodal import ValidationError
from xmodal.feedback.ope import doubly_robust, expected_q, from_action_dist, ips, logged_value, snips

obp = pytest.importorskip("obp")


@pytest.fixture(scope="session")
def obd() -> dict[str, Any]:
    """The Open Bandit Dataset sample shipped inside obp (random policy, all campaign), read as obp reads it.

    obp 0.4.1's own loader breaks on pandas 3 (``DataFrame.drop(..., 1)``), so the CSV is parsed here
    with the same conventions: item_id is the action, dense-ranked position from 0, click the reward.
    """
    import csv

    path = Path(obp.__file__).parent / "dataset" / "obd" / "random" / "all" / "all.csv"
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    rows.sort(key=lambda r: r["timestamp"])
    action = np.array([int(r["item_id"]) for r in rows])
    raw_pos = np.array([int(r["position"]) for r in rows])
    position = np.searchsorted(np.unique(raw_pos), raw_pos)
    return {
        "n_rounds": len(rows),
        "n_actions": int(action.max()) + 1,
        "action": action,
        "position": position,
        "reward": np.array([float(r["click"]) for r in rows]),
        "pscore": np.array([float(r["propensity_score"]) for r in rows]),
    }


@pytest.fixture(scope="session")
def evaluation(obd: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """A seeded stochastic evaluation policy and a reward model (per action and position click rate)."""
    n, n_actions, len_list = obd["n_rounds"], obd["n_actions"], obd["position"].max() + 1
    rng = np.random.default_rng(0)
    prefs = rng.dirichlet(np.full(n_actions, 0.3), size=len_list)  # one distribution per position
    dist = np.repeat(prefs.T[None, :, :], n, axis=0)
    q = np.zeros((n_actions, len_list))
    for a in range(n_actions):
        for p in range(len_list):
            mask = (obd["action"] == a) & (obd["position"] == p)
            q[a, p] = obd["reward"][mask].mean() if mask.any() else obd["reward"].mean()
    return dist, np.repeat(q[None, :, :], n, axis=0)


def test_logged_policy_value_is_its_empirical_mean(obd: dict[str, Any]) -> None:
    reward, pscore = obd["reward"], obd["pscore"]
    mean = reward.mean()
    assert logged_value(reward) == pytest.approx(mean)
    assert ips(reward, pscore, pscore) == pytest.approx(mean)
    assert snips(reward, pscore, pscore) == pytest.approx(mean)


def test_ips_snips_dr_agree_with_obp(obd: dict[str, Any], evaluation: tuple[np.ndarray, np.ndarray]) -> None:
    from obp.ope import DoublyRobust, InverseProbabilityWeighting, SelfNormalizedInverseProbabilityWeighting

    dist, q = evaluation
    common = {
        "reward": obd["reward"],
        "action": obd["action"],
        "position": obd["position"],
        "pscore": obd["pscore"],
        "action_dist": dist,
    }
    target = from_action_dist(dist, obd["action"], obd["position"])
    ours_ips = ips(obd["reward"], obd["pscore"], target)
    assert ours_ips == pytest.approx(InverseProbabilityWeighting().estimate_policy_value(**common), rel=1e-9)
    assert snips(obd["reward"], obd["pscore"], target) == pytest.approx(
        SelfNormalizedInverseProbabilityWeighting().estimate_policy_value(**common), rel=1e-9
    )
    q_logged = q[np.arange(len(q)), obd["action"], obd["position"]]
    ours_dr = doubly_robust(obd["reward"], obd["pscore"], target, q_logged, expected_q(dist, q, obd["position"]))
    assert ours_dr == pytest.approx(
        DoublyRobust().estimate_policy_value(**common, estimated_rewards_by_reg_model=q), rel=1e-9
    )
    assert ours_ips != pytest.approx(logged_value(obd["reward"]), rel=1e-6)  # a different policy, another value


def test_bad_propensities_are_refused() -> None:
    with pytest.raises(ValidationError, match="pscore"):
        ips(np.array([1.0]), np.array([0.0]), np.array([0.5]))
    with pytest.raises(ValidationError, match="one length"):
        snips(np.array([1.0, 0.0]), np.array([0.5]), np.array([0.5]))
