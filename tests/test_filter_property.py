"""Issue 16's filter property test: for random items with nested and list attributes and random nested
filters, filtered search equals brute force (ids, and scores in order) on every backend of the conformance
suite (:data:`tests.test_backend_conformance.BACKENDS_UNDER_TEST`).

The brute force here evaluates the *filter object* itself with the documented semantics (docs/filters.md),
written apart from xmodal's parser, its reference evaluation (:mod:`xmodal.filters.nodes`) and its
attribute table, and checks all three: the backend's answer, ``FilterExpr.matches`` and the engine's
``match_rows``-level table.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_backend_conformance import (
    BACKENDS_UNDER_TEST,
    QUERIES,
    ROWS,
    SERVER_OPTIONS,
    TEXT,
    Harness,
    milvus_options,
    stored,
)
from xmodal.filters import FilterExpr

KEYS = ["a", "b", "c", "a.b"]  # "a.b" as a flat name too: the same path as {"a": {"b": ...}}
PATHS = ["a", "b", "c", "a", "b", "c", "a.b", "a.c", "b.a", "a.b.c", "c.a.b", "nosuch"]  # the names more often
STRINGS = ["red", "Red ball", "blue", "x", ""]

scalars = st.one_of(
    st.sampled_from(STRINGS),
    st.integers(-2, 3),
    st.sampled_from([0.5, 2.0, -1.5]),
    st.booleans(),
    st.none(),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.recursive(
        scalars,
        lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.sampled_from(KEYS[:3]), kids, max_size=2),
        max_leaves=5,
    ),
)
attribute_sets = st.dictionaries(st.sampled_from(KEYS), values, min_size=1, max_size=4)
item_lists = st.lists(attribute_sets, min_size=12, max_size=40)
numbers = st.one_of(st.integers(-2, 3), st.sampled_from([0.5, 1.5, -1.0]))
value_lists = st.lists(scalars, min_size=1, max_size=3)


def dollar(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, "$" + name])


def op(name: str, arg: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(lambda key, value: {key: value}, dollar(name), arg)


ranges = st.dictionaries(st.sampled_from(["gt", "gte", "lt", "lte", "$gt", "$lte"]), numbers, min_size=1, max_size=2)
simple_specs = st.one_of(
    scalars,
    value_lists,
    op("eq", scalars),
    op("ne", scalars),
    op("in", value_lists),
    op("any", value_lists),
    op("nin", value_lists),
    op("all", value_lists),
    op("contains", scalars),
    op("not_contains", scalars),
    ranges,
    op("exists", st.booleans()),
    op("is_null", st.booleans()),
    op("is_empty", st.booleans()),
    op("text_contains", st.sampled_from(["e", "R", "ball", "x"])),
    op("text_icontains", st.sampled_from(["e", "R", "BALL"])),
)
specs = simple_specs | op("not", simple_specs)
one_condition = st.dictionaries(st.sampled_from(PATHS), specs, min_size=1, max_size=1)
leaf_filters = st.dictionaries(st.sampled_from(PATHS), specs, min_size=1, max_size=2)
filters = st.one_of(
    one_condition,
    st.recursive(
        leaf_filters,
        lambda kids: st.one_of(
            st.builds(
                lambda k, parts: {k: parts}, dollar("and") | dollar("or"), st.lists(kids, min_size=1, max_size=3)
            ),
            op("not", kids),
            st.builds(lambda a, b: {**a, "or": [b]}, leaf_filters, kids),
        ),
        max_leaves=4,
    ),
)


# -- the brute force: the filter object evaluated with the documented semantics ----------------------------
def found_at(node: Any, path: str) -> Iterator[Any]:
    """Every value at ``path``: through objects, lists on the way, and names holding dots."""
    if isinstance(node, list):
        for element in node:
            yield from found_at(element, path)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == path:
                yield value
            elif path.startswith(key + "."):
                yield from found_at(value, path[len(key) + 1 :])


def scalars_of(value: Any) -> Iterator[Any]:
    if isinstance(value, list):
        for element in value:
            yield from scalars_of(element)
    elif not isinstance(value, dict):
        yield value


def same(x: Any, y: Any) -> bool:
    """Equality as documented: 1 == 1.0, True is not 1, null equals only null."""
    if x is None or y is None or isinstance(x, bool) or isinstance(y, bool):
        return type(x) is type(y) and x == y
    return x == y


def number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def holds(name: str, arg: Any, found: list[Any]) -> bool:
    name = name.lstrip("$")
    leaves = [s for v in found for s in scalars_of(v)]
    has = lambda wanted: any(same(s, wanted) for s in leaves)  # noqa: E731
    tests = {
        "eq": lambda: has(arg),
        "contains": lambda: has(arg),
        "ne": lambda: bool(found) and not has(arg),
        "not_contains": lambda: bool(found) and not has(arg),
        "in": lambda: any(has(v) for v in arg),
        "any": lambda: any(has(v) for v in arg),
        "nin": lambda: bool(found) and not any(has(v) for v in arg),
        "all": lambda: bool(found) and all(has(v) for v in arg),
        "exists": lambda: bool(found) == arg,
        "is_null": lambda: has(None) if arg else bool(found) and not has(None),
        "is_empty": lambda: all(v is None or v in ("", [], {}) for v in found) == arg,
        "text_contains": lambda: any(isinstance(s, str) and arg in s for s in leaves),
        "text_icontains": lambda: any(isinstance(s, str) and arg.lower() in s.lower() for s in leaves),
    }
    return tests[name]()


def condition(spec: Any, found: list[Any]) -> bool:
    if not isinstance(spec, dict):
        return holds("in" if isinstance(spec, list) else "eq", spec, found)
    bounds = {k.lstrip("$"): v for k, v in spec.items() if k.lstrip("$") in ("gt", "gte", "lt", "lte")}
    if bounds:
        compare = {"gt": float.__gt__, "gte": float.__ge__, "lt": float.__lt__, "lte": float.__le__}
        leaves = [s for v in found for s in scalars_of(v) if number(s)]
        if not any(all(compare[o](float(s), float(b)) for o, b in bounds.items()) for s in leaves):
            return False
    for key, arg in spec.items():
        name = key.lstrip("$")
        if name == "not":
            if condition(arg, found):
                return False
        elif name not in bounds and not holds(name, arg, found):
            return False
    return True


def brute(filters: Mapping[str, Any], attributes: dict[str, Any]) -> bool:
    for key, spec in filters.items():
        name = key.lstrip("$")
        if name == "and" and not all(brute(part, attributes) for part in spec):
            return False
        if name == "or" and not any(brute(part, attributes) for part in spec):
            return False
        if name == "not" and brute(spec, attributes):
            return False
        if name not in ("and", "or", "not") and not condition(spec, list(found_at(attributes, key))):
            return False
    return True


def assert_same_ranking(rows: list[int], scores: np.ndarray, ref_rows: list[int], ref_scores: list[float]) -> None:
    """The same rows in the same order (where two reference scores tie, either order), the same scores."""
    assert len(rows) == len(ref_rows)
    assert np.allclose(scores, ref_scores, atol=1e-5)
    for i, (row, ref) in enumerate(zip(rows, ref_rows, strict=True)):
        tied = {r for r, s in zip(ref_rows, ref_scores, strict=True) if math.isclose(s, ref_scores[i], abs_tol=1e-5)}
        assert row == ref or row in tied, (rows, ref_rows)


# -- seeded random items and filters: wider than hypothesis' own draws ----------------------------------------
SCALARS: list[Any] = [*STRINGS, -2, 0, 1, 3, 0.5, 2.0, -1.5, True, False, None]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth >= 3 or roll < 0.5:
        return rng.choice(SCALARS)
    if roll < 0.8:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(KEYS[:3]): random_value(rng, depth + 1) for _ in range(rng.randint(0, 2))}


def random_items(rng: random.Random) -> list[dict[str, Any]]:
    return [{rng.choice(KEYS): random_value(rng) for _ in range(rng.randint(1, 4))} for _ in range(rng.randint(12, 40))]


def random_spec(rng: random.Random, negate: bool = True) -> Any:
    some = [rng.choice(SCALARS) for _ in range(rng.randint(1, 3))]
    key = rng.choice(
        [
            "eq",
            "ne",
            "in",
            "any",
            "nin",
            "all",
            "contains",
            "not_contains",
            "exists",
            "is_null",
            "is_empty",
            "text_contains",
            "text_icontains",
            "range",
            "scalar",
            "list",
            "not",
        ]
    )
    name = ("$" if rng.random() < 0.3 else "") + key
    if key == "scalar":
        return some[0]
    if key == "list":
        return some
    if key == "range":
        picks = rng.sample(["gt", "gte", "lt", "lte"], rng.randint(1, 2))
        return {op: rng.choice([-2, 0, 1, 3, 0.5, 1.5, -1.0]) for op in picks}
    if key == "not":
        return {name: random_spec(rng, negate=False)} if negate else some[0]
    arg: Any = {
        "in": some,
        "any": some,
        "nin": some,
        "all": some,
        "exists": rng.random() < 0.5,
        "is_null": rng.random() < 0.5,
        "is_empty": rng.random() < 0.5,
        "text_contains": rng.choice(["e", "R", "ball", "x"]),
        "text_icontains": rng.choice(["e", "R", "BALL"]),
    }.get(key, some[0])
    return {name: arg}


def random_filter(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    roll = rng.random()
    if depth >= 3 or roll < 0.55:
        return {rng.choice(PATHS): random_spec(rng) for _ in range(rng.randint(1, 2))}
    logic = ("$" if rng.random() < 0.3 else "") + rng.choice(["and", "or", "not"])
    if logic.endswith("not"):
        return {logic: random_filter(rng, depth + 1)}
    return {logic: [random_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))]}


# -- the property -------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _server_options(request: pytest.FixtureRequest) -> None:
    """The options only known once a server runs (the milvus backend's session server)."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("backend") == "milvus":
        SERVER_OPTIONS["milvus"] = milvus_options(request)


def harness(backend: str, folder: Path, items: list[dict[str, Any]]) -> Harness:
    """A backend (and the catalog beside it) holding ``items`` at rows ``ROWS[i]``, text vectors ``TEXT[i]``."""
    if backend != "local-exact" and backend.startswith("local-"):
        pytest.importorskip("faiss")
    h = Harness(backend, folder)
    h.put([stored(i, {"text": TEXT[i]}, attrs) for i, attrs in enumerate(items)])
    return h


def check_filters(h: Harness, wheres: list[dict[str, Any]], k: int) -> None:
    """Every filter: brute force = FilterExpr.matches = the attribute table, and the backend's top k (for
    three queries) = brute force's, rows in order with their scores."""
    held = sorted(h.items.items())  # (row, stored item), as stored (tuples are lists)
    for where in wheres:
        expr = FilterExpr.parse(where)
        assert expr is not None
        expected = [(row, s) for row, s in held if brute(where, dict(s.item.attributes))]
        assert [row for row, s in held if expr.matches(s.item.attributes)] == [row for row, _ in expected], where
        assert h.catalog.attributes.match_expr(expr).tolist() == [row for row, _ in expected], where
        for query, answer in zip(QUERIES[:3], h.search(QUERIES[:3], k, filters=where), strict=True):
            ranked = sorted(
                ((float(s.vectors["text"] @ query), row) for row, s in expected), key=lambda sr: (-sr[0], sr[1])
            )
            ranked = ranked[:k]
            assert_same_ranking(answer.rows.tolist(), answer.scores, [r for _, r in ranked], [s for s, _ in ranked])


@pytest.mark.parametrize("backend", list(BACKENDS_UNDER_TEST))
@settings(max_examples=25, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=item_lists, wheres=st.lists(filters, min_size=1, max_size=8), k=st.integers(1, 45))
def test_filtered_search_equals_brute_force(
    backend: str, tmp_path: Path, items: list[dict[str, Any]], wheres: list[dict[str, Any]], k: int
) -> None:
    check_filters(harness(backend, tmp_path / "index", items), wheres, k)


@pytest.mark.parametrize("backend", list(BACKENDS_UNDER_TEST))
@pytest.mark.parametrize("seed", range(6))
def test_filtered_search_equals_brute_force_on_seeded_random_filters(backend: str, seed: int, tmp_path: Path) -> None:
    """Also after writes: some items replaced by others with new attributes, some deleted (the table
    takes each row's old values out)."""
    rng = random.Random(seed)
    for round_ in range(3):
        items = random_items(rng)
        h = harness(backend, tmp_path / f"index{round_}", items)
        check_filters(h, [random_filter(rng) for _ in range(40)], rng.randint(1, 45))
        changed = rng.sample(range(len(items)), len(items) // 3)
        h.put([stored(i, {"text": TEXT[i]}, random_items(rng)[0]) for i in changed[::2]])
        h.delete([int(ROWS[i]) for i in changed[1::2]])
        check_filters(h, [random_filter(rng) for _ in range(40)], rng.randint(1, 45))
