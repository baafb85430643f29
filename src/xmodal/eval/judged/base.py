"""What every judged-set builder shares: seeded ranks, candidate queries, the split by item, the files.

A builder turns a source into items and, per query kind, *candidate* queries with their relevant items
(judged from the data, never by hand). :func:`assemble` then draws the queries: each kind's candidates in
a seeded order, the kinds taking turns, a candidate kept only when none of its relevant items is already
judged for the other split. So the items judged for tuning kinds and for held-out kinds are disjoint, and
every kind gets its share even when its candidates are few. Everything is ordered by a SHA-256 hash of
the seed and a key, never by Python's ``hash`` or the order of a dictionary: the same sources and seed give
the same files byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ...store.analysis import tokens
from ..sets import FORMAT, SET_FILE, SPLITS

Record = dict[str, Any]
Log = Callable[[str], None]
STOPWORDS = frozenset(
    "a about after all also an and any are as at be been being but by can could did do does each for from had has "
    "have how if in into is it its may more most much no not of on one only or other over same should so some such "
    "than that the their them then there these they this those through to too under up upon used very was were what "
    "when where which while who whom whose why will with within without would".split()
)
# Letters next to each other on a QWERTY keyboard: a substitution typo hits a neighbour.
_NEIGHBOURS = {
    "q": "wa", "w": "qes", "e": "wrd", "r": "etf", "t": "ryg", "y": "tuh", "u": "yij", "i": "uok", "o": "ipl",
    "p": "ol", "a": "qsz", "s": "adwx", "d": "sfec", "f": "dgrv", "g": "fhtb", "h": "gjyn", "j": "hkum",
    "k": "jlim", "l": "kop", "z": "asx", "x": "zsdc", "c": "xdfv", "v": "cfgb", "b": "vghn", "n": "bhjm",
    "m": "njk",
}  # fmt: skip


def missing_data(package: str, path: Path) -> ConfigError:
    """The error of a source that is not installed."""
    return ConfigError(f"{path} not found: install the Debian package {package} (apt-get install {package})")


def rank(seed: int, key: str) -> str:
    """A seeded sort key for ``key`` (stable across runs, machines and Python versions)."""
    return hashlib.sha256(f"{seed}\x00{key}".encode()).hexdigest()


def number(seed: int, key: str) -> int:
    """A seeded non-negative integer for ``key``."""
    return int(rank(seed, key)[:12], 16)


def content_words(text: str) -> list[str]:
    """Lower-cased word tokens of ``text`` that carry meaning: letters only, 3+ long, no stopword."""
    return [t for t in tokens(text) if t.isalpha() and len(t) >= 3 and t not in STOPWORDS]


@dataclass(frozen=True, slots=True)
class Kind:
    """A query kind: its name, its split (``tuning`` or ``held_out``) and how its queries are made."""

    name: str
    split: str
    description: str

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"kind {self.name!r}: split must be one of {SPLITS}, got {self.split!r}")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A possible query: its text and the ids of the items relevant to it (sorted)."""

    text: str
    relevant: tuple[str, ...]


@dataclass(slots=True)
class Source:
    """What a builder read: the items (records ready for ``xmodal add``), each kind with its candidates,
    and a description of the source data (versions, counts) for ``set.json``."""

    name: str
    items: list[Record]
    kinds: list[Kind]
    candidates: dict[str, list[Candidate]]
    about: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JudgedSet:
    """A built set: where its files are and how many items and queries of each kind it holds."""

    folder: Path
    items: int
    queries: dict[str, int]

    @property
    def catalog(self) -> Path:
        return self.folder / "catalog.jsonl"

    @property
    def query_file(self) -> Path:
        return self.folder / "queries.jsonl"

    @property
    def set_file(self) -> Path:
        return self.folder / SET_FILE


def assemble(
    kinds: Sequence[Kind], candidates: Mapping[str, Sequence[Candidate]], per_kind: int, seed: int
) -> tuple[list[Record], dict[str, str]]:
    """Up to ``per_kind`` queries of each kind, and the split each judged item went to.

    Each kind's candidates are taken in a seeded order (repeated texts once); the kinds take turns,
    and a candidate is kept only when none of its relevant items is already judged for the other split."""
    queues: dict[str, list[Candidate]] = {}
    for kind in kinds:
        unique: dict[str, Candidate] = {}
        for c in candidates.get(kind.name, ()):
            unique.setdefault(c.text.lower(), c)
        prefix = f"{kind.name}\x00"
        queues[kind.name] = sorted(unique.values(), key=lambda c: rank(seed, prefix + c.text))
    side: dict[str, str] = {}
    taken: dict[str, list[Candidate]] = {kind.name: [] for kind in kinds}
    position = dict.fromkeys(queues, 0)
    active = [kind for kind in kinds if queues[kind.name]]
    while active:
        still = []
        for kind in active:
            queue, i = queues[kind.name], position[kind.name]
            while i < len(queue) and any(side.get(item, kind.split) != kind.split for item in queue[i].relevant):
                i += 1  # an item of this query is judged for the other split
            if i < len(queue):
                chosen = queue[i]
                taken[kind.name].append(chosen)
                side.update(dict.fromkeys(chosen.relevant, kind.split))
                i += 1
            position[kind.name] = i
            if i < len(queue) and len(taken[kind.name]) < per_kind:
                still.append(kind)
        active = still
    queries = [
        {"id": f"{kind.name}-{n:04d}", "kind": kind.name, "text": c.text, "relevant": list(c.relevant)}
        for kind in kinds
        for n, c in enumerate(taken[kind.name])
    ]
    return queries, side


def write_set(source: Source, folder: str | Path, *, per_kind: int, seed: int) -> JudgedSet:
    """Draw the queries of ``source`` and write ``catalog.jsonl``, ``queries.jsonl`` and ``set.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    queries, side = assemble(source.kinds, source.candidates, per_kind, seed)
    counts = {kind.name: sum(1 for q in queries if q["kind"] == kind.name) for kind in source.kinds}
    items = sorted(source.items, key=lambda r: str(r["id"]))
    _write_jsonl(folder / "catalog.jsonl", items)
    _write_jsonl(folder / "queries.jsonl", queries)
    judged: dict[str, set[str]] = defaultdict(set)
    for item, split in side.items():
        judged[split].add(item)
    description = {
        "format": FORMAT,
        "name": source.name,
        "seed": seed,
        "items": len(items),
        "per_kind": per_kind,
        "kind_order": [kind.name for kind in source.kinds],
        "kinds": {
            kind.name: {"split": kind.split, "queries": counts[kind.name], "description": kind.description}
            for kind in source.kinds
        },
        "splits": {
            split: {
                "kinds": [k.name for k in source.kinds if k.split == split],
                "queries": sum(counts[k.name] for k in source.kinds if k.split == split),
                "judged_items": len(judged[split]),
            }
            for split in SPLITS
        },
        "rule": "tuning kinds may be fitted and chosen on; held-out kinds are only ever evaluated. "
        "No item is judged relevant for queries of both splits.",
        "source": source.about,
    }
    (folder / SET_FILE).write_text(json.dumps(description, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return JudgedSet(folder, len(items), counts)


def _write_jsonl(path: Path, rows: Iterable[Record]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")


# -- candidate makers shared by the sets --------------------------------------------------------------
def misspell(word: str, key: str, seed: int, vocabulary: Container[str]) -> str | None:
    """``word`` with one typo (a letter dropped, two swapped, a keyboard neighbour hit, a letter doubled),
    never at the first letter and never giving a word of ``vocabulary``; None when every try does."""
    letters = [i for i, c in enumerate(word) if i > 0 and c.isalpha() and c.lower() in _NEIGHBOURS]
    if len(word) < 5 or not letters:
        return None
    for attempt in range(8):
        h = number(seed, f"{key}\x00{attempt}")
        i, op = letters[h % len(letters)], (h // 7) % 4
        c = word[i].lower()
        if op == 0:
            typo = word[:i] + word[i + 1 :]
        elif op == 1 and i + 1 < len(word) and word[i + 1] != word[i]:
            typo = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        elif op == 2:
            near = _NEIGHBOURS[c]
            typo = word[:i] + near[(h // 31) % len(near)] + word[i + 1 :]
        else:
            typo = word[: i + 1] + word[i] + word[i + 1 :]
        if typo != word and typo.lower() not in vocabulary:
            return typo
    return None


def misspelled_name(name: str, key: str, seed: int, vocabulary: Container[str]) -> str | None:
    """``name`` with a typo in its longest word (of at least 5 letters)."""
    words = name.split(" ")
    longest = max(range(len(words)), key=lambda i: (len(words[i]), -i))
    typo = misspell(words[longest], key, seed, vocabulary)
    if typo is None:
        return None
    return " ".join([*words[:longest], typo, *words[longest + 1 :]])


class Phrases:
    """Which items hold each run of ``n`` consecutive tokens (for fragment queries' judgments)."""

    def __init__(self, texts: Mapping[str, str], n: int) -> None:
        self.n = n
        self.holders: dict[tuple[str, ...], set[str]] = defaultdict(set)
        self.tokens = {item: tokens(text) for item, text in texts.items()}
        for item, toks in self.tokens.items():
            for i in range(len(toks) - n + 1):
                self.holders[tuple(toks[i : i + n])].add(item)

    def fragment(self, item: str, seed: int, *, within: int | None = None, most: int = 10) -> Candidate | None:
        """A run of ``n`` tokens of ``item``'s text (in its first ``within`` tokens), with at least two content
        words, and every item holding it; None when there is no such run or more than ``most`` items hold it."""
        toks = self.tokens[item][:within] if within else self.tokens[item]
        starts = [
            i
            for i in range(len(toks) - self.n + 1)
            if len(content_words(" ".join(toks[i : i + self.n]))) >= 2
            and toks[i] not in STOPWORDS
            and toks[i + self.n - 1] not in STOPWORDS
        ]
        if not starts:
            return None
        i = starts[number(seed, f"fragment\x00{item}") % len(starts)]
        run = tuple(toks[i : i + self.n])
        holders = self.holders[run]
        return Candidate(" ".join(run), tuple(sorted(holders))) if len(holders) <= most else None
