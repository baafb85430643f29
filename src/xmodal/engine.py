"""The engine: one configurable object that adds, searches, gets and deletes items.

Layout of an index folder::

    store.sqlite   items, vectors, settings, change log, feedback log (the source of truth)
    media/         accepted images, content-addressed
    index/         checkpoint of the vector indexes (derived; rebuilt when missing)
    <extension>/   each extension's derived state (ltr/, genret/, ...)

The engine sees its storage through two seams: a :class:`~xmodal.store.base.Store` (the source of truth;
:class:`SQLiteStore` here) and a :class:`~xmodal.backends.VectorBackend` chosen by name from the backend
registry (``local`` by default), which gets filters as a parsed :class:`~xmodal.filters.FilterExpr`.

Every derived structure — the in-memory catalog, the vector backend, each extension — follows the store's
change log (:mod:`xmodal.changes`): the engine applies its own writes at once and, before a read, the
writes another process committed (a CLI ``add`` while ``serve`` runs, a second server on the folder).

Locking: one write at a time (``_writing``: the store commit, then the derived structures). The catalog and
the vector backend change under the readers–writer lock held alone, and only for that step; the extensions
hear of a write after it is released, under their own locks, so a search never waits for an extension's work
(a dense search not at all; a search in an extension's mode for that extension's own lock at most). A write
returns once every structure reflects it: an acknowledged write is searchable in every mode.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .audit import current_actor
from .backends import DEFAULT_BACKEND, BackendContext, RowListing, SharedCopy, VectorBackend, open_backend
from .backends import epoch as checkpoint_epoch
from .catalog import Catalog
from .changes import replay
from .collection import Collection, Fetched, Page
from .cursor import Cursors
from .encoders import Encoder, kinds_of
from .erasure import Erasure, Traces, erase_traces, scrub
from .errors import ConfigError, DiskFull, NotFoundError, StorageError, ValidationError
from .export import BATCH as EXPORT_BATCH
from .export import ExportReport, write_export
from .extension import Extension, current_caller
from .extension_set import ExtensionSet
from .feedback.base import FeedbackStore
from .feedback.log import FeedbackLog
from .feedback.postgres_log import PostgresFeedbackLog
from .filters import AttributeTable
from .ingest.prepare import AddReport, Entry, chunks, dedupe, encode_entries, load_media
from .ingest.recordings import made_segments, segment_recordings, stale_segments, with_segments
from .ingest.vectors import check_vectors_arg, given_entries, unused_vectors
from .location import PostgresLocation, is_postgres, parse_postgres
from .media import Media, MediaStore
from .media_loaders import allow_media
from .migration.pg_space import pg_reindex_summary
from .migration.space import reindex_summary
from .records import SAFE_LEVELS, Hits, Item, Query, Target, primary_vector
from .results import SearchResult
from .rwlock import RWLock
from .screening import refuse
from .search_path import SearchParts, SearchPath
from .settings import DENSE, follow_encoder, open_settings
from .stale import stale
from .store.audit import AuditEntry
from .store.backup import Manifest, write_backup
from .store.base import Store
from .store.epoch import EPOCH_KEY
from .store.postgres import PostgresStore
from .store.postgres_backup import write_pg_backup
from .store.shared_settings import PostgresShared
from .store.space import space_guard
from .store.sqlite import SCHEMA_VERSION, SQLiteStore, StoredItem
from .store.textindex import TextIndex

BATCH = 256
log = logging.getLogger(__name__)


class Engine:
    """A multimodal index in one folder. Use :meth:`open`; close it (or use ``with``) when done."""

    def __init__(
        self,
        path: Path,
        store: Store,
        encoder: Encoder,
        settings: dict[str, Any],
        *,
        media: Media | None = None,
        location: PostgresLocation | None = None,
    ) -> None:
        """Use :meth:`open`."""
        self.path = path
        #: where a ``postgres://`` index lives (its URL's parts); None for an index folder
        self.location = location
        self.store = store
        self.encoder = encoder
        self.settings = settings
        self.media: Media = media if media is not None else MediaStore(path)
        self._prefetch = _prefetch(encoder)  # the text model loads while the catalog and indexes do
        self._lock = RWLock()  # searches share it; the catalog and the vector backend change under it alone
        self._writing = threading.RLock()  # one write or catch-up at a time, extension work included
        self._moved = threading.Condition()  # notified when the catalog and the backend reflect a newer change
        self._closed = False
        self._seq = store.last_seq()  # read before the catalog: a change made meanwhile is applied again
        self._settled = self._seq  # every extension has been told of the changes up to here
        self._catalog = Catalog.load(store)
        self._tell_repository()
        #: The index's vector epoch (changed by ``xmodal reindex --switch``): a checkpoint of another is not
        #: loaded, and this process's writes are refused once the index has switched past it.
        self.epoch = store.get_meta(EPOCH_KEY)
        #: the encoder options given at the open that the index does not record (a key): a switch followed
        #: (:meth:`follow_switch`) passes them on to the new encoder where it takes them
        self.encoder_options: dict[str, Any] = {}
        self._lost: str | None = None  # why this engine cannot serve: a switch it could not follow
        #: The vector backend named by ``settings["backend"]`` (:mod:`xmodal.backends`); it resolves
        #: filters through the catalog (its attribute table, built on the first filter) when it filters by rows.
        self.backend: VectorBackend
        self.backend, self._shared_vectors = self._open_backend(encoder, settings, self.epoch)
        self._vectors_behind: int | None = None  # a change of ours the shared copy may lack (its server was down)
        #: an engine component, not derived: in the store itself when it is shared (PostgreSQL), so every server's
        #: learners hear of every server's feedback
        self.feedback_log: FeedbackStore = (
            PostgresFeedbackLog(store) if isinstance(store, PostgresStore) else FeedbackLog(path / "store.sqlite")
        )
        self._collection = Collection(
            store,
            self._catalog,
            self._lock,
            self._writing,
            refresh=functools.partial(self.refresh, extensions=False),
            commit=self._commit,
            delete=self.delete,
            cursors=Cursors(settings["id"]),
        )
        self._search = self._search_path()
        try:
            self._catch_up_backend()
            self._extensions = ExtensionSet.open(settings["extensions"], self)
        except BaseException:
            self.backend.close()
            self.feedback_log.close()
            raise

    def _open_backend(self, encoder: Encoder, settings: dict[str, Any], epoch: object) -> tuple[VectorBackend, bool]:
        """The vector backend of ``settings`` and ``encoder`` for the vector epoch ``epoch`` (a checkpoint of
        another epoch is discarded first; the store's writes are checked against it from now on), and whether
        it keeps one copy for every process of a shared store (Milvus on PostgreSQL: this process then applies
        its own writes only, and catches up from the change the shared copy records)."""
        if isinstance(self.store, SQLiteStore | PostgresStore):
            self.store.epoch = epoch
        checkpoint_epoch.discard_other(self.path / "index", epoch)
        shared = PostgresShared(self.store, epoch) if isinstance(self.store, PostgresStore) else None
        backend = open_backend(
            settings.get("backend", DEFAULT_BACKEND),
            BackendContext(
                self.path / "index", encoder.dim, settings["index"], settings["index_options"], self._catalog, shared
            ),
        )
        return backend, isinstance(backend, SharedCopy) and backend.shared is not None

    def _search_path(self) -> SearchPath:
        return SearchPath(
            SearchParts(
                store=self.store,
                catalog=self._catalog,
                lock=self._lock,
                backend=self.backend,
                encoder=self.encoder,
                collection=self._collection,
                feedback_log=self.feedback_log,
                refresh=self.refresh,
                default_mode=lambda: self.default_mode,
                mode_of=lambda name: self._extensions.mode(name, self.modes()),
                screen_query=lambda query, caller: self._extensions.screen_query(query, caller),
                screen_hits=lambda hits, items, caller, safe: self._extensions.screen_hits(hits, items, caller, safe),
            )
        )

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
        extensions: Sequence[str] | None = None,
        default_mode: str | None = None,
        backend: str | None = None,
        media: Sequence[str] | None = None,
        encoder_options: Mapping[str, Any] | None = None,
    ) -> Engine:
        """Open (or create) the index folder ``path``; a new one takes the given settings, an existing one
        must match any setting given. ``extensions`` (a new index: ``["ltr", "genret", "guards"]``) are opened now.
        ``backend`` names the vector backend of a new index (default ``local``; see :mod:`xmodal.backends`).
        ``media`` names media loaders by dotted path (``"package.module:Loader"``) that items and queries may
        use; they are added to the index setting ``media`` (no catalog line or request can name another).
        ``encoder_options`` are the options of the encoder named by ``encoder`` (``{"model": ..., "url": ...}``,
        see :mod:`xmodal.encoders.backends`); an existing index takes those it does not record (a key, a device).

        ``path`` may be a ``postgres://`` URL (:mod:`xmodal.location`): the store is then PostgreSQL, shared by
        every server given the URL, and this process keeps only derived data in its own state folder."""
        media_store: Media | None = None
        where: PostgresLocation | None = None
        if is_postgres(path):
            where = parse_postgres(str(path))
            root, media_store = where.state, where.open_media()
            if backend is None and where.backend is not None and where.backend != DEFAULT_BACKEND:
                backend, index_options = where.backend, {**where.backend_options, **(index_options or {})}
            with space_guard(root):
                root.mkdir(parents=True, exist_ok=True)
            store: Store = PostgresStore(where.dsn, where.schema)
        else:
            root = Path(path)
            store = SQLiteStore(root / "store.sqlite")
        try:
            enc, settings = open_settings(
                store,
                encoder=encoder,
                dim=dim,
                index=index,
                index_options=index_options,
                extensions=extensions,
                default_mode=default_mode,
                backend=backend,
                media=media,
                encoder_options=encoder_options,
            )
            allow_media(settings.get("media", []))
            engine = cls(root, store, enc, settings, media=media_store, location=where)
            engine.encoder_options = dict(encoder_options or {})
            if isinstance(store, PostgresStore):
                store.listen(engine._heard)  # every server learns of every write at once (LISTEN/NOTIFY)
                store.follow("switch", engine._switch_heard)  # and of a reindex switch (it reopens on it)
            if store.get_meta("settings") != settings:
                try:
                    store.set_meta("settings", settings)  # saved once known to work; never rewritten unchanged
                except DiskFull as exc:  # reads work on a full disk; the next open with space records them
                    log.warning("settings not recorded: %s", exc)
            return engine
        except BaseException:
            store.close()
            raise

    def close(self) -> None:
        """Checkpoint the derived state (what changed) and close the store; a second close does nothing."""
        if not self._closed:  # background work may be waiting for the locks taken below: it ends first
            self._extensions.stop()
        with self._writing, self._lock:
            if self._closed:
                return
            self._closed = True
            if self._prefetch is not None:
                self._prefetch.join()  # no model load left running past the engine
            try:
                self.checkpoint()
            except DiskFull as exc:  # derived state: the next open replays the change log from the last one
                log.warning("checkpoint not saved: %s", exc)
            finally:  # whatever the checkpoint raised, every part is closed (each in turn, even if one fails)
                with contextlib.ExitStack() as parts:
                    for close in (
                        self.store.close,
                        self.feedback_log.close,
                        self.backend.close,
                        self._extensions.close,
                    ):
                        parts.callback(close)  # run last-registered first: extensions, backend, log, store

    def checkpoint(self) -> None:
        """Save the vector indexes and each extension's state, where they changed since the last save. The
        sequence recorded is the one applied here (never the store's newest: another process's writes this
        engine has not applied are not in the state saved, and the next open replays them)."""
        with self._writing, space_guard(self.path):  # no write in flight: every extension reflects the sequence
            if self._shared_vectors:
                try:
                    self._catch_up_shared()
                except StorageError as exc:  # its record stays behind: the next catch-up (any process's) applies it
                    log.warning("the shared vectors were not caught up: %s", exc)
            else:
                with self._lock:
                    checkpoint_epoch.before_write(self.path / "index", self.epoch)
                    self.backend.checkpoint(self._seq)  # writes nothing when unchanged
                    checkpoint_epoch.after_write(self.path / "index", self.epoch)
            self._extensions.checkpoint()

    def backup(self, destination: str | Path) -> Manifest:
        """Back up this index into the new folder ``destination`` while it serves and writes go on (see
        :mod:`xmodal.store.backup`; a ``postgres://`` index: :mod:`xmodal.store.postgres_backup`, its schema
        and its media, from a folder or a bucket); :func:`xmodal.restore.restore` (``restore_pg``) puts it back."""
        if self.location is not None:
            return write_pg_backup(self.location, Path(destination), media=self.media)
        return write_backup(self.path, Path(destination))

    def rebuild(self) -> None:
        """Rebuild the derived structures from the store and checkpoint them (``xmodal check --repair``):
        every stored item is applied again to the catalog and the vector backend, rows the backend holds
        that the store does not are removed, and every extension is caught up."""
        with self._writing:
            with self._lock:
                seq = self.store.last_seq()  # read first: a change committed meanwhile is applied again later
                replay(self, 0, self._catalog, self.backend)
                self._prune_backend()
                if self._shared_vectors:  # another process's write the pruning raced with: put back
                    replay(self, seq, self.backend)
                self._advance(max(self._seq, seq))
            self._sync()
            self.checkpoint()

    def _catch_up_backend(self) -> None:
        """Bring the vector backend from the sequence its checkpoint reflects up to the store's. A checkpoint
        of changes the store does not hold (the store restored from a backup beside a newer checkpoint) is
        not trusted: the backend is rebuilt from the store, and the rows the store lacks are removed."""
        if self._shared_vectors:
            self._catch_up_shared()
            return
        saved = self.backend.saved_seq
        if saved <= self._seq:
            replay(self, saved, self.backend)
            return
        log.warning(
            "%s: the vector checkpoint reflects store change %d, the store ends at %d (restored from a backup?); "
            "rebuilding it from the store",
            self.path,
            saved,
            self._seq,
        )
        replay(self, 0, self.backend)
        self._prune_backend()

    def _catch_up_shared(self) -> None:
        """Bring the shared vector copy up to the store: every change after the one it records is applied again
        from the store's current items (harmless where already applied), then the record is advanced to the
        store's last change read before them (never lowered). A store restored behind the record: from 0."""
        saved = self.backend.saved_seq
        last = self.store.last_seq()
        if saved > last:
            log.warning(
                "%s: the shared vectors record change %d, the store ends at %d: re-applied", self.path, saved, last
            )
            saved = 0
        if saved < last:
            last = replay(self, saved, self.backend)
        self.backend.checkpoint(last)
        self._vectors_behind = None

    def _vectors_catch_up(self) -> None:
        """Apply our changes the shared vector copy missed while its server was down (under ``_writing``)."""
        if self._vectors_behind is not None:
            replay(self, self._vectors_behind, self.backend)
            self._vectors_behind = None

    def _prune_backend(self) -> None:
        """Remove the rows the vector backend holds that the store does not (where the backend lists them)."""
        if isinstance(self.backend, RowListing):
            live = set(self._catalog.rows().tolist())
            for kind in self.backend.kinds():
                self.backend.remove([row for row in self.backend.rows(kind).tolist() if row not in live])

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes -------------------------------------------------------------------------------
    def add(
        self,
        items: Iterable[Item],
        *,
        base_dir: str | Path | None = None,
        progress: Any = None,
        vectors: Mapping[str, Any] | None = None,
    ) -> AddReport:
        """Add or replace items. Bad items are rejected with a reason; the others are committed.

        ``vectors`` maps an item id to the caller's own vectors for it, stored instead of encoding the item:
        ``{kind: vector}`` for kinds the encoder declares, or one vector for every kind the item would get.
        Each must have the index's dimension and finite values; it is L2-normalised."""
        report, seen, given = AddReport(), set[str](), check_vectors_arg(vectors)
        base = Path(base_dir) if base_dir is not None else None
        size = len(items) if isinstance(items, Sized) else None
        for chunk in chunks(items, BATCH):
            chunk = dedupe(chunk, seen, report)
            self._extensions.ahead(chunk, size if size is not None else len(seen))  # the guards' scan starts
            own = [item for item in chunk if item.id in given]
            chunk = [item for item in chunk if item.id not in given]
            encoder = self.encoder  # the one these vectors are of: the commit refuses them if it changed since
            loaded, recordings = segment_recordings(load_media(chunk, base, report), encoder, report)
            means = {item_id: {rec.medium: rec.mean()} for item_id, rec in recordings.items() if rec.segments}
            entries = encode_entries(loaded, encoder, self.media, report, made=means)
            entries = with_segments(entries, recordings, encoder)  # a recording embedded in time segments
            if own:
                loaded = load_media(own, base, report)
                entries += given_entries(loaded, given, kinds_of(encoder), encoder.dim, self.media, report)
            self._commit(entries, encoder)
            report.added.extend(item.id for item, _ in entries)
            if recordings:  # a recording added again: the segments it had that this add did not write go
                old = {parent: made_segments(parent, self._children(parent)) for parent in recordings}
                stale = stale_segments(recordings, entries, old)
                if stale:
                    self.delete(stale)
            if progress is not None:
                progress(len(chunk) + len(own))
        report.rejected.extend(unused_vectors(given, seen))
        self._tell_repository()
        return report

    def _children(self, parent: str) -> list[Item]:
        """The items whose parent is ``parent`` in the index (unscreened: for the write path)."""
        found: list[Item] = []
        cursor: str | None = None
        while True:
            page = self._collection.scroll({"parent": parent}, limit=1000, cursor=cursor)
            found += page.items
            cursor = page.next_cursor
            if cursor is None:
                return found

    def add_encoded(self, entries: Sequence[Entry]) -> list[str]:
        """Commit items encoded elsewhere (by this index's encoder, on another process or machine: see
        :mod:`xmodal.ingest.ray_ingest`) with their media already in :attr:`media`, in one write; returns their
        ids. Each vector must be of a kind the encoder declares and of the index's dimension."""
        kinds = kinds_of(self.encoder)
        for item, vectors in entries:
            for kind, vector in vectors.items():
                if kind not in kinds or vector.shape != (self.backend.dim,):
                    raise ValidationError(
                        f"vectors.{kind}",
                        f"is not a {self.backend.dim}-d vector of a kind this index's encoder makes",
                        "encode the item with this index's encoder",
                        item=item.id,
                    )
        if entries:
            self._commit(entries)
            self._tell_repository()
        return [item.id for item, _ in entries]

    def _tell_repository(self) -> None:
        """Tell an encoder that wants to know (``set_repository``) the modalities the index holds."""
        tell = getattr(self.encoder, "set_repository", None)
        if callable(tell):
            tell(list(self.store.counts_by_modality()))

    def delete(self, ids: Sequence[str], *, purge_feedback: bool = False) -> int:
        """Delete items by id, and their segments with them (one transaction); returns how many of ``ids``
        existed. Privacy-complete (:mod:`xmodal.erasure`): no file of the index keeps their text, media or
        vectors; the admin audit log records the actor (:func:`~xmodal.audit.current_actor`), the ids and the
        time; ``purge_feedback`` also drops the feedback log's events of the items (else it keeps only their
        ids). :meth:`erase` names the actor and can leave the scrub for later."""
        return self.erase(ids, purge_feedback=purge_feedback)[0]

    def erase(
        self, ids: Sequence[str], *, actor: str | None = None, purge_feedback: bool = False, scrub: bool = True
    ) -> tuple[int, Erasure]:
        """:meth:`delete`, recorded under ``actor`` (default :func:`~xmodal.audit.current_actor`); ``scrub``
        (default) writes every derived structure without the items and leaves no old page behind
        (``scrub=False`` for each batch of a bulk delete, then :meth:`scrub` once). Returns how many of
        ``ids`` existed and what was cleaned besides the store (media files, feedback)."""
        options = {"purge_feedback": purge_feedback, "scrub": scrub}
        entry = AuditEntry(actor or current_actor(), "delete", options)
        with self._writing:
            before = self._seq
            erased = self.store.erase(list(ids), entry)
            self._apply(before, len(erased.rows), (), erased.rows)
            done = erase_traces(self._traces(), ids, erased, purge_feedback=purge_feedback, scrub_now=scrub)
        return erased.asked, done

    def scrub(self) -> None:
        """Leave no trace of the items deleted so far in the index folder (after deletes with ``scrub=False``):
        see :func:`xmodal.erasure.scrub`."""
        with self._writing:
            scrub(self._traces())

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` entries of the admin audit log (who deleted what, when), newest first."""
        return self.store.audit_log(limit)

    def _traces(self) -> Traces:
        return Traces(self.store, self.media, self.feedback_log, self.backend, self._lock, self.checkpoint)

    def delete_where(self, filters: Mapping[str, Any], *, strict: bool = False, purge_feedback: bool = False) -> int:
        """Delete every item that matches ``filters`` (and the segments of those items) through the normal
        write path (:meth:`delete`); returns how many matched. An empty filter is refused: use :meth:`clear`."""
        return self._collection.delete_where(filters, strict=strict, purge_feedback=purge_feedback)

    def clear(self, *, purge_feedback: bool = False) -> int:
        """Delete every item (through the normal write path, :meth:`delete`: change log, vectors, extensions);
        returns how many there were."""
        return self._collection.clear(purge_feedback=purge_feedback)

    def update_attributes(self, item_id: str, attributes: Mapping[str, Any], *, merge: bool = True) -> Item:
        """Update an item's attributes without encoding it again (its vectors are kept as stored): merged
        over the old ones (``merge=False``: replacing them). Filters see the new values at once; returns
        the updated item."""
        return self._collection.update_attributes(item_id, attributes, merge=merge)

    def _commit(self, entries: Sequence[Entry], encoder: Encoder | None = None) -> list[StoredItem]:
        """The write path of an add or update: commit ``(item, vectors)`` entries to the store, then apply
        them to every derived structure; returns them as stored. ``encoder``: the one that made the vectors,
        refused when this engine has followed a switch away from it since (:meth:`follow_switch`)."""
        with self._writing:
            if encoder is not None and encoder is not self.encoder:
                raise ConfigError(
                    f"{self.path}: the index switched to another encoder (xmodal reindex --switch) while these "
                    "items were encoded; nothing was written: retry (this engine uses the new encoder now)"
                )
            before = self._seq
            try:
                rows = self.store.put(entries)
            except ConfigError:  # vectors of an encoder the index switched away from: follow it, then refuse
                self.follow_switch()
                raise
            stored = [StoredItem(row, item, vecs) for row, (item, vecs) in zip(rows, entries, strict=True)]
            self._apply(before, len(rows), stored, ())
        return stored

    def _apply(self, before: int, count: int, stored: Sequence[StoredItem], deleted: Sequence[int]) -> None:
        """Apply this process's committed write (``count`` changes after sequence ``before``) to the derived
        structures: the catalog and the vector backend under the lock alone, then the extensions outside it.
        When another process committed in between (the sequence moved by more than this write), everything
        is caught up from the log instead. The shared vector copy (Milvus) is written before the lock: it holds
        nothing of this process's, so searches go on meanwhile (this process's writes stay in turn: ``_writing``)."""
        if self._shared_vectors:
            self._apply_shared(before, stored, deleted)
        with self._lock:
            after = self.store.last_seq()
            if after - before == count:
                for follower in (self._catalog, *(() if self._shared_vectors else (self.backend,))):
                    if stored:
                        follower.on_put(stored)
                    if deleted:
                        follower.on_delete(deleted)
                self._advance(after)
        if self._seq != after:
            self._sync()
            return
        self._extensions.apply(before, after, stored, deleted)  # a failing one catches up from the log
        self._settled = after

    def _apply_shared(self, before: int, stored: Sequence[StoredItem], deleted: Sequence[int]) -> None:
        """Our write into the shared vector copy (only the process that committed a change applies it). Its
        server unavailable past the bounded retries: the write stands (it is in the store) and is applied
        again from the log (from ``before``) on the next write or read that reaches the server."""
        try:
            self._vectors_catch_up()
            if stored:
                self.backend.on_put(stored)
            if deleted:
                self.backend.on_delete(deleted)
        except StorageError as exc:
            self._vectors_behind = min(before, self._vectors_behind if self._vectors_behind is not None else before)
            log.warning("the shared vectors lack changes after %d until their server answers: %s", before, exc)

    def _advance(self, seq: int) -> None:
        """Record that the catalog and the vector backend reflect ``seq``, waking readers waiting for it."""
        with self._moved:
            self._seq = seq
            self._moved.notify_all()

    def _sync(self) -> None:
        """Catch up with writes committed by other processes (and extensions that missed one)."""
        with self._writing:
            with self._lock:
                if self._shared_vectors:  # other processes' writes are in the shared copy already
                    seq = replay(self, self._seq, self._catalog)
                    if seq != self._seq and isinstance(self.backend, SharedCopy):
                        self.backend.others_wrote()
                    self._advance(seq)
                    self._vectors_catch_up()
                else:
                    self._advance(replay(self, self._seq, self._catalog, self.backend))
                self._follow_if_switched()  # what was replayed may be another encoder's: reopen before serving
            self._extensions.sync(self)
            self._settled = self._seq

    def follow_switch(self) -> bool:
        """A PostgreSQL store switched to another encoder (``xmodal reindex --switch``, any process): serve the
        index with the new encoder and its vectors from now on (the vector backend rebuilt from the store while
        searches go on with the old ones and writes wait, then swapped in; the extensions are kept, marked stale
        by the switch). Called on the store's
        ``switch`` notice and after every catch-up, so no search pairs one encoder's query with the other's
        vectors. Returns whether it reopened. A new encoder that cannot be made here (an option only this
        process had) leaves the engine refusing every search and write, saying so."""
        if self._closed or not isinstance(self.store, PostgresStore):
            return False
        with self._writing:
            return not self._closed and self._follow_if_switched()

    def _switch_heard(self) -> None:
        try:
            self.follow_switch()
        except Exception:  # noqa: BLE001 - the listener goes on; the next catch-up checks the epoch again
            log.exception("%s: following the encoder switch failed", self.path)

    def _follow_if_switched(self) -> bool:
        """:meth:`follow_switch`, ``_writing`` held: the new vector backend is built from the store while
        searches go on with the old encoder and vectors (nothing is replayed into them meanwhile), then
        swapped in under the lock with the changes since (the whole of it under the lock when the caller
        holds it: a catch-up that may have replayed the new encoder's vectors)."""
        if not isinstance(self.store, PostgresStore):
            return False
        found = dict(self.store.read("SELECT key, value FROM meta WHERE key IN ('settings', %s)", (EPOCH_KEY,)))
        epoch = json.loads(found[EPOCH_KEY]) if EPOCH_KEY in found else None
        if epoch == self.epoch:
            return False
        settings = json.loads(found["settings"])
        name = settings["encoder"].get("name")
        switched = f"{self.store.where}: the index switched to encoder {name!r} (xmodal reindex --switch)"
        try:
            encoder = follow_encoder(settings["encoder"], self.encoder_options)
        except Exception as exc:  # noqa: BLE001 - whatever it is, this engine must stop serving the old vectors
            return self._cannot_follow(
                f"{switched}, which this process cannot make ({exc}): restart it with that encoder's options"
            )
        log.warning("%s: reopening on it", switched)
        try:
            backend, shared = self._open_backend(encoder, settings, epoch)
        except ConfigError as exc:  # the new epoch's vectors cannot be served here (e.g. a collection= given)
            return self._cannot_follow(f"{switched}: {exc}")
        if not shared:  # from the store's vectors, all of the new encoder now
            replay(self, backend.saved_seq, backend)
        with self._lock:
            old, self.backend, self._shared_vectors = self.backend, backend, shared
            self.encoder, self.settings, self.epoch, self._lost = encoder, settings, epoch, None
            self._search = self._search_path()
            self._vectors_behind = None
            if shared:
                self._catch_up_shared()
            self._advance(replay(self, self._seq, self._catalog, *(() if shared else (backend,))))
        old.close()
        self._tell_repository()
        return True

    def _cannot_follow(self, why: str) -> bool:
        """A switch this engine cannot follow: from now on it refuses every search and write saying ``why``
        (:meth:`refresh`; a later follow that succeeds clears it). Returns False: nothing was reopened."""
        self._lost = why
        log.error("%s", why)
        return False

    def _heard(self, seq: int) -> None:
        """A shared store's writer committed change ``seq`` (on the store's listener thread): catch up now, so
        the next search finds every structure current. Skipped while this process writes or catches up (that
        applies the log itself, and every read checks the store's last change anyway)."""
        if self._closed or seq <= self._seq or not self._writing.acquire(blocking=False):
            return
        try:
            if not self._closed:
                self._sync()
        finally:
            self._writing.release()

    def refresh(self, *, extensions: bool = True) -> None:
        """See the writes other processes committed; reads call it, so they need not. ``extensions=False``
        (a dense search, a look-up) skips catching up an extension that failed on a change."""
        if self._lost is not None:
            raise ConfigError(self._lost)
        last = self.store.last_seq()
        if self._vectors_behind is not None and self._writing.acquire(blocking=False):
            try:
                with self._lock:
                    self._vectors_catch_up()
            finally:
                self._writing.release()
        while self._seq < last:
            if self._writing.acquire(blocking=False):
                try:
                    self._sync()
                finally:
                    self._writing.release()
                return
            with self._moved:  # a write of this process is in flight: it applies the log up to its own change
                if self._seq < last:
                    self._moved.wait(0.05)
        if extensions and self._extensions.behind(self._settled):
            self._sync()

    # -- extensions -----------------------------------------------------------------------------
    def extension(self, name: str) -> Extension:
        """An extension opened with this index (``engine.extension("genret")``)."""
        return self._extensions.get(name)

    @property
    def default_mode(self) -> str:
        return str(self.settings["default_mode"])

    def modes(self) -> list[str]:
        """The search modes this index provides: dense search and every opened extension's."""
        return [DENSE, *sorted(self._extensions.modes())]

    # -- the view extensions see (xmodal.extension.EngineView) -----------------------------------
    @property
    def dim(self) -> int:
        return self.backend.dim

    @property
    def encoder_config(self) -> dict[str, Any]:
        return self.encoder.config()

    @property
    def fulltext(self) -> TextIndex:
        """The store's BM25F full-text index (written in the items' own transactions)."""
        return self.store.fulltext

    def last_seq(self) -> int:
        return self.store.last_seq()

    def applied_seq(self) -> int:
        """The store sequence every derived structure was told of: the catalog, the vector backend and every
        extension (one that failed on a change is behind it; see :meth:`extension_seqs`)."""
        return self._settled

    def extension_seqs(self) -> dict[str, int]:
        """The store sequence each opened extension reflects (behind :meth:`applied_seq`: it failed on a
        change and catches up at the next read)."""
        return self._extensions.positions()

    def changes_since(self, seq: int) -> list[tuple[int, str]]:
        return self.store.changes_since(seq)

    def items_of(self, rows: Sequence[int], *, with_vectors: bool = False) -> dict[int, StoredItem]:
        """Stored items by row (rows deleted meanwhile are absent)."""
        return self.store.get_rows(list(rows), with_vectors=with_vectors)

    def item_meta(self, rows: Sequence[int]) -> dict[int, tuple[float, str]]:
        """(creation time, modality) of each row, read alone from the store (rows deleted meanwhile are absent)."""
        return self.store.item_meta([r for r in rows if r >= 0])

    def item_texts(self, rows: Sequence[int]) -> dict[int, tuple[str, str]]:
        """(title, text) of each row, read alone from the store (rows deleted meanwhile are absent)."""
        return self.store.item_texts([r for r in rows if r >= 0])

    def iter_items(self) -> Iterator[StoredItem]:
        """Every stored item with its vectors, in row order."""
        return self.store.iter_all()

    def vector_count(self, kind: str) -> int:
        """How many vectors of ``kind`` the index holds (0 for a kind it has none of)."""
        with self._lock.read():
            return self.backend.count(kind)

    def similarity(self, vector: np.ndarray, rows: Sequence[int], kind: str) -> np.ndarray:
        """Cosine of ``vector`` with each row's vector of ``kind`` (0 where a row has none)."""
        with self._lock.read():
            return self.backend.similarity(vector, rows, kind)

    def row_of(self, item_id: str) -> int:
        """The row (index label) of an item id."""
        row = self._catalog.row_by_id.get(item_id)
        if row is None:
            raise NotFoundError(f"no item with id {item_id!r}")
        return row

    def find_row(self, item_id: str) -> int | None:
        """The row of an item id, or None when there is no such item (:meth:`row_of` raises instead)."""
        return self._catalog.row_by_id.get(item_id)

    def find_id(self, row: int) -> str | None:
        """The item id of a row, or None when the row was deleted."""
        return self._catalog.id_by_row.get(row)

    def all_rows(self) -> np.ndarray:
        """Every live row (a snapshot)."""
        with self._lock.read():
            return self._catalog.rows()

    def attributes_of(self, row: int) -> Mapping[str, Any]:
        """The filterable attributes of a row (empty for a deleted row)."""
        return self._catalog.attributes_of(row)

    def match_rows(self, filters: Mapping[str, Any], *, strict: bool = False) -> np.ndarray | None:
        """Sorted rows that satisfy ``filters`` (see :mod:`xmodal.filters`); None when there is no filter.
        A path no item has matches nothing (``strict``: a :class:`ValidationError` naming the known ones)."""
        with self._lock.read():  # the attribute table changes under writes
            return self._catalog.attributes.match(filters, strict=strict)

    @contextmanager
    def attribute_table(self) -> Iterator[AttributeTable]:
        """The attribute table, held steady (writes wait) while the block runs."""
        with self._lock.read():
            yield self._catalog.attributes

    # -- reads --------------------------------------------------------------------------------
    def count(self, filters: Mapping[str, Any] | None = None, *, strict: bool = False) -> int:
        """How many items match ``filters`` (every item when there is none); ``strict`` as in :class:`Query`."""
        return self._collection.count(filters, strict=strict)

    def __len__(self) -> int:
        self.refresh(extensions=False)
        return len(self._catalog)

    def __contains__(self, item_id: object) -> bool:
        self.refresh(extensions=False)
        return item_id in self._catalog.row_by_id

    def get(self, item_id: str, *, screen: bool = False, safe: str | None = None) -> Item:
        """The item stored under ``item_id`` (:class:`NotFoundError` when there is none). ``screen`` (or a
        ``safe`` level): as the guards let the caller see it, the way they screen a search's hits — an item the
        caller's policy withholds (quarantined, a sensitive image, toxic text under ``safe="strict"``...) is a
        :class:`GuardBlocked` on ``id`` naming the category, personal data is redacted where the policy says so
        (:mod:`xmodal.screening`). What the REST, MCP and CLI ``get`` return."""
        item = self._collection.stored(item_id).item
        if not screen and safe is None:
            return item
        screened = self._extensions.screen_items([item], current_caller(), _checked_safe(safe))
        if screened.withheld:
            raise refuse(item_id, screened.withheld[item_id])
        return screened.items[0]

    def get_many(
        self, ids: Sequence[str], *, with_vectors: bool = False, screen: bool = False, safe: str | None = None
    ) -> Fetched:
        """Many items by id in one read: ``Fetched.items`` in the order asked, ``Fetched.missing`` the ids the
        index does not hold (not an error); ``with_vectors``: each item's vectors by kind too. ``screen`` (or a
        ``safe`` level): screened as :meth:`get` is — an item the caller's policy withholds is left out and
        named in ``Fetched.withheld`` with its category."""
        fetched = self._collection.get_many(ids, with_vectors=with_vectors)
        if not screen and safe is None:
            return fetched
        screened = self._extensions.screen_items(fetched.items, current_caller(), _checked_safe(safe))
        if screened.unchanged(fetched.items):
            return fetched
        vectors = tuple(fetched.vectors[j] for j in screened.kept) if fetched.vectors is not None else None
        withheld = {item_id: f["category"] for item_id, f in screened.withheld.items()}
        return Fetched(screened.items, fetched.missing, vectors, withheld)

    def scroll(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        limit: int = 100,
        cursor: str | None = None,
        with_vectors: bool = False,
        strict: bool = False,
        safe: str | None = None,
    ) -> Page:
        """A page of up to ``limit`` items that match ``filters`` (every item without), in the order they were
        first added; pass ``Page.next_cursor`` back (with the same filters) for the next page, None at the
        end. Writes between pages neither repeat nor skip the items that stay (see :mod:`xmodal.cursor`).
        The guards screen the page as they screen a search's hits (the caller's policy, at the ``safe``
        level): an item they withhold is left out and counted by category in ``Page.withheld`` (a page may
        then hold fewer than ``limit`` items and still have a next one)."""
        safe = _checked_safe(safe)
        page = self._collection.scroll(filters, limit=limit, cursor=cursor, with_vectors=with_vectors, strict=strict)
        screened = self._extensions.screen_items(page.items, current_caller(), safe)
        if screened.unchanged(page.items):
            return page
        vectors = tuple(page.vectors[j] for j in screened.kept) if page.vectors is not None else None
        return Page(screened.items, page.next_cursor, vectors, screened.counts())

    def export(
        self,
        path: str | Path,
        *,
        format: str | None = None,
        filters: Mapping[str, Any] | None = None,
        strict: bool = False,
        with_vectors: bool = False,
        force: bool = False,
        safe: str | None = None,
    ) -> ExportReport:
        """Write the items that match ``filters`` (every item without) to ``path``: JSON Lines, or Parquet with
        ``pyarrow`` (by the extension, or ``format``), with their vectors on request. A path that exists is an
        error unless ``force`` (see :mod:`xmodal.export`). The guards screen the items as they screen a
        search's hits (the caller's policy — :func:`~xmodal.extension.as_caller` for an export key — at the
        ``safe`` level): an item they withhold is not written, and counted by category in
        ``ExportReport.withheld``; personal data is redacted where the policy says so."""
        safe, caller = _checked_safe(safe), current_caller()
        withheld: Counter[str] = Counter()

        def batches() -> Iterator[list[StoredItem]]:
            read = self._collection.iterate(filters, batch=EXPORT_BATCH, with_vectors=with_vectors, strict=strict)
            for batch in read:
                items = [s.item for s in batch]
                screened = self._extensions.screen_items(items, caller, safe)
                withheld.update(screened.counts())
                if screened.unchanged(items):
                    yield batch
                else:
                    yield [replace(batch[j], item=item) for j, item in zip(screened.kept, screened.items, strict=True)]

        kinds, dim = self.vector_kinds(), self.dim
        report = write_export(
            path, batches, format=format, with_vectors=with_vectors, force=force, kinds=kinds, dim=dim
        )
        return replace(report, withheld=dict(sorted(withheld.items()))) if withheld else report

    def vectors(self, item_id: str) -> dict[str, np.ndarray]:
        """The item's stored vectors by kind (:class:`NotFoundError` when there is no such item)."""
        return self._collection.stored(item_id).vectors

    def encode_query(self, query: Query, base_dir: Path | None = None) -> np.ndarray:
        """The query's vector: its text, its media (each loaded by its media loader), or the renormalised
        mean of them all."""
        vector: np.ndarray = self._search.encode_queries([query], base_dir)[0]
        return vector

    def encode_queries(self, queries: Sequence[Query], base_dir: Path | None = None) -> np.ndarray:
        """The vectors of several queries (:meth:`encode_query`), in one encoder call."""
        return self._search.encode_queries(queries, base_dir)

    def search(
        self,
        query: Query | str,
        *,
        base_dir: Path | None = None,
        log: bool = False,
        explain: bool = False,
        with_vectors: bool = False,
        cursor: str | None = None,
        **options: Any,
    ) -> SearchResult:
        """Search with a :class:`Query` (or a text plus ``Query`` keyword options); ``Query.mode`` None is
        the index's default mode. ``log=True`` records the impression and sets ``query_id`` for
        :meth:`feedback`; ``explain=True`` returns the plan, each strategy's contribution and the features;
        ``with_vectors=True`` gives each hit's vector (:func:`~xmodal.results.hit_vector`) in
        ``SearchResult.vectors``. ``cursor``: a result's ``next_cursor``, with the same query, for the next
        page (instead of ``offset``; see :mod:`xmodal.cursor`). A query the guards block raises
        :class:`GuardBlocked`; the guards policy is that of :func:`~xmodal.extension.as_caller` (the API key a
        server runs the search for; else the deployment's)."""
        return self._search.search(
            query, base_dir=base_dir, log=log, explain=explain, with_vectors=with_vectors, cursor=cursor, **options
        )

    def search_many(
        self,
        queries: Sequence[Query | str],
        *,
        base_dir: Path | None = None,
        log: bool = False,
        explain: bool = False,
        with_vectors: bool = False,
        **options: Any,
    ) -> list[SearchResult]:
        """Several searches in one call, one result each, in order (options as in :meth:`search`; ``options``
        apply to the texts given as strings). The queries are encoded in one encoder call, and the dense ones
        that share a target and filters are searched in one matrix operation. A bad query is an error naming
        it (``queries[3].target``) before any search runs. ``took_ms`` and ``encode_ms`` are the batch's."""
        return self._search.search_many(
            queries, base_dir=base_dir, log=log, explain=explain, with_vectors=with_vectors, **options
        )

    def similar(self, item_id: str, *, k: int = 10, target: str = Target.ANY, safe: str | None = None) -> SearchResult:
        """The items closest to a stored item (the item itself left out), by its primary vector; the guards
        screen them as they screen a search's hits (the caller's policy, at the ``safe`` level)."""
        start = time.perf_counter()
        safe = _checked_safe(safe)
        vector = primary_vector(self.vectors(item_id))
        if vector is None:
            raise ValidationError("id", f"item {item_id!r} has no vectors", "re-add the item")
        hits = self.search_vector(vector, k=2 * k + 1, target=target)  # room for hits the guards drop
        keep = [i for i, hit_id in enumerate(hits.ids.tolist()) if hit_id != item_id]
        hits = Hits(hits.ids[keep], hits.scores[keep], tuple(f"similar:{hits.provenance[i]}" for i in keep))
        hits, items = self._search.items_for(hits)
        hits, items, flags = self._extensions.screen_hits(hits, items, current_caller(), safe)
        hits, items = hits.take(range(min(k, len(hits)))), items[:k]
        shown = {item.id for item in items}
        found = {item: why for item, why in flags.items() if item in shown}
        return SearchResult(hits, items, (time.perf_counter() - start) * 1000, 0.0, flags=found or None)

    def search_vector(
        self,
        vector: np.ndarray,
        *,
        k: int = 10,
        target: str = Target.ANY,
        filters: Mapping[str, Any] | None = None,
        strict: bool = False,
    ) -> Hits:
        """Top-k items for an already encoded query vector; filters apply before the cut (``strict``: a
        filter on an attribute no item has is an error instead of matching nothing)."""
        return self._search.search_vector(vector, k=k, target=target, filters=filters, strict=strict)

    def search_vectors(
        self,
        vectors: np.ndarray,
        *,
        k: int = 10,
        target: str = Target.ANY,
        filters: Mapping[str, Any] | None = None,
        strict: bool = False,
    ) -> list[Hits]:
        """:meth:`search_vector` for a matrix of query vectors ``[n, d]`` (one row each), in one backend call."""
        return self._search.search_vectors(vectors, k=k, target=target, filters=filters, strict=strict)

    def search_by_vector(
        self,
        vector: Any,
        *,
        k: int = 10,
        offset: int = 0,
        target: str = Target.ANY,
        filters: Mapping[str, Any] | None = None,
        strict: bool = False,
        with_vectors: bool = False,
        cursor: str | None = None,
    ) -> SearchResult:
        """A dense search with the caller's own query vector (of the index's dimension): :meth:`search_vector`
        with the hits' items, and ``offset`` hits skipped as in :class:`Query` (``with_vectors`` and ``cursor``:
        as in :meth:`search`)."""
        return self._search.search_by_vector(
            vector,
            k=k,
            offset=offset,
            target=target,
            filters=filters,
            strict=strict,
            with_vectors=with_vectors,
            cursor=cursor,
        )

    def search_by_vectors(
        self,
        vectors: Any,
        *,
        k: int = 10,
        offset: int = 0,
        target: str = Target.ANY,
        filters: Mapping[str, Any] | None = None,
        strict: bool = False,
        with_vectors: bool = False,
    ) -> list[SearchResult]:
        """:meth:`search_by_vector` for many query vectors (``[n, d]``, one row each) in one matrix search,
        one result each, in order (``took_ms`` is the batch's)."""
        return self._search.search_by_vectors(
            vectors, k=k, offset=offset, target=target, filters=filters, strict=strict, with_vectors=with_vectors
        )

    def vector_kinds(self) -> list[str]:
        """The vector kinds a query can target: those the encoder declares, then any other the index holds."""
        return self._search.vector_kinds()

    # -- feedback -----------------------------------------------------------------------------
    def log_impression(
        self,
        query: Query | str,
        result: SearchResult,
        *,
        user: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> str:
        """Record that ``result`` was shown for ``query``; returns the query id for :meth:`feedback`."""
        query = Query(text=query, user=user, mode=DENSE) if isinstance(query, str) else query
        query = replace(query, user=user or query.user, mode=query.mode or self.default_mode)
        details = dict(result.explain or {"mode": query.mode})
        if context:
            details["context"] = {**details.get("context", {}), **context}
        return self._search.log_search(query, result, details)

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
        self.feedback_log.record_event(query_id, item_id, event, position=position, value=value)

    def item_guard(self, item_id: str) -> dict[str, Any] | None:
        """What the guards found in a stored item's text (``status`` flagged or quarantined, ``findings``),
        or None when nothing (or no guards extension)."""
        return self._extensions.item_status(item_id)

    def guard_counts(self) -> dict[tuple[str, str], int]:
        """The guards' decisions so far by (category, action), summed over the screening extensions."""
        out: dict[tuple[str, str], int] = {}
        for described in self._extensions.describe_screens().values():
            for d in described.get("decisions", ()):
                key = (str(d["category"]), str(d["action"]))
                out[key] = out.get(key, 0) + int(d["count"])
        return out

    def info(self) -> dict[str, Any]:
        """Counts per modality (items, and those of them that are segments) and per vector kind, encoder,
        dimension, index kind, extensions and modes."""
        self.refresh(extensions=False)
        return {
            "path": str(self.path),
            "items": len(self._catalog),
            "modalities": self.store.counts_by_modality(),
            "segments": self.store.segment_counts_by_modality(),
            "vectors": {kind: self.backend.count(kind) for kind in self.backend.kinds()},
            "encoder": self.encoder.config(),
            **({"encoder_usage": usage()} if callable(usage := getattr(self.encoder, "usage", None)) else {}),
            "dim": self.backend.dim,
            "backend": self.settings.get("backend", DEFAULT_BACKEND),
            "index": self.settings["index"],
            "attributes": self._catalog.attributes.attributes(),
            "extensions": list(self._extensions),
            "default_mode": self.default_mode,
            "modes": self.modes(),
            "guards": self._extensions.describe_screens(),
            "schema_version": SCHEMA_VERSION,
            "stale": stale(self.store),
            **({"reindex": running} if (running := self._reindex_summary()) else {}),
        }

    def _reindex_summary(self) -> dict[str, Any] | None:
        if isinstance(self.store, PostgresStore):
            return pg_reindex_summary(self.store)
        return reindex_summary(self.path)


def _prefetch(encoder: Encoder) -> threading.Thread | None:
    """Start an encoder's ``prefetch()`` (its text model, when it has one to load) on a background thread, so
    the first text search of a process does not wait for it; what a query needs beyond that still loads
    when asked. A failure here is left for the first encoding to report."""
    prefetch = getattr(encoder, "prefetch", None)
    if not callable(prefetch):
        return None

    def run() -> None:
        try:
            prefetch()
        except Exception as exc:  # noqa: BLE001 - reported by the first encoding that needs the model
            log.debug("encoder prefetch failed: %s", exc)

    thread = threading.Thread(target=run, name="xmodal-encoder-prefetch", daemon=True)
    thread.start()
    return thread


def _checked_safe(safe: str | None) -> str | None:
    """``safe`` if it is a SafeSearch level (or None), else a :class:`ValidationError` naming the levels."""
    if safe is not None and safe not in SAFE_LEVELS:
        raise ValidationError("safe", f"unknown level {safe!r}", f"use one of {', '.join(SAFE_LEVELS)}")
    return safe
