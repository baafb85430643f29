"""``xmodal search --cursor``, ``xmodal scroll`` and ``xmodal export`` on a real index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .test_cli_collection import index, run  # noqa: F401 - the fixture

__all__ = ["index"]


def test_search_cursor(index: str, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    code, out, err = run(capsys, "--index", index, "search", "square", "-k", "3", "--mode", "dense", "--json")
    assert code == 0, err
    first = json.loads(out)
    cursor = first["next_cursor"]
    code, out, err = run(
        capsys, "--index", index, "search", "square", "-k", "3", "--mode", "dense", "--json", "--cursor", cursor
    )
    assert code == 0, err
    code, full, _ = run(
        capsys, "--index", index, "search", "square", "-k", "3", "--mode", "dense", "--offset", "3", "--json"
    )
    assert [h["id"] for h in json.loads(out)["hits"]] == [h["id"] for h in json.loads(full)["hits"]]
    code, _, err = run(capsys, "--index", index, "search", "square", "-k", "3", "--mode", "dense")
    assert code == 0 and "next page: --cursor " in err
    code, _, err = run(capsys, "--index", index, "search", "mug", "-k", "3", "--mode", "dense", "--cursor", cursor)
    assert code == 1 and "cursor: was issued for another query" in err


def test_scroll(index: str, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    ids, cursor = [], None
    while True:
        extra = ["--cursor", cursor] if cursor else []
        code, out, err = run(capsys, "--index", index, "scroll", "--limit", "4", "--json", *extra)
        assert code == 0, err
        page = json.loads(out)
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(ids) == 9 == len(set(ids))
    code, out, err = run(capsys, "--index", index, "scroll", "--where", "color=red", "--limit", "2")
    assert code == 0 and len(out.splitlines()) == 2 and "next page: --cursor" in err
    assert run(capsys, "--index", index, "scroll", "--limit", "0")[0] == 2
    assert run(capsys, "--index", index, "scroll", "--with-vectors")[0] == 2


def test_export(index: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    path = tmp_path / "items.jsonl"
    code, out, err = run(capsys, "--index", index, "export", str(path), "--where", "color=red")
    assert code == 0, err
    assert out.startswith("exported 3 items to ") and "jsonl" in out
    assert len(path.read_text().splitlines()) == 3
    code, _, err = run(capsys, "--index", index, "export", str(path))
    assert code == 1 and "exists" in err and "--force" in err
    code, out, _ = run(capsys, "--index", index, "export", str(path), "--force", "--with-vectors", "--json")
    report = json.loads(out)
    assert code == 0 and report["items"] == 9 and report["format"] == "jsonl"
    assert "text" in json.loads(path.read_text().splitlines()[0])["vectors"]
    code, _, err = run(capsys, "--index", index, "export", str(tmp_path / "x.csv"))
    assert code == 1 and "--format" in err


def test_export_parquet(index: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "items.out"
    code, out, err = run(capsys, "--index", index, "export", str(path), "--format", "parquet")
    assert code == 0, err
    assert pq.read_table(path).num_rows == 9
