"""Issue 13, defects 5 (item sizes) and 9 (deep nesting): an item over a size limit, or a record nested
absurdly deep, is rejected alone, naming where it is, the field, its size, the limit and the fix; the
rest of the batch, catalog or request is added."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xmodal import Engine, Item, Query
from xmodal import records as rec
from xmodal.cli import main
from xmodal.errors import ValidationError
from xmodal.ingest.catalog import Located, read_csv, read_jsonl
from xmodal.ingest.prepare import Rejection

FAST = ["--encoder", "hashing", "--index-kind", "exact"]
DEEP = 10_000  # the catalog line: 10,000 levels


def nested(depth: int, leaf: object = 1) -> object:
    """``[[[...leaf...]]]`` ``depth`` lists deep, built without recursion."""
    value: object = leaf
    for _ in range(depth):
        value = [value]
    return value


def deep_json(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


# -- the limits on Item.create ------------------------------------------------------------------------

OVER: list[tuple[str, dict[str, Any], str, int]] = [
    ("title", {"title": "t" * (rec.MAX_TITLE_LENGTH + 1)}, "title", rec.MAX_TITLE_LENGTH),
    ("text", {"title": "t", "text": "w " * rec.MAX_TEXT_LENGTH}, "text", rec.MAX_TEXT_LENGTH),
    (
        "attribute count",
        {"title": "t", "attributes": {f"a{i}": i for i in range(rec.MAX_ATTRIBUTES + 1)}},
        "attributes",
        rec.MAX_ATTRIBUTES,
    ),
    (
        "attribute name",
        {"title": "t", "attributes": {"k" * (rec.MAX_ATTRIBUTE_NAME_LENGTH + 1): 1}},
        "attributes.kkkk",
        rec.MAX_ATTRIBUTE_NAME_LENGTH,
    ),
    (
        "attribute value",
        {"title": "t", "attributes": {"color": "v" * (rec.MAX_ATTRIBUTE_VALUE_LENGTH + 1)}},
        "attributes.color",
        rec.MAX_ATTRIBUTE_VALUE_LENGTH,
    ),
    ("modality", {"title": "t", "modality": "text+" * 100}, "modality", rec.MAX_MODALITY_LENGTH),
    ("media path", {"title": "t", "media": {"image": "a/" * 3000 + "x.png"}}, "media.image", 4096),
]


@pytest.mark.parametrize(("case", "fields", "field", "limit"), OVER, ids=[c[0] for c in OVER])
def test_an_item_over_a_limit_is_refused_naming_field_size_and_limit(
    case: str, fields: dict[str, Any], field: str, limit: int
) -> None:
    with pytest.raises(ValidationError) as info:
        Item.create("big", **fields)
    err = info.value
    assert err.field.startswith(field) and err.item == "big", str(err)
    assert f"limit of {limit:,}" in err.problem and err.fix, str(err)


def test_the_limits_are_inclusive_and_the_sizes_are_said() -> None:
    item = Item.create(
        "x" * rec.MAX_ID_LENGTH,
        title="t" * rec.MAX_TITLE_LENGTH,
        text="w" * rec.MAX_TEXT_LENGTH,
        attributes={f"{i:0{rec.MAX_ATTRIBUTE_NAME_LENGTH}d}": "v" * rec.MAX_ATTRIBUTE_VALUE_LENGTH for i in range(256)},
    )
    assert len(item.attributes) == rec.MAX_ATTRIBUTES
    with pytest.raises(ValidationError, match=r"title: is 1,001 characters, longer than the limit of 1,000 \(shorten"):
        Item.create("a", title="t" * 1001)
    with pytest.raises(ValidationError, match=r"text: is 100,001 characters.*split the document into segments"):
        Item.create("a", text="t" * 100_001)
    with pytest.raises(ValidationError, match=r"id: is 513 characters, longer than the limit of 512"):
        Item.create("i" * 513, title="t")


def test_a_huge_title_is_refused_at_once_without_echoing_it() -> None:
    title = "x" * 20_000_000  # the probe's 19.5 MB title took 114 s on the writer thread
    with pytest.raises(ValidationError) as info:
        Item.create("huge", title=title)
    assert "20,000,000 characters" in str(info.value) and len(str(info.value)) < 300


# -- deep nesting outside catalogs: refused, never a RecursionError ----------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"title": "t", "attributes": {"a": nested(100_000)}},
        {"title": "t", "span": nested(100_000)},
        {"title": "t", "span": {"page": nested(100_000)}},
        {"title": "t", "modality": nested(100_000)},
        {"title": "t", "media": {"image": nested(100_000)}},
        {"title": "t", "attributes": {"a" * 10_000: 1}},
    ],
    ids=["attribute", "span", "span-page", "modality", "media", "attribute-name"],
)
def test_deeply_nested_values_are_refused_with_a_short_message(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        Item.create("n", **fields)
    assert len(str(info.value)) < 400, str(info.value)[:500]


def test_deeply_nested_filters_are_refused_with_a_short_message(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "idx", encoder="hashing", index="exact") as engine:
        engine.add([Item.create("a", title="apple", attributes={"n": 1})])
        for filters in ({"n": nested(100_000)}, {"n": [nested(100_000)]}, {"n": {"gt": nested(100_000)}}):
            with pytest.raises(ValidationError) as info:
                engine.search(Query(text="apple", filters=filters))
            assert len(str(info.value)) < 400


# -- catalogs: the line is rejected with its number, the others are added -----------------------------


def test_cli_add_rejects_the_oversized_line_by_number_and_adds_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = tmp_path / "c.jsonl"
    lines = [
        {"id": "a", "title": "apple"},
        {"id": "big", "title": "x" * 5_000_000},
        {"id": "b", "title": "banana", "attributes": {"note": "n" * 2_000}},
        {"id": "c", "title": "cherry"},
    ]
    catalog.write_text("".join(json.dumps(line) + "\n" for line in lines))
    index = tmp_path / "idx"
    assert main(["--index", str(index), *FAST, "add", "-q", "--json", str(catalog)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["added"] == 2
    (title, note) = report["rejected"]
    assert title["where"] == f"{catalog}:2" and "title: is 5,000,000 characters" in title["reason"]
    assert "limit of 1,000" in title["reason"] and len(title["reason"]) < 300
    assert note["where"] == f"{catalog}:3" and "attributes.note: is 2,000 characters" in note["reason"]
    with Engine.open(index) as engine:
        assert "a" in engine and "c" in engine and "big" not in engine and "b" not in engine


def test_cli_add_rejects_a_line_nested_10000_deep_and_adds_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = tmp_path / "deep.jsonl"
    catalog.write_text(
        "\n".join(
            [
                json.dumps({"id": "a", "title": "apple"}),
                '{"id": "deep", "title": "t", "attributes": {"x": ' + deep_json(DEEP) + "}}",
                deep_json(DEEP),
                '{"id": "mid", "title": "t", "span": ' + deep_json(200) + "}",  # parses, still too deep
                '{"id": "bad", "title": "t", "modality": ' + deep_json(900) + "}",
                json.dumps({"id": "b", "title": "banana"}),
            ]
        )
        + "\n"
    )
    index = tmp_path / "idx"
    assert main(["--index", str(index), *FAST, "add", "-q", "--json", str(catalog)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["added"] == 2
    rejected = {r["where"]: r["reason"] for r in report["rejected"]}
    assert list(rejected) == [f"{catalog}:{n}" for n in (2, 3, 4, 5)]
    assert all("nested" in reason and "limit of 32" in reason for reason in rejected.values()), rejected
    with Engine.open(index) as engine:
        assert "a" in engine and "b" in engine and len(engine) == 2


def test_csv_cells_nested_deep_reject_their_row_only(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    rows = [
        "id,title,attributes,span,attributes.size",
        "a,apple,,,",
        f'deep,t,"{deep_json(DEEP)}",,',
        f'span,t,,"{deep_json(DEEP)}",',
        f'mid,t,"{{""x"": {deep_json(100)}}}",,',
        f"cell,t,,,{deep_json(DEEP)}",  # an attributes.NAME cell that is not a number stays text
        "b,banana,,,",
    ]
    path.write_text("\n".join(rows) + "\n")
    records = list(read_csv(path))
    assert [r.where.rsplit(":", 1)[1] for r in records] == ["2", "3", "4", "5", "6", "7"]
    kinds = [type(r).__name__ for r in records]
    assert kinds == ["Located", "Rejection", "Rejection", "Rejection", "Rejection", "Located"], records
    for r in records[1:4]:
        assert isinstance(r, Rejection) and "nested" in r.reason and "limit of 32" in r.reason
    cell = records[4]
    assert isinstance(cell, Rejection) and "attributes.size: is 20,001 characters" in cell.reason


def test_moderately_nested_fields_keep_their_precise_error(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    too_deep = {"x": {"y": nested(rec.MAX_ATTRIBUTE_DEPTH)}}  # within the line's limit of 32, past the attribute's
    lines = [
        {"id": "a", "title": "t", "attributes": too_deep},
        {"id": "b", "title": "t", "attributes": {"x": {"y": [1]}}},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    (record, fine) = list(read_jsonl(path))
    assert isinstance(record, Rejection), record
    assert (
        "attributes.x.y[0]" in record.reason
        and f"more than the limit of {rec.MAX_ATTRIBUTE_DEPTH} levels" in record.reason
    )
    assert isinstance(fine, Located) and fine.item.attributes == {"x": {"y": [1]}}


def test_attribute_values_are_limited_in_number() -> None:
    fine = {"tags": ["t"] * (rec.MAX_ATTRIBUTE_VALUES - 1)}  # the list and its elements
    assert len(Item.create("a", title="t", attributes=fine).attributes["tags"]) == rec.MAX_ATTRIBUTE_VALUES - 1
    with pytest.raises(ValidationError) as info:
        Item.create("a", title="t", attributes={"tags": ["t"] * rec.MAX_ATTRIBUTE_VALUES})
    assert f"limit of {rec.MAX_ATTRIBUTE_VALUES:,} values" in str(info.value) and info.value.fix
    with pytest.raises(ValidationError, match=r"attributes\.meta\.note: is 1,001 characters"):
        Item.create("a", title="t", attributes={"meta": {"note": "n" * 1_001}})
    with pytest.raises(ValidationError, match=r"attributes\.meta\.kkk.*limit of 128"):
        Item.create("a", title="t", attributes={"meta": {"k" * 129: 1}})


# -- REST: one oversized item in a batch is rejected alone; a body over the limit is a 413 -------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine]]:
    pytest.importorskip("fastapi")
    from xmodal.encoders import HashingEncoder
    from xmodal.serve import ApiKey, ServeConfig, create_app
    from xmodal.serve.testing import serve_in_thread

    engine = Engine.open(tmp_path_factory.mktemp("limits") / "idx", encoder=HashingEncoder(), index="exact")
    config = ServeConfig(
        keys=(ApiKey("write-key-0001", frozenset({"write"})),), max_body_bytes=1_000_000, log_requests=False, mcp=False
    )
    with serve_in_thread(create_app(engine, config)) as url:
        yield url, engine
    engine.close()


def test_rest_batch_rejects_the_oversized_item_alone(server: tuple[str, Engine]) -> None:
    httpx = pytest.importorskip("httpx")
    url, engine = server
    items = [
        {"id": "ok1", "title": "fine"},
        {"id": "long-text", "title": "t", "text": "w" * 100_001},
        {"id": "long-title", "title": "t" * 1_001},
        {"id": "many", "title": "t", "attributes": {f"a{i}": i for i in range(300)}},
        {"id": "ok2", "title": "also fine"},
    ]
    r = httpx.post(f"{url}/items", json={"items": items}, headers={"X-API-Key": "write-key-0001"}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["added"] == ["ok1", "ok2"]
    reasons = {rej["where"]: rej["reason"] for rej in body["rejected"]}
    assert "text: is 100,001 characters, longer than the limit of 100,000" in reasons["long-text"]
    assert "split the document into segments" in reasons["long-text"]
    assert "title: is 1,001 characters" in reasons["long-title"]
    assert "has 300 attributes, more than the limit of 256" in reasons["many"]
    assert "ok1" in engine and "ok2" in engine and "long-text" not in engine


def test_rest_body_over_the_limit_is_413(server: tuple[str, Engine]) -> None:
    httpx = pytest.importorskip("httpx")
    url, _ = server
    items = [{"id": "big", "title": "t", "text": "w" * 1_500_000}]
    r = httpx.post(f"{url}/items", json={"items": items}, headers={"X-API-Key": "write-key-0001"}, timeout=30)
    assert r.status_code == 413 and r.json()["error"], r.text


def test_jsonl_reader_keeps_good_lines_around_an_oversized_one(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(
        json.dumps({"id": "a", "title": "a"}) + "\n" + json.dumps({"id": "b", "text": "t" * 100_001}) + "\n"
    )
    first, second = list(read_jsonl(path))
    assert isinstance(first, Located)
    assert isinstance(second, Rejection) and second.where.endswith(":2") and "text: is 100,001" in second.reason
