"""Trie-constrained beam search over semantic IDs, and the GENIUS / GENIUS-R candidate lists.

At every step each beam may only emit codes that continue a prefix present in the trie, so every
finished beam is the ID of at least one live item (constrained decoding as in GENRE, De Cao et al.,
ICLR 2021; used by GENIUS, Kim et al., CVPR 2025). Candidates are the members of the generated
buckets in beam order (GENIUS); GENIUS-R re-ranks them by cosine similarity with the stored item
embeddings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt
import torch

from .decoder import IDDecoder
from .trie import CodeTrie

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
VectorFetch = Callable[[IntArray, FloatArray], FloatArray]  # (rows, query) -> similarities


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch's operations in this block run on one intra-op thread (the count is put back after; with OpenMP
    the count belongs to the calling thread). The decoder's matrices are small: more threads cost more in
    fork/join than they give, and at query time they contend with the query encoder's own threads (on 2 cores
    every mode's p50 halves with one: docs/benchmarks.md, "GENIUS-R: 512 beams of three tokens")."""
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def beam_search(
    decoder: IDDecoder, trie: CodeTrie, queries: torch.Tensor, beam: int, steps: int | None = None
) -> tuple[IntArray, FloatArray]:
    """Top ``beam`` keys [n, beam] (-1 where fewer exist) and their log-probabilities.

    The keys are full IDs, or with ``steps`` (1 ≤ steps ≤ the ID length) the packed prefixes of the
    first ``steps`` tokens: decoding stops there (see :func:`bucket_candidates`' ``depth``)."""
    steps = trie.length if steps is None else steps
    if not 1 <= steps <= trie.length:
        raise ValueError(f"depth (decoded steps) {steps} is outside 1..{trie.length}")
    decoder.eval()
    n = queries.shape[0]
    device = queries.device
    memory = decoder.memory(queries)
    tokens = torch.zeros((n, 0), dtype=torch.long, device=device)
    scores = np.zeros((n, 1), dtype=np.float32)
    keys = np.zeros((n, 1), dtype=np.int64)
    for step in range(steps):
        b = keys.shape[1]
        mem = memory.repeat_interleave(b, dim=0)
        hidden = decoder.hidden(mem, tokens)[:, -1]
        logp = torch.log_softmax(decoder.step_logits(hidden, step).float(), dim=-1).cpu().numpy()
        allowed = trie.allowed(keys.reshape(-1), step)
        alive = np.isfinite(scores.reshape(-1))
        allowed &= alive[:, None]
        width = logp.shape[1]
        total = np.where(allowed, logp + scores.reshape(-1, 1), -np.inf).reshape(n, b * width)
        # only live prefixes go on: a dead beam (no code of the trie under it) would cost the next step's
        # decoder a sequence for nothing (128 live level-1 cells of 512 beams: 3/4 of the step)
        take = max(1, min(beam, int(np.isfinite(total).sum(1).max())))
        best = np.argpartition(-total, take - 1, axis=1)[:, :take]
        best = np.take_along_axis(best, np.argsort(-np.take_along_axis(total, best, 1), axis=1, kind="stable"), 1)
        scores = np.take_along_axis(total, best, 1).astype(np.float32)
        parent, code = best // width, best % width
        flat_parent = (np.arange(n)[:, None] * b + parent).reshape(-1)
        keys = code if step == 0 else keys.reshape(-1)[flat_parent].reshape(n, take) * width + code
        new_tok = torch.as_tensor(code.reshape(-1, 1), device=device)
        tokens = torch.cat([tokens[torch.as_tensor(flat_parent, device=device)], new_tok], 1)
    keys = np.where(np.isfinite(scores), keys, -1)
    if keys.shape[1] < beam:  # fewer live keys than beams: the rest are -1
        pad = beam - keys.shape[1]
        keys = np.pad(keys, ((0, 0), (0, pad)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    return keys.astype(np.int64), scores


def bucket_candidates(
    trie: CodeTrie, keys: IntArray, scores: FloatArray, want: int, depth: int | None = None
) -> tuple[IntArray, FloatArray]:
    """GENIUS candidates of one query: members of the generated buckets in beam order, at most ``want``.

    ``keys`` are full IDs, or with ``depth`` the packed prefixes of that many tokens (from
    :func:`beam_search` with ``steps=depth``): then every item under each prefix is a candidate.
    Items of one bucket share the beam's log-probability (ties keep (key, row) order).
    """
    valid = keys >= 0
    rows, out_scores = [], []
    got = 0
    depth = trie.length if depth is None else depth
    groups = trie.members(keys[valid]) if depth == trie.length else trie.prefix_members(keys[valid], depth)
    for members, score in zip(groups, scores[valid].tolist(), strict=True):
        rows.append(members)
        out_scores.append(np.full(len(members), score, np.float32))
        got += len(members)
        if got >= want:
            break
    if not rows:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    return np.concatenate(rows)[:want], np.concatenate(out_scores)[:want]


def rerank(rows: IntArray, query: FloatArray, similarity: VectorFetch, k: int) -> tuple[IntArray, FloatArray]:
    """GENIUS-R: order candidates by cosine similarity with the query, best first, top ``k``."""
    if len(rows) == 0:
        return rows, np.empty(0, np.float32)
    sims = np.asarray(similarity(rows, query), dtype=np.float32)
    order = np.lexsort((rows, -sims))[:k]
    return rows[order], sims[order]
