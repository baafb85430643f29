"""The settings every server of a shared (PostgreSQL) store sees, for a backend that keeps one copy of its data
for all of them (:class:`xmodal.backends.base.SharedSettings`): the store's identity and atomic updates of a
JSON value in the store's ``meta`` table."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from .postgres import PostgresStore


class PostgresShared:
    """:class:`~xmodal.backends.base.SharedSettings` of a PostgreSQL store (for the vectors of ``epoch``)."""

    def __init__(self, store: PostgresStore, epoch: Any = None) -> None:
        self._store = store
        database = ""
        try:
            from psycopg.conninfo import conninfo_to_dict

            database = str(conninfo_to_dict(store.dsn).get("dbname") or "")
        except Exception:  # noqa: BLE001 - an unparsable DSN fails on connecting, not here
            database = ""
        self._identity = f"postgres:{database}/{store.schema}/{epoch if epoch is not None else ''}"

    @property
    def identity(self) -> str:
        """The same in every process of this store and vector epoch (database, schema, epoch; no host: one
        database may be reached by several names)."""
        return self._identity

    def get(self, key: str) -> Any:
        return self._store.get_meta(key)

    def update(self, key: str, change: Callable[[Any], Any]) -> Any:
        """``change(old)`` stored under ``key`` in one transaction, updaters of the settings in turn."""

        def work(cur: Any) -> Any:
            cur.execute("SELECT value FROM meta WHERE key = %s FOR UPDATE", (key,))
            found = cur.fetchone()
            new = change(None if found is None else json.loads(found[0]))
            cur.execute(
                "INSERT INTO meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (key, json.dumps(new)),
            )
            return new

        return self._store.write_locked(work, "a shared settings write", lock="shared-settings")

    def delete(self, keys: Sequence[str]) -> None:
        """Remove ``keys`` (absent ones ignored) in one transaction."""

        def work(cur: Any) -> None:
            cur.execute("DELETE FROM meta WHERE key = ANY(%s)", (list(keys),))

        self._store.write_locked(work, "a shared settings delete", lock="shared-settings")
