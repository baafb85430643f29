"""Video end to end: videos assembled with ffmpeg from real photos and clip-art, each shot narrated by
espeak-ng, added with ``xmodal``'s video splitter (shot detection, key frames, Whisper, Chromaprint, encoders,
store), then checked for shot boundaries and searched by text.

Run:  python benchmarks/bench_video.py [--videos 10] [--shots 12] [--seed 0]

Data: pictures are real photographs (scikit-image's and scikit-learn's sample photos) and clip-art (Debian
``openclipart-png``, drawn on white), letterboxed to 640x360. Each video holds ``--shots`` shots; a shot shows
one picture (never the one before it) while one WordNet noun gloss (Debian ``wordnet-base``, the sentences of
``bench_speech.py``) is spoken by espeak-ng in one of six voices and speeds, then 0.8 s of silence; shots last
at least 2.5 s. The true cuts are the shot joins (the video's start and end are not cuts). H.264 + AAC in MP4,
25 frames/s.

Measured:
- shot boundaries: every true cut is found when a detected shot starts within 0.5 s of it (target: ≥ 95% of
  the cuts), and the detected starts that lie near no true cut (spurious cuts) are counted;
- search: for every shot, a ``keywords`` query (4 content words of its narration, shuffled) and a ``subject``
  query (what the picture shows: the photo's caption or the clip-art's file name) with ``k=3``; a query finds
  its shot when a hit is a segment of the right video that overlaps the true shot by at least half of the
  longer of the two (target: ``keywords`` top-3 ≥ 0.80; ``subject`` is reported: it tests the image vectors
  of key frames);
- ``video_minutes_per_minute``: ``split_file`` + ``Engine.add`` on the offline encoder, timed.

The shot detector's settings (:mod:`xmodal.av.shots`) were chosen on three videos of ``--seed 0``; measure
with another seed. Prints one JSON object. The load average is printed beside the timings (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from xmodal import Engine, Query
from xmodal.encoders import create_encoder
from xmodal.ingest.prepare import Rejection
from xmodal.splitters import split_file

sys.path.insert(0, str(Path(__file__).parent))
from bench_speech import STOP, VOICES, glosses  # noqa: E402

CLIPART = Path("/usr/share/openclipart/png")
WIDTH, HEIGHT, FPS = 640, 360, 25
TAIL = 0.8  # silence after each narration
MIN_SHOT = 2.5
TOLERANCE = 0.5  # a cut is found when a detected shot starts this close to it
PHOTOS = {  # scikit-image's and scikit-learn's sample photographs, with what they show
    "astronaut": "astronaut portrait in a space suit",
    "coffee": "a cup of coffee on a saucer",
    "chelsea": "a tabby cat",
    "rocket": "a rocket on the launch pad",
    "hubble_deep_field": "galaxies in deep space",
    "camera": "a man with a camera on a tripod",
    "coins": "old coins",
    "horse": "a horse silhouette",
    "moon": "the surface of the moon",
    "immunohistochemistry": "stained tissue under a microscope",
    "retina": "the retina of an eye",
    "grass": "grass",
    "brick": "a brick wall",
    "gravel": "gravel",
    "china.jpg": "a temple in china",
    "flower.jpg": "a flower",
}


@dataclass(frozen=True)
class Picture:
    path: Path
    kind: str  # photo or clipart
    subject: str


@dataclass(frozen=True)
class Shot:
    start: float
    end: float
    picture: Picture
    narration: str


@dataclass(frozen=True)
class Video:
    path: Path
    shots: list[Shot]

    @property
    def cuts(self) -> list[float]:
        return [shot.start for shot in self.shots[1:]]

    @property
    def seconds(self) -> float:
        return self.shots[-1].end


def letterbox(image: Image.Image) -> Image.Image:
    """``image`` on white (transparency flattened), scaled to fit 640x360 and centred."""
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image)
    image = image.convert("RGB")
    image.thumbnail((WIDTH, HEIGHT), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (WIDTH, HEIGHT), (255, 255, 255))
    canvas.paste(image, ((WIDTH - image.width) // 2, (HEIGHT - image.height) // 2))
    return canvas


def photo(name: str) -> Image.Image | None:
    try:
        if name.endswith(".jpg"):
            from sklearn.datasets import load_sample_image

            return Image.fromarray(load_sample_image(name))
        import skimage.data

        array = np.asarray(getattr(skimage.data, name)())
    except Exception:  # a photo that needs a download (or a package not installed) is left out
        return None
    if array.dtype != np.uint8:
        values = array.astype(np.float64)
        array = (255 * (values - values.min()) / max(float(values.max() - values.min()), 1e-9)).astype(np.uint8)
    return Image.fromarray(array)


def pictures(folder: Path, clipart: int, seed: int) -> list[Picture]:
    """The photos that load offline and ``clipart`` clip-art drawings of a seeded sample, as 640x360 PNGs."""
    out = []
    for name, subject in PHOTOS.items():
        image = photo(name)
        if image is not None:
            path = folder / f"photo-{name.split('.')[0]}.png"
            letterbox(image).save(path)
            out.append(Picture(path, "photo", subject))
    files = sorted(p for p in CLIPART.rglob("*.png") if "unsorted" not in p.parts and "special" not in p.parts)
    for i, source in enumerate(random.Random(seed).sample(files, min(clipart, len(files)))):
        with Image.open(source) as image:
            if image.width * image.height > 4_000_000:
                continue
            drawn = letterbox(image)
        path = folder / f"clipart-{i}.png"
        drawn.save(path)
        out.append(Picture(path, "clipart", source.stem.replace("_", " ").replace("-", " ")))
    return out


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def make_video(
    folder: Path, index: int, shots: int, pool: list[Picture], texts: list[str], rng: random.Random
) -> Video:
    """One MP4 of ``shots`` narrated shots (a picture never follows itself)."""
    cmd = ["ffmpeg", "-v", "error", "-y"]
    said, chosen, durations = [], [], []
    for s in range(shots):
        voice, speed = VOICES[(index * shots + s) % len(VOICES)]
        wav = folder / f"v{index}-s{s}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), texts[s]], check=True, timeout=60)
        said.append(wav)
        durations.append(round(max(MIN_SHOT, wav_seconds(wav) + TAIL) * FPS) / FPS)  # whole frames
        picture = rng.choice([p for p in pool if not chosen or p is not chosen[-1]])
        chosen.append(picture)
    for picture, seconds in zip(chosen, durations, strict=True):
        cmd += ["-loop", "1", "-framerate", str(FPS), "-t", f"{seconds:.3f}", "-i", str(picture.path)]
    for wav in said:
        cmd += ["-i", str(wav)]
    n = shots
    graph = "".join(f"[{i}]scale={WIDTH}:{HEIGHT},setsar=1,fps={FPS},format=yuv420p[v{i}];" for i in range(n))
    graph += "".join(
        f"[{n + i}]aresample=22050,apad=whole_dur={durations[i]:.3f},atrim=0:{durations[i]:.3f}[a{i}];"
        for i in range(n)
    )
    graph += "".join(f"[v{i}]" for i in range(n)) + f"concat=n={n}:v=1:a=0[v];"
    graph += "".join(f"[a{i}]" for i in range(n)) + f"concat=n={n}:v=0:a=1[a]"
    out = folder / f"video{index}.mp4"
    cmd += ["-filter_complex", graph, "-map", "[v]", "-map", "[a]", "-c:v", "libx264", "-preset", "veryfast"]
    cmd += ["-r", str(FPS), "-c:a", "aac", "-b:a", "96k", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    for wav in said:
        wav.unlink()
    starts = np.concatenate([[0.0], np.cumsum(durations)])
    return Video(
        out,
        [Shot(float(starts[i]), float(starts[i + 1]), chosen[i], texts[i]) for i in range(shots)],
    )


def index_all(engine: Engine, videos: list[Video]) -> tuple[dict[str, Any], dict[str, list[tuple[float, float]]]]:
    """Add every video through the splitter; the detected shots of each."""
    started = time.perf_counter()
    rejected: list[str] = []
    detected: dict[str, list[tuple[float, float]]] = {}
    for video in videos:
        items = []
        for found in split_file(video.path, id=video.path.name):
            if isinstance(found, Rejection):
                rejected.append(f"{found.where}: {found.reason}")
            else:
                items.append(found)
        report = engine.add(items)
        rejected += [f"{r.where}: {r.reason}" for r in report.rejected]
        detected[video.path.name] = sorted(
            (i.span.start, i.span.end)
            for i in items
            if i.parent is not None and i.span is not None and i.span.start is not None and i.span.end is not None
        )
    spent = time.perf_counter() - started
    minutes = sum(v.seconds for v in videos) / 60.0
    return {
        "video_minutes": round(minutes, 2),
        "segments": sum(len(d) for d in detected.values()),
        "rejected": rejected[:5],
        "add_seconds": round(spent, 1),
        "video_minutes_per_minute": round(minutes / (spent / 60.0), 2),
    }, detected


def boundaries(videos: list[Video], detected: dict[str, list[tuple[float, float]]]) -> dict[str, Any]:
    found, cuts, spurious, errors = 0, 0, 0, []
    for video in videos:
        starts = [a for a, _ in detected[video.path.name] if a > 0]
        for cut in video.cuts:
            cuts += 1
            near = [abs(a - cut) for a in starts if abs(a - cut) <= TOLERANCE]
            if near:
                found += 1
                errors.append(min(near))
        spurious += sum(1 for a in starts if all(abs(a - c) > TOLERANCE for c in video.cuts))
    return {
        "true_cuts": cuts,
        "cuts_found_within_0_5s": round(found / cuts, 4),
        "spurious_cuts": spurious,
        "median_cut_error_seconds": round(float(np.median(errors)), 3) if errors else None,
        "target_cuts_met": found / cuts >= 0.95,
    }


def covers(span: tuple[float, float], shot: Shot) -> bool:
    """Whether a hit's span is the shot: they overlap by at least half of the longer of the two (a segment
    that merged several shots, or a sliver of one, does not count)."""
    overlap = min(span[1], shot.end) - max(span[0], shot.start)
    return overlap >= 0.5 * max(span[1] - span[0], shot.end - shot.start)


def rank_of(engine: Engine, query: str, video: Video, shot: Shot, k: int = 3) -> int | None:
    for rank, item in enumerate(engine.search(Query(text=query, k=k)).items, 1):
        span = item.span
        if item.parent != video.path.name or span is None or span.start is None or span.end is None:
            continue
        if covers((span.start, span.end), shot):
            return rank
    return None


def keywords(text: str, rng: random.Random) -> str:
    content = [w for w in text.replace(",", "").split() if w.lower() not in STOP]
    return " ".join(rng.sample(content, min(4, len(content))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=10)
    parser.add_argument("--shots", type=int, default=12, help="shots per video")
    parser.add_argument("--clipart", type=int, default=40, help="clip-art drawings in the picture pool")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    result: dict[str, Any] = {"videos": args.videos, "shots_per_video": args.shots, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        pool = pictures(folder, args.clipart, args.seed)
        result["pictures"] = {
            "photo": sum(p.kind == "photo" for p in pool),
            "clipart": sum(p.kind == "clipart" for p in pool),
        }
        texts = [gloss for _, gloss in glosses(args.seed)]
        videos = [
            make_video(folder, v, args.shots, pool, texts[v * args.shots : (v + 1) * args.shots], rng)
            for v in range(args.videos)
        ]
        result["assemble_seconds"] = round(time.perf_counter() - started, 1)
        with Engine.open(folder / "idx", encoder=create_encoder("offline")) as engine:
            engine.add([])  # opens the store before timing
            added, detected = index_all(engine, videos)
            result.update(added)
            result["load_average_after_add"] = round(os.getloadavg()[0], 2)
            result.update(boundaries(videos, detected))
            ranks: dict[str, list[int | None]] = {"keywords": [], "subject": []}
            by_kind: dict[str, list[int | None]] = {"photo": [], "clipart": []}
            for video in videos:
                for shot in video.shots:
                    ranks["keywords"].append(rank_of(engine, keywords(shot.narration, rng), video, shot))
                    hit = rank_of(engine, shot.picture.subject, video, shot)
                    ranks["subject"].append(hit)
                    by_kind[shot.picture.kind].append(hit)
    result["queries_per_kind"] = len(ranks["keywords"])
    for kind, found in ranks.items():
        result[f"{kind}_top3"] = round(sum(r is not None for r in found) / len(found), 3)
        result[f"{kind}_top1"] = round(sum(r == 1 for r in found) / len(found), 3)
    for kind, found in by_kind.items():
        if found:
            result[f"subject_top3_{kind}"] = round(sum(r is not None for r in found) / len(found), 3)
    result["target_keywords_top3_met"] = result["keywords_top3"] >= 0.8
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
