"""Privacy-complete delete: what a delete does after the store commit, so that nothing in the index folder
still holds a deleted item's text, media or vectors.

The store's transaction (:meth:`~xmodal.store.sqlite.SQLiteStore.erase`) removes the item, its segments,
vectors and full-text row and records the audit entry; ``secure_delete`` zeroes the pages it frees. Then:

- the media files no remaining item holds are deleted (media are shared by content);
- with ``purge_feedback``, the feedback log's events of the items and their places in shown lists go (without
  it, the log keeps only the item ids: never text, media or vectors);
- with ``scrub`` (the default): the vector backend drops its tombstones (an HNSW graph keeps removed vectors
  until compacted), the vector checkpoint and every extension's state are written (the generative trie, the
  memory index's predicted queries), and the store merges its full-text segments and truncates its
  write-ahead log. A bulk delete may pass ``scrub=False`` for each batch and call :func:`scrub` once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .backends import Purging, VectorBackend
from .feedback.base import FeedbackStore
from .media import Media
from .rwlock import RWLock
from .store.base import Store
from .store.sqlite import Erased

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Traces:
    """Where an index keeps derived copies of its items: the parts an erasure cleans."""

    store: Store
    media: Media
    feedback_log: FeedbackStore
    backend: VectorBackend
    lock: RWLock  # the backend changes under it alone
    checkpoint: Callable[[], None]  # the engine's: the vector backend and every extension


@dataclass(slots=True)
class Erasure:
    """What was cleaned after a delete (for the caller's report and the log)."""

    media_removed: list[str] = field(default_factory=list)
    feedback: dict[str, int] = field(default_factory=dict)
    scrubbed: bool = False


def erase_traces(
    traces: Traces, asked: Sequence[str], erased: Erased, *, purge_feedback: bool, scrub_now: bool
) -> Erasure:
    """Clean what the store's delete of ``asked`` left elsewhere (see the module notes). The feedback of an id
    asked for is purged even when the item was already gone (deleted before without the purge)."""
    done = Erasure()
    if purge_feedback:
        done.feedback = traces.feedback_log.forget([*asked, *erased.ids])
    held = traces.store.media_in_use(erased.media)
    for ref in erased.media:
        if ref not in held and traces.media.remove(ref):
            done.media_removed.append(ref)
    if scrub_now and erased.rows:
        scrub(traces)
        done.scrubbed = True
    log.info(
        "deleted %d items (%d media files, feedback purged: %s, scrubbed: %s)",
        len(erased.ids),
        len(done.media_removed),
        done.feedback or "no",
        done.scrubbed,
    )
    return done


def scrub(traces: Traces) -> None:
    """Write every derived structure without the deleted items and leave no old page behind: the vector
    backend's tombstones dropped and checkpointed, the extensions checkpointed, the store's full-text segments
    merged and its write-ahead log truncated."""
    if isinstance(traces.backend, Purging):
        with traces.lock:
            traces.backend.purge()
    traces.checkpoint()
    traces.store.scrub()
