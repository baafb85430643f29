"""Media files in an S3-compatible bucket (AWS S3, MinIO, Ceph, …), shared by every server of a ``postgres://`` index.

The references are those of the folder store (``media/<sha256[:2]>/<sha256>.<ext>``, see :mod:`xmodal.media`),
so the store's rows do not depend on where the bytes live. The object key is the bucket prefix plus the
reference. :meth:`S3MediaStore.put` returns once S3 has acknowledged the object (an acknowledged item never
points at a missing file), and checks existence first, so content already there is not sent again.
:meth:`S3MediaStore.path` serves readers that need a file (thumbnails, ffmpeg, the guards) from a local cache
folder of bounded size: an object is downloaded once, checked against the hash its reference names, and the
least recently used files are dropped when the cache grows past its bound. An erase removes the object and
the erasing server's cached copy; a copy another server cached stays in that server's cache folder (never
served: every media read looks the item up first) until its cache drops it.

Credentials come from boto3's usual chain (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, a profile, an
instance role), never from the URL; the endpoint from ``media_endpoint=`` or boto3's ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import mimetypes
import os
import re
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError, MissingDependency, NotFoundError, StorageError
from .media import media_ref

_REF = re.compile(r"media/([0-9a-f]{2})/([0-9a-f]{64})\.[a-z0-9]{1,8}")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
DEFAULT_CACHE_MB = 1024
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class S3Location:
    """Where media go: ``s3://BUCKET/PREFIX`` on ``endpoint`` (None: boto3's default, AWS itself)."""

    bucket: str
    prefix: str
    endpoint: str | None = None
    region: str | None = None
    cache_mb: int = DEFAULT_CACHE_MB

    def key(self, ref: str) -> str:
        return f"{self.prefix}{ref}"

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def is_s3(media: str) -> bool:
    return media.lower().startswith("s3://")


def parse_s3(media: str, endpoint: str = "", region: str = "", cache_mb: str = "") -> S3Location:
    """The bucket of ``media=s3://BUCKET/PREFIX`` and its companions ``media_endpoint``, ``media_region`` and
    ``media_cache_mb``; a malformed one is a :class:`ConfigError` naming the parameter and the fix."""
    parts = urlsplit(media)
    if not _BUCKET.fullmatch(parts.netloc or ""):
        raise ConfigError(
            f"media={media!r}: no valid bucket name; write media=s3://BUCKET/PREFIX (e.g. s3://shop-media/xmodal)"
        )
    prefix = parts.path.strip("/")
    if endpoint and urlsplit(endpoint).scheme not in ("http", "https"):
        raise ConfigError(
            f"media_endpoint={endpoint!r}: write the S3 server's URL, e.g. media_endpoint=http://127.0.0.1:9000"
        )
    try:
        cache = int(cache_mb) if cache_mb else DEFAULT_CACHE_MB
    except ValueError:
        cache = -1
    if cache < 1:
        raise ConfigError(
            f"media_cache_mb={cache_mb!r}: give the local cache's size in MiB, a whole number ≥ 1 "
            f"(default {DEFAULT_CACHE_MB})"
        )
    return S3Location(parts.netloc, f"{prefix}/" if prefix else "", endpoint or None, region or None, cache)


class S3MediaStore:
    """Stores blobs by content hash in a bucket; serves them as files from a bounded local cache."""

    def __init__(self, where: S3Location, cache: Path, client: Any | None = None) -> None:
        self.where = where
        self.cache = cache
        self._client = client if client is not None else _client(where)
        self._lock = threading.Lock()
        self._bound = where.cache_mb * 1024 * 1024
        self._held = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()) if cache.is_dir() else 0

    def put(self, data: bytes, suffix: str | None = None) -> str:
        """Upload ``data`` (once per distinct content) and return its reference, once S3 acknowledged it."""
        ref = media_ref(data, suffix)
        self._upload(ref, data, "the item was not added")
        self._keep(ref, data)
        return ref

    def upload(self, ref: str, data: bytes) -> bool:
        """Put the bytes of ``ref`` into the bucket (a restore), not into the cache; False when the object was
        there already (content-addressed: the same key holds the same bytes). ``data`` must match ``ref``."""
        match = _REF.fullmatch(ref)
        if match is None or hashlib.sha256(data).hexdigest() != match.group(2):
            raise StorageError(f"{ref!r}: not the reference of these bytes (their SHA-256 differs); nothing was sent")
        return self._upload(ref, data, "the index was not restored")

    def download(self, ref: str, target: Path) -> str | None:
        """Stream the object behind ``ref`` into the new file ``target`` (a backup), not into the cache, checked
        against the hash its reference names; returns that SHA-256, or None (and no file) when the bucket has no
        such object or its bytes differ from their hash (changed outside xmodal)."""
        match = _REF.fullmatch(ref)
        if match is None:
            return None
        key = self.where.key(ref)
        digest = hashlib.sha256()
        try:
            body = self._client.get_object(Bucket=self.where.bucket, Key=key)["Body"]
            with open(target, "xb") as out:
                for chunk in body.iter_chunks(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
        except Exception as exc:  # noqa: BLE001 - botocore's errors, named in the message
            if not isinstance(exc, FileExistsError):
                target.unlink(missing_ok=True)
            if _absent(exc):
                return None
            raise StorageError(
                f"s3://{self.where.bucket}/{key}: the media file could not be copied into {target} ({exc}); check "
                "the bucket, the credentials, media_endpoint and the disk, then retry"
            ) from exc
        if digest.hexdigest() != match.group(2):
            target.unlink(missing_ok=True)
            log.warning(
                "s3://%s/%s: the object's content does not match its hash (changed outside xmodal)",
                self.where.bucket,
                key,
            )
            return None
        return digest.hexdigest()

    def path(self, ref: str) -> Path:
        """A local file with the bytes of ``ref``: from the cache, or downloaded and checked against its hash."""
        match = _REF.fullmatch(ref)
        if match is None:
            raise NotFoundError(f"no media file {ref!r}")
        cached = self.cache / ref
        try:
            os.utime(cached)  # most recently used
            return cached
        except FileNotFoundError:
            pass
        key = self.where.key(ref)
        try:
            data = self._client.get_object(Bucket=self.where.bucket, Key=key)["Body"].read()
        except Exception as exc:  # noqa: BLE001 - botocore's errors, named in the message
            if _absent(exc):
                raise NotFoundError(f"no media file {ref!r} (s3://{self.where.bucket}/{key})") from exc
            raise StorageError(
                f"s3://{self.where.bucket}/{key}: the media file could not be read ({exc}); check the bucket, the "
                "credentials and media_endpoint, then retry"
            ) from exc
        if hashlib.sha256(data).hexdigest() != match.group(2):
            raise StorageError(
                f"s3://{self.where.bucket}/{key}: the object's content does not match its hash (changed outside "
                "xmodal); add the item again to restore it"
            )
        return self._keep(ref, data)

    def remove(self, ref: str) -> bool:
        """Delete the object behind ``ref`` (no longer held by any item) and its cached copy; False when absent."""
        if _REF.fullmatch(ref) is None:
            return False
        key = self.where.key(ref)
        try:
            existed = self._exists(key)
            if existed:
                self._client.delete_object(Bucket=self.where.bucket, Key=key)
        except Exception as exc:  # noqa: BLE001
            raise StorageError(
                f"s3://{self.where.bucket}/{key}: the media file could not be deleted ({exc}); retry"
            ) from exc
        cached = self.cache / ref
        try:
            size = cached.stat().st_size
            cached.unlink()
            with self._lock:
                self._held -= size
        except FileNotFoundError:
            pass
        return existed

    # -- the cache -----------------------------------------------------------------------------------------
    def _keep(self, ref: str, data: bytes) -> Path:
        """Write ``data`` into the cache (a unique ``.tmp`` renamed into place: readers never see half a file)."""
        cached = self.cache / ref
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f"{cached.name}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, cached)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        with self._lock:
            self._held += len(data)
            if self._held > self._bound:
                self._evict(keep=cached)
        return cached

    def _evict(self, keep: Path) -> None:
        """Drop the least recently used files until the cache holds at most 90% of its bound (under the lock)."""
        files = sorted((p for p in self.cache.rglob("*") if p.is_file() and p != keep), key=_mtime)
        self._held = sum(_size(p) for p in files) + _size(keep)
        for path in files:
            if self._held <= self._bound * 0.9:
                break
            size = _size(path)
            path.unlink(missing_ok=True)
            self._held -= size

    def _upload(self, ref: str, data: bytes, outcome: str) -> bool:
        """Send ``data`` as the object of ``ref`` unless it is there; True when sent (and acknowledged)."""
        key = self.where.key(ref)
        try:
            if self._exists(key):
                return False
            self._client.put_object(
                Bucket=self.where.bucket,
                Key=key,
                Body=data,
                ContentMD5=base64.b64encode(hashlib.md5(data).digest()).decode(),  # noqa: S324 - S3's integrity check
                ContentType=mimetypes.guess_type(ref)[0] or "application/octet-stream",
            )
        except Exception as exc:  # noqa: BLE001 - botocore's errors, named in the message
            raise StorageError(
                f"s3://{self.where.bucket}/{key}: the media file could not be written ({exc}); {outcome}: "
                "check the bucket, the credentials (AWS_ACCESS_KEY_ID…) and media_endpoint, then retry"
            ) from exc
        return True

    def _exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.where.bucket, Key=key)
            return True
        except Exception as exc:  # noqa: BLE001
            if _status(exc) == 404:
                return False
            raise


def _client(where: S3Location) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise MissingDependency("boto3", "s3") from exc
    config = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=60)
    return boto3.client("s3", endpoint_url=where.endpoint, region_name=where.region, config=config)


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode") if isinstance(response, dict) else None


def _code(exc: Exception) -> str | None:
    response = getattr(exc, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None


def _absent(exc: Exception) -> bool:
    """Whether a botocore error says the object is not there."""
    return _status(exc) in (403, 404) and _code(exc) in ("NoSuchKey", "404", "NotFound")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
