"""Pseudo-queries made from the catalog itself: the day-zero training data of self-tuning (:mod:`.selftune`).

Before any user has searched, the items are the only evidence of what queries will look like and which
strategy answers them. From each sampled item this makes queries of several kinds, each judged by the item
it was made from (and, for an attribute query, every item that holds the same value and word):

- ``name``: the item's title;
- ``misspelled``: the title with one typo in its longest word (a letter dropped, doubled or swapped);
- ``fragment``: a run of three to five consecutive words of its text, starting and ending on a content word;
- ``description``: the more common half of the content words of the text's opening, in order, none of the
  title's (a query that describes the thing in everyday words, without naming it);
- ``paraphrase``: the words of its text's opening, each swapped for the closest other word of the catalog
  under the index's encoder (made only when the caller gives that similarity, as :mod:`.selftune` does);
- ``attribute``: one of its attribute values and a content word of its text;
- ``category``: one of its categories alone, a value of an attribute that holds one per item, as users name it
  (a hierarchical value's last level: "flags" for ``signs_and_symbols/flags``), judged by every item of the
  category; a category's query is made once, and not for one that more than :data:`MOST_CATEGORY_SHARE` of the
  catalog and more than :data:`MOST_HOLDERS` items hold (a kind of item, not a category: ``pos=noun``).

Everything is seeded by the item id, so the same catalog always gives the same queries. Nothing here
knows any judged query set: the kinds are what users type at a search box, made by rule from each item.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..records import Item
from .strategies.structured import leaf
from .text import STOPWORDS

KINDS = ("name", "misspelled", "fragment", "description", "paraphrase", "attribute", "category")
DESCRIPTION_WORDS = 10  # a description query: at most this many words of the text
MOST_HOLDERS = 25  # an attribute query whose value and word more items hold than this is left out
MOST_CATEGORY_SHARE = 0.05  # a category query whose category more of the catalog than this holds is left out

_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*", re.UNICODE)


@dataclass(frozen=True, slots=True)
class PseudoQuery:
    """A query made from ``item``; ``relevant``: the items that answer it (``item`` first)."""

    text: str
    kind: str
    item: str
    relevant: tuple[str, ...]


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def content(word: str) -> bool:
    return len(word) > 2 and word.lower() not in STOPWORDS and not word.isdigit()


def draw(seed: int, key: str) -> int:
    """A stable pseudo-random number for ``key`` (the same on every platform and Python run)."""
    return int.from_bytes(hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest(), "big")


def typo(word: str, key: str, seed: int) -> str | None:
    """``word`` with one typo past its first letter; None for a word under five letters."""
    if len(word) < 5:
        return None
    h = draw(seed, f"typo\x00{key}")
    i = 1 + h % (len(word) - 1)
    op = (h // 11) % 3
    if op == 0:
        return word[:i] + word[i + 1 :]
    if op == 1 and i + 1 < len(word) and word[i] != word[i + 1]:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return word[: i + 1] + word[i] + word[i + 1 :]


def _name(item: Item) -> str | None:
    return item.title.strip() or None


def _misspelled(item: Item, seed: int) -> str | None:
    title = words(item.title)
    if not title:
        return None
    longest = max(range(len(title)), key=lambda i: (len(title[i]), -i))
    changed = typo(title[longest], item.id, seed)
    return None if changed is None else " ".join([*title[:longest], changed, *title[longest + 1 :]])


def _fragment(item: Item, seed: int) -> str | None:
    tokens = words(item.text)
    n = 3 + draw(seed, f"n\x00{item.id}") % 3
    starts = [
        i
        for i in range(len(tokens) - n + 1)
        if content(tokens[i]) and content(tokens[i + n - 1]) and sum(content(t) for t in tokens[i : i + n]) >= 2
    ]
    if not starts:
        return None
    i = starts[draw(seed, f"fragment\x00{item.id}") % len(starts)]
    return " ".join(tokens[i : i + n])


def _opening(item: Item) -> tuple[set[str], list[str]]:
    """The title's words (lower-cased), and the content words of the text's opening that are none of them."""
    named = {w.lower() for w in words(item.title)}
    return named, [w for w in words(item.text)[: 2 * DESCRIPTION_WORDS] if content(w) and w.lower() not in named]


def _description(item: Item, frequency: Mapping[str, int]) -> str | None:
    """The more common half of the content words of the text's opening (never a word of the title), in
    their order: a query that describes the thing in everyday words, without the rare words that name it
    (which a user who does not know the name does not have either)."""
    _, opening = _opening(item)
    if len(opening) < 4:
        return None
    ranked = sorted(range(len(opening)), key=lambda i: (-frequency.get(opening[i].lower(), 0), i))
    kept = sorted(ranked[: max(3, (len(opening) + 1) // 2)])[:DESCRIPTION_WORDS]
    return " ".join(opening[i] for i in kept)


def _paraphrase(item: Item, similar: Callable[[str], str | None]) -> str | None:
    """The content words of the text's opening (none of the title's), each replaced by the word of the
    catalog that ``similar`` finds closest (another word, not a form of the same one), in their order: a
    description in other words, the vocabulary mismatch that full-text search cannot bridge."""
    named, opening = _opening(item)
    if len(opening) < 3:
        return None
    swapped = [similar(w.lower()) for w in opening[:DESCRIPTION_WORDS]]
    kept = [w for w in swapped if w and w not in named]
    return " ".join(kept) if len(kept) >= 3 else None


def _text_words(item: Item) -> set[str]:
    """The distinct content words of the item's text, lower-cased."""
    return {w.lower() for w in words(item.text) if content(w)}


def _values(item: Item) -> list[str]:
    out: list[str] = []
    for value in item.attributes.values():
        for v in value if isinstance(value, list | tuple) else [value]:
            if isinstance(v, str) and 0 < len(v) <= 40 and not v.isdigit():
                out.append(v)
    return sorted(set(out))


def _categories(item: Item) -> list[str]:
    """The item's categories as users name them (lower-cased): each value of an attribute that holds one value
    (not a list of tags), a hierarchical one by its last level (:func:`~.strategies.structured.leaf`)."""
    found = {
        (leaf(value) or value).replace("_", " ").strip().lower()
        for value in item.attributes.values()
        if isinstance(value, str) and 0 < len(value) <= 80 and not value.isdigit()
    }
    return sorted(c for c in found if any(content(w) for w in words(c)))


class CatalogWords:
    """What the catalog says about words: in how many items' text each content word is (``frequency``,
    lower-cased), which items hold each (attribute value, content word) pair (for judging attribute
    queries), and which items are in each category (:func:`_categories`, for judging category queries). Built
    once per catalog and shared by everything that needs any. With ``wanted``, only the pairs those items hold
    are gathered (all an attribute query of one of them reads, :meth:`attribute`)."""

    def __init__(self, items: Iterable[Item], wanted: Iterable[Item] | None = None) -> None:
        self.by_pair: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.by_category: dict[str, list[str]] = defaultdict(list)
        self.items = 0
        frequency: Counter[str] = Counter()
        pairs: dict[str, set[str]] | None = None
        if wanted is not None:
            pairs = defaultdict(set)
            for item in wanted:
                for value in _values(item):
                    pairs[value.lower()] |= _text_words(item)
        for item in items:
            self.items += 1
            for category in _categories(item):
                self.by_category[category].append(item.id)
            text_words = _text_words(item)
            frequency.update(text_words)
            for value in _values(item):
                key = value.lower()
                held = text_words if pairs is None else text_words & pairs.get(key, set())
                for word in held:
                    self.by_pair[(key, word)].append(item.id)
        self.frequency: dict[str, int] = defaultdict(int, frequency)

    def attribute(self, item: Item, seed: int) -> PseudoQuery | None:
        values = _values(item)
        text_words = sorted(_text_words(item))
        if not values or not text_words:
            return None
        value = values[draw(seed, f"value\x00{item.id}") % len(values)]
        usable = [
            w for w in text_words if w not in value.lower() and len(self.by_pair[(value.lower(), w)]) <= MOST_HOLDERS
        ]
        if not usable:
            return None
        word = min(usable, key=lambda w: (len(self.by_pair[(value.lower(), w)]), draw(seed, f"{item.id}\x00{w}")))
        holders = [item.id, *sorted(i for i in self.by_pair[(value.lower(), word)] if i != item.id)]
        return PseudoQuery(f"{value.replace('_', ' ')} {word}", "attribute", item.id, tuple(holders))

    def category(self, item: Item, seed: int, made: set[str]) -> PseudoQuery | None:
        """One of the item's categories alone, judged by every item in it; None when ``made`` holds each of them
        already, or each is held by the item alone or by too many (:data:`MOST_CATEGORY_SHARE`)."""
        most = max(MOST_HOLDERS, MOST_CATEGORY_SHARE * self.items)
        usable = [c for c in _categories(item) if c not in made and 2 <= len(self.by_category[c]) <= most]
        if not usable:
            return None
        name = usable[draw(seed, f"category\x00{item.id}") % len(usable)]
        made.add(name)
        holders = [item.id, *sorted(i for i in self.by_category[name] if i != item.id)]
        return PseudoQuery(name, "category", item.id, tuple(holders))


def pseudo_queries(
    items: Sequence[Item],
    seed: int = 0,
    kinds: Sequence[str] = KINDS,
    catalog: CatalogWords | None = None,
    similar: Callable[[str], str | None] | None = None,
) -> list[PseudoQuery]:
    """The pseudo-queries of ``items`` (each kind at most once per item), in item order. Descriptions and
    attribute queries read the words of ``catalog`` (default: of ``items`` alone): every item of it holding
    an attribute query's value and word answers that query."""
    catalog = catalog if catalog is not None else CatalogWords(items)
    out: list[PseudoQuery] = []
    categories: set[str] = set()  # made already: a category's query is made once
    for item in items:
        made: dict[str, str | None] = {
            "name": _name(item) if "name" in kinds else None,
            "misspelled": _misspelled(item, seed) if "misspelled" in kinds else None,
            "fragment": _fragment(item, seed) if "fragment" in kinds else None,
            "description": _description(item, catalog.frequency) if "description" in kinds else None,
            "paraphrase": _paraphrase(item, similar) if similar and "paraphrase" in kinds else None,
        }
        out.extend(PseudoQuery(text, kind, item.id, (item.id,)) for kind, text in made.items() if text)
        for query in (
            catalog.attribute(item, seed) if "attribute" in kinds else None,
            catalog.category(item, seed, categories) if "category" in kinds else None,
        ):
            if query is not None:
                out.append(query)
    return out
