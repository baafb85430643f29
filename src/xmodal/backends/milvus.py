"""The ``milvus`` backend: an index's vectors in a Milvus collection, through pymilvus' ``MilvusClient``.

Layout: one collection per index (``collection`` option; default ``xmodal_<hash of the index folder>``),
a row per (item, vector kind) — primary key ``"<row>/<kind>"``, the store row, the kind as a scalar field,
the item's attributes encoded in a JSON field (:mod:`xmodal.backends.milvus_filters`) and one float vector
field (Milvus 2.3 has one per collection). Searches run kind by kind (``kind == "text" and <filter>``), the
filter translated into a Milvus boolean expression and applied by the server before its top-k cut, and the
answers merged per row (:func:`~xmodal.backends.base.best_per_row`).

Options (``BackendContext.index_options``, the index settings; ``xmodal --backend milvus --option
uri=...``): ``uri`` (default ``http://127.0.0.1:19530``), ``token``, ``db_name``, ``collection``,
``consistency`` (of searches and counts; default ``Session``: a read sees every write this process made —
the engine's read-your-writes — and, on a shared store, every write any process had acknowledged when it
began (below), without waiting for the server's next time tick, up to 200 ms, as ``Strong`` does; row
listings are always ``Strong``; the first read after a delete is ``Strong`` too: Milvus 2.3 returns no
timestamp for a delete, so ``Session`` cannot wait for it),
``timeout`` (seconds per call), ``retries`` (attempts while the server is unavailable, with bounded
exponential backoff), ``params`` (index build parameters) and ``search_params``, with shortcuts ``m``,
``ef_construction``, ``ef``, ``nlist``, ``nprobe``, ``search_list``. The index type is the index kind:
``hnsw`` (``auto``), ``ivf_flat``, ``ivf_sq8``, ``diskann`` or ``flat``; after creating the index the
backend reads it back (``describe_index``) and refuses a server that dropped or changed a parameter.

The collection is derived data: ``checkpoint`` writes ``state.json`` in the index folder (the store sequence,
the configuration, the collection); opening without a valid checkpoint of the same configuration drops the
collection (only one this backend made: its description says so) and starts empty, so the engine rebuilds
it from the store. A collection of another schema is refused with the fix.

Rows new to a collection of this process's own are *inserted* (Milvus' upsert is a delete plus an insert):
the backend keeps a high-water mark (``high`` in ``state.json``) above which the collection holds no row, and
on opening it looks for rows above the checkpoint's mark (written by a process that died before its next
checkpoint), so the replay of their changes upserts them — Milvus 2.3 does not deduplicate primary keys, and an
insert of a key it holds is a second row. An insert that fails is retried as an upsert (it may have landed).

**A shared store** (PostgreSQL, ``BackendContext.shared``): every process of the store uses ONE collection,
named from the store's identity (database, schema, vector epoch; ``xmodal_<schema>_<hash>``) unless
``collection=`` is given, and its progress is recorded in the store, not in a local file. The design:

* each change is upserted into Milvus by the process that committed it, before the write is acknowledged
  (Milvus upserts by primary key ``"<row>/<kind>"``, so applying a change again is harmless; always an
  upsert here: another process's first write of the same item could land after ours, and two inserts would
  be two rows); other processes only read the collection — they never apply the writes they hear of;
* after its upsert, and before the write is acknowledged, the writer records the upsert's Milvus timestamp in
  the store's ``meta`` (``milvus-ts:<collection>`` = ``{"ts": newest, "deletes": n}``, the newest kept); each
  ``Session`` read of any process reads it and waits for it (a guarantee timestamp), so it sees every write
  acknowledged before the read began without ``Strong``'s wait for the server's next time tick. A delete has
  no timestamp in Milvus 2.3: it counts ``deletes`` up, and a reader that sees the count move reads
  ``Strong`` once (as its first read does);
* the store's ``meta`` holds ``milvus:<collection>`` = ``{"seq": M, "wide": [...]}``: every change up to ``M``
  is in the collection. Only a *catch-up* advances it: read the store's last change ``L`` first, re-apply
  every change after ``M`` from the store's current items (idempotent upserts and deletes by key), then set
  ``M = max(M, L)`` atomically. The engine catches up on opening and at each checkpoint;
* a write whose upsert fails once the bounded retries are spent (Milvus stopped) is still acknowledged — it
  is committed in PostgreSQL, the source of truth — and the process that made it catches up from that change
  on its next write or read once Milvus answers; a process that dies first leaves ``M`` behind the change, so
  the next catch-up (any process's open or checkpoint) applies it;
* opening never drops a shared collection: a missing one is created (``M`` reset to 0, so the next catch-up
  fills it from the store), one of another dimension or index is refused with the fix;
* each vector epoch (``xmodal reindex --switch``, a restore) has its own collection; its description names the
  store (database and schema). Opening the current epoch's drops the store's collections made before the
  previous epoch's (:meth:`MilvusBackend.drop_old`; ``xmodal reindex --drop-previous`` drops that one too);
  a process left on a dropped one gets an error naming the fix (restart it);
* the kinds written are recorded there too (``kinds``), so every reader searches a new kind at once; a delete
  that takes a kind's last vector drops it from the record (checked ``Strong`` on the server), so a kind
  leaves every process's list (within ``KINDS_REFRESH_S``) when its last vector goes;
* path keys where an item holds more numbers than the filter's slots (``wide``) are recorded in the same
  setting before the write is acknowledged, and read by every process with the kinds (once a second).

What remains: two processes writing the *same item* within one upsert's time may leave the older version in
Milvus until the next catch-up that covers the change (catch-ups re-apply the store's current item).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from ..errors import ConfigError, MissingDependency, StorageError, ValidationError
from ..filters import FilterExpr
from ..filters.nodes import Node
from ..records import KIND_NAME, VectorKind
from ..store.epoch import EPOCH_KEY
from ..store.files import write_dir
from ..store.sqlite import StoredItem
from .base import BackendContext, VectorHits, best_per_row
from .milvus_filters import FIELD, encode, translate, wide_keys

log = logging.getLogger(__name__)

STATE = "state.json"
FORMAT_VERSION = 1
DESCRIPTION = "xmodal vectors (one row per item and vector kind) v1"
TAG = "; store "  #: a shared collection's description: DESCRIPTION, TAG and its store's tag (no epoch)
DEFAULT_URI = "http://127.0.0.1:19530"
MAX_TOPK = 16384  # Milvus' limit on k
PK_LENGTH = 96
INDEX_TYPES = {
    "auto": "HNSW",
    "hnsw": "HNSW",
    "ivf_flat": "IVF_FLAT",
    "ivf_sq8": "IVF_SQ8",
    "diskann": "DISKANN",
    "flat": "FLAT",
}
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "HNSW": {"M": 16, "efConstruction": 200},
    "IVF_FLAT": {"nlist": 1024},
    "IVF_SQ8": {"nlist": 1024},
    "DISKANN": {},
    "FLAT": {},
}
DEFAULT_SEARCH: dict[str, dict[str, Any]] = {
    "HNSW": {"ef": 128},
    "IVF_FLAT": {"nprobe": 32},
    "IVF_SQ8": {"nprobe": 32},
    "DISKANN": {"search_list": 128},
    "FLAT": {},
}
BUILD_SHORTCUTS = {"m": "M", "ef_construction": "efConstruction", "nlist": "nlist"}
SEARCH_SHORTCUTS = {"ef": "ef", "nprobe": "nprobe", "search_list": "search_list"}
CONNECTION_OPTIONS = ("uri", "token", "db_name", "consistency", "timeout", "retries")
LOAD_TIMEOUT = 60.0  #: seconds a collection's load may take, whatever the per-call timeout
OPTIONS = (*CONNECTION_OPTIONS, "collection", "params", "search_params", *BUILD_SHORTCUTS, *SEARCH_SHORTCUTS)
CONSISTENCY = ("Strong", "Session", "Bounded", "Eventually")
CLEAR_LIMIT = 10_000  # an untrusted collection of at most this many rows is emptied in place, not dropped
DELETE_BATCH = 20_000  # primary keys per delete expression
KINDS_REFRESH_S = 1.0  # how stale the kinds searched with ``kinds=None`` may be (other writers' new kinds)
OLDEST_SERVER = (2, 3)  #: upserts, JSON filters and guarantee timestamps as used here: Milvus 2.3 or later

T = TypeVar("T")
DIGEST = 8  #: bytes of the hash in a default collection name
HEX = re.compile(f"[0-9a-f]{{{2 * DIGEST}}}")
NO_ROWS = -(2**63)  #: the high-water mark of an empty collection: every row is above it


class MilvusBackend:
    """Vectors per kind in one Milvus collection, searched with the filter pushed down."""

    name = "milvus"

    def __init__(self, context: BackendContext) -> None:
        """Check the options and connect (no collection is touched yet; :meth:`open` does)."""
        self._dim = int(context.dim)
        self._folder = context.folder
        self._row_matcher = context.rows
        self.index_kind = context.index_kind
        options = dict(context.index_options)
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ConfigError(f"unknown milvus backend option(s) {', '.join(unknown)} (use: {', '.join(OPTIONS)})")
        if self.index_kind not in INDEX_TYPES:
            raise ConfigError(
                f"the milvus backend has no index kind {self.index_kind!r} (use one of {', '.join(INDEX_TYPES)})"
            )
        self.index_type = INDEX_TYPES[self.index_kind]
        self.params: dict[str, Any] = {**DEFAULT_PARAMS[self.index_type], **dict(options.get("params") or {})}
        self.search_params: dict[str, Any] = {
            **DEFAULT_SEARCH[self.index_type],
            **dict(options.get("search_params") or {}),
        }
        for short, name in BUILD_SHORTCUTS.items():
            if short in options:
                self.params[name] = int(options[short])
        for short, name in SEARCH_SHORTCUTS.items():
            if short in options:
                self.search_params[name] = int(options[short])
        self._check_params()
        self.uri = str(options.get("uri") or os.environ.get("XMODAL_MILVUS_URI") or DEFAULT_URI)
        self.consistency = str(options.get("consistency", "Session"))
        if self.consistency not in CONSISTENCY:
            raise ConfigError(f"milvus option consistency={self.consistency!r}: use one of {', '.join(CONSISTENCY)}")
        self.timeout = float(options.get("timeout", 10.0))
        self.retries = max(1, int(options.get("retries", 5)))
        self.shared = context.shared
        #: a shared collection's store (database and schema, less the epoch): written into the description of
        #: each collection made for it, so the collections of its older epochs are found (:meth:`drop_old`)
        self._store_tag = ""
        if self.shared is not None:
            identity = self.shared.identity
            self._store_tag = hashlib.blake2b(identity.rpartition("/")[0].encode(), digest_size=8).hexdigest()
            default = shared_name(identity)
        else:
            resolved = str(Path(context.folder).resolve())
            default = "xmodal_" + hashlib.blake2b(resolved.encode(), digest_size=8).hexdigest()
        #: the name is the epoch's own (not a ``collection=`` given): the older epochs' may be dropped
        self._per_epoch = self.shared is not None and not options.get("collection")
        self.collection = str(options.get("collection") or default)
        self._marker, self._ts_key = progress_keys(self.collection)
        self._config = {
            "dim": self._dim,
            "index_type": self.index_type,
            "params": self.params,
            "collection": self.collection,
            "db_name": options.get("db_name") or "default",
        }
        self._saved_seq = 0
        self._dirty = False
        self._kinds: set[str] = set()  # kinds known to hold vectors (refreshed by kinds())
        self._kinds_at = 0.0
        self._wide: set[str] = set()  # path keys where an item holds more numbers than the slots
        self._fence = False  # a delete since the last Strong read: the next read is Strong
        #: every row above it is absent from the collection, so its vectors are inserted, not upserted (None:
        #: unknown, every write upserts). Only for a collection of this process's own: with a shared one,
        #: another process's first write of the same item could land after ours, and two inserts would be two rows
        self._high: int | None = None
        self._deletes_seen: int | None = None  # the shared delete count at this process's last Strong read
        self._db_name = str(options.get("db_name") or "")
        self.client = self._connect(options)

    def _check_params(self) -> None:
        """Refuse parameters the index type does not read: Milvus 2.3 stores any parameter it is given (and
        echoes it in ``describe_index``) without using it."""
        for given, known, what in (
            (self.params, DEFAULT_PARAMS[self.index_type], "params"),
            (self.search_params, DEFAULT_SEARCH[self.index_type], "search_params"),
        ):
            ignored = sorted(set(given) - set(known))
            if ignored:
                raise ConfigError(
                    f"milvus {self.index_type} index {what}: {', '.join(ignored)} would be ignored by the server "
                    f"(it reads {', '.join(known) or 'none'})"
                )

    # -- opening -----------------------------------------------------------------------------------
    @classmethod
    def open(cls, context: BackendContext) -> MilvusBackend:
        """Connect, load the checkpoint in ``context.folder`` and check the collection against it; without a
        valid one, start with an empty collection (``saved_seq`` 0: the engine rebuilds from the store)."""
        backend = cls(context)
        try:
            backend._check_version()
            backend._open_collection()
        except BaseException:
            backend.close()
            raise
        return backend

    def _connect(self, options: dict[str, Any]) -> Any:
        try:
            from pymilvus import MilvusClient
        except ImportError:
            raise MissingDependency("pymilvus", "milvus") from None
        kwargs: dict[str, Any] = {"uri": self.uri, "timeout": self.timeout}
        if options.get("token"):
            kwargs["token"] = str(options["token"])
        if options.get("db_name"):
            kwargs["db_name"] = str(options["db_name"])
        return self._retry(f"connect to Milvus at {self.uri}", lambda: MilvusClient(**kwargs))

    def _check_version(self) -> None:
        """Refuse a server older than :data:`OLDEST_SERVER` before touching anything on it."""
        version = str(self._call("get_server_version", self.client.get_server_version))
        if server_version(version) < OLDEST_SERVER:
            oldest = ".".join(map(str, OLDEST_SERVER))
            raise ConfigError(
                f"Milvus at {self.uri} is version {version}; the milvus backend needs {oldest} or later "
                "(upserts, JSON filters, guarantee timestamps): upgrade the server, or use another backend"
            )

    def _open_collection(self) -> None:
        if self.shared is not None:
            self._open_shared()
            return
        state = self._read_state()
        exists = self._call("has_collection", self.client.has_collection, self.collection)
        if exists:
            self._check_schema(drop_ours=state is None)
            exists = self._call("has_collection", self.client.has_collection, self.collection)
        if not exists:
            state = None
            self._create()
        self._verify_index()
        self._load()
        if state is not None:
            self._saved_seq = int(state["seq"])
            self._wide = {str(p) for p in state.get("wide", [])}
            self._kinds = {str(k) for k in state.get("kinds", [])}
            high = state.get("high")
            self._high = self._probe_high(NO_ROWS if high is None else int(high))
        self.kinds()

    def _probe_high(self, high: int) -> int:
        """The highest row the collection holds, from ``high`` (the checkpoint's) up: rows written after the
        checkpoint by a process that died before the next one are found, so replaying their changes upserts
        them (an insert would leave two rows for one key: Milvus 2.3 does not deduplicate primary keys)."""
        return max(self._rows_where(f"row > {int(high)}"), default=high)

    def _rows_where(self, expr: str) -> Iterator[int]:
        """The rows (one per vector row) matching ``expr``, read in batches at ``Strong`` consistency."""
        iterator = self.client.query_iterator(
            self.collection, filter=expr, output_fields=["row"], batch_size=10_000, consistency_level="Strong"
        )
        try:
            while batch := iterator.next():
                yield from (int(hit["row"]) for hit in batch)
        finally:
            iterator.close()

    def _open_shared(self) -> None:
        """The shared collection: kept as it is when present (never dropped: other processes use it), made
        when missing (its progress reset, so the next catch-up fills it from the store)."""
        if self._call("has_collection", self.client.has_collection, self.collection):
            self._check_shared_schema()
        else:
            try:
                self._create()
            except Exception:  # noqa: BLE001 - another process made it meanwhile: use theirs
                if not self._call("has_collection", self.client.has_collection, self.collection):
                    raise
                self._check_shared_schema()
            else:
                self._set_marker(0, reset=True)
        self._check_epoch()
        self._verify_index()
        self._load()
        self._read_marker()
        self.kinds()
        try:  # a server that has followed to this epoch: the older epochs' collections but the previous go
            self.drop_old(keep_previous=True)
        except Exception as exc:  # noqa: BLE001 - a clean-up that fails is tried again at the next open
            log.warning("milvus backend: the older epochs' collections were not dropped: %s", _brief(exc))

    def _check_epoch(self) -> None:
        """Refuse a ``collection=`` given whose progress was recorded for another vector epoch of the store (a
        ``reindex --switch`` or a restore since): it holds that epoch's vectors, which this epoch's must never
        mix with (the default name is the epoch's own, so only a given name can meet an older epoch)."""
        assert self.shared is not None
        value = self.shared.get(self._marker)
        made_for = value.get("identity") if isinstance(value, dict) else None
        if made_for is not None and made_for != self.shared.identity:
            raise ConfigError(
                f"the Milvus collection {self.collection!r} (given by collection=) holds the vectors of another "
                "vector epoch of this index (an `xmodal reindex --switch` or a restore since): give the milvus "
                "backend a new collection= name, or leave the option out (each epoch then gets its own collection)"
            )

    def _check_shared_schema(self) -> None:
        dim = self._existing_dim()
        if dim != self._dim:
            raise ConfigError(
                f"the shared Milvus collection {self.collection!r} holds vectors of dimension {dim}, this index "
                f"has {self._dim}: give the milvus backend another collection= name"
            )

    def _existing_dim(self) -> int:
        """The vector dimension of the existing collection, once its schema is known to be ours (another
        schema is a :class:`ConfigError`)."""
        info = self._call("describe_collection", self.client.describe_collection, self.collection)
        fields = {f["name"]: f for f in info.get("fields", [])}
        if not _ours(info.get("description")) or set(fields) != {"pk", "row", "kind", FIELD, "vector"}:
            raise ConfigError(
                f"Milvus collection {self.collection!r} at {self.uri} exists with another schema (fields "
                f"{', '.join(sorted(fields))}): drop it, or give the milvus backend another collection= name"
            )
        return int(fields["vector"].get("params", {}).get("dim", -1))

    def _read_marker(self) -> int:
        """The shared progress: the store change every change up to which is in the collection."""
        assert self.shared is not None
        value = self.shared.get(self._marker)
        if isinstance(value, dict):
            self._saved_seq = int(value.get("seq", 0))
            self._wide = self._wide | {str(p) for p in value.get("wide", [])}
        else:
            self._saved_seq = 0
        return self._saved_seq

    def _set_marker(self, seq: int, *, reset: bool = False, wide: Iterable[str] = ()) -> None:
        assert self.shared is not None
        more = sorted({str(p) for p in wide})
        identity = self.shared.identity  # the store and vector epoch these vectors are of (:meth:`_check_epoch`)

        def change(old: Any) -> dict[str, Any]:
            old = old if isinstance(old, dict) else {}
            held = sorted({*map(str, old.get("wide", [])), *more})
            seq_now = int(seq) if reset else max(int(old.get("seq", 0)), int(seq))
            return {"seq": seq_now, "wide": held, "identity": identity}

        value = self.shared.update(self._marker, change)
        self._saved_seq = int(value["seq"])
        self._wide = self._wide | set(value["wide"])

    def _read_state(self) -> dict[str, Any] | None:
        try:
            state = json.loads((self._folder / STATE).read_text(encoding="utf-8"))
            if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
                raise StorageError("checkpoint of another format")
            if {key: state.get(key) for key in self._config} != self._config:
                raise StorageError("checkpoint was written with another configuration")
            int(state["seq"])
            return state
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, StorageError) as exc:
            log.warning("milvus backend: rebuilding %s from the store: %s", self.collection, exc)
            return None

    def _check_schema(self, *, drop_ours: bool) -> None:
        """An existing collection: ours with this dimension and index is kept — emptied when ``drop_ours`` (no
        valid checkpoint, so its rows are not trusted): cleared in place when small (no reload), dropped
        when large; ours with another dimension or index is dropped (made again); another schema is refused."""
        dim = self._existing_dim()
        try:
            self._verify_index()
            same_index = True
        except ConfigError:
            same_index = False
        if dim != self._dim or not same_index:
            log.warning("milvus collection %s has another dimension or index: made again", self.collection)
            self._call("drop_collection", self.client.drop_collection, self.collection)
        elif drop_ours and not self._clear():
            self._call("drop_collection", self.client.drop_collection, self.collection)

    def _clear(self) -> bool:
        """Delete every row of a small collection (by key) and say so; False (nothing done) when large."""
        self._load()
        hits = self._call(
            "query",
            self.client.query,
            self.collection,
            filter='pk != ""',
            output_fields=["pk"],
            limit=CLEAR_LIMIT + 1,
            consistency_level="Strong",
        )
        if len(hits) > CLEAR_LIMIT:
            return False
        if hits:
            self._delete([str(hit["pk"]) for hit in hits])
        self._high = None if self.shared is not None else NO_ROWS
        return True

    def _create(self) -> None:
        from pymilvus import DataType, MilvusClient

        description = DESCRIPTION if not self._store_tag else f"{DESCRIPTION}{TAG}{self._store_tag}"
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description=description)
        schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=PK_LENGTH)
        schema.add_field("row", DataType.INT64)
        schema.add_field("kind", DataType.VARCHAR, max_length=64)
        schema.add_field(FIELD, DataType.JSON)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self._dim)
        index = self.client.prepare_index_params()
        index.add_index(field_name="vector", index_type=self.index_type, metric_type="IP", params=dict(self.params))
        self._call(
            f"create collection {self.collection!r}",
            self.client.create_collection,
            self.collection,
            schema=schema,
            consistency_level="Strong",
        )
        try:
            self._call(f"create a {self.index_type} index", self.client.create_index, self.collection, index)
        except Exception as exc:
            self._call("drop_collection", self.client.drop_collection, self.collection)
            raise ConfigError(
                f"Milvus at {self.uri} refused a {self.index_type} index with {self.params}: {exc} "
                f"(use another index kind or params)"
            ) from None
        self._high = None if self.shared is not None else NO_ROWS

    def _verify_index(self) -> None:
        """The index the server holds is the one configured: type, metric and every build parameter."""
        names = self._call("list_indexes", self.client.list_indexes, self.collection, field_name="vector")
        if not names:
            raise ConfigError(f"Milvus collection {self.collection!r} has no vector index: drop it to rebuild")
        info = self._call("describe_index", self.client.describe_index, self.collection, names[0])
        wanted = {"index_type": self.index_type, "metric_type": "IP", **{k: str(v) for k, v in self.params.items()}}
        held = {key: str(info.get(key)) for key in wanted}
        if held != {k: str(v) for k, v in wanted.items()}:
            raise ConfigError(
                f"Milvus at {self.uri} holds the index {held} for {self.collection!r}, not the {wanted} configured "
                "(the server ignored or changed parameters): use parameters it supports"
            )

    # -- calls -------------------------------------------------------------------------------------
    def _retry(self, what: str, call: Callable[[], T]) -> T:
        """``call()``, retried with bounded exponential backoff while the server is unavailable."""
        delay = 0.2
        for attempt in range(self.retries):
            try:
                return call()
            except Exception as exc:  # noqa: BLE001 - classified below
                if not _unavailable(exc):
                    raise
                if attempt == self.retries - 1:
                    raise StorageError(
                        f"Milvus server at {self.uri} is unavailable ({what} failed {self.retries} times: "
                        f"{_brief(exc)}): start it, or point the milvus backend's uri= option at it"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 3.0)
        raise AssertionError("unreachable")

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return self._retry(what, lambda: fn(*args, timeout=self.timeout, **kwargs))
        except Exception as exc:
            if args[:1] != (self.collection,) or not _gone(exc):
                raise
            raise StorageError(self._gone_message()) from None

    def _gone_message(self) -> str:
        if self._per_epoch:
            return (
                f"the Milvus collection {self.collection!r} of this server's vector epoch is gone: the index "
                "switched vectors (xmodal reindex --switch, or a restore) at least twice since this server "
                "followed, and only the current and the previous epochs' collections are kept (or it was "
                "dropped by hand): restart this server (it opens the current epoch)"
            )
        return (
            f"the Milvus collection {self.collection!r} at {self.uri} is gone (dropped by hand?): restart this "
            "server (reopen the index) to rebuild it from the store"
        )

    # -- the older epochs' collections ----------------------------------------------------------------
    def drop_old(self, *, keep_previous: bool = True) -> list[str]:
        """Drop the collections of this store's older vector epochs (``xmodal reindex --switch``, a restore:
        each epoch gets its own collection); returns their names. Only where this backend serves the store's
        current epoch under its default name; only collections made for this store (their description names
        it: database and schema) under the default name of one of its epochs, made before this epoch's —
        never another store's, a ``collection=`` given, or the current epoch's. ``keep_previous``: the newest
        of them stays (servers still following the switch search it). Collections made before the store was
        written into the description (xmodal before this clean-up) are not recognised: drop them by hand."""
        if not self._per_epoch or self.shared is None:
            return []
        identity = self.shared.identity
        current = self.shared.get(EPOCH_KEY)
        if shared_name(f"{identity.rpartition('/')[0]}/{'' if current is None else current}") != self.collection:
            return []  # a switch committed since this epoch opened: the servers that follow it clean up
        prefix = self.collection[: -2 * DIGEST]
        tagged = f"{DESCRIPTION}{TAG}{self._store_tag}"
        made: dict[str, int] = {}
        for name in [self.collection, *map(str, self._call("list_collections", self.client.list_collections))]:
            if name in made or not (name.startswith(prefix) and HEX.fullmatch(name[len(prefix) :])):
                continue
            try:
                info = self._call("describe_collection", self.client.describe_collection, name)
            except Exception as exc:  # noqa: BLE001 - dropped meanwhile (another server cleaning up)
                log.debug("milvus backend: %s not described: %s", name, _brief(exc))
                continue
            if info.get("description") == tagged:
                made[name] = int(info.get("created_timestamp") or 0)
        own = made.pop(self.collection, None)
        if not own:
            return []  # this epoch's collection untagged (made before the clean-up) or its age unknown
        older = sorted((name for name, ts in made.items() if 0 < ts < own), key=lambda name: (made[name], name))
        gone = older[:-1] if keep_previous else older
        for name in gone:
            log.warning("milvus backend: dropping %s, the collection of an older vector epoch of this index", name)
            try:
                self._call("drop_collection", self.client.drop_collection, name)
            except Exception as exc:
                if not _gone(exc):  # another server dropped it meanwhile: as good
                    raise
        if gone:  # their progress records in the store's meta go with them
            self.shared.delete([key for name in gone for key in progress_keys(name)])
        return gone

    def _load(self) -> None:
        """Load the collection into the server's memory: a one-off wait, so it gets at least ``LOAD_TIMEOUT``
        whatever the per-call ``timeout`` (a short one keeps searches and retries quick; a new collection can
        take seconds to load on a busy server)."""
        wait = max(self.timeout, LOAD_TIMEOUT)
        self._retry("load_collection", lambda: self.client.load_collection(self.collection, timeout=wait))

    # -- the VectorBackend protocol -----------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def saved_seq(self) -> int:
        """The store change the collection reflects (a shared one: read from the store now)."""
        return self._read_marker() if self.shared is not None else self._saved_seq

    def kinds(self) -> list[str]:
        """The kinds holding vectors, found on the server (each query finds one kind not yet listed); the ones
        found less than ``KINDS_REFRESH_S`` ago (with this process's own writes since) unless this process
        deleted since, as searches with ``kinds=None`` use them: the engine asks at every write it applies."""
        if not self._fence and time.monotonic() - self._kinds_at <= KINDS_REFRESH_S:
            if self.shared is not None:
                self._shared_record()  # the kinds other processes wrote since
            return _ordered(self._kinds)
        return self._refresh_kinds(self._read_consistency())

    def _refresh_kinds(self, level: dict[str, Any]) -> list[str]:
        found = self._discover(level)
        self._kinds, self._kinds_at = set(found), time.monotonic()
        if self.shared is not None:  # other processes' wide keys
            value = self.shared.get(self._marker)
            if isinstance(value, dict):
                self._wide = self._wide | {str(p) for p in value.get("wide", [])}
        return _ordered(found)

    def _discover(self, level: dict[str, Any]) -> list[str]:
        found: list[str] = []
        while True:
            rest = f"kind not in [{', '.join(json.dumps(k) for k in found)}]" if found else ""
            hits = self._call(
                "query",
                self.client.query,
                self.collection,
                filter=rest or "row >= -1",
                output_fields=["kind"],
                limit=1,
                **level,
            )
            if not hits:
                return found
            found.append(str(hits[0]["kind"]))

    def _written_kinds(self) -> set[str]:
        """The kinds a row may hold, for the keys to delete: the kinds this backend wrote or found, and
        (once a second) those on the server now — found without waiting for this process's last write
        (``Bounded``), which the known kinds cover."""
        if time.monotonic() - self._kinds_at > KINDS_REFRESH_S:
            self._kinds = self._kinds | set(self._discover({"consistency_level": "Bounded"}))
            self._kinds_at = time.monotonic()
        return set(self._kinds)

    def count(self, kind: str | None = None) -> int:
        """Vectors of ``kind`` (every kind: None); 0 without asking the server for a kind no write has made —
        neither this process's nor, on a shared store, any other's recorded one (the engine asks for each
        kind it knows at every write it applies)."""
        level = self._read_consistency()  # on a shared store: the kinds the writers recorded join the known ones
        if kind is not None and str(kind) not in self._kinds:
            return 0
        expr = "" if kind is None else f"kind == {json.dumps(str(kind))}"
        res = self._call("count", self.client.query, self.collection, filter=expr, output_fields=["count(*)"], **level)
        return int(res[0]["count(*)"]) if res else 0

    def rows(self, kind: str) -> npt.NDArray[np.int64]:
        """The rows holding a vector of ``kind``, sorted (what ``xmodal check`` compares with the store)."""
        return np.sort(np.fromiter(self._rows_where(f"kind == {json.dumps(str(kind))}"), np.int64))

    def upsert(self, stored: Sequence[StoredItem]) -> None:
        """Upsert each item's vectors and drop the kinds it no longer has; every vector is checked first,
        so a bad one writes nothing. Rows above the high-water mark (new to the collection) are inserted:
        Milvus' upsert is a delete and an insert, and they have neither old vectors nor old kinds."""
        if not stored:
            return
        data: list[dict[str, Any]] = []
        new_wide: set[str] = set()
        for s in stored:
            attrs = encode(s.item.attributes)
            new_wide |= wide_keys(attrs) - self._wide
            for kind, vector in s.vectors.items():
                name = str(kind)
                if not KIND_NAME.fullmatch(name):
                    raise ValidationError(
                        "vector kind", f"{name!r} is not a valid name", "use lower-case letters, digits, _ and -"
                    )
                vec = np.asarray(vector, np.float32).reshape(-1)
                if vec.shape[0] != self._dim:
                    raise ValidationError(
                        f"vectors.{name}",
                        f"has dimension {vec.shape[0]}, the index has {self._dim}",
                        "encode with the index's encoder",
                        item=s.item.id,
                    )
                data.append({"pk": f"{s.row}/{name}", "row": int(s.row), "kind": name, FIELD: attrs, "vector": vec})
        data = list({d["pk"]: d for d in data}.values())  # a row given twice: its last vectors (one row per key)
        high = self._high
        fresh = [d for d in data if high is not None and d["row"] > high]
        known = [d for d in data if high is None or d["row"] <= high]
        stale: list[str] = []
        if len(fresh) < len(data):  # only rows the collection may hold can have kinds they no longer have
            new = {d["pk"] for d in data}
            present = self._written_kinds()
            old_rows = {int(s.row) for s in stored if high is None or s.row <= high}
            stale = [pk for row in old_rows for pk in _pks(row, present) if pk not in new]
        if stale:
            self._delete(stale)
        if new_wide and self.shared is not None:  # before the write: every process must filter them by rows
            self._set_marker(0, wide=new_wide)
        self._wide = self._wide | new_wide
        if high is not None and stored:  # before the insert: should it fail, a replay of these rows upserts them
            self._high = max(high, *(int(s.row) for s in stored))
        if fresh:
            self._insert(fresh)
        if known:
            self._call("upsert", self.client.upsert, self.collection, known)
        written = {d["kind"] for d in data}
        self._kinds = self._kinds | written
        self._dirty = True
        self._record_write(deleted=bool(stale), kinds=written)
        if stale:  # a kind an item no longer has may have lost its last vector
            self._forget_emptied({pk.split("/", 1)[1] for pk in stale} - written)

    def _insert(self, data: list[dict[str, Any]]) -> None:
        """Insert rows new to the collection; an attempt after a failed one upserts (the failed insert may have
        landed: the server can time out after applying it)."""
        calls: list[Callable[..., Any]] = [self.client.insert]

        def call() -> Any:
            fn = calls[0]
            calls[0] = self.client.upsert
            return fn(self.collection, data, timeout=self.timeout)

        self._retry("insert", call)

    def remove(self, rows: Sequence[int]) -> None:
        labels = [int(r) for r in rows]
        if labels:
            present = self._written_kinds()
            self._delete([pk for row in labels for pk in _pks(row, present)])
            self._dirty = True
            self._record_write(deleted=True)
            self._forget_emptied(present)

    def _delete(self, pks: list[str]) -> None:
        """Delete by primary key: Milvus 2.3 deletes by any other expression through a query whose
        timestamp a ``Session`` read does not wait for (a filtered search right after it still saw the
        rows), so rows are always deleted by key."""
        for start in range(0, len(pks), DELETE_BATCH):
            keys = ", ".join(json.dumps(pk) for pk in pks[start : start + DELETE_BATCH])
            self._call("delete", self.client.delete, self.collection, filter=f"pk in [{keys}]")
        self._fence = True  # Milvus 2.3 answers a delete without its timestamp: a Session read would miss it

    def search(
        self, queries: np.ndarray, k: int, kinds: Sequence[str] | None = None, where: FilterExpr | None = None
    ) -> list[VectorHits]:
        """Per query: rows, scores and the matched vector kind, best score per row, best first."""
        q = np.asarray(queries, np.float32)
        if q.ndim != 2 or q.shape[1] != self._dim:
            raise ValidationError("query", f"has dimension {q.shape[-1]}, the index has {self._dim}")
        level = self._read_consistency()  # before the kinds: a read owed Strong stays so for the search
        if kinds is None:
            if time.monotonic() - self._kinds_at > KINDS_REFRESH_S:
                self._refresh_kinds(level)
            names = _ordered(self._kinds)
        else:
            names = list(dict.fromkeys(str(kind) for kind in kinds))
        limit = min(int(k), MAX_TOPK)
        if limit <= 0 or not names or len(q) == 0:
            return [VectorHits(np.empty(0, np.int64), np.empty(0, np.float32), []) for _ in range(len(q))]
        condition = None if where is None else translate(where, self._rows_of, self._wide)
        params = self._search_params(limit)
        per_kind = [self._search_kind(q, limit, kind, condition, params, level) for kind in names]
        return [
            best_per_row([lab[i] for lab, _ in per_kind], [sc[i] for _, sc in per_kind], names, limit)
            for i in range(len(q))
        ]

    def _search_params(self, k: int) -> dict[str, Any]:
        params = dict(self.search_params)
        if "ef" in params:
            params["ef"] = max(int(params["ef"]), k)  # HNSW needs ef >= k
        if "search_list" in params:
            params["search_list"] = max(int(params["search_list"]), k)
        return {"metric_type": "IP", "params": params}

    def _search_kind(
        self, q: np.ndarray, k: int, kind: str, condition: str | None, params: dict[str, Any], level: dict[str, Any]
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        expr = f"kind == {json.dumps(kind)}" + ("" if condition is None else f" and {condition}")
        answers = self._call(
            "search",
            self.client.search,
            self.collection,
            data=list(q),
            limit=k,
            filter=expr,
            output_fields=["row"],
            search_params=params,
            **level,
        )
        rows = [np.fromiter((hit["entity"]["row"] for hit in hits), np.int64) for hits in answers]
        scores = [np.fromiter((hit["distance"] for hit in hits), np.float32) for hits in answers]
        return rows, scores

    def others_wrote(self) -> None:
        """Other processes wrote to the shared collection (the engine heard of it). Nothing to do: every
        ``Session`` read of a shared collection waits for the newest write timestamp recorded in the store
        (:meth:`_read_consistency`), which covers every write acknowledged before the read began."""

    def _write_ts(self) -> int:
        """The Milvus timestamp of this process's newest insert or upsert into the collection (0 if unknown):
        pymilvus keeps it per collection for its ``Session`` reads (``MilvusClient`` does not return it)."""
        try:
            from pymilvus.client import ts_utils

            endpoint = self.client._get_connection().server_address
            return int(ts_utils.get_collection_ts(self.collection, endpoint, self._db_name) or 0)
        except Exception as exc:  # noqa: BLE001 - another pymilvus: readers fall back to Strong
            log.debug("milvus write timestamp unavailable: %s", exc)
            return 0

    def _record_write(self, *, deleted: bool, kinds: Iterable[str] = ()) -> None:
        """A shared collection: record this write in the store before it is acknowledged, for every process's
        next read — its Milvus timestamp (readers wait for it instead of the server's next time tick, as
        ``Strong`` does), or, for a delete (Milvus 2.3 returns no timestamp for one), a count of deletes that
        makes each reader's next read ``Strong``; and the kinds written, so every reader searches a kind at once
        from its first vectors on (not only at its next look at the server's kinds)."""
        if self.shared is None:
            return
        ts = self._write_ts()
        written = {str(kind) for kind in kinds}

        def change(old: Any) -> dict[str, Any]:
            old = old if isinstance(old, dict) else {}
            return {
                "ts": max(int(old.get("ts", 0)), ts),
                "deletes": int(old.get("deletes", 0)) + (1 if deleted else 0),
                "kinds": sorted({*map(str, old.get("kinds", [])), *written}),
                "writes": int(old.get("writes", 0)) + (1 if written else 0),  # for _forget_emptied
            }

        self.shared.update(self._ts_key, change)

    def _forget_emptied(self, candidates: set[str]) -> None:
        """A shared collection, after a delete: drop from the writers' record (and this process's kinds) each
        kind of ``candidates`` whose last vector went, so no process lists or searches it any more. Checked on
        the server (``Strong``, one query per kind) outside the store's lock, then dropped only if no process
        recorded a write of any kind meanwhile (the record's ``writes``: a write recorded before the check was
        seen by it, one after it may hold the kind again); otherwise checked again, up to 3 times."""
        if self.shared is None:
            return
        for _ in range(3):
            record = self._shared_record()
            listed = {str(kind) for kind in record.get("kinds", [])} & set(map(str, candidates))
            empty = {kind for kind in sorted(listed) if not self._holds(kind)}
            if not empty:
                return
            stamp, moved = int(record.get("writes", 0)), [False]

            def change(old: Any, stamp: int = stamp, empty: set[str] = empty, moved: list[bool] = moved) -> Any:
                old = old if isinstance(old, dict) else {}
                if int(old.get("writes", 0)) != stamp:
                    moved[0] = True
                    return old
                return {**old, "kinds": sorted(set(map(str, old.get("kinds", []))) - empty)}

            self.shared.update(self._ts_key, change)
            if not moved[0]:
                self._kinds = self._kinds - empty
                return
        log.debug("%s: kinds %s kept in the record: other processes kept writing", self.collection, sorted(empty))

    def _holds(self, kind: str) -> bool:
        """Whether the collection holds a vector of ``kind`` now (``Strong``: after every delete so far)."""
        hits = self._call(
            "query",
            self.client.query,
            self.collection,
            filter=f"kind == {json.dumps(str(kind))}",
            output_fields=["row"],
            limit=1,
            consistency_level="Strong",
        )
        return bool(hits)

    def _shared_record(self) -> dict[str, Any]:
        """The writers' record of a shared collection (timestamp, deletes, kinds); its kinds join this
        process's."""
        assert self.shared is not None
        value = self.shared.get(self._ts_key)
        value = value if isinstance(value, dict) else {}
        kinds = {str(kind) for kind in value.get("kinds", [])}
        if not kinds <= self._kinds:
            self._kinds = self._kinds | kinds
        return value

    def _read_consistency(self) -> dict[str, Any]:
        """The consistency arguments of the next read. ``Strong`` when configured, or right after this
        process's delete (``_fence``). A private collection: the configured level (``Session`` waits for this
        process's writes). A shared one read at ``Session``: a guarantee timestamp — the newest of this
        process's write and the one the store records (written before any write is acknowledged), so the read
        sees every write acknowledged before it began, by any process, without waiting for the server's next
        time tick as ``Strong`` does; ``Strong`` where the store records a delete this process has not read
        since (its timestamp is unknown) or no timestamp at all."""
        strong = {"consistency_level": "Strong"}
        if self.consistency == "Strong":
            return strong
        if self._fence:
            self._fence = False
            return strong
        if self.shared is None or self.consistency != "Session":
            return {"consistency_level": self.consistency}
        value = self._shared_record()
        deletes = int(value.get("deletes", 0))
        ts = max(int(value.get("ts", 0)), self._write_ts())
        if deletes != self._deletes_seen or ts <= 0:
            self._deletes_seen = deletes  # read before this Strong read: a later delete makes the next one Strong
            return strong
        return {"consistency_level": "Customized", "guarantee_timestamp": ts}

    def _rows_of(self, node: Node) -> np.ndarray | None:
        if self._row_matcher is None:
            return None
        return np.asarray(self._row_matcher.match_expr(FilterExpr(node)), np.int64)

    def similarity(self, vector: np.ndarray, rows: Sequence[int], kind: str) -> npt.NDArray[np.float32]:
        out = np.zeros(len(rows), dtype=np.float32)
        wanted = sorted({int(r) for r in rows if r >= 0})
        if not wanted or not KIND_NAME.fullmatch(str(kind)):
            return out
        hits = self._call(
            "query",
            self.client.query,
            self.collection,
            filter=f"kind == {json.dumps(str(kind))} and row in [{', '.join(map(str, wanted))}]",
            output_fields=["row", "vector"],
            **self._read_consistency(),
        )
        q = np.asarray(vector, np.float32).reshape(-1)
        found = {int(hit["row"]): float(np.asarray(hit["vector"], np.float32) @ q) for hit in hits}
        return np.array([found.get(int(r), 0.0) for r in rows], dtype=np.float32)

    def checkpoint(self, seq: int) -> bool:
        """Record (atomically) that the collection reflects store sequence ``seq``; nothing is written when
        nothing changed since the state was loaded or last saved. No flush: Milvus keeps every acknowledged
        write in its log (it seals segments on its own schedule)."""
        if self.shared is not None:  # the caller has applied every change up to seq (a catch-up)
            before = self._saved_seq
            self._set_marker(seq)
            self._dirty = False
            return self._saved_seq != before
        if seq == self._saved_seq and not self._dirty:
            return False
        state = {
            "seq": int(seq),
            "format_version": FORMAT_VERSION,
            **self._config,
            "uri": self.uri,
            "kinds": sorted(self._kinds),
            "wide": sorted(self._wide),
            **({"high": self._high} if self._high is not None else {}),
        }

        def write(tmp: Path) -> None:
            (tmp / STATE).write_text(json.dumps(state, indent=2), encoding="utf-8")

        write_dir(self._folder, write)
        self._saved_seq, self._dirty = int(seq), False
        return True

    def close(self) -> None:
        """Close the connection (the collection stays on the server)."""
        try:
            self.client.close()
        except Exception as exc:  # noqa: BLE001 - closing a dead connection is not an error
            log.debug("milvus close: %s", exc)

    def on_put(self, stored: Sequence[StoredItem]) -> None:
        self.upsert(stored)

    def on_delete(self, rows: Sequence[int]) -> None:
        self.remove(rows)


def progress_keys(collection: str) -> tuple[str, str]:
    """The store's meta keys of a collection's progress: the marker (what the collection holds, up to which
    change) and the newest write timestamp any process recorded (with the shared delete count)."""
    return f"milvus:{collection}", f"milvus-ts:{collection}"


def shared_name(identity: str) -> str:
    """The default collection of a shared store's vector epoch: ``xmodal_<schema>_<hash of the identity>``."""
    schema = identity.split("/")[1] if identity.count("/") >= 2 else ""
    digest = hashlib.blake2b(identity.encode(), digest_size=DIGEST).hexdigest()
    return f"xmodal_{schema[:32]}_{digest}" if schema.isidentifier() else f"xmodal_{digest}"


def _ours(description: object) -> bool:
    """Whether a collection's description says this backend made it (a shared one: with its store's tag)."""
    text = str(description)
    return text == DESCRIPTION or text.startswith(DESCRIPTION + TAG)


def _gone(exc: BaseException) -> bool:
    """Whether ``exc`` says the collection does not exist (dropped)."""
    text = str(exc).lower()
    return "collection not found" in text or "can't find collection" in text or "collection not exist" in text


def server_version(text: str) -> tuple[int, ...]:
    """``"v2.3.5"`` → ``(2, 3, 5)``; a version it cannot read (a development build) counts as new enough."""
    numbers = re.findall(r"\d+", text.split("-")[0])
    return tuple(int(n) for n in numbers[:3]) if numbers else (999,)


def _pks(row: int, kinds: Iterable[str]) -> list[str]:
    """The primary keys of ``row``'s vectors of these kinds."""
    return [f"{int(row)}/{kind}" for kind in kinds]


def _unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the server could not be reached (worth a retry), not that a call was refused."""
    try:
        import grpc
        from pymilvus.exceptions import MilvusException
    except ImportError:  # pragma: no cover - pymilvus brings both
        return False
    if isinstance(exc, grpc.RpcError):
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        return code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    if isinstance(exc, MilvusException):
        text = str(exc).lower()
        return any(
            s in text for s in ("unavailable", "fail connecting", "connect", "deadline", "not ready", "server is")
        )
    return isinstance(exc, (ConnectionError, TimeoutError))


def _brief(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _ordered(kinds: Iterable[str]) -> list[str]:
    """The built-in kinds in their usual order (text, image, combined), then any other kind by name."""
    present = {str(kind) for kind in kinds}
    builtin = [kind.value for kind in VectorKind if kind.value in present]
    return builtin + sorted(present - set(builtin))


if TYPE_CHECKING:  # the registry loads it lazily: check the protocols statically here
    from .base import BackendFactory, RowListing

    _FACTORY: BackendFactory = MilvusBackend
    _LISTS: type[RowListing] = MilvusBackend
