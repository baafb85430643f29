"""Shared fixtures. Sockets are limited to loopback (pytest-socket ``--allow-hosts`` in pyproject)."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from xmodal import Engine, Item  # noqa: E402
from xmodal.encoders import HashingEncoder  # noqa: E402
from xmodal.ltr import autotune  # noqa: E402


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)


@pytest.fixture(autouse=True)
def _no_background_tuning(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test's catalog of 1,000 items or more would start the default mode's self-tuning in the background
    (:mod:`xmodal.ltr.autotune`, on by default), and a search racing the fit could see either fusion. The tests of
    self-tuning set their own threshold (``tests/test_ltr_selftune.py``); the others search the untuned fusion."""
    monkeypatch.setattr(autotune, "MIN_ITEMS", 1 << 62)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A fresh engine on the hashing encoder and the exact index."""
    eng = Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact")
    yield eng
    eng.close()


#: the test Milvus servers' settings: no interim IVF index on growing segments (a search answers the same
#: before and after a flush seals them), and a 50 ms time tick
MILVUS_SETTINGS = {"queryNode.segcore.interimIndex.enableIndex": False, "proxy.timeTickInterval": 50}


def write_guards_policy(index: Path, policy: str) -> None:
    """Write ``policy`` (TOML) as the guards policy of the index folder ``index`` (made if missing)."""
    (index / "guards").mkdir(parents=True, exist_ok=True)
    (index / "guards" / "policy.toml").write_text(policy)


def text_items(n: int, prefix: str = "t") -> list[Item]:
    colors = ["red", "green", "blue", "black"]
    return [
        Item.create(
            f"{prefix}{i}",
            title=f"item {i} {colors[i % 4]}",
            text=f"word{i % 7} thing",
            attributes={"color": colors[i % 4], "price": float(i), "n": i},
        )
        for i in range(n)
    ]


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One real Milvus 2.3.5 standalone server for the session (the ``milvus`` package's binaries, extracted
    once into ``~/.cache/xmodal``), on free ports of 127.0.0.1; stopped at the end of the session. Skipped
    only where the ``milvus`` or ``pymilvus`` package is not installed."""
    pytest.importorskip(
        "milvus", reason="the Milvus test server needs the milvus package: pip install 'xmodal[milvus]'"
    )
    pytest.importorskip("pymilvus", reason="the milvus backend needs pymilvus: pip install 'xmodal[milvus]'")
    from xmodal.backends.milvus_server import LocalMilvus

    server = LocalMilvus(tmp_path_factory.mktemp("milvus"), settings=MILVUS_SETTINGS).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """One real PostgreSQL server for the session (Debian's ``postgresql`` package, run as an unprivileged
    user in a temporary folder, on a free port of 127.0.0.1); stopped at the end of the session. Skipped only
    where psycopg or PostgreSQL is not installed."""
    pytest.importorskip("psycopg", reason="the postgres store needs psycopg: pip install 'xmodal[postgres]'")
    from xmodal.errors import ConfigError
    from xmodal.store.postgres_server import LocalPostgres, pg_bin

    try:
        pg_bin()
    except ConfigError as exc:
        pytest.skip(f"no PostgreSQL server to test against: {exc}")
    server = LocalPostgres().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_schema(postgres_server: Any) -> str:
    """A schema of its own for one test on the session's PostgreSQL server (tests never see each other's)."""
    import uuid

    return f"t_{uuid.uuid4().hex[:12]}"
