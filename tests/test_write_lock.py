"""A large write holds the engine's readers–writer lock only to apply each chunk to the catalog and the vector
backend: a dense search during it is not held up by an extension's work on the batch, and the write is still
searchable in every mode once ``add`` returns (issue 13, defect 5)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from xmodal import Engine, Item, Query
from xmodal.encoders import HashingEncoder

from .toyparts.extension import SlowToyExtension

SLOW = "tests.toyparts.extension:SlowToyExtension"


@pytest.fixture()
def gated() -> Iterator[threading.Event]:
    """The slow toy's gate: its ``on_put`` waits for it (the test opens it, at the latest when it ends)."""
    gate = threading.Event()
    SlowToyExtension.gate, SlowToyExtension.entered = gate, threading.Event()
    try:
        yield gate
    finally:
        gate.set()
        SlowToyExtension.gate = None


def test_a_dense_search_runs_while_an_extension_works_on_a_large_add(tmp_path: Path, gated: threading.Event) -> None:
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact", extensions=[SLOW]) as engine:
        batch = [Item.create(f"b{i}", title=f"batch item {i}") for i in range(1200)]  # several chunks
        added: list[list[str]] = []
        writer = threading.Thread(target=lambda: added.append(engine.add(batch).added))
        writer.start()
        assert SlowToyExtension.entered.wait(10), "the extension never heard of the first chunk"
        found: list[list[str]] = []
        reader = threading.Thread(
            target=lambda: found.append(engine.search(Query(text="batch item 3", k=5, mode="dense")).hits.ids.tolist())
        )
        reader.start()
        reader.join(10)  # the extension holds the write until the gate opens: the search must not wait for it
        searched_first = not reader.is_alive()
        gated.set()
        writer.join(30)
        reader.join(30)
        assert searched_first, "a dense search waited for an extension's work on the write"
        assert found and found[0]  # the committed first chunk is searchable
        assert added == [[item.id for item in batch]]
        # once add returned, every item is searchable in the dense mode and in the extension's mode
        assert engine.search(Query(text="batch item 1199", k=1, mode="dense")).hits.ids.tolist() == ["b1199"]
        newest = engine.search(Query(text="x", k=1300, mode="toy-newest")).hits.ids.tolist()
        assert len(newest) == 1200 and newest[0] == "b1199"
        engine.delete(["b0"])
        assert "b0" not in engine.search(Query(text="x", k=1300, mode="toy-newest")).hits.ids.tolist()


def test_an_extension_mode_search_sees_every_acknowledged_write_of_another_process(tmp_path: Path) -> None:
    index = tmp_path / "idx"
    with Engine.open(index, encoder=HashingEncoder(), index="exact", extensions=[SLOW]) as engine:
        engine.add([Item.create("a", title="first")])
        with Engine.open(index) as other:
            other.add([Item.create("b", title="second")])
        assert engine.search(Query(text="x", k=5, mode="toy-newest")).hits.ids.tolist() == ["b", "a"]
        assert engine.applied_seq() == engine.last_seq() and set(engine.extension_seqs().values()) == {
            engine.last_seq()
        }
