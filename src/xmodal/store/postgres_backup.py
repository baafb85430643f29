"""Backups of a ``postgres://`` index: ``xmodal --index postgres://… backup DEST`` and ``… restore BACKUP``.

A backup folder holds ``store.pgdump`` (``pg_dump``'s custom format of the index's schema: items, vectors, settings,
change log, full-text tables, feedback log and learned state), the media files the dump's items reference
(``media/``, from the index's media folder or its S3-compatible bucket), and ``manifest.json``
(:class:`~xmodal.store.backup.Manifest`: each file's size and SHA-256, the dump's last change sequence and item
count). Consistency while servers keep writing: one ``REPEATABLE READ`` transaction exports its snapshot, reads the
manifest's figures and the media references in it, and ``pg_dump --snapshot`` dumps that same snapshot (every write
acknowledged before the backup began; those acknowledged later are in the index, not in this backup); media files
are content-addressed and written before their item commits, so the snapshot's are all there (unless an erase after
the snapshot took its item's file: it is then listed as missing). A bucket's objects are streamed into the backup
(several at a time), each checked against the SHA-256 its reference names; one the bucket lacks or whose bytes
differ (changed outside xmodal) is listed in the manifest's ``missing_media``, like a missing file, and left out. A
server's ``state`` folder is derived data and is not backed up: it is rebuilt from the store. ``POST /backup``
(:meth:`xmodal.Engine.backup`) of a server on a ``postgres://`` index writes the same backup.

A restore verifies every file against the manifest, then, in ONE transaction (``psql --single-transaction``),
drops the target schema (``replace`` only), loads the dump and gives the index a new vector epoch, so every
server rebuilds its vectors from the restored store (a shared Milvus collection gets a new name) instead of
trusting vectors of the store it had; a failed restore leaves the schema as it was. The media files are copied
into the target's media folder or uploaded into its bucket first (each new file written aside and renamed;
each object acknowledged by S3 with its MD5 checked; existing files and objects are the same content by name).
``pg_dump``/``pg_restore``/``psql`` come from Debian's PostgreSQL (``$XMODAL_PG_BIN``); the schema keeps its
name (the target may be another database; its media may be a folder where the backup's were a bucket, or the
other way round).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError, StorageError, ValidationError
from ..media import Media, MediaStore
from ..media_s3 import S3MediaStore
from .backup import (
    MEDIA,
    FileEntry,
    Manifest,
    check_destination,
    copy_hashed,
    entry_of,
    read_manifest,
    seal,
    verify,
)
from .epoch import EPOCH_KEY
from .postgres import PostgresStore, redact
from .postgres_pool import split_pool_options
from .postgres_server import pg_bin

DUMP = "store.pgdump"
TIMEOUT_S = 3600
#: Objects copied from or into a bucket at a time (each a request's round trip; boto3 keeps 10 connections).
S3_THREADS = 8
T = TypeVar("T")
R = TypeVar("R")


class Location(Protocol):
    """Where a ``postgres://`` index lives (:class:`xmodal.location.PostgresLocation`)."""

    @property
    def dsn(self) -> str: ...

    @property
    def schema(self) -> str: ...

    def open_media(self) -> Media: ...


def write_pg_backup(where: Location, dest: Path, *, media: Media | None = None) -> Manifest:
    """Back up the index at ``where`` (its schema and media) into the new folder ``dest``; ``media`` is the
    index's media store when the caller has it open (a server), else ``where``'s is opened."""
    start = time.perf_counter()
    dest = Path(dest)
    check_destination(dest)
    files_of = _media_of(where, media if media is not None else where.open_media())
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    store = PostgresStore(where.dsn, where.schema)  # checks the server, version and login with a clear error
    source = store.where
    store.close()
    try:
        partial.mkdir(parents=True)
        seq, items, refs = _dump(where, partial / DUMP)
        files = [entry_of(partial, partial / DUMP)]
        copied, missing = files_of.backup(partial, refs)
        manifest = Manifest(tuple(files + copied), seq, items, source, time.time(), missing_media=missing)
        manifest = seal(partial, dest, manifest, start)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return manifest


def is_pg_backup(src: Path) -> bool:
    """Whether the backup folder ``src`` holds a PostgreSQL index's dump (not an index folder's copy)."""
    return (Path(src) / DUMP).is_file()


def restore_pg(src: Path, where: Location, *, replace: bool = False) -> dict[str, Any]:
    """Restore the backup folder ``src`` into the schema of ``where`` (see the module notes); returns a summary."""
    start = time.perf_counter()
    src = Path(src)
    manifest = read_manifest(src)
    if not is_pg_backup(src):
        raise ValidationError(
            "backup", f"{src} is a backup of an index folder", "restore it with --index DIR (a folder), not a URL"
        )
    schema = _schema_of(manifest)
    if schema != where.schema:
        raise ValidationError(
            "schema",
            f"the backup holds schema {schema!r}, the URL names {where.schema!r}",
            f"restore into ?schema={schema} (another database keeps both: change the URL's database)",
        )
    verify(src, manifest)
    files_of = _media_of(where, where.open_media())
    store = PostgresStore(where.dsn, where.schema)
    try:
        existed = store.count() > 0 or store.last_seq() > 0
    finally:
        store.close()
    if existed and not replace:
        raise ValidationError(
            "index",
            f"schema {schema!r} of {redact(where.dsn)} already holds an index",
            "pass --replace to replace it (stop its servers first), or restore into another database",
        )
    copied = files_of.restore(src, manifest)
    epoch = f"restored-{uuid.uuid4().hex[:12]}"
    _load(src / DUMP, where, epoch)
    return {
        "index": f"{redact(where.dsn)} (schema {schema})",
        "backup": str(src),
        "items": manifest.items,
        "store_seq": manifest.store_seq,
        "media_copied": copied,
        "replaced": existed,
        "vectors_epoch": epoch,
        "seconds": round(time.perf_counter() - start, 3),
    }


# -- dumping -------------------------------------------------------------------------------------------
def _dump(where: Location, target: Path) -> tuple[int, int, list[str]]:
    """``pg_dump`` of the schema in a snapshot this transaction exports; the snapshot's last change sequence,
    item count and media references."""
    import psycopg

    db = psycopg.connect(split_pool_options(where.dsn)[0], autocommit=True)
    try:
        with db.transaction():
            db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            snapshot = str(db.execute("SELECT pg_export_snapshot()").fetchone()[0])  # type: ignore[index]
            s = where.schema
            seq = int(db.execute(f"SELECT COALESCE(MAX(seq), 0) FROM {s}.changes").fetchone()[0])  # type: ignore[index]
            items = int(db.execute(f"SELECT COUNT(*) FROM {s}.items").fetchone()[0])  # type: ignore[index]
            refs = [
                str(ref)
                for (media,) in db.execute(f"SELECT media FROM {s}.items WHERE media IS NOT NULL")
                for ref in json.loads(media).values()
                if isinstance(ref, str)
            ]
            _run(
                "pg_dump",
                ["--format=custom", f"--schema={s}", f"--snapshot={snapshot}", "--no-owner", "--no-privileges"],
                where.dsn,
                ["--file", str(target)],
            )
    finally:
        db.close()
    return seq, items, refs


def _load(dump: Path, where: Location, epoch: str) -> None:
    """The dump into ``where``'s database in one transaction: the schema dropped, loaded, a new vector epoch."""
    s = where.schema
    script = dump.with_name(f".{dump.name}.{os.getpid()}.sql")
    try:
        _run("pg_restore", ["--no-owner", "--no-privileges", "--file", str(script)], None, [str(dump)])
        _run(
            "psql",
            ["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction"],
            where.dsn,
            [
                "-c",
                f"DROP SCHEMA IF EXISTS {s} CASCADE",
                "-f",
                str(script),
                "-c",
                f"INSERT INTO {s}.meta VALUES ('{EPOCH_KEY}', '{json.dumps(epoch)}') "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            ],
        )
    finally:
        script.unlink(missing_ok=True)


def _run(tool: str, options: list[str], dsn: str | None, rest: list[str]) -> None:
    """Run a PostgreSQL client tool (the password, if any, in the environment rather than the command line)."""
    path = pg_bin() / tool
    if not path.is_file():
        raise ConfigError(f"{tool} is not installed ({path}): apt-get install postgresql-client (or set XMODAL_PG_BIN)")
    env = dict(os.environ)
    command = [str(path), *options]
    if dsn is not None:
        bare, password = _without_password(split_pool_options(dsn)[0])
        if password:
            env["PGPASSWORD"] = password
        command += ["--dbname" if tool != "psql" else "-d", bare]
    try:
        subprocess.run([*command, *rest], env=env, check=True, capture_output=True, timeout=TIMEOUT_S)
    except subprocess.CalledProcessError as exc:
        said = " ".join(exc.stderr.decode(errors="replace").split())[:600]
        raise StorageError(f"{tool} failed ({said}); nothing was restored or backed up: check the server") from None
    except subprocess.TimeoutExpired:
        raise StorageError(f"{tool} took over {TIMEOUT_S} s; stopped") from None


def _without_password(dsn: str) -> tuple[str, str | None]:
    parts = urlsplit(dsn)
    if not parts.scheme or parts.password is None:
        return dsn, None
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc)), parts.password


def _schema_of(manifest: Manifest) -> str:
    """The schema a backup holds, from its ``source`` (``URL (schema NAME)``)."""
    marker = "(schema "
    if marker not in manifest.source:
        raise StorageError(f"backup source {manifest.source!r} names no schema; the manifest is damaged")
    return manifest.source.rsplit(marker, 1)[1].rstrip(")")


# -- media -----------------------------------------------------------------------------------------------
class _Files(Protocol):
    """The media of an index as a backup sees them: a folder's files or a bucket's objects."""

    def backup(self, into: Path, refs: list[str]) -> tuple[list[FileEntry], tuple[str, ...]]: ...

    def restore(self, src: Path, manifest: Manifest) -> int: ...


def _media_of(where: Location, media: Media) -> _Files:
    if isinstance(media, MediaStore):
        return _FolderMedia(media.root)
    if isinstance(media, S3MediaStore):
        return _BucketMedia(media)
    raise ConfigError(f"{redact(where.dsn)}: media of type {type(media).__name__} cannot be backed up")


class _FolderMedia:
    """The media folder (shared by the servers, or one server's ``<state>/media``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def backup(self, into: Path, refs: list[str]) -> tuple[list[FileEntry], tuple[str, ...]]:
        """The media files the snapshot references (each once) into ``into``; references with no file returned."""
        entries, missing = [], []
        media = (self.root / MEDIA).resolve()
        for ref in sorted(set(refs)):
            source = (self.root / ref).resolve()
            if media not in source.parents:
                continue  # not a file this index keeps
            if not source.is_file():
                missing.append(ref)
                continue
            target = into / ref
            target.parent.mkdir(parents=True, exist_ok=True)
            entries.append(
                FileEntry(target.relative_to(into).as_posix(), source.stat().st_size, copy_hashed(source, target))
            )
        return entries, tuple(missing)

    def restore(self, src: Path, manifest: Manifest) -> int:
        """Copy the backup's media files the target's media folder lacks (checked); returns how many."""
        copied = 0
        for entry in _media_entries(manifest):
            target = self.root / entry.path
            if target.is_file():
                continue  # content-addressed: the same name is the same content
            target.parent.mkdir(parents=True, exist_ok=True)
            aside = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            aside.unlink(missing_ok=True)
            if copy_hashed(src / entry.path, aside) != entry.sha256:
                aside.unlink(missing_ok=True)
                raise StorageError(f"backup {src}: {entry.path} differs from its checksum; nothing was restored")
            os.replace(aside, target)
            copied += 1
        return copied


class _BucketMedia:
    """The media objects of an S3-compatible bucket (:mod:`xmodal.media_s3`), copied several at a time."""

    def __init__(self, store: S3MediaStore) -> None:
        self.store = store

    def backup(self, into: Path, refs: list[str]) -> tuple[list[FileEntry], tuple[str, ...]]:
        """Stream the objects the snapshot references (each once, checked against their hash) into ``into``;
        the references the bucket lacks, or holds with other bytes, returned."""

        def fetch(ref: str) -> FileEntry | None:
            target = into / ref
            target.parent.mkdir(parents=True, exist_ok=True)
            digest = self.store.download(ref, target)
            return None if digest is None else FileEntry(ref, target.stat().st_size, digest)

        wanted = [ref for ref in sorted(set(refs)) if ref.startswith(f"{MEDIA}/")]  # others: not this index's
        entries, missing = [], []
        for ref, entry in zip(wanted, _each(fetch, wanted), strict=True):
            if entry is None:
                missing.append(ref)
            else:
                entries.append(entry)
        return entries, tuple(missing)

    def restore(self, src: Path, manifest: Manifest) -> int:
        """Upload the backup's media files the bucket lacks (each checked against its checksum); how many."""

        def send(entry: FileEntry) -> bool:
            data = (src / entry.path).read_bytes()
            if hashlib.sha256(data).hexdigest() != entry.sha256:
                raise StorageError(f"backup {src}: {entry.path} differs from its checksum; nothing was restored")
            return self.store.upload(entry.path, data)

        return sum(_each(send, _media_entries(manifest)))


def _media_entries(manifest: Manifest) -> list[FileEntry]:
    return [entry for entry in manifest.files if entry.path.startswith(f"{MEDIA}/")]


def _each(work: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``work`` on every item, :data:`S3_THREADS` at a time; the results in order (the first error raised)."""
    with ThreadPoolExecutor(S3_THREADS, thread_name_prefix="xmodal-backup-s3") as pool:
        return list(pool.map(work, items))
