"""Semantic IDs by residual quantization (GENIUS, Kim et al., "GENIUS: A Generative Framework for
Universal Multimodal Search", CVPR 2025).

An item's ID is ``(modality, c_1, …, c_L)``: the first code is its modality family (text, media, or
media with text: :func:`~xmodal.records.modality_family`, in the order of the declared
:class:`~xmodal.records.Modality` members), the next L codes come from residual quantization of its embedding
with L codebooks of K vectors (Juang & Gray 1982; Zeghidour et al. 2021, SoundStream). Codebooks are
initialised by residual k-means (Lloyd 1982 with k-means++ seeding, Arthur & Vassilvitskii 2007) and
then fine-tuned as in GENIUS: an InfoNCE contrastive loss between query embeddings and the quantized
targets, the codebook/commitment loss of VQ-VAE (van den Oord et al. 2017) and an MSE between the
quantized query and the quantized target, so a query and its target tend to share codes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional as F

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


def default_shape(n_items: int) -> tuple[int, int]:
    """Default ``(levels, codebook_size)`` for a catalog of ``n_items``.

    K grows with the catalog (about sqrt(n), a power of two between 16 and 256) so small catalogs
    still get well-populated codebooks; three levels give K³ cells per modality (16.7M at K=256),
    enough for 10M items with few collisions when the embeddings spread; a fourth level is added
    above 4M items. Buckets are never capped: a shared code stores all its items.
    """
    k = int(min(256, max(16, 2 ** round(math.log2(max(1.0, math.sqrt(max(n_items, 1))))))))
    levels = 4 if n_items > 4_000_000 else 3
    return levels, k


def kmeans(x: torch.Tensor, k: int, *, iters: int = 20, seed: int = 0, sample: int | None = None) -> torch.Tensor:
    """Seeded k-means (k-means++ seeding on a sample, then Lloyd iterations); returns [k, d] centroids.

    The sample holds at most ``sample`` points (default 128 per centroid, 32,768 for K=256; FAISS caps at
    256 per centroid). With fewer points than ``k`` the missing centroids repeat points plus small noise.
    """
    gen = torch.Generator(device="cpu").manual_seed(seed)
    sample = sample or 128 * k
    n = x.shape[0]
    if n == 0:
        return torch.zeros(k, x.shape[1], device=x.device)
    if n > sample:
        x_fit = x[torch.randperm(n, generator=gen)[:sample].to(x.device)]
    else:
        x_fit = x
    centers = _kmeans_pp(x_fit, k, gen)
    for _ in range(iters):
        assign = torch.cdist(x_fit, centers).argmin(dim=1)
        sums = torch.zeros_like(centers).index_add_(0, assign, x_fit)
        counts = torch.bincount(assign, minlength=k).to(x_fit.dtype).unsqueeze(1)
        empty = counts.squeeze(1) == 0
        centers = torch.where(empty.unsqueeze(1), centers, sums / counts.clamp_min(1))
    return centers


def _kmeans_pp(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    first = int(torch.randint(n, (1,), generator=gen))
    centers = [x[first]]
    dist = ((x - x[first]) ** 2).sum(1)
    for _ in range(1, k):
        total = float(dist.sum())
        if total <= 0:  # fewer distinct points than k: jitter copies
            pick = int(torch.randint(n, (1,), generator=gen))
            noise = torch.randn(x.shape[1], generator=gen).to(x.device) * 1e-3
            centers.append(x[pick] + noise)
            continue
        pick = int(torch.multinomial(dist.cpu() / total, 1, generator=gen))
        centers.append(x[pick])
        dist = torch.minimum(dist, ((x - x[pick]) ** 2).sum(1))
    return torch.stack(centers)


@dataclass(frozen=True, slots=True)
class QuantizerStats:
    """Per-level codebook usage: ``used`` codes and ``perplexity`` (exp of the code entropy)."""

    used: tuple[int, ...]
    perplexity: tuple[float, ...]


class ResidualQuantizer(nn.Module):
    """L codebooks of K vectors; ``encode`` picks the nearest code of each residual, greedily."""

    def __init__(self, dim: int, levels: int = 3, codebook_size: int = 256) -> None:
        super().__init__()
        self.dim, self.levels, self.codebook_size = dim, levels, codebook_size
        self.codebooks = nn.Parameter(torch.zeros(levels, codebook_size, dim))

    def init_kmeans(self, x: torch.Tensor, *, seed: int = 0, iters: int = 20) -> None:
        """Residual k-means: level l clusters the residuals left by levels < l."""
        residual = x.detach().clone()
        with torch.no_grad():
            for level in range(self.levels):
                centers = kmeans(residual, self.codebook_size, iters=iters, seed=seed + level)
                self.codebooks[level].copy_(centers)
                residual = residual - centers[torch.cdist(residual, centers).argmin(1)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Codes [n, L], the quantized vectors and the codebook+commitment loss."""
        residual = x
        quantized = torch.zeros_like(x)
        codes, loss = [], x.new_zeros(())
        for level in range(self.levels):
            book = self.codebooks[level]
            idx = torch.cdist(residual.detach(), book.detach()).argmin(1)
            chosen = book[idx]
            # VQ-VAE: move codes towards the residuals; commitment keeps residuals near their codes.
            loss = loss + F.mse_loss(chosen, residual.detach()) + 0.25 * F.mse_loss(residual, chosen.detach())
            quantized = quantized + chosen
            residual = residual - chosen.detach()
            codes.append(idx)
        # The embeddings are fixed inputs, so gradients only reach the codebooks through ``quantized``.
        return torch.stack(codes, 1), quantized, loss

    @torch.no_grad()
    def encode(self, x: FloatArray | torch.Tensor, batch: int = 65_536) -> IntArray:
        """The L codes of each row (int64 [n, L])."""
        t = torch.as_tensor(np.asarray(x, dtype=np.float32)) if not isinstance(x, torch.Tensor) else x
        t = t.to(self.codebooks.device)
        out = [self(t[s : s + batch])[0].cpu() for s in range(0, t.shape[0], batch)]
        if not out:
            return np.zeros((0, self.levels), dtype=np.int64)
        return torch.cat(out).numpy().astype(np.int64)

    def stats(self, codes: IntArray) -> QuantizerStats:
        """Codebook usage per level: how many codes are used and their perplexity."""
        used, perp = [], []
        for level in range(self.levels):
            counts = np.bincount(codes[:, level], minlength=self.codebook_size).astype(np.float64)
            p = counts[counts > 0] / max(1.0, counts.sum())
            used.append(int((counts > 0).sum()))
            perp.append(float(np.exp(-(p * np.log(p)).sum())) if len(p) else 0.0)
        return QuantizerStats(tuple(used), tuple(perp))


def contrastive_loss(queries: torch.Tensor, targets: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
    """Symmetric InfoNCE with in-batch negatives (Oord et al. 2018; CLIP, Radford et al. 2021)."""
    q, t = F.normalize(queries, dim=-1), F.normalize(targets, dim=-1)
    logits = q @ t.T / temperature
    labels = torch.arange(q.shape[0], device=q.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def finetune(
    rq: ResidualQuantizer,
    queries: torch.Tensor,
    targets: torch.Tensor,
    *,
    epochs: int = 2,
    batch: int = 512,
    lr: float = 1e-3,
    contrastive: bool = True,
    seed: int = 0,
    max_pairs: int | None = None,
) -> dict[str, float]:
    """GENIUS quantizer fine-tuning on (query, target) pairs; returns the last epoch's mean losses.

    loss = InfoNCE(q, Q(t)) [if ``contrastive``] + codebook/commitment(q) + codebook/commitment(t)
    + MSE(Q(q), Q(t)). Each epoch visits a fresh random sample of at most ``max_pairs`` pairs (all if None):
    the codebooks have only L·K·d weights, and a step costs as much as a decoder step.
    """
    opt = torch.optim.Adam(rq.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    n = queries.shape[0]
    last: dict[str, float] = {}
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)[:max_pairs]
        sums = {"contrastive": 0.0, "commit": 0.0, "mse": 0.0}
        steps = 0
        for s in range(0, len(order), batch):
            idx = order[s : s + batch].to(queries.device)
            q, t = queries[idx], targets[idx]
            _, q_hat, q_commit = rq(q)
            _, t_hat, t_commit = rq(t)
            mse = F.mse_loss(q_hat, t_hat)
            con = contrastive_loss(q, t_hat) if contrastive and len(idx) > 1 else q.new_zeros(())
            loss = con + q_commit + t_commit + mse
            opt.zero_grad()
            loss.backward()
            opt.step()
            sums["contrastive"] += float(con.detach())
            sums["commit"] += float((q_commit + t_commit).detach())
            sums["mse"] += float(mse.detach())
            steps += 1
        last = {name: value / max(1, steps) for name, value in sums.items()}
    return last
