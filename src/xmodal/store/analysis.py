"""The full-text analyzer: the terms of a text as the lexical index stores and searches them.

Tokens are lower-cased, accent-folded runs of word characters (``\\w+``); each is reduced by the
Snowball English stemmer (M. F. Porter, "Snowball: A language for stemming algorithms", 2001; the
``snowballstemmer`` package), so that "running shoes" and "run shoe" meet. Stop words are kept:
their weight is the index's business (a term found in most items gets almost none). ``snowballstemmer``
stems with the C library of ``PyStemmer`` (a dependency) when it is installed, ≈ 20× faster than its pure
Python, with the same stems (checked on WordNet's and GCIDE's 430k words and 1.3M made-up ones, and by
``tests/test_fulltext.py``); without it, the pure Python gives them.

:data:`ANALYZER` names this recipe; the store records it and rebuilds its full-text index when it
changes, so stored terms and query terms always come from the same analyzer.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache
from typing import Any

import snowballstemmer

ANALYZER = "snowball-english-1"
_WORD = re.compile(r"\w+", re.UNICODE)
_LOCAL = threading.local()


def tokens(text: str) -> list[str]:
    """Lower-cased, accent-folded word tokens."""
    if text.isascii():  # nothing to fold (NFKD leaves ASCII as it is): the common case, at a fraction of the cost
        return _WORD.findall(text.lower())
    folded = unicodedata.normalize("NFKD", text.lower())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return _WORD.findall(folded)


@lru_cache(maxsize=200_000)
def stem_word(token: str) -> str:
    """The Snowball English stem of one lower-cased token (numbers are kept as they are)."""
    if token.isdigit():
        return token
    stemmed: str = _stemmer().stemWord(token)
    return stemmed


def stem_words(words: list[str]) -> list[str]:
    """The stems of many lower-cased tokens in one call, as :func:`stem_word` gives them, without keeping them in
    its cache (typo candidates: hundreds a query word, :mod:`xmodal.ltr.spelling`)."""
    stemmed: list[str] = _stemmer().stemWords(words)
    return [w if w.isdigit() else s for w, s in zip(words, stemmed, strict=True)]


def _stemmer() -> Any:
    """This thread's stemmer. A Snowball stemmer keeps the word it is stemming in itself, so one shared by
    threads (a server's readers stemming queries while its writer stems items) mixes their words up."""
    stemmer = getattr(_LOCAL, "stemmer", None)
    if stemmer is None:
        stemmer = _LOCAL.stemmer = snowballstemmer.stemmer("english")
    return stemmer


def terms(text: str | None) -> list[str]:
    """The stemmed terms of ``text``, in order, repeats kept (what the index counts)."""
    return [stem_word(t) for t in tokens(text)] if text else []
