"""The extension seam: what a plug-in (learning to rank, generative retrieval, a third party's) implements,
and the narrow view of the engine it gets.

An :class:`Extension` is named in the index settings and opened with the engine (the server opens it in
its lifespan, so the first request finds it ready). It provides search modes (each returns its hits and
its explanation together, a :class:`ModeResult`) and keeps derived state under its own folder. It learns
about writes through ``on_put`` / ``on_delete``, whichever process made them: the engine replays the
store's change log after the sequence number ``open`` returned, and tails that log while it runs.
``checkpoint`` writes only when something changed since the last one.

An extension sees an :class:`EngineView` — catalog look-ups, vectors of rows, vector search, the change
log, query encoding, the feedback log — never the engine's private fields; typing against this protocol
(which lives below the engine) keeps the import graph acyclic.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from .records import Hits, Item, Query, Target
from .registry import Registry
from .store.base import StoredItem

if TYPE_CHECKING:
    from .feedback.base import FeedbackStore
    from .filters import AttributeTable
    from .media import Media
    from .store.textindex import TextIndex


@dataclass(frozen=True, slots=True)
class ModeResult:
    """What a search mode returns: its hits and what it did (the plan, contributions, features...)."""

    hits: Hits
    details: dict[str, Any] = field(default_factory=dict)


class Mode(Protocol):
    """A search mode of an opened extension: the query and its encoded vector in, hits and details out."""

    def __call__(self, query: Query, vector: np.ndarray) -> ModeResult: ...


@runtime_checkable
class BatchMode(Mode, Protocol):
    """A mode that also answers many queries in one call: ``many(queries, vectors)`` returns, for each query
    (and its row of ``vectors``), what calling the mode on the queries one by one, in order, returns."""

    def many(self, queries: Sequence[Query], vectors: np.ndarray) -> list[ModeResult]: ...


class EngineView(Protocol):
    """What an extension may ask of the engine it is opened with."""

    @property
    def path(self) -> Path: ...

    @property
    def dim(self) -> int: ...

    @property
    def encoder_config(self) -> dict[str, Any]: ...

    @property
    def feedback_log(self) -> FeedbackStore: ...

    @property
    def fulltext(self) -> TextIndex: ...

    @property
    def media(self) -> Media: ...

    def __len__(self) -> int: ...

    def __contains__(self, item_id: object) -> bool: ...

    # -- catalog look-ups (rows are the integer labels derived structures key items by) ------------
    def find_row(self, item_id: str) -> int | None: ...

    def find_id(self, row: int) -> str | None: ...

    def row_of(self, item_id: str) -> int: ...

    def all_rows(self) -> np.ndarray: ...

    def get(self, item_id: str) -> Item: ...

    def items_of(self, rows: Sequence[int], *, with_vectors: bool = False) -> dict[int, StoredItem]: ...

    def item_meta(self, rows: Sequence[int]) -> dict[int, tuple[float, str]]:
        """(creation time, modality) of each row, without reading whole items."""
        ...

    def item_texts(self, rows: Sequence[int]) -> dict[int, tuple[str, str]]:
        """(title, text) of each row, without reading whole items."""
        ...

    def iter_items(self) -> Iterator[StoredItem]: ...

    def attributes_of(self, row: int) -> Mapping[str, Any]: ...

    def match_rows(self, filters: Mapping[str, Any]) -> np.ndarray | None: ...

    def attribute_table(self) -> AbstractContextManager[AttributeTable]: ...

    # -- vectors -----------------------------------------------------------------------------------
    def vector_kinds(self) -> list[str]:
        """The vector kinds a query can target (those the encoder declares, then any other the index holds)."""
        ...

    def vector_count(self, kind: str) -> int:
        """How many vectors of ``kind`` (a vector kind name; 0 when none)."""
        ...

    def similarity(self, vector: np.ndarray, rows: Sequence[int], kind: str) -> np.ndarray: ...

    def search_vector(
        self,
        vector: np.ndarray,
        *,
        k: int = 10,
        target: str = Target.ANY,
        filters: Mapping[str, Any] | None = None,
    ) -> Hits: ...

    def search_vectors(
        self,
        vectors: np.ndarray,
        *,
        k: int = 10,
        target: str = Target.ANY,
        filters: Mapping[str, Any] | None = None,
    ) -> list[Hits]:
        """:meth:`search_vector` for a matrix of query vectors (one row each), in one backend call."""
        ...

    def encode_query(self, query: Query, base_dir: Path | None = None) -> np.ndarray: ...

    def encode_queries(self, queries: Sequence[Query], base_dir: Path | None = None) -> np.ndarray: ...

    # -- the change log ----------------------------------------------------------------------------
    def last_seq(self) -> int: ...

    def applied_seq(self) -> int:
        """The store sequence the engine has applied to its derived structures (what a checkpoint may
        record); :meth:`last_seq` can be ahead of it with another process's writes not applied yet."""
        ...

    def changes_since(self, seq: int) -> list[tuple[int, str]]: ...


@runtime_checkable
class Extension(Protocol):
    """A plug-in opened with the engine. ``MODES`` names the modes it provides, with one line each (listed
    without opening anything); :meth:`modes` returns them bound to the opened extension."""

    name: str
    MODES: ClassVar[Mapping[str, str]]

    def open(self, view: EngineView, folder: Path) -> int:
        """Load derived state from ``folder``; return the store sequence that state reflects (0: none)."""
        ...

    def modes(self) -> Mapping[str, Mode]: ...

    def on_put(self, stored: Sequence[StoredItem]) -> None: ...

    def on_delete(self, rows: Sequence[int]) -> None: ...

    def checkpoint(self) -> None:
        """Persist derived state, only when it changed since the last checkpoint."""
        ...

    def close(self) -> None: ...


_CALLER: ContextVar[str | None] = ContextVar("xmodal_guard_caller", default=None)


@contextmanager
def as_caller(name: str | None) -> Iterator[None]:
    """Run the searches inside for the API key ``name``: the screens (guards) apply its policy. A server wraps
    each engine call it makes for a keyed caller in this, on the thread that makes it."""
    token = _CALLER.set(name)
    try:
        yield
    finally:
        _CALLER.reset(token)


def current_caller() -> str | None:
    """The API key name set by :func:`as_caller` (None: the deployment's own policy)."""
    return _CALLER.get()


_QUERY_BASE: ContextVar[Path | None] = ContextVar("xmodal_query_base", default=None)


@contextmanager
def query_base(base_dir: Path | None) -> Iterator[None]:
    """The folder a query's media paths are relative to, while the screens check it (a screen that reads a
    query image loads it with :func:`current_query_base`)."""
    token = _QUERY_BASE.set(base_dir)
    try:
        yield
    finally:
        _QUERY_BASE.reset(token)


def current_query_base() -> Path | None:
    """The folder set by :func:`query_base` (None: paths are relative to the working folder)."""
    return _QUERY_BASE.get()


@runtime_checkable
class Screen(Protocol):
    """An extension that checks each search (the guards): the query before it — its text may be cleaned, or
    the query refused with :class:`~xmodal.errors.GuardBlocked` — and the hits after it, which it may drop or
    annotate (findings by item id) but never add to."""

    def screen_query(self, query: Query, caller: str | None) -> tuple[Query, dict[str, Any]]: ...

    def screen_hits(
        self, hits: Hits, items: tuple[Item, ...], caller: str | None, safe: str | None = None
    ) -> tuple[Hits, tuple[Item, ...], dict[str, list[dict[str, str]]]]: ...

    def item_status(self, item_id: str) -> dict[str, Any] | None: ...

    def describe(self) -> dict[str, Any]: ...


@runtime_checkable
class Background(Protocol):
    """An extension with work on its own threads that may wait for the engine (a search takes its locks):
    :meth:`stop` ends that work and waits for it. The engine calls it when it closes, before it takes its
    locks, so the work is never left waiting for locks held by the close that waits for it."""

    def stop(self) -> None: ...


@runtime_checkable
class Ahead(Protocol):
    """An extension that can start its work on a chunk of an add before the chunk is encoded and committed
    (the guards scan it in another process meanwhile): :meth:`ahead` gets the chunk's items and the add's size
    (its item count, or the count so far when the items come from an iterator). A hint only: ``on_put`` still
    gets every item committed, and must hold the same for an item whatever ``ahead`` did or did not do."""

    def ahead(self, items: Sequence[Item], size: int) -> None: ...


class ExtensionHost(Protocol):
    """An engine as the adapters and an extension's own commands see it: its opened extensions by name."""

    def extension(self, name: str) -> Extension: ...


def _is_extension_class(obj: object) -> bool:
    return isinstance(obj, type) and all(hasattr(obj, a) for a in ("open", "modes", "on_put", "on_delete", "close"))


#: Extensions by name: ``xmodal.extensions`` entry points, or ``"package.module:Class"``.
EXTENSIONS: Registry[type[Extension]] = Registry("extensions", "extension", _is_extension_class)
EXTENSIONS.register("ltr", "xmodal.ltr.extension:LTRExtension")
EXTENSIONS.register("genret", "xmodal.genret.extension:GenretExtension")
EXTENSIONS.register("guards", "xmodal.guards.extension:GuardsExtension")

#: What a new index opens unless told otherwise.
DEFAULT_EXTENSIONS: tuple[str, ...] = ("ltr", "genret", "guards")
#: What an index saved before its settings listed extensions opened (before the guards existed).
LEGACY_EXTENSIONS: tuple[str, ...] = ("ltr", "genret")


def extension_class(name: str) -> type[Extension]:
    """The extension class registered (or installed, or importable) as ``name``."""
    return EXTENSIONS.resolve(name)
