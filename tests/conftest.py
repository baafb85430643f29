"""Shared fixtures. Sockets are limited to loopback (pytest-socket ``--allow-hosts`` in pyproject)."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from xmodal import Engine, Item  # noqa: E402
from xmodal.encoders import HashingEncoder  # noqa: E402


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A fresh engine on the hashing encoder and the exact index."""
    eng = Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact")
    yield eng
    eng.close()


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
