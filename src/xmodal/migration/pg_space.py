"""The next vector set of a PostgreSQL store (:class:`~xmodal.migration.space.Space`): three tables in the store's
own schema, ``reindex_next_meta``, ``reindex_next_vectors`` and ``reindex_next_failures``, so every server and
CLI of the store sees the reindex under way (``info``, ``reindex --status``) and any of them may resume it.

The tables are made, with the whole starting state, in one transaction: they exist only for a started reindex.
Writers of the set take the advisory lock ``reindex`` of the schema (the switch takes it too, after the store's
write lock, so the set it copies is not changing under it); the store's writers never wait for the build.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..store.postgres import PostgresStore
from .space import Space, Sql, initial_state, put_meta

PREFIX = "reindex_next_"
TABLES = f"""
CREATE TABLE IF NOT EXISTS {PREFIX}meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS {PREFIX}vectors (row BIGINT NOT NULL, kind TEXT NOT NULL, vector BYTEA NOT NULL,
    PRIMARY KEY (row, kind));
CREATE TABLE IF NOT EXISTS {PREFIX}failures (row BIGINT PRIMARY KEY, id TEXT NOT NULL, reason TEXT NOT NULL)
"""


class PgSql:
    """:class:`~xmodal.migration.space.Sql` on a psycopg cursor (``?`` placeholders written as ``%s``)."""

    def __init__(self, cur: Any) -> None:
        self.cur = cur

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.cur.execute(sql.replace("?", "%s"), tuple(params))
        return list(self.cur.fetchall()) if self.cur.description is not None else []

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.cur.executemany(sql.replace("?", "%s"), [tuple(row) for row in rows])


def lock_key(store: PostgresStore) -> int:
    """The advisory lock of the writers of ``store``'s next vector set."""
    return zlib.crc32(f"xmodal.reindex.{store.schema}".encode())


class PgNextSpace(Space):
    """The next vector set in a PostgreSQL store's schema (see the module notes). Use :meth:`find` or
    :meth:`create`."""

    META, VECTORS, FAILURES = f"{PREFIX}meta", f"{PREFIX}vectors", f"{PREFIX}failures"

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    @property
    def where(self) -> str:
        return f"{self.store.where}, tables {PREFIX}*"

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.store.read(sql.replace("?", "%s"), params)

    def _transaction(self, work: Callable[[Sql], None]) -> None:
        self.store.write_locked(lambda cur: work(PgSql(cur)), "a reindex write", lock="reindex")

    @classmethod
    def find(cls, store: PostgresStore) -> PgNextSpace | None:
        """The store's next vector set, or None when no reindex is under way."""
        found = store.read("SELECT to_regclass(%s) IS NOT NULL", (f"{PREFIX}meta",))
        if not found[0][0]:
            return None
        space = cls(store)
        if space.get("started_at") is None:  # not made by create() (which writes it with the tables): dropped
            space.drop()
            return None
        return space

    @classmethod
    def create(cls, store: PostgresStore, config: Mapping[str, Any], *, started_seq: int, total: int) -> PgNextSpace:
        """A new, empty next vector set for the encoder ``config`` (tables and state in one transaction)."""
        space = cls(store)

        def work(db: Sql) -> None:
            for statement in TABLES.split(";\n"):
                db.execute(statement)
            put_meta(db, space.META, {**initial_state(config, started_seq, total), "started_at": time.time()})

        space._transaction(work)
        return space

    def drop_tables(self, db: Sql) -> None:
        """The statements that drop the set, in the caller's transaction (the switch's)."""
        for table in (self.META, self.VECTORS, self.FAILURES):
            db.execute(f"DROP TABLE IF EXISTS {table}")

    def close(self) -> None:
        """Nothing to release: the store's connections are its owner's."""

    def drop(self) -> None:
        self._transaction(self.drop_tables)


def pg_reindex_summary(store: PostgresStore) -> dict[str, Any] | None:
    """What ``info`` shows of a reindex under way in ``store`` (None when there is none)."""
    space = PgNextSpace.find(store)
    return None if space is None else space.summary()
