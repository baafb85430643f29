"""Learned state shared through the PostgreSQL store: each named state (the bandit policy, the ranker) is a set
of small files in its own plain formats (JSON, ``.npy``, LightGBM text; never pickle), saved whole in one row
of the ``learned_state`` table with a version and the feedback-log position it reflects.

A server that saves a state sends a notice on the store's ``state`` topic; every other server's followers of
that name (:meth:`SharedState.follow`) load the newer version (a ranker trained on one server is used by all).
A state a server (re)opens with is the newest saved one; what it learned online since is in the shared
feedback log, replayed from the position the state records (:class:`~xmodal.feedback.postgres_log.PostgresFeedbackLog`).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import StorageError
from .files import write_bytes, write_json
from .postgres import PostgresStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS learned_state (
    name TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    marks TEXT NOT NULL,
    files TEXT NOT NULL,
    saved_at DOUBLE PRECISION NOT NULL
)
"""


#: The file in a state's folder naming the versions its files are (so an unchanged state is not fetched again)
MARKER = ".xmodal-shared.json"


def _held(folder: Path) -> dict[str, int]:
    try:
        found = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in found.items()} if isinstance(found, dict) else {}


#: Serializes :func:`_hold`'s read-modify-write: a server's own save and its listener's load of that save
#: (the notice reaches this process too) may record into one folder at once
_HOLDING = threading.Lock()


def _hold(folder: Path, name: str, version: int) -> None:
    """Record that ``folder`` holds version ``version`` of state ``name``."""
    with _HOLDING:
        write_json(folder / MARKER, dict(sorted({**_held(folder), name: int(version)}.items())))


class SharedState:
    """Named learned states in the store's ``learned_state`` table, with the versions this process has seen."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self._seen: dict[str, int] = {}
        #: the version of each name this process is saving: its notice reaches this process's listener too,
        #: and is no news here (set before the commit that sends it)
        self._saving: dict[str, int] = {}
        self._followers: dict[str, list[Callable[[], None]]] = {}
        self._lock = threading.Lock()
        store.write_locked(lambda cur: cur.execute(SCHEMA), "creating the learned-state table", lock="state")
        store.follow("state", self._heard)

    def save(self, name: str, folder: Path, files: Sequence[str], marks: Sequence[int] = ()) -> int:
        """Save ``files`` of ``folder`` (just written by their owner) as state ``name``, reflecting the feedback
        log up to ``marks``; returns the new version. Every other server is told."""
        try:
            blobs = {f: base64.b64encode((folder / f).read_bytes()).decode("ascii") for f in files}
        except OSError as exc:
            raise StorageError(f"{folder}: cannot read the learned state {name!r} to share it ({exc})") from exc
        payload, at = json.dumps(blobs, sort_keys=True), json.dumps([int(m) for m in marks])

        def run(cur: Any) -> int:
            cur.execute(
                "INSERT INTO learned_state VALUES (%s, 1, %s, %s, extract(epoch from now()))"
                " ON CONFLICT (name) DO UPDATE SET version = learned_state.version + 1, marks = EXCLUDED.marks,"
                " files = EXCLUDED.files, saved_at = EXCLUDED.saved_at RETURNING version",
                (name, at, payload),
            )
            version = int(cur.fetchone()[0])
            with self._lock:
                self._saving[name] = version
            self.store.notify(cur, "state", name)
            return version

        try:
            version = self.store.write_locked(run, f"saving the learned state {name!r}", lock="state")
            _hold(folder, name, version)
            with self._lock:
                self._seen[name] = max(self._seen.get(name, 0), version)
        finally:
            with self._lock:
                self._saving.pop(name, None)
        return version

    def load(self, name: str, folder: Path) -> list[int] | None:
        """Write the newest saved state ``name`` into ``folder`` (its files, as saved; nothing when the folder
        already holds that version, :data:`MARKER`); return the feedback-log marks it reflects, or None when
        none was saved."""
        found = self.store.read("SELECT version, marks FROM learned_state WHERE name = %s", (name,))
        if not found:
            return None
        version, marks = int(found[0][0]), found[0][1]
        if _held(folder).get(name) != version:
            found = self.store.read("SELECT version, marks, files FROM learned_state WHERE name = %s", (name,))
            version, marks, files = int(found[0][0]), found[0][1], found[0][2]
            for file, blob in json.loads(files).items():
                if "/" in file or file.startswith("."):
                    raise StorageError(f"{self.store.where}: learned state {name!r} names a bad file {file!r}")
                write_bytes(folder / file, base64.b64decode(blob))
            _hold(folder, name, version)
        with self._lock:
            self._seen[name] = version
        return [int(m) for m in json.loads(marks)]

    def version(self, name: str) -> int:
        """The newest saved version of ``name`` (0: none)."""
        found = self.store.read("SELECT version FROM learned_state WHERE name = %s", (name,))
        return int(found[0][0]) if found else 0

    def follow(self, name: str, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (on the store's listener thread) when another server saved a newer ``name``."""
        with self._lock:
            self._followers.setdefault(name, []).append(callback)

    def _heard(self) -> None:
        with self._lock:
            names = list(self._followers)
        if not names:
            return
        found = self.store.read("SELECT name, version FROM learned_state WHERE name = ANY(%s)", (names,))
        for name, version in found:
            with self._lock:
                newer = int(version) > max(self._seen.get(str(name), 0), self._saving.get(str(name), 0))
                callbacks = list(self._followers.get(str(name), ())) if newer else []
            for callback in callbacks:
                callback()
