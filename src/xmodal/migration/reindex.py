"""Re-embedding an index with another encoder while it serves (``xmodal reindex``).

:class:`Reindex` builds the new vectors beside the old ones (:mod:`.space`; in tables of the schema for a
``postgres://`` index, :mod:`.pg_space`): a scan of the store in row
order, resumable after its last committed batch, then the store's change log from the sequence read before
the scan began, so items added, updated or deleted meanwhile reach the new vectors too. Searches keep
using the old vectors the whole time: nothing the engine reads changes until :meth:`Reindex.switch`
(:mod:`.switch`), which swaps the vectors and the encoder setting in one transaction (every server of a
PostgreSQL store follows it: :meth:`xmodal.Engine.follow_switch`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..encoders import Content, Encoder, create_encoder, kinds_of
from ..encoders.identity import describe
from ..errors import ConfigError, XmodalError
from ..ingest.prepare import AddReport, chunks, encode_entries, load_media
from ..location import PostgresLocation, is_postgres, parse_postgres
from ..media import Media, MediaStore
from ..records import Item
from ..settings import recreate_encoder
from ..store.epoch import EPOCH_KEY
from ..store.postgres import PostgresStore
from ..store.sqlite import SQLiteStore, StoredItem
from .faults import fault
from .pg_space import PgNextSpace
from .space import NextSpace, Space
from .switch import switch

BATCH = 256
Encoded = tuple[list[tuple[int, dict[str, np.ndarray]]], list[tuple[int, str, str]]]


def _no_space() -> ConfigError:
    return ConfigError("no reindex is under way: start one with `xmodal reindex --encoder NAME [--encoder-option k=v]`")


class Reindex:
    """The re-embedding of the index at ``path`` (a folder, or a ``postgres://`` location; see the module
    notes); close it when done.

    >>> with Reindex("idx") as job:                           # doctest: +SKIP
    ...     job.start("hashing", {"dim": 64}); job.run()
    ...     job.switch()
    """

    def __init__(self, path: str | Path | PostgresLocation, encoder_options: Mapping[str, Any] | None = None) -> None:
        self.store: SQLiteStore | PostgresStore
        self.media: Media
        self.space: Space | None
        if isinstance(path, PostgresLocation) or is_postgres(path):
            where = path if isinstance(path, PostgresLocation) else parse_postgres(str(path))
            self.root = where.state
            self.store = PostgresStore(where.dsn, where.schema)
            self.media = where.open_media()
            self.space = PgNextSpace.find(self.store)
        else:
            self.root = Path(path)
            if not (self.root / "store.sqlite").is_file():
                raise ConfigError(
                    f"{self.root} is not an xmodal index (create it with: xmodal --index {self.root} init)"
                )
            self.store = SQLiteStore(self.root / "store.sqlite")
            self.media = MediaStore(self.root)
            self.space = NextSpace.find(self.root)
        self._options = dict(encoder_options or {})  # options not recorded (a key): given again on each open
        self._encoder: Encoder | None = None
        if self.space is not None and self.space.get("epoch") is not None:
            if self.store.get_meta(EPOCH_KEY) == self.space.get("epoch"):  # a switch committed, then stopped
                self.space.drop()
                self.space = None

    @property
    def where(self) -> str:
        """The index, as messages name it (a store's URL without its password)."""
        return self.store.where if isinstance(self.store, PostgresStore) else str(self.root)

    def __enter__(self) -> Reindex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.space is not None:
            self.space.close()
        self.store.close()

    # -- settings -------------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        found = self.store.get_meta("settings")
        if not isinstance(found, dict):
            raise ConfigError(f"{self.where}: the index has no settings yet: add items (or `xmodal init`) first")
        return found

    def encoder(self) -> Encoder:
        """The new encoder (from the config the run recorded, plus the options given that it does not record)."""
        if self.space is None:
            raise _no_space()
        if self._encoder is None:
            self._encoder = recreate_encoder(self.space.get("encoder"), self._options)
        return self._encoder

    # -- starting and building ------------------------------------------------------------------
    def start(self, encoder: str | Encoder, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Start (or resume, with the same encoder) a reindex to ``encoder`` with its ``options``; returns
        :meth:`status`. Refused: the index's own encoder, an encoder that makes no vector of the right size,
        or another reindex under way."""
        given = dict(options or {})
        self._options.update(given)
        enc = encoder if isinstance(encoder, Encoder) else create_encoder(encoder, **given)
        config, current = enc.config(), self.settings()["encoder"]
        if config == current:
            raise ConfigError(f"the index already uses encoder {describe(current)}: nothing to reindex")
        if self.space is not None:
            if self.space.get("encoder") != config:
                raise ConfigError(
                    f"a reindex to {describe(self.space.get('encoder'))} is under way, not to {describe(config)}: "
                    "finish it (`xmodal reindex`, then `xmodal reindex --switch`) or drop it (`xmodal reindex --abort`)"
                )
            self._encoder = enc
            return self.status()
        _probe(enc)
        seq = self.store.last_seq()  # read before the scan: a change made meanwhile is replayed onto it
        if isinstance(self.store, PostgresStore):
            self.space = PgNextSpace.create(self.store, config, started_seq=seq, total=self.store.count())
        else:
            self.space = NextSpace.create(self.root, config, started_seq=seq, total=self.store.count())
        self._encoder = enc
        return self.status()

    def run(
        self,
        *,
        progress: Callable[[int], object] | None = None,
        stop: Callable[[], bool] | None = None,
        batch: int = BATCH,
    ) -> dict[str, Any]:
        """Encode the items not encoded yet (resuming after the last committed batch), then replay the changes
        made since the run began and try the refused items again; ``stop()`` true ends it after a batch (run
        again to continue). Returns :meth:`status`."""
        if self.space is None:
            raise _no_space()
        space = self.space
        state = space.state()
        if not state["scanned"]:
            done = int(state["done"])
            for chunk in chunks(self.store.iter_all(batch, after=int(state["cursor"]), with_vectors=False), batch):
                vectors, failures = self._encode(chunk)
                done += len(chunk)
                space.commit(vectors, failures, cursor=chunk[-1].row, done=done)
                fault("batch")
                if progress is not None:
                    progress(len(chunk))
                if stop is not None and stop():
                    return self.status()
            space.set(scanned=True, total=done)  # every item there was, those added meanwhile included
        self.tail(batch=batch)
        self._retry(batch)
        return self.status()

    def tail(self, *, batch: int = BATCH) -> int:
        """Replay onto the new vectors the store's changes since those they reflect; returns how many rows
        changed."""
        if self.space is None:
            raise _no_space()
        now, since = self.store.last_seq(), int(self.space.get("tail_seq"))
        if now <= since:
            return 0
        latest = dict(self.store.changes_since(since))
        self._redo([row for row, op in latest.items() if op == "put"], batch)
        self.space.commit((), (), deleted=[row for row, op in latest.items() if op == "delete"], tail_seq=now)
        return len(latest)

    def encode_rows(self, rows: Sequence[int], *, batch: int = BATCH) -> Encoded:
        """The new vectors of the stored ``rows`` (rows gone are left out) and those refused."""
        vectors: list[tuple[int, dict[str, np.ndarray]]] = []
        failures: list[tuple[int, str, str]] = []
        for start in range(0, len(rows), batch):
            found = self.store.get_rows(list(rows[start : start + batch]))
            done, failed = self._encode(list(found.values()))
            vectors += done
            failures += failed
        return vectors, failures

    def _redo(self, rows: Sequence[int], batch: int) -> None:
        assert self.space is not None
        for start in range(0, len(rows), batch):
            chunk = list(rows[start : start + batch])
            vectors, failures = self.encode_rows(chunk, batch=batch)
            kept = {row for row, _ in vectors} | {row for row, _, _ in failures}
            self.space.commit(vectors, failures, deleted=[row for row in chunk if row not in kept])

    def _retry(self, batch: int) -> None:
        assert self.space is not None
        failed = [row for row, _, _ in self.space.failures()]
        if failed:
            self._redo(failed, batch)

    def _encode(self, stored: Sequence[StoredItem]) -> Encoded:
        """Encode stored items with the new encoder: ``(row, vectors by kind)`` and ``(row, id, reason)``
        of the items it refused (their media unreadable, a modality it does not encode)."""
        if not stored:
            return [], []
        enc = self.encoder()
        rows = {s.item.id: s.row for s in stored}
        report = AddReport()
        items = [self._local(s.item) for s in stored]
        entries = encode_entries(load_media(items, None, report), enc, self.media, report)
        vectors = []
        for item, by_kind in entries:
            for kind, vector in by_kind.items():
                _check_vector(enc, kind, vector)
            vectors.append((rows[item.id], {str(k): v for k, v in by_kind.items()}))
        return vectors, [(rows[r.where], r.where, r.reason) for r in report.rejected if r.where in rows]

    def _local(self, item: Item) -> Item:
        """``item`` with its stored media references as the paths of their files (the media folder's, or the
        read cache of a bucket); a reference that no longer resolves is left for its loader to refuse."""
        if not item.media:
            return item
        media: dict[str, Any] = {}
        for name, ref in item.media.items():
            try:
                media[name] = str(self.media.path(ref)) if isinstance(ref, str) else ref
            except XmodalError:
                media[name] = ref
        return dataclasses.replace(item, media=media)

    # -- reporting ------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Where the reindex stands: ``state`` (``none``, ``building``, ``ready``, or ``blocked`` by items the
        new encoder refused), items encoded of the total, changes not replayed yet, the refused items."""
        current = self.settings()["encoder"]
        if self.space is None:
            return {"state": "none", "current": current, "current_encoder": describe(current)}
        state = self.space.state()
        failures = self.space.failures()
        total = max(int(state["total"]), int(state["done"]))
        ready = bool(state["scanned"])
        return {
            "state": ("blocked" if failures else "ready") if ready else "building",
            "current": current,
            "current_encoder": describe(current),
            "next": state["encoder"],
            "next_encoder": describe(state["encoder"]),
            "done": int(state["done"]),
            "total": total,
            "percent": round(100.0 * int(state["done"]) / total, 1) if total else 100.0,
            "scanned": ready,
            "changes_behind": max(0, self.store.last_seq() - int(state["tail_seq"])),
            "failed": len(failures),
            "failures": [{"id": item_id, "reason": reason} for _, item_id, reason in failures[:20]],
            "folder": self.space.where,
        }

    # -- finishing --------------------------------------------------------------------------------
    def switch(self) -> dict[str, Any]:
        """Make the new vectors and encoder the index's, atomically (see :mod:`.switch`); returns the summary."""
        if self.space is None:
            raise _no_space()
        summary = switch(self)
        self.space = None
        return summary

    def abort(self) -> bool:
        """Drop the new vectors; the index is left as it was. Returns whether a reindex was under way."""
        if self.space is None:
            return False
        self.space.drop()
        self.space = None
        self._encoder = None
        return True


def _probe(enc: Encoder) -> None:
    """Refuse an encoder that makes no vector, or vectors not of the dimension it declares."""
    kinds = kinds_of(enc)
    if not kinds:
        raise ConfigError(f"encoder {enc.name!r} makes no vectors: choose an encoder that encodes the items")
    if any("text" in parts for parts in kinds.values()):
        _check_vector(enc, "text", np.asarray(enc.encode_documents([Content(text="probe")]))[0])


def _check_vector(enc: Encoder, kind: str, vector: np.ndarray) -> None:
    if vector.shape != (enc.dim,):
        raise ConfigError(
            f"encoder {enc.name!r} declares dimension {enc.dim} but made a {kind} vector of shape "
            f"{tuple(vector.shape)}: set its dim option (--encoder-option dim=N) to what the model makes"
        )
    if not all(math.isfinite(float(x)) for x in (vector.min(), vector.max())):
        raise ConfigError(f"encoder {enc.name!r} made a {kind} vector with NaN or infinite values: check the model")
