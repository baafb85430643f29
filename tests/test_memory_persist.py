"""The memory index's state on disk (``ltr/memory.sqlite``): it survives close and reopen, is read rather
than rebuilt by a new process, catches up with writes and feedback from other processes (counted once),
rebuilds from a missing, corrupt or older-format file, and a read-only search writes nothing."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_cross_process import cli
from xmodal import Engine, Item
from xmodal.encoders import HashingEncoder
from xmodal.ltr import memory_state
from xmodal.ltr.extension import pipeline

QUERIES = ("red leather boots", "blue canvas", "green suede sandals", "black bags", "sandals", "nothing here")
COLORS = ["red", "green", "blue", "black"]
MATERIALS = ["leather", "canvas", "suede"]
CATEGORIES = ["boots", "sneakers", "sandals", "bags"]


def title(i: int) -> str:
    return f"{COLORS[i % 4]} {MATERIALS[i % 3]} {CATEGORIES[(i // 4) % 4]} model {i}"


def products(n: int = 60, start: int = 0) -> list[Item]:
    return [
        Item.create(
            f"p{i}",
            title=title(i),
            text=f"product number {i}",
            attributes={"color": COLORS[i % 4], "material": MATERIALS[i % 3], "category": CATEGORIES[(i // 4) % 4]},
        )
        for i in range(start, start + n)
    ]


def open_index(path: Path) -> Engine:
    return Engine.open(path, encoder=HashingEncoder(), index="exact")


def memory_view(engine: Engine) -> dict[str, Any]:
    """What the memory strategy answers: its hits, statistics and history for every query of QUERIES."""
    memory = pipeline(engine).memory
    out: dict[str, Any] = {}
    for text in QUERIES:
        result = engine.search(text, mode="memory", k=20)
        stats = {i: (round(p.impressions, 9), round(p.actions, 9), p.prior) for i, p in memory.lookup(text).items()}
        hits = [
            (i, round(float(s), 9)) for i, s in zip(result.hits.ids.tolist(), result.hits.scores.tolist(), strict=True)
        ]
        out[text] = {"hits": hits, "stats": stats, "history": memory.history(text)}
    return out


def log_feedback(engine: Engine) -> None:
    for text, clicks in (("red leather boots", 2), ("black bags", 1), ("red leather boots", 1)):
        result = engine.search(text, log=True)
        assert result.query_id is not None
        for item_id in result.hits.ids.tolist()[:clicks]:
            engine.feedback(result.query_id, item_id, "click")


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "idx"
    with open_index(path) as engine:
        engine.add(products())
        log_feedback(engine)
    yield path


def state_file(index: Path) -> Path:
    return index / "ltr" / memory_state.FILE


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


def positions(index: Path) -> dict[str, int]:
    with sqlite3.connect(state_file(index)) as db:
        return dict(db.execute("SELECT name, value FROM meta").fetchall())


# -- close and reopen ------------------------------------------------------------------------------


def test_the_state_survives_close_and_reopen_and_equals_a_rebuild(index: Path) -> None:
    assert state_file(index).is_file()
    with open_index(index) as engine:
        first = memory_view(engine)
        assert first["red leather boots"]["history"] == (2, 3.0)  # two logged searches, three clicks
        assert any(prior == memory_state.PREDICTED_PRIOR for _, _, prior in first["blue canvas"]["stats"].values())
    with open_index(index) as engine:
        assert memory_view(engine) == first
    state_file(index).unlink()  # rebuilt from the store and the log: the same answers
    with open_index(index) as engine:
        assert memory_view(engine) == first


def test_a_new_process_reads_the_state_instead_of_predicting_every_item(
    index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    predict = memory_state.predicted_keys

    def counting(item: Item) -> frozenset[str]:
        calls.append(item.id)
        return predict(item)

    monkeypatch.setattr(memory_state, "predicted_keys", counting)
    with open_index(index) as engine:
        assert engine.search("red leather boots", mode="memory").hits.ids.size > 0
        assert calls == []  # nothing re-derived from the items
        engine.add(products(1, start=500))
        assert calls == ["p500"]  # a write predicts its own item only
        assert "p500" in engine.search(title(500), mode="memory", k=50).hits.ids.tolist()
    assert calls == ["p500"]  # folded at close from what this process already predicted


def test_priors_follow_replaced_and_deleted_items(index: Path) -> None:
    with open_index(index) as engine:
        engine.add([Item.create("p0", title="purple velvet slippers", attributes={"color": "purple"})])
        engine.delete(["p1"])
        assert "p0" in engine.search("purple velvet slippers", mode="memory").hits.ids.tolist()
        assert "p0" not in engine.search(title(0), mode="memory").hits.ids.tolist()
        before = memory_view(engine)
        assert all("p1" not in v["stats"] or v["stats"]["p1"][2] == 0.0 for v in before.values())
    with open_index(index) as engine:
        assert memory_view(engine) == before


# -- other processes -------------------------------------------------------------------------------


def test_an_open_engine_sees_another_process_writes_and_feedback_once(index: Path, tmp_path: Path) -> None:
    with open_index(index) as engine:
        memory = pipeline(engine).memory
        assert memory.history("red leather boots") == (2, 3.0)
        catalog = tmp_path / "new.jsonl"
        catalog.write_text(json.dumps({"id": "newboot", "title": "amber leather boots deluxe"}) + "\n")
        cli(index, "add", str(catalog), "-q")
        assert "newboot" in engine.search("amber leather boots deluxe", mode="memory").hits.ids.tolist()
        gone = engine.search("red leather boots", mode="memory").hits.ids.tolist()[0]
        cli(index, "delete", gone)
        assert gone not in engine.search("red leather boots", mode="memory", k=50).hits.ids.tolist()

        logged = cli(index, "feedback", "search", "red leather boots", "--mode", "memory")
        query_id = json.loads(logged.stdout)["query_id"]
        shown = engine.feedback_log.impression(query_id).shown
        cli(index, "feedback", "event", query_id, shown[0])
        # folded into the file by the other process at its close, and counted once here
        assert positions(index)["events"] == engine.feedback_log.marks()[1]
        assert memory.history("red leather boots") == (3, 4.0)
        mine = engine.search("red leather boots", mode="memory", log=True)  # this process logs one too
        assert mine.query_id is not None
        assert memory.history("red leather boots") == (4, 4.0)
        here = memory_view(engine)
    with open_index(index) as engine:
        assert memory_view(engine) == here


def test_a_process_that_died_before_its_checkpoint_is_caught_up(index: Path) -> None:
    code = (
        "import os, sys\n"
        "from xmodal import Engine, Item\n"
        "from xmodal.encoders import HashingEncoder\n"
        "e = Engine.open(sys.argv[1], encoder=HashingEncoder(), index='exact')\n"
        "e.add([Item.create('ghost', title='silver mesh sandals')])\n"
        "e.erase(['p2'], scrub=False)\n"  # a delete that scrubs checkpoints every derived structure
        "os._exit(0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(index)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    behind = positions(index)["store_seq"]
    with open_index(index) as engine:
        assert engine.store.last_seq() > behind
        assert "ghost" in engine.search("silver mesh sandals", mode="memory").hits.ids.tolist()
        assert "p2" not in engine.search(title(2), mode="memory", k=50).hits.ids.tolist()
        seq = engine.store.last_seq()
    assert positions(index)["store_seq"] == seq  # the catch-up is written at close


# -- a broken state is rebuilt ---------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["deleted", "garbage", "old-format", "ahead-of-the-store", "no-tables"])
def test_a_missing_or_broken_state_is_rebuilt_with_a_warning(
    index: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    with open_index(index) as engine:
        expected = memory_view(engine)
    path = state_file(index)
    if damage == "deleted":
        path.unlink()
    elif damage == "garbage":
        path.write_bytes(b"this is not a database" * 100)
    elif damage == "no-tables":
        path.unlink()
        sqlite3.connect(path).close()  # an empty file
    else:
        with sqlite3.connect(path) as db:
            if damage == "old-format":
                db.execute("UPDATE meta SET value = 0 WHERE name = 'format'")
            else:
                db.execute("UPDATE meta SET value = 10000 WHERE name = 'store_seq'")
    with caplog.at_level(logging.WARNING, logger="xmodal.ltr.memory_state"), open_index(index) as engine:
        assert memory_view(engine) == expected
    if damage != "deleted":
        assert "rebuilding the memory index" in caplog.text
    assert positions(index)["format"] == memory_state.FORMAT


def test_a_state_that_breaks_while_open_is_rebuilt(index: Path, caplog: pytest.LogCaptureFixture) -> None:
    with open_index(index) as engine:
        expected = memory_view(engine)
        state = pipeline(engine).memory.state
        held = state._mirror._thread
        if held is not None:
            held.join(10)
        state._db.execute("DROP TABLE prior")  # broken under the open engine
        state._cache.clear()
        assert memory_view(engine) == expected  # the priors held in memory still answer (xmodal.ltr.memory_priors)
        state._mirror.changed()  # as after a fold: nothing held, a look-up reads the file and meets the break
        state._cache.clear()
        with caplog.at_level(logging.WARNING, logger="xmodal.ltr.memory_state"):
            assert memory_view(engine) == expected
        assert "rebuilding it from the store" in caplog.text


# -- writes only when something changed ------------------------------------------------------------


def test_read_only_searches_write_nothing_and_checkpoints_only_when_dirty(index: Path) -> None:
    before = _snapshot(index)
    time.sleep(0.05)
    for mode in ("memory", "learned"):
        cli(index, "search", "red leather boots", "--mode", mode, "-k", "3", "--json")
    with open_index(index) as engine:
        memory_view(engine)
        engine.checkpoint()
    assert _snapshot(index) == before
    with open_index(index) as engine:
        engine.add(products(1, start=900))
        engine.checkpoint()
        after_write = _snapshot(index)
        assert after_write[f"ltr/{memory_state.FILE}"] != before[f"ltr/{memory_state.FILE}"]
        time.sleep(0.05)
        engine.checkpoint()  # nothing new since the last one
        assert _snapshot(index) == after_write


def test_a_bulk_add_writes_the_state_as_it_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory_state, "FLUSH_ROWS", 50)
    with open_index(tmp_path / "idx") as engine:
        engine.add(products(120))
        assert positions(tmp_path / "idx")["store_seq"] >= 100  # folded without waiting for the close
        assert "p110" in engine.search(title(110), mode="memory", k=50).hits.ids.tolist()
        expected = memory_view(engine)
    with open_index(tmp_path / "idx") as engine:
        assert memory_view(engine) == expected


def test_a_pipeline_built_beside_the_extension_shares_the_state_and_breaks_nothing(index: Path) -> None:
    from xmodal.ltr.pipeline import Pipeline

    with open_index(index) as engine:
        expected = memory_view(engine)
        beside = Pipeline(engine)  # no feedback log: the simulator's and the benchmarks' way
        assert beside.memory.lookup("blue canvas").keys() == pipeline(engine).memory.lookup("blue canvas").keys()
        assert beside.memory.history("red leather boots") == (0, 0.0)  # it reads no feedback statistics
        beside.memory.add_impression("blue canvas", ["p1"])  # kept in that pipeline's process memory only
        beside.memory.checkpoint()
        beside.memory.close()
    with open_index(index) as engine:
        assert memory_view(engine) == expected


def test_two_writers_folding_in_turn_leave_the_state_a_rebuild_would_build(index: Path) -> None:
    a, b = open_index(index), open_index(index)  # two engines on one folder: as two processes would be
    try:
        a.add([Item.create("x", title="ochre wool scarf", attributes={"color": "ochre"})])  # pending in a
        b.add([Item.create("y", title="teal linen shirt", attributes={"color": "teal"})])  # pending in b
        assert "x" in b.search("ochre wool scarf", mode="memory").hits.ids.tolist()  # b caught up with a
        b.add([Item.create("x", title="plum silk tie", attributes={"color": "plum"})])  # b replaces a's item
        b.delete(["p3"])
        a.checkpoint()  # a has not seen b's writes and holds its own "x": the store's version is folded
        b.checkpoint()
        a.add(products(2, start=700))
        a.checkpoint()
    finally:
        a.close()
        b.close()
    with open_index(index) as engine:
        folded = memory_view(engine)
        assert "x" in engine.search("plum silk tie", mode="memory").hits.ids.tolist()
        assert "x" not in engine.search("ochre wool scarf", mode="memory").hits.ids.tolist()
        assert "p701" in engine.search(title(701), mode="memory").hits.ids.tolist()
    state_file(index).unlink()
    with open_index(index) as engine:
        assert memory_view(engine) == folded
