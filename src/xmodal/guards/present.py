"""Which texts of a batch hold which words — the words the rules' patterns need (:func:`.rules.needed`) and those
the cues ask for (:data:`.features._CUE_NEEDS`) — found for a whole batch at once, instead of one substring search
per text and word: what a text holds is read off its runs of characters between white space, each run's words
found once.

A word without white space is in a text exactly when it is in one of the text's runs (``text.split()``: an
occurrence cannot straddle white space), so the words of each distinct run are found once (one substring search
per word over the new runs joined) and a text's are the union of its runs'. A word with white space (``from now
on``) is looked for in the texts whose runs hold each of its parts (``from``, ``now``, ``on``). The answer is
exactly ``word in text`` for every text and word: the shortcut decides nothing by itself.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Any

import numpy as np

_JOIN = "\n"
#: Runs whose words are kept (a few MB); past it the kept ones are dropped and found again.
RUNS = 200_000
#: Texts whose words are kept (the rules and the cues ask about the same batch in turn).
TEXTS = 2048


class Rows:
    """A table of ints grown a batch of rows at a time (its room doubled when full)."""

    def __init__(self, width: int, dtype: type[np.integer[Any]] = np.int64) -> None:
        self._room = np.zeros((1024, width), dtype=dtype)
        self.size = 0

    @property
    def rows(self) -> np.ndarray:
        return self._room[: self.size]

    def extend(self, rows: np.ndarray) -> None:
        end = self.size + len(rows)
        if end > len(self._room):
            room = np.zeros((max(end, 2 * len(self._room)), *self._room.shape[1:]), dtype=self._room.dtype)
            room[: self.size] = self._room[: self.size]
            self._room = room
        self._room[self.size : end] = rows
        self.size = end


class Words:
    """A set of words (lower case), added to at import by the modules that need them, and which of them each text
    of a batch holds (:meth:`held`)."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.column: dict[str, int] = {}  # word -> its column in held()'s answer
        self._lock = threading.Lock()
        self.add(())

    def add(self, words: Iterable[str]) -> None:
        """Words to find from now on (their columns follow those of the words added before)."""
        with self._lock:
            self._add(words)

    def _add(self, words: Iterable[str]) -> None:
        for word in words:
            if word not in self.column:
                self.column[word] = len(self.words)
                self.words.append(word)
        # a run's bits: the words without white space, then the parts of the others that are not words themselves
        in_runs = {w: self.column[w] for w in self.words if w.split() == [w]}
        self._other: list[tuple[int, str, np.ndarray]] = []  # (column, word, the bits of its pieces)
        self._width = len(self.words)  # bits in all
        for word in self.words:
            if word not in in_runs:
                pieces = []
                for piece in word.split():
                    if piece not in in_runs:
                        in_runs[piece], self._width = self._width, self._width + 1
                    pieces.append(in_runs[piece])
                self._other.append((self.column[word], word, np.asarray(pieces, dtype=np.int64)))
        self._in_runs = list(in_runs.items())
        self._size = (self._width + 7) // 8
        self._ids: dict[str, int] = {"": 0}  # run -> its row in _runs ("": no run, holds no word)
        self._runs = self._no_runs()  # by run: its bits, packed
        self._texts: dict[str, bytes] = {}  # text -> its bits, packed

    def held(self, texts: Sequence[str]) -> np.ndarray:
        """``[len(texts), len(words)]`` booleans: ``words[j] in texts[i]`` (``texts`` already in lower case).
        Thread-safe (one batch at a time: the kept runs and texts are shared by every index of the process)."""
        with self._lock:
            return self._held(texts)

    def _held(self, texts: Sequence[str]) -> np.ndarray:
        known = self._texts
        todo = list(dict.fromkeys(t for t in texts if t not in known))
        if todo:
            if len(known) + len(todo) > TEXTS:
                known.clear()
                todo = list(dict.fromkeys(texts))
            found = np.packbits(self._find(todo), axis=1, bitorder="little")
            known.update(zip(todo, map(bytes, found), strict=True))
        packed = np.frombuffer(b"".join(map(known.__getitem__, texts)), dtype=np.uint8).reshape(len(texts), -1)
        return np.unpackbits(packed, axis=1, count=len(self.words), bitorder="little").astype(bool)

    def _find(self, texts: list[str]) -> np.ndarray:
        """``[len(texts), bits]`` booleans: the words (and pieces) each text holds."""
        runs_of = [runs or [""] for runs in map(str.split, texts)]
        runs = list(chain.from_iterable(runs_of))
        ids = self._ids
        new = [run for run in dict.fromkeys(runs) if run not in ids]
        if new:
            if len(ids) + len(new) > RUNS:
                ids = self._ids = {"": 0}
                self._runs = self._no_runs()
                new = [run for run in dict.fromkeys(runs) if run not in ids]
            ids.update(zip(new, range(len(ids), len(ids) + len(new)), strict=True))
            self._runs.extend(np.packbits(self._run_bits(new), axis=1, bitorder="little"))
        rows = self._runs.rows[np.fromiter(map(ids.__getitem__, runs), dtype=np.int64, count=len(runs))]
        starts = np.cumsum([0, *map(len, runs_of[:-1])])
        packed = np.bitwise_or.reduceat(rows, starts, axis=0)
        held = np.unpackbits(packed, axis=1, count=self._width, bitorder="little").astype(bool)
        for column, word, pieces in self._other:  # in the texts that hold each of its parts
            candidates = np.flatnonzero(held[:, pieces].all(axis=1)) if len(pieces) else range(len(texts))
            for k in candidates:
                if word in texts[k]:
                    held[k, column] = True
        return held

    def _no_runs(self) -> Rows:
        runs = Rows(self._size, np.uint8)
        runs.extend(np.zeros((1, self._size), dtype=np.uint8))  # the row of "": no word
        return runs

    def _run_bits(self, runs: list[str]) -> np.ndarray:
        """``[len(runs), bits]`` booleans: the words without white space (and parts) each of ``runs`` holds. The
        runs are searched joined by line breaks (none of the words holds one), longest first, so that a word is
        searched in the runs at least as long as itself only."""
        order = sorted(range(len(runs)), key=lambda i: -len(runs[i]))
        ordered = [runs[i] for i in order]
        joined = _JOIN.join(ordered)
        starts = np.cumsum([0, *(len(r) + 1 for r in ordered[:-1])]).tolist()
        shorter = [-len(r) for r in ordered]  # (ascending: bisect finds where the runs shorter than a word begin)
        rows: list[int] = []
        bits: list[int] = []
        for word, bit in self._in_runs:
            count = bisect.bisect_right(shorter, -len(word))  # the runs at least as long as the word
            if count:
                found = _holding(joined, starts, word, starts[count - 1] + len(ordered[count - 1]))
                rows += found
                bits += [bit] * len(found)
        out = np.zeros((len(runs), self._width), dtype=bool)
        out[np.asarray(order, dtype=np.int64)[np.asarray(rows, dtype=np.int64)], np.asarray(bits, dtype=np.int64)] = (
            True
        )
        return out


def _holding(joined: str, starts: list[int], word: str, end: int) -> list[int]:
    """The parts of ``joined[:end]`` (a line break apart, starting at ``starts``) that hold ``word`` (without a
    break)."""
    found = []
    find = joined.find
    at = find(word, 0, end)
    last = len(starts) - 1
    while at >= 0:
        k = bisect.bisect_right(starts, at) - 1
        found.append(k)
        at = find(word, starts[k + 1], end) if k < last else -1
    return found


#: The words the rules and the cues need (:mod:`.rules`, :mod:`.features`): one pass over a batch for both.
NEEDED = Words()
