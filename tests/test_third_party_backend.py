"""A vector backend from outside the package (``tests/toyparts/backend.py``, never registered) works end to
end: an index created with it through the CLI (``--backend package.module:Class``), searched by the CLI,
served by the REST API and reopened, with the same answers as the local backend; the backend is an index
setting that must match and, when it cannot be loaded, fails with a clear error naming what to install."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.test_third_party import cli
from xmodal import Engine, Item, Query
from xmodal.encoders import HashingEncoder
from xmodal.errors import ConfigError
from xmodal.results import SearchResult
from xmodal.store.sqlite import SQLiteStore

TOY = "tests.toyparts.backend:ToyBackend"
COLORS = ["red", "green", "blue"]


def catalog(folder: Path, n: int = 30) -> Path:
    lines = [
        {"id": f"p{i}", "title": f"product {i} {COLORS[i % 3]} lamp", "attributes": {"color": COLORS[i % 3], "n": i}}
        for i in range(n)
    ]
    path = folder / "catalog.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def hits(done: subprocess.CompletedProcess[str]) -> list[tuple[str, float]]:
    assert done.returncode == 0, done.stderr
    return [(h["id"], round(h["score"], 5)) for h in json.loads(done.stdout)["hits"]]


def same_answer(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> bool:
    """The same scores, and the same ids wherever the score is not tied with the last one (which items
    of a tie make the cut is each backend's own business)."""
    if [s for _, s in a] != [s for _, s in b]:
        return False
    cut = a[-1][1] if a else 0.0
    return [i for i, s in a if s > cut] == [i for i, s in b if s > cut] and {i for i, _ in a} - {
        i for i, s in a if s == cut
    } == {i for i, _ in b} - {i for i, s in b if s == cut}


def test_the_cli_and_the_rest_api_run_an_index_on_a_dotted_path_backend(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from tests.toyparts.backend import ToyBackend
    from xmodal.serve.app import create_app

    toy, local, cat = tmp_path / "toy", tmp_path / "local", catalog(tmp_path)
    done = cli(toy, "--encoder", "hashing", "--backend", TOY, "add", str(cat))
    assert done.returncode == 0, done.stderr
    assert cli(local, "--encoder", "hashing", "--index-kind", "exact", "add", str(cat)).returncode == 0
    assert (toy / "index" / "toy.json").is_file()  # the toy's own checkpoint, not the local one's
    info = cli(toy, "info")
    assert info.returncode == 0 and f"backend     {TOY}" in info.stdout and "vectors     text 30" in info.stdout

    query = ("search", "red lamp", "--mode", "dense", "-k", "4", "--where", "color=red", "--json")
    found = hits(cli(toy, *query))
    assert len(found) == 4 and same_answer(found, hits(cli(local, *query)))  # as on the local backend
    assert hits(cli(toy, "search", "blue lamp", "-k", "3", "--json"))  # the default (learned) mode runs on it
    assert cli(toy, "delete", found[0][0]).returncode == 0
    after = hits(cli(toy, *query))
    assert found[0][0] not in [i for i, _ in after] and len(after) == 4

    with Engine.open(toy) as engine, TestClient(create_app(engine), base_url="http://localhost") as client:
        assert isinstance(engine.backend, ToyBackend) and engine.settings["backend"] == TOY
        assert engine.backend.saved_seq == engine.last_seq()  # reopened from its checkpoint, no rebuild
        body = {"text": "red lamp", "k": 4, "mode": "dense", "filters": {"color": "red"}, "log": False}
        r = client.post("/search", json=body)
        assert r.status_code == 200, r.text
        assert [(h["id"], round(h["score"], 5)) for h in r.json()["hits"]] == after
        assert client.get("/health").json()["items"] == 29
        assert engine.info()["backend"] == TOY and engine.info()["vectors"] == {"text": 29}
    with Engine.open(toy) as engine:  # and once more, after the server closed it
        result = engine.search(Query(text="red lamp", k=4, mode="dense", filters={"color": "red"}))
        assert [(i, round(float(s), 5)) for i, s in zip(result.hits.ids, result.hits.scores, strict=True)] == after


def test_the_api_gives_the_same_answers_on_the_toy_and_the_local_backend(tmp_path: Path) -> None:
    items = [
        Item.create(f"i{i}", title=f"thing {i} {COLORS[i % 3]}", attributes={"color": COLORS[i % 3], "n": i})
        for i in range(60)
    ]
    answers = []
    for name, backend in (("toy", TOY), ("local", None)):
        with Engine.open(tmp_path / name, encoder=HashingEncoder(), index="exact", backend=backend) as engine:
            engine.add(items)
            engine.delete(["i3", "i4"])
            out = []
            for query in (
                Query(text="thing 7 blue", k=5, mode="dense"),
                Query(text="thing", k=9, mode="dense", filters={"n": {"gte": 10, "lt": 30}, "color": ["red", "blue"]}),
                Query(text="thing 12", k=5, mode="dense", target="text"),
            ):
                out.append(pairs(engine.search(query)))
            out.append(pairs(engine.similar("i7", k=4)))
            out.append(pairs(engine.search(Query(text="thing 12", k=5))))  # the default (learned) mode
            answers.append(out)
    for toy, local in zip(*answers, strict=True):
        assert toy and same_answer(toy, local), (toy, local)


def pairs(result: SearchResult) -> list[tuple[str, float]]:
    return [(i, round(float(s), 5)) for i, s in zip(result.hits.ids.tolist(), result.hits.scores, strict=True)]


def test_the_backend_is_an_index_setting(tmp_path: Path) -> None:
    index = tmp_path / "idx"
    with Engine.open(index, encoder=HashingEncoder(), backend=TOY, extensions=[]) as engine:
        engine.add([Item.create("a", title="alpha")])
    with pytest.raises(ConfigError, match=f"created with backend {TOY!r}, not 'local'"):
        Engine.open(index, backend="local")
    with Engine.open(index, backend=TOY) as engine:  # the same one given: fine
        assert engine.get("a").title == "alpha"


def test_an_index_written_before_backends_were_a_setting_opens_on_local(tmp_path: Path) -> None:
    index = tmp_path / "idx"
    with Engine.open(index, encoder=HashingEncoder(), extensions=[]) as engine:
        engine.add([Item.create("a", title="alpha")])
        assert engine.settings["backend"] == "local"
    store = SQLiteStore(index / "store.sqlite")
    settings = store.get_meta("settings")
    del settings["backend"]
    store.set_meta("settings", settings)
    store.close()
    with Engine.open(index) as engine:
        assert engine.settings["backend"] == "local" and engine.info()["backend"] == "local"
        assert engine.search(Query(text="alpha", k=1)).hits.ids.tolist() == ["a"]


def test_a_backend_that_cannot_be_loaded_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown vector backend 'qdrant'; available: local, milvus"):
        Engine.open(tmp_path / "new", encoder=HashingEncoder(), backend="qdrant")  # milvus is built in now
    index = tmp_path / "idx"
    with Engine.open(index, encoder=HashingEncoder(), extensions=[]) as engine:
        engine.add([Item.create("a", title="alpha")])
    store = SQLiteStore(index / "store.sqlite")
    store.set_meta("settings", {**store.get_meta("settings"), "backend": "xmodal_milvus.backend:MilvusBackend"})
    store.close()
    with pytest.raises(ConfigError, match=r"not installed.*pip install xmodal_milvus"):
        Engine.open(index)
    done = cli(index, "search", "alpha")
    assert done.returncode != 0 and "pip install xmodal_milvus" in done.stderr and "Traceback" not in done.stderr
