"""The benign set the false-refusal rate is measured on: real catalog text and queries no one here wrote —
WordNet glosses and lemmas (Debian ``wordnet-base``), Debian package descriptions (``apt-cache dumpavail``) —
and the over-refusal contrast set (benign sentences with alarming words: "how to kill a python process")."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from ..errors import ValidationError
from ..guards import corpora


def wordnet_queries() -> list[str]:
    """WordNet lemmas (nouns, e.g. "killer whale", "bomb calorimeter") as short search queries."""
    out: list[str] = []
    for pos in ("noun", "verb", "adj"):
        path = corpora.WORDNET / f"data.{pos}"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: apt-get install wordnet-base")
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.startswith("  "):
                fields = line.split(" ", 5)
                if len(fields) > 4:
                    out.append(fields[4].replace("_", " "))
    return list(dict.fromkeys(out))


SOURCES: dict[str, Callable[[], list[str]]] = {
    "wordnet": corpora.wordnet_glosses,
    "queries": wordnet_queries,
    "debian": corpora.debian_descriptions,
    "contrast": corpora.contrast_set,
}


def load(sources: Iterable[str], per_source: int, seed: int = 0) -> dict[str, list[str]]:
    """Up to ``per_source`` texts (seeded sample) of each source; the contrast set is kept whole."""
    rng = random.Random(seed)
    out: dict[str, list[str]] = {}
    for name in sources:
        if name not in SOURCES:
            raise ValidationError("benign", f"unknown benign source {name!r}", f"use some of {', '.join(SOURCES)}")
        texts = SOURCES[name]()
        out[name] = texts if name == "contrast" or len(texts) <= per_source else rng.sample(texts, per_source)
    return out
