"""The ranker's per-row metadata: read on demand, then held for every row by a background pass, kept in step."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from xmodal import Engine, Item
from xmodal.encoders import HashingEncoder
from xmodal.ltr.extension import pipeline
from xmodal.ltr.item_meta import ItemMeta


class CountingView:
    """An engine view that counts the rows read through ``item_meta``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.read: list[int] = []

    def item_meta(self, rows: Sequence[int]) -> dict[int, tuple[float, str]]:
        self.read += list(rows)
        return self.engine.item_meta(rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact")
    eng.add([Item.create(f"t{i}", title=f"text {i}", created_at=float(i)) for i in range(2500)])
    yield eng
    eng.close()


def wait(meta: ItemMeta) -> None:
    assert meta._thread is not None
    meta._thread.join(timeout=30)
    assert meta._complete


def test_rows_are_read_on_demand_then_held_for_every_row(engine: Engine) -> None:
    view = CountingView(engine)
    meta = ItemMeta(view)  # type: ignore[arg-type]
    rows = [engine.row_of("t5"), engine.row_of("t7"), -1]
    assert meta.get(rows) == {rows[0]: (5.0, "text"), rows[1]: (7.0, "text")}
    wait(meta)
    assert set(view.read) >= {engine.row_of(f"t{i}") for i in range(2500)}  # the whole catalog, in chunks
    view.read.clear()
    later = [engine.row_of(f"t{i}") for i in (1, 1234, 2499)]
    assert meta.get(later) == {later[0]: (1.0, "text"), later[1]: (1234.0, "text"), later[2]: (2499.0, "text")}
    assert view.read == []  # nothing read from the store once the pass is done
    meta.close()


def test_puts_and_deletes_keep_it_in_step(engine: Engine) -> None:
    pipe = pipeline(engine)
    row = engine.row_of("t3")
    pipe.item_meta([row])
    wait(pipe._meta)
    engine.add([Item.create("t3", title="text 3 again", image=None, created_at=99.0)])
    new_row = engine.row_of("t3")
    assert pipe.item_meta([new_row]) == {new_row: (99.0, "text")}
    engine.delete(["t3"])
    assert pipe.item_meta([new_row]) == {}
    engine.add([Item.create("fresh", title="added after the pass", created_at=7.5)])
    fresh = engine.row_of("fresh")
    assert pipe.item_meta([fresh]) == {fresh: (7.5, "text")}


def test_close_stops_the_background_pass(engine: Engine) -> None:
    meta = ItemMeta(engine)
    meta.get([engine.row_of("t0")])
    meta.close()
    assert meta._thread is not None and not meta._thread.is_alive()
