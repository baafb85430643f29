"""Speech search end to end: long recordings of real sentences spoken by espeak-ng, added with ``xmodal``'s
audio splitter (decode, fixed windows, Whisper tiny.en, Chromaprint, text encoder, store), then searched by text.

Run:  python benchmarks/bench_speech.py [--minutes 30] [--files 6] [--queries 200] [--seed 0]

Data: WordNet noun glosses (Debian ``wordnet-base``; the definition before any example, 8 to 24 words),
a seeded sample, each spoken by Debian ``espeak-ng`` with one of six voices and speeds (en-us 165 wpm,
en-gb 150, en-us+f3 180, en-gb-x-rp 140, en-gb-scotland 170, en-us+m3 195), 0.6 s apart, assembled into
``--files`` long recordings of ``--minutes`` in all, saved in turn as MP3 (64 kb/s), Ogg Vorbis, FLAC, M4A
(AAC) and WAV. The sentence times are known from the assembly.

Measured:
- ``wer``: word error rate of Whisper's transcript of every whole recording against the spoken sentences
  (lower-cased, punctuation dropped), and ``transcribe_rtf``: transcription seconds per second of sound
  (``x_real_time`` is its inverse);
- ``add``: ``xmodal.splitters.split_file`` + ``Engine.add`` of every recording on the offline encoder
  (MiniLM text vectors), timed, as audio minutes per minute;
- search: for ``--queries`` sampled sentences, three queries about it, each run with ``k=3``; a query finds
  its sentence when a hit is a segment of the right recording whose span holds at least half the sentence:
  ``phrase`` (6 consecutive words of the sentence), ``keywords`` (4 of its content words, shuffled) and
  ``lemma`` (the WordNet word the sentence defines, which is never spoken). Target: ``keywords`` top-3 ≥ 0.8.

Prints one JSON object. The load average is printed beside the timings (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xmodal import Engine, Query
from xmodal.av.decode import decode_audio
from xmodal.av.probe import probe
from xmodal.av.speech import Transcriber, word_error_rate
from xmodal.encoders import create_encoder
from xmodal.ingest.prepare import Rejection
from xmodal.splitters import split_file

WORDNET = Path("/usr/share/wordnet/data.noun")
VOICES = [
    ("en-us", 165),
    ("en-gb", 150),
    ("en-us+f3", 180),
    ("en-gb-x-rp", 140),
    ("en-gb-scotland", 170),
    ("en-us+m3", 195),
]
FORMATS = [
    (".mp3", ["-b:a", "64k"]),
    (".ogg", ["-c:a", "libvorbis"]),
    (".flac", []),
    (".m4a", ["-c:a", "aac"]),
    (".wav", []),
]
RATE = 22_050  # espeak-ng's output rate
GAP = 0.6
STOP = set(
    "a an the of or and to in on for by with from as at is are be that which this its their it into used any "
    "one who whose something someone especially usually often very".split()
)


@dataclass(frozen=True)
class Said:
    start: float
    end: float
    text: str
    lemma: str


@dataclass(frozen=True)
class Recording:
    path: Path
    said: list[Said]
    seconds: float


def glosses(seed: int) -> list[tuple[str, str]]:
    """(lemma, definition) of WordNet noun synsets, 8-24 plain words, in a seeded order."""
    out = []
    for line in WORDNET.read_text(encoding="latin-1").splitlines():
        if line.startswith("  ") or " | " not in line:
            continue
        head, gloss = line.split(" | ", 1)
        definition = gloss.split(";")[0].split('"')[0].strip()
        words = definition.split()
        if 8 <= len(words) <= 24 and re.fullmatch(r"[A-Za-z ,'\-]+", definition):
            out.append((head.split()[4].replace("_", " "), definition))
    random.Random(seed).shuffle(out)
    return out


def speak(text: str, voice: str, speed: int, folder: Path) -> np.ndarray:
    path = folder / "say.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True, timeout=60)
    with wave.open(str(path)) as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def assemble(folder: Path, minutes: float, files: int, seed: int) -> list[Recording]:
    """``files`` recordings of ``minutes`` in all; voices rotate per sentence."""
    pool = glosses(seed)
    per_file = minutes * 60.0 / files
    recordings, used = [], 0
    for f in range(files):
        pieces: list[np.ndarray] = []
        said: list[Said] = []
        t = 0.0
        while t < per_file:
            lemma, text = pool[used]
            voice, speed = VOICES[used % len(VOICES)]
            used += 1
            audio = speak(text, voice, speed, folder)
            said.append(Said(t, t + len(audio) / RATE, text, lemma))
            pieces += [audio, np.zeros(int(GAP * RATE), dtype="<i2")]
            t += len(audio) / RATE + GAP
        wav = folder / f"talk{f}.wav"
        with wave.open(str(wav), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(np.concatenate(pieces).tobytes())
        suffix, args = FORMATS[f % len(FORMATS)]
        path = folder / f"talk{f}{suffix}"
        if suffix != ".wav":
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), *args, str(path)], check=True, timeout=600)
            wav.unlink()
        recordings.append(Recording(path, said, t))
    return recordings


def transcribe_all(recordings: list[Recording]) -> dict[str, Any]:
    transcriber = Transcriber()
    transcriber.transcribe(np.zeros(16_000, np.float32))  # load the model outside the timing
    errors, words, seconds, spent = 0.0, 0, 0.0, 0.0
    for rec in recordings:
        samples = decode_audio(probe(rec.path))
        started = time.perf_counter()
        heard = transcriber.transcribe(samples)
        spent += time.perf_counter() - started
        reference = " ".join(s.text for s in rec.said)
        n = len(reference.split())
        errors += word_error_rate(reference, heard.text) * n
        words += n
        seconds += rec.seconds
    return {
        "wer": round(errors / words, 4),
        "transcribe_rtf": round(spent / seconds, 4),
        "x_real_time": round(seconds / spent, 1),
    }


def index_all(engine: Engine, recordings: list[Recording]) -> dict[str, Any]:
    started = time.perf_counter()
    segments, rejected = 0, []
    for rec in recordings:
        items = []
        for found in split_file(rec.path, id=rec.path.name):
            if isinstance(found, Rejection):
                rejected.append(f"{found.where}: {found.reason}")
            else:
                items.append(found)
        report = engine.add(items)
        segments += sum(1 for i in items if i.parent is not None)
        rejected += [f"{r.where}: {r.reason}" for r in report.rejected]
    spent = time.perf_counter() - started
    minutes = sum(r.seconds for r in recordings) / 60.0
    return {
        "audio_minutes": round(minutes, 2),
        "segments": segments,
        "rejected": rejected[:5],
        "add_seconds": round(spent, 1),
        "audio_minutes_per_minute": round(minutes / (spent / 60.0), 2),
    }


def queries(recordings: list[Recording], n: int, seed: int) -> list[tuple[str, dict[str, str]]]:
    rng = random.Random(seed)
    pool = [(rec, s) for rec in recordings for s in rec.said]
    picked = rng.sample(pool, min(n, len(pool)))
    out = []
    for rec, said in picked:
        words = said.text.replace(",", "").split()
        at = rng.randrange(0, max(1, len(words) - 6))
        content = [w for w in words if w.lower() not in STOP]
        keywords = rng.sample(content, min(4, len(content)))
        out.append(
            (
                f"{rec.path.name}|{said.start}|{said.end}",
                {
                    "phrase": " ".join(words[at : at + 6]),
                    "keywords": " ".join(keywords),
                    "lemma": said.lemma,
                },
            )
        )
    return out


def found(engine: Engine, query: str, target: str, k: int = 3) -> int | None:
    """The rank (1-based) of the first hit that holds at least half the target sentence, or None."""
    name, start, end = target.split("|")
    a, b = float(start), float(end)
    result = engine.search(Query(text=query, k=k))
    for rank, item in enumerate(result.items, 1):
        span = item.span
        if item.parent != name or span is None or span.start is None or span.end is None:
            continue
        if min(b, span.end) - max(a, span.start) >= 0.5 * (b - a):
            return rank
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--files", type=int, default=6)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-wer", action="store_true", help="skip the separate whole-file transcription pass")
    args = parser.parse_args()
    result: dict[str, Any] = {"minutes": args.minutes, "files": args.files, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        recordings = assemble(folder, args.minutes, args.files, args.seed)
        result["sentences"] = sum(len(r.said) for r in recordings)
        result["speech_minutes"] = round(sum(r.seconds for r in recordings) / 60.0, 2)
        result["assemble_seconds"] = round(time.perf_counter() - started, 1)
        if not args.skip_wer:
            result.update(transcribe_all(recordings))
            result["load_average_after_wer"] = os.getloadavg()[0]
        encoder = create_encoder("offline")
        with Engine.open(folder / "idx", encoder=encoder) as engine:
            engine.add([])  # nothing: opens the store before timing
            result.update(index_all(engine, recordings))
            result["load_average_after_add"] = os.getloadavg()[0]
            kinds: dict[str, list[int | None]] = {"phrase": [], "keywords": [], "lemma": []}
            for target, by_kind in queries(recordings, args.queries, args.seed):
                for kind, text in by_kind.items():
                    kinds[kind].append(found(engine, text, target))
        result["queries"] = len(kinds["phrase"])
        for kind, ranks in kinds.items():
            result[f"{kind}_top3"] = round(sum(r is not None for r in ranks) / len(ranks), 3)
            result[f"{kind}_top1"] = round(sum(r == 1 for r in ranks) / len(ranks), 3)
    result["target_keywords_top3_met"] = result["keywords_top3"] >= 0.8
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
