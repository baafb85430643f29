"""Stale markers: derived structures whose vectors no longer match the index's encoder.

``xmodal reindex --switch`` records, in the same transaction that switches the vectors, a marker for each
structure built from the old vectors (meta ``stale``: ``{name: {"reason": ..., "fix": ...}}``): the
generative index's codes (``genret``) and the ranker's features (``ltr``, whose dense-score features came
from the old vectors). ``info`` and ``genret status`` show them; retraining the structure clears its marker.
"""

from __future__ import annotations

from typing import Any, Protocol

KEY = "stale"
FIXES = {
    "genret": ("its semantic-ID codes were learned from the old encoder's vectors", "xmodal genret train --fresh"),
    "ltr": ("the ranker's dense-score features were measured with the old encoder", "xmodal ltr train"),
}


class MetaStore(Protocol):
    def get_meta(self, key: str) -> Any: ...

    def set_meta(self, key: str, value: Any) -> None: ...


def markers_for_switch(old: str, new: str, names: list[str] | None = None) -> dict[str, dict[str, str]]:
    """The markers a switch from encoder ``old`` to ``new`` records (for ``names``, default every one)."""
    return {
        name: {"reason": f"encoder switched from {old} to {new}: {why}", "fix": fix}
        for name, (why, fix) in FIXES.items()
        if names is None or name in names
    }


def stale(store: MetaStore) -> dict[str, dict[str, str]]:
    """The current markers (empty when nothing is stale)."""
    found = store.get_meta(KEY)
    return dict(found) if isinstance(found, dict) else {}


def clear(store: MetaStore, name: str) -> None:
    """Drop ``name``'s marker once it is rebuilt from the current vectors."""
    marks = stale(store)
    if name in marks:
        del marks[name]
        store.set_meta(KEY, marks)
