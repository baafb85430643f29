"""The memory index's priors held in memory (:mod:`xmodal.ltr.memory_priors`) answer as the file does, through
adds, replacements, deletes and folds, with and without the feedback log."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_memory_persist import QUERIES, open_index, products
from xmodal import Engine, Item
from xmodal.ltr import memory_priors
from xmodal.ltr.extension import pipeline
from xmodal.ltr.memory_state import MemoryState, Recall, predicted_keys
from xmodal.ltr.text import normalize_query


def _keys(state: MemoryState) -> list[str]:
    """Every key the file or the pending changes hold, every item's predicted keys, and a few others."""
    keys = {normalize_query(q) for q in QUERIES} | {"nothing at all"} | set(state._pending_keys)
    keys |= {str(k) for (k,) in state._db.execute("SELECT DISTINCT key FROM prior")}
    for item in products(60):
        keys |= predicted_keys(item)
    return sorted(keys)


def _loaded(state: MemoryState) -> None:
    state.recall("start the pass")
    thread = state._mirror._thread
    assert thread is not None
    thread.join(10)
    assert state._mirror._rows is not None


def _from_file(state: MemoryState, key: str) -> Recall:
    """The look-up as it reads with nothing held in memory (the file and the pending changes)."""
    mirror = state._mirror
    mirror.rows = lambda key: None  # type: ignore[method-assign]
    try:
        with state._lock:
            return state._read(key, state.log.marks() if state.log is not None else (0, 0))
    finally:
        del mirror.rows


def _same(engine: Engine) -> None:
    state = pipeline(engine).memory.state
    keys = _keys(state)
    assert any(state.recall(k).pairs for k in keys)
    for key in keys:
        assert state.recall(key) == _from_file(state, key), key


@pytest.mark.parametrize("logged", [False, True])
def test_the_held_priors_answer_as_the_file(tmp_path: Path, logged: bool) -> None:
    engine = open_index(tmp_path / "idx")
    try:
        engine.add(products(40))
        if logged:
            engine.search("red leather boots", k=5, log=True)
        state = pipeline(engine).memory.state
        state.checkpoint()
        _loaded(state)
        _same(engine)
        dropped = state._mirror._gen
        engine.add(products(10, start=40))  # pending: override the held rows
        engine.add([Item.create("p3", title="violet velvet slippers", attributes={"color": "violet"})])
        engine.delete(["p5", "p41"])
        _same(engine)
        state.checkpoint()  # folded: the held priors are dropped and read again
        assert state._mirror._gen > dropped
        _same(engine)
        _loaded(state)
        _same(engine)
        assert state.recall(normalize_query("violet velvet slippers")).pairs
        assert not state.recall(normalize_query(products(6)[5].title)).pairs
    finally:
        engine.close()


def test_a_table_over_the_limit_stays_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory_priors, "MAX_PAIRS", 5)
    engine = open_index(tmp_path / "idx")
    try:
        engine.add(products(20))
        state = pipeline(engine).memory.state
        state.checkpoint()
        state.recall("start the pass")
        thread = state._mirror._thread
        assert thread is not None
        thread.join(10)
        assert state._mirror._rows is None and state._mirror._too_large
        _same(engine)
    finally:
        engine.close()
