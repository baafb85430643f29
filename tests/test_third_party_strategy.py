"""A strategy from outside the package (``tests/toyparts/strategy.py``, named by dotted path, never
registered) joins an index's learned pipeline through the CLI and is planned, fused and explained in the
Python API, the CLI and the REST API; a strategy that does not load gets an error naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_third_party import cli
from xmodal import Engine, Item, Query
from xmodal.encoders import HashingEncoder
from xmodal.errors import ConfigError
from xmodal.ltr.extension import pipeline
from xmodal.provenance import names_of

from .toyparts.strategy import NAME

ROOT = Path(__file__).resolve().parent.parent
TOY = "tests.toyparts.strategy:ToyStrategy"
PLAN = [TOY, "lexical", "dense", "memory", "explore"]  # the toy first: a fresh policy plans it


def items() -> list[Item]:
    titles = ["red lantern", "blue lantern with a very long title", "green kettle", "iron lantern hook", "teapot"]
    return [Item.create(f"t{i}", title=t, attributes={"even": i % 2 == 0}) for i, t in enumerate(titles)]


def make_index(path: Path) -> Path:
    with Engine.open(path, encoder=HashingEncoder(), index="exact", extensions=["ltr"]) as engine:
        engine.add(items())
    return path


def test_the_toy_strategy_is_planned_fused_and_credited_in_the_api(tmp_path: Path) -> None:
    with Engine.open(make_index(tmp_path / "idx")) as engine:
        pipe = pipeline(engine)
        pipe.set_strategies(PLAN)
        assert NAME in pipe.policy.arms and pipe.specs[NAME].family == "toy"
        assert f"rr:{NAME}" in pipe.features
        result = engine.search(Query(text="lantern", k=3, mode="learned"), explain=True, log=True)
        assert result.explain is not None and result.query_id is not None
        assert NAME in [a["strategy"] for a in result.explain["plan"]]
        ids = result.hits.ids.tolist()
        assert "t1" in ids  # the toy's first hit (the longest title)
        found = ids.index("t1")
        assert NAME in names_of(result.hits.provenance[found])
        before = pipe.policy.b_[pipe.policy.arms.index(NAME)].copy()
        engine.feedback(result.query_id, "t1", "click")
        assert (pipe.policy.b_[pipe.policy.arms.index(NAME)] != before).any()  # credited by name
        imp = engine.feedback_log.impression(result.query_id)
        assert NAME in names_of(imp.provenance[found]) and imp.provenance[found] == result.hits.provenance[found]
        filtered = engine.search(Query(text="lantern", k=5, mode="learned", filters={"even": True}))
        assert set(filtered.hits.ids.tolist()) <= {"t0", "t2", "t4"}


def test_the_cli_enables_it_and_the_cli_and_rest_api_search_with_it(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from xmodal.serve.app import create_app

    index = make_index(tmp_path / "idx")
    done = cli(index, "ltr", "strategies", "set", *PLAN)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["strategies"] == PLAN
    done = cli(index, "ltr", "strategies", "list", "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [s["name"] for s in listed["strategies"]] == PLAN and all(s["loads"] for s in listed["strategies"])
    assert {"name": NAME, "family": "toy", "kind": None, "explores": False, "source": TOY} in listed["arms"]
    assert "dense" in listed["installed"] and "generative" in listed["installed"]

    done = cli(index, "search", "lantern", "--mode", "learned", "-k", "3", "--explain")
    assert done.returncode == 0, done.stderr
    assert NAME in done.stdout and '"strategy": "' + NAME + '"' in done.stdout
    done = cli(index, "search", "lantern", "--mode", "learned", "-k", "3", "--json")
    assert done.returncode == 0, done.stderr
    hits = {h["id"]: h for h in json.loads(done.stdout)["hits"]}
    assert NAME in hits["t1"]["provenance"]  # the display string names it

    with Engine.open(index) as engine, TestClient(create_app(engine), base_url="http://localhost") as client:
        r = client.post("/search", json={"text": "lantern", "k": 3, "mode": "learned", "explain": True, "log": False})
        assert r.status_code == 200, r.text
        body = r.json()
        assert NAME in [a["strategy"] for a in body["explain"]["plan"]]
        t1 = [h["id"] for h in body["hits"]].index("t1")
        assert NAME in body["explain"]["hits"][t1]["sources"] and NAME in body["hits"][t1]["provenance"]


def test_a_strategy_that_does_not_load_is_named(tmp_path: Path) -> None:
    index = make_index(tmp_path / "idx")
    done = cli(index, "ltr", "strategies", "add", "nosuchpackage.strategies:Missing")
    assert done.returncode == 2 and "nosuchpackage.strategies:Missing" in done.stderr
    assert "pip install nosuchpackage" in done.stderr and "remove" not in done.stderr  # nothing was added
    done = cli(index, "ltr", "strategies", "add", "no-such-strategy")
    assert done.returncode == 2 and "no-such-strategy" in done.stderr and "available:" in done.stderr
    assert not (index / "ltr" / "strategies.json").exists()  # nothing saved
    # a list saved elsewhere that names a strategy not installed here: opening says which, and how to fix it
    (index / "ltr").mkdir(exist_ok=True)
    (index / "ltr" / "strategies.json").write_text(
        json.dumps({"format_version": 1, "strategies": ["lexical", "gone.module:Gone"]})
    )
    with pytest.raises(ConfigError, match=r"'gone.module:Gone'.*ltr strategies remove gone.module:Gone"):
        Engine.open(index)
    done = cli(index, "ltr", "strategies", "remove", "gone.module:Gone")  # works without opening the index
    assert done.returncode == 0, done.stderr
    with Engine.open(index) as engine:
        assert list(pipeline(engine).strategies) == ["lexical"]


def test_a_factory_class_yields_several_strategies_with_their_specs(tmp_path: Path) -> None:
    with Engine.open(make_index(tmp_path / "idx")) as engine:
        pipe = pipeline(engine)
        pipe.set_strategies(["tests.toyparts.strategy:ToyFactory", "lexical"])
        assert list(pipe.strategies)[:2] == [f"{NAME}-a", f"{NAME}-b"]
        assert {pipe.specs[n].family for n in pipe.strategies} == {"toy", "lexical"}
        assert f"{NAME}-a" not in pipe.prepare(Query(image=ROOT / "missing.png")).available  # the spec's `when`
        result = engine.search(Query(text="lantern", k=3, mode="learned"), explain=True)
        assert result.explain is not None
        assert [a["strategy"] for a in result.explain["plan"]][:2] == [f"{NAME}-a", f"{NAME}-b"]
