"""Catalog readers: JSON Lines, CSV, documents and folders of images and documents, streamed into items
or rejections.

Every record comes back either as a :class:`Located` item (with where it was read, e.g.
``catalog.jsonl:12`` or ``photos/cat.png``) or as a :class:`~xmodal.ingest.prepare.Rejection`
saying where and why, so one bad line never loses the others. Files are read line by line and
folders walked lazily: a million-line catalog is never held in memory.

Catalog fields (JSON Lines: one object a line; CSV: one column each)

- ``id`` (required, a string or an integer), ``title``, ``text``;
- ``image``: a path relative to the catalog file's folder. It must stay inside that folder unless
  ``allow_outside`` is set (which also admits absolute paths), and the check is made on the real path
  (:meth:`~pathlib.Path.resolve`): a symbolic link on the way, to a file or a folder, may point anywhere
  inside the catalog's folder, and one pointing outside rejects the line;
- ``media``: an object of medium name → path, by the same rule (``{"image": "a.png"}``; a medium is
  a registered media loader such as ``image``, or a loader's dotted path ``"package.module:Loader"``);
  in CSV, a cell holding that JSON object;
- ``attributes``: an object of name → value: a string, number, boolean or null, or lists and objects of
  them (nested up to :data:`~xmodal.records.MAX_ATTRIBUTE_DEPTH` levels), kept exactly as given;
- ``modality`` (optional: ``text``, ``image``, ``image+text``, or media names and ``text`` joined by
  ``+``; inferred otherwise);
- ``parent`` (optional): the id of the item this one is a segment of, with ``span``: a page number,
  ``{"page": 3}``, ``{"start": 12.5, "end": 20}`` seconds or ``[12.5, 20]`` (in CSV, JSON in the cell).

Any other field is rejected with the nearest known name as a hint, so a typo (``titel``) is caught
instead of silently dropped. A JSON value nested deeper than :data:`MAX_NESTING` levels rejects its line
(found without recursion, whatever the depth).

In CSV, attributes are given either as an ``attributes`` column holding a JSON object or as columns
named ``attributes.NAME`` (cells that read as JSON numbers or ``true``/``false`` become numbers and
booleans, empty cells are left out); an unknown column rejects the file.

A folder of images gives one image item per file (and a single image file one item the same way):
id = path relative to the folder without its extension, title = file name, attribute ``folder`` =
parent folder name. File names are kept as display titles only (modality ``image``) unless
``name_as_text`` is set. Files of other types are rejected; hidden files are skipped. Symbolic links
under the folder (to files or folders) are not followed, each rejected with the way to follow them,
unless ``follow_symlinks`` is set; a followed link must still lead inside the folder (its real path),
unless ``allow_outside`` is set too. The folder itself (or a single file) is read as named, a link or not.

A document (a file a splitter of :mod:`xmodal.splitters` takes: PDF, plain text, Markdown, HTML, and
whatever else is registered), alone or in a folder, gives a parent item (id = the file's name, or its path
under the folder with its suffix) and one segment item per page, chunk or time window, each located as
``file page 3``; a file that cannot be split is rejected alone, a failed page alone.

The images themselves are read, checked and decoded by :meth:`xmodal.Engine.add` with the catalog's
folder as ``base_dir`` (missing, corrupt, truncated, oversized and refused images are rejected there);
:func:`add_catalogs` maps those rejections back to the catalog line.
"""

from __future__ import annotations

import csv
import difflib
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import ImageError, ValidationError, XmodalError, brief, check_length
from ..imaging import ALLOWED_FORMATS
from ..media_loaders import MAX_PATH_LENGTH
from ..records import Item, Modality
from ..splitters import (
    PAGE_IMAGE,
    SPLITTER_ATTRIBUTE,
    SplitOptions,
    span_label,
    split_file,
    split_suffixes,
    splitter_name_for,
)
from .parquet import PARQUET_SUFFIXES, catalog_columns, count_rows, parquet_rows
from .prepare import AddReport, Rejection, chunks

if TYPE_CHECKING:
    from ..engine import Engine

FIELDS = ("id", "title", "text", "image", "media", "attributes", "modality", "parent", "span", "vectors")
ATTRIBUTE_PREFIX = "attributes."
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson", ".jsonlines"})
CSV_SUFFIXES = frozenset({".csv"})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
MAX_LINE_BYTES = 16 * 1024 * 1024
#: How deep a record's JSON may nest: line → attributes → a value nested at most MAX_ATTRIBUTE_DEPTH (16)
#: levels, so deeper is an error, and a line nested thousands of levels deep is refused instead of crashing the add.
MAX_NESTING = 32
CHUNK = 1024
OUTSIDE_FIX = "give a path relative to the catalog file's folder (or allow outside paths: --allow-outside-images)"


@dataclass(frozen=True, slots=True)
class Located:
    """An item read from a catalog, with where it came from (``file:line`` or a file path)."""

    where: str
    item: Item
    vectors: Any = None  # the caller's own vectors for the item (see Engine.add), when the record has them


Record = Located | Rejection


def read_catalog(
    path: str | Path,
    *,
    allow_outside: bool = False,
    name_as_text: bool = False,
    follow_symlinks: bool = False,
    split_options: SplitOptions | None = None,
) -> Iterator[Record]:
    """Read a JSON Lines or CSV catalog, a folder of images and documents, or one image or document (a file
    a splitter takes: its parent item and its segments), by what ``path`` is."""
    path = Path(path)
    if path.is_dir():
        return read_image_folder(
            path,
            name_as_text=name_as_text,
            follow_symlinks=follow_symlinks,
            allow_outside=allow_outside,
            split_options=split_options,
        )
    if not path.exists():
        return iter([Rejection(str(path), "no such file or folder (check the path)")])
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES and split_options is not None and split_options.images_as_pages:
        return _split_records(path, path.name, {}, split_options, PAGE_IMAGE)
    if suffix in IMAGE_SUFFIXES:  # a single image file: an item of its folder
        return iter([_image_file_record(path, path.parent, path.resolve().parent.name, name_as_text)])
    if splitter_name_for(path) is not None:  # a document: its parent item and segments
        return _split_records(path, path.name, {}, split_options)
    if suffix in JSONL_SUFFIXES:
        return read_jsonl(path, allow_outside=allow_outside)
    if suffix in CSV_SUFFIXES:
        return read_csv(path, allow_outside=allow_outside)
    if suffix in PARQUET_SUFFIXES:
        return read_parquet(path, allow_outside=allow_outside)
    known = ", ".join(sorted(JSONL_SUFFIXES | CSV_SUFFIXES | PARQUET_SUFFIXES))
    documents = ", ".join(sorted(split_suffixes()))
    problem = (
        f"not a catalog ({suffix or 'no extension'}): use a {known} file, an image, a document ({documents}) "
        "or a folder of them"
    )
    return iter([Rejection(str(path), problem)])


def base_dir_of(path: str | Path) -> Path:
    """The folder that a catalog's relative image paths resolve against."""
    path = Path(path)
    return path if path.is_dir() else path.parent


# -- JSON Lines ---------------------------------------------------------------------------------


def read_jsonl(path: Path, *, allow_outside: bool = False) -> Iterator[Record]:
    """One item (or rejection) per non-blank line; a bad line is rejected alone."""
    root = _real_folder(path)
    with open(path, "rb") as f:
        for number, raw in enumerate(_lines(f), 1):
            where = f"{path}:{number}"
            if raw is None:
                yield Rejection(
                    where, f"line longer than {MAX_LINE_BYTES >> 20} MiB (split the record or shrink its text)"
                )
                continue
            if not raw.strip():
                continue
            try:
                obj = _parse_json_line(raw, first=number == 1)
                item = record_to_item(obj, allow_outside=allow_outside, root=root)
                yield Located(where, item, obj.get("vectors"))
            except XmodalError as exc:
                yield Rejection(where, str(exc))


def _lines(f: BinaryIO) -> Iterator[bytes | None]:
    """Lines of a binary file; ``None`` for a line over the size limit (skipped without loading it)."""
    while True:
        line = f.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = f.readline(1 << 20)
            yield None
        else:
            yield line


def _parse_json_line(raw: bytes, *, first: bool) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8-sig" if first else "utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            "line", f"is not UTF-8 ({exc.reason} at byte {exc.start})", "save the file as UTF-8"
        ) from None
    obj = json_value(text, "line", "write one JSON object per line")
    if not isinstance(obj, dict):
        raise ValidationError(
            "line", f"is a JSON {type(obj).__name__}, not an object", 'write e.g. {"id": "1", "title": "..."}'
        )
    return obj


def json_value(text: str, field: str, fix: str) -> Any:
    """Parse JSON, or raise a :class:`ValidationError` naming ``field``: bad syntax, a key given twice, or
    nesting deeper than :data:`MAX_NESTING` (whether the parser ran out of stack or not)."""
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except ValidationError:
        raise
    except RecursionError:
        raise _too_deep(field, None) from None
    except ValueError as exc:
        raise ValidationError(field, f"is not valid JSON ({exc})", fix) from None
    depth = nesting_depth(value, MAX_NESTING)
    if depth > MAX_NESTING:
        raise _too_deep(field, depth)
    return value


def nesting_depth(value: object, limit: int) -> int:
    """How deep lists and objects nest in ``value`` (a scalar is 0), counted without recursion; the count
    stops once it passes ``limit``."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Iterable[object] = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            break
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _too_deep(field: str, depth: int | None) -> ValidationError:
    levels = "thousands of levels" if depth is None else f"{depth} levels or more"
    return ValidationError(
        field,
        f"is nested {levels} deep, more than the limit of {MAX_NESTING}",
        "flatten it: an attribute's lists and objects may nest 16 levels",
    )


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValidationError(key, "is given twice in one object", "keep one of them")
        out[key] = value
    return out


# -- CSV ----------------------------------------------------------------------------------------


def read_csv(path: Path, *, allow_outside: bool = False) -> Iterator[Record]:
    """One item (or rejection) per row; a header with an unknown column rejects the whole file."""
    root = _real_folder(path)
    with open(path, newline="", encoding="utf-8-sig", errors="strict") as f:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            if header is None:
                return
            _check_header([h.strip() for h in header])
        except (csv.Error, UnicodeDecodeError, ValidationError) as exc:
            yield Rejection(f"{path}:1", f"{exc}; no row of this file was read")
            return
        header = [h.strip() for h in header]
        line = reader.line_num
        while True:
            where = f"{path}:{line + 1}"
            try:
                row = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError as exc:
                yield Rejection(where, f"not UTF-8 ({exc.reason}); no later row was read (save the file as UTF-8)")
                return
            except csv.Error as exc:
                stuck = reader.line_num == line
                line = reader.line_num
                yield Rejection(where, f"unreadable CSV row ({exc}); fix the quoting")
                if stuck:
                    return
                continue
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            try:
                obj = _csv_record(header, row)
                yield Located(where, record_to_item(obj, allow_outside=allow_outside, root=root), obj.get("vectors"))
            except XmodalError as exc:
                yield Rejection(where, str(exc))


def _check_header(header: list[str]) -> None:
    if "id" not in header:
        raise ValidationError("id", "the header has no id column", "add an id column (the first row names the columns)")
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise ValidationError(name, "column appears twice in the header", "keep one of them")
        seen.add(name)
        if name.startswith(ATTRIBUTE_PREFIX) and len(name) > len(ATTRIBUTE_PREFIX):
            continue
        if name not in FIELDS:
            raise _unknown_field(name, csv=True)


def _csv_record(header: list[str], row: list[str]) -> dict[str, Any]:
    if len(row) != len(header):
        raise ValidationError(
            "row", f"has {len(row)} cells but the header has {len(header)}", "check commas and quotes"
        )
    obj: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for name, cell in zip(header, row, strict=True):
        if name.startswith(ATTRIBUTE_PREFIX):
            if cell.strip():
                attributes[name[len(ATTRIBUTE_PREFIX) :]] = _csv_value(cell)
        elif name == "attributes":
            if cell.strip():
                attributes.update(_csv_attributes(cell, attributes))
        elif name in ("media", "span", "vectors") and cell.strip():
            obj[name] = _csv_json(name, cell)
        elif cell.strip():
            obj[name] = cell
    if attributes:
        obj["attributes"] = attributes
    return obj


def _csv_attributes(cell: str, columns: Mapping[str, Any]) -> dict[str, Any]:
    parsed = json_value(cell, "attributes", 'write a JSON object, e.g. {"color": "red"}')
    if not isinstance(parsed, dict):
        raise ValidationError("attributes", "is not a JSON object", 'write e.g. {"color": "red"}')
    both = sorted(set(parsed) & set(columns))
    if both:
        raise ValidationError(
            f"attributes.{both[0]}", "is given both as a column and in the attributes column", "keep one"
        )
    return parsed


def _csv_json(name: str, cell: str) -> Any:
    return json_value(cell, name, 'write e.g. {"image": "a.png"} or 3')


def _csv_value(cell: str) -> str | int | float | bool:
    """A JSON number or boolean becomes one; everything else (``01234`` included) stays a string."""
    try:
        value = json.loads(cell)
    except (ValueError, RecursionError):  # not a number: "[[[[..." nested past the stack stays text too
        return cell
    if isinstance(value, bool) or (isinstance(value, (int, float)) and math.isfinite(value)):
        return value
    return cell


# -- Parquet ------------------------------------------------------------------------------------


def read_parquet(path: Path, *, allow_outside: bool = False) -> Iterator[Record]:
    """One item (or rejection) per row (``file:row N``, from 1) of a Parquet catalog (see
    :mod:`xmodal.ingest.parquet`); a column that is no catalog field rejects the whole file."""
    try:
        _check_header(catalog_columns(path))
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError; so is a ValidationError
        yield Rejection(f"{path}:1", f"{exc}; no row of this file was read")
        return
    root = _real_folder(path)
    for number, row in enumerate(parquet_rows(path), 1):
        where = f"{path}:row {number}"
        try:
            obj = _parquet_record(row)
            yield Located(where, record_to_item(obj, allow_outside=allow_outside, root=root), obj.get("vectors"))
        except XmodalError as exc:
            yield Rejection(where, str(exc))


def _parquet_record(row: dict[str, Any]) -> dict[str, Any]:
    """A Parquet row as a catalog record: JSON text of a nested field parsed, ``attributes.NAME`` columns
    merged into ``attributes`` (a name given both ways is refused, as in CSV)."""
    obj: dict[str, Any] = {}
    columns: dict[str, Any] = {}
    for name, value in row.items():
        if name.startswith(ATTRIBUTE_PREFIX):
            columns[name[len(ATTRIBUTE_PREFIX) :]] = value
        elif name in ("attributes", "media", "span", "vectors") and isinstance(value, str):
            obj[name] = _csv_json(name, value) if name != "attributes" else _csv_attributes(value, columns)
        else:
            obj[name] = value
    if columns:
        given = obj.get("attributes") or {}
        if not isinstance(given, dict):
            raise ValidationError("attributes", "is not an object", 'write e.g. {"color": "red"}')
        both = sorted(set(given) & set(columns))
        if both:
            raise ValidationError(
                f"attributes.{both[0]}", "is given both as a column and in the attributes column", "keep one"
            )
        obj["attributes"] = {**given, **columns}
    return obj


# -- records → items ----------------------------------------------------------------------------


def record_to_item(obj: Mapping[str, Any], *, allow_outside: bool = False, root: Path | None = None) -> Item:
    """Validate one catalog record and build its :class:`Item` (image kept as a relative path).

    ``root`` is the catalog's folder as a real path: when given, a media path must lead inside it once
    symbolic links are resolved (unless ``allow_outside``)."""
    item_id = _item_id(obj.get("id"))
    for name in obj:
        if name not in FIELDS:
            raise _unknown_field(name, item=item_id)
    strings = {}
    for name in ("title", "text"):
        value = obj.get(name)
        if value is not None and not isinstance(value, str):
            raise ValidationError(
                name, f"must be a string, got {type(value).__name__}", "quote the value", item=item_id
            )
        strings[name] = value or ""
    image = obj.get("image")
    if image is not None and not (isinstance(image, str) and not image.strip()):
        image = check_image_path(image, allow_outside=allow_outside, item=item_id, root=root)
    else:
        image = None
    media = obj.get("media")
    if media is not None:
        if not isinstance(media, Mapping):
            raise ValidationError(
                "media", "must be an object of medium → path", 'write e.g. {"image": "a.png"}', item=item_id
            )
        media = {
            name: check_image_path(path, allow_outside=allow_outside, item=item_id, field=f"media.{name}", root=root)
            for name, path in media.items()
        }
    parent = obj.get("parent")
    if parent is not None and (isinstance(parent, bool) or not isinstance(parent, (str, int))):
        raise ValidationError("parent", "must be an item id (a string)", "give the parent's id", item=item_id)
    return Item.create(
        item_id,
        title=strings["title"],
        text=strings["text"],
        attributes=obj.get("attributes") or {},
        image=image,
        media=media,
        modality=obj.get("modality"),
        parent=None if parent is None else str(parent),
        span=obj.get("span"),
    )


def _item_id(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is None:
        raise ValidationError("id", "is missing", "give every item a non-empty string id")
    if not isinstance(value, str):
        raise ValidationError("id", f"must be a string, got {type(value).__name__}", "give a string id")
    return value


def _unknown_field(name: str, *, item: str | None = None, csv: bool = False) -> ValidationError:
    close = difflib.get_close_matches(name, FIELDS, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    other = f"write it as a column named {ATTRIBUTE_PREFIX}{name}" if csv else "put other data under attributes"
    return ValidationError(name, "unknown field", f"{hint}the fields are {', '.join(FIELDS)}; {other}", item=item)


def check_image_path(
    value: object,
    *,
    allow_outside: bool = False,
    item: str | None = None,
    field: str = "image",
    root: Path | None = None,
) -> str:
    """A catalog media path, which must stay inside the catalog's folder unless ``allow_outside``: as
    written (no absolute or ``../`` path) and, when the folder's real path ``root`` is given, once every
    symbolic link on the way is resolved."""
    if not isinstance(value, str) or not value.strip():
        raise ImageError(field, f"must be a path string, got {type(value).__name__}", "give a relative path", item=item)
    check_length(field, value, MAX_PATH_LENGTH, "give the file's path", item=item)
    if "\x00" in value:
        raise ImageError(field, "contains a NUL character", "give a plain file path", item=item)
    if allow_outside:
        return value
    norm = os.path.normpath(value)
    if os.path.isabs(norm) or norm == os.pardir or norm.startswith(os.pardir + os.sep):
        raise ImageError(field, f"{brief(value)} is outside the catalog's folder", OUTSIDE_FIX, item=item)
    if root is not None:
        problem = _outside(root / value, root)
        if problem:
            raise ImageError(field, f"{brief(value)} {problem}", OUTSIDE_FIX, item=item)
    return value


def _real_folder(catalog: Path) -> Path | None:
    """The real path of a catalog file's folder (``None`` when it cannot be resolved: every path is then
    refused later, as missing)."""
    try:
        return catalog.parent.resolve()
    except (OSError, RuntimeError):
        return None


def _outside(path: Path, root: Path) -> str | None:
    """Why ``path`` is not inside the real folder ``root`` once its links are resolved, or ``None`` when it is."""
    try:
        real = path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a link loop (Python < 3.13)
        return "is a symbolic link that cannot be resolved (a loop?)"
    if real.is_relative_to(root):
        return None
    return f"leads outside the catalog's folder through a symbolic link (to {real})"


# -- folders of images --------------------------------------------------------------------------


def read_image_folder(
    folder: Path,
    *,
    name_as_text: bool = False,
    follow_symlinks: bool = False,
    allow_outside: bool = False,
    split_options: SplitOptions | None = None,
) -> Iterator[Record]:
    """One image item per image file under ``folder`` and a parent item plus segments per document (a file a
    splitter takes: PDF, text…; id = its path under ``folder``, suffix kept), sorted, hidden files skipped.
    Symbolic links are rejected unless ``follow_symlinks`` (then each folder is read once, and a link must
    lead inside ``folder`` unless ``allow_outside``)."""
    root_name = folder.resolve().name
    for entry in _walk(folder, follow_symlinks=follow_symlinks, allow_outside=allow_outside):
        if isinstance(entry, Rejection):
            yield entry
        elif entry.suffix.lower() not in IMAGE_SUFFIXES and splitter_name_for(entry) is not None:
            rel = entry.relative_to(folder)
            yield from _split_records(entry, rel.as_posix(), {"folder": rel.parent.name or root_name}, split_options)
        elif entry.suffix.lower() in IMAGE_SUFFIXES and split_options is not None and split_options.images_as_pages:
            rel = entry.relative_to(folder)
            attributes = {"folder": rel.parent.name or root_name}
            yield from _split_records(entry, rel.as_posix(), attributes, split_options, PAGE_IMAGE)
        else:
            yield _image_file_record(entry, folder, root_name, name_as_text)


def _split_records(
    path: Path, item_id: str, attributes: Mapping[str, Any], options: SplitOptions | None, using: str | None = None
) -> Iterator[Record]:
    """The parent item and segment items of a document, each located at the file (and page or time)."""
    for found in split_file(path, id=item_id, name=str(path), attributes=attributes, options=options, using=using):
        if isinstance(found, Rejection):
            yield found
        else:
            where = str(path) if found.span is None else f"{path} {span_label(found.span)}"
            yield Located(where, found)


def _image_file_record(path: Path, root: Path, root_name: str, name_as_text: bool) -> Record:
    """The item of one image file: id from its path under ``root``, title from its name."""
    rel = path.relative_to(root)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return Rejection(str(path), _refused_file(path))
    title = " ".join(path.stem.replace("_", " ").replace("-", " ").split())
    try:
        item = Item.create(
            rel.with_suffix("").as_posix(),
            title=title,
            attributes={"folder": rel.parent.name or root_name},
            image=rel.as_posix(),
            modality=Modality.IMAGE_TEXT if name_as_text and title else Modality.IMAGE,
        )
    except XmodalError as exc:
        return Rejection(str(path), str(exc))
    return Located(str(path), item)


def _walk(folder: Path, *, follow_symlinks: bool = False, allow_outside: bool = False) -> Iterator[Path | Rejection]:
    """The files under ``folder``, sorted, hidden ones left out; a symbolic link that is not to be followed
    comes as a :class:`Rejection` saying why."""
    root = folder.resolve()
    visited: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=follow_symlinks):
        real = os.path.realpath(dirpath)
        if real in visited:  # a link cycle
            dirnames[:] = []
            continue
        visited.add(real)
        here = Path(dirpath)
        kept = []
        for name in sorted(d for d in dirnames if not d.startswith(".")):
            problem = _link_problem(here / name, root, follow_symlinks, allow_outside)
            if problem:
                yield Rejection(str(here / name), problem)
            else:
                kept.append(name)
        dirnames[:] = kept
        for name in sorted(f for f in filenames if not f.startswith(".")):
            problem = _link_problem(here / name, root, follow_symlinks, allow_outside)
            yield Rejection(str(here / name), problem) if problem else here / name


def _link_problem(path: Path, root: Path, follow: bool, allow_outside: bool) -> str | None:
    """Why a folder entry is not read (a link not followed, or leading outside ``root``), or ``None``."""
    if not path.is_symlink():
        return None
    if not follow:
        return str(
            ValidationError(
                "path",
                "is a symbolic link, not followed",
                "pass --follow-symlinks to follow links that stay inside the folder",
            )
        )
    problem = None if allow_outside else _outside(path, root)
    if problem is None:
        return None
    fix = "copy the file into the folder, or allow outside links: --allow-outside-images"
    return str(ImageError("path", problem.replace("catalog's folder", "folder"), fix))


def _refused_file(path: Path) -> str:
    allowed = ", ".join(sorted(ALLOWED_FORMATS))
    documents = ", ".join(sorted(split_suffixes()))
    suffix = path.suffix.lower() or "no extension"
    return str(
        ImageError(
            "image",
            f"{suffix} files are not an allowed image format, nor a document",
            f"convert it to one of {allowed} (images) or {documents} (documents)",
        )
    )


# -- adding to an engine ------------------------------------------------------------------------


def estimate_records(path: str | Path, *, follow_symlinks: bool = False) -> int | None:
    """About how many records a catalog holds (lines, or files in a folder), for progress bars."""
    path = Path(path)
    try:
        if path.is_dir():
            return sum(1 for _ in _walk(path, follow_symlinks=follow_symlinks))
        if path.suffix.lower() in JSONL_SUFFIXES | CSV_SUFFIXES:
            with open(path, "rb") as f:
                lines, last = 0, b"\n"
                for block in iter(lambda: f.read(1 << 20), b""):
                    lines += block.count(b"\n")
                    last = block[-1:]
            lines += last != b"\n"
            return max(lines - (path.suffix.lower() in CSV_SUFFIXES), 0)
        if path.suffix.lower() in PARQUET_SUFFIXES:
            return count_rows(path)
    except (OSError, ValueError):
        return None
    return 1


def add_catalogs(
    engine: Engine,
    paths: Iterable[str | Path],
    *,
    progress: Callable[[int], object] | None = None,
    allow_outside: bool = False,
    name_as_text: bool = False,
    follow_symlinks: bool = False,
    split_options: SplitOptions | None = None,
) -> AddReport:
    """Add every record of the given catalogs and folders; ids repeated across them are rejected.

    Rejections name the file and line (``catalog.jsonl:12``) whether the catalog reader or the
    engine (image checks) refused the item.
    """
    report = AddReport()
    seen: set[str] = set()
    for path in paths:
        base = base_dir_of(path)
        records = read_catalog(
            path,
            allow_outside=allow_outside,
            name_as_text=name_as_text,
            follow_symlinks=follow_symlinks,
            split_options=split_options,
        )
        try:
            for chunk in chunks(records, CHUNK):
                _add_chunk(engine, chunk, base, seen, report)
                if progress is not None:
                    progress(len(chunk))
        except OSError as exc:
            report.rejected.append(Rejection(str(path), f"cannot read the rest of this file: {exc}"))
    return report


def _add_chunk(engine: Engine, chunk: list[Record], base: Path, seen: set[str], report: AddReport) -> None:
    """Add one chunk, keeping its rejections (from the reader and from the engine) in file order."""
    sorted_chunk = sort_chunk(chunk, seen)
    replace_documents(engine, sorted_chunk.items)
    sub = AddReport()
    if sorted_chunk.items:
        sub = engine.add(sorted_chunk.items, base_dir=base, vectors=sorted_chunk.vectors or None)
    sorted_chunk.finish(sub, report)


@dataclass(slots=True)
class SortedChunk:
    """A chunk of records sorted out: the items to add (with the caller's own vectors), and the records
    refused already, each kept with its position so that the report lists rejections in file order."""

    items: list[Item]
    vectors: dict[str, Any]
    position: dict[str, tuple[int, str]]
    rejected: list[tuple[int, Rejection]]
    size: int

    def finish(self, sub: AddReport, report: AddReport) -> None:
        """Into ``report``: what the add of :attr:`items` (``sub``) added, and every rejection of the chunk
        (the reader's and the add's, named by catalog line) in file order."""
        report.added.extend(sub.added)
        rejected = list(self.rejected)
        for rej in sub.rejected:
            pos, where = self.position.get(rej.where, (self.size, rej.where))
            rejected.append((pos, Rejection(where, rej.reason)))
        report.rejected.extend(r for _, r in sorted(rejected, key=lambda pair: pair[0]))


def sort_chunk(chunk: list[Record], seen: set[str]) -> SortedChunk:
    """The items of ``chunk`` to add, and its rejections: the reader's, and ids already in ``seen`` (this
    add's earlier records); the ids kept are added to ``seen``."""
    rejected: list[tuple[int, Rejection]] = []
    position: dict[str, tuple[int, str]] = {}
    items, vectors = [], {}
    for pos, record in enumerate(chunk):
        if isinstance(record, Rejection):
            rejected.append((pos, record))
        elif record.item.id in seen:
            err = ValidationError(
                "id", "duplicate id: it appears earlier in this add", "give each item its own id", item=record.item.id
            )
            rejected.append((pos, Rejection(record.where, str(err))))
        else:
            seen.add(record.item.id)
            position[record.item.id] = (pos, record.where)
            items.append(record.item)
            if record.vectors is not None:
                vectors[record.item.id] = record.vectors
    return SortedChunk(items, vectors, position, rejected, len(chunk))


def replace_documents(engine: Engine, items: list[Item]) -> None:
    """A document added again: its old pages go first (it may have fewer now), then the new ones come."""
    replaced = [item.id for item in items if item.parent is None and SPLITTER_ATTRIBUTE in item.attributes]
    replaced = [item_id for item_id in replaced if item_id in engine]
    if replaced:
        engine.delete(replaced)
