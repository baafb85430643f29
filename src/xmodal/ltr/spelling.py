"""Typo tolerance for the lexical run: a query word that no item holds is read as the catalog's commonest word
one edit away.

This is Peter Norvig's corrector ("How to Write a Spelling Corrector", 2007) with the catalog as its word
model: every string one edit from the word (a letter deleted, swapped with the next, changed or inserted) is
stemmed with the index's analyzer, and the candidate whose term the most items hold wins (ties: the first
in sorted order). Candidates that are English words come first: only when none of them is in the catalog are
the others (a package name, a made-up word) considered, so "haded" is read as "headed", not as the non-word
"haved" whose stem is the commonest term. The candidates are looked up in the
index's own document frequencies (:meth:`~xmodal.store.textindex.TextIndex.frequencies`), so there is no
second vocabulary to keep in step with writes, and it works the same on every store. Written here rather
than taken from ``pyspellchecker`` (whose word list :func:`~xmodal.ltr.text.is_english_word` reads): its
candidates come with its own English dictionary, not the catalog's terms.

A word is read as another only when it could be a typo, the rule query understanding's attribute matching
keeps (:mod:`xmodal.ltr.strategies.structured`): at least :data:`MIN_LENGTH` letters, no digit, in no item,
and not a correctly spelled English word, so "boots" is never read as "books" in a catalog without boots.
Nor is a word longer than :data:`MAX_LENGTH` letters: a string that long is not a mistyped word (an identifier,
pasted text), and its one-edit neighbours cost the square of its length (54 strings of its length per letter,
each stemmed: a query word of 4,096 letters took 15 s and 1 GB). And at most :data:`MAX_READ` words of a
query are read so, its first: typo tolerance is for words a person typed, and a pasted page of 455 unknown
words took 0.8 s.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from cachetools import LRUCache, cached

from ..store.analysis import stem_word, stem_words, tokens
from .text import english_words_loaded, is_english_word

__all__ = ["MAX_LENGTH", "MAX_READ", "MIN_LENGTH", "Reading", "edits1", "read_query"]

#: the shortest word read as a typo (shorter ones have too many real words one edit away)
MIN_LENGTH = 5
#: the longest word read as a typo (English dictionary words reach about 30 letters)
MAX_LENGTH = 32
#: the most words of one query read as typos (the first ones)
MAX_READ = 16
LETTERS = "abcdefghijklmnopqrstuvwxyz"
#: one-edit candidates kept, of the words read last, in all (a word of n letters has ~54n, ~240 bytes each with
#: its stem: ~23 MB at most, measured; a cap of 256 words let 256 pasted 32-letter words hold ~95 MB)
CANDIDATES_KEPT = 100_000

#: the document frequency of each term that occurs in the index (absent: in no item)
Frequencies = Callable[[Sequence[str]], Mapping[str, int]]


def edits1(word: str) -> set[str]:
    """Every string one edit from ``word``: a letter deleted, two neighbours swapped, a letter changed or
    inserted (lower-case ASCII letters)."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = [a + b[1:] for a, b in splits if b]
    swaps = [a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1]
    changes = [a + c + b[1:] for a, b in splits if b for c in LETTERS if c != b[0]]
    inserts = [a + c + b for a, b in splits for c in LETTERS]
    return set(deletes + swaps + changes + inserts) - {word}


@dataclass(frozen=True, slots=True)
class Reading:
    """A query's index terms with its typos read as catalog words, and which words were read so."""

    terms: list[str]
    #: each query word read as another → the word read instead
    fixes: dict[str, str] = field(default_factory=dict)


def read_query(text: str, frequencies: Frequencies) -> Reading:
    """The index terms of ``text`` (the analyzer's, :func:`~xmodal.store.analysis.terms`), each word in no item
    that could be a typo replaced by the term of its commonest one-edit neighbour in the catalog."""
    words = tokens(text)
    terms = [stem_word(w) for w in words]
    df = frequencies(terms)
    unknown = [i for i, (w, t) in enumerate(zip(words, terms, strict=True)) if not df.get(t) and _could_be_typo(w)]
    unknown = unknown[:MAX_READ]
    if not unknown:
        return Reading(terms)
    candidates = {i: dict(_candidates(words[i])) for i in unknown}
    found = frequencies(sorted({t for stems in candidates.values() for t in stems.values()}))
    fixes: dict[str, str] = {}
    for i in unknown:
        known = {c: t for c, t in candidates[i].items() if found.get(t)}
        if not known or is_english_word(words[i]):  # the word list is read only when a correction is at hand
            continue
        pool = {c: t for c, t in known.items() if is_english_word(c)} or known  # real words first
        _, term, word = min((-found[t], t, c) for c, t in pool.items())  # the commonest term
        terms[i] = term
        fixes[words[i]] = word
    return Reading(terms, fixes)


@cached(LRUCache(maxsize=CANDIDATES_KEPT, getsizeof=len), lock=threading.Lock())
def _candidates(word: str) -> tuple[tuple[str, str], ...]:
    """Every string one edit from ``word`` with its index term, in sorted order: the costly part of a reading (~1 ms,
    the analyzer's stems of some 300 strings), and the same whatever the catalog holds, so a query read again
    after a write (its reading is kept for one catalog state) only looks the terms up again."""
    edits = sorted(edits1(word))
    return tuple(zip(edits, stem_words(edits), strict=True))


def _could_be_typo(word: str) -> bool:
    """Long enough, letters only, and not an English word as far as is known without reading the word list (a
    process reads it once a correction is at hand: a one-shot search whose words are all known never does)."""
    known = english_words_loaded() and is_english_word(word)
    return MIN_LENGTH <= len(word) <= MAX_LENGTH and word.isascii() and word.isalpha() and not known
