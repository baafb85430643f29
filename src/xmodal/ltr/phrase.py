"""Exact phrases first: in the fused list's head, the items whose title or text holds every word of the query,
in the query's order and next to each other, go before the others (a stable partition: each side keeps its
fused order).

A query of several words copied from an item (a fragment of its description, a name of several words) is
answered best by the items that hold it verbatim. Lexical search ranks them first (BM25F rewards every word
they share), dense search need not, and fusing the two put dense-only items among them: the `fragment` query
kind lost to lexical search alone on both judged sets (issue 19, docs/benchmarks.md). Solr's edismax phrase
fields (``pf``) and Elasticsearch's ``match_phrase`` reward the same evidence; here it is a tier rather than a
bonus because the fused scores have no scale a bonus could be stated on (the shown scores stay non-increasing:
:mod:`.scores`).

Words are the store's analyzer tokens (lower-cased, accent-folded word characters: :func:`.text.tokens`), not
stems, so the phrase is exact. Only for a query of at least :data:`MIN_WORDS` words that are not stop words
(:data:`.text.STOPWORDS`): a phrase of fewer is common, and held by items that are not about it. The demo's "a
cup of coffee" is held by the usage example of WordNet's "frequently" ("we often met over a cup of coffee"),
which would then come first; a two-word collocation ("motor vehicle") is shared by many items (on the tuning
query kinds, any query of two words or more cost Debian's attribute queries 0.004 nDCG@10).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence

from .fusion import FusedHit
from .text import STOPWORDS, tokens

#: the fewest words other than stop words a query needs for its phrase to count
MIN_WORDS = 3
#: how many of the fused list's first items are looked at (their text read from the store)
HEAD = 20


def query_phrase(text: str | None) -> str | None:
    """The query's words as a phrase to look for (space-joined tokens), None when fewer than :data:`MIN_WORDS` of
    them are not stop words."""
    words = tokens(text or "")
    return " ".join(words) if sum(w not in STOPWORDS for w in words) >= MIN_WORDS else None


def holds(text: str, phrase: str) -> bool:
    """Whether ``text``'s tokens hold ``phrase`` (:func:`query_phrase`) as consecutive whole words. An ASCII text
    (nothing to fold) is searched as it is, lower-cased, not tokenised: a long document costs one regular
    expression search."""
    if text.isascii():
        return _pattern(phrase).search(text.lower()) is not None
    return f" {phrase} " in f" {' '.join(tokens(text))} "


@functools.lru_cache(maxsize=256)
def _pattern(phrase: str) -> re.Pattern[str]:
    """The phrase's words as :func:`.text.tokens` reads them: whole words with only non-word characters between."""
    return re.compile(r"(?<!\w)" + r"\W+".join(map(re.escape, phrase.split())) + r"(?!\w)")


def query_name(text: str | None) -> str | None:
    """The query's words (space-joined tokens) as a title to look for, None when it has none."""
    words = tokens(text or "")
    return " ".join(words) if words else None


def tiers_first(
    fused: Sequence[FusedHit],
    phrase: str | None,
    name: str | None,
    texts: Callable[[Sequence[str]], Mapping[str, Sequence[str]]],
    spare: Sequence[FusedHit] = (),
) -> tuple[list[FusedHit], int, int]:
    """``fused`` with the hits of its first :data:`HEAD` whose texts hold ``phrase`` moved before the other hits of
    the head, then those titled ``name`` (:func:`query_name`: the same words) before those (each tier skipped when
    None; each side of a move keeps its fused order), and how many hits each tier moved. ``texts``: each id's
    texts (title, text), read once for the head (both tiers reorder it only); an id it leaves out holds nothing.

    ``spare``: hits of runs that ran but were not fused (the self-tuned fusion's choice left them out); those of
    its first :data:`HEAD` that hold the phrase (or the title) join their tier, after the fused head's hits of the
    tier (from further down ``fused`` when they are there too). The evidence of a verbatim match is the item's
    text, whichever run found it."""
    if phrase is None and name is None:
        return list(fused), 0, 0
    head = [h.id for h in fused[:HEAD]]
    shown = set(head)
    extra = [h for h in spare[:HEAD] if h.id not in shown]
    found = texts(head + [h.id for h in extra])
    out, held, titled = list(fused), 0, 0
    if phrase is not None:
        out, held = _first(out, _holding(phrase), found, extra)
    if name is not None:
        out, titled = _first(out, _titled(name), found, extra)
    return out, held, titled


def _holding(phrase: str) -> Callable[[Sequence[str]], bool]:
    return lambda texts: any(holds(t, phrase) for t in texts)


def _titled(name: str) -> Callable[[Sequence[str]], bool]:
    return lambda texts: bool(texts) and " ".join(tokens(texts[0])) == name


def _first(
    fused: Sequence[FusedHit],
    wanted: Callable[[Sequence[str]], bool],
    found: Mapping[str, Sequence[str]],
    extra: Sequence[FusedHit],
) -> tuple[list[FusedHit], int]:
    """``fused`` with its head's hits whose texts (``found``, by id) are ``wanted`` first, then the ``extra`` hits
    not in the head that are wanted (as ``fused`` has them when it has them further down), and how many moved."""
    head = list(fused[:HEAD])
    first = [h for h in head if wanted(found.get(h.id, ()))]
    ids = {h.id for h in head}
    later = {h.id: h for h in fused[HEAD:]}
    joined = [later.get(h.id, h) for h in extra if h.id not in ids and wanted(found.get(h.id, ()))]
    if not joined and len(first) in (0, len(head)):
        return list(fused), len(first)
    moved = {h.id for h in first + joined}
    rest = [h for h in fused if h.id not in moved]
    return first + joined + rest, len(first) + len(joined)
