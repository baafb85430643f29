"""Top terms of groups of texts by class-based TF-IDF (c-TF-IDF; Grootendorst, "BERTopic: Neural topic
modeling with a class-based TF-IDF procedure", 2022): each group's texts are one document, and a term's
weight in a group is its frequency there times log(1 + A / f), A the mean number of words per group and f
the term's frequency over every group. Words are the index's analyzer tokens, with English stop words,
numbers and one-letter words left out (they name no topic).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from ..store.analysis import tokens

STOP_WORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having he
    her here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not
    now of off on once only or other our ours ourselves out over own same she should so some such than that the
    their theirs them themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves one two used use
    etc e g esp especially usually something someone""".split()
)


def words(text: str) -> list[str]:
    """The topic words of a text: lower-cased tokens, stop words, numbers and single letters left out."""
    return [t for t in tokens(text) if len(t) > 1 and not t.isdigit() and t not in STOP_WORDS]


def ctfidf_top_terms(groups: Sequence[Sequence[str]], top: int) -> list[list[tuple[str, float]]]:
    """The ``top`` terms of each group of texts by c-TF-IDF, with their weights, best first (ties by term)."""
    counts = [Counter(w for text in texts for w in words(text)) for texts in groups]
    total = Counter[str]()
    for count in counts:
        total.update(count)
    sizes = [sum(count.values()) for count in counts]
    mean_words = sum(sizes) / max(1, len(counts))
    out = []
    for count, size in zip(counts, sizes, strict=True):
        scored = [(term, (n / size) * math.log(1 + mean_words / total[term])) for term, n in count.items() if size > 0]
        scored.sort(key=lambda pair: (-pair[1], pair[0]))
        out.append(scored[:top])
    return out
