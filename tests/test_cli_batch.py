"""``xmodal search --with-vectors``, ``search --queries FILE`` (a batch) and ``get`` of several ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from xmodal import Engine

from .test_cli_collection import index, run  # noqa: F401 - the fixture

__all__ = ["index"]


def test_search_with_vectors(index: str, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    code, out, err = run(capsys, "--index", index, "search", "square", "-k", "2", "--with-vectors", "--json")
    assert code == 0, err
    hits = json.loads(out)["hits"]
    with Engine.open(Path(index)) as engine:
        for hit in hits:
            stored = engine.vectors(hit["id"]).get(hit["provenance"].split(":")[-1])
            if stored is not None:
                np.testing.assert_allclose(hit["vector"], stored, rtol=1e-6)
            assert len(hit["vector"]) == engine.dim
    code, _, err = run(capsys, "--index", index, "search", "square", "--with-vectors")
    assert code == 2 and "--json" in err


def test_search_queries_file(index: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    queries = tmp_path / "queries.txt"
    queries.write_text('square\n\n{"text": "mug", "k": 1, "filters": {"color": "red"}}\nlamp\n')
    code, out, err = run(capsys, "--index", index, "search", "--queries", str(queries), "-k", "3", "--mode", "dense")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [len(line["hits"]) for line in lines] == [3, 1, 3]
    singles = [
        json.loads(run(capsys, "--index", index, "search", text, "-k", "3", "--mode", "dense", "--json")[1])["hits"]
        for text in ("square", "lamp")
    ]
    assert [h["id"] for h in lines[0]["hits"]] == [h["id"] for h in singles[0]]
    assert [h["id"] for h in lines[2]["hits"]] == [h["id"] for h in singles[1]]
    assert lines[1]["hits"][0]["attributes"]["color"] == "red"
    queries.write_text('square\n{"text": "x", "target": "glyphs"}\n')
    code, _, err = run(capsys, "--index", index, "search", "--queries", str(queries))
    assert code == 2 and "line 2: target" in err
    queries.write_text('square\n{"text": "x", "k": 0}\n')
    code, _, err = run(capsys, "--index", index, "search", "--queries", str(queries))
    assert code == 2 and "line 2" in err and "k:" in err
    queries.write_text("square\n{oops\n")
    code, _, err = run(capsys, "--index", index, "search", "--queries", str(queries))
    assert code == 2 and "line 2: not valid JSON" in err
    code, _, err = run(capsys, "--index", index, "search", "mug", "--queries", str(queries))
    assert code == 2 and "drop the text" in err


def test_get_several_ids(index: str, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    code, out, err = run(capsys, "--index", index, "get", "mug", "nope", "sq-red", "--json")
    assert code == 1 and "nope" in err
    body = json.loads(out)
    assert [i["id"] for i in body["items"]] == ["mug", "sq-red"] and body["missing"] == ["nope"]
    code, out, _ = run(capsys, "--index", index, "get", "mug", "--with-vectors")
    assert code == 0 and set(json.loads(out)["items"][0]["vectors"]) >= {"text"}
    code, out, _ = run(capsys, "--index", index, "get", "mug", "sq-red")
    assert code == 0 and out.splitlines()[0].startswith("mug\t")
