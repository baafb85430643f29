"""The ``http-embeddings`` backend against a local OpenAI-compatible server (tests/fake_embeddings_server.py)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from tests.fake_embeddings_server import Behaviour, fake_server
from xmodal import Engine, Item
from xmodal.cli import main
from xmodal.encoders import Content, HashingEncoder, create_encoder
from xmodal.errors import ConfigError

TEXTS = ["red running shoes", "a blue teapot", "green garden hose", "black umbrella", "wooden chair", "oak table", "x"]


def _encoder(url: str, **options: object) -> object:
    return create_encoder("http-embeddings", url=url, model="fake-model", backoff=0.001, **options)


def test_vectors_equal_the_servers_in_order_with_batches_and_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XMODAL_EMBEDDINGS_API_KEY", "sekrit")
    behaviour = Behaviour(key="sekrit")
    with fake_server(behaviour) as url:
        enc = _encoder(url, batch_size=2, concurrency=3)
        got = enc.encode_documents([Content(text=t) for t in TEXTS])  # type: ignore[attr-defined]
        config = enc.config()  # type: ignore[attr-defined]
    want = HashingEncoder(dim=48, native_dim=48).encode([Content(text=t) for t in TEXTS])
    assert got.shape == (len(TEXTS), 48)
    assert np.min(np.sum(got * want, axis=1)) >= 0.999
    assert len(behaviour.requests) == 1 + 4  # the dimension probe, then 4 batches of at most 2
    assert all(h["Authorization"] == "Bearer sekrit" for h in behaviour.headers)
    assert config["native_dim"] == 48 and "sekrit" not in json.dumps(config)


def test_matryoshka_dim_truncates_or_is_sent_natively() -> None:
    behaviour = Behaviour()
    with fake_server(behaviour) as url:
        full = _encoder(url).encode_documents([Content(text="a blue teapot")])  # type: ignore[attr-defined]
        cut = _encoder(url, dim=16).encode_documents([Content(text="a blue teapot")])  # type: ignore[attr-defined]
        native = _encoder(url, dim=16, send_dimensions=True)
        sent = native.encode_documents([Content(text="a blue teapot")])  # type: ignore[attr-defined]
        assert behaviour.requests[-1]["dimensions"] == 16
        with pytest.raises(ConfigError, match=r"dim must be an integer from 1 to 48.*--dim 48"):
            _encoder(url, dim=64)
    expected = full[0, :16] / np.linalg.norm(full[0, :16])
    assert cut.shape == (1, 16) and np.dot(cut[0], expected) >= 0.999
    assert np.dot(sent[0], expected) >= 0.999


def test_query_and_document_prefixes_are_the_purposes() -> None:
    behaviour = Behaviour()
    with fake_server(behaviour) as url:
        enc = _encoder(url, query_prefix="query: ", document_prefix="passage: ")
        enc.encode_queries([Content(text="teapot")])  # type: ignore[attr-defined]
        enc.encode_documents([Content(text="teapot")])  # type: ignore[attr-defined]
        with pytest.raises(ConfigError, match="unknown purpose 'ranking'"):
            enc.encode([Content(text="teapot")], "ranking")  # type: ignore[attr-defined]
    assert [r["input"] for r in behaviour.requests[-2:]] == [["query: teapot"], ["passage: teapot"]]


@pytest.mark.parametrize("status", [429, 503])
def test_throttling_and_5xx_are_retried_then_succeed(status: int) -> None:
    behaviour = Behaviour(fail_first=3, fail_status=status)
    with fake_server(behaviour) as url:
        enc = _encoder(url, retries=5)
        assert enc.native_dim == 48  # type: ignore[attr-defined]
        assert enc.usage() == {"requests": 4, "texts": 0, "characters": 0, "retries": 3}  # type: ignore[attr-defined]


def test_a_failure_storm_and_refusals_give_clear_errors() -> None:
    with fake_server(Behaviour(fail_first=100)) as url:
        with pytest.raises(ConfigError, match=r"failed 3 times \(HTTP 503.*raise --encoder-option retries"):
            _encoder(url, retries=3)
    with fake_server(Behaviour(key="right")) as url:
        with pytest.raises(ConfigError, match=r"HTTP 401.*XMODAL_EMBEDDINGS_API_KEY"):
            _encoder(url, api_key="wrong")
        with pytest.raises(ConfigError, match="no model; pass --encoder-option model="):
            create_encoder("http-embeddings", url=url)
        with pytest.raises(ConfigError, match="HTTP 404.*check --encoder-option url"):
            create_encoder("http-embeddings", url=url.replace("/v1", "/v2"), model="m", api_key="right")
    with pytest.raises(ConfigError, match="no url; pass --encoder-option url="):
        create_encoder("http-embeddings", model="m")


def _count(index: Path) -> int:
    with sqlite3.connect(index / "store.sqlite") as db:
        return int(db.execute("SELECT COUNT(*) FROM items").fetchone()[0])


def test_wrong_length_vectors_stop_the_add_and_nan_rejects_only_its_item(tmp_path: Path) -> None:
    behaviour = Behaviour()
    with fake_server(behaviour) as url:
        options = {"url": url, "model": "fake-model", "backoff": 0.001}
        with Engine.open(tmp_path, encoder="http-embeddings", encoder_options=options) as engine:
            assert not engine.add([Item.create("a", text="a blue teapot")]).rejected
            behaviour.nan_for = "poison"
            report = engine.add(
                [Item.create("b", text="green hose"), Item.create("c", text="poison"), Item.create("d", text="oak")]
            )
            assert report.added == ["b", "d"]
            assert "NaN" in report.rejected[0].reason and report.rejected[0].where == "c"
            behaviour.nan_for, behaviour.wrong_length = None, 64
            with pytest.raises(
                ConfigError, match=r"64-dimensional vectors, but 48 were expected.*--encoder-option url/model"
            ):
                engine.add([Item.create("e", text="wooden chair")])
        behaviour.wrong_length = None
        with Engine.open(tmp_path, encoder_options={"api_key": "k"}) as engine:
            assert engine.search("a blue teapot", k=1, mode="dense").hits.ids[0] == "a"
            assert len(engine) == 3
    settings = json.dumps(
        json.loads(
            sqlite3.connect(tmp_path / "store.sqlite")
            .execute("SELECT value FROM meta WHERE key='settings'")
            .fetchone()[0]
        )
    )
    assert '"k"' not in settings and 'api_key"' not in settings


def test_cli_init_add_search_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("".join(json.dumps({"id": f"p{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    index = str(tmp_path / "index")
    with fake_server(Behaviour()) as url:
        init = ["--index", index, "init", "--encoder", "http-embeddings", "--encoder-option", f"url={url}"]
        assert (
            main([*init, "--encoder-option", "model=fake-model", "--encoder-option", "batch_size=3", "--dim", "32"])
            == 0
        )
        assert main(["--index", index, "add", str(catalog)]) == 0
        capsys.readouterr()
        assert main(["--index", index, "search", "a blue teapot", "--mode", "dense", "--json"]) == 0
        hits = json.loads(capsys.readouterr().out)["hits"]
        assert hits[0]["id"] == "p1"
        assert main(["--index", index, "info", "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
    assert info["dim"] == 32 and info["encoder"]["name"] == "http-embeddings"
    assert info["encoder"]["model"] == "fake-model" and "batch_size" not in info["encoder"]
    assert set(info["encoder_usage"]) == {"requests", "texts", "characters", "retries"}  # counted per process
    assert _count(Path(index)) == len(TEXTS)
