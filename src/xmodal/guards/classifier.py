"""The injection/jailbreak classifier shipped with xmodal: a linear model over TF-IDF features
(:mod:`.features`) with a Platt-calibrated probability, stored as plain JSON (vocabulary, IDF weights,
coefficients, calibration, threshold) — no pickle. It runs with NumPy alone.

A model file that is missing, corrupt or from another format version raises :class:`ModelError`; the guard
then reports the classifier as "not checked" and the rules still run.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from itertools import chain, compress, repeat
from pathlib import Path
from typing import Any

import numpy as np

from .. import loaded
from .features import (
    CHAR_N,
    CUE_NAMES,
    WORD,
    char_grams,
    clip,
    counted_pairs,
    cross_grams,
    cue_matrix,
    cues,
    prepare,
    word_grams,
)
from .present import Rows

FORMAT = "xmodal-guard-classifier/1"
MODEL_FILE = "injection_model.json.gz"
SMALL = 16  # batches smaller than this are counted text by text (Classifier.probabilities)
WORD_CACHE = 200_000  # words (and word pairs' joints) whose feature columns are kept (a few tens of MB at most)
CROSS = CHAR_N[1] - 2  # the characters of each word that an x: n-gram can hold (features.cross_grams)
_ONE_WORD = re.compile(r"[\w']+")  # a word that is one feature word (features.WORD)


class ModelError(Exception):
    """The classifier file cannot be used (missing, corrupt, or another format version)."""


@dataclass(frozen=True)
class Classifier:
    """Vocabulary → column, IDF and coefficient per column, intercept, Platt ``a``/``b`` and the threshold."""

    vocabulary: dict[str, int]
    idf: np.ndarray
    coef: np.ndarray
    intercept: float
    platt: tuple[float, float]
    threshold: float
    meta: dict[str, Any]
    cue_coef: tuple[float, ...] = ()  # the weight of each of :data:`.features.CUES` (none: a model without them)

    def __post_init__(self) -> None:
        # plain lists: a query has tens of features, where NumPy's per-call overhead would dominate
        object.__setattr__(self, "_idf", self.idf.tolist())
        object.__setattr__(self, "_coef", self.coef.tolist())
        object.__setattr__(self, "_words", {})  # word -> the columns of its character n-grams (a cache)
        object.__setattr__(self, "_pairs", {})  # "abc de" -> the columns of its x: n-grams (a cache)
        object.__setattr__(self, "_cross", bool(self.meta.get("cross_grams")))  # the x: features (features.py)
        object.__setattr__(self, "_lock", threading.Lock())  # around the word table (_batch_features)

    def _char_columns(self, word: str) -> tuple[int, ...]:
        cache: dict[str, tuple[int, ...]] = self.__dict__["_words"]
        found = cache.get(word)
        if found is None:
            find = self.vocabulary.get
            found = tuple(col for f in char_grams(word) if (col := find(f)) is not None)
            if len(cache) < WORD_CACHE:
                cache[word] = found
        return found

    def _cross_columns(self, joined: str) -> tuple[int, ...]:
        """The columns of the ``x:`` features of two words in a row, given as the first's last and the second's
        first few characters with a space between (all that :func:`~.features.cross_grams` reads of them)."""
        cache: dict[str, tuple[int, ...]] = self.__dict__["_pairs"]
        found = cache.get(joined)
        if found is None:
            find = self.vocabulary.get
            left, _, right = joined.partition(" ")
            found = tuple(col for f in cross_grams(left, right) if (col := find(f)) is not None)
            if len(cache) < WORD_CACHE:
                cache[joined] = found
        return found

    def _columns(self, prepared: str) -> list[int]:
        """The columns of the features of a prepared text that the model knows (one per occurrence)."""
        find = self.vocabulary.get
        held = self.__dict__["_words"].get  # a word's columns when cached (most words), else computed
        columns = self._char_columns
        cols: list[int] = []
        words = [w for w in prepared.split(" ") if w]
        for word in words:
            found = held(word)
            cols.extend(columns(word) if found is None else found)
        if self.__dict__["_cross"]:
            pair = self.__dict__["_pairs"].get
            crossed = self._cross_columns
            for a, b in zip(words, words[1:], strict=False):
                joined = f"{a[-CROSS:]} {b[:CROSS]}"
                found = pair(joined)
                cols.extend(crossed(joined) if found is None else found)
        cols.extend(c for feature in word_grams(prepared) if (c := find(feature)) is not None)
        return cols

    def probability(self, text: str) -> float:
        """The calibrated probability that ``text`` is an injection or jailbreak attempt."""
        counts: dict[int, int] = {}
        for col in self._columns(prepare(text)):  # the features of analyze(), each word's n-grams cached
            counts[col] = counts.get(col, 0) + 1
        idf: list[float] = self.__dict__["_idf"]
        coef: list[float] = self.__dict__["_coef"]
        dot = norm2 = 0.0
        for col, tf in counts.items():
            weight = (1.0 + math.log(tf)) * idf[col]  # sublinear tf and L2 norm, as trained
            dot += weight * coef[col]
            norm2 += weight * weight
        z = self.intercept + (dot / math.sqrt(norm2) if norm2 else 0.0)
        if self.cue_coef:
            z += sum(w for w, on in zip(self.cue_coef, cues(text), strict=True) if on)
        a, b = self.platt
        return 1.0 / (1.0 + math.exp(-(a * z + b)))

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """:meth:`probability` of each text (to rounding), the features of a batch found, weighed and summed in a
        few NumPy passes (:meth:`_batch_features`)."""
        n = len(texts)
        # (text, column) pairs and their counts; prepare()'s white space made one blank changes none of its words
        if n < SMALL:  # a few texts: each one's features as probability() finds them (NumPy's calls cost more)
            cols = [np.asarray(self._columns(prepare(t)), dtype=np.int64) for t in texts]
            sizes = np.fromiter(map(len, cols), dtype=np.int64, count=n)
            doc, col, tf = counted_pairs(
                np.repeat(np.arange(n, dtype=np.int64), sizes),
                np.concatenate([np.zeros(0, np.int64), *cols]),
                len(self.idf),
            )
        else:
            doc, col, tf = self._batch_features([clip(t).lower() for t in texts])
        weight = (1.0 + np.log(tf)) * self.idf[col]  # sublinear tf and L2 norm, as trained
        dot = np.bincount(doc, weight * self.coef[col], minlength=n)
        norm = np.sqrt(np.bincount(doc, weight * weight, minlength=n))
        z = self.intercept + np.divide(dot, norm, out=np.zeros(n), where=norm > 0)
        if self.cue_coef and n:
            z = z + cue_matrix(list(texts)) @ np.asarray(self.cue_coef)
        a, b = self.platt
        return np.asarray(1.0 / (1.0 + np.exp(-(a * z + b))), dtype=np.float64)

    def _batch_features(self, prepared: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The text, the column and the count of each distinct (text, known feature) pair of a batch of prepared
        texts (:func:`~.features.prepare`, or clipped and in lower case: only their words are read): the features of
        :meth:`_columns`, counted alike (:class:`_WordTable` says how)."""
        with self.__dict__["_lock"]:  # (one batch at a time: the model and its table are shared by every index)
            table: _WordTable | None = self.__dict__.get("_table")
            if table is None:
                table = _WordTable(self.vocabulary, cross=self.__dict__["_cross"])
                object.__setattr__(self, "_table", table)
            return table.features(prepared, len(self.idf))

    def to_json(self) -> dict[str, Any]:
        terms = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        return {
            "format": FORMAT,
            "terms": terms,
            "idf": [round(float(v), 5) for v in self.idf],
            "coef": [round(float(v), 5) for v in self.coef],
            "intercept": self.intercept,
            "platt": list(self.platt),
            "threshold": self.threshold,
            "meta": self.meta,
            **({"cues": list(CUE_NAMES), "cue_coef": [round(v, 5) for v in self.cue_coef]} if self.cue_coef else {}),
        }

    def save(self, path: Path) -> None:
        data = json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":")).encode()
        path.write_bytes(gzip.compress(data, mtime=0))

    @classmethod
    def from_json(cls, data: Any, source: str) -> Classifier:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ModelError(f"{source}: not a {FORMAT} model (format {found!r}); retrain with xmodal.guards.train")
        try:
            terms = [str(t) for t in data["terms"]]
            idf = np.asarray(data["idf"], dtype=np.float64)
            coef = np.asarray(data["coef"], dtype=np.float64)
            a, b = (float(v) for v in data["platt"])
            cue_coef = tuple(float(v) for v in data.get("cue_coef", ()))
            if cue_coef and tuple(data.get("cues", ())) != CUE_NAMES:
                raise ModelError(f"{source}: its cues {data.get('cues')} are not this version's; retrain")
            model = cls(
                {t: i for i, t in enumerate(terms)},
                idf,
                coef,
                float(data["intercept"]),
                (a, b),
                float(data["threshold"]),
                dict(data.get("meta", {})),
                cue_coef,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{source}: corrupt model ({type(exc).__name__}: {exc})") from None
        bad_cues = not all(math.isfinite(v) for v in cue_coef)
        if not (len(terms) == idf.shape[0] == coef.shape[0]) or not np.all(np.isfinite(coef)) or bad_cues:
            raise ModelError(f"{source}: corrupt model (terms, idf and coef differ in length or hold non-numbers)")
        return model


#: The (left, right) lengths of the ``x:`` n-grams of two words in a row: characters of the first word's end and of
#: the second's start, 3 to 5 characters with the blank between them (:func:`~.features.cross_grams`).
_CROSS_PARTS = tuple(
    (k, j) for k in range(1, CROSS + 1) for j in range(1, CROSS + 1) if CHAR_N[0] <= k + j + 1 <= CHAR_N[1]
)


class _WordTable:
    """The features of a batch of prepared texts (:func:`~.features.prepare`) through the words they are made of
    (runs between blanks), each word's part found once (for all the new words of a batch at once) and kept by word:

    - its ``c:`` n-grams, and the ``w:`` unigrams and bigrams of the feature words (words and punctuation marks:
      :data:`~.features.WORD`) inside it: the feature words of a text are those of its words in a row, as no
      feature word holds a blank and a blank ends one;
    - what its features shared with a neighbour read of it: its last and first 1–3 characters (an ``x:`` n-gram
      of two words is the first's last ``k`` characters, a blank and the second's first ``j``:
      :func:`~.features.cross_grams`), and the ids of its first and last feature word.

    Characters are numbered (those of the model's n-grams; any other, one number that no n-gram holds) and an
    n-gram is its characters' numbers as one integer, looked up among the model's (sorted) by NumPy: the
    ``c:`` n-grams of all the new words of a batch at once, and the ``x:`` n-grams and ``w:`` bigrams of every
    two words in a row of the batch. The same features as :meth:`Classifier._columns`, one per occurrence: only
    the known ones are counted, and their order does not matter (:func:`~.features.counted_pairs` sorts them)."""

    def __init__(self, vocabulary: dict[str, int], *, cross: bool) -> None:
        self.cross = cross
        char: dict[str, int] = {}
        crossed: dict[str, int] = {}
        self.tokens: dict[str, int] = {}  # a word of a w: feature -> its id
        self.unigram: dict[int, int] = {}
        self.bigram: dict[tuple[int, int], int] = {}
        low, high = CHAR_N
        for feature, column in vocabulary.items():
            kind, body = feature[:2], feature[2:]
            parts = body.split(" ")
            if kind == "w:" and len(parts) <= 2:  # (a w: feature with two blanks is never made)
                ids = [self.tokens.setdefault(p, len(self.tokens)) for p in parts]
                if len(ids) == 1:
                    self.unigram[ids[0]] = column
                else:
                    self.bigram[ids[0], ids[1]] = column
            elif kind == "c:" and low <= len(body) <= high:
                char[body] = column
            elif kind == "x:" and len(parts) == 2 and (len(parts[0]), len(parts[1])) in _CROSS_PARTS:
                crossed[body] = column
        alphabet = sorted({ch for gram in [*char, *crossed, " "] for ch in gram})
        self.alphabet = np.asarray([ord(ch) for ch in alphabet], dtype=np.uint32)
        self.base = len(alphabet) + 1  # (the last number: a character of no n-gram)
        self.blank = alphabet.index(" ")
        number = {ch: i for i, ch in enumerate(alphabet)}

        def key(gram: str) -> int:
            out = 0
            for ch in gram:
                out = out * self.base + number[ch]
            return out

        self.char = {
            n: _Lookup({key(g): c for g, c in char.items() if len(g) == n}, self.base**n, self.base**3)
            for n in range(low, high + 1)
        }
        self.crossed = {
            n: _Lookup({key(g): c for g, c in crossed.items() if len(g) == n}, self.base**n, self.base**3)
            for n in range(low, high + 1)
        }
        size = len(self.tokens)
        self.bigrams = _Lookup({a * size + b: c for (a, b), c in self.bigram.items()}, size * size)
        self.unigram_of = _Lookup(self.unigram, max(size, 1))
        self._clear()

    def _clear(self) -> None:
        self.ids: dict[str, int] = {}
        self.own = _Ragged()  # by word id: the columns of its own features
        self.ends = Rows(2 * CROSS)  # by word id: its last 1..3 and first 1..3 characters as numbers (-1: none)
        self.edge_tokens = Rows(2)  # by word id: its first and last feature word's ids

    def features(self, prepared: list[str], width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(prepared)
        words_of = [p.split() for p in prepared]  # = p.split(" ") less the empty ones (white space is one blank)
        words = list(chain.from_iterable(words_of))
        per_text = np.fromiter(map(len, words_of), dtype=np.int64, count=n)
        word_doc = np.repeat(np.arange(n, dtype=np.int64), per_text)
        ids = self._ids(words)
        cols, lengths = self.own.take(ids)
        docs, found = [np.repeat(word_doc, lengths)], [cols]
        if len(words) > 1:
            ends = np.cumsum(per_text)
            inner = np.ones(len(words) - 1, dtype=bool)  # two words in a row of the same text
            inner[ends[(per_text > 0) & (ends < len(words))] - 1] = False
            first, second, pair_doc = ids[:-1][inner], ids[1:][inner], word_doc[:-1][inner]
            if self.cross:
                for k, j in _CROSS_PARTS:
                    left, right = self.ends.rows[first, k - 1], self.ends.rows[second, CROSS + j - 1]
                    both = (left >= 0) & (right >= 0)
                    gram = (left[both] * self.base + self.blank) * self.base**j + right[both]
                    self.crossed[k + j + 1].find(gram, pair_doc[both], docs, found)
            last_token, first_token = self.edge_tokens.rows[first, 1], self.edge_tokens.rows[second, 0]
            both = (last_token >= 0) & (first_token >= 0)
            self.bigrams.find(last_token[both] * len(self.tokens) + first_token[both], pair_doc[both], docs, found)
        return counted_pairs(np.concatenate(docs), np.concatenate(found), width)

    def _ids(self, words: list[str]) -> np.ndarray:
        """The id of each word, its part found for those not seen yet."""
        ids = np.fromiter(map(self.ids.get, words, repeat(-1)), dtype=np.int64, count=len(words))
        missing = np.flatnonzero(ids < 0)
        if len(missing):
            if len(self.ids) + len(missing) > WORD_CACHE:
                self._clear()
                missing = np.arange(len(words))
            unseen = [words[i] for i in missing.tolist()]
            self._add(list(dict.fromkeys(unseen)))
            ids[missing] = np.fromiter(map(self.ids.__getitem__, unseen), dtype=np.int64, count=len(unseen))
        return ids

    def _add(self, words: list[str]) -> None:
        """Find and keep the part of each of ``words`` (new, none blank)."""
        count = len(words)
        # every character numbered, the words padded with a blank each side, one after the other
        padded = np.frombuffer((" " + "  ".join(words) + " ").encode("utf-32-le"), dtype=np.uint32)
        at = np.minimum(np.searchsorted(self.alphabet, padded), len(self.alphabet) - 1)
        number = np.where(self.alphabet[at] == padded, at, self.base - 1).astype(np.int64)
        sizes = np.fromiter(map(len, words), dtype=np.int64, count=count) + 2
        ends = np.cumsum(sizes)
        word_of = np.repeat(np.arange(count, dtype=np.int64), sizes)
        owner: list[np.ndarray] = []
        own: list[np.ndarray] = []
        for n, known in self.char.items():  # the c: n-grams that end inside their word's padding
            size = len(number) - n + 1
            if size <= 0:
                continue
            gram = number[:size].copy()
            for i in range(1, n):
                gram = gram * self.base + number[i : i + size]
            inside = np.arange(n, size + n, dtype=np.int64) <= ends[word_of[:size]]
            known.find(gram[inside], word_of[:size][inside], owner, own)
        # the w: unigrams and bigrams inside each word, and its first and last feature word: a word of one feature
        # word (most) is that word; the others are cut (features.WORD) one by one
        edges = np.empty((count, 2), dtype=np.int64)
        single = list(map(_ONE_WORD.fullmatch, words))
        alone = np.fromiter((m is not None for m in single), dtype=bool, count=count)
        where = np.flatnonzero(alone)
        token = np.fromiter(map(self.tokens.get, compress(words, single), repeat(-1)), np.int64, count=len(where))
        edges[where] = token[:, None]
        has_id = token >= 0
        self.unigram_of.find(token[has_id], where[has_id], owner, own)
        token_id, unigram, bigram = self.tokens.get, self.unigram.get, self.bigram.get
        inner_words: list[int] = []
        inner_cols: list[int] = []
        for i in np.flatnonzero(~alone).tolist():
            tokens = [token_id(t, -1) for t in WORD.findall(words[i])]
            edges[i] = tokens[0], tokens[-1]  # (a word holds at least one feature word: it is not blank)
            cols = [c for t in tokens if (c := unigram(t)) is not None]
            cols += [c for a, b in zip(tokens, tokens[1:], strict=False) if a >= 0 and b >= 0
                     and (c := bigram((a, b))) is not None]  # fmt: skip
            inner_words += [i] * len(cols)
            inner_cols += cols
        owner.append(np.asarray(inner_words, dtype=np.int64))
        own.append(np.asarray(inner_cols, dtype=np.int64))
        # the ends an x: n-gram reads: the last and the first 1..3 characters, as one number each (-1: too short)
        first = ends - sizes + 1  # each word's first character
        last = ends - 2
        cut = np.full((count, 2 * CROSS), -1, dtype=np.int64)
        for k in range(1, CROSS + 1):
            long = sizes - 2 >= k
            left = np.zeros(count, dtype=np.int64)
            right = np.zeros(count, dtype=np.int64)
            for i in range(k):
                left = left * self.base + number[np.minimum(last - k + 1 + i, len(number) - 1)]
                right = right * self.base + number[np.minimum(first + i, len(number) - 1)]
            cut[long, k - 1] = left[long]
            cut[long, CROSS + k - 1] = right[long]
        self.ids.update(zip(words, range(len(self.ids), len(self.ids) + count), strict=True))
        word = np.concatenate(owner)
        order = np.argsort(word, kind="stable")
        self.own.extend(np.concatenate(own)[order], np.bincount(word, minlength=count))
        self.ends.extend(cut)
        self.edge_tokens.extend(edges)


class _Lookup:
    """Integer keys (below ``space``) and their columns, looked up many at a time: in a table by key when the keys
    are few enough (``space`` up to :data:`DENSE`), else in their sorted list, past two tables that say whether a
    key's high part (``key // part``) and its low part (``key % part``) are those of a key at all (most keys looked
    up are not: an n-gram's first and last three characters, for ``part`` the number of three-character ones)."""

    DENSE = 1 << 19

    def __init__(self, columns: dict[int, int], space: int, part: int = 1 << 16) -> None:
        keys = np.fromiter(columns.keys(), dtype=np.int64, count=len(columns))
        cols = np.fromiter(columns.values(), dtype=np.int64, count=len(columns))
        self.dense = space <= self.DENSE
        if self.dense:
            self.table = np.full(space, -1, dtype=np.int32)
            self.table[keys] = cols
            return
        self.part = part
        self.high = np.zeros(-(-space // part), dtype=bool)
        self.high[keys // part] = True
        self.low = np.zeros(part, dtype=bool)
        self.low[keys % part] = True
        order = np.argsort(keys)
        self.keys, self.columns = keys[order], cols[order]

    def find(self, key: np.ndarray, owner: np.ndarray, owners: list[np.ndarray], found: list[np.ndarray]) -> None:
        """Append to ``owners`` and ``found`` the owner and the column of each ``key`` (``0 <= key < space``) that is
        known."""
        if self.dense:
            cols = self.table[key]
            hit = cols >= 0
            owners.append(owner[hit])
            found.append(cols[hit].astype(np.int64))
            return
        if not len(self.keys):
            return
        maybe = self.high[key // self.part] & self.low[key % self.part]
        key, owner = key[maybe], owner[maybe]
        at = np.minimum(np.searchsorted(self.keys, key), len(self.keys) - 1)
        hit = self.keys[at] == key
        owners.append(owner[hit])
        found.append(self.columns[at[hit]])


class _Ragged:
    """Lists of ints by id, added a batch at a time, taken for many ids at once."""

    def __init__(self) -> None:
        self.flat = Rows(1)
        self.spans = Rows(2)  # by id: the start of its list in flat, its length

    def extend(self, flat: np.ndarray, lengths: np.ndarray) -> None:
        """Add lists, given one after the other (``flat``) with the length of each."""
        starts = self.flat.size + np.cumsum(lengths) - lengths
        self.spans.extend(np.stack([starts, lengths], axis=1))
        self.flat.extend(flat[:, None])

    def take(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The lists of ``ids`` one after the other, and the length of each."""
        spans = self.spans.rows[ids]
        lengths = spans[:, 1]
        offsets = np.repeat(spans[:, 0] - (np.cumsum(lengths) - lengths), lengths)
        return self.flat.rows[offsets + np.arange(len(offsets), dtype=np.int64), 0], lengths


def load(path: Path | None = None) -> Classifier:
    """The model at ``path`` (default: the one shipped in this package); :class:`ModelError` if unusable."""
    try:
        if path is None:
            raw = resources.files(__package__).joinpath(MODEL_FILE).read_bytes()
            source = f"{__package__}/{MODEL_FILE}"
        else:
            raw, source = Path(path).read_bytes(), str(path)
    except OSError as exc:
        raise ModelError(f"cannot read the guard classifier: {exc}") from None
    try:
        text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        data = json.loads(text)
    except (OSError, EOFError, ValueError) as exc:
        raise ModelError(f"{source}: corrupt model ({exc})") from None
    return Classifier.from_json(data, source)


def shared(path: Path | None = None) -> Classifier:
    """:func:`load`, once per file per process (every index that opens the guards gets the same model)."""
    return loaded.shared("guard-classifier", path, lambda: load(path))
