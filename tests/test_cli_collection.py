"""``xmodal count``, ``search --offset``, ``delete --where/--all --yes`` and ``update --set`` on a real index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from xmodal import Engine
from xmodal.cli import main

from .test_cli import FAST, make_catalog


@pytest.fixture
def index(tmp_path: Path) -> str:
    path = make_catalog(tmp_path)
    assert main(["--index", str(tmp_path / "idx"), *FAST, "add", "-q", str(path)]) == 0
    return str(tmp_path / "idx")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_count(index: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--index", index, "count")[:2] == (0, "9\n")
    assert run(capsys, "--index", index, "count", "--where", "color=red")[:2] == (0, "3\n")  # mug, book, the red square
    code, out, _ = run(capsys, "--index", index, "count", "--filter", '{"price": {"lt": 7}}', "--json")
    assert code == 0 and json.loads(out) == {"count": 3}  # mug (0), red and green squares (5, 6)
    code, _, err = run(capsys, "--index", index, "count", "--where", "colour=red", "--strict")
    assert code == 1 and "colour" in err


def test_search_offset(index: str, capsys: pytest.CaptureFixture[str]) -> None:
    def ids(*extra: str) -> list[str]:
        code, out, err = run(capsys, "--index", index, "search", "square", "--json", *extra)
        assert code == 0, err
        return [h["id"] for h in json.loads(out)["hits"]]

    full = ids("-k", "6")
    assert ids("-k", "3") + ids("-k", "3", "--offset", "3") == full
    assert ids("-k", "3", "--offset", "500") == []
    code, _, err = run(capsys, "--index", index, "search", "square", "--offset", "-2")
    assert code == 2 and "offset" in err


def test_delete_by_filter_needs_yes_and_goes_through_the_engine(index: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--index", index, "delete", "--where", "color=red")
    assert code == 2 and "--yes" in err
    assert run(capsys, "--index", index, "count")[1] == "9\n"
    code, _, err = run(capsys, "--index", index, "delete", "--filter", "{}", "--yes")
    assert code == 2 and "--all" in err  # an empty filter: says how to delete everything instead
    code, _, err = run(capsys, "--index", index, "delete", "mug", "--where", "color=red", "--yes")
    assert code == 2 and "not both" in err
    code, out, _ = run(capsys, "--index", index, "delete", "--where", "color=red", "--yes", "--json")
    assert code == 0 and json.loads(out) == {"deleted": 3}
    code, out, _ = run(capsys, "--index", index, "search", "ceramic coffee mug", "-k", "20", "--json")
    assert code == 0 and "mug" not in {h["id"] for h in json.loads(out)["hits"]} and out.count('"id"') == 6
    code, _, err = run(capsys, "--index", index, "delete")
    assert code == 2 and "ids" in err
    assert run(capsys, "--index", index, "delete", "--all")[0] == 2
    assert run(capsys, "--index", index, "delete", "--all", "--yes")[:2] == (0, "deleted 6 items\n")
    assert run(capsys, "--index", index, "count")[1] == "0\n"


def test_update_sets_attributes_without_reencoding(index: str, capsys: pytest.CaptureFixture[str]) -> None:
    with Engine.open(Path(index)) as engine:
        before = engine.vectors("mug")
    code, out, err = run(
        capsys, "--index", index, "update", "mug", "--set", "color=gold", "--set", 'tags=["a", "b"]', "--json"
    )
    assert code == 0, err
    assert json.loads(out)["attributes"] == {"color": "gold", "price": 0, "tags": ["a", "b"]}
    assert run(capsys, "--index", index, "count", "--where", "color=gold")[1] == "1\n"
    assert run(capsys, "--index", index, "count", "--filter", '{"tags": {"contains": "b"}}')[1] == "1\n"
    with Engine.open(Path(index)) as engine:
        after = engine.vectors("mug")
    assert after.keys() == before.keys() and all(np.array_equal(after[k], before[k]) for k in before)
    code, out, _ = run(capsys, "--index", index, "update", "mug", "--set", "only=1", "--replace")
    assert code == 0 and out == 'updated mug: {"only": 1}\n'
    assert run(capsys, "--index", index, "update", "mug")[0] == 2
    code, _, err = run(capsys, "--index", index, "update", "mug", "--set", "novalue")
    assert code == 2 and "NAME=VALUE" in err
    code, _, err = run(capsys, "--index", index, "update", "nope", "--set", "a=1")
    assert code == 1 and "nope" in err


def test_search_by_vector_file(index: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Engine.open(Path(index)) as engine:
        vector = engine.vectors("lamp")["text"]
    np.save(tmp_path / "q.npy", vector)
    (tmp_path / "q.json").write_text(json.dumps(vector.tolist()))
    for name in ("q.npy", "q.json"):
        code, out, err = run(
            capsys, "--index", index, "search", "--vector-file", str(tmp_path / name), "-k", "2", "--json"
        )
        assert code == 0, err
        assert json.loads(out)["hits"][0]["id"] == "lamp"
    code, out, _ = run(
        capsys, "--index", index, "search", "--vector-file", str(tmp_path / "q.npy"), "--where", "color=red", "--json"
    )
    assert code == 0 and {h["attributes"]["color"] for h in json.loads(out)["hits"]} == {"red"}
    (tmp_path / "bad.json").write_text(json.dumps([1.0, "NaN"]))
    code, _, err = run(capsys, "--index", index, "search", "--vector-file", str(tmp_path / "bad.json"))
    assert code == 1 and "vector" in err
    code, _, err = run(capsys, "--index", index, "search", "x", "--vector-file", str(tmp_path / "q.npy"))
    assert code == 2 and "alone" in err
    code, _, err = run(capsys, "--index", index, "search", "--vector-file", str(tmp_path / "missing.npy"))
    assert code == 2 and "does not exist" in err


def test_catalog_lines_with_own_vectors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = str(tmp_path / "idx")
    assert main(["--index", index, *FAST, "add", "-q", str(make_catalog(tmp_path))]) == 0
    with Engine.open(Path(index)) as engine:
        dim = engine.dim
    mine = [0.0] * dim
    mine[1] = 1.0
    lines = [
        {"id": "own", "title": "anything", "vectors": {"text": mine}},
        {"id": "short", "title": "anything", "vectors": mine[:3]},
    ]
    catalog = tmp_path / "own.jsonl"
    catalog.write_text("".join(json.dumps(line) + "\n" for line in lines))
    csv = tmp_path / "own.csv"
    csv.write_text('id,title,vectors\nown2,anything,"' + json.dumps(mine).replace('"', '""') + '"\n')
    code, out, _ = run(capsys, "--index", index, "add", "-q", str(catalog), str(csv))
    assert code == 1 and "added 2 items; rejected 1" in out
    assert f"own.jsonl:2: item 'short': vectors.text: has 3 dimensions, the index has {dim}" in out
    vector = tmp_path / "q.json"
    vector.write_text(json.dumps(mine))
    code, out, _ = run(capsys, "--index", index, "search", "--vector-file", str(vector), "-k", "2", "--json")
    assert code == 0 and {h["id"] for h in json.loads(out)["hits"]} == {"own", "own2"}
