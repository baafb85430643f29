"""Text normalisation shared by the strategies, the memory index and the feedback log.

Tokens are lower-cased, accent-folded word characters (the store's analyzer, :mod:`xmodal.store.analysis`).
Two stemmers, on purpose:

- :func:`stems` is the lexical index's analyzer (Snowball English stems): pass its terms to the
  index (``LexicalStrategy.index``), never terms stemmed otherwise.
- :func:`stem` is a light suffix stripper (a small subset of Porter's rules, M. F. Porter, "An
  algorithm for suffix stripping", 1980) so that "boots" and "boot" meet. It is kept unchanged
  because :func:`normalize_query`, the key under which queries are grouped in the memory index, is
  stored in feedback logs.
- :func:`singular` strips only a plural's ending, so that query understanding reads "boots" as the category
  "boot" and "horses" as "horse", but never "build" as "buildings" or "cloth" as "clothing": another word, not
  another form of it.

:func:`is_english_word` says whether a word is spelled right: it is in the English word list (160k words
with their inflections) that ships with ``pyspellchecker`` (MIT; Peter Norvig's corrector), so typo tolerance
never reads a real word as another one ("boots" as "books").
"""

from __future__ import annotations

import functools
import gzip
import importlib.resources
import json
from collections.abc import Sequence

from ..store.analysis import terms, tokens

__all__ = [
    "STOPWORDS",
    "is_english_word",
    "normalize_query",
    "singular",
    "stem",
    "stems",
    "tokens",
    "within_one_edit",
]
_SUFFIXES = (
    "ational",
    "ization",
    "fulness",
    "ousness",
    "iveness",
    "ations",
    "ingly",
    "ation",
    "ness",
    "ment",
    "ings",
    "ing",
    "edly",
    "ies",
    "ied",
    "ers",
    "est",
    "ed",
    "es",
    "er",
    "ly",
    "s",
)
STOPWORDS = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to was were with".split()
)


@functools.lru_cache(maxsize=1 << 16)  # pure; the memory priors stem every item's predicted queries at ingest
def stem(token: str) -> str:
    """Strip one common English suffix, keeping at least three characters of the stem."""
    if token.isdigit():
        return token
    for suffix in _SUFFIXES:
        if token.endswith(suffix) and len(token) - len(suffix) >= 3:
            base = token[: -len(suffix)]
            if suffix == "ies":
                return base + "y"
            return base
    return token


@functools.lru_cache(maxsize=1 << 16)  # pure; query understanding keys every attribute value's words
def singular(token: str) -> str:
    """A plural's singular by its ending alone, after D. Harman's S-stemmer ("How effective is suffixing?",
    JASIS 1991), with the sibilants' "-es": "categories" → "category", "boxes" → "box", "shapes" → "shape",
    "boots" → "boot"; a word of three letters or fewer, and one ending in "-us", "-ss" or "-is", as it is."""
    if len(token) <= 3 or token.isdigit():
        return token
    if token.endswith("ies") and not token.endswith(("eies", "aies")) and len(token) > 4:
        return token[:-3] + "y"
    if token.endswith(("sses", "xes", "zes", "ches", "shes")):
        return token[:-2]
    if token.endswith("es") and not token.endswith(("aes", "ees", "oes")):
        return token[:-1]
    if token.endswith("s") and not token.endswith(("us", "ss", "is")):
        return token[:-1]
    return token


def stems(text: str) -> list[str]:
    """The lexical index's terms of ``text`` (Snowball stems, repeats kept)."""
    return terms(text)


def compound(text: str | None) -> bool:
    """Whether a word of ``text`` as typed (between spaces) holds several tokens: a compound name ("libnl-utils",
    "xserver-xorg-input"), not keywords typed apart."""
    return any(len(tokens(word)) > 1 for word in (text or "").split())


def normalize_query(text: str | None) -> str:
    """The memory key of a query: stemmed tokens without stopwords, in order, space-joined."""
    return _normalized(text) if text else ""


@functools.lru_cache(maxsize=4096)  # a search asks for its query's key several times (memory, history, …)
def _normalized(text: str) -> str:
    kept = [stem(t) for t in tokens(text) if t not in STOPWORDS]
    return " ".join(kept) if kept else " ".join(tokens(text))


def within_one_edit(a: str, b: str) -> bool:
    """Damerau-Levenshtein distance of at most one (a typo: insert, delete, substitute or swap)."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    short, long_ = (a, b) if la < lb else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1 :]


#: query words whose typo match :class:`OneEditIndex` remembers (then it starts again)
MEMO = 50_000


class OneEditIndex:
    """Words found by a typo: :meth:`first` is the first of ``words`` within one edit of a key
    (:func:`within_one_edit`), those of the key's length first, then one shorter, then one longer, each in
    ``words``' order — the answer of a scan of every word, from a lookup of the key's single-letter deletions
    in the words' own (a symmetric-delete index: two words one edit apart share a deletion or one is a
    deletion of the other), so a query word costs its length's lookups, not the vocabulary's size."""

    def __init__(self, words: Sequence[str]) -> None:
        self._rank = {word: i for i, word in reversed(list(enumerate(words)))}  # first position of each
        self._by_variant: dict[str, list[str]] = {}
        for word in self._rank:
            for variant in _variants(word):
                self._by_variant.setdefault(variant, []).append(word)
        self._seen: dict[str, str | None] = {}  # the answers so far (query words repeat), at most MEMO of them

    def first(self, key: str) -> str | None:
        if key in self._seen:
            return self._seen[key]
        found = {word for variant in _variants(key) for word in self._by_variant.get(variant, ())}
        matches = [word for word in found if within_one_edit(key, word)]
        order = {len(key): 0, len(key) - 1: 1, len(key) + 1: 2}
        answer = min(matches, key=lambda word: (order[len(word)], self._rank[word])) if matches else None
        if len(self._seen) >= MEMO:
            self._seen.clear()
        self._seen[key] = answer
        return answer


def _variants(word: str) -> set[str]:
    """``word`` and each word made by deleting one of its letters."""
    return {word, *(word[:i] + word[i + 1 :] for i in range(len(word)))}


@functools.cache
def english_words() -> frozenset[str]:
    """The English word list of ``pyspellchecker`` (its ``en`` dictionary's words), read once per process."""
    data = importlib.resources.files("spellchecker") / "resources" / "en.json.gz"
    with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as text:
        return frozenset(json.load(text))


def english_words_loaded() -> bool:
    """Whether :func:`english_words` has been read in this process."""
    return english_words.cache_info().currsize > 0


def is_english_word(word: str) -> bool:
    """Whether ``word`` (lower case) is a correctly spelled English word."""
    return word in english_words()
