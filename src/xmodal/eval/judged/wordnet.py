"""The WordNet judged set: synsets as items, six query kinds judged from WordNet and GCIDE.

Items: a seeded sample of every WordNet synset (Debian ``wordnet-base``): id ``wordnet/<pos><offset>``,
title the first lemma, text the gloss (definition and examples), attributes ``pos`` and ``lexname``
(WordNet's lexicographer file, e.g. ``noun.animal``).

Kinds (see ``docs/judged_sets.md``):

- ``name`` (tuning): an item's title, when no other item has that lemma → the item.
- ``misspelled`` (tuning): such a name with one typo that is not itself a word → the item.
- ``fragment`` (tuning): four consecutive words of an item's definition → every item whose text holds them.
- ``attribute`` (tuning): a noun category and a word, e.g. ``animal nocturnal`` → every noun of that
  lexicographer file whose text has the word (2 to 20 items).
- ``synonym`` (held out): a lemma of an item that is neither its title nor in its text → every item
  holding that lemma.
- ``definition`` (held out): the first definition of the item's word in Webster's 1913 dictionary
  (GCIDE, Debian ``dict-gcide``) when no word of it shares a stem with the item's lemmas; only for nouns
  whose lemma names no other WordNet synset, so the dictionary's sense is the item's; definitions GCIDE took from
  WordNet are left out.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from ...samples import WORDNET_ROOT, Synset, read_synsets
from ...store.analysis import stem_word, tokens
from ..sets import HELD_OUT, TUNING
from .base import Candidate, Kind, Phrases, Record, Source, content_words, missing_data, misspelled_name, rank
from .dictd import Dictionary

KINDS = (
    Kind("name", TUNING, "the item's title (its first lemma), a lemma no other item holds"),
    Kind("misspelled", TUNING, "a name query with one typo (dropped, swapped, doubled or neighbouring key)"),
    Kind("fragment", TUNING, "four consecutive words of the item's definition; every item holding them"),
    Kind("attribute", TUNING, "a noun category (lexicographer file) and a word; nouns of it whose text has it"),
    Kind("synonym", HELD_OUT, "a lemma of the item that is neither its title nor in its text; items holding it"),
    Kind("definition", HELD_OUT, "Webster 1913's definition (GCIDE) of the item's word, naming none of its lemmas"),
)
POS_LETTER = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}
FRAGMENT_WORDS = 4
ATTRIBUTE_RELEVANT = (2, 20)
MOST_RELEVANT = 10
DEFINITION_WORDS = (5, 30)


def lemma_text(lemma: str) -> str:
    return lemma.replace("_", " ")


def item_id(s: Synset) -> str:
    return f"wordnet/{POS_LETTER[s.pos]}{s.offset}"


def record(s: Synset) -> Record:
    return {
        "id": item_id(s),
        "title": lemma_text(s.lemmas[0]),
        "text": s.gloss,
        "attributes": {"pos": s.pos, "lexname": s.lexname},
    }


def definition_part(gloss: str) -> str:
    """The definition of a gloss, without its quoted examples."""
    return gloss.split('"')[0].split(";")[0].strip()


def build(
    size: int, seed: int, *, wordnet: Path | None = None, dictd: Path | None = None, with_gcide: bool = True
) -> Source:
    """The items and candidate queries of a ``size``-item WordNet set."""
    base = wordnet or WORDNET_ROOT
    if not (base / "data.noun").is_file():
        raise missing_data("wordnet-base", base / "data.noun")
    synsets = list(read_synsets(base))
    synsets_of: dict[str, int] = defaultdict(int)  # lemma → how many synsets (all of WordNet) hold it
    vocabulary: set[str] = set()
    for s in synsets:
        for lemma in {lemma_text(w).lower() for w in s.lemmas}:
            synsets_of[lemma] += 1
            vocabulary.update(lemma.split())
    chosen = sorted(synsets, key=lambda s: rank(seed, item_id(s)))[:size]
    chosen.sort(key=item_id)
    items = [record(s) for s in chosen]
    for r in items:
        vocabulary.update(tokens(str(r["text"])))
    holders: dict[str, set[str]] = defaultdict(set)  # lemma → catalog items holding it
    for s in chosen:
        for lemma in s.lemmas:
            holders[lemma_text(lemma).lower()].add(item_id(s))
    candidates: dict[str, list[Candidate]] = {kind.name: [] for kind in KINDS}
    phrases = Phrases({item_id(s): s.gloss for s in chosen}, FRAGMENT_WORDS)
    for s in chosen:
        iid, title = item_id(s), lemma_text(s.lemmas[0])
        if holders[title.lower()] == {iid}:
            candidates["name"].append(Candidate(title, (iid,)))
            typo = misspelled_name(title, iid, seed, vocabulary)
            if typo is not None:
                candidates["misspelled"].append(Candidate(typo, (iid,)))
        fragment = phrases.fragment(iid, seed, within=len(tokens(definition_part(s.gloss))), most=MOST_RELEVANT)
        if fragment is not None:
            candidates["fragment"].append(fragment)
        text = f"{title} {s.gloss}".lower()
        for lemma in s.lemmas[1:]:
            word = lemma_text(lemma).lower()
            if word not in text and word != title.lower() and len(holders[word]) <= MOST_RELEVANT:
                candidates["synonym"].append(Candidate(lemma_text(lemma), tuple(sorted(holders[word]))))
    candidates["attribute"] = attribute_candidates(chosen, seed)
    about: dict[str, object] = {"wordnet": str(base), "synsets": len(synsets)}
    if with_gcide:
        gcide = Dictionary("gcide", dictd)
        candidates["definition"] = definition_candidates(chosen, gcide, synsets_of)
        about["gcide_headwords"] = len(gcide.headwords())
    return Source("wordnet", items, list(KINDS), candidates, about)


def attribute_candidates(chosen: Sequence[Synset], seed: int) -> list[Candidate]:
    """``<category> <word>`` for nouns: every noun of that lexicographer file whose text has the word."""
    by_word: dict[tuple[str, str], set[str]] = defaultdict(set)
    for s in chosen:
        if s.pos == "noun" and s.lexname != "noun.Tops":
            for word in set(content_words(s.gloss)):
                by_word[(s.lexname, word)].add(item_id(s))
    out = []
    low, high = ATTRIBUTE_RELEVANT
    for s in chosen:
        if s.pos != "noun" or s.lexname == "noun.Tops":
            continue
        category = s.lexname.split(".", 1)[1]
        words = sorted(w for w in set(content_words(definition_part(s.gloss))) if w != category)
        usable = [w for w in words if low <= len(by_word[(s.lexname, w)]) <= high]
        if usable:  # the most specific word (fewest items), ties in seeded order
            word = min(usable, key=lambda w: (len(by_word[(s.lexname, w)]), rank(seed, f"{item_id(s)}\x00{w}")))
            out.append(Candidate(f"{category} {word}", tuple(sorted(by_word[(s.lexname, word)]))))
    return out


# -- GCIDE definitions -----------------------------------------------------------------------------------
_HEAD = re.compile(r"^(?P<word>[^\\\n]+?)\s*\\[^\\]*\\")
_POS = re.compile(r"\\[^\\]*\\\s*(?:\([^)]*\))?[\s,]*(n|v\. [ti]|a|adv)\.")
_SOURCE = re.compile(r"\[([^\[\]]*(?:Webster|WordNet|PJC)[^\[\]]*)\]")
_LABEL = re.compile(r"^\s*(?:\d+\.\s*)?(?:\((?:[A-Z][\w.]*\.?\s*)+\)\s*)*")
_CITATION = re.compile(r"--\s*[A-Z][^.]*\.")
_USELESS = re.compile(r"^(same as|see|alt\. of|pl\. of|plural of|an? obsolete|obs\.|a variant|\(a\))", re.I)
_CALLED = re.compile(
    r"[;,]?\s*--\s*(?:called also|also called|so called|often|sometimes|written also|spelled also)\b.*$", re.I
)


def webster_definition(entry: str, headword: str) -> str | None:
    """The first Webster 1913 definition of a noun entry for ``headword`` (markup removed), or None when
    the entry is for another word, is not a noun, or its first definition is not from Webster 1913."""
    head = _HEAD.match(entry)
    if head is None or head.group("word").strip().lower().replace("-", " ") != headword.lower():
        return None
    lines = entry.split("\n")
    depth, end = 0, 0
    for end, line in enumerate(lines):  # the header runs until its etymology's brackets close
        depth += line.count("[") - line.count("]")
        if depth <= 0 and not (end + 1 < len(lines) and lines[end + 1].lstrip().startswith("[")):
            break
    header = " ".join(lines[: end + 1])
    pos = _POS.search(header)
    if pos is None or pos.group(1) != "n":
        return None
    body = " ".join(line.strip() for line in lines[end + 1 :])
    source = _SOURCE.search(body)
    if source is None or "WordNet" in source.group(1) or "Webster" not in source.group(1):
        return None
    sense = body[: source.start()]
    sense = _LABEL.sub("", sense)
    sense = _CALLED.sub("", _CITATION.sub("", sense))
    sense = re.sub(r"\[[^\]]*\]", "", sense).replace("{", "").replace("}", "")
    sense = " ".join(sense.split())
    if not sense or _USELESS.match(sense) or re.match(r"^\d+\.", sense):
        return None
    return sense


def names_in(text: str, names: Sequence[str]) -> bool:
    """Whether ``text`` holds a word of ``names`` (3+ letters) or a word of the same stem ("procrastinates"
    for "procrastinator": Snowball stems, the lexical index's)."""
    named = {stem_word(w) for name in names for w in tokens(name) if len(w) >= 3}
    return any(stem_word(w) in named for w in tokens(text))


def first_sentence(text: str, most: int) -> str:
    """The first sentence of ``text`` (a period followed by a space), at most ``most`` words."""
    words: list[str] = []
    for word in text.split():
        words.append(word)
        if len(words) >= most or (word.endswith(".") and len(words) >= DEFINITION_WORDS[0] + 3):
            break
    return " ".join(words).rstrip(",;:")


def definition_candidates(chosen: Sequence[Synset], gcide: Dictionary, synsets_of: dict[str, int]) -> list[Candidate]:
    out = []
    low, high = DEFINITION_WORDS
    for s in chosen:
        if s.pos != "noun":
            continue
        names = [lemma_text(w) for w in s.lemmas]
        for name in names:
            if synsets_of[name.lower()] != 1 or name not in gcide:
                continue
            found = (webster_definition(e, name) for e in gcide.entries(name))
            sense = next((d for d in found if d), None)
            if sense is None:
                continue
            query = first_sentence(sense, high)
            if len(query.split()) >= low and not names_in(query, names):
                out.append(Candidate(query, (item_id(s),)))
                break
    return out
