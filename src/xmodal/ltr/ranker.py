"""The learned ranker: LightGBM lambdarank over (query, candidate) features, with IPW clicks.

LambdaMART (C. J. C. Burges, "From RankNet to LambdaRank to LambdaMART: An Overview", MSR-TR-2010-82)
as implemented by LightGBM. Clicks are biased by position; each clicked example is weighted by the
inverse of its position's examination propensity (T. Joachims, A. Swaminathan and T. Schnabel,
"Unbiased Learning-to-Rank with Biased Feedback", WSDM 2017). Propensities come from the logs'
randomised impressions (:func:`estimate_propensities`). The model is saved in LightGBM's own text
format next to a JSON sidecar (format version, feature names); never pickled.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingDependency, StorageError, ValidationError

RANKER_FORMAT = 1


def _lightgbm() -> Any:
    try:
        import lightgbm
    except ImportError as exc:
        raise MissingDependency("lightgbm", "ltr") from exc
    return lightgbm


def estimate_propensities(
    positions: Sequence[int], clicked: Sequence[bool], n_positions: int, *, parametric: bool = True
) -> np.ndarray:
    """Examination propensity per 1-based position, relative to position 1, from *randomised* impressions.

    Under randomisation relevance is independent of position, so the click rate at a position is
    proportional to the chance that position is examined (Joachims et al. 2017, section 5). The
    per-position rates of a few hundred sessions are noisy, so by default a power law ``1/p**eta``
    is fitted to them (weighted least squares on the logs); ``parametric=False`` returns the raw
    smoothed rates.
    """
    pos = np.asarray(positions, dtype=np.int64)
    clk = np.asarray(clicked, dtype=np.float64)
    rate, clicks = np.ones(n_positions), np.zeros(n_positions)
    for p in range(1, n_positions + 1):
        mask = pos == p
        clicks[p - 1] = clk[mask].sum()
        rate[p - 1] = (clicks[p - 1] + 0.5) / (mask.sum() + 1.0)  # smoothed click rate
    if not parametric:
        out: np.ndarray = np.clip(rate / rate[0], 1e-3, 1.0)
        return out
    # log rate_p = c - eta * log p, weighted by the clicks behind each rate (its inverse variance, roughly)
    logp = np.log(np.arange(1, n_positions + 1))
    w = np.sqrt(clicks + 0.5)
    design = np.stack([np.ones(n_positions), -logp], axis=1) * w[:, None]
    (_, eta), *_ = np.linalg.lstsq(design, np.log(rate) * w, rcond=None)
    fitted: np.ndarray = np.clip(np.exp(-max(float(eta), 0.0) * logp), 1e-3, 1.0)
    return fitted


class LambdaRanker:
    """LightGBM lambdarank with scikit-learn-style ``fit`` / ``score`` and text-format persistence.

    Needs the ``ltr`` extra: without LightGBM the constructor (and :meth:`load`) raise
    :class:`~xmodal.errors.MissingDependency` naming it.
    """

    def __init__(
        self,
        n_estimators: int = 150,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        min_child_samples: int = 20,
        seed: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.seed = seed
        _lightgbm()  # a missing LightGBM is reported where the ranker is made
        self.booster_: Any = None
        self.feature_names_: list[str] = []

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        groups: Sequence[int],
        *,
        sample_weight: np.ndarray | None = None,
        feature_names: Sequence[str] = (),
    ) -> LambdaRanker:
        """Train on feature rows ``X`` with graded labels ``y``; ``groups`` are the rows per query, in order."""
        lgb = _lightgbm()
        if sum(groups) != len(X) or len(y) != len(X):
            raise ValidationError("groups", "sizes do not add up to the number of rows", "pass one size per query")
        params = {
            "objective": "lambdarank",
            "metric": "ndcg",
            "eval_at": [10],
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_child_samples,
            "seed": self.seed,
            "deterministic": True,
            "num_threads": 1,
            "verbose": -1,
            "force_row_wise": True,
        }
        names = list(feature_names) or [f"f{i}" for i in range(X.shape[1])]
        data = lgb.Dataset(
            np.asarray(X, dtype=np.float64),
            label=np.asarray(y),
            group=list(groups),
            weight=sample_weight,
            feature_name=[re.sub(r"\W", "_", n) for n in names],
            free_raw_data=True,
        )
        self.booster_ = lgb.train(params, data, num_boost_round=self.n_estimators)
        self.feature_names_ = names
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        if self.booster_ is None:
            raise ValidationError("ranker", "is not trained", "train it with `xmodal train-ranker` or fit()")
        if X.shape[1] != len(self.feature_names_):
            raise ValidationError("features", f"has {X.shape[1]} columns, the model expects {len(self.feature_names_)}")
        return np.asarray(self.booster_.predict(np.asarray(X, dtype=np.float64), num_threads=1), dtype=np.float64)

    def importance(self) -> dict[str, float]:
        """Each feature's share of the model's total split gain."""
        if self.booster_ is None:
            raise ValidationError("ranker", "is not trained", "fit it first")
        gain = np.asarray(self.booster_.feature_importance(importance_type="gain"), dtype=np.float64)
        total = gain.sum() or 1.0
        return {name: float(g / total) for name, g in zip(self.feature_names_, gain, strict=True)}

    def save(self, path: Path) -> None:
        """``path`` is the model in LightGBM's text format; ``path.json`` holds the sidecar."""
        if self.booster_ is None:
            raise ValidationError("ranker", "is not trained", "fit it before saving")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.booster_.save_model(str(path))
        sidecar = {"format_version": RANKER_FORMAT, "features": self.feature_names_, "params": self.params()}
        Path(f"{path}.json").write_text(json.dumps(sidecar, indent=2))

    def params(self) -> dict[str, Any]:
        return {
            "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "seed": self.seed,
        }

    @classmethod
    def load(cls, path: Path) -> LambdaRanker:
        """Load a saved model; a missing, corrupt or other-format file is a :class:`StorageError`."""
        lgb = _lightgbm()
        try:
            sidecar = json.loads(Path(f"{path}.json").read_text())
        except (OSError, ValueError) as exc:
            raise StorageError(
                f"{path}.json: missing or unreadable ranker sidecar ({exc}); retrain the ranker"
            ) from exc
        if sidecar.get("format_version") != RANKER_FORMAT:
            raise StorageError(
                f"{path}: ranker format {sidecar.get('format_version')!r}, this xmodal reads "
                f"{RANKER_FORMAT}; retrain with `xmodal train-ranker`"
            )
        try:
            booster = lgb.Booster(model_file=str(path))
        except Exception as exc:  # LightGBM raises its own LightGBMError for a damaged file
            raise StorageError(f"{path}: corrupt ranker model ({exc}); retrain with `xmodal train-ranker`") from exc
        ranker = cls(**sidecar.get("params", {}))
        ranker.booster_, ranker.feature_names_ = booster, list(sidecar["features"])
        if booster.num_feature() != len(ranker.feature_names_):
            raise StorageError(
                f"{path}: the model has {booster.num_feature()} features, the sidecar names "
                f"{len(ranker.feature_names_)}; retrain the ranker"
            )
        return ranker
