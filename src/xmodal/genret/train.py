"""Training a generative index (GENIUS, Kim et al., CVPR 2025) from (query embedding, target item) pairs.

1. Residual k-means codebooks on the item embeddings (:mod:`.quantizer`).
2. GENIUS quantizer fine-tuning on the pairs (contrastive + commitment + MSE), ``contrastive`` on/off.
3. The items' semantic IDs, then the decoder trained with cross-entropy on the targets' IDs. Query
   augmentation (``alpha``; 0 turns it off) adds, next to each real query pair of a batch, one copy
   whose query is mixed with its target; the original pair is kept, and the noisy self pairs (already a
   point next to the target) are not augmented.

Checkpoints after every decoder epoch (``checkpoint_dir``) make a long run resumable.
"""

from __future__ import annotations

import json
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from ..errors import MissingDependency, ValidationError

try:
    import torch
except ImportError as exc:  # the genret extra is not installed
    raise MissingDependency(exc.name or "torch", "genret") from exc

from .config import TrainConfig
from .decoder import DecoderConfig, IDDecoder, augment
from .fixes import TRAIN_FIX
from .model import FORMAT_VERSION, MODALITIES, GenerativeIndex, default_device
from .quantizer import ResidualQuantizer, default_shape, finetune
from .search import one_thread

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class TrainingSet:
    """Items (rows, embeddings, modality codes) and pairs (query embedding → position of the target item).

    ``augmentable`` marks the pairs whose query is a real query (another view, a feedback or judged
    query) and so may be augmented; None means every pair.
    """

    rows: IntArray
    vectors: FloatArray
    modalities: IntArray
    queries: FloatArray
    targets: IntArray
    sources: dict[str, int] = field(default_factory=dict)
    augmentable: BoolArray | None = None

    def __post_init__(self) -> None:
        if len(self.rows) == 0:
            fix = f"add items, then {TRAIN_FIX}"
            raise ValidationError("catalog", "is empty: there is nothing to give IDs to", fix)
        if len(self.queries) != len(self.targets):
            raise ValidationError("pairs", "queries and targets differ in length")
        if self.augmentable is not None and len(self.augmentable) != len(self.targets):
            raise ValidationError("pairs", "augmentable and targets differ in length")


DEFAULT_CONFIG = TrainConfig()


def fit(
    data: TrainingSet,
    config: TrainConfig = DEFAULT_CONFIG,
    *,
    checkpoint_dir: Path | None = None,
    progress: bool = True,
    meta: dict[str, Any] | None = None,
) -> GenerativeIndex:
    """Train quantizer and decoder on ``data``; the returned index already holds every item's ID."""
    start = time.perf_counter()
    device = config.device or default_device()
    torch.manual_seed(config.seed)
    levels, k = default_shape(len(data.rows))
    config = replace(config, levels=config.levels or levels, codebook_size=config.codebook_size or k)
    assert config.levels is not None and config.codebook_size is not None
    vectors = torch.as_tensor(np.asarray(data.vectors, np.float32), device=device)
    queries = torch.as_tensor(np.asarray(data.queries, np.float32), device=device)
    targets = torch.as_tensor(np.asarray(data.targets, np.int64), device=device)
    eligible = np.ones(len(data.targets), bool) if data.augmentable is None else np.asarray(data.augmentable, bool)
    augmentable = torch.as_tensor(eligible, device=device)
    ckpt = _load_checkpoint(checkpoint_dir, config, vectors.shape[1])
    rq = ResidualQuantizer(vectors.shape[1], config.levels, config.codebook_size).to(device)
    timings: dict[str, float] = {}
    if ckpt is not None:
        rq.load_state_dict({"codebooks": ckpt["quantizer.codebooks"].to(device)})
        losses: dict[str, float] = {}
    else:
        t0 = time.perf_counter()
        rq.init_kmeans(vectors, seed=config.seed, iters=config.kmeans_iters)
        timings["kmeans_s"] = time.perf_counter() - t0
        losses = {}
        if config.contrastive and len(queries):
            t0 = time.perf_counter()
            losses = finetune(
                rq,
                queries,
                vectors[targets],
                epochs=config.finetune_epochs,
                seed=config.seed,
                max_pairs=config.finetune_pairs,
            )
            timings["finetune_s"] = time.perf_counter() - t0
    codes = torch.as_tensor(rq.encode(vectors))
    first = torch.as_tensor(np.asarray(data.modalities, np.int64)).unsqueeze(1)
    item_ids = torch.cat([first, codes], 1).to(device)
    dconf = DecoderConfig(
        vectors.shape[1],
        config.levels,
        config.codebook_size,
        len(MODALITIES),
        config.d_model,
        config.n_layers,
        config.n_heads,
        config.n_prefix,
    )
    decoder = IDDecoder(dconf, rq.codebooks.detach()).to(device)
    t0 = time.perf_counter()
    epochs_done, dec_loss, stopped = _train_decoder(
        decoder, queries, vectors, targets, augmentable, item_ids, config, ckpt, rq, checkpoint_dir, progress
    )
    timings["decoder_s"] = time.perf_counter() - t0
    summary = {
        "items": len(data.rows),
        "pairs": len(data.queries),
        "sources": dict(data.sources),
        "augmentable_pairs": int(eligible.sum()) if config.alpha > 0 else 0,
        "epochs": epochs_done,
        "stopped_early": stopped,
        "decoder_loss": dec_loss,
        "quantizer_losses": losses,
        "timings_s": {name: round(v, 2) for name, v in timings.items()},
        "seconds": round(time.perf_counter() - start, 2),
        "device": device,
    }
    full_meta = {
        "format_version": FORMAT_VERSION,
        "dim": int(vectors.shape[1]),
        "levels": config.levels,
        "codebook_size": config.codebook_size,
        "modalities": [m.value for m in MODALITIES],
        "decoder": dconf.to_dict(),
        "train_config": config.to_dict(),
        "training": summary,
        "trained_at": time.time(),
        **(meta or {}),
    }
    index = GenerativeIndex(rq.cpu() if device == "cpu" else rq, decoder, full_meta, device)
    index.trie.add(np.asarray(data.rows, np.int64), item_ids.cpu().numpy())
    stats = rq.stats(codes.numpy())
    trie = index.trie.stats()
    summary.update(
        {
            "codebook_used": list(stats.used),
            "perplexity": [round(p, 2) for p in stats.perplexity],
            "buckets": trie.buckets,
            "collisions": trie.collisions,
            "max_bucket": trie.max_bucket,
        }
    )
    return index


def _train_decoder(
    decoder: IDDecoder,
    queries: torch.Tensor,
    vectors: torch.Tensor,
    targets: torch.Tensor,
    augmentable: torch.Tensor,
    item_ids: torch.Tensor,
    config: TrainConfig,
    ckpt: dict[str, torch.Tensor] | None,
    rq: ResidualQuantizer,
    checkpoint_dir: Path | None,
    progress: bool,
) -> tuple[int, float, bool]:
    """Cross-entropy on the targets' IDs with query augmentation; returns epochs done, last loss, stopped."""
    n = len(queries)
    batch = decoder_batch(n, config)
    # intra-op threads cost more than they give on such small matrices (docs)
    small = batch < 128 and queries.device.type == "cpu"
    threads: AbstractContextManager[None] = one_thread() if small else nullcontext()
    with threads:
        return _decoder_epochs(
            decoder, queries, vectors, targets, augmentable, item_ids, config, ckpt, rq, checkpoint_dir, progress, batch
        )


def _decoder_epochs(
    decoder: IDDecoder,
    queries: torch.Tensor,
    vectors: torch.Tensor,
    targets: torch.Tensor,
    augmentable: torch.Tensor,
    item_ids: torch.Tensor,
    config: TrainConfig,
    ckpt: dict[str, torch.Tensor] | None,
    rq: ResidualQuantizer,
    checkpoint_dir: Path | None,
    progress: bool,
    batch: int,
) -> tuple[int, float, bool]:
    opt = torch.optim.AdamW(decoder.parameters(), lr=config.lr, weight_decay=0.01)
    start_epoch = 0
    if ckpt is not None:
        decoder.load_state_dict({k[8:]: v for k, v in ckpt.items() if k.startswith("decoder.")})
        _load_optimizer(opt, decoder, ckpt)
        start_epoch = int(ckpt["epoch"][0])
    gen = torch.Generator().manual_seed(config.seed + start_epoch)
    n = len(queries)
    per_epoch = max(1, -(-n // batch))
    epochs = max(config.epochs, -(-config.min_steps // per_epoch))
    deadline = time.perf_counter() + 60 * config.max_minutes if config.max_minutes else None
    last, stopped, epoch = 0.0, False, start_epoch
    for epoch in range(start_epoch, epochs):
        decoder.train()
        order = torch.randperm(n, generator=gen).to(queries.device)
        total, steps = 0.0, 0
        bar = tqdm(
            range(0, n, batch),
            desc=f"genret epoch {epoch + 1}/{epochs}",
            disable=None if progress else True,  # None: a bar on a terminal only (a log gets none)
            leave=False,
            unit="batch",
        )
        for s in bar:
            idx = order[s : s + batch]
            q, ids = queries[idx], item_ids[targets[idx]]
            if config.alpha > 0 and config.augment_share > 0:  # keep the pairs, add mixed copies of the real ones
                extra = idx[augmentable[idx]]
                extra = extra[: round(len(extra) * min(1.0, config.augment_share))]
                if len(extra) and config.augment_replace:
                    keep = idx[~torch.isin(idx, extra)]
                    idx = torch.cat([keep, extra])
                    q, ids = queries[idx], item_ids[targets[idx]]
                    q[len(keep) :] = augment(queries[extra], vectors[targets[extra]], config.alpha, gen)
                elif len(extra):
                    mixed = augment(queries[extra], vectors[targets[extra]], config.alpha, gen)
                    q, ids = torch.cat([q, mixed]), torch.cat([ids, item_ids[targets[extra]]])
            if config.self_noise_max > 0:  # fresh noise on the self pairs (the first len(idx) rows are idx's)
                own = torch.nonzero(~augmentable[idx]).squeeze(1)
                if len(own):  # q is this batch's own tensor (indexing with idx, or a cat, copies): no clone
                    q[own] = noisy(vectors[targets[idx[own]]], config.self_noise_min, config.self_noise_max, gen)
            loss = decoder.loss(q, ids)
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            total, steps = total + float(loss.detach()), steps + 1
        last = total / max(1, steps)
        if checkpoint_dir is not None and ((epoch + 1) % max(1, epochs // 20) == 0 or epoch + 1 == epochs):
            _save_checkpoint(checkpoint_dir, decoder, opt, rq, epoch + 1, config)
        if deadline is not None and time.perf_counter() > deadline:
            stopped = epoch + 1 < epochs
            return epoch + 1, last, stopped
    return max(epoch + 1, start_epoch) if n else start_epoch, last, stopped


def noisy(vectors: torch.Tensor, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    """Each (unit) vector plus isotropic noise of norm uniform in [low, high], renormalised."""
    n, dim = vectors.shape
    direction = torch.nn.functional.normalize(torch.randn(n, dim, generator=generator), dim=-1)
    scale = low + (high - low) * torch.rand(n, 1, generator=generator)
    mixed = vectors + (scale * direction).to(vectors.device)
    return torch.nn.functional.normalize(mixed, dim=-1)


def decoder_batch(pairs: int, config: TrainConfig) -> int:
    """The decoder's batch: ``config.batch``, or for fewer than 8 such batches of pairs, ``pairs / 8`` (at least
    ``min_batch``), so the ``min_steps`` floor of a small catalog costs little compute (a step costs ∝ batch)."""
    return max(1, min(config.batch, max(config.min_batch, -(-pairs // 8))))


# -- resumable checkpoints (safetensors, no pickle) --------------------------------------------
def _save_checkpoint(
    directory: Path,
    decoder: IDDecoder,
    opt: torch.optim.Optimizer,
    rq: ResidualQuantizer,
    epoch: int,
    config: TrainConfig,
) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    tensors = {
        "quantizer.codebooks": rq.codebooks.detach().cpu().contiguous(),
        "epoch": torch.tensor([epoch], dtype=torch.int64),
    }
    tensors.update({f"decoder.{k}": v.detach().cpu().contiguous() for k, v in decoder.state_dict().items()})
    names = dict(decoder.named_parameters())
    by_id = {id(p): name for name, p in names.items()}
    for param, state in opt.state.items():
        name = by_id[id(param)]
        for key, value in state.items():
            tensors[f"opt.{name}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    part = directory / "checkpoint.safetensors.part"
    save_file(tensors, str(part))
    part.replace(directory / "checkpoint.safetensors")
    (directory / "checkpoint.json").write_text(json.dumps(_ckpt_key(config, rq.dim)))


def _ckpt_key(config: TrainConfig, dim: int) -> dict[str, Any]:
    keep = {k: v for k, v in config.to_dict().items() if k not in ("epochs", "max_minutes", "device")}
    return {"dim": dim, **keep}


def _load_checkpoint(directory: Path | None, config: TrainConfig, dim: int) -> dict[str, torch.Tensor] | None:
    """The checkpoint of an interrupted run with the same settings, or None (start afresh)."""
    if directory is None or not (directory / "checkpoint.safetensors").exists():
        return None
    try:
        if json.loads((directory / "checkpoint.json").read_text()) != _ckpt_key(config, dim):
            return None
        from safetensors.torch import load_file

        return load_file(str(directory / "checkpoint.safetensors"))
    except (OSError, ValueError):
        return None  # an unreadable checkpoint only costs a restart


def _load_optimizer(opt: torch.optim.Optimizer, decoder: IDDecoder, ckpt: dict[str, torch.Tensor]) -> None:
    for name, param in decoder.named_parameters():
        state = {
            key.rsplit(".", 1)[1]: value
            for key, value in ckpt.items()
            if key.startswith(f"opt.{name}.") and key.count(".") == name.count(".") + 2
        }
        if state:
            opt.state[param] = {k: v.to(param.device) if k != "step" else v for k, v in state.items()}
