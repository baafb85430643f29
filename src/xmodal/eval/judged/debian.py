"""The Debian packages judged set: packages as items, five query kinds judged from the archive's metadata.

Items: packages of the archive apt knows (``apt-cache dumpavail``: every package of the configured
sources, after ``apt-get update``): id ``debian/<name>``, title the package name, text its one-line
description, attributes ``section`` and ``tags`` (debtags, when it has any). The sample is seeded; half
of it at most is drawn first from the packages that provide a virtual package (so the ``provides``
queries have judged items), the rest from all the others.

Kinds (see ``docs/judged_sets.md``):

- ``name`` (tuning): the package name → the package.
- ``misspelled`` (tuning): the name with one typo that is no package name nor word of a description.
- ``fragment`` (tuning): three consecutive words of a description → every package whose description holds them.
- ``attribute`` (tuning): a section and a word, e.g. ``games chess`` → every package of the section whose
  description has the word (2 to 20 packages).
- ``provides`` (held out): a virtual package name in words, e.g. ``x terminal emulator`` → the packages
  that declare ``Provides:`` it (2 to 30 of the catalog; neither the name nor the field is in the items).
  The judgements are the maintainers' own.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from ...errors import ConfigError
from ...store.analysis import tokens
from ..sets import HELD_OUT, TUNING
from .base import Candidate, Kind, Phrases, Record, Source, content_words, misspell, rank

KINDS = (
    Kind("name", TUNING, "the package name"),
    Kind("misspelled", TUNING, "the package name with one typo (dropped, swapped, doubled or neighbouring key)"),
    Kind("fragment", TUNING, "three consecutive words of the description; every package whose description has them"),
    Kind("attribute", TUNING, "a section and a word; every package of the section whose description has the word"),
    Kind("provides", HELD_OUT, "a virtual package name in words; the packages that declare Provides: it"),
)
FRAGMENT_WORDS = 3
ATTRIBUTE_RELEVANT = (2, 20)
PROVIDES_RELEVANT = (2, 30)
PRIORITY_PROVIDERS = (2, 60)  # virtual names with this many providers in the archive seed the sample
MOST_RELEVANT = 10
_VIRTUAL = re.compile(r"^[a-z][a-z+]*(?:-[a-z][a-z+]*)*$")
_NOT_A_CONCEPT = re.compile(
    r"^lib|-(dev|doc|dbg|abi|data|common|perl|python|ruby|api)$|^(python|perl|ruby|node|golang)-"
)


@dataclass(frozen=True, slots=True)
class Package:
    name: str
    synopsis: str
    section: str
    tags: tuple[str, ...]
    provides: tuple[str, ...]


def dumpavail() -> str:
    """What ``apt-cache dumpavail`` prints (a :class:`ConfigError` when apt cannot say)."""
    try:
        done = subprocess.run(["apt-cache", "dumpavail"], capture_output=True, text=True, check=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigError(f"apt-cache dumpavail failed ({exc}): the Debian set needs apt (`apt-get update`)") from None
    return done.stdout


def parse_packages(text: str) -> Iterator[Package]:
    """Packages of a Debian control-file listing (deb822 paragraphs), one per name (the first seen)."""
    seen: set[str] = set()
    fields: dict[str, str] = {}
    last = ""
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            package = _package(fields)
            if package is not None and package.name not in seen:
                seen.add(package.name)
                yield package
            fields, last = {}, ""
        elif line[0] in " \t":
            if last in ("tag", "provides"):  # the only folded fields read past their first line
                fields[last] += " " + line.strip()
        else:
            key, _, value = line.partition(":")
            last = key.lower()
            if last in ("package", "description", "section", "tag", "provides"):
                fields[last] = value.strip()


def _package(fields: dict[str, str]) -> Package | None:
    name, synopsis = fields.get("package"), fields.get("description", "")
    if not name or not synopsis:
        return None
    tags = tuple(t.strip() for t in fields.get("tag", "").split(",") if t.strip())
    provides = tuple(p.strip().split(" ")[0].split("(")[0] for p in fields.get("provides", "").split(",") if p.strip())
    return Package(name, synopsis, fields.get("section", "misc").split("/")[-1], tags, provides)


def record(p: Package) -> Record:
    attributes: dict[str, object] = {"section": p.section}
    if p.tags:
        attributes["tags"] = list(p.tags)
    return {"id": f"debian/{p.name}", "title": p.name, "text": p.synopsis, "attributes": attributes}


def build(size: int, seed: int, *, listing: str | None = None) -> Source:
    """The items and candidate queries of a ``size``-item set from ``listing`` (default: ``apt-cache
    dumpavail``)."""
    text = listing if listing is not None else dumpavail()
    packages = sorted(parse_packages(text), key=lambda p: p.name)
    if not packages:
        raise ConfigError("apt-cache dumpavail listed no package: run `apt-get update` first")
    names = {p.name for p in packages}
    providers: dict[str, set[str]] = defaultdict(set)
    for p in packages:
        for virtual in p.provides:
            if virtual not in names and _VIRTUAL.match(virtual) and not _NOT_A_CONCEPT.search(virtual):
                providers[virtual].add(p.name)
    low, high = PRIORITY_PROVIDERS
    priority = {name for group in providers.values() if low <= len(group) <= high for name in group}
    by_rank = sorted(packages, key=lambda p: rank(seed, p.name))
    first = [p for p in by_rank if p.name in priority][: size // 2]
    taken = {p.name for p in first}
    chosen = sorted(first + [p for p in by_rank if p.name not in taken][: size - len(first)], key=lambda p: p.name)
    items = [record(p) for p in chosen]
    vocabulary = set(names)
    for p in chosen:
        vocabulary.update(tokens(p.synopsis))
    candidates: dict[str, list[Candidate]] = {kind.name: [] for kind in KINDS}
    phrases = Phrases({f"debian/{p.name}": p.synopsis for p in chosen}, FRAGMENT_WORDS)
    for p in chosen:
        iid = f"debian/{p.name}"
        candidates["name"].append(Candidate(p.name, (iid,)))
        typo = misspell(p.name, iid, seed, vocabulary)
        if typo is not None:
            candidates["misspelled"].append(Candidate(typo, (iid,)))
        fragment = phrases.fragment(iid, seed, most=MOST_RELEVANT)
        if fragment is not None:
            candidates["fragment"].append(fragment)
    candidates["attribute"] = attribute_candidates(chosen, seed)
    in_catalog: dict[str, set[str]] = defaultdict(set)
    for p in chosen:
        for virtual in p.provides:
            if virtual in providers:
                in_catalog[virtual].add(f"debian/{p.name}")
    low, high = PROVIDES_RELEVANT
    candidates["provides"] = [
        Candidate(virtual.replace("-", " "), tuple(sorted(group)))
        for virtual, group in sorted(in_catalog.items())
        if low <= len(group) <= high
    ]
    about = {
        "listing": "apt-cache dumpavail",
        "packages": len(packages),
        "listing_sha256": hashlib.sha256(text.encode()).hexdigest(),
    }
    return Source("debian", items, list(KINDS), candidates, about)


def attribute_candidates(chosen: list[Package], seed: int) -> list[Candidate]:
    """``<section> <word>``: every package of the section whose description has the word."""
    by_word: dict[tuple[str, str], set[str]] = defaultdict(set)
    for p in chosen:
        for word in set(content_words(p.synopsis)):
            by_word[(p.section, word)].add(f"debian/{p.name}")
    low, high = ATTRIBUTE_RELEVANT
    out = []
    for p in chosen:
        section_words = set(tokens(p.section))
        usable = sorted(
            w
            for w in set(content_words(p.synopsis))
            if w not in section_words and low <= len(by_word[(p.section, w)]) <= high
        )
        if usable:  # the most specific word (fewest packages), ties in seeded order
            word = min(usable, key=lambda w: (len(by_word[(p.section, w)]), rank(seed, f"{p.name}\x00{w}")))
            out.append(Candidate(f"{p.section} {word}", tuple(sorted(by_word[(p.section, word)]))))
    return out
