"""The engine: one configurable object that adds, searches, gets and deletes items.

Layout of an index folder::

    store.sqlite   items, vectors, settings, change log (the source of truth)
    media/         accepted images, content-addressed
    index/         checkpoint of the vector indexes (derived; rebuilt when missing)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .encoders import Content, Encoder, create_encoder
from .errors import ConfigError, NotFoundError, ValidationError
from .filters import AttributeTable
from .imaging import load_image
from .ingest.prepare import AddReport, dedupe, encode_entries, load_media
from .media import MediaStore
from .modes import get_mode
from .records import Hits, Item, Query, Target, VectorKind, primary_vector
from .results import SearchResult
from .rwlock import RWLock
from .space import VectorSpace
from .store.sqlite import SCHEMA_VERSION, SQLiteStore, StoredItem

DEFAULT_ENCODER = "offline"
DEFAULT_INDEX = "auto"
BATCH = 256


class ChangeListener(Protocol):
    """Told about every committed write, inside the engine's write lock."""

    def on_put(self, stored: Sequence[StoredItem]) -> None: ...

    def on_delete(self, rows: Sequence[int]) -> None: ...


class Engine:
    """A multimodal index in one folder. Use :meth:`open`; close it (or use ``with``) when done."""

    def __init__(self, path: Path, store: SQLiteStore, encoder: Encoder, space: VectorSpace) -> None:
        self.path = path
        self.store = store
        self.encoder = encoder
        self.space = space
        self.media = MediaStore(path)
        self._lock = RWLock()  # searches share it (read), writes hold it alone
        self._rows: dict[str, int] = {}
        self._ids: dict[int, str] = {}
        self._attrs: dict[int, dict[str, Any]] = {}
        self.attributes = AttributeTable()
        self._listeners: list[ChangeListener] = []
        self._plugins: dict[str, Any] = {}
        self._plugin_mutex = threading.RLock()  # a plugin may need another plugin while it loads
        for item_id, row, attrs in store.id_rows():
            self._remember(item_id, row, attrs)

    # -- lifecycle ----------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        encoder: str | Encoder | None = None,
        dim: int | None = None,
        index: str | None = None,
        index_options: dict[str, Any] | None = None,
    ) -> Engine:
        """Open (or create) the index folder ``path``; a new one takes the given settings, an
        existing one must match any setting given."""
        root = Path(path)
        store = SQLiteStore(root / "store.sqlite")
        try:
            enc, settings = _open_encoder(store, encoder, dim, index, index_options)
            space = VectorSpace.open(root / "index", store, enc.dim, settings["index"], settings["index_options"])
            store.set_meta("settings", settings)  # saved once the settings are known to work
        except BaseException:
            store.close()
            raise
        return cls(root, store, enc, space)

    def close(self) -> None:
        """Checkpoint the derived indexes and close the store."""
        with self._lock:
            self.checkpoint()
            for plugin in self._plugins.values():
                if hasattr(plugin, "close"):
                    plugin.close()
            self.store.close()

    def checkpoint(self) -> None:
        """Save the vector indexes so the next open needs no rebuild."""
        with self._lock:
            seq = self.store.last_seq()
            if seq != self.space.saved_seq:
                self.space.save(self.path / "index", seq)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes -------------------------------------------------------------------------------
    def add(self, items: Iterable[Item], *, base_dir: str | Path | None = None, progress: Any = None) -> AddReport:
        """Add or replace items. Bad items are rejected with a reason; the others are committed."""
        report, seen = AddReport(), set[str]()
        base = Path(base_dir) if base_dir is not None else None
        for chunk in _chunks(items, BATCH):
            chunk = dedupe(chunk, seen, report)
            entries = encode_entries(load_media(chunk, base, report), self.encoder, self.media)
            with self._lock:
                rows = self.store.put(entries)
                stored = [StoredItem(row, item, vecs) for row, (item, vecs) in zip(rows, entries, strict=True)]
                self.space.put(stored)
                for s in stored:
                    self._forget(s.row)
                    self._remember(s.item.id, s.row, dict(s.item.attributes))
                for listener in self._listeners:
                    listener.on_put(stored)
            report.added.extend(item.id for item, _ in entries)
            if progress is not None:
                progress(len(chunk))
        return report

    def delete(self, ids: Sequence[str]) -> int:
        """Delete items by id; returns how many existed."""
        with self._lock:
            rows = self.store.delete(list(ids))
            self.space.remove(rows)
            for listener in self._listeners:
                listener.on_delete(rows)
            for row in rows:
                self._forget(row)
        return len(rows)

    def subscribe(self, listener: ChangeListener) -> None:
        """Call ``listener.on_put`` / ``on_delete`` after every committed write (derived structures)."""
        self._listeners.append(listener)

    def plugin(self, name: str, factory: Callable[[Engine], Any]) -> Any:
        """A per-engine object (a trained model, a feedback log...) created once on first use."""
        plugin = self._plugins.get(name)
        if plugin is not None:
            return plugin
        # the read lock keeps writers out (a plugin that follows writes must not miss one while it loads) but
        # lets other searches run; the plugin mutex makes sure one thread builds it
        with self._lock.read(), self._plugin_mutex:
            if name not in self._plugins:
                self._plugins[name] = factory(self)
            return self._plugins[name]

    def row_of(self, item_id: str) -> int:
        """The row (index label) of an item id."""
        try:
            return self._rows[item_id]
        except KeyError:
            raise NotFoundError(f"no item with id {item_id!r}") from None

    def id_of(self, row: int) -> str:
        return self._ids[row]

    # -- rows: the integer labels that derived indexes (strategies, plugins) key items by ---------
    def find_row(self, item_id: str) -> int | None:
        """The row of an item id, or None when there is no such item (:meth:`row_of` raises instead)."""
        return self._rows.get(item_id)

    def find_id(self, row: int) -> str | None:
        """The item id of a row, or None when the row was deleted."""
        return self._ids.get(row)

    def all_rows(self) -> np.ndarray:
        """Every live row (a snapshot)."""
        with self._lock.read():
            return np.fromiter(self._ids.keys(), dtype=np.int64, count=len(self._ids))

    def attributes_of(self, row: int) -> Mapping[str, Any]:
        """The filterable attributes of a row (empty for a deleted row)."""
        return self._attrs.get(row, {})

    def match_rows(self, filters: Mapping[str, Any]) -> np.ndarray | None:
        """Sorted rows that satisfy ``filters`` (see :mod:`xmodal.filters`); None when there is no filter."""
        with self._lock.read():  # the attribute table changes under writes
            return self.attributes.match(filters)

    @contextmanager
    def attribute_table(self) -> Iterator[AttributeTable]:
        """The attribute table, held steady (writes wait) while the block runs."""
        with self._lock.read():
            yield self.attributes

    def _remember(self, item_id: str, row: int, attrs: dict[str, Any]) -> None:
        self._rows[item_id], self._ids[row], self._attrs[row] = row, item_id, attrs
        self.attributes.add(row, attrs)

    def _forget(self, row: int) -> None:
        item_id = self._ids.pop(row, None)
        if item_id is not None:
            del self._rows[item_id]
            self.attributes.remove(row, self._attrs.pop(row))

    # -- reads --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._rows

    def get(self, item_id: str) -> Item:
        stored = self.store.get(item_id)
        if stored is None:
            raise NotFoundError(f"no item with id {item_id!r}")
        return stored.item

    def vectors(self, item_id: str) -> dict[VectorKind, np.ndarray]:
        stored = self.store.get(item_id)
        if stored is None:
            raise NotFoundError(f"no item with id {item_id!r}")
        return stored.vectors

    def encode_query(self, query: Query, base_dir: Path | None = None) -> np.ndarray:
        """The query's vector: its text, its image, or the renormalised mean of both."""
        image = load_image(query.image, base_dir, item="query") if query.image is not None else None
        vector: np.ndarray = self.encoder.encode_queries([Content(text=query.text or None, image=image)])[0]
        return vector

    def search(
        self,
        query: Query | str,
        *,
        base_dir: Path | None = None,
        log: bool = False,
        explain: bool = False,
        **options: Any,
    ) -> SearchResult:
        """Search with a :class:`Query` (or a text plus ``Query`` keyword options).

        ``log=True`` records the impression and sets ``query_id`` for :meth:`feedback`;
        ``explain=True`` returns the plan, each strategy's contribution and the ranker's features.
        """
        start = time.perf_counter()
        if isinstance(query, str):
            query = Query(text=query, **options)
        handler = None if query.mode == "dense" else get_mode(query.mode)
        vector = self.encode_query(query, base_dir)
        encode_ms = (time.perf_counter() - start) * 1000
        details: dict[str, Any] = {"mode": query.mode}
        if handler is None:
            hits = self.search_vector(vector, k=query.k, target=query.target, filters=query.filters)
        elif log or explain:
            from .ltr.explain import explained

            hits, details = explained(handler, self, query, vector)
        else:
            hits = handler(self, query, vector)
        hits, items = self._items_for(hits)
        took_ms = (time.perf_counter() - start) * 1000
        result = SearchResult(hits, items, took_ms, encode_ms, None, details if explain else None)
        if log:
            result = replace(result, query_id=self._log_search(query, result, details))
        return result

    def log_impression(
        self,
        query: Query | str,
        result: SearchResult,
        *,
        user: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> str:
        """Record that ``result`` was shown for ``query``; returns the query id for :meth:`feedback`."""
        details = dict(result.explain or {"mode": query.mode if isinstance(query, Query) else "dense"})
        if context:
            details["context"] = {**details.get("context", {}), **context}
        if isinstance(query, str):
            query = Query(text=query, user=user)
        elif user is not None:
            query = replace(query, user=user)
        return self._log_search(query, result, details)

    def _log_search(self, query: Query, result: SearchResult, details: dict[str, Any]) -> str:
        from .feedback.log import feedback_log

        return feedback_log(self).log_impression(
            query.text or "",
            result.hits.ids.tolist(),
            scores=result.hits.scores.tolist(),
            provenance=list(result.hits.provenance),
            user=query.user,
            context=details.get("context"),
            plan=details.get("plan", ()),
            mode=str(details.get("mode", query.mode)),
        )

    def feedback(
        self,
        query_id: str,
        item_id: str,
        event: str = "click",
        *,
        position: int | None = None,
        value: float | None = None,
    ) -> None:
        """Record a user action (click, like, add_to_cart, play) on an item shown for ``query_id``.

        Raises :class:`NotFoundError` for an unknown query id and :class:`ValidationError` for an item
        not shown for it, an unknown event type or a position out of range.
        """
        from .feedback.log import feedback_log

        feedback_log(self).record_event(query_id, item_id, event, position=position, value=value)

    def search_vector(
        self,
        vector: np.ndarray,
        *,
        k: int = 10,
        target: Target | str = Target.ANY,
        filters: Mapping[str, Any] | None = None,
    ) -> Hits:
        """Top-k items for an already encoded query vector; filters apply before the cut."""
        vec = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        if vec.shape[1] != self.space.dim:
            raise ValidationError(
                "vector",
                f"has {vec.shape[1]} dimensions, the index has {self.space.dim}",
                "encode with the index's encoder",
            )
        with self._lock.read():
            allowed = self.attributes.match(filters or {})
            labels, scores, kinds = self.space.search(vec, k, Target.parse(target), allowed)[0]
            ids = [self._ids[int(label)] for label in labels]
        return Hits(_id_array(ids), scores.astype(np.float32), tuple(f"dense:{kind.value}" for kind in kinds))

    def similar(self, item_id: str, *, k: int = 10, target: Target | str = Target.ANY) -> SearchResult:
        """The items closest to a stored item (the item itself left out), by its primary vector."""
        start = time.perf_counter()
        vector = primary_vector(self.vectors(item_id))
        if vector is None:
            raise ValidationError("id", f"item {item_id!r} has no vectors", "re-add the item")
        hits = self.search_vector(vector, k=k + 1, target=target)
        keep = [i for i, hit_id in enumerate(hits.ids.tolist()) if hit_id != item_id][:k]
        hits = Hits(hits.ids[keep], hits.scores[keep], tuple(f"similar:{hits.provenance[i]}" for i in keep))
        hits, items = self._items_for(hits)
        return SearchResult(hits, items, (time.perf_counter() - start) * 1000, 0.0)

    def _items_for(self, hits: Hits) -> tuple[Hits, tuple[Item, ...]]:
        """The hits' items; a hit deleted since the index answered is dropped, not an error."""
        rows = [self._rows.get(i, -1) for i in hits.ids.tolist()]
        found = self.store.get_rows([r for r in rows if r >= 0])
        keep = [j for j, row in enumerate(rows) if row in found]
        if len(keep) < len(rows):
            hits = hits.take(keep)
        return hits, tuple(found[rows[j]].item for j in keep)

    def info(self) -> dict[str, Any]:
        """Counts per modality and per vector kind, encoder, dimension and index kind."""
        return {
            "path": str(self.path),
            "items": len(self),
            "modalities": self.store.counts_by_modality(),
            "vectors": {kind.value: len(ix) for kind, ix in self.space.indexes.items()},
            "encoder": self.encoder.config(),
            "dim": self.space.dim,
            "index": self.space.index_kind,
            "attributes": self.attributes.attributes(),
            "schema_version": SCHEMA_VERSION,
        }


def _id_array(ids: list[str]) -> np.ndarray:
    out = np.empty(len(ids), dtype=object)
    out[:] = ids
    return out


def _chunks(items: Iterable[Item], size: int) -> Iterable[list[Item]]:
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _open_encoder(
    store: SQLiteStore,
    encoder: str | Encoder | None,
    dim: int | None,
    index: str | None,
    index_options: dict[str, Any] | None,
) -> tuple[Encoder, dict[str, Any]]:
    """The index's encoder and settings: stored settings (checked against any given) or new ones (saved)."""
    saved = store.get_meta("settings")
    if saved is None:
        enc = (
            encoder
            if isinstance(encoder, Encoder)
            else create_encoder(encoder or DEFAULT_ENCODER, **({"dim": dim} if dim else {}))
        )
        settings = {"encoder": enc.config(), "index": index or DEFAULT_INDEX, "index_options": index_options or {}}
        return enc, settings
    given = {
        "encoder": (encoder if isinstance(encoder, str) else None, saved["encoder"]["name"]),
        "dim": (dim, saved["encoder"]["dim"]),
        "index": (index, saved["index"]),
    }
    for what, (asked, have) in given.items():
        if asked is not None and asked != have:
            raise ConfigError(
                f"this index was created with {what} {have!r}, not {asked!r}; use a new folder to change it"
            )
    if isinstance(encoder, Encoder):
        enc = encoder
    else:
        options = {k: v for k, v in saved["encoder"].items() if k != "name"}
        enc = create_encoder(saved["encoder"]["name"], **options)
    if enc.config() != saved["encoder"]:
        raise ConfigError(f"encoder {enc.config()} does not match the index's {saved['encoder']}")
    return enc, dict(saved)
