"""The manual pages judged set: Linux's programming manual as items, four query kinds judged from the pages.

Items: the pages of Debian's ``manpages`` and ``manpages-dev`` (sections 2, 3, 4, 5 and 7: system calls,
library functions, special files, file formats, overviews), read from their roff source
(:mod:`.roff`), one item per page file (links and ``.so`` aliases left out): id ``man/<page>.<section>``,
title the names its NAME line documents (``open, openat, creat``), text the first paragraphs of its
DESCRIPTION (whole paragraphs, at most :data:`TEXT_WORDS` words, at least the first), attributes
``section`` and ``library`` (when the page names one). The NAME line's one-line description is not in the
item. A sample smaller than the manual is seeded.

Kinds (see ``docs/judged_sets.md``):

- ``name`` (tuning): a name the page documents → every page documenting it.
- ``misspelled`` (tuning): such a name with one typo that is no name nor word of the catalog → the same pages.
- ``fragment`` (tuning): three consecutive words of an item's text → every item whose text holds them.
- ``whatis`` (held out): the page's one-line description (``formatted output conversion``) when no word of
  it shares a stem with the names of any page of that description → every page of that description. It says
  what the thing does without naming it, and is never in their texts.
"""

from __future__ import annotations

import gzip
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from ...errors import ConfigError
from ...store.analysis import stem_word, tokens
from ..sets import HELD_OUT, TUNING
from .base import Candidate, Kind, Phrases, Record, Source, content_words, misspelled_name, number, rank
from .roff import name_line, sections

KINDS = (
    Kind("name", TUNING, "a name the page documents; every page documenting it"),
    Kind("misspelled", TUNING, "a name query with one typo (dropped, swapped, doubled or neighbouring key)"),
    Kind("fragment", TUNING, "three consecutive words of the item's text; every item holding them"),
    Kind("whatis", HELD_OUT, "the page's one-line NAME description, naming none of its names; pages of it"),
)
PACKAGES = ("manpages", "manpages-dev")
SECTIONS = frozenset("23457")
TEXT_WORDS = 150
FRAGMENT_WORDS = 3
MOST_RELEVANT = 10
WHATIS_WORDS = (2, 20)


@dataclass(frozen=True, slots=True)
class Page:
    page: str  # file stem, e.g. "open.2"
    section: str
    names: tuple[str, ...]
    whatis: str
    text: str
    library: str

    @property
    def item_id(self) -> str:
        return f"man/{self.page}"


def page_files(packages: tuple[str, ...] = PACKAGES) -> list[Path]:
    """The page files the packages install (regular files of the chosen sections, links left out)."""
    try:
        done = subprocess.run(["dpkg", "-L", *packages], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigError(f"dpkg -L failed ({exc}): the manual pages set needs dpkg and {' '.join(packages)}") from None
    if done.returncode != 0:
        names = " ".join(packages)
        raise ConfigError(f"the manual pages set needs the Debian packages {names}: apt-get install {names}")
    files = []
    for line in done.stdout.splitlines():
        path = Path(line)
        if path.suffix == ".gz" and path.parent.name[3:] in SECTIONS and path.is_file() and not path.is_symlink():
            files.append(path)
    return sorted(files)


def read_page(path: Path) -> Page | None:
    """A page from its gzipped source; None for an alias (``.so``) or a page without NAME line or DESCRIPTION."""
    source = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
    if source.lstrip().startswith(".so "):
        return None
    parts = sections(source)
    named = name_line(parts.get("NAME", ""))
    text = first_words(parts.get("DESCRIPTION", ""), TEXT_WORDS)
    if named is None or not text:
        return None
    page = path.name.removesuffix(".gz")
    library = parts.get("LIBRARY", "").split("\n\n")[0].split(" (")[0].strip()
    return Page(page, path.parent.name[3:], tuple(named[0]), named[1], text, library)


def first_words(text: str, most: int) -> str:
    """``text``'s first paragraphs, whole, up to ``most`` words (the first paragraph at least)."""
    kept: list[str] = []
    count = 0
    for paragraph in text.split("\n\n"):
        words = len(paragraph.split())
        if kept and count + words > most:
            break
        kept.append(paragraph)
        count += words
    return "\n\n".join(kept)


def record(p: Page) -> Record:
    attributes: dict[str, object] = {"section": p.section}
    if p.library:
        attributes["library"] = p.library
    return {"id": p.item_id, "title": ", ".join(p.names), "text": p.text, "attributes": attributes}


def build(size: int, seed: int, *, files: list[Path] | None = None) -> Source:
    """The items and candidate queries of a set of at most ``size`` pages (default files: :func:`page_files`)."""
    paths = files if files is not None else page_files()
    pages = [p for p in map(read_page, paths) if p is not None]
    if not pages:
        raise ConfigError(
            "no manual page could be read: apt-get install manpages manpages-dev (an image that excludes "
            "/usr/share/man from packages, as Debian's Docker images do in /etc/dpkg/dpkg.cfg.d, installs none)"
        )
    chosen = sorted(sorted(pages, key=lambda p: rank(seed, p.page))[:size], key=lambda p: p.page)
    documenting: dict[str, set[str]] = defaultdict(set)
    vocabulary: set[str] = set()
    for p in chosen:
        for name in p.names:
            documenting[name.lower()].add(p.item_id)
        vocabulary.update(n.lower() for n in p.names)
        vocabulary.update(tokens(p.text))
    by_whatis: dict[str, list[Page]] = defaultdict(list)
    for p in chosen:
        by_whatis[p.whatis.lower()].append(p)
    candidates: dict[str, list[Candidate]] = {kind.name: [] for kind in KINDS}
    phrases = Phrases({p.item_id: p.text for p in chosen}, FRAGMENT_WORDS)
    for p in chosen:
        name = p.names[number(seed, f"name\x00{p.page}") % len(p.names)]
        named = tuple(sorted(documenting[name.lower()]))
        if len(named) <= MOST_RELEVANT:
            candidates["name"].append(Candidate(name, named))
            typo = misspelled_name(name, p.item_id, seed, vocabulary)
            if typo is not None:
                candidates["misspelled"].append(Candidate(typo, named))
        fragment = phrases.fragment(p.item_id, seed, within=60, most=MOST_RELEVANT)
        if fragment is not None:
            candidates["fragment"].append(fragment)
        described = by_whatis[p.whatis.lower()]  # every page of it must qualify: none named by the query
        if len(described) <= MOST_RELEVANT and all(map(_describes, described)):
            candidates["whatis"].append(Candidate(p.whatis, tuple(sorted(q.item_id for q in described))))
    versions = _versions()
    about = {"packages": versions, "pages": len(pages), "sections": sorted(SECTIONS)}
    return Source("manpages", [record(p) for p in chosen], list(KINDS), candidates, about)


def _describes(p: Page) -> bool:
    """Whether ``p``'s one-line description can be a query: a few content words, none sharing a stem with
    the page's names (``open and possibly create a file`` names ``open``; ``formatted output conversion`` does
    not name ``printf``), and not a phrase of the item's text."""
    words = content_words(p.whatis)
    low, high = WHATIS_WORDS
    if not low <= len(words) <= high or p.whatis.lower() in p.text.lower():
        return False
    named = {stem_word(t) for name in p.names for t in tokens(name)}
    return not any(stem_word(w) in named for w in tokens(p.whatis))


def _versions() -> dict[str, str]:
    try:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Package} ${Version}\n", *PACKAGES], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    return dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
