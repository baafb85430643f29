"""A prefix trie over the semantic IDs of the live items, in compact sorted arrays.

A code sequence ``(m, c_1, …, c_L)`` is packed into one int64 key (``m·K^L + c_1·K^(L-1) + …``);
level ``t`` of the trie is the sorted array of the distinct packed prefixes of length ``t`` with a
live-item count each, so the children of a prefix ``p`` are the keys in ``[p·K, p·K + K)`` of the
next level, found by binary search. Buckets are the sorted ``(key, row)`` pairs of the items.
Adds and deletes are batched sorted inserts/removals (no rebuild), so the trie follows the catalog
as it changes; a prefix whose last item is deleted disappears at once, so constrained decoding
(De Cao et al., "Autoregressive Entity Retrieval", ICLR 2021) can never produce an empty ID.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class TrieStats:
    """Items, buckets (distinct full IDs), items sharing an ID with another (collisions), largest bucket."""

    items: int
    buckets: int
    collisions: int
    max_bucket: int
    nbytes: int


class CodeTrie:
    """Live semantic IDs: ``n_modalities`` first codes then ``levels`` codes in ``[0, codebook_size)``."""

    def __init__(self, n_modalities: int, levels: int, codebook_size: int) -> None:
        self.n_modalities, self.levels, self.codebook_size = n_modalities, levels, codebook_size
        self.length = levels + 1
        self._prefix: list[IntArray] = [np.empty(0, np.int64) for _ in range(self.length + 1)]
        self._count: list[IntArray] = [np.empty(0, np.int64) for _ in range(self.length + 1)]
        self._keys = np.empty(0, np.int64)  # full keys of the items, sorted
        self._rows = np.empty(0, np.int64)  # aligned rows
        self._row_key = np.full(0, -1, np.int64)  # row -> full key (-1: absent)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, row: object) -> bool:
        if not isinstance(row, (int, np.integer)) or not 0 <= int(row) < len(self._row_key):
            return False
        return bool(self._row_key[int(row)] >= 0)

    # -- keys ---------------------------------------------------------------------------------
    def pack(self, codes: IntArray) -> IntArray:
        """Packed keys of code prefixes [n, t] (t ≤ length)."""
        codes = np.asarray(codes, dtype=np.int64)
        key = codes[:, 0].copy()
        for col in range(1, codes.shape[1]):
            key = key * self.codebook_size + codes[:, col]
        return key

    def unpack(self, keys: IntArray) -> IntArray:
        """Full code sequences [n, length] of packed full keys."""
        keys = np.asarray(keys, dtype=np.int64).copy()
        out = np.empty((len(keys), self.length), np.int64)
        for col in range(self.length - 1, 0, -1):
            out[:, col] = keys % self.codebook_size
            keys //= self.codebook_size
        out[:, 0] = keys
        return out

    def key_of(self, rows: IntArray) -> IntArray:
        """Full keys of rows (-1 for rows not in the trie)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.full(len(rows), -1, np.int64)
        inside = (rows >= 0) & (rows < len(self._row_key))
        out[inside] = self._row_key[rows[inside]]
        return out

    # -- writes -------------------------------------------------------------------------------
    def add(self, rows: IntArray, codes: IntArray) -> None:
        """Insert (or move) rows with their full code sequences [n, length]."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == 0:
            return
        self.remove(rows)
        keys = self.pack(codes)
        if len(rows) and rows.max() >= len(self._row_key):
            grown = np.full(max(int(rows.max()) + 1, 2 * len(self._row_key)), -1, np.int64)
            grown[: len(self._row_key)] = self._row_key
            self._row_key = grown
        self._row_key[rows] = keys
        for t in range(1, self.length + 1):
            prefixes, counts = np.unique(keys // self.codebook_size ** (self.length - t), return_counts=True)
            self._bump(t, prefixes, counts)
        self._insert_items(keys, rows)

    def _insert_items(self, keys: IntArray, rows: IntArray) -> None:
        """Insert into the (key, row)-sorted item arrays: a merge for big batches, binary search for small ones."""
        order = np.lexsort((rows, keys))
        keys, rows = keys[order], rows[order]
        if len(keys) * 20 > len(self._keys):
            all_keys, all_rows = np.concatenate([self._keys, keys]), np.concatenate([self._rows, rows])
            order = np.lexsort((all_rows, all_keys))
            self._keys, self._rows = all_keys[order], all_rows[order]
            return
        lo = np.searchsorted(self._keys, keys, side="left")
        hi = np.searchsorted(self._keys, keys, side="right")
        pos = lo.copy()
        for i in np.flatnonzero(hi > lo).tolist():  # keep the rows of a shared bucket in row order
            pos[i] += int(np.searchsorted(self._rows[lo[i] : hi[i]], rows[i]))
        self._keys, self._rows = np.insert(self._keys, pos, keys), np.insert(self._rows, pos, rows)

    def remove(self, rows: IntArray) -> int:
        """Delete rows (absent ones are ignored); returns how many were present."""
        keys = self.key_of(rows)
        rows = np.asarray(rows, dtype=np.int64)[keys >= 0]
        keys = keys[keys >= 0]
        if len(rows) == 0:
            return 0
        self._row_key[rows] = -1
        for t in range(1, self.length + 1):
            prefixes, counts = np.unique(keys // self.codebook_size ** (self.length - t), return_counts=True)
            self._bump(t, prefixes, -counts)
        keep = ~np.isin(self._rows, rows)
        self._keys, self._rows = self._keys[keep], self._rows[keep]
        return len(rows)

    def _bump(self, t: int, prefixes: IntArray, delta: IntArray) -> None:
        keys, counts = self._prefix[t], self._count[t]
        pos = np.searchsorted(keys, prefixes)
        found = pos < len(keys)
        found[found] = keys[pos[found]] == prefixes[found]
        counts = counts.copy()
        np.add.at(counts, pos[found], delta[found])
        fresh = ~found
        keys = np.insert(keys, pos[fresh], prefixes[fresh])
        counts = np.insert(counts, pos[fresh], delta[fresh])
        live = counts > 0
        self._prefix[t], self._count[t] = keys[live], counts[live]

    # -- reads --------------------------------------------------------------------------------
    def allowed(self, prefixes: IntArray, t: int) -> BoolArray:
        """Mask [n, width] of the codes that may follow each packed prefix of length ``t`` (t=0: root)."""
        prefixes = np.asarray(prefixes, dtype=np.int64)
        width = self.n_modalities if t == 0 else self.codebook_size
        mask = np.zeros((len(prefixes), width), dtype=bool)
        level = self._prefix[t + 1]
        base = np.zeros_like(prefixes) if t == 0 else prefixes * width
        lo, hi = np.searchsorted(level, base), np.searchsorted(level, base + width)
        lens = hi - lo
        total = int(lens.sum())
        if total == 0:
            return mask
        which = np.repeat(np.arange(len(prefixes)), lens)
        starts = np.repeat(np.cumsum(lens) - lens, lens)
        pos = np.repeat(lo, lens) + np.arange(total) - starts
        mask[which, level[pos] - np.repeat(base, lens)] = True
        return mask

    def members(self, keys: IntArray) -> list[IntArray]:
        """Rows of each full key's bucket (sorted by row)."""
        keys = np.asarray(keys, dtype=np.int64)
        lo = np.searchsorted(self._keys, keys, side="left")
        hi = np.searchsorted(self._keys, keys, side="right")
        return [self._rows[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]

    def prefix_members(self, prefixes: IntArray, t: int) -> list[IntArray]:
        """Rows of every item under each packed prefix of length ``t`` (1 ≤ t ≤ length), in (key, row) order."""
        prefixes = np.asarray(prefixes, dtype=np.int64)
        if not 1 <= t <= self.length:
            raise ValueError(f"prefix length {t} is outside 1..{self.length}")
        span = self.codebook_size ** (self.length - t)
        lo = np.searchsorted(self._keys, prefixes * span, side="left")
        hi = np.searchsorted(self._keys, (prefixes + 1) * span, side="left")
        return [self._rows[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]

    def full_keys(self) -> IntArray:
        """The distinct full keys (buckets) present."""
        return self._prefix[self.length].copy()

    def rows(self) -> IntArray:
        return self._rows.copy()

    def stats(self) -> TrieStats:
        buckets = len(self._prefix[self.length])
        largest = int(self._count[self.length].max()) if buckets else 0
        nbytes = int(sum(a.nbytes for a in self._prefix) + sum(a.nbytes for a in self._count))
        nbytes += int(self._keys.nbytes + self._rows.nbytes + self._row_key.nbytes)
        return TrieStats(len(self._keys), buckets, len(self._keys) - buckets, largest, nbytes)

    def arrays(self) -> dict[str, IntArray]:
        """The items as arrays (rows and full codes) for persistence."""
        return {"rows": self._rows.copy(), "codes": self.unpack(self._keys)}
