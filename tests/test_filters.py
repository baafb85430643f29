from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xmodal import Engine, Item, ValidationError
from xmodal.encoders import HashingEncoder
from xmodal.filters import AttributeTable, FilterExpr, parse_filter_json, parse_filters, parse_where

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


def test_unknown_attribute_names_the_known_ones_when_strict(catalog: Engine) -> None:
    with pytest.raises(ValidationError, match="filter on one of: color, price, sale"):
        catalog.search("x", filters={"size": "L"}, strict=True)
    with pytest.raises(ValidationError, match=r"filters\.size: is not an attribute of any item"):
        catalog.search_vector(np.ones(catalog.backend.dim, np.float32), filters={"size": "L"}, strict=True)
    with pytest.raises(ValidationError, match="filter on one of"):
        catalog.match_rows({"or": [{"color": "red"}, {"size": "L"}]}, strict=True)


def test_unknown_attribute_matches_nothing_by_default(catalog: Engine) -> None:
    """Chroma and Qdrant return nothing for a key no item has; so does xmodal unless the search is strict."""
    assert len(catalog.search("thing red", filters={"size": "L"}).hits) == 0
    assert len(catalog.search("thing red", filters={"size": "L"}, mode="dense").hits) == 0
    assert catalog.match_rows({"size": {"exists": True}}).tolist() == []  # type: ignore[union-attr]
    everything = catalog.search("thing red", k=400, filters={"not": {"size": "L"}}, mode="dense")
    assert len(everything.hits) == 400  # not(a condition on a missing key) holds for every item


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


# -- the filter language on nested and list attributes (issue 16) --------------------------------------------

#: items with nulls, lists, nested objects, lists of objects and mixed types
NESTED: dict[str, dict[str, object]] = {
    "a": {
        "color": "red",
        "tags": ["x", "y"],
        "price": 10,
        "meta": {"brand": "acme", "dims": {"w": 3}},
        "note": "Blue Suede",
    },
    "b": {"color": None, "tags": [], "price": [5, 50], "meta": "plain", "authors": [{"name": "ann"}, {"name": "bob"}]},
    "c": {"color": "blue", "tags": "x", "price": 7.5, "meta": {"brand": None}, "note": ""},
    "d": {},
    "e": {
        "color": ["red", "blue"],
        "sale": True,
        "price": True,
        "meta": {},
        "authors": [{"name": "cy", "tags": ["x"]}],
    },
}

#: filter → the ids it matches (the documented semantics, docs/filters.md)
SEMANTICS: list[tuple[dict[str, object], str]] = [
    ({"color": "red"}, "ae"),  # equality; on a list: one element equals
    ({"color": {"eq": "red"}}, "ae"),
    ({"color": {"ne": "red"}}, "bc"),  # holds the key, no element equals; missing keys never match
    ({"color": None}, "b"),
    ({"color": {"is_null": True}}, "b"),
    ({"color": {"is_null": False}}, "ace"),
    ({"color": {"exists": True}}, "abce"),
    ({"color": {"exists": False}}, "d"),
    ({"color": ["blue", "green"]}, "ce"),
    ({"color": {"in": ["blue", "green"]}}, "ce"),
    ({"color": {"nin": ["blue"]}}, "ab"),
    ({"tags": "x"}, "ac"),
    ({"tags": {"contains": "y"}}, "a"),
    ({"tags": {"not_contains": "y"}}, "bc"),
    ({"tags": {"all": ["x", "y"]}}, "a"),
    ({"tags": {"any": ["y", "z"]}}, "a"),
    ({"tags": {"is_empty": True}}, "bde"),  # [] and missing are empty
    ({"tags": {"is_empty": False}}, "ac"),
    ({"price": {"gt": 6}}, "abc"),  # one element of [5, 50] is > 6; True is not a number
    ({"price": {"gte": 6, "lt": 8}}, "c"),  # one element must satisfy every bound
    ({"price": 10.0}, "a"),
    ({"price": True}, "e"),
    ({"meta.brand": "acme"}, "a"),
    ({"meta.brand": {"exists": True}}, "ac"),
    ({"meta.brand": None}, "c"),
    ({"meta.dims.w": {"lte": 3}}, "a"),
    ({"meta": {"exists": True}}, "abce"),
    ({"meta": {"is_empty": True}}, "de"),  # {} is empty; {"brand": null} is not
    ({"authors.name": "bob"}, "b"),  # through a list of objects
    ({"authors.tags": "x"}, "e"),
    ({"note": {"text_contains": "Suede"}}, "a"),
    ({"note": {"text_contains": "suede"}}, ""),
    ({"note": {"text_icontains": "blue"}}, "a"),
    ({"note": {"$text_match": "Sue"}}, "a"),
    ({"note": {"is_empty": True}}, "bcde"),  # "" is empty
    ({"or": [{"color": "blue"}, {"price": {"gt": 40}}]}, "bce"),
    ({"not": {"color": "red"}}, "bcd"),  # not: missing keys match
    ({"color": {"not": {"in": ["red"]}}}, "bcd"),
    ({"and": [{"tags": "x"}, {"not": {"meta.brand": None}}]}, "a"),
    ({"$or": [{"color": {"$eq": "red"}}, {"sale": {"$ne": False}}]}, "ae"),
    ({"$and": [{"price": {"$gte": 5}}, {"price": {"$lte": 7.5}}]}, "bc"),  # b: 5 and 50, each once
    ({"color": "red", "price": {"gt": 5}}, "a"),
    ({"nosuch": 1}, ""),
    ({"not": {"nosuch": 1}}, "abcde"),
    ({"not": [{"color": "red"}, {"sale": True}]}, "abcd"),  # not(and(...))
    ({"or": [{"not": {"tags": {"exists": True}}}, {"meta.dims.w": 3}]}, "ade"),
]


@pytest.fixture(scope="module")
def nested_table() -> tuple[AttributeTable, dict[int, str]]:
    table = AttributeTable()
    names = {}
    for row, (name, attributes) in enumerate(NESTED.items()):
        table.add(row * 10, attributes)
        names[row * 10] = name
    return table, names


@pytest.mark.parametrize(("filters", "expected"), SEMANTICS, ids=[json.dumps(f) for f, _ in SEMANTICS])
def test_the_language_on_nested_and_list_attributes(
    nested_table: tuple[AttributeTable, dict[int, str]], filters: dict[str, object], expected: str
) -> None:
    table, names = nested_table
    rows = table.match(filters)
    assert rows is not None and "".join(names[int(r)] for r in rows) == expected
    where = FilterExpr.parse(filters)
    assert where is not None
    assert "".join(name for name, attrs in NESTED.items() if where.matches(attrs)) == expected  # the reference


def test_dotted_names_and_nested_objects_are_one_path() -> None:
    table = AttributeTable()
    table.add(1, {"a.b": 1})
    table.add(2, {"a": {"b": 1}})
    table.add(3, {"a": [{"b": [0, 1]}]})
    table.add(4, {"a": {"b.c": 1}})
    assert table.match({"a.b": 1}).tolist() == [1, 2, 3]  # type: ignore[union-attr]
    assert table.match({"a.b.c": 1}).tolist() == [4]  # type: ignore[union-attr]
    assert table.attributes() == ["a.b", "a.b.c"]


def test_the_table_follows_removes_of_nested_values() -> None:
    table = AttributeTable()
    first = {"tags": ["x", "y"], "meta": {"n": [1, 9]}, "v": None}
    table.add(1, first)
    table.add(2, {"tags": "x", "meta": {"n": 4}})
    assert table.match({"meta.n": {"gt": 5}}).tolist() == [1]  # type: ignore[union-attr]
    assert table.match({"v": {"exists": True}}).tolist() == [1]  # type: ignore[union-attr]
    table.remove(1, first)
    assert table.match({"meta.n": {"gt": 3}}).tolist() == [2]  # type: ignore[union-attr]
    assert table.match({"tags": "x"}).tolist() == [2]  # type: ignore[union-attr]
    assert table.match({"v": {"exists": True}}).tolist() == []  # type: ignore[union-attr]
    assert table.match({"not": {"tags": "y"}}).tolist() == [2]  # type: ignore[union-attr]


ALIASES = [
    (
        {"$and": [{"a": {"$in": [1]}}, {"$not": {"b": {"$nin": [2]}}}]},
        {"and": [{"a": {"in": [1]}}, {"not": {"b": {"nin": [2]}}}]},
    ),
    ({"a": {"$gt": 1, "$lte": 5}}, {"a": {"gt": 1, "lte": 5}}),
    ({"a": {"$exists": False, "$ne": None}}, {"a": {"exists": False, "ne": None}}),
    ({"a": {"$contains": "x", "$all": ["x"]}}, {"a": {"contains": "x", "all": ["x"]}}),
    ({"a": {"any": ["x"], "text_match_insensitive": "X"}}, {"a": {"in": ["x"], "text_icontains": "X"}}),
]


@pytest.mark.parametrize(("alias", "native"), ALIASES)
def test_dollar_operators_are_aliases(alias: dict[str, object], native: dict[str, object]) -> None:
    assert FilterExpr.parse(alias) == FilterExpr.parse(native)


def nested_filter(depth: int) -> dict[str, object]:
    """``{"not": {"not": ... {"a": 1}}}`` ``depth`` levels deep, built without recursion."""
    value: dict[str, object] = {"a": 1}
    for _ in range(depth):
        value = {"not": value}
    return value


BAD_FILTERS: list[tuple[object, str, str]] = [
    ({"a": {"between": 3}}, "filters.a.between", "unknown operator"),
    ({"a": {"gt": "x"}}, "filters.a.gt", "not a finite number"),
    ({"a": {"gt": float("inf")}}, "filters.a.gt", "not a finite number"),
    ({"a": float("nan")}, "filters.a", "NaN or infinite"),
    ({"a": [1, float("-inf")]}, "filters.a[1]", "NaN or infinite"),
    ({"a": {"in": [float("nan")]}}, "filters.a.in[0]", "NaN or infinite"),
    ({"a": {"eq": [1]}}, "filters.a.eq", "not a string, number, boolean or null"),
    ({"a": {"exists": "yes"}}, "filters.a.exists", "not true or false"),
    ({"a": {}}, "filters.a", "empty condition"),
    ({"a": []}, "filters.a", "empty list"),
    ({"or": []}, "filters.or", "non-empty list"),
    ({"or": {"a": 1}}, "filters.or", "non-empty list"),
    ({"and": [{"a": 1}, {}]}, "filters.and[1]", "not a non-empty filter object"),
    ({"not": 3}, "filters.not", "filter object"),
    ({"a..b": 1}, "filters.a..b", "not an attribute path"),
    ({"$where": "1"}, "filters.$where", "not an attribute path"),
    ({"a": {"text_contains": ""}}, "filters.a.text_contains", "non-empty string"),
    (nested_filter(1_000), "filters", "more than 32 levels"),
    ({"a": {"not": nested_filter(1_000)["not"]}}, "filters", "more than 32 levels"),
    ({"a": {"not": {"b": 1}}}, "filters.a.not.b", "unknown operator"),
    ({"or": [nested_filter(40)]}, "filters", "more than 32 levels"),
]


@pytest.mark.parametrize(("filters", "field", "problem"), BAD_FILTERS, ids=[b[1] + ":" + b[2] for b in BAD_FILTERS])
def test_bad_filters_name_the_field_and_the_fix(filters: object, field: str, problem: str) -> None:
    with pytest.raises(ValidationError) as info:
        FilterExpr.parse(filters)  # type: ignore[arg-type]
    err = info.value
    assert err.field == field and problem in err.problem and err.fix, str(err)
    assert len(str(err)) < 400


def test_a_path_into_values_that_are_never_objects_is_an_error(catalog: Engine) -> None:
    with pytest.raises(ValidationError) as info:
        catalog.search("thing", filters={"price.amount": {"gt": 3}})
    assert info.value.field == "filters.price.amount" and "'price' never holds an object" in str(info.value)
    assert "filter on 'price' itself" in str(info.value)
    with pytest.raises(ValidationError, match="never holds an object"):
        catalog.match_rows({"or": [{"color": "red"}, {"color.name.first": "x"}]})
    table = AttributeTable()
    table.add(1, {"meta": "plain"})
    table.add(2, {"meta": {"brand": "acme"}})
    assert table.match({"meta.size": 1}).tolist() == []  # type: ignore[union-attr]  # meta is an object somewhere


def test_nan_and_infinite_attributes_name_the_nested_field() -> None:
    for attributes, field in [
        ({"dims": {"w": float("nan")}}, "attributes.dims.w"),
        ({"sizes": [1, 2, float("inf")]}, "attributes.sizes[2]"),
        ({"a": [{"b": [float("-inf")]}]}, "attributes.a[0].b[0]"),
        ({"big": 10**400}, "attributes.big"),
    ]:
        with pytest.raises(ValidationError) as info:
            Item.create("x", title="t", attributes=attributes)
        assert info.value.field == field and info.value.fix, str(info.value)


def test_cli_where_keeps_its_syntax_and_gains_ne_and_filter_json() -> None:
    assert parse_where(["meta.brand=acme", "color!=red", "size!=S|M", "v=null"]) == {
        "meta.brand": "acme",
        "color": {"ne": "red"},
        "size": {"nin": ["S", "M"]},
        "v": None,
    }
    assert parse_filter_json(['{"tags": "x"}']) == {"tags": "x"}
    assert parse_filter_json(['{"a": 1}', '{"or": [{"b": 2}]}']) == {"and": [{"a": 1}, {"or": [{"b": 2}]}]}
    with pytest.raises(ValidationError, match="--filter"):
        parse_filter_json(["{nope"])


def test_a_long_membership_list_of_absent_values_is_cheap_and_cached_nowhere() -> None:
    """Values no row holds are not cached (an anonymous filter of 10,000 made-up values per search would grow
    the cache without bound); a long list, or an "or", is one union of its parts (the answer is the same)."""
    table = AttributeTable()
    for row in range(3000):
        table.add(row, {"pos": "nvar"[row % 4], "n": row % 50})
    cached = len(table._cache)
    absent = [f"pos-{i}" for i in range(10_000)]
    rows = table.match({"pos": ["n", "v", *absent]})
    assert rows is not None and rows.tolist() == [r for r in range(3000) if r % 4 in (0, 1)]
    assert len(table._cache) <= cached + 2  # the two values some row holds, at most
    assert table.match({"pos": absent}).tolist() == []  # type: ignore[union-attr]
    assert table.match({"n": {"in": list(range(50))}}).tolist() == list(range(3000))  # type: ignore[union-attr]
    assert table.match({"or": [{"pos": "a"}, {"n": 7}, {"pos": absent}]}).tolist() == [  # type: ignore[union-attr]
        r for r in range(3000) if r % 4 == 2 or r % 50 == 7
    ]
