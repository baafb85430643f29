"""Parts from outside the package (``tests/toyparts``), named by dotted path in the index settings, work end
to end in the Python API, the CLI and the REST API, and reopen everywhere; a failing extension never fails
a committed write and catches up from the change log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from xmodal import Engine, Item, Query
from xmodal.encoders import HashingEncoder
from xmodal.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
TOY = "tests.toyparts.extension:ToyExtension"


def items(n: int, start: int = 0) -> list[Item]:
    return [
        Item.create(f"t{i}", title=f"toy item {i}", attributes={"even": i % 2 == 0}) for i in range(start, start + n)
    ]


def test_a_dotted_path_extension_runs_in_the_api(tmp_path: Path) -> None:
    from tests.toyparts.extension import ToyExtension

    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact", extensions=[TOY]) as engine:
        engine.add(items(5))
        assert engine.modes() == ["dense", "toy-newest"]
        result = engine.search(Query(text="toy", k=3, mode="toy-newest"), explain=True)
        assert result.hits.ids.tolist() == ["t4", "t3", "t2"] and result.explain == {"mode": "toy-newest", "known": 5}
        filtered = engine.search(Query(text="toy", k=9, mode="toy-newest", filters={"even": True}))
        assert filtered.hits.ids.tolist() == ["t4", "t2", "t0"]
        toy = engine.extension(TOY)
        assert isinstance(toy, ToyExtension)
        engine.checkpoint()
        engine.checkpoint()  # nothing changed: nothing written
        assert toy.checkpoints == 1
        with pytest.raises(ConfigError, match="not enabled"):
            engine.extension("ltr")


def test_a_failing_extension_never_fails_a_committed_write(tmp_path: Path) -> None:
    from tests.toyparts.extension import ToyExtension

    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact", extensions=[TOY]) as engine:
        engine.add(items(3))
        ToyExtension.fail_next_put = True
        report = engine.add(items(2, start=3))  # the toy fails on it: the write is still committed
        assert report.added == ["t3", "t4"] and len(engine) == 5
        hits = engine.search(Query(text="toy", k=9, mode="toy-newest")).hits  # caught up from the log
        assert hits.ids.tolist() == ["t4", "t3", "t2", "t1", "t0"]


def test_the_extension_catches_up_with_writes_made_without_it(tmp_path: Path) -> None:
    index = tmp_path / "idx"
    with Engine.open(index, encoder=HashingEncoder(), index="exact", extensions=[TOY]) as engine:
        engine.add(items(3))
    other = Engine.open(index)  # the same index; its settings open the toy extension too
    other.close()
    with Engine.open(index) as engine:
        engine.delete(["t0"])
        engine.add(items(2, start=3))
    with Engine.open(index) as engine:  # from its checkpoint plus the change log after it
        assert engine.search(Query(text="toy", k=9, mode="toy-newest")).hits.ids.tolist() == ["t4", "t3", "t2", "t1"]


def cli(index: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [sys.executable, "-m", "xmodal.cli", "--index", str(index), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=ROOT,
    )


def test_the_cli_and_the_rest_api_reopen_an_index_with_a_third_party_extension(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from xmodal.serve.app import create_app

    index = tmp_path / "idx"
    with Engine.open(index, encoder=HashingEncoder(), index="exact", extensions=[TOY]) as engine:
        engine.add(items(4))
    done = cli(index, "search", "toy", "--mode", "toy-newest", "-k", "2", "--json")
    assert done.returncode == 0, done.stderr
    assert [h["id"] for h in json.loads(done.stdout)["hits"]] == ["t3", "t2"]
    done = cli(index, "search", "toy", "--mode", "learned")  # not a mode of this index
    assert done.returncode == 2 and "toy-newest" in done.stderr
    with Engine.open(index) as engine, TestClient(create_app(engine), base_url="http://localhost") as client:
        r = client.post("/search", json={"text": "toy", "k": 3, "mode": "toy-newest", "log": False})
        assert r.status_code == 200, r.text
        assert [h["id"] for h in r.json()["hits"]] == ["t3", "t2", "t1"]
        assert r.json()["hits"][0]["provenance"] == "toy"


def test_a_dotted_path_encoder_reopens_in_the_cli_and_the_rest_api(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from tests.toyparts.encoder import NAME, LetterEncoder
    from xmodal.serve.app import create_app

    index = tmp_path / "idx"
    with Engine.open(index, encoder=LetterEncoder(), index="exact", extensions=[]) as engine:
        engine.add([Item.create("z", title="zzz buzz"), Item.create("a", title="banana cabana")])
        assert engine.settings["encoder"]["name"] == NAME and engine.default_mode == "dense"
    done = cli(index, "search", "aaa", "-k", "1", "--json")  # the CLI resolves the encoder by its dotted path
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["hits"][0]["id"] == "a"
    with Engine.open(index) as engine, TestClient(create_app(engine), base_url="http://localhost") as client:
        r = client.post("/search", json={"text": "fizz", "k": 1, "log": False})
        assert r.status_code == 200 and r.json()["hits"][0]["id"] == "z", r.text
