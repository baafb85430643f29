"""The generative index's training hyperparameters (:class:`TrainConfig`), apart from the training itself so that
the CLI can show their defaults without importing torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Hyperparameters; ``levels``/``codebook_size`` of None take :func:`.quantizer.default_shape` of the catalog."""

    levels: int | None = None
    codebook_size: int | None = None
    epochs: int = 10
    # small catalogs train for more epochs so the decoder sees at least this many batches: 3,600, chosen on the
    # WordNet tuning kinds (docs/benchmarks.md, GENIUS training variants: 600 → 3,600 lifted every kind)
    min_steps: int = 3600
    batch: int = 512
    min_batch: int = 32  # small pair sets use batches of n/8 (at least this): the same steps for less compute
    lr: float = 2e-3
    alpha: float = 8.0  # query augmentation Beta(α, α), 0 = off; α=8 won on validation (docs/benchmarks/genret.md)
    augment_share: float = 1.0  # augmented copies added per augmentable pair of a batch (0–1)
    augment_replace: bool = False  # the first design, kept for the ablation: mixed copies replace their pairs
    contrastive: bool = True  # GENIUS quantizer fine-tuning; False keeps plain residual k-means IDs
    finetune_epochs: int = 3
    finetune_pairs: int = 50_000  # pairs sampled per fine-tuning epoch (the 100k-item budget, docs)
    kmeans_iters: int = 20
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    n_prefix: int = 4
    seed: int = 0
    device: str | None = None
    max_minutes: float | None = None  # stop decoder training early (the summary says so)
    # the self pairs' queries (the pairs that are not real queries) drawn afresh in every batch: the target's
    # embedding plus isotropic noise of relative norm uniform in [self_noise_min, self_noise_max], renormalised;
    # self_noise_max 0 keeps the fixed noisy copies of the training set (one per item); 0.3–1.5 (cosine 0.55–0.96
    # to the item, where real queries sit) chosen with min_steps on the WordNet tuning kinds
    self_noise_min: float = 0.3
    self_noise_max: float = 1.5

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
