"""``xmodal serve`` chooses each index's encoder backend from its config file and flags, and shows a remote
backend's usage counters in ``/info`` and ``/metrics`` (against tests/fake_embeddings_server.py)."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import httpx
import pytest

from tests.fake_embeddings_server import Behaviour, fake_server
from xmodal.cli import build_parser
from xmodal.cli.serve import encoder_choice, open_named, open_root
from xmodal.errors import ConfigError
from xmodal.serve.config import EncoderChoice, ServeConfig
from xmodal.serve.testing import free_port, spawn_server

WRITER = "writer-key-0123"
W = {"Authorization": f"Bearer {WRITER}"}
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args([*argv, "serve"])


def test_config_file_encoder_settings_parse_and_bad_ones_name_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text(
        'encoder = "http-embeddings"\n'
        "[encoder_options]\n"
        'url = "http://127.0.0.1:1/v1"\nmodel = "m"\n'
        "[indexes]\n"
        'docs = "/srv/docs"\n'
        'pics = { path = "/srv/pics", encoder = "hashing", encoder_options = { dim = 16 } }\n'
        'notes = { path = "/srv/notes", encoder_options = { batch_size = 4 } }\n'
    )
    config = ServeConfig.load(path, env={})
    assert config.encoder == "http-embeddings" and dict(config.encoder_options) == {
        "url": "http://127.0.0.1:1/v1",
        "model": "m",
    }
    assert config.indexes == (("docs", "/srv/docs"), ("pics", "/srv/pics"), ("notes", "/srv/notes"))
    assert dict(config.index_encoders) == {
        "pics": EncoderChoice("hashing", {"dim": 16}),
        "notes": EncoderChoice(None, {"batch_size": 4}),
    }
    for bad, named in (
        ({"encoder": 3}, "encoder"),
        ({"encoder": ""}, "encoder"),
        ({"encoder_options": ["model=x"]}, "encoder_options"),
        ({"indexes": {"p": {"path": "/srv/p", "encoder": 1}}}, "indexes.p.encoder"),
        ({"indexes": {"p": {"path": "/srv/p", "model": "x"}}}, "indexes.p"),
        ({"indexes": {"p": {"encoder": "hashing"}}}, "indexes.p"),
        ({"index_encoders": []}, "index_encoders"),
    ):
        with pytest.raises(ConfigError, match=re.escape(named)):
            ServeConfig.from_dict(bad)


def test_named_index_encoder_wins_then_flags_then_config() -> None:
    config = ServeConfig.from_dict(
        {
            "encoder": "http-embeddings",
            "encoder_options": {"model": "m"},
            "indexes": {"a": {"path": "/a", "encoder": "hashing"}, "b": {"path": "/b", "encoder_options": {"x": 1}}},
        }
    )
    assert encoder_choice(_args(), config) == EncoderChoice("http-embeddings", {"model": "m"})
    assert encoder_choice(_args(), config, "a") == EncoderChoice("hashing", {})
    assert encoder_choice(_args(), config, "b") == EncoderChoice("http-embeddings", {"model": "m", "x": 1})
    flagged = _args("--encoder", "offline")  # the flag wins over the config's; its options are another encoder's
    assert encoder_choice(flagged, config) == EncoderChoice("offline", {})
    assert encoder_choice(flagged, config, "a") == EncoderChoice("hashing", {})


def test_serve_opens_new_and_existing_indexes_with_the_configured_backends(tmp_path: Path) -> None:
    with fake_server(Behaviour(dim=48)) as url:
        config = ServeConfig.from_dict(
            {
                "encoder": "http-embeddings",
                "encoder_options": {"url": url, "model": "fake-model"},
                "indexes": {
                    "pics": {"path": str(tmp_path / "pics"), "encoder": "hashing", "encoder_options": {"dim": 16}}
                },
            }
        )
        root = open_root(_args("--index", str(tmp_path / "root")), config)
        try:
            assert root.info()["encoder"]["name"] == "http-embeddings" and root.info()["dim"] == 48
        finally:
            root.close()
        pics = open_named(_args("--index", str(tmp_path / "root")), config, "pics", str(tmp_path / "pics"))
        try:
            assert pics.info()["encoder"]["name"] == "hashing" and pics.info()["dim"] == 16
        finally:
            pics.close()
        # an existing index keeps its own encoder: a config naming another one is refused, clearly
        other = ServeConfig.from_dict({"encoder": "hashing"})
        with pytest.raises(ConfigError, match="encoder"):
            open_root(_args("--index", str(tmp_path / "root")), other).close()
        again = open_root(_args("--index", str(tmp_path / "root")), config)
        again.close()
        # a named index without an encoder of its own inherits the config's, and the --encoder-option flags
        flags = _args("--index", str(tmp_path / "root"), "--encoder-option", "batch_size=2")
        docs = open_named(flags, config, "docs", str(tmp_path / "docs"))
        try:
            assert docs.info()["encoder"]["name"] == "http-embeddings"
            assert docs.encoder.batch_size == 2  # type: ignore[attr-defined]
        finally:
            docs.close()


def test_served_remote_backend_counts_its_usage_in_info_and_metrics(tmp_path: Path) -> None:
    behaviour = Behaviour(dim=32)
    with fake_server(behaviour) as url:
        config = tmp_path / "server.json"
        keys = [{"key": WRITER, "scopes": ["read", "write"]}]
        config.write_text(
            json.dumps(
                {"encoder": "http-embeddings", "encoder_options": {"url": url, "model": "fake-model"}, "keys": keys}
            )
        )
        port = free_port()
        proc = spawn_server(tmp_path / "index", port, config=config, encoder=None)
        try:
            base = f"http://127.0.0.1:{port}"
            items = [{"id": f"t{i}", "text": text} for i, text in enumerate(["a red shoe", "a blue teapot", "garden"])]
            assert httpx.post(f"{base}/items", json={"items": items}, headers=W, timeout=30).status_code in (
                200,
                201,
                202,
            )
            hit = httpx.post(f"{base}/search", json={"text": "a blue teapot", "mode": "dense"}, timeout=30).json()
            assert hit["hits"][0]["id"] == "t1"
            info = httpx.get(f"{base}/info", timeout=30).json()
            metrics = httpx.get(f"{base}/metrics", timeout=30).text
        finally:
            proc.terminate()
            proc.wait(30)
    assert info["encoder"]["name"] == "http-embeddings"
    usage = info["encoder_usage"]
    embedded = [t for r in behaviour.requests if r["input"] != ["dimension probe"] for t in r["input"]]
    assert usage["requests"] == len(behaviour.requests) >= 3  # the dimension probe, the add, the query
    assert usage["texts"] == len(embedded) == 4 and usage["characters"] == sum(map(len, embedded))
    counted = dict(
        re.findall(r'xmodal_encoder_usage_total\{encoder="http-embeddings",what="(\w+)"\} ([0-9.]+)', metrics)
    )
    assert {k: int(float(v)) for k, v in counted.items()} == usage
