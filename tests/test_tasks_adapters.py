"""The ML tasks through the CLI (``xmodal classify|cluster|dedup``) and REST (``POST /tasks/...``): the same
results as the Python API, scopes, and bad input answered with the field and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.tasks_data import copies, photos, png, topic_items
from xmodal import Engine, Item
from xmodal.cli import main
from xmodal.encoders import HashingEncoder
from xmodal.tasks import evaluate


@pytest.fixture
def index(tmp_path: Path) -> str:
    path = tmp_path / "idx"
    with Engine.open(path, encoder=HashingEncoder(), index="exact") as engine:
        engine.add(topic_items(per_topic=10) + [Item.create("new", text="rocket launch to the moon")])
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_classify_evaluate_cluster(index: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--index", index, "classify", "topic", "--query", "a football coach", "--json")
    assert code == 0
    assert json.loads(out)["predictions"][0]["label"] == "sport"
    code, out, _ = run(capsys, "--index", index, "classify", "topic", "--k", "5")
    assert code == 0 and out.startswith("new\tspace\t")
    code, out, _ = run(capsys, "--index", index, "classify", "topic", "--eval", "--folds", "5", "--json")
    with Engine.open(index) as engine:
        assert json.loads(out) == evaluate(engine, "topic", folds=5).to_dict()
    code, out, _ = run(capsys, "--index", index, "cluster", "--clusters", "3", "--json", "--members")
    body = json.loads(out)
    assert code == 0 and len(body["clusters"]) == 3 and sum(c["size"] for c in body["clusters"]) == 31
    assert all(c["terms"] and c["central"] and c["members"] for c in body["clusters"])


def test_cli_bad_input(index: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--index", index, "classify", "colour")
    assert code == 1 and "label" in err and "seen: topic" in err
    code, _, err = run(capsys, "--index", index, "classify", "topic", "--k", "0")
    assert code == 1 and "k" in err and "at least 1" in err
    code, _, err = run(capsys, "--index", index, "classify", "topic", "--eval", "--query", "x")
    assert code == 2 and "--eval" in err
    code, _, err = run(capsys, "--index", index, "dedup", "--threshold", "jaccard")
    assert code == 2 and "NAME=VALUE" in err
    code, _, err = run(capsys, "--index", index, "cluster", "--clusters", "99")
    assert code == 1 and "n_clusters" in err


def test_cli_dedup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("skimage")
    path = tmp_path / "idx"
    coffee = photos()["coffee"]
    with Engine.open(path, encoder=HashingEncoder(), index="exact") as engine:
        engine.add([Item.create(name, image=png(image)) for name, image in photos().items()])
        engine.add([Item.create(f"coffee-{how}", image=data) for how, data in copies(coffee).items()])
    fixed = ["--threshold", "correlation=0.95", "--threshold", "phash=20", "--threshold", "cosine=0.99"]
    code, out, _ = run(capsys, "--index", str(path), "dedup", "--signals", "image", *fixed)
    assert code == 0
    lines = out.splitlines()
    assert "coffee\tcoffee-resized\tcoffee-jpeg\tcoffee-cropped" in lines and "1 duplicate groups" in lines
    assert "threshold correlation >= 0.95 (given)" in lines


# -- REST -------------------------------------------------------------------------------------------------
httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from xmodal.serve import ApiKey, ServeConfig, create_app  # noqa: E402
from xmodal.serve.testing import serve_in_thread  # noqa: E402

READER, WRITER = "read-key-0001", "write-key-0001"
KEYS = (ApiKey(READER, frozenset({"read"}), "reader"), ApiKey(WRITER, frozenset({"write"}), "writer"))
R, W = {"Authorization": f"Bearer {READER}"}, {"Authorization": f"Bearer {WRITER}"}


def test_rest_tasks(index: str) -> None:
    with Engine.open(index) as engine, serve_in_thread(create_app(engine, ServeConfig(keys=KEYS))) as url:
        answer = httpx.post(f"{url}/tasks/classify", json={"label": "topic", "texts": ["bake bread"]})
        assert answer.status_code == 200, answer.text  # a read: open to anonymous callers here
        assert answer.json()["predictions"][0]["label"] == "food"
        by_id = httpx.post(f"{url}/tasks/classify", json={"label": "topic", "ids": ["new"], "neighbours": 2}, headers=R)
        assert (
            by_id.json()["predictions"][0]["label"] == "space"
            and len(by_id.json()["predictions"][0]["neighbours"]) == 2
        )
        body = {"label": "topic", "folds": 5}
        assert httpx.post(f"{url}/tasks/classify/evaluate", json=body).status_code == 401
        assert httpx.post(f"{url}/tasks/classify/evaluate", json=body, headers=R).status_code == 403
        done = httpx.post(f"{url}/tasks/classify/evaluate", json=body, headers=W, timeout=60)
        assert done.status_code == 200 and done.json() == evaluate(engine, "topic", folds=5).to_dict()
        clustered = httpx.post(f"{url}/tasks/cluster", json={"n_clusters": 3}, headers=W, timeout=60)
        assert clustered.status_code == 200 and len(clustered.json()["clusters"]) == 3
        assert "members" not in clustered.json()["clusters"][0] or clustered.json()["clusters"][0]["members"] is None
        dup = httpx.post(f"{url}/tasks/dedup", json={"signals": ["text"], "thresholds": {"jaccard": 0.99}}, headers=W)
        assert dup.status_code == 200, dup.text
        assert dup.json()["thresholds"] == [
            {"signal": "jaccard", "value": 0.99, "duplicate_when": ">=", "source": "given"}
            | {"precision": None, "recall": None, "positives": None, "negatives": None}
        ]
        assert httpx.post(f"{url}/tasks/dedup", json={}).status_code == 401


def test_rest_bad_input(index: str, tmp_path: Path) -> None:
    with Engine.open(index) as engine, serve_in_thread(create_app(engine, ServeConfig(keys=KEYS))) as url:
        cases = [
            ("/tasks/classify", {"label": "colour", "texts": ["x"]}, "label", "seen: topic"),
            ("/tasks/classify", {"label": "topic", "k": 0}, "k", ""),
            ("/tasks/classify", {"label": "topic", "kind": "audio"}, "kind", "primary"),
            ("/tasks/classify", {"label": "topic", "ids": ["nope"]}, "ids", "nope"),
            ("/tasks/classify/evaluate", {"label": "topic", "folds": 20}, "label", "too few"),
            ("/tasks/cluster", {"n_clusters": 500}, "n_clusters", ""),
            ("/tasks/cluster", {"method": "hdbscan", "n_clusters": 3}, "n_clusters", ""),
            ("/tasks/dedup", {"thresholds": {"hue": 1}}, "thresholds", ""),
        ]
        for path, body, field, words in cases:
            answer = httpx.post(f"{url}{path}", json=body, headers=W)
            assert answer.status_code == 422, (path, body, answer.text)
            assert field in answer.json()["field"] and words in answer.json()["error"] + answer.json()["fix"], (
                answer.text
            )
    with Engine.open(tmp_path / "empty", encoder=HashingEncoder(), index="exact") as empty:
        with serve_in_thread(create_app(empty, ServeConfig(keys=KEYS))) as url:
            answer = httpx.post(f"{url}/tasks/cluster", json={}, headers=W)
            assert answer.status_code == 422 and answer.json()["field"] == "index" and answer.json()["fix"]


def test_mcp_task_tools(index: str) -> None:
    mcp = pytest.importorskip("mcp")
    import asyncio

    from xmodal.serve.mcp import build_mcp
    from xmodal.tasks import cluster

    def structured(result: object) -> dict[str, object]:
        assert not result.is_error, result  # type: ignore[attr-defined]
        return dict(result.structured_content or json.loads(result.content[0].text))  # type: ignore[attr-defined]

    with Engine.open(index) as engine:

        async def main() -> dict[str, object]:
            async with mcp.Client(build_mcp(engine)) as client:
                return {
                    "classify": structured(await client.call_tool("classify", {"label": "topic", "texts": ["cheese"]})),
                    "cluster": structured(await client.call_tool("cluster", {"n_clusters": 3})),
                    "bad": await client.call_tool("classify", {"label": "colour"}),
                }

        out = asyncio.run(main())
        assert out["classify"]["data"]["predictions"][0]["label"] == "food"  # type: ignore[index]
        assert out["cluster"]["data"] == cluster(engine, n_clusters=3).to_dict(members=False)
        assert out["bad"].is_error and "label" in out["bad"].content[0].text  # type: ignore[attr-defined]
