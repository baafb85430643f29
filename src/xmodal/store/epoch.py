"""The vector epoch: which encoder's vectors an index holds. ``xmodal reindex --switch`` moves it on, and a
store's writes check it, so a process still holding the old encoder cannot add vectors of it after a switch."""

from __future__ import annotations

import json
from typing import Final

EPOCH_KEY: Final = "vectors_epoch"  # the meta key of the epoch (a JSON value; absent before the first switch)
ANY_EPOCH: Final = object()  # what a store holds when it was opened without an epoch to keep to: writes not checked


def moved(held: object, stored: str | None) -> bool:
    """Whether the epoch a process ``held`` when it opened the store (:data:`ANY_EPOCH`: none) differs from the
    one ``stored`` now (its meta value as JSON text, None when absent)."""
    return held is not ANY_EPOCH and (None if stored is None else json.loads(stored)) != held
