"""Off-policy evaluation: how well would another policy have done on the logged traffic?

Pure functions over aligned arrays of logged rounds (``reward``, the logging policy's probability
``pscore`` of the logged action, and the evaluation policy's probability ``target`` of that same
action):

- IPS, inverse propensity scoring (D. G. Horvitz and D. J. Thompson, 1952; used for bandits by
  L. Li et al., "Unbiased offline evaluation of contextual-bandit-based news article recommendation
  algorithms", WSDM 2011);
- SNIPS, self-normalised IPS (A. Swaminathan and T. Joachims, "The Self-Normalized Estimator for
  Counterfactual Learning", NeurIPS 2015);
- DR, doubly robust (M. Dudík, J. Langford and L. Li, "Doubly Robust Policy Evaluation and
  Learning", ICML 2011), given a reward model's prediction for the logged action and its expectation
  under the evaluation policy.

The estimate of the logging policy itself (``target == pscore``) is the empirical mean reward.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import ValidationError


def _arrays(reward: np.ndarray, pscore: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(reward, dtype=np.float64)
    p = np.asarray(pscore, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if not (r.shape == p.shape == t.shape) or r.ndim != 1 or len(r) == 0:
        raise ValidationError("reward/pscore/target", "must be non-empty 1-d arrays of one length")
    if np.any(p <= 0) or np.any(p > 1) or np.any(t < 0) or np.any(t > 1):
        raise ValidationError("pscore", "must be in (0, 1] (and target in [0, 1])", "check the logged propensities")
    return r, t / p


def ips(reward: np.ndarray, pscore: np.ndarray, target: np.ndarray) -> float:
    """Inverse propensity scoring: ``mean(w · r)`` with ``w = target / pscore``."""
    r, w = _arrays(reward, pscore, target)
    return float(np.mean(w * r))


def snips(reward: np.ndarray, pscore: np.ndarray, target: np.ndarray) -> float:
    """Self-normalised IPS: ``Σ w·r / Σ w``."""
    r, w = _arrays(reward, pscore, target)
    return float(np.sum(w * r) / np.sum(w)) if np.sum(w) > 0 else 0.0


def doubly_robust(
    reward: np.ndarray, pscore: np.ndarray, target: np.ndarray, q_logged: np.ndarray, q_expected: np.ndarray
) -> float:
    """DR: ``mean(E_{a~π_e} q̂(x, a) + w · (r − q̂(x, a_logged)))``."""
    r, w = _arrays(reward, pscore, target)
    q_a = np.asarray(q_logged, dtype=np.float64)
    q_pi = np.asarray(q_expected, dtype=np.float64)
    if q_a.shape != r.shape or q_pi.shape != r.shape:
        raise ValidationError("q_logged/q_expected", "must align with the rewards")
    return float(np.mean(q_pi + w * (r - q_a)))


def logged_value(reward: np.ndarray) -> float:
    """The on-policy value of the logging policy: the mean observed reward."""
    return float(np.mean(np.asarray(reward, dtype=np.float64)))


ESTIMATORS: dict[str, Callable[..., float]] = {"ips": ips, "snips": snips, "dr": doubly_robust}


def from_action_dist(action_dist: np.ndarray, action: np.ndarray, position: np.ndarray | None = None) -> np.ndarray:
    """The evaluation policy's probability of each logged action from an ``[n, n_actions(, n_positions)]`` array."""
    dist = np.asarray(action_dist, dtype=np.float64)
    rows = np.arange(len(action))
    if dist.ndim == 3:
        pos = np.zeros(len(action), dtype=np.int64) if position is None else np.asarray(position, dtype=np.int64)
        out: np.ndarray = dist[rows, np.asarray(action, dtype=np.int64), pos]
        return out
    out = dist[rows, np.asarray(action, dtype=np.int64)]
    return out


def expected_q(action_dist: np.ndarray, q_hat: np.ndarray, position: np.ndarray | None = None) -> np.ndarray:
    """``Σ_a π_e(a | x) q̂(x, a)`` per round (at the logged position when the arrays have one)."""
    dist = np.asarray(action_dist, dtype=np.float64)
    q = np.asarray(q_hat, dtype=np.float64)
    if dist.ndim == 3:
        rows = np.arange(len(dist))
        pos = np.zeros(len(dist), dtype=np.int64) if position is None else np.asarray(position, dtype=np.int64)
        out: np.ndarray = np.sum(dist[rows, :, pos] * q[rows, :, pos], axis=1)
        return out
    out = np.sum(dist * q, axis=1)
    return out
