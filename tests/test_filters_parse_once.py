"""A search parses its filter object once (xmodal.filters.expr.parsed_once): the check before any work, the dense
search and the learned mode's strategies reuse that expression, with the same hits as parsing it at each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import xmodal.filters.expr as expr_module
from xmodal import Engine, Item, Query
from xmodal.encoders import HashingEncoder
from xmodal.filters import FilterExpr, parsed_once

COLOURS = ("red", "blue", "green")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact")
    eng.add(
        [
            Item.create(
                f"i{n}",
                title=f"{COLOURS[n % 3]} bicycle number {n}",
                text="a bicycle for the road",
                attributes={"colour": COLOURS[n % 3], "size": n % 5, "sale": n % 2 == 0},
            )
            for n in range(60)
        ]
    )
    yield eng
    eng.close()


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every filter object parsed (xmodal.filters.syntax.parse_filters, as FilterExpr.parse calls it)."""
    seen: list[object] = []
    original = expr_module.parse_filters

    def counting(filters: Any) -> Any:
        seen.append(filters)
        return original(filters)

    monkeypatch.setattr(expr_module, "parse_filters", counting)
    return seen


FILTERS: dict[str, Any] = {"colour": ["red", "blue", *(f"made-up-{i}" for i in range(500))], "size": {"gte": 1}}


@pytest.mark.parametrize("mode", [None, "dense"])  # None: the index's default, the learned mode (strategies)
def test_a_search_parses_its_filter_once(engine: Engine, parses: list[object], mode: str | None) -> None:
    query = Query(text="red bicycle for the road", k=20, filters=FILTERS, mode=mode)
    first = engine.search(query)
    parses.clear()
    again = engine.search(query)
    assert len(parses) == 1
    assert [h for h in again.hits.ids] == [h for h in first.hits.ids] and len(first.hits) == 20


@pytest.mark.parametrize("mode", [None, "dense"])
def test_the_hits_are_those_of_parsing_at_every_stage(
    engine: Engine, parses: list[object], monkeypatch: pytest.MonkeyPatch, mode: str | None
) -> None:
    queries = [
        Query(text="bicycle road", k=15, filters=FILTERS, mode=mode),
        Query(text="green bicycle", k=10, filters={"or": [{"colour": "green"}, {"sale": True}]}, mode=mode),
        Query(text="blue", k=30, filters={"size": {"lt": 3}, "colour": {"ne": "red"}}, mode=mode),
    ]
    once = [engine.search(q) for q in queries]
    batch_once = engine.search_many(queries)
    counted = len(parses)
    monkeypatch.setattr(expr_module, "MEMO_SIZE", 0)  # nothing kept: parsed at every stage, as before
    every = [engine.search(q) for q in queries]
    batch_every = engine.search_many(queries)
    assert len(parses) - counted > counted  # the reference did parse more
    for a, b in zip([*once, *batch_once], [*every, *batch_every], strict=True):
        assert a.hits.ids.tolist() == b.hits.ids.tolist() and a.hits.scores.tolist() == b.hits.scores.tolist()
        assert len(a.hits) > 0


def test_outside_a_search_every_parse_reads_the_object_as_it_is_now() -> None:
    filters: dict[str, Any] = {"colour": ["red"]}
    first = FilterExpr.parse(filters)
    filters["colour"].append("blue")  # changed in place: the next parse must see it
    second = FilterExpr.parse(filters)
    assert first != second
    assert second is not None and second.matches({"colour": "blue"}) and first is not None
    assert not first.matches({"colour": "blue"})


def test_within_a_search_a_copy_is_reused_and_an_equal_but_other_object_is_not(parses: list[object]) -> None:
    values = ["red", "blue"]
    with parsed_once():
        given = {"colour": values, "sale": True}
        first = FilterExpr.parse(given)
        assert FilterExpr.parse(dict(given)) is first  # a copy: the same keys holding the same objects
        assert FilterExpr.parse(given) is first
        assert len(parses) == 1
        other = FilterExpr.parse({"colour": values, "sale": 1})  # equal in Python (True == 1), not the same filter
        assert other is not first and other is not None and len(parses) == 2
        assert first is not None and first.matches({"colour": "red", "sale": True})
        assert not other.matches({"colour": "red", "sale": True})
        reordered = FilterExpr.parse({"sale": True, "colour": values})  # another order: parsed (its tree differs)
        assert reordered is not first and len(parses) == 3
    assert FilterExpr.parse(given) is not first  # the block is over: parsed again
