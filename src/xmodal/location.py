"""Where an index lives: a folder (``store.sqlite`` and everything beside it), or a PostgreSQL URL.

``postgres://user:password@host:port/database?schema=NAME&vectors=VECTORS&media=DIR&state=DIR`` opens an
index whose store is PostgreSQL (:class:`~xmodal.store.postgres.PostgresStore`), shared by every server and
writer given the same URL and schema (default ``xmodal``). The other query parameters:

- ``vectors``: the vector backend of a new index: ``local`` (default), ``quantized``, or
  ``milvus://host:port`` (the ``milvus`` backend at ``http://host:port``; ``milvuss://`` for ``https``).
  Each server builds its backend from the store's vectors and follows the store's change log.
- ``media``: where media files go, shared by every server: a folder (a network file system), or an
  S3-compatible bucket ``s3://BUCKET/PREFIX`` (:mod:`xmodal.media_s3`; ``media_endpoint=URL`` for a server
  other than AWS, e.g. MinIO; ``media_region``; ``media_cache_mb``, the local read cache, default 1024).
  Default ``<state>/media``, which only suits one server.
- ``state``: this server's folder for derived data (vector checkpoints, extension state); default
  ``~/.cache/xmodal/postgres/<hash of the URL>``. Nothing in it is the only copy of anything the store holds.
- ``pool_size`` / ``pool_timeout``: the connections this process shares among its threads (default 4) and how
  many seconds a call waits for a free one before a clear error (default 10;
  :mod:`xmodal.store.postgres_pool`). They do not change the default ``state`` folder.

Every other parameter (``sslmode``, ``connect_timeout``…) is passed to libpq.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import ConfigError
from .media import Media, MediaStore
from .media_s3 import S3Location, S3MediaStore, is_s3, parse_s3
from .store.postgres import redact as _redacted
from .store.postgres_pool import split_pool_options

SCHEMES = ("postgres", "postgresql")
VECTOR_BACKENDS = ("local", "quantized")


@dataclass(frozen=True)
class PostgresLocation:
    """A parsed ``postgres://`` index location."""

    dsn: str  # what libpq gets: the URL without xmodal's own parameters
    schema: str
    state: Path
    media: Path | S3Location
    backend: str | None = None
    backend_options: dict[str, Any] = field(default_factory=dict)

    def open_media(self) -> Media:
        """The media store this location names: its folder, or its bucket with a read cache in the state folder."""
        if isinstance(self.media, S3Location):
            return S3MediaStore(self.media, self.state / "media-cache")
        return MediaStore(self.media)


def is_postgres(location: str | Path) -> bool:
    """True when ``location`` is a ``postgres://`` (or ``postgresql://``) URL."""
    return isinstance(location, str) and location.split("://", 1)[0].lower() in SCHEMES and "://" in location


def parse_postgres(url: str) -> PostgresLocation:
    """The parts of a ``postgres://`` location (see the module); a malformed one is a :class:`ConfigError`."""
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    schema = params.pop("schema", "xmodal") or "xmodal"
    if not schema.isidentifier() or schema.lower() != schema:
        raise ConfigError(
            f"{_redacted(url)}: schema={schema!r}: use lowercase letters, digits and _ (e.g. schema=shop)"
        )
    vectors = params.pop("vectors", "") or None
    media, state = params.pop("media", ""), params.pop("state", "")
    s3 = {name: params.pop(f"media_{name}", "") for name in ("endpoint", "region", "cache_mb")}
    dsn = urlunsplit(parts._replace(query=urlencode(params)))
    if not parts.hostname and "host" not in params:
        raise ConfigError(f"{_redacted(url)}: no host; write postgres://USER@HOST:PORT/DATABASE")
    key = hashlib.sha256(f"{_redacted(split_pool_options(dsn)[0])}#{schema}".encode()).hexdigest()[:16]
    base = Path(os.environ.get("XMODAL_CACHE", Path.home() / ".cache" / "xmodal"))
    state_dir = Path(state).expanduser() if state else base / "postgres" / key
    backend, options = _vectors(vectors, url)
    if not is_s3(media) and any(s3.values()):
        given = ", ".join(f"media_{name}" for name, value in s3.items() if value)
        raise ConfigError(f"{_redacted(url)}: {given} only go with a bucket: add media=s3://BUCKET/PREFIX or drop them")
    where: Path | S3Location = (
        parse_s3(media, **s3) if is_s3(media) else Path(media).expanduser() if media else state_dir / "media"
    )
    return PostgresLocation(dsn, schema, state_dir, where, backend, options)


def _vectors(vectors: str | None, url: str) -> tuple[str | None, dict[str, Any]]:
    if vectors is None:
        return None, {}
    if vectors in VECTOR_BACKENDS:
        return vectors, {}
    given = urlsplit(vectors)
    if given.scheme in ("milvus", "milvuss") and given.hostname:
        scheme = "https" if given.scheme == "milvuss" else "http"
        options: dict[str, Any] = {"uri": f"{scheme}://{given.hostname}:{given.port or 19530}"}
        options.update(parse_qsl(given.query))
        return "milvus", options
    raise ConfigError(
        f"{_redacted(url)}: vectors={vectors!r}: use local, quantized or milvus://HOST:PORT (e.g. vectors=milvus://127.0.0.1:19530)"
    )
