"""Judged query sets of several query kinds on real catalogs that install offline from Debian.

Each set is built from its sources alone (no hand judgement), deterministically from a seed, into a
folder: ``catalog.jsonl`` (for ``xmodal add``), ``queries.jsonl`` (for ``xmodal eval``, each line with
its ``kind``) and ``set.json`` (each kind's split, ``tuning`` or ``held_out``; see :mod:`xmodal.eval.sets`).
How each set and kind is made is in ``docs/judged_sets.md``; build one with
``python -m xmodal.eval.judged wordnet OUT``.

- ``wordnet``: WordNet synsets (``wordnet-base``), held-out definitions from GCIDE (``dict-gcide``).
- ``debian``: the archive's packages (``apt-cache dumpavail``), held-out virtual-package queries.
- ``manpages``: Linux's programming manual (``manpages``, ``manpages-dev``), held-out one-line descriptions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ...errors import ValidationError
from . import debian, manpages, wordnet
from .base import JudgedSet, Source, write_set

__all__ = ["DEFAULT_ITEMS", "DEFAULT_PER_KIND", "SETS", "JudgedSet", "build_set"]

SETS: dict[str, Callable[[int, int], Source]] = {
    "wordnet": lambda size, seed: wordnet.build(size, seed),
    "debian": lambda size, seed: debian.build(size, seed),
    "manpages": lambda size, seed: manpages.build(size, seed),
}
DEFAULT_ITEMS = 10_000
DEFAULT_PER_KIND = 300


def build_set(
    name: str, folder: str | Path, *, items: int = DEFAULT_ITEMS, per_kind: int = DEFAULT_PER_KIND, seed: int = 0
) -> JudgedSet:
    """Build the set ``name`` with ``items`` items and up to ``per_kind`` queries of each kind into ``folder``."""
    if name not in SETS:
        raise ValidationError("set", f"unknown judged set {name!r}", f"use one of {', '.join(SETS)}")
    if items < 10 or per_kind < 1:
        raise ValidationError("items", f"needs at least 10 items and 1 query a kind, got {items}, {per_kind}")
    return write_set(SETS[name](items, seed), folder, per_kind=per_kind, seed=seed)
