"""Parquet catalogs at the file level (``pyarrow``): the column names, and each row as a catalog record.

The columns are the JSON Lines fields (``id``, ``title``, ``text``, ``image``, ``media``, ``attributes``,
``modality``, ``parent``, ``span``, ``vectors``) or CSV's ``attributes.NAME`` columns; ``attributes``,
``media``, ``span`` and ``vectors`` may be nested Parquet values (structs, maps, lists) or JSON text. What
``xmodal export`` writes reads back: its ``created_at``/``updated_at`` columns are ignored and its
``vector_KIND`` columns become the item's own vectors. A null cell is an absent field.
:func:`xmodal.ingest.catalog.read_catalog` checks the columns and validates each record.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import MissingDependency

PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
IGNORED = frozenset({"created_at", "updated_at"})  # what `xmodal export` adds: the store's own bookkeeping
VECTOR_PREFIX = "vector_"
ROWS_PER_READ = 1024


def _parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependency("pyarrow", "export") from exc
    return pq


def catalog_columns(path: Path) -> list[str]:
    """The columns of the Parquet file that are catalog fields (less the ignored and vector columns);
    raises ``OSError`` or ``ValueError`` for a file that is not Parquet."""
    names = _parquet().ParquetFile(path).schema_arrow.names
    return [n for n in names if n not in IGNORED and not n.startswith(VECTOR_PREFIX)]


def parquet_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Each row as a catalog record (:func:`gather`), read a row group's slice at a time."""
    for batch in _parquet().ParquetFile(path).iter_batches(batch_size=ROWS_PER_READ):
        for row in batch.to_pylist():
            yield gather(row)


def count_rows(path: Path) -> int:
    return int(_parquet().ParquetFile(path).metadata.num_rows)


def gather(row: Mapping[str, Any]) -> dict[str, Any]:
    """A Parquet row with its nulls dropped, its maps (key/value pair lists) made dicts and its ``vector_KIND``
    columns gathered into ``vectors``; ``attributes.NAME`` columns and JSON text are left to the caller."""
    obj: dict[str, Any] = {}
    vectors: dict[str, Any] = {}
    for name, value in row.items():
        if value is None or name in IGNORED:
            continue
        if name.startswith(VECTOR_PREFIX):
            vectors[name[len(VECTOR_PREFIX) :]] = value
        elif isinstance(value, list) and value and all(isinstance(p, tuple) and len(p) == 2 for p in value):
            obj[name] = dict(value)
        else:
            obj[name] = value
    if vectors and "vectors" not in obj:
        obj["vectors"] = vectors
    return obj
