"""Ranking metrics with binary relevance: recall@k, reciprocal rank (MRR) and nDCG@k.

Each function takes one ranked list of ids (best first) and the set of relevant ids, and returns a
number in [0, 1]; :func:`mean` averages per-query values. Inputs are never mutated. Duplicate ids in a
ranking count once, at their first position (a repeat still takes its place in the top k).

- recall@k: the share of the relevant ids found in the top k (Manning, Raghavan & Schütze,
  *Introduction to Information Retrieval*, 2008, ch. 8).
- reciprocal rank: 1 / rank of the first relevant id, 0 when none is ranked; its mean over queries is
  the MRR (Voorhees, "The TREC-8 Question Answering Track Report", 1999).
- nDCG@k: discounted cumulated gain normalised by the ideal ranking's (Järvelin & Kekäläinen,
  "Cumulated gain-based evaluation of IR techniques", ACM TOIS 20(4), 2002), with binary gains and the
  now-standard discount 1 / log2(rank + 1) (as in Burges et al., ICML 2005, and scikit-learn).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence

METRICS = ("recall@1", "recall@5", "recall@10", "mrr", "ndcg@10")


def _top(ranking: Sequence[str], k: int | None) -> list[tuple[int, str]]:
    """(rank, id) of each id's first occurrence within the first ``k`` positions (all when None)."""
    if k is not None and k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    out: list[tuple[int, str]] = []
    seen: set[str] = set()
    for rank, item in enumerate(ranking[:k] if k is not None else ranking, 1):
        if item not in seen:
            seen.add(item)
            out.append((rank, item))
    return out


def recall_at_k(ranking: Sequence[str], relevant: Collection[str], k: int) -> float:
    """|relevant ∩ top-k| / |relevant| (0 when nothing is relevant)."""
    if not relevant:
        return 0.0
    found = sum(1 for _, item in _top(ranking, k) if item in relevant)
    return found / len(set(relevant))


def reciprocal_rank(ranking: Sequence[str], relevant: Collection[str], k: int | None = None) -> float:
    """1 / rank of the first relevant id within the top ``k`` (all ranks when None), else 0."""
    for rank, item in _top(ranking, k):
        if item in relevant:
            return 1.0 / rank
    return 0.0


def dcg_at_k(ranking: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Σ over the top k of rel_i / log2(i + 1), with rel_i ∈ {0, 1} (Järvelin & Kekäläinen 2002)."""
    return sum(1.0 / math.log2(rank + 1) for rank, item in _top(ranking, k) if item in relevant)


def ndcg_at_k(ranking: Sequence[str], relevant: Collection[str], k: int) -> float:
    """DCG@k divided by the DCG@k of the ideal ranking (all relevant ids first); 0 when nothing is relevant."""
    ideal_hits = min(k, len(set(relevant)))
    if ideal_hits == 0:
        return 0.0
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, ideal_hits + 1))
    return dcg_at_k(ranking, relevant, k) / ideal


def mean(values: Iterable[float]) -> float:
    """Arithmetic mean (0 for no values), e.g. MRR = mean of reciprocal ranks."""
    total, count = 0.0, 0
    for value in values:
        total += value
        count += 1
    return total / count if count else 0.0


def mean_reciprocal_rank(rankings: Iterable[tuple[Sequence[str], Collection[str]]], k: int | None = None) -> float:
    """MRR over (ranking, relevant) pairs."""
    return mean(reciprocal_rank(ranking, relevant, k) for ranking, relevant in rankings)


def score_ranking(ranking: Sequence[str], relevant: Collection[str]) -> dict[str, float]:
    """The standard metric set of one query: recall@1/5/10, reciprocal rank and nDCG@10."""
    return {
        "recall@1": recall_at_k(ranking, relevant, 1),
        "recall@5": recall_at_k(ranking, relevant, 5),
        "recall@10": recall_at_k(ranking, relevant, 10),
        "mrr": reciprocal_rank(ranking, relevant),
        "ndcg@10": ndcg_at_k(ranking, relevant, 10),
    }
