"""Audio→audio search ("sounds like this") through the ``audio`` encoder, next to Chromaprint fingerprints.

Run:  python benchmarks/bench_audio_similar.py [--clips 60] [--sounds 12] [--model resemblyzer|aisfx|both]
      [--seed 0]

Data: ``--clips`` speech clips (three consecutive WordNet noun glosses spoken by Debian ``espeak-ng`` in one of
six voices and speeds, about 10 to 25 s: ``bench_audio_dups.make_clip``) and ``--sounds`` non-speech sounds
made by ``sox`` (sine, square and triangle tones, sweeps, white/pink/brown noise, a tremolo tone; 4 s each).
Each original gets five altered copies made by ``bench_audio_dups``'s alterations: MP3 64 kb/s, Ogg Vorbis,
trimmed by 0.5 to 2 s at the start, ±6 dB, white noise at 20 dB SNR.

Each original is added to an index (``Engine``, encoder ``audio`` over ``hashing`` for the text side, an item
with the file as its ``audio`` medium); each copy is a query (``Query(media={"audio": copy},
target="audio")``). R@1: the copy's source is the first hit. The fingerprint path ranks the originals by
Chromaprint bit agreement (``xmodal.av.fingerprint.similarities``) with the copy: its R@1 on the same
queries is the peer. ``voice@1``: for each speech original, whether its nearest other original (by the audio
vector) was spoken by the same voice and speed (chance: about 1 in 6). Throughput: seconds of sound
embedded per second while adding (decode and model). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from xmodal.av.decode import decode_audio
from xmodal.av.fingerprint import fingerprint, similarities
from xmodal.av.probe import probe
from xmodal.engine import Engine
from xmodal.records import Item, Query

sys.path.insert(0, str(Path(__file__).parent))
from bench_audio_dups import ALTERATIONS, make_clip, read_wav  # noqa: E402
from bench_speech import VOICES  # noqa: E402

SOUNDS = [
    "sine 220",
    "sine 880",
    "square 330",
    "triangle 550",
    "sine 200-2000",
    "square 1000-300",
    "whitenoise",
    "pinknoise",
    "brownnoise",
    "sine 440 tremolo 6 60",
    "sine 660 synth sine amod 3",
    "triangle 150",
]


def make_sound(folder: Path, i: int) -> Path:
    path = folder / f"sound{i}.wav"
    spec = SOUNDS[i % len(SOUNDS)].split()
    effects = []
    if "tremolo" in spec:
        at = spec.index("tremolo")
        spec, effects = spec[:at], spec[at:]
    if "synth" in spec:  # a second synth stage modulating the first
        at = spec.index("synth")
        spec, effects = spec[:at], spec[at:]
    cmd = ["sox", "-n", "-r", "16000", "-b", "16", str(path), "synth", "4", *spec, *effects, "vol", "0.5"]
    subprocess.run(cmd, check=True, timeout=60)
    return path


def altered_file(clip: Path, kind: str, rng: random.Random, folder: Path) -> Path:
    """``clip`` altered by ``kind``, written as a file (a query is a file, as a user gives one)."""
    import wave

    out = folder / f"{clip.stem}-{kind}.wav"
    if kind in ("mp3_64k", "ogg"):
        coded = folder / (f"{clip.stem}.mp3" if kind == "mp3_64k" else f"{clip.stem}.ogg")
        codec = ["-b:a", "64k"] if kind == "mp3_64k" else ["-c:a", "libvorbis"]
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(clip), *codec, str(coded)], check=True, timeout=120)
        return coded
    samples, rate = read_wav(clip)
    if kind == "trim":
        samples = samples[int(rng.uniform(0.5, 2.0) * rate) :]
    elif kind == "gain":
        samples = np.clip(samples * 10 ** (rng.choice([-6, 6]) / 20), -1, 1)
    else:
        noise = np.random.default_rng(rng.randrange(1 << 30)).normal(size=len(samples)).astype(np.float32)
        scale = np.sqrt(np.mean(samples**2) / (np.mean(noise**2) * 10 ** (20 / 10)))
        samples = np.clip(samples + noise * scale, -1, 1)
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((samples * 32767).astype("<i2").tobytes())
    return out


def run(args: argparse.Namespace, model: str, originals: list[Path], queries: list[tuple[int, Path]]) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-similar-{model}-"))
    engine = Engine.open(folder / "index", encoder="audio", encoder_options={"base": "hashing", "model": model})
    try:
        items = [Item.create(f"o{i}", title=p.stem, media={"audio": str(p)}) for i, p in enumerate(originals)]
        engine.add(items[:1])  # loads the model: not counted
        seconds = sum(probe(p).duration for p in originals[1:])
        start = time.perf_counter()
        engine.add(items[1:])
        add_s = time.perf_counter() - start
        hits1 = 0
        per_kind: dict[str, list[int]] = {}
        q_start = time.perf_counter()
        for (source, path), kind in zip(queries, [k for _ in originals for k in ALTERATIONS], strict=True):
            found = engine.search(Query(media={"audio": str(path)}, target="audio", k=1))
            ok = int(len(found.hits.ids) > 0 and found.hits.ids[0] == f"o{source}")
            hits1 += ok
            per_kind.setdefault(kind, []).append(ok)
        query_s = (time.perf_counter() - q_start) / len(queries)
        vectors = np.stack([engine.vectors(f"o{i}")["audio"] for i in range(len(originals))])
    finally:
        engine.close()
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    speech = args.clips
    nearest = sims[:speech, :speech].argmax(axis=1)
    voice = float(np.mean([(int(n) % len(VOICES)) == (i % len(VOICES)) for i, n in enumerate(nearest)]))
    return {
        "model": model,
        "r_at_1": round(hits1 / len(queries), 4),
        "r_at_1_by_alteration": {k: round(float(np.mean(v)), 4) for k, v in per_kind.items()},
        "voice_at_1": round(voice, 4),
        "add_audio_seconds_per_second": round(seconds / add_s, 2),
        "query_ms": round(query_s * 1000, 1),
    }


def fingerprint_r1(originals: list[Path], queries: list[tuple[int, Path]]) -> dict[str, Any]:
    prints = [fingerprint(decode_audio(probe(p))) for p in originals]
    start = time.perf_counter()
    hits = 0
    for source, path in queries:
        fp = fingerprint(decode_audio(probe(path), check_length=False))
        hits += int(int(np.argmax(similarities(fp, prints))) == source)
    return {
        "r_at_1": round(hits / len(queries), 4),
        "query_ms": round((time.perf_counter() - start) / len(queries) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=60)
    parser.add_argument("--sounds", type=int, default=12)
    parser.add_argument("--model", choices=["resemblyzer", "aisfx", "both"], default="both")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-similar-"))
    rng = random.Random(args.seed)
    originals = [make_clip(folder, i, args.seed) for i in range(args.clips)]
    originals += [make_sound(folder, i) for i in range(args.sounds)]
    queries = [(i, altered_file(p, kind, rng, folder)) for i, p in enumerate(originals) for kind in ALTERATIONS]
    models = ["resemblyzer", "aisfx"] if args.model == "both" else [args.model]
    out: dict[str, Any] = {
        "originals": len(originals),
        "speech_clips": args.clips,
        "sounds": args.sounds,
        "queries": len(queries),
        "fingerprint": fingerprint_r1(originals, queries),
    }
    for model in models:
        out[model] = run(args, model, originals, queries)
        out[model]["r_at_1_vs_fingerprint"] = round(out[model]["r_at_1"] / max(out["fingerprint"]["r_at_1"], 1e-9), 3)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
