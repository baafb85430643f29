from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xmodal import Engine, Item, ValidationError
from xmodal.encoders import HashingEncoder
from xmodal.filters import AttributeTable, parse_filters, parse_where

COLORS = ["red", "green", "blue", "black", "white"]


def _matches(attrs: dict[str, object], filters: dict[str, object]) -> bool:
    for name, cond in filters.items():
        value = attrs.get(name)
        if isinstance(cond, dict):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                return False
            ops = {
                "gt": value > cond.get("gt", -np.inf),
                "gte": value >= cond.get("gte", -np.inf),
                "lt": value < cond.get("lt", np.inf),
                "lte": value <= cond.get("lte", np.inf),
            }
            if not all(ops.values()):
                return False
        elif isinstance(cond, list):
            if value not in cond:
                return False
        elif value != cond:
            return False
    return True


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    rng = np.random.default_rng(0)
    items = [
        Item.create(
            f"i{i}",
            title=f"thing {i} {COLORS[i % 5]}",
            attributes={
                "color": COLORS[int(rng.integers(5))],
                "price": int(rng.integers(100)),
                "sale": bool(i % 3 == 0),
            },
        )
        for i in range(400)
    ]
    engine = Engine.open(tmp_path_factory.mktemp("f") / "idx", encoder=HashingEncoder(), index="exact")
    engine.add(items)
    return engine


filters_st = st.fixed_dictionaries(
    {},
    optional={
        "color": st.one_of(st.sampled_from(COLORS), st.lists(st.sampled_from(COLORS), min_size=1, max_size=3)),
        "price": st.fixed_dictionaries({}, optional={"gte": st.integers(0, 100), "lt": st.integers(0, 100)}).filter(
            bool
        ),
        "sale": st.booleans(),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(filters=filters_st, k=st.integers(1, 50))
def test_filtered_search_is_exact_and_complete(catalog: Engine, filters: dict[str, object], k: int) -> None:
    res = catalog.search("thing red", k=k, filters=filters)
    assert all(_matches(dict(item.attributes), filters) for item in res.items)
    n_matching = (
        sum(_matches(dict(catalog.get(f"i{i}").attributes), filters) for i in range(0, 400, 1)) if filters else 400
    )
    assert len(res.hits) == min(k, n_matching)


def test_unknown_attribute_names_the_known_ones(catalog: Engine) -> None:
    with pytest.raises(ValidationError, match="filter on one of: color, price, sale"):
        catalog.search("x", filters={"size": "L"})


def test_bad_conditions() -> None:
    for bad in ({"price": {"between": 3}}, {"price": {"gt": "x"}}, {"color": []}, {"color": {"gt": float("nan")}}):
        with pytest.raises(ValidationError, match="filters"):
            parse_filters(bad)


def test_true_is_not_one() -> None:
    table = AttributeTable()
    table.add(1, {"flag": True})
    table.add(2, {"flag": 1})
    assert table.match({"flag": True}).tolist() == [1]
    assert table.match({"flag": 1.0}).tolist() == [2]


def test_parse_where() -> None:
    assert parse_where(["color=red", "price<=20", "price>3", "size=S|M", "n=5"]) == {
        "color": "red",
        "price": {"lte": 20, "gt": 3},
        "size": ["S", "M"],
        "n": 5,
    }
    with pytest.raises(ValidationError, match="--where"):
        parse_where(["nothing"])


def test_filters_follow_updates_and_deletes(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "i", encoder=HashingEncoder(), index="exact") as engine:
        engine.add([Item.create("a", title="shoe", attributes={"color": "red"})])
        engine.add([Item.create("a", title="shoe", attributes={"color": "blue"})])
        assert len(engine.search("shoe", filters={"color": "red"}).hits) == 0
        assert engine.search("shoe", filters={"color": "blue"}).hits.ids.tolist() == ["a"]
        engine.delete(["a"])
        assert len(engine.search("shoe", filters={"color": "blue"}).hits) == 0
