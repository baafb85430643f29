"""The vector epoch: which encoder's vectors an index holds. ``xmodal reindex --switch`` moves it on, and a
store's writes check it, so a process still holding the old encoder cannot add vectors of it after a switch."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Final

EPOCH_KEY: Final = "vectors_epoch"  # the meta key of the epoch (a JSON value; absent before the first switch)
ANY_EPOCH: Final = object()  # what a store holds when it was opened without an epoch to keep to: writes not checked


def moved(held: object, read: Callable[[], Sequence[Any] | None]) -> bool:
    """Whether the epoch a process ``held`` when it opened the store differs from the stored one: ``read()``
    gives the meta row of :data:`EPOCH_KEY` (its value as JSON text first; None when absent), and is not called
    when the process holds :data:`ANY_EPOCH` (nothing to check, nothing read)."""
    if held is ANY_EPOCH:
        return False
    row = read()
    return (None if row is None else json.loads(row[0])) != held
