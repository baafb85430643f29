"""The ID decoder of GENIUS (Kim et al., CVPR 2025): a small transformer decoder that generates an
item's semantic ID ``(modality, c_1, …, c_L)`` from a query embedding, and query augmentation.

The query embedding is mapped by one linear layer to a few prefix vectors that the decoder
cross-attends to (as GENIUS conditions a T5 decoder on the CLIP query feature). Code tokens of level
``l`` are embedded from the quantizer's codebook ``l`` (initialised from it, then trained) through a
shared projection, plus a level embedding. Each step has its own output head.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import MissingDependency

try:
    import torch
    from torch import nn
    from torch.nn import functional as F
except ImportError as exc:  # the genret extra is not installed
    raise MissingDependency(exc.name or "torch", "genret") from exc


@dataclass(frozen=True, slots=True)
class DecoderConfig:
    """Size of the decoder: d_model 128, 2 layers, 4 prefix vectors (~1M weights) keep a training step cheap on
    two CPU cores (about 15 MFLOP per pair, forward and backward) while the vocabulary is only K codes."""

    dim: int
    levels: int
    codebook_size: int
    n_modalities: int
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    n_prefix: int = 4
    dropout: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class IDDecoder(nn.Module):
    """Autoregressive decoder over ``levels + 1`` tokens conditioned on a query embedding."""

    def __init__(self, config: DecoderConfig, codebooks: torch.Tensor | None = None) -> None:
        super().__init__()
        c = config
        self.config = c
        self.prefix = nn.Linear(c.dim, c.n_prefix * c.d_model)
        self.bos = nn.Parameter(torch.randn(c.d_model) * 0.02)
        self.modality_emb = nn.Embedding(c.n_modalities, c.d_model)
        if codebooks is None:
            codebooks = torch.randn(c.levels, c.codebook_size, c.dim) * 0.05
        book = codebooks.detach().clone()
        self.code_emb = nn.Parameter(book)  # [L, K, dim], initialised from the quantizer's codebooks
        self.code_proj = nn.Linear(c.dim, c.d_model)
        self.position = nn.Parameter(torch.randn(c.levels + 1, c.d_model) * 0.02)
        layer = nn.TransformerDecoderLayer(
            c.d_model, c.n_heads, 4 * c.d_model, c.dropout, batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerDecoder(layer, c.n_layers)
        self.norm = nn.LayerNorm(c.d_model)
        self.modality_head = nn.Linear(c.d_model, c.n_modalities)
        self.code_heads = nn.ModuleList(nn.Linear(c.d_model, c.codebook_size) for _ in range(c.levels))

    def memory(self, queries: torch.Tensor) -> torch.Tensor:
        """The prefix vectors [n, n_prefix, d_model] the decoder attends to."""
        out: torch.Tensor = self.prefix(queries)
        return out.view(queries.shape[0], self.config.n_prefix, self.config.d_model)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Inputs [n, t+1, d_model] for tokens [n, t]: BOS, then the modality and code embeddings."""
        n, t = tokens.shape
        parts = [self.bos.expand(n, 1, -1)]
        if t >= 1:
            parts.append(self.modality_emb(tokens[:, :1]))
        for level in range(t - 1):
            parts.append(self.code_proj(self.code_emb[level][tokens[:, level + 1]]).unsqueeze(1))
        x = torch.cat(parts, 1)
        return x + self.position[: x.shape[1]]

    def hidden(self, memory: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        size = x.shape[1]
        mask = torch.triu(torch.full((size, size), float("-inf"), device=x.device), diagonal=1)
        out: torch.Tensor = self.norm(self.layers(x, memory, tgt_mask=mask))
        return out

    def step_logits(self, hidden_last: torch.Tensor, step: int) -> torch.Tensor:
        """Logits of token ``step`` (0: modality, l ≥ 1: code of level l) from the last hidden state."""
        head = self.modality_head if step == 0 else self.code_heads[step - 1]
        out: torch.Tensor = head(hidden_last)
        return out

    def loss(self, queries: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Teacher-forced cross-entropy over all ``levels + 1`` tokens of the target IDs [n, L+1]."""
        h = self.hidden(self.memory(queries), target[:, :-1])
        total = F.cross_entropy(self.modality_head(h[:, 0]), target[:, 0])
        for level in range(self.config.levels):
            total = total + F.cross_entropy(self.code_heads[level](h[:, level + 1]), target[:, level + 1])
        return total / (self.config.levels + 1)


def augment(
    queries: torch.Tensor, targets: torch.Tensor, alpha: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """GENIUS query augmentation: z' = sqrt(s)·q + sqrt(1−s)·t with s ~ Beta(α, α), renormalised.

    Mixing a query with its target's embedding gives many queries on the path to the same ID.
    ``alpha <= 0`` turns it off (returns the queries unchanged).
    """
    if alpha <= 0:
        return queries
    beta = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))
    if generator is not None:  # Beta has no generator argument: draw via two seeded Gammas instead
        a = _gamma(alpha, queries.shape[0], generator)
        b = _gamma(alpha, queries.shape[0], generator)
        s = a / (a + b)
    else:
        s = beta.sample((queries.shape[0],))
    s = s.to(queries.device).unsqueeze(1)
    mixed = s.sqrt() * queries + (1 - s).sqrt() * targets
    return F.normalize(mixed, dim=-1)


def _gamma(shape: float, n: int, generator: torch.Generator) -> torch.Tensor:
    """Gamma(shape, 1) samples by Marsaglia & Tsang (2000), seeded through ``generator``."""
    boost = shape < 1
    k = shape + 1 if boost else shape
    d = k - 1.0 / 3
    c = 1.0 / math.sqrt(9 * d)
    out = torch.empty(n)
    filled = 0
    while filled < n:
        m = 2 * (n - filled) + 8
        x = torch.randn(m, generator=generator)
        u = torch.rand(m, generator=generator)
        v = (1 + c * x) ** 3
        ok = (v > 0) & (torch.log(u.clamp_min(1e-12)) < 0.5 * x**2 + d - d * v + d * torch.log(v.clamp_min(1e-12)))
        got = (d * v)[ok][: n - filled]
        out[filled : filled + len(got)] = got
        filled += len(got)
    if boost:
        out = out * torch.rand(n, generator=generator).clamp_min(1e-12) ** (1.0 / shape)
    return out
