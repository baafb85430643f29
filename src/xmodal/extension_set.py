"""The extensions an engine opened: each with the store sequence it reflects, kept in step with writes.

A write is committed before any extension hears of it, and the engine tells the extensions outside its
readers–writer lock (each guards its own state), so searches do not wait for their work. An extension that
fails on a change is marked stale (it keeps the sequence it last reflected) and caught up from the change log
at the next sync. A failing extension never turns a committed write into a reported failure.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .changes import ChangeSource, replay
from .errors import ConfigError, DiskFull, ValidationError
from .extension import Ahead, Background, EngineView, Extension, Mode, Screen, extension_class
from .records import Hits, Item, Query
from .screening import Screened, screen_items
from .store.space import space_guard
from .store.sqlite import StoredItem

log = logging.getLogger(__name__)


class ExtensionSet:
    """Opened extensions by name, their modes, and the sequence each reflects."""

    def __init__(self) -> None:
        self._opened: dict[str, Extension] = {}
        self._seq: dict[str, int] = {}
        self._modes: dict[str, Mode] = {}
        self._folder = Path(".")  # the index folder (named in a disk-full warning)
        self._screen_list: list[tuple[str, Screen]] = []

    @classmethod
    def open(cls, names: Sequence[str], view: EngineView) -> ExtensionSet:
        """Open each named extension in its folder under the index and catch it up with the store."""
        opened = cls()
        opened._folder = view.path
        try:
            for name in names:
                extension = extension_class(name)()
                opened._opened[name] = extension
                seq = extension.open(view, view.path / name)
                opened._seq[name] = replay(view, seq, extension)
                opened._modes.update(extension.modes())
                if isinstance(extension, Screen):
                    opened._screen_list.append((name, extension))
        except BaseException:
            opened.close()
            raise
        return opened

    def __iter__(self) -> Iterator[str]:
        return iter(self._opened)

    def get(self, name: str) -> Extension:
        try:
            return self._opened[name]
        except KeyError:
            raise ConfigError(
                f"extension {name!r} is not enabled for this index (enabled: {', '.join(self._opened) or 'none'})"
            ) from None

    def modes(self) -> Mapping[str, Mode]:
        return self._modes

    # -- screens (the guards): checks before and after each search --------------------------------
    def _screens(self) -> list[tuple[str, Screen]]:
        return self._screen_list

    def screen_query(self, query: Query, caller: str | None) -> tuple[Query, dict[str, Any]]:
        """The query as every screen passes it, and what each decided (by extension name)."""
        notes: dict[str, Any] = {}
        for name, screen in self._screens():
            query, said = screen.screen_query(query, caller)
            if said:
                notes[name] = said
        return query, notes

    def screen_hits(
        self, hits: Hits, items: tuple[Item, ...], caller: str | None, safe: str | None = None
    ) -> tuple[Hits, tuple[Item, ...], dict[str, list[dict[str, str]]]]:
        """The hits every screen keeps (under the query's ``safe`` level), and the flagged ones' findings by id."""
        flags: dict[str, list[dict[str, str]]] = {}
        for _, screen in self._screens():
            hits, items, found = screen.screen_hits(hits, items, caller, safe)
            for item_id, findings in found.items():
                flags.setdefault(item_id, []).extend(findings)
        return hits, items, flags

    def screen_items(self, items: Sequence[Item], caller: str | None, safe: str | None = None) -> Screened:
        """Stored items (a get, a scroll's page, an export's batch) through the screens, as a search's hits are
        (:mod:`xmodal.screening`): those kept, and why each other one is withheld."""
        return screen_items(self._screens(), items, caller, safe)

    def item_status(self, item_id: str) -> dict[str, Any] | None:
        for _, screen in self._screens():
            status = screen.item_status(item_id)
            if status is not None:
                return status
        return None

    def describe_screens(self) -> dict[str, Any]:
        return {name: screen.describe() for name, screen in self._screens()}

    def mode(self, name: str, known: Sequence[str]) -> Mode:
        try:
            return self._modes[name]
        except KeyError:
            raise ValidationError("mode", f"unknown search mode {name!r}", f"use one of {', '.join(known)}") from None

    # -- keeping in step with the store ------------------------------------------------------------
    def ahead(self, items: Sequence[Item], size: int) -> None:
        """Tell each extension that wants to know (:class:`Ahead`) about a chunk of an add before it is
        encoded; a failure there is logged and changes nothing (``on_put`` does the work then)."""
        for name, extension in self._opened.items():
            if isinstance(extension, Ahead):
                try:
                    extension.ahead(items, size)
                except Exception:
                    log.exception("extension %r failed to start work ahead of an add; on_put does it", name)

    def apply(self, before: int, after: int, stored: Sequence[StoredItem], deleted: Sequence[int]) -> None:
        """Tell every extension that reflected ``before`` about the changes up to ``after``."""
        for name, extension in self._opened.items():
            if self._seq[name] != before:
                continue  # stale: caught up from the log by sync()
            try:
                if stored:
                    extension.on_put(stored)
                if deleted:
                    extension.on_delete(deleted)
                self._seq[name] = after
            except Exception:
                log.exception("extension %r failed on a committed write; it will catch up from the change log", name)

    def sync(self, store: ChangeSource) -> None:
        """Catch every extension up with the store (those that are stale, or behind another process)."""
        for name, extension in self._opened.items():
            try:
                self._seq[name] = replay(store, self._seq[name], extension)
            except Exception:
                log.exception("extension %r failed to catch up; it will try again", name)

    def positions(self) -> dict[str, int]:
        """The store sequence each extension reflects."""
        return dict(self._seq)

    def behind(self, seq: int) -> list[str]:
        """Extensions behind store sequence ``seq`` (one missed a change by failing on it)."""
        return [name for name, have in self._seq.items() if have < seq]

    def checkpoint(self) -> None:
        for extension in self._opened.values():
            extension.checkpoint()

    def stop(self) -> None:
        """End every extension's background work (:class:`Background`) and wait for it."""
        for extension in self._opened.values():
            if isinstance(extension, Background):
                extension.stop()

    def close(self) -> None:
        for name, extension in self._opened.items():
            try:
                with space_guard(self._folder):
                    extension.close()
            except DiskFull as exc:  # derived state: caught up from the change log at the next open
                log.warning("extension %r: state not saved: %s", name, exc)
            except Exception:
                log.exception("extension %r failed to close", name)
