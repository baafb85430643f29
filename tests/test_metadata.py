"""Issue 16, part 2: attribute values may be null, lists and nested objects (what document loaders
produce); they round-trip exactly through add/get in the Python API, the CLI's JSON Lines catalogs and REST,
and the filter language reaches them (dotted paths, list membership, null, and/or/not, strict)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xmodal import Engine, Item, Query, ValidationError
from xmodal.cli import main
from xmodal.encoders import HashingEncoder

FAST = ["--encoder", "hashing", "--index-kind", "exact"]

#: what LangChain / LlamaIndex loaders put in metadata: nulls, lists, nested objects, lists of objects
LOADER_METADATA: dict[str, dict[str, Any]] = {
    "page-1": {
        "source": "report.pdf",
        "page": 1,
        "title": None,
        "tags": ["finance", "q3"],
        "coordinates": {"points": [[0.0, 1.5], [2, 3]], "system": "PixelSpace", "layout": {"w": 612, "h": 792}},
        "authors": [{"name": "Ann", "email": None}, {"name": "Bo"}],
        "scores": [0.25, 1e16, -0.0],
        "empty": {"list": [], "object": {}, "text": ""},
    },
    "page-2": {"source": "report.pdf", "page": 2, "tags": ["finance"], "authors": [{"name": "Cy"}], "flag": True},
    "note-1": {"source": "notes.md", "tags": [], "coordinates": "n/a", "title": "Shopping"},
}


def items() -> list[Item]:
    return [Item.create(i, title=f"{i} text", attributes=attrs) for i, attrs in LOADER_METADATA.items()]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with Engine.open(tmp_path_factory.mktemp("meta") / "idx", encoder=HashingEncoder(), index="exact") as engine:
        report = engine.add(items())
        assert sorted(report.added) == sorted(LOADER_METADATA) and not report.rejected
        yield engine


def ids(engine: Engine, filters: dict[str, Any], **options: Any) -> list[str]:
    return sorted(engine.search(Query(text="text", k=10, filters=filters, mode="dense", **options)).hits.ids.tolist())


def test_nested_metadata_round_trips_exactly_through_the_python_api(engine: Engine, tmp_path: Path) -> None:
    for item_id, attrs in LOADER_METADATA.items():
        got = engine.get(item_id).attributes
        assert got == attrs and json.dumps(got) == json.dumps(attrs)  # key order and int/float kept too
    assert type(engine.get("page-1").attributes["coordinates"]["points"][1][0]) is int  # type: ignore[index]
    tupled = Item.create("t", title="t", attributes={"pair": (1, 2)})
    assert tupled.attributes == {"pair": [1, 2]}  # stored as JSON: a tuple is a list from the start


def test_nested_metadata_survives_a_reopen(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        engine.add(items())
    with Engine.open(tmp_path / "idx") as engine:
        assert {i: engine.get(i).attributes for i in LOADER_METADATA} == LOADER_METADATA
        assert ids(engine, {"authors.name": "Bo"}) == ["page-1"]


FILTERS: list[tuple[dict[str, Any], list[str]]] = [
    ({"tags": "finance"}, ["page-1", "page-2"]),
    ({"tags": {"all": ["finance", "q3"]}}, ["page-1"]),
    ({"tags": {"is_empty": True}}, ["note-1"]),
    ({"authors.name": {"in": ["Bo", "Cy"]}}, ["page-1", "page-2"]),
    ({"authors.email": None}, ["page-1"]),
    ({"title": {"is_null": True}}, ["page-1"]),
    ({"title": {"exists": False}}, ["page-2"]),
    ({"coordinates.layout.w": {"gte": 600}}, ["page-1"]),
    ({"coordinates.points": {"gt": 2.5}}, ["page-1"]),  # nested lists of numbers: one element
    ({"coordinates": "n/a"}, ["note-1"]),
    ({"source": {"text_contains": ".pdf"}, "page": {"ne": 1}}, ["page-2"]),
    ({"$or": [{"flag": True}, {"source": {"$eq": "notes.md"}}]}, ["note-1", "page-2"]),
    ({"not": {"tags": "q3"}}, ["note-1", "page-2"]),
    ({"empty.list": {"is_empty": True}, "empty.object": {"is_empty": True}, "empty.text": ""}, ["page-1"]),
    ({"nosuch": 1}, []),
]


@pytest.mark.parametrize(("filters", "expected"), FILTERS, ids=[json.dumps(f) for f, _ in FILTERS])
def test_filters_reach_nested_metadata(engine: Engine, filters: dict[str, Any], expected: list[str]) -> None:
    assert ids(engine, filters) == expected
    assert sorted(engine.search(Query(text="text", k=10, filters=filters)).hits.ids.tolist()) == expected  # learned


def test_strict_refuses_unknown_paths_and_paths_into_scalars_are_errors(engine: Engine) -> None:
    with pytest.raises(ValidationError, match=r"filters\.nosuch: is not an attribute of any item"):
        ids(engine, {"nosuch": 1}, strict=True)
    assert ids(engine, {"coordinates.points": {"exists": True}}, strict=True) == ["page-1"]
    with pytest.raises(ValidationError, match="'source' never holds an object"):
        ids(engine, {"source.name": "x"})
    assert ids(engine, {"coordinates.system": "PixelSpace"}) == ["page-1"]  # an object in one item is enough


# -- the CLI: JSON Lines catalog in, get --json out, --filter, --where on paths, --strict ------------------
def test_cli_jsonl_round_trip_and_filters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text(
        "".join(json.dumps({"id": i, "title": f"{i} text", "attributes": a}) + "\n" for i, a in LOADER_METADATA.items())
    )
    index = str(tmp_path / "idx")
    assert main(["--index", index, *FAST, "add", "-q", str(catalog)]) == 0
    capsys.readouterr()
    for item_id, attrs in LOADER_METADATA.items():
        assert main(["--index", index, "get", item_id, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["attributes"] == attrs

    def found(*argv: str) -> list[str]:
        assert main(["--index", index, "search", "text", "-k", "5", "--mode", "dense", "--json", *argv]) == 0
        return sorted(hit["id"] for hit in json.loads(capsys.readouterr().out)["hits"])

    assert found("--where", "authors.name=Cy") == ["page-2"]
    assert found("--where", "tags!=q3") == ["note-1", "page-2"]  # they hold tags (note-1: []), none is q3
    assert found("--filter", '{"or": [{"flag": true}, {"tags": {"is_empty": true}}]}') == ["note-1", "page-2"]
    assert found("--filter", '{"$not": {"tags": "q3"}}', "--where", "source=report.pdf") == ["page-2"]
    assert found("--where", "colour=red") == []
    assert main(["--index", index, "search", "text", "--where", "colour=red", "--strict"]) == 1
    assert "filters.colour: is not an attribute of any item" in capsys.readouterr().err
    assert main(["--index", index, "search", "text", "--filter", "[1]"]) == 2
    assert "--filter: is not a JSON object" in capsys.readouterr().err


# -- REST ----------------------------------------------------------------------------------------------------
WRITER = "write-key-0001"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine]]:
    pytest.importorskip("fastapi")
    from xmodal.serve import ApiKey, ServeConfig, create_app
    from xmodal.serve.testing import serve_in_thread

    engine = Engine.open(tmp_path_factory.mktemp("rest") / "idx", encoder=HashingEncoder(), index="exact")
    config = ServeConfig(keys=(ApiKey(WRITER, frozenset({"write"})),), log_requests=False, mcp=False)
    with serve_in_thread(create_app(engine, config)) as url:
        yield url, engine
    engine.close()


def test_rest_round_trip_and_filters(served: tuple[str, Engine]) -> None:
    httpx = pytest.importorskip("httpx")
    url, _ = served
    body = {"items": [{"id": i, "title": f"{i} text", "attributes": a} for i, a in LOADER_METADATA.items()]}
    r = httpx.post(f"{url}/items", json=body, headers={"X-API-Key": WRITER}, timeout=30)
    assert r.status_code == 200 and sorted(r.json()["added"]) == sorted(LOADER_METADATA), r.text
    for item_id, attrs in LOADER_METADATA.items():
        got = httpx.get(f"{url}/items/{item_id}", timeout=30).json()["attributes"]
        assert got == attrs and json.dumps(got) == json.dumps(attrs)

    def search(filters: dict[str, Any], **extra: Any) -> Any:
        return httpx.post(
            f"{url}/search", json={"text": "text", "k": 5, "mode": "dense", "filters": filters, **extra}, timeout=30
        )

    hits = search({"authors.name": {"$in": ["Bo"]}}).json()["hits"]
    assert [h["id"] for h in hits] == ["page-1"] and hits[0]["attributes"] == LOADER_METADATA["page-1"]
    assert search({"nosuch": 1}).json()["hits"] == []
    strict = search({"nosuch": 1}, strict=True)
    assert strict.status_code == 422 and strict.json()["field"] == "filters.nosuch", strict.text
    deep_body = '{"text": "text", "filters": ' + '{"not": ' * 1_000 + '{"a": 1}' + "}" * 1_001
    deep = httpx.post(f"{url}/search", content=deep_body, headers={"Content-Type": "application/json"}, timeout=30)
    assert deep.status_code == 400 and "nested too deeply" in deep.json()["error"], deep.text
    into = search({"source.name": "x"})
    assert into.status_code == 422 and into.json()["field"] == "filters.source.name", into.text
    nan = httpx.post(
        f"{url}/items",
        content='{"items": [{"id": "n", "title": "t", "attributes": {"m": {"x": NaN}}}]}',
        headers={"X-API-Key": WRITER, "Content-Type": "application/json"},
        timeout=30,
    )
    assert nan.status_code == 400 and "NaN is not valid JSON" in nan.json()["error"], nan.text  # the body parser


def _deep_filter(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"a": 1}
    for _ in range(depth):
        value = {"not": value}
    return value


def test_rest_filter_nested_past_the_filter_limit_but_within_the_body_limit(served: tuple[str, Engine]) -> None:
    httpx = pytest.importorskip("httpx")
    url, _ = served
    r = httpx.post(f"{url}/search", json={"text": "text", "filters": _deep_filter(40)}, timeout=30)
    assert r.status_code == 422 and r.json()["field"] == "filters" and "32 levels" in r.json()["error"], r.text


# -- learning to rank: query understanding and features read list and nested values ----------------------
def test_structured_strategy_understands_list_and_nested_values(tmp_path: Path) -> None:
    from xmodal.ltr.pipeline import Pipeline

    colors, materials = ["red", "green", "blue"], ["leather", "canvas"]
    shop = [
        Item.create(
            f"p{i}",
            title=f"product model {i}",
            attributes={
                "colors": [colors[i % 3], colors[(i + 1) % 3]],
                "spec": {"material": materials[i % 2], "sizes": [38, 40 + i % 3]},
                "or": "a name no filter can take",
                "maker": None,
            },
        )
        for i in range(30)
    ]
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        engine.add(shop)
        pipeline = Pipeline(engine)
        found = pipeline.understanding.understand("red leather product")
        assert found.slots == {"colors": ["red"], "spec.material": ["leather"]}
        hits = pipeline.strategies["structured"].retrieve(Query(text="red leather product"), 30)
        assert len(hits) == 10  # red: i % 3 in (0, 2), 20 of 30; leather: even i, half of them
        for item_id in hits.ids.tolist():
            attrs = engine.get(item_id).attributes
            assert "red" in attrs["colors"] and attrs["spec"]["material"] == "leather"  # type: ignore[index,operator]
        result = engine.search(Query(text="red leather product", k=10), explain=True)  # the learned mode, features
        assert len(result.hits) == 10 and result.explain is not None
