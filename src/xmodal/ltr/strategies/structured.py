"""Structured retrieval driven by query understanding.

Query tokens and n-grams (up to three words) are matched against the attribute values of the
catalog (``engine.attributes``): "red leather boots" → ``color=red, material=leather,
category=boots``. Matching is on singular forms (so "boots" meets "boot", but "build" is not "buildings":
:func:`~xmodal.ltr.text.singular`) and tolerates one typo
(Damerau–Levenshtein distance 1) in words of five letters or more that are misspelled: a word of the
English word list (:func:`~xmodal.ltr.text.is_english_word`) or of the catalog's own text is never read as
another word ("boots" is not the category "books"). A hierarchical value's last level ("animal" in
``noun.animal``, "Boots" in "Clothing > Men > Boots") names its category too, but only in a keyword query for
the category's members (:meth:`QueryUnderstanding.understand`). The slots found become filters; the remaining
words rank the matching items (BM25F first, then dense similarity).

A value right after a negation ("shirt not blue", "non-leather bag") and a bound on the catalog's price attribute
("bag under 50", "between 20 and 50 dollars") are the query's constraints (:meth:`Understanding.constraints`),
which the learned pipeline adds to the query's filters, so that every run keeps to them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ...courtesy import step_aside
from ...filters import filterable
from ...filters.nodes import is_number
from ...records import AttributeValue, Hits, Query
from ...store.sqlite import StoredItem
from ..text import STOPWORDS, OneEditIndex, compound, english_words_loaded, is_english_word, singular, stems, tokens
from .base import Request, hits_from_rows, matrix_rows, top_rows

if TYPE_CHECKING:
    from ...extension import EngineView
    from .lexical import LexicalStrategy

#: queries of a batch ranked between two :func:`~xmodal.courtesy.step_aside` points
STEP = 64
MAX_VALUES_PER_ATTRIBUTE = 2000  # attributes with more distinct values are identifiers, not facets
MAX_NGRAM = 3
#: a word that makes the attribute value after it one the query excludes ("shirt not blue", "non-leather bag")
NEGATIONS = frozenset({"not", "no", "non", "without", "except", "excluding"})
#: the names of a price attribute (any name ending in "price" too): the one a query's "under 50" bounds
PRICE_NAMES = frozenset({"price", "cost", "amount", "msrp"})
_CURRENCY = r"(?:\$|€|£|¥|usd|eur|gbp|dollars?|euros?|bucks)"
_AMOUNT = rf"(?:{_CURRENCY}\s*)?(\d+(?:\.\d+)?)(?:\s*{_CURRENCY})?"
#: what may follow an amount for it to be a price: the end, punctuation or a joining word ("bag under 50 for my
#: wife"), not a unit ("books under 300 pages")
_AFTER = r"(?=\s*(?:$|[,;!?)]|\.(?!\d))|\s+(?:for|and|or|in|with|to|on|at|from|that|which|but)\b)"
#: a bound on a price: "under 50", "below $20", "at least 100 euros", "between 20 and 50"
_BOUND = re.compile(
    r"\b(?:(under|below|less\s+than|cheaper\s+than|up\s+to|at\s+most|max(?:imum)?|no\s+more\s+than)"
    r"|(over|above|more\s+than|at\s+least|min(?:imum)?))\s+"
    + _AMOUNT
    + _AFTER
    + r"|\bbetween\s+"
    + _AMOUNT
    + r"\s+and\s+"
    + _AMOUNT
    + _AFTER,
    re.I,
)
_OPERATORS = {"under": "lt", "below": "lt", "less than": "lt", "cheaper than": "lt", "up to": "lte", "at most": "lte",
              "max": "lte", "maximum": "lte", "no more than": "lte", "over": "gt", "above": "gt", "more than": "gt",
              "at least": "gte", "min": "gte", "minimum": "gte"}  # fmt: skip

#: a value's (or a value's last level's) words, in the singular → the attribute and the values they read as
Vocabulary = dict[tuple[str, ...], tuple[str, tuple[AttributeValue, ...]]]


@dataclass(frozen=True, slots=True)
class Understanding:
    """What query understanding found: attribute slots, the words it used, the rest, the values it excludes and
    a price's bounds."""

    slots: dict[str, list[AttributeValue]] = field(default_factory=dict)
    matched: tuple[str, ...] = ()
    rest: str = ""
    leaf: bool = False  # a slot was read from a word that is only a hierarchical value's last level (:func:`leaf`)
    excluded: dict[str, list[AttributeValue]] = field(default_factory=dict)  # values read after a negation
    bounds: dict[str, dict[str, float]] = field(default_factory=dict)  # a price's bounds ("under 50": lt 50)

    def filters(self) -> dict[str, Any]:
        return {name: values[0] if len(values) == 1 else list(values) for name, values in self.slots.items()}

    def constraints(self) -> dict[str, Any] | None:
        """The filter that the values read after a negation and the price bounds make, which every run of the
        query keeps to ("shirt not blue": items whose color is blue are left out, those without a color kept;
        "bag under 50": ``{"price": {"lt": 50}}``); None when there are none."""
        if not (self.excluded or self.bounds):
            return None
        return {**{name: {"not": list(values)} for name, values in self.excluded.items()}, **self.bounds}

    def ranks_members(self) -> bool:
        """Whether the query asks for the members of its slots' category that match the rest: slots read at least
        as many of its words as are left, and words (not stop words) are left to rank the members by."""
        rest = [w for w in self.rest.split() if w not in STOPWORDS]
        return bool(self.slots and rest) and len(self.matched) >= len(rest)


class QueryUnderstanding:
    """Maps query n-grams to attribute values learned from the catalog; rebuilt after writes."""

    def __init__(self, engine: EngineView) -> None:
        self.engine = engine
        self._phrases: Vocabulary | None = None
        self._leaves: Vocabulary = {}  # the last levels of hierarchical values that are no value of their own
        self._with_leaves: Vocabulary = {}  # both
        self._typos = OneEditIndex(())
        self._price: str | None = None  # the attribute a price bound is on (:func:`_price_name`), if any
        self._others: frozenset[str] = frozenset()  # the other attributes' names (their paths' last parts)

    def on_put(self, stored: Sequence[StoredItem]) -> None:
        self._phrases = None

    def on_delete(self, rows: Sequence[int]) -> None:
        self._phrases = None

    def _vocabulary(self) -> tuple[Vocabulary, Vocabulary, Vocabulary]:
        """Each value's words (singulars) → its attribute and the value; and apart, each hierarchical value's last
        level (:func:`leaf`: "noun.animal", "Shoes > Boots") whose words are not a value of their own → every
        value of the commonest attribute that ends in it ("Men > Boots", "Women > Boots"). Only for an attribute
        that holds one value per item (a taxonomy), not for a list of tags ("use::editing", "works-with::mail"):
        an item holds several tags, and a tag's last level is a property, not the category it belongs to. The
        third: both together."""
        if self._phrases is not None:
            return self._phrases, self._leaves, self._with_leaves
        best: dict[tuple[str, ...], tuple[int, str, AttributeValue]] = {}
        leaves: dict[tuple[str, ...], dict[str, tuple[int, list[AttributeValue]]]] = {}
        prices: dict[str, int] = {}  # price attributes holding numbers -> their distinct values
        with self.engine.attribute_table() as table:
            names = table.attributes()
            for name in names:
                values = table.values(name)
                if _price_name(name) and filterable(name) and any(is_number(v) for v in values):
                    prices[name] = len(values)
                if len(values) > MAX_VALUES_PER_ATTRIBUTE or not filterable(name):
                    continue
                listed = table.listed(name)  # tags: an item holds several, a tag's last level is no category
                for value, count in values.items():
                    if not isinstance(value, str):
                        continue
                    key = _key(value)
                    if key is not None and (key not in best or count > best[key][0]):
                        best[key] = (count, name, value)  # an ambiguous phrase goes to its commonest use
                    last = None if listed else leaf(value)
                    if last is not None and (at := _key(last)) is not None:
                        total, members = leaves.setdefault(at, {}).get(name, (0, []))
                        leaves[at][name] = (total + count, [*members, value])
        phrases: Vocabulary = {k: (name, (value,)) for k, (_, name, value) in best.items()}
        self._leaves = {}
        for key, by_name in leaves.items():
            if key not in phrases:
                name, (_, members) = max(by_name.items(), key=lambda kv: kv[1][0])
                self._leaves[key] = (name, tuple(members))
        self._with_leaves = {**phrases, **self._leaves}
        self._typos = OneEditIndex([key[0] for key in phrases if len(key) == 1 and len(key[0]) >= 4])
        self._price = max(prices, key=lambda name: prices[name]) if prices else None
        self._others = frozenset(_last(name) for name in names if name != self._price)
        self._phrases = phrases
        return phrases, self._leaves, self._with_leaves

    def understand(self, text: str | None) -> Understanding:
        """The price bounds of ``text`` (:meth:`_bounds`), then its slots in the rest (:meth:`_slots`)."""
        self._vocabulary()
        bounds, rest = self._bounds(text or "")
        found = self._slots(rest)
        return replace(found, bounds=bounds) if bounds else found

    def _bounds(self, text: str) -> tuple[dict[str, dict[str, float]], str]:
        """A price's bounds in ``text`` ("under 50", "between 20 and 50 dollars") when the catalog has a price
        attribute (:func:`_price_name`, holding numbers), and the text without them."""
        if self._price is None or not any(c.isdigit() for c in text):
            return {}, text
        bounds: dict[str, float] = {}
        rest, at = [], 0  # the text between the bounds read
        for match in _BOUND.finditer(text):
            before = text[: match.start()].split()[-1:]
            if before and _last(before[0]) in self._others:  # "size over 10": another attribute's bound
                continue
            below, above, amount, low, high = match.groups()
            if amount is not None:
                bounds[_OPERATORS[" ".join((below or above).lower().split())]] = float(amount)
            else:
                bounds.update(gte=float(low), lte=float(high))
            rest.append(text[at : match.start()])
            at = match.end()
        if not bounds:
            return {}, text
        return {self._price: bounds}, " ".join([*rest, text[at:]])

    def _slots(self, text: str) -> Understanding:
        """Greedy longest-match of n-grams to attribute values, then one-typo matches of single words.

        A word that is only a hierarchical value's last level ("animal" for "noun.animal") is weaker evidence: a
        common word that happens to name a category. It is read as that slot only when all of these hold:

        - the reading then asks for the category's members: the query is the category's name alone ("animal"),
          or its members that match the rest (:meth:`Understanding.ranks_members`: "animal nocturnal");
        - the query is keywords: no stop word ("time of an equinox" is not the members of ``noun.time`` that
          hold "equinox") and each word typed apart ("xserver-xorg-input" is one name);
        - every word of the rest is in the catalog's text (no member holds "botling": "botling plant" is a typo
          of a name)."""
        phrases, leaves, both = self._vocabulary()
        words = tokens(text)
        keys = [singular(w) for w in words]
        keywords = not compound(text) and not any(w in STOPWORDS for w in words)
        if keywords and any(
            tuple(keys[i : i + n]) in leaves for n in range(1, MAX_NGRAM + 1) for i in range(len(keys) - n + 1)
        ):
            leafy = self._read(words, keys, both)
            whole = not leafy.rest  # the query is the category's name: its members
            ranks = leafy.ranks_members() and self.engine.fulltext.known_fraction(stems(leafy.rest)) == 1.0
            if whole or ranks:
                return replace(leafy, leaf=True)
        return self._read(words, keys, phrases)

    def _read(self, words: Sequence[str], keys: Sequence[str], vocab: Vocabulary) -> Understanding:
        """The slots ``vocab`` reads in a query's words (``keys``: their singulars)."""
        slots: dict[str, list[AttributeValue]] = {}
        excluded: dict[str, list[AttributeValue]] = {}
        used = [False] * len(words)
        negated = [False] * len(words)  # a negation and the value it negates: in neither the slots nor the rest

        def take(at: int, n: int, hit: tuple[str, tuple[AttributeValue, ...]]) -> None:
            if at > 0 and words[at - 1] in NEGATIONS and not used[at - 1] and not negated[at - 1]:
                _add(excluded, hit)
                negated[at - 1 : at + n] = [True] * (n + 1)
            else:
                _add(slots, hit)
                used[at : at + n] = [True] * n

        i = 0
        while i < len(words):
            for n in range(min(MAX_NGRAM, len(words) - i), 0, -1):
                hit = vocab.get(tuple(keys[i : i + n]))
                if hit is not None and not (n == 1 and words[i] in STOPWORDS):
                    take(i, n, hit)
                    i += n
                    break
            else:
                i += 1
        for j, key in enumerate(keys):
            word = words[j]
            if not (used[j] or negated[j]) and len(word) >= 5 and not word.isdigit() and not _known_english(word):
                # a word one edit from a value (most are not) is then looked up in the English word list (read
                # on the first such word: a process whose queries have none never reads it) and last in the
                # catalog's text (:meth:`_misspelled`)
                fuzzy = self._typos.first(key)
                if fuzzy is not None and self._misspelled(word):
                    take(j, 1, vocab[(fuzzy,)])
        rest = " ".join(w for w, u, x in zip(words, used, negated, strict=True) if not (u or x))
        matched = tuple(w for w, u in zip(words, used, strict=True) if u)
        return Understanding(slots, matched, rest, excluded=excluded)

    def _misspelled(self, word: str) -> bool:
        """Neither an English word nor a word of the catalog's text: only such a word may be a typo."""
        return not is_english_word(word) and self.engine.fulltext.known_fraction(stems(word)) == 0


def _last(name: str) -> str:
    """An attribute path's last part, lower-cased ("meta.Price" → "price")."""
    return name.rsplit(".", 1)[-1].lower()


def _price_name(name: str) -> bool:
    """Whether an attribute path names a price: its last part is one of :data:`PRICE_NAMES` or ends in "price"."""
    return _last(name) in PRICE_NAMES or _last(name).endswith("price")


def _known_english(word: str) -> bool:
    """Whether ``word`` is in the English word list when that list is read already (False when it is not: the
    caller then asks :meth:`QueryUnderstanding._misspelled`, which reads it, only for a word one edit from a
    value)."""
    return english_words_loaded() and is_english_word(word)


def _add(slots: dict[str, list[AttributeValue]], hit: tuple[str, tuple[AttributeValue, ...]]) -> None:
    values = slots.setdefault(hit[0], [])
    values += [v for v in hit[1] if v not in values]


def _key(text: str) -> tuple[str, ...] | None:
    """A value's words as query understanding matches them (:func:`singular`), None when it cannot be matched:
    more than :data:`MAX_NGRAM` words, none, or a single stop word."""
    key = tuple(singular(t) for t in tokens(text))
    return key if key and len(key) <= MAX_NGRAM and not (len(key) == 1 and key[0] in STOPWORDS) else None


def leaf(value: str) -> str | None:
    """The last level of a hierarchical value, whose levels are separated by ``>``, ``/``, ``|``, ``::`` or a
    dot between letters ("noun.animal" → "animal", "Clothing > Shoes > Boots" → "Boots"); None for a value of
    one level or one whose last level is not a word of three letters or more ("3.5", "v1.2")."""
    levels = _LEVELS.split(value.strip())
    last = levels[-1].strip() if len(levels) > 1 else ""
    return last if sum(c.isalpha() for c in last) >= 3 else None


_LEVELS = re.compile(r"\s*(?:>|/|\||::)\s*|(?<=[^\W\d_])\.(?=[^\W\d_])")


@dataclass(slots=True)
class _Ranked:
    """A query's allowed items ranked by BM25F (``(row, 2 + score)``), its filters, and whether any item is
    allowed (so dense search can fill the ranking up)."""

    pairs: list[tuple[int, float]]
    filters: dict[str, Any]
    allowed: bool

    def short(self, depth: int) -> bool:
        return self.allowed and len(self.pairs) < depth


class StructuredStrategy:
    """Filtered retrieval: the slots found become filters; the rest of the words rank the matches."""

    name = "structured"

    def __init__(self, engine: EngineView, understanding: QueryUnderstanding, lexical: LexicalStrategy) -> None:
        self.engine = engine
        self.understanding = understanding
        self.lexical = lexical

    def retrieve(self, query: Query, depth: int, *, vector: np.ndarray | None = None) -> Hits:
        ranked = self._ranked(query, depth)
        if ranked is None:
            return Hits.empty()
        if ranked.short(depth):
            if vector is None:
                vector = self.engine.encode_query(Query(text=query.text, image=query.image))
            dense = self.engine.search_vector(vector, k=depth, target=query.target, filters=ranked.filters)
            self._fill(ranked.pairs, dense, depth)
        return hits_from_rows(self.engine, ranked.pairs, self.name)

    def retrieve_many(self, requests: Sequence[Request]) -> list[Hits]:
        """:meth:`retrieve` for each request, in order; the dense searches that fill up the requests with the
        same filters, target and depth are one matrix search (:meth:`Engine.search_vectors`)."""
        ranked = self._ranked_many(requests)
        groups: dict[tuple[str, str, int], list[int]] = {}
        for i, ((query, depth, _), found) in enumerate(zip(requests, ranked, strict=True)):
            if found is not None and found.short(depth):
                key = json.dumps(found.filters, sort_keys=True, default=repr)
                groups.setdefault((key, str(query.target), depth), []).append(i)
        rows = matrix_rows(self.engine)  # a group larger than this is searched in parts
        for (_, target, depth), group in groups.items():
            for start in range(0, len(group), rows):
                positions = group[start : start + rows]
                vectors = []
                for i in positions:
                    query, _, vector = requests[i]
                    if vector is None:
                        vector = self.engine.encode_query(Query(text=query.text, image=query.image))
                    vectors.append(np.asarray(vector, dtype=np.float32).reshape(-1))
                first = ranked[positions[0]]
                assert first is not None
                dense = self.engine.search_vectors(np.stack(vectors), k=depth, target=target, filters=first.filters)
                for i, hits in zip(positions, dense, strict=True):
                    found = ranked[i]
                    assert found is not None
                    self._fill(found.pairs, hits, depth)
        return [Hits.empty() if r is None else hits_from_rows(self.engine, r.pairs, self.name) for r in ranked]

    def _understood(self, query: Query) -> tuple[list[str], dict[str, Any]] | None:
        """The terms that rank a query with slots (the words not read as slots) and its filters; None for a
        query without slots."""
        found = self.understanding.understand(query.text)
        if not found.slots:
            return None
        return stems(found.rest), {**found.filters(), **dict(query.filters)}  # the user's own filters win

    def _ranked(self, query: Query, depth: int) -> _Ranked | None:
        """The allowed items' BM25F ranking (scored ``2 + BM25F``) for a query with slots, and its filters;
        None for a query without slots."""
        understood = self._understood(query)
        if understood is None:
            return None
        rest, filters = understood
        rows = self.engine.match_rows(filters)
        allowed = set() if rows is None else set(rows.tolist())
        ranked = top_rows(self.lexical.index.score(rest, allowed), depth)
        return _Ranked([(row, 2.0 + score) for row, score in ranked], filters, bool(allowed))

    def _ranked_many(self, requests: Sequence[Request]) -> list[_Ranked | None]:
        """:meth:`_ranked` of each request, in order: the BM25F scored on the lexical index's postings in memory
        (:meth:`LexicalStrategy.matrix`, the same scores and ranking) with each distinct filter's allowed rows
        looked up once, or query by query where it has none."""
        matrix = self.lexical.matrix()
        if matrix is None:
            return [self._ranked(query, depth) for query, depth, _ in requests]
        allowed: dict[str, tuple[np.ndarray, bool]] = {}  # per distinct filters: the allowed columns, any allowed
        out: list[_Ranked | None] = []
        for i, (query, depth, _) in enumerate(requests):
            if i % STEP == 0:
                step_aside()
            understood = self._understood(query)
            if understood is None:
                out.append(None)
                continue
            rest, filters = understood
            key = json.dumps(filters, sort_keys=True, default=repr)
            if key not in allowed:
                rows = self.engine.match_rows(filters)
                allowed[key] = (matrix.allowed(rows), rows is not None and len(rows) > 0)
            mask, any_allowed = allowed[key]
            ranked = matrix.top(rest, depth, mask) if any_allowed else []
            out.append(_Ranked([(row, 2.0 + score) for row, score in ranked], filters, any_allowed))
        return out

    def _fill(self, pairs: list[tuple[int, float]], dense: Hits, depth: int) -> None:
        """Fill ``pairs`` up to ``depth`` with the dense hits not in it yet (their cosines as scores)."""
        seen = {row for row, _ in pairs}
        for item_id, score in dense:
            row = self.engine.find_row(item_id)
            if row is not None and row not in seen and len(pairs) < depth:
                pairs.append((row, float(score)))
