"""The demo's documents, audio and video, made from real data that installs offline: a three-page PDF of
WordNet glosses typeset with reportlab, a narration of three glosses spoken by espeak-ng (MP3 by ffmpeg),
and a video of three clip-art drawings (Debian ``openclipart-png``), each shown while its WordNet gloss is
spoken. They are added through the splitters (pages; 8 s windows of speech; shots), so a text query finds
a page, a time in the narration or a shot. A part whose tool or package is missing is skipped with a note.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import textwrap
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .engine import Engine
from .ingest.prepare import Rejection
from .records import Item
from .samples import CLIPART_ROOT, WORDNET_ROOT, read_synsets
from .splitters import SplitOptions, split_file

VERSION = 1  #: bump when the files change (the demo index is rebuilt)
PAGES = {  # page heading -> the nouns whose glosses it holds
    "Animals of the sea": ("whale", "dolphin", "octopus", "jellyfish"),
    "Weather": ("thunderstorm", "rainbow", "hurricane", "snow"),
    "Musical instruments": ("guitar", "violin", "drum", "piano"),
}
SPOKEN = ("volcano", "glacier", "desert")
SHOTS = {  # clip-art drawing -> the noun whose gloss is spoken over it
    "animals/bison_leif_lodahl_01.png": "bison",
    "recreation/holiday/sportcar_sergio_luiz_ara_01.png": "sports car",
    "recreation/holiday/christmas/christmas_tree_01.png": "Christmas tree",
}
EXAMPLES = (
    ("document page", "a violent storm with thunder and lightning"),
    ("time in a narration", "a mountain with a crater that lets out lava"),
    ("video shot", "a fast car with two seats"),
)


@dataclass(frozen=True, slots=True)
class Made:
    files: list[Path]
    notes: list[str]


def glosses(words: set[str]) -> dict[str, str]:
    """The first noun gloss (before any example sentence) of each of ``words``."""
    out: dict[str, str] = {}
    for synset in read_synsets(WORDNET_ROOT):
        if synset.pos != "noun":
            continue
        for lemma in synset.lemmas:
            name = lemma.replace("_", " ")
            if name in words and name not in out:
                out[name] = synset.gloss.split(";")[0].split('"')[0].strip()
    return out


def make(folder: Path) -> Made:
    """The demo's media files in ``folder`` (made once; reused when present)."""
    folder.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    if not (WORDNET_ROOT / "data.noun").is_file():
        return Made([], ["media: skipped, WordNet is not installed (apt-get install wordnet-base)"])
    words = {w for nouns in PAGES.values() for w in nouns} | set(SPOKEN) | set(SHOTS.values())
    said = glosses(words)
    files = [f for f in (_pdf(folder, said, notes), _narration(folder, said, notes), _video(folder, said, notes)) if f]
    return Made(files, notes)


def add(engine: Engine, files: list[Path]) -> tuple[int, list[Rejection]]:
    """Add the media files through their splitters: (items added, rejections)."""
    options = SplitOptions(extra={"window": 8.0, "overlap": 2.0})
    added, rejected = 0, []
    for path in files:
        items: list[Item] = []
        for found in split_file(path, id=path.name, options=options):
            if isinstance(found, Rejection):
                rejected.append(found)
            else:
                items.append(found)
        report = engine.add(items)
        added += len(report.added)
        rejected += report.rejected
    return added, rejected


def _tools(*names: str) -> list[str]:
    return [n for n in names if shutil.which(n) is None]


def _pdf(folder: Path, said: dict[str, str], notes: list[str]) -> Path | None:
    out = folder / "wordnet-glosses.pdf"
    if out.is_file():
        return out
    try:
        from reportlab.lib.pagesizes import A4
        from reportlab.pdfgen import canvas
    except ImportError:
        notes.append("media: no PDF, reportlab is not installed (pip install 'xmodal[samples]')")
        return None
    pdf = canvas.Canvas(str(out), pagesize=A4)
    pdf.setTitle("WordNet glosses")
    for heading, nouns in PAGES.items():
        pdf.setFont("Helvetica-Bold", 18)
        pdf.drawString(72, 770, heading)
        pdf.setFont("Helvetica", 12)
        row = 0
        for noun in nouns:
            for line in textwrap.wrap(f"{noun}: {said.get(noun, '')}", 80):
                pdf.drawString(72, 730 - row * 18, line)
                row += 1
            row += 1
        pdf.showPage()
    pdf.save()
    return out


def _narration(folder: Path, said: dict[str, str], notes: list[str]) -> Path | None:
    out = folder / "narration.mp3"
    if out.is_file():
        return out
    missing = _tools("espeak-ng", "ffmpeg")
    if missing:
        notes.append(
            f"media: no narration, {' and '.join(missing)} not installed (apt-get install {' '.join(missing)})"
        )
        return None
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "say.wav"
        text = ". ".join(said[w] for w in SPOKEN if w in said)
        _run("espeak-ng", "-v", "en-us", "-s", "160", "-g", "12", "-w", str(wav), text)
        _run("ffmpeg", "-v", "error", "-y", "-i", str(wav), "-b:a", "64k", str(out))
    return out


def _video(folder: Path, said: dict[str, str], notes: list[str]) -> Path | None:
    out = folder / "clipart-show.mp4"
    if out.is_file():
        return out
    missing = _tools("espeak-ng", "ffmpeg")
    if missing:
        notes.append(f"media: no video, {' and '.join(missing)} not installed (apt-get install {' '.join(missing)})")
        return None
    drawings = [(CLIPART_ROOT / rel, noun) for rel, noun in SHOTS.items() if (CLIPART_ROOT / rel).is_file()]
    if len(drawings) < 2:
        notes.append("media: no video, the clip-art is not installed (apt-get install openclipart-png)")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["ffmpeg", "-v", "error", "-y"]
        spoken = []
        for i, (drawing, noun) in enumerate(drawings):
            wav = Path(tmp) / f"say{i}.wav"
            _run("espeak-ng", "-v", "en-gb", "-s", "165", "-w", str(wav), f"{noun}. {said.get(noun, noun)}")
            spoken.append((wav, _seconds(wav) + 0.6))
            cmd += ["-loop", "1", "-framerate", "25", "-t", f"{spoken[-1][1]:.2f}", "-i", str(drawing)]
        cmd += [arg for wav, _ in spoken for arg in ("-i", str(wav))]
        n = len(drawings)
        graph = "".join(
            f"[{i}]scale=480:360:force_original_aspect_ratio=decrease,pad=480:360:(ow-iw)/2:(oh-ih)/2:white,"
            f"setsar=1,format=yuv420p[v{i}];"
            for i in range(n)
        )
        graph += "".join(f"[{n + i}]aresample=22050,apad=whole_dur={spoken[i][1]:.2f}[a{i}];" for i in range(n))
        graph += "".join(f"[v{i}]" for i in range(n)) + f"concat=n={n}:v=1:a=0[v];"
        graph += "".join(f"[a{i}]" for i in range(n)) + f"concat=n={n}:v=0:a=1[a]"
        cmd += ["-filter_complex", graph, "-map", "[v]", "-map", "[a]", "-c:v", "libx264", "-preset", "veryfast"]
        _run(*cmd, "-c:a", "aac", str(out))
    return out


def _seconds(wav: Path) -> float:
    with wave.open(str(wav)) as w:
        return float(w.getnframes()) / float(w.getframerate())


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)


def segments_of(engine: Engine, text: str, k: int = 3) -> Iterator[tuple[float, Item]]:
    """The segment hits (pages, time ranges, shots) of a text query, best first."""
    from .records import Query

    result = engine.search(Query(text=text, k=k * 4))
    shown = 0
    for (_, score), item in zip(result.hits, result.items, strict=True):
        if item.parent is not None and shown < k:
            shown += 1
            yield score, item
