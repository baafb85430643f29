"""The ``caller`` encoder: an index whose vectors all come from the caller (what the integrations create)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xmodal import Engine, Item
from xmodal.encoders import CallerEncoder
from xmodal.errors import ConfigError, ValidationError


def test_an_index_of_the_callers_vectors_reopens_by_name(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "idx", encoder="caller", dim=3, extensions=[]) as engine:
        report = engine.add(
            [Item.create("a", text="first"), Item.create("b", text="second")], vectors={"a": [1, 0, 0], "b": [0, 2, 0]}
        )
        assert report.added == ["a", "b"] and not report.rejected
    with Engine.open(tmp_path / "idx") as engine:
        assert engine.encoder.config()["name"] == "caller" and engine.dim == 3
        hits = engine.search_by_vector([0.1, 1.0, 0.0], k=2).hits
        assert hits.ids.tolist() == ["b", "a"]
        assert np.allclose(engine.vectors("b")["text"], [0, 1, 0])


def test_it_encodes_nothing_and_says_what_to_do(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "idx", encoder=CallerEncoder(4), extensions=[]) as engine:
        with pytest.raises(ValidationError, match="come from the caller"):
            engine.add([Item.create("t", text="needs encoding")])
        assert engine.count() == 0
        with pytest.raises(ValidationError, match="search_by_vector"):
            engine.search("a text query", mode="dense")
        with pytest.raises(ValidationError, match="3 dimensions, the index has 4"):
            engine.search_by_vector([1.0, 0.0, 0.0])


@pytest.mark.parametrize("dim", [0, -1, 2.5, True, None])
def test_a_bad_dimension_is_a_config_error(dim: object) -> None:
    with pytest.raises(ConfigError, match="dim must be a positive integer"):
        CallerEncoder(dim)  # type: ignore[arg-type]
