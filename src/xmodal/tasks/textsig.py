"""Text signatures for near-duplicate detection: MinHash (Broder, "On the resemblance and containment of
documents", 1997) of character 5-gram shingles of the normalised text, through ``datasketch``; candidate
pairs come from its banded locality-sensitive hash (MinHashLSH) and are kept by their estimated Jaccard
similarity. Character shingles keep short texts (headlines, titles) comparable, where word shingles of a
six-word headline would be too few.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import MissingDependency
from ..store.analysis import tokens

SHINGLE = 5
PERMUTATIONS = 128
SEED = 1


def _datasketch() -> Any:
    try:
        import datasketch
    except ImportError as exc:
        raise MissingDependency("datasketch", "tasks") from exc
    return datasketch


def shingles(text: str) -> set[bytes]:
    """The character 5-grams of the text's lower-cased word tokens joined by single spaces."""
    normal = " ".join(tokens(text))
    if len(normal) <= SHINGLE:
        return {normal.encode()} if normal else set()
    return {normal[i : i + SHINGLE].encode() for i in range(len(normal) - SHINGLE + 1)}


def minhashes(texts: Sequence[str]) -> list[Any]:
    """One MinHash per text (seeded: the same text always gets the same signature)."""
    ds = _datasketch()
    sets = [sorted(shingles(text)) for text in texts]
    return list(ds.MinHash.bulk(sets, num_perm=PERMUTATIONS, seed=SEED))


def candidate_pairs(signatures: Sequence[Any], threshold: float) -> set[tuple[int, int]]:
    """Pairs (i < j) that the banded LSH puts together at Jaccard ``threshold`` (some below it: check them)."""
    ds = _datasketch()
    lsh = ds.MinHashLSH(threshold=max(0.05, min(0.95, threshold)), num_perm=PERMUTATIONS)
    pairs: set[tuple[int, int]] = set()
    for i, sig in enumerate(signatures):
        for j in lsh.query(sig):
            pairs.add((int(j), i))
        lsh.insert(i, sig)
    return pairs


def jaccard(a: Any, b: Any) -> float:
    """The estimated Jaccard similarity of two MinHashes."""
    return float(a.jaccard(b))
