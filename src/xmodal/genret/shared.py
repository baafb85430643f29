"""The generative model shared through a PostgreSQL store (several servers, one model).

``xmodal genret train`` on any server saves the model's files (:data:`FILES`) in the store as the learned state
:data:`MODEL_STATE` (:class:`~xmodal.store.postgres_state.SharedState`); every server fetches the newest when
it opens and when told of a new one, then loads it and catches its trie up with the store's change log (the
trie records the store sequence it reflects, and every server shares the store's sequence).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..store.files import folder_lock

if TYPE_CHECKING:
    from ..store.postgres_state import SharedState

MODEL_STATE = "genret/model"
FILES = ("manifest.json", "model.safetensors", "trie.safetensors")


def fetch(shared: SharedState, folder: Path) -> bool:
    """Write the newest shared model into ``folder`` (unless it holds it already); whether one was shared."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(folder.parent):  # a reader of the model never sees it half written
        return shared.load(MODEL_STATE, folder) is not None


def share(shared: SharedState, folder: Path) -> int:
    """Save the model just installed in ``folder`` for every server; returns its version."""
    return shared.save(MODEL_STATE, folder, [f for f in FILES if (folder / f).exists()])
