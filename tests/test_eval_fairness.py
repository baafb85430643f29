"""``xmodal eval QUERIES --by FIELD`` (issue 17, part 7): every metric per group of queries, grouped by a field
of the query lines or an attribute of their relevant items, and the largest gap between groups."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xmodal import Engine, Item
from xmodal.cli import main
from xmodal.encoders import HashingEncoder
from xmodal.errors import ValidationError
from xmodal.eval.fairness import evaluate_by
from xmodal.eval.runner import read_queries


@pytest.fixture
def judged(tmp_path: Path) -> tuple[Path, Path]:
    """Category "fruit" items are found by their own words; "tool" items are judged relevant to queries that
    share no word with them (a group the index serves badly)."""
    index = tmp_path / "idx"
    items = [
        Item.create(f"f{i}", title=f"apple{i} orchard{i}", attributes={"category": "fruit", "meta": {"shelf": "top"}})
        for i in range(8)
    ] + [Item.create(f"t{i}", title=f"hammer{i} wrench{i}", attributes={"category": "tool"}) for i in range(8)]
    with Engine.open(index, encoder=HashingEncoder(), index="exact", extensions=[]) as engine:
        engine.add(items)
    lines = [{"text": f"apple{i} orchard{i}", "relevant": [f"f{i}"], "language": "en"} for i in range(8)]
    lines += [{"text": f"zebra{i} quartz{i}", "relevant": [f"t{i}"], "language": "de"} for i in range(8)]
    lines.append({"text": "plum kiwi", "relevant": ["f1", "t2"]})  # no language; mixed categories; missed
    queries = tmp_path / "queries.jsonl"
    queries.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return index, queries


def test_by_a_query_field_reports_groups_and_the_gap(
    judged: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    index, queries = judged
    assert (
        main(["--index", str(index), "eval", str(queries), "--by", "language", "--json", "-q", "--resamples", "300"])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    groups = {g["group"]: g for g in report["groups"]}
    assert set(groups) == {"en", "de", "(none)"}  # no language on the line, nor on its items
    assert groups["en"]["queries"] == 8 and groups["en"]["grouped_by"] == {"query_field": 8, "item_attribute": 0}
    assert groups["en"]["recall@1"]["mean"] == 1.0 and groups["de"]["recall@1"]["mean"] < 0.5
    for name in ("recall@1", "recall@5", "recall@10", "mrr", "ndcg@10"):
        cell = groups["de"][name]
        assert cell["low"] <= cell["mean"] <= cell["high"]
    gap = report["largest_gap"]["ndcg@10"]
    assert gap["best"] == "en" and gap["worst"] in {"de", "(none)"}
    assert gap["mean"] > 0.5 and gap["low"] > 0.0  # a real gap: its interval excludes 0
    assert report["queries"] == 17


def test_by_an_item_attribute_and_a_nested_one(judged: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    index, queries = judged
    with Engine.open(index) as engine:
        result = evaluate_by(engine, read_queries(queries), "category", resamples=200)
        nested = evaluate_by(engine, read_queries(queries), "meta.shelf", resamples=200)
    groups = {g.name: g for g in result.groups}
    assert {name: g.queries for name, g in groups.items()} == {"fruit": 8, "tool": 8, "(mixed)": 1}
    assert groups["tool"].from_items == 8 and groups["fruit"].metrics["recall@1"].mean == 1.0
    gap = result.gaps["mrr"]
    assert gap is not None and gap[1] == "fruit"
    assert {g.name: g.queries for g in nested.groups} == {"top": 9, "(none)": 8}  # an item without it does not count
    assert main(["--index", str(index), "eval", str(queries), "--by", "category", "-q", "--resamples", "100"]) == 0
    text = capsys.readouterr().out
    assert "largest gap nDCG@10" in text and "fruit over" in text


def test_by_bad_uses(judged: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    index, queries = judged
    with Engine.open(index) as engine, pytest.raises(ValidationError, match="no query has the field 'colour'"):
        evaluate_by(engine, read_queries(queries), "colour", resamples=10)
    assert main(["--index", str(index), "eval", str(queries), "--by", "language", "--mode", "all"]) == 2
    assert "--by reports one mode" in capsys.readouterr().err
    assert main(["--index", str(index), "eval", str(queries), "--by", "a..b"]) == 2
    assert "not a field name" in capsys.readouterr().err
