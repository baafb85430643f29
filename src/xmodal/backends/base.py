"""The ``VectorBackend`` seam: where an index's vectors live and how they are searched.

A backend keeps, per *vector kind* (a plain string: ``"text"``, ``"image"``, ``"combined"``, or any kind
an encoder makes), the vectors of the store's rows, and answers top-k inner-product (= cosine) queries.
Kinds are created on demand: the first vector of a kind makes its index, and a checkpoint records the
kinds present. The backend is derived data: it follows the store's change log (``on_put`` /
``on_delete``, driven by :func:`xmodal.changes.replay`), and :meth:`VectorBackend.checkpoint` records the
store sequence it reflects, so a reopened backend catches up by replaying only the changes after
:attr:`VectorBackend.saved_seq` (0: none, rebuild from the store).

**The filter contract.** :meth:`VectorBackend.search` gets the *parsed* filter expression
(:class:`~xmodal.filters.FilterExpr`, or None for no filter) and must apply it *before* the top-k cut: a
filtered search returns k hits whenever at least k stored rows of the searched kinds match, and never a
row that does not match. The expression is a tree (:attr:`FilterExpr.root <xmodal.filters.FilterExpr>`)
of :class:`~xmodal.filters.nodes.Condition` leaves joined by ``And`` (every part), ``Or`` (some part)
and ``Not`` (the part does not hold), over the (nested) attributes of :attr:`StoredItem.item
<xmodal.store.sqlite.StoredItem>`. A condition tests the values an item holds at its ``attribute``, a
dotted path: the values reached through objects, through the elements of lists on the way and through
names that contain dots (:func:`~xmodal.filters.values_at`); their *leaves* are their scalars, list
elements at any depth included. Its ``op`` is one of:

- ``in`` / ``nin`` / ``all``: some leaf has one of ``values`` / the item holds the path and no leaf has
  any / every one of ``values`` is a leaf. Each value is a :func:`~xmodal.filters.value_key` pair —
  ``("s", str)``, ``("n", float)`` (ints and floats compare equal: ``1 == 1.0``), ``("b", bool)``
  (``True`` is never ``1``) or ``("z", None)`` (null);
- ``range``: some number leaf (not a boolean) satisfies every ``(op, bound)`` of ``bounds``, op in
  ``gt``/``gte``/``lt``/``lte``;
- ``exists``: the item holds the path; ``empty``: every value there is null, ``""``, ``[]`` or ``{}``
  (true when it holds none);
- ``text`` / ``itext``: some string leaf contains ``text`` (``itext``: after ``str.casefold``).

:meth:`FilterExpr.matches <xmodal.filters.FilterExpr.matches>` (:mod:`xmodal.filters.nodes`) is the
reference evaluation. How a backend applies it is its own business: the local backend resolves it to the
allowed rows through the engine's attribute table (:attr:`BackendContext.rows`); a database backend
translates it into its own filter language (a Milvus boolean expression, a SQL ``WHERE``) over attributes
it stores with the vectors. The engine has already refused dotted paths into values that are never
objects (and, for a strict search, paths no item has), so a backend need not; a path no item has
simply matches nothing.

A backend is registered by name in :data:`xmodal.backends.BACKENDS` (entry point group
``xmodal.backends``, or ``"package.module:Class"``): the registered object is a class (or any object)
with ``open(context) -> VectorBackend``. ``tests/test_backend_conformance.py`` is the suite every backend
must pass unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ..filters import FilterExpr
from ..index.base import Labels
from ..store.sqlite import StoredItem


class RowMatcher(Protocol):
    """Resolves a filter expression to the sorted rows that satisfy it (the engine's attribute table)."""

    def match_expr(self, where: FilterExpr) -> Labels: ...


@dataclass(frozen=True, slots=True)
class BackendContext:
    """What a backend is opened with.

    ``folder`` is where it may keep derived state (the index folder's ``index/``); ``dim`` the vectors'
    dimension; ``index_kind`` and ``index_options`` the index settings (the local backend's ANN index kind
    and its options; another backend may read its own options from ``index_options`` or refuse them);
    ``rows`` resolves a filter expression to allowed rows for a backend that filters by rows (None when
    the caller keeps no attribute table: such a backend must then evaluate the expression itself).
    ``shared`` is the store's shared settings where several processes share the store (PostgreSQL): a
    backend whose data lives on a server (Milvus) keeps one copy for all of them and records its progress
    there (None: the store is this process's own).
    """

    folder: Path
    dim: int
    index_kind: str = "auto"
    index_options: dict[str, Any] = field(default_factory=dict)
    rows: RowMatcher | None = None
    shared: SharedSettings | None = None


@runtime_checkable
class SharedCopy(Protocol):
    """A backend keeping one copy for every process of a shared store (``shared`` set): each process applies
    its own writes to it, and tells it of other processes' writes it heard of (``others_wrote``), so that its
    next read waits for them on the server."""

    shared: SharedSettings | None

    def others_wrote(self) -> None: ...


class SharedSettings(Protocol):
    """Settings every process of a shared store sees: ``identity`` names the store (and the index's vector
    epoch) the same way in every process; ``update(key, change)`` replaces the JSON value under ``key`` by
    ``change(old)`` atomically (writers of one key in turn) and returns it; ``get(key)`` reads it;
    ``delete(keys)`` removes those keys (absent ones ignored)."""

    @property
    def identity(self) -> str: ...

    def get(self, key: str) -> Any: ...

    def update(self, key: str, change: Callable[[Any], Any]) -> Any: ...

    def delete(self, keys: Sequence[str]) -> None: ...


class VectorHits(NamedTuple):
    """One query's answer: rows, scores and each row's matched vector kind, best first, one per row."""

    rows: Labels
    scores: npt.NDArray[np.float32]
    kinds: list[str]


@runtime_checkable
class VectorBackend(Protocol):
    """Vectors per kind over the store's rows: upsert, remove, filtered top-k search, checkpoint."""

    @property
    def dim(self) -> int: ...

    @property
    def saved_seq(self) -> int:
        """The store sequence the state loaded at open (or last checkpointed) reflects; 0: none."""
        ...

    def kinds(self) -> list[str]:
        """The vector kinds that have at least one vector."""
        ...

    def count(self, kind: str | None = None) -> int:
        """How many vectors of ``kind`` (every kind: None); 0 for a kind never seen."""
        ...

    def upsert(self, stored: Sequence[StoredItem]) -> None:
        """Store each item's vectors under its row; a kind the item no longer has is dropped for it.
        A vector whose dimension is not :attr:`dim` is a ``ValidationError`` naming it."""
        ...

    def remove(self, rows: Sequence[int]) -> None:
        """Forget every vector of these rows (absent rows are ignored)."""
        ...

    def search(
        self, queries: np.ndarray, k: int, kinds: Sequence[str] | None = None, where: FilterExpr | None = None
    ) -> list[VectorHits]:
        """Per query row: the k best rows over ``kinds`` (None: every kind present; a kind absent is
        skipped), each row once with its best score and the kind that matched, ``where`` applied before
        the cut. Which rows of a tie at the cut are kept is the backend's own choice."""
        ...

    def similarity(self, vector: np.ndarray, rows: Sequence[int], kind: str) -> npt.NDArray[np.float32]:
        """Cosine of ``vector`` with each row's vector of ``kind``, aligned with ``rows`` (0 where none)."""
        ...

    def checkpoint(self, seq: int) -> bool:
        """Persist the state as reflecting store sequence ``seq``; write nothing (and return False) when
        nothing changed since the state was loaded or last saved."""
        ...

    def close(self) -> None: ...

    # -- a change-log follower (xmodal.changes) ------------------------------------------------------
    def on_put(self, stored: Sequence[StoredItem]) -> None: ...

    def on_delete(self, rows: Sequence[int]) -> None: ...


@runtime_checkable
class RowListing(Protocol):
    """A backend that lists the rows holding each vector kind (optional: ``xmodal check`` compares these
    row sets with the store's, and ``--repair`` removes rows the store does not hold; counts otherwise)."""

    def rows(self, kind: str) -> Labels:
        """The rows holding a vector of ``kind``, sorted (empty for a kind never seen)."""
        ...


@runtime_checkable
class Purging(Protocol):
    """A backend that keeps removed vectors until compacted (optional): :meth:`purge` drops them, so that a
    privacy-complete delete leaves none in its next checkpoint."""

    def purge(self) -> None: ...


class BackendFactory(Protocol):
    """What the backend registry resolves to: usually a backend class with an ``open`` classmethod."""

    def open(self, context: BackendContext) -> VectorBackend: ...


def is_backend_factory(obj: object) -> bool:
    """The registry's protocol check: a class that opens and has every :class:`VectorBackend` method."""
    members = ("open", "kinds", "count", "upsert", "remove", "search", "similarity", "checkpoint", "close", "on_put")
    return isinstance(obj, type) and all(callable(getattr(obj, name, None)) for name in (*members, "on_delete"))


def best_per_row(rows: Sequence[Labels], scores: Sequence[np.ndarray], kinds: Sequence[str], k: int) -> VectorHits:
    """Merge per-kind answers of one query: the best entry of each row (ties: the first kind given, then
    the lower row), padding (-1) dropped, the k best. Shared by backends that search kind by kind."""
    if not rows:
        return VectorHits(np.empty(0, np.int64), np.empty(0, np.float32), [])
    labels = np.concatenate(rows)
    values = np.concatenate(scores)
    source = np.concatenate([np.full(len(r), i) for i, r in enumerate(rows)])
    order = np.lexsort((labels, -values))
    _, first = np.unique(labels[order], return_index=True)  # best entry of each row
    best = order[np.sort(first)]
    best = best[labels[best] >= 0][:k]
    return VectorHits(labels[best], values[best].astype(np.float32), [kinds[int(source[i])] for i in best])
