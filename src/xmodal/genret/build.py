"""Training the generative index of an engine end to end: gather pairs, fit, evaluate, save, serve."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..engine import Engine
from ..stale import clear as clear_stale
from .config import TrainConfig
from .data import collect, feedback_events
from .extension import live_genret
from .train import fit

if TYPE_CHECKING:
    from .model import GenerativeIndex


def train_engine(
    engine: Engine,
    *,
    judgments: str | Path | None = None,
    config: TrainConfig | None = None,
    progress: bool = True,
    resume: bool = True,
    feedback: bool = True,
    pseudo: bool = False,
) -> dict[str, Any]:
    """Train on the engine's items (and feedback and judgments), install the model, return its summary.

    With ``resume`` an interrupted run with the same settings continues from its last epoch
    (checkpoints under ``<index>/genret.ckpt/``, removed when training completes).
    """
    config = config or TrainConfig()
    data, seq, skipped = collect(engine, judgments=judgments, feedback=feedback, pseudo=pseudo, seed=config.seed)
    ckpt = engine.path / "genret.ckpt"
    meta = {"encoder": engine.encoder.config(), "store_seq": seq, "feedback_events": feedback_events(engine)}
    model = fit(data, config, checkpoint_dir=ckpt if resume else None, progress=progress, meta=meta)
    model.meta["last_evaluation"] = fit_evaluation(model, data.queries, data.targets, data.rows)
    live_genret(engine).install(model, seq)
    clear_stale(engine.store, "genret")  # learned from the index's current vectors
    for name in ("checkpoint.safetensors", "checkpoint.json"):
        (ckpt / name).unlink(missing_ok=True)
    if ckpt.exists() and not any(ckpt.iterdir()):
        ckpt.rmdir()
    summary: dict[str, Any] = dict(model.meta["training"])
    summary["skipped_judgments"] = [{"where": r.where, "reason": r.reason} for r in skipped]
    summary["last_evaluation"] = model.meta["last_evaluation"]
    return summary


def fit_evaluation(
    model: GenerativeIndex, queries: np.ndarray, targets: np.ndarray, rows: np.ndarray, sample: int = 300, seed: int = 0
) -> dict[str, Any]:
    """Recall@10 of generation on a sample of the training pairs (how well the decoder fits them)."""
    if len(queries) == 0:
        return {"kind": "training pairs", "queries": 0}
    pick = np.random.default_rng(seed).choice(len(queries), size=min(sample, len(queries)), replace=False)
    results = model.search(queries[pick], 10)
    hits = [int(rows[targets[i]]) in set(res[0].tolist()) for i, res in zip(pick, results, strict=True)]
    return {"kind": "training pairs (fit)", "queries": len(pick), "recall@10": round(float(np.mean(hits)), 4)}
