"""The demo's sample catalog: real data that installs offline, and a query set judged from that data.

Three parts, each skipped with a message on stderr when what it needs is not installed:

- **photos**: the scikit-image, scikit-learn and matplotlib sample photos, with captions written
  for them here (the only hand-written text in the catalog);
- **clip-art**: Debian ``openclipart-png`` images (``/usr/share/openclipart/png/<category>/...``),
  titled by their file name, with their category and folder as attributes; two in three are
  image+text products (title + image), the others image-only items;
- **words**: Debian ``wordnet-base`` synsets as text items, the most used senses first (by the
  sense-tagged counts in ``cntlist.rev``): first lemma as title, gloss and examples as text.

The query set (``queries.jsonl``, the ``xmodal eval`` format plus a ``kind`` key) is derived from
the data, never judged by hand: clip-art folder names → the images in that folder, WordNet
synonyms → the synsets holding them, the photos' names → the photo, and images as queries (a
flipped crop of each photo → that photo, a clip-art file left out of the catalog → its folder).

Everything is deterministic: ids come from file paths and WordNet offsets, and sampling orders by a
hash of the id, so a bigger ``size`` is a superset of a smaller one and every run gives the same files.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from .errors import MissingDependency

VERSION = 1
DEFAULT_SIZE = 1500  # clip-art images; WordNet entries are twice as many
CLIPART_ROOT = Path("/usr/share/openclipart/png")
WORDNET_ROOT = Path("/usr/share/wordnet")
THUMB = 256  # clip-art is stored at most this many pixels a side (the image encoders use 224)
PHOTO_SIDE = 512
MAX_SOURCE_PIXELS = 40_000_000  # a few clip-art files are 16000-pixel posters: skipped, not decoded
MIN_SOURCE_SIDE = 32
NOT_A_TOPIC = re.compile(
    r"^(\d.*|.*-theme|duplicates|examples|icons|actions?|apps|applications|stock|generic|"
    r"mimetypes|filesystems|emblems|devices?|white|simple|bordered|ornamental|cardbacks)$"
)
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body noun.cognition "
    "noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive noun.object "
    "noun.person noun.phenomenon noun.plant noun.possession noun.process noun.quantity noun.relation noun.shape "
    "noun.state noun.substance noun.time verb.body verb.change verb.cognition verb.communication verb.competition "
    "verb.consumption verb.contact verb.creation verb.emotion verb.motion verb.perception verb.possession "
    "verb.social verb.stative verb.weather adj.ppl"
).split()
_ADJ_MARKER = re.compile(r"\(\w+\)$")  # adjective position markers: (a), (p), (ip)
POS = {"noun": ("n", "1"), "verb": ("v", "2"), "adj": ("a", "3"), "adv": ("r", "4")}


@dataclass(frozen=True, slots=True)
class Photo:
    """A sample photo and the caption written for it; ``query`` is its natural name."""

    name: str
    source: str
    title: str
    text: str
    category: str
    query: str


PHOTOS = (
    Photo(
        "coffee", "skimage", "Coffee cup", "A cup of coffee on a red saucer with a spoon beside it.", "food", "coffee"
    ),
    Photo(
        "chelsea",
        "skimage",
        "Cat",
        "Close-up of Chelsea, a tabby cat with green eyes and long white whiskers.",
        "animals",
        "cat",
    ),
    Photo(
        "astronaut",
        "skimage",
        "Astronaut Eileen Collins",
        "Portrait of NASA astronaut Eileen Collins in her "
        "orange space suit, smiling, with the American flag and a space shuttle model behind her.",
        "people",
        "astronaut",
    ),
    Photo(
        "camera",
        "skimage",
        "Cameraman",
        "Black-and-white photo of a man in a dark coat looking through a camera on a tripod in a park.",
        "people",
        "cameraman",
    ),
    Photo(
        "coins",
        "skimage",
        "Greek coins",
        "Black-and-white photo of two dozen ancient Greek coins laid out in rows on a dark background.",
        "objects",
        "coins",
    ),
    Photo(
        "horse",
        "skimage",
        "Horse silhouette",
        "Black silhouette of a standing horse on a white background.",
        "animals",
        "horse",
    ),
    Photo(
        "rocket",
        "skimage",
        "Rocket on the launch pad",
        "A Falcon 9 rocket standing on its launch pad at dusk, between lightning towers.",
        "transportation",
        "rocket",
    ),
    Photo(
        "moon", "skimage", "Lunar surface", "Grey close-up of the surface of the Moon with craters.", "science", "moon"
    ),
    Photo(
        "hubble_deep_field",
        "skimage",
        "Hubble deep field",
        "Thousands of distant galaxies, small coloured dots on black, seen by the Hubble Space Telescope.",
        "science",
        "galaxies",
    ),
    Photo(
        "retina",
        "skimage",
        "Human retina",
        "Fundus photograph of a human retina: an orange-red disc with the optic nerve head and blood vessels.",
        "science",
        "retina",
    ),
    Photo(
        "immunohistochemistry",
        "skimage",
        "Stained tissue under the microscope",
        "Immunohistochemistry slide: human tissue stained brown and blue, seen through a microscope.",
        "science",
        "microscope slide",
    ),
    Photo(
        "cell",
        "skimage",
        "Cell under the microscope",
        "Grey microscope image of a single round cell.",
        "science",
        "cell",
    ),
    Photo(
        "clock", "skimage", "Blurred clock", "Grey photo of a round wall clock, blurred by motion.", "objects", "clock"
    ),
    Photo(
        "motorcycle",
        "skimage",
        "Red motorcycle",
        "A red motorcycle parked in a garage, with shelves and boxes behind it.",
        "transportation",
        "motorcycle",
    ),
    Photo(
        "page",
        "skimage",
        "Scanned book page",
        "A scanned page of printed text about region-based image segmentation.",
        "documents",
        "page of text",
    ),
    Photo(
        "text",
        "skimage",
        "Handwritten equations",
        "Photo of handwritten mathematics on a sheet of paper, seen at an angle.",
        "documents",
        "handwriting",
    ),
    Photo("brick", "skimage", "Brick wall", "Grey texture of a wall of bricks.", "textures", "brick wall"),
    Photo("grass", "skimage", "Grass", "Grey close-up texture of blades of grass.", "textures", "grass"),
    Photo("gravel", "skimage", "Gravel", "Grey close-up texture of small stones.", "textures", "gravel"),
    Photo(
        "colorwheel",
        "skimage",
        "Colour wheel",
        "A disc of all hues, red, yellow, green, cyan, blue and magenta, fading to white at the centre, on black.",
        "shapes",
        "color wheel",
    ),
    Photo(
        "logo",
        "skimage",
        "scikit-image logo",
        "The scikit-image logo: a green and orange disc with a snake drawn in it.",
        "logos",
        "scikit-image logo",
    ),
    Photo(
        "china.jpg",
        "scikit-learn",
        "Chinese temple",
        "A Chinese temple tower with red pillars and green roofs above a lake, among trees.",
        "buildings",
        "pagoda",
    ),
    Photo(
        "flower.jpg",
        "scikit-learn",
        "Dahlia",
        "An orange pompon dahlia flower in close-up against dark green leaves.",
        "plants",
        "flower",
    ),
    Photo(
        "grace_hopper.jpg",
        "matplotlib",
        "Grace Hopper",
        "Official portrait of Rear Admiral Grace Hopper in navy uniform, with the American flag behind her.",
        "people",
        "Grace Hopper",
    ),
    Photo(
        "Minduka_Present_Blue_Pack.png",
        "matplotlib",
        "Blue gift box",
        "A blue present wrapped with a silver ribbon and bow.",
        "decorations",
        "gift",
    ),
)


@dataclass(slots=True)
class Catalog:
    """A built sample catalog folder and what went into it."""

    root: Path
    size: int
    counts: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.jsonl"

    @property
    def queries(self) -> Path:
        return self.root / "queries.jsonl"


Record = dict[str, Any]
Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _rank(key: str) -> str:
    """A stable pseudo-random order: sort by the hash of an id."""
    return hashlib.sha1(key.encode()).hexdigest()


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


# -- photos ---------------------------------------------------------------------------------------
def _load_photo(photo: Photo) -> Image.Image:
    """The photo from the package it ships in; :class:`MissingDependency` when that is not installed."""
    try:
        return _read_photo(photo)
    except ImportError as exc:
        raise MissingDependency(exc.name or photo.source, "samples") from exc


def _read_photo(photo: Photo) -> Image.Image:
    if photo.source == "skimage":
        import numpy as np
        import skimage.data

        if photo.name == "motorcycle":
            return _stereo_motorcycle(0)
        return Image.fromarray(np.asarray(getattr(skimage.data, photo.name)()))
    if photo.source == "scikit-learn":
        from sklearn.datasets import load_sample_image

        return Image.fromarray(load_sample_image(photo.name))
    import matplotlib.cbook

    path = matplotlib.cbook.get_sample_data(photo.name, asfileobj=False)
    with Image.open(str(path)) as image:
        image.load()
        return image.copy()


def _stereo_motorcycle(view: int) -> Image.Image:
    """One view (0: left, 1: right) of scikit-image's stereo pair."""
    import numpy as np
    import skimage.data

    fetch: Callable[[], Any] = skimage.data.stereo_motorcycle  # untyped in scikit-image
    pair = fetch()
    return Image.fromarray(np.asarray(pair[view]))


def _save(image: Image.Image, path: Path, side: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = _flatten(image)
    image.thumbnail((side, side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    image.save(path, format="PNG", compress_level=1)  # fast; the files are a cache


def _flatten(image: Image.Image) -> Image.Image:
    """RGB on white: transparent clip-art would otherwise turn black."""
    if image.mode in ("RGBA", "LA", "P", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


def _photos(root: Path, log: Log) -> Iterator[tuple[Record, list[Record]]]:
    """Each photo as a record, with its queries: its name (text) and a flipped crop of it (image)."""
    for photo in PHOTOS:
        try:
            image = _load_photo(photo)
        except MissingDependency as exc:
            log(f"samples: skipping the {photo.source} photo {photo.name!r}: {exc}")
            continue
        stem = Path(photo.name).stem.lower()
        item_id, rel = f"photo/{stem}", f"images/photo/{stem}.png"
        _save(image, root / rel, PHOTO_SIDE)
        attrs = {
            "source": photo.source,
            "kind": "photo",
            "category": photo.category,
            "grayscale": image.mode in ("L", "1", "I", "F"),
        }
        record = {"id": item_id, "title": photo.title, "text": photo.text, "image": rel, "attributes": attrs}
        crop = ImageOps.mirror(_flatten(image))
        w, h = crop.size
        crop = crop.crop((w // 10, h // 10, w - w // 10, h - h // 10))
        qrel = f"queries/photo/{stem}-flipped.png"
        _save(crop, root / qrel, PHOTO_SIDE)
        queries = [
            {"kind": "photo-name", "text": photo.query, "relevant": [item_id]},
            {"kind": "photo-image", "image": qrel, "relevant": [item_id]},
        ]
        if photo.name == "motorcycle":
            _save(_stereo_motorcycle(1), root / "queries/photo/motorcycle-right.png", PHOTO_SIDE)
            queries.append(
                {"kind": "photo-image", "image": "queries/photo/motorcycle-right.png", "relevant": [item_id]}
            )
        yield record, queries


# -- clip-art -------------------------------------------------------------------------------------
def clipart_files(base: Path | None = None) -> list[Path]:
    """Every usable clip-art file, in the sampling order: round-robin over the top-level categories,
    each category in hash order, so the first ``n`` of the list are spread over all categories."""
    base = base or CLIPART_ROOT
    per_category: dict[str, list[tuple[str, Path]]] = defaultdict(list)
    for path in base.rglob("*.png"):
        rel = _rel(path, base)
        if rel.startswith("unsorted/duplicates/"):
            continue
        per_category[rel.split("/")[0]].append((_rank(rel), path))
    queues = [sorted(files) for _, files in sorted(per_category.items())]
    order: list[Path] = []
    for i in range(max((len(q) for q in queues), default=0)):
        order.extend(q[i][1] for q in queues if i < len(q))
    return order


def _usable(path: Path) -> Image.Image | None:
    try:
        with warnings.catch_warnings():  # the size is checked below, before any pixel is decoded
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        w, h = image.size
        if w * h > MAX_SOURCE_PIXELS or min(w, h) < MIN_SOURCE_SIDE:
            return None
        image.load()
        return image
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def clean_name(stem: str) -> str:
    """``apple_bitten_dan_gerhard_01`` → ``apple bitten dan gerhard`` (file names carry the author)."""
    words = re.sub(r"[_\-.]+", " ", stem).split()
    while words and re.fullmatch(r"\d+r?|r", words[-1]):
        words.pop()
    return " ".join(words) or stem


def _clipart_record(path: Path, base: Path, rel_image: str) -> Record:
    rel = _rel(path, base)
    folder = rel.rsplit("/", 1)[0] if "/" in rel else ""
    item_id = "clipart/" + rel.removesuffix(".png")
    product = int(_rank(item_id)[:2], 16) % 3 != 0
    attrs = {
        "source": "openclipart",
        "kind": "clipart",
        "category": rel.split("/")[0],
        "folder": folder,
        "product": product,
    }
    record: Record = {"id": item_id, "image": rel_image, "attributes": attrs}
    if product:
        record["title"] = clean_name(path.stem)
        record["text"] = "clip art: " + " / ".join(part.replace("_", " ") for part in folder.split("/"))
    return record


def _clipart(root: Path, size: int, log: Log, base: Path) -> tuple[list[Record], list[Path]]:
    """The first ``size`` usable images in sampling order, and the files left out (for query images)."""
    if not base.is_dir():
        log(
            f"samples: skipping clip-art: {base} not found (Debian package openclipart-png; "
            "apt-get install openclipart-png)"
        )
        return [], []
    records: list[Record] = []
    order = clipart_files(base)
    for n, path in enumerate(order):
        if len(records) >= size:
            return records, order[n:]
        image = _usable(path)
        if image is None:
            continue
        rel_image = "images/clipart/" + _rel(path, base)
        _save(image, root / rel_image, THUMB)
        records.append(_clipart_record(path, base, rel_image))
    return records, []


def _folder_topics(records: list[Record]) -> dict[str, set[str]]:
    """Folder and category names → the clip-art ids under them (names that are not topics dropped)."""
    topics: dict[str, set[str]] = defaultdict(set)
    for record in records:
        if record["attributes"]["kind"] != "clipart":
            continue
        for part in str(record["attributes"]["folder"]).split("/"):
            if part and not NOT_A_TOPIC.match(part.lower()) and part != "unsorted":
                topics[part.replace("_", " ").lower()].add(record["id"])
    return topics


def _clipart_queries(root: Path, records: list[Record], left_out: list[Path], base: Path) -> list[Record]:
    topics = _folder_topics(records)
    queries: list[Record] = [
        {"kind": "clipart-topic", "text": name, "relevant": sorted(ids)}
        for name, ids in sorted(topics.items())
        if len(ids) >= 2
    ]
    clipart = sorted((r for r in records if r["attributes"]["kind"] == "clipart"), key=lambda r: _rank(r["id"]))
    queries += [{"kind": "clipart-image", "image": r["image"], "relevant": [r["id"]]} for r in clipart[:20]]
    by_folder: dict[str, list[str]] = defaultdict(list)
    for r in clipart:
        by_folder[str(r["attributes"]["folder"])].append(r["id"])
    used: dict[str, int] = defaultdict(int)
    for path in sorted(left_out, key=lambda p: _rank(_rel(p, base))):
        folder = _rel(path.parent, base)
        name = path.parent.name.replace("_", " ").lower()
        if len(by_folder.get(folder, ())) < 2 or NOT_A_TOPIC.match(name) or used[folder] >= 2:
            continue
        if sum(used.values()) >= 30:
            break
        image = _usable(path)
        if image is None:
            continue
        qrel = "queries/clipart/" + _rel(path, base)
        _save(image, root / qrel, THUMB)
        relevant = sorted(by_folder[folder])
        queries.append({"kind": "clipart-similar", "image": qrel, "relevant": relevant})
        if sum(used.values()) % 3 == 0:
            queries.append({"kind": "text+image", "text": name, "image": qrel, "relevant": relevant})
        used[folder] += 1
    return queries


# -- WordNet --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Synset:
    """One WordNet synset as read from a ``data.<pos>`` file."""

    pos: str
    offset: str
    lexname: str
    lemmas: tuple[str, ...]
    gloss: str
    keys: tuple[str, ...]  # sense keys without the satellite head, to join with cntlist.rev


def read_synsets(base: Path | None = None) -> Iterator[Synset]:
    """Parse the WordNet database files (the WNDB format, wndb(5WN)); ``base`` defaults to Debian's."""
    base = base or WORDNET_ROOT
    for pos, (_, ss_num) in POS.items():
        with open(base / f"data.{pos}", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("  "):
                    continue  # the licence header
                head, _, gloss = line.partition(" | ")
                offset, lexfile, ss_type, hex_count, rest = head.split(" ", 4)
                count = int(hex_count, 16)
                fields = rest.split(" ", 2 * count)  # words and lex ids; the pointers stay unsplit
                lemmas = tuple(_ADJ_MARKER.sub("", w) if w.endswith(")") else w for w in fields[: 2 * count : 2])
                prefix = f"%{'5' if ss_type == 's' else ss_num}:{lexfile}:"
                lex_ids = fields[1 : 2 * count : 2]
                keys = tuple(f"{w.lower()}{prefix}{int(i, 16):02d}" for w, i in zip(lemmas, lex_ids, strict=True))
                yield Synset(pos, offset, LEXNAMES[int(lexfile)], lemmas, gloss.strip(), keys)


def _sense_counts(base: Path) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    with open(base / "cntlist.rev", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            key, _, count = line.split()
            counts[":".join(key.split(":")[:3])] += int(count)
    return counts


def _wordnet(size: int, log: Log, base: Path) -> tuple[list[Record], list[Record]]:
    """The ``size`` most used synsets (by sense-tagged count, then hash) and their synonym queries."""
    if not (base / "data.noun").is_file():
        log(
            f"samples: skipping WordNet: {base}/data.noun not found (Debian package wordnet-base; "
            "apt-get install wordnet-base)"
        )
        return [], []
    counts = _sense_counts(base) if (base / "cntlist.rev").is_file() else {}
    synsets = list(read_synsets(base))
    synsets.sort(key=lambda s: (-sum(counts.get(k, 0) for k in s.keys), _rank(s.pos + s.offset)))
    chosen = synsets[:size]
    records = [_word_record(s) for s in chosen]
    holders: dict[str, set[str]] = defaultdict(set)
    for s, r in zip(chosen, records, strict=True):
        for lemma in s.lemmas:
            holders[lemma.replace("_", " ").lower()].add(r["id"])
    queries: list[Record] = []
    seen: set[str] = set()
    for s in sorted(chosen, key=lambda s: _rank(s.offset + s.pos)):
        synonyms = [w.replace("_", " ").lower() for w in s.lemmas[1:]]
        first = s.lemmas[0].replace("_", " ").lower()
        fresh = [w for w in synonyms if w != first and w not in seen]
        if fresh and len(queries) < max(size // 10, 5):
            seen.add(fresh[0])
            queries.append({"kind": "wordnet-synonym", "text": fresh[0], "relevant": sorted(holders[fresh[0]])})
    return records, queries


def _word_record(s: Synset) -> Record:
    return {
        "id": f"wordnet/{POS[s.pos][0]}{s.offset}",
        "title": s.lemmas[0].replace("_", " "),
        "text": s.gloss,
        "attributes": {"source": "wordnet", "kind": "word", "pos": s.pos, "lexname": s.lexname},
    }


# -- the folder -----------------------------------------------------------------------------------
def _write_jsonl(path: Path, rows: Iterable[Record]) -> int:
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")
            n += 1
    return n


def _parts_available() -> dict[str, bool]:
    return {"clipart": CLIPART_ROOT.is_dir(), "wordnet": (WORDNET_ROOT / "data.noun").is_file()}


def _manifest(root: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def build_catalog(root: str | Path, size: int = DEFAULT_SIZE, *, force: bool = False, log: Log = _stderr) -> Catalog:
    """Build the sample catalog in ``root`` (or reuse it when it was built with the same settings).

    ``size`` is the number of clip-art images; the WordNet entries are ``2 * size``; all photos are
    always included. Writes ``catalog.jsonl``, ``queries.jsonl``, the images and ``manifest.json``.
    """
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    root = Path(root)
    builder = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]  # a code change rebuilds the cache
    wanted = {"version": VERSION, "size": size, "parts": _parts_available(), "builder": builder}
    old = _manifest(root)
    if old is not None and not force and all(old.get(k) == v for k, v in wanted.items()):
        return Catalog(root, size, dict(old["counts"]), list(old["skipped"]))
    if root.exists() and any(root.iterdir()):
        if old is None:
            raise FileExistsError(f"{root} exists and is not a sample catalog folder; choose another folder")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    skipped: list[str] = []

    def note(message: str) -> None:
        skipped.append(message)
        log(message)

    records, queries = _collect(root, size, note)
    counts = {
        "items": _write_jsonl(root / "catalog.jsonl", records),
        "queries": _write_jsonl(root / "queries.jsonl", queries),
    }
    for r in records:
        kind = str(r["attributes"]["kind"])
        counts[kind] = counts.get(kind, 0) + 1
    (root / "manifest.json").write_text(json.dumps({**wanted, "counts": counts, "skipped": skipped}, indent=1))
    return Catalog(root, size, counts, skipped)


def _collect(root: Path, size: int, log: Log) -> tuple[list[Record], list[Record]]:
    records: list[Record] = []
    queries: list[Record] = []
    for record, photo_queries in _photos(root, log):
        records.append(record)
        queries.extend(photo_queries)
    clipart, left_out = _clipart(root, size, log, CLIPART_ROOT)
    records += clipart
    queries += _clipart_queries(root, clipart, left_out, CLIPART_ROOT)
    words, word_queries = _wordnet(2 * size, log, WORDNET_ROOT)
    records += words
    queries += word_queries
    return records, queries


def read_catalog(path: str | Path) -> list[Record]:
    """The records of a ``catalog.jsonl`` (or ``queries.jsonl``) as dictionaries."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def main(argv: list[str] | None = None) -> int:
    """``python -m xmodal.samples [--size N] [--force] FOLDER``: build the sample catalog."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m xmodal.samples", description=main.__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="clip-art images (WordNet: twice as many)")
    parser.add_argument("--force", action="store_true", help="rebuild even when the folder is up to date")
    args = parser.parse_args(argv)
    catalog = build_catalog(args.folder, args.size, force=args.force)
    print(json.dumps({"root": str(catalog.root), "counts": catalog.counts, "skipped": catalog.skipped}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
