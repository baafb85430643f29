"""The feedback log seam: what the engine, the learners and the CLI ask of a feedback log.

:class:`~xmodal.feedback.log.FeedbackLog` keeps the log in the index's own SQLite file;
:class:`~xmodal.feedback.postgres_log.PostgresFeedbackLog` keeps it in the PostgreSQL store shared by several
servers, where every server's learners hear of every server's impressions and events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..store.postgres_state import SharedState
    from .log import Event, EventListener, Impression


class FeedbackStore(Protocol):
    """Impressions (what was shown for a query) and events (what the user did), committed when a call returns."""

    @property
    def shared_state(self) -> SharedState | None:
        """Where learned state lives for every server (None: in this process's index folder only)."""
        ...

    def close(self) -> None: ...

    def subscribe(self, listener: EventListener) -> None:
        """Call ``listener(event, impression)`` after every committed event (online learners)."""
        ...

    def subscribe_impressions(self, listener: Callable[[Impression], None]) -> None:
        """Call ``listener(impression)`` after every committed impression."""
        ...

    def log_impression(
        self,
        query: str,
        shown: Sequence[str],
        *,
        scores: Sequence[float] = (),
        provenance: Sequence[str] = (),
        user: str | None = None,
        context: Mapping[str, Any] | None = None,
        plan: Sequence[Mapping[str, Any]] = (),
        mode: str = "dense",
        timestamp: float | None = None,
    ) -> str: ...

    def batch(self) -> AbstractContextManager[None]:
        """A block whose impressions (logged on this thread) commit together when it ends, heard by the
        listeners after that; an error leaving it rolls them back (a log may commit each on its own)."""
        ...

    def record_event(
        self,
        query_id: str,
        item_id: str,
        event: str = "click",
        *,
        position: int | None = None,
        value: float | None = None,
        timestamp: float | None = None,
    ) -> Event: ...

    def impression(self, query_id: str) -> Impression: ...

    def impressions(self) -> Iterator[Impression]: ...

    def events(self, query_id: str | None = None) -> list[Event]: ...

    def forget(self, item_ids: Sequence[str]) -> dict[str, int]: ...

    def marks(self) -> tuple[int, int]:
        """Where the log ends now: (the last impression's sequence number, the last event's id)."""
        ...

    def shown_since(
        self, after: int, normalized: str | None = None, limit: int = -1
    ) -> list[tuple[int, str, tuple[str, ...]]]: ...

    def rewards_since(
        self, after: int, normalized: str | None = None, limit: int = -1
    ) -> list[tuple[int, str, str, float]]: ...

    def popularity(self) -> dict[str, float]: ...

    def user_stats(self, user: str) -> dict[str, float]:
        """One user's history over their last :data:`~xmodal.feedback.log.USER_WINDOW` searches: ``searches``
        (at most that many), ``events`` on them and ``rate`` (events per search)."""
        ...

    def counts(self) -> dict[str, int]: ...
