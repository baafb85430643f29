"""Export the items of an index (all, or those a filter matches) to JSON Lines or Parquet.

A JSON Lines record is the item's view shared with the CLI, REST and MCP (:func:`xmodal.view.item_view`:
``id``, ``modality``, ``title``, ``text``, ``attributes``, ``media``, ``parent``, ``span``, timestamps...),
plus ``vectors`` (kind → list of numbers) on request. A Parquet file (``pyarrow``, the ``export`` extra) has
one row per item with the item's columns; ``attributes``, ``media`` and ``span`` hold JSON text (attribute
values may nest and differ in type from item to item), and each vector kind is a column ``vector_<kind>`` of
float32 lists (null where an item has none).

The file is written beside its destination under a temporary name and renamed into place when complete, so
a reader never sees half an export and a failed one leaves nothing behind. A destination that exists is an
error unless ``force`` replaces it. The items are matched once, at the start, and read in batches: an item
deleted meanwhile is left out, one added meanwhile is not included.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from .errors import MissingDependency, ValidationError
from .store.base import StoredItem
from .view import item_view, jsonable

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
#: Items read from the store at a time: few enough that a batch's objects are gone before Python's collector
#: promotes them to its oldest generation (with thousands, full collections over the whole heap, the
#: engine's catalog included, took a third of an export's time).
BATCH = 200
#: Rows of a Parquet row group (the batches' plain column values gathered until there are this many).
ROW_GROUP = 10_000


@dataclass(frozen=True, slots=True)
class ExportReport:
    """What an export wrote: the path, the format, how many items, how long it took, and how many items the
    guards withheld from the caller, by category (left out of the file)."""

    path: str
    format: str
    items: int
    seconds: float
    withheld: Mapping[str, int] = field(default_factory=dict)  # items the guards left out, by category

    def to_dict(self) -> dict[str, Any]:
        out = {"path": self.path, "format": self.format, "items": self.items, "seconds": round(self.seconds, 3)}
        return {**out, "withheld": dict(self.withheld)} if self.withheld else out


def export_format(path: Path, given: str | None) -> str:
    """The format named (``jsonl`` or ``parquet``), or the one the path's extension says."""
    if given is not None:
        if given not in ("jsonl", "parquet"):
            raise ValidationError("format", f"unknown export format {given!r}", "use jsonl or parquet")
        return given
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise ValidationError(
            "path",
            f"the extension {path.suffix or '(none)'!r} names no export format",
            "end the path in .jsonl or .parquet, or give the format (--format jsonl|parquet)",
        )
    return found


def write_export(
    path: str | Path,
    batches: Callable[[], Iterable[list[StoredItem]]],
    *,
    format: str | None = None,
    with_vectors: bool = False,
    force: bool = False,
    kinds: Sequence[str] = (),
    dim: int = 0,
) -> ExportReport:
    """Write the items ``batches()`` yields to ``path`` (see the module docstring). ``kinds`` and ``dim``:
    the index's vector kinds and dimension (the Parquet columns of ``with_vectors``)."""
    start = time.perf_counter()
    target = Path(path)
    kind = export_format(target, format)
    if kind == "parquet":
        _arrow()  # the extra is checked before anything is read or written
    if target.exists() and not force:
        raise ValidationError("path", f"{str(target)!r} exists", "choose another path, or pass force=True (--force)")
    if target.is_dir():
        raise ValidationError("path", f"{str(target)!r} is a folder", "give the path of a file to write")
    if not target.parent.is_dir():
        raise ValidationError("path", f"the folder {str(target.parent)!r} does not exist", "create it first")
    with _replacing(target) as out:
        if kind == "parquet":
            count = _write_parquet(out, batches(), list(kinds) if with_vectors else [], dim)
        else:
            count = _write_jsonl(out, batches(), with_vectors)
    return ExportReport(str(target), kind, count, time.perf_counter() - start)


@contextlib.contextmanager
def _replacing(target: Path) -> Iterator[IO[bytes]]:
    """A temporary file beside ``target``, renamed over it once the block completes (removed if it fails)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_jsonl(out: IO[bytes], batches: Iterable[list[StoredItem]], with_vectors: bool) -> int:
    dumps, plain = _json_encoder()
    count = 0
    for batch in batches:
        views = [item_view(s.item, shared=True) for s in batch]  # written at once: no copy of the attributes
        if with_vectors:  # stored vectors are finite float32: written as they are, not through the view
            for view, stored in zip(views, batch, strict=True):
                view["vectors"] = {str(kind): v.tolist() if plain else v for kind, v in stored.vectors.items()}
        if views:
            out.write(b"\n".join(map(dumps, views)) + b"\n")
        count += len(views)
    return count


def _json_encoder() -> tuple[Callable[[Any], bytes], bool]:
    """A JSON encoder to bytes: ``orjson`` when installed (the ``export`` extra: faster, four times with vectors,
    which it writes from the NumPy arrays), else the standard library's; and whether it is the latter (arrays
    as lists)."""
    try:
        import orjson
    except ImportError:
        encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
        return lambda value: encode(value).encode("utf-8"), True
    return functools.partial(orjson.dumps, option=orjson.OPT_SERIALIZE_NUMPY), False


COLUMNS = ("id", "modality", "title", "text", "attributes", "media", "parent", "span", "created_at", "updated_at")
_JSON_COLUMNS = ("attributes", "media", "span")
_PLAIN_COLUMNS = ("id", "title", "text", "attributes", "media", "parent", "created_at", "updated_at")


def _write_parquet(out: IO[bytes], batches: Iterable[list[StoredItem]], kinds: list[str], dim: int) -> int:
    pa, pq = _arrow()
    group = _RowGroup(kinds, dim, _json_encoder()[0])
    schema = _schema(pa, kinds, dim)
    with pq.ParquetWriter(out, schema) as writer:
        for batch in batches:
            group.add(batch)
            if group.rows >= ROW_GROUP:
                writer.write_table(group.table(pa, schema))
        if group.rows or not group.count:
            writer.write_table(group.table(pa, schema))
    return group.count


def _schema(pa: Any, kinds: list[str], dim: int) -> Any:
    fields = [pa.field(name, pa.float64() if name.endswith("_at") else pa.string()) for name in COLUMNS]
    fields += [pa.field(f"vector_{kind}", pa.list_(pa.float32(), dim)) for kind in kinds]
    return pa.schema(fields)


class _RowGroup:
    """Column values gathered batch by batch (plain strings, numbers and arrays: nothing kept alive of the
    items) until they make a row group."""

    def __init__(self, kinds: list[str], dim: int, dumps: Callable[[Any], bytes]) -> None:
        self.kinds, self.dim, self.dumps = kinds, dim, dumps
        self.count = 0
        self._reset()

    def _reset(self) -> None:
        self.rows = 0
        self.columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
        self.vectors: dict[str, list[np.ndarray | None]] = {kind: [] for kind in self.kinds}

    def add(self, batch: list[StoredItem]) -> None:
        """The item's fields (JSON text where they nest) and each vector kind's vector (None where absent)."""
        for name in COLUMNS:
            values = [getattr(s.item, name) for s in batch]
            if name not in _PLAIN_COLUMNS:  # JSON data already (an item read from the store): no copy first
                values = [jsonable(v) for v in values]
            if name in _JSON_COLUMNS:
                values = [None if v is None else self.dumps(v).decode("utf-8") for v in values]
            self.columns[name] += values
        for kind in self.kinds:
            self.vectors[kind] += [s.vectors.get(kind) for s in batch]
        self.rows += len(batch)
        self.count += len(batch)

    def table(self, pa: Any, schema: Any) -> Any:
        """The rows gathered as a table (and a new, empty group)."""
        columns: dict[str, Any] = dict(self.columns)
        for kind, vectors in self.vectors.items():
            matrix = np.zeros((len(vectors), self.dim), dtype=np.float32)
            absent = np.array([v is None for v in vectors], dtype=bool)
            for j, vector in enumerate(vectors):
                if vector is not None:
                    matrix[j] = vector
            flat = pa.array(matrix.reshape(-1))
            columns[f"vector_{kind}"] = pa.FixedSizeListArray.from_arrays(flat, self.dim, mask=pa.array(absent))
        self._reset()
        return pa.table(columns, schema=schema)


def _arrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependency("pyarrow", "export") from exc
    return pa, pq
