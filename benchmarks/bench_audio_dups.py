"""Near-duplicate audio by Chromaprint fingerprints (``fpcalc -raw``) and their bit agreement.

Run:  python benchmarks/bench_audio_dups.py [--clips 300] [--calibrate 100] [--workers 2] [--seed 0]

Data: ``--clips`` different clips, each three real sentences (consecutive WordNet noun glosses of a seeded
order, Debian ``wordnet-base``) spoken by Debian ``espeak-ng`` in one of six voices and speeds (about 10 to
25 s). Each clip gets five altered copies: re-encoded by ``ffmpeg`` to MP3 at 64 kb/s and to Ogg Vorbis (and
decoded back), trimmed by 0.5 to 2 s at the start, changed in volume by +6 or -6 dB, and mixed with white
noise at 20 dB SNR.

The clips are split: the first ``--calibrate`` are the calibration set, the rest (at least 200 by default)
are held out. Within each set every copy is compared with every original of that set
(``xmodal.av.fingerprint.similarities``: the best share of equal bits over offsets of up to 3 s); a pair is
a duplicate when its agreement is at least the threshold. The threshold is chosen on the calibration set
only (best F1; among tied cuts the middle of the tied interval, so it sits in the gap rather than on the
lowest duplicate seen) and then evaluated on the held-out set, next to the shipped ``DUPLICATE_THRESHOLD``.
Precision and recall are over all copy × original pairs of the held-out set. Target: precision and recall
≥ 0.95 on the held-out set. Prints one JSON object.
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
from pathlib import Path
from typing import Any

import numpy as np

from xmodal.av.decode import decode_audio
from xmodal.av.fingerprint import DUPLICATE_THRESHOLD, Fingerprint, fingerprint, similarities
from xmodal.av.probe import probe

sys.path.insert(0, str(Path(__file__).parent))
from bench_speech import VOICES, glosses  # noqa: E402

ALTERATIONS = ["mp3_64k", "ogg", "trim", "gain", "noise_20db"]


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, timeout=120)


_POOL: dict[int, list[tuple[str, str]]] = {}


def make_clip(folder: Path, i: int, seed: int) -> Path:
    """WAV clip ``i``: three consecutive glosses of the seeded order, one voice per clip (about 10 to 25 s)."""
    pool = _POOL.setdefault(seed, glosses(seed))
    voice, speed = VOICES[i % len(VOICES)]
    path = folder / f"clip{i}.wav"
    text = ". ".join(gloss for _, gloss in pool[3 * i : 3 * i + 3])
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True, timeout=120)
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        raw = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return (raw.astype(np.float32) / 32768.0), w.getframerate()


def alter(clip: Path, kind: str, rng: random.Random, folder: Path) -> Fingerprint:
    """The fingerprint of ``clip`` altered by ``kind`` (codecs through ffmpeg, the rest on the samples)."""
    samples, rate = read_wav(clip)
    if kind in ("mp3_64k", "ogg"):
        out = folder / (f"{clip.stem}.mp3" if kind == "mp3_64k" else f"{clip.stem}.ogg")
        codec = ["-b:a", "64k"] if kind == "mp3_64k" else ["-c:a", "libvorbis"]
        ffmpeg("-i", str(clip), *codec, str(out))
        return fingerprint(decode_audio(probe(out)))
    if kind == "trim":
        return fingerprint(samples[int(rng.uniform(0.5, 2.0) * rate) :], rate=rate)
    if kind == "gain":
        return fingerprint(np.clip(samples * 10 ** (rng.choice([-6, 6]) / 20), -1, 1), rate=rate)
    noise = np.random.default_rng(rng.randrange(1 << 30)).normal(size=len(samples)).astype(np.float32)
    scale = np.sqrt(np.mean(samples**2) / (np.mean(noise**2) * 10 ** (20 / 10)))  # 20 dB below the speech
    return fingerprint(np.clip(samples + noise * scale, -1, 1), rate=rate)


def fp_of(path: Path) -> Fingerprint:
    samples, rate = read_wav(path)
    return fingerprint(samples, rate=rate)


def scores_at(threshold: float, dup: list[float], other: list[float]) -> dict[str, float]:
    tp = sum(s >= threshold for s in dup)
    fp = sum(s >= threshold for s in other)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / len(dup)
    return {"threshold": round(threshold, 4), "precision": round(precision, 4), "recall": round(recall, 4)}


def calibrate(dup: list[float], other: list[float]) -> float:
    """The cut with the best F1 on these pairs (ties: the strictest), moved down to the middle of the gap
    below it: every cut in that gap classifies these pairs alike, and the middle leaves room both ways."""
    d, o = np.asarray(dup), np.asarray(other)
    scores = np.unique(np.concatenate([d, o]))
    best, best_f1 = float(scores[-1]), -1.0
    for cut in scores:
        tp, fp = float((d >= cut).sum()), float((o >= cut).sum())
        f1 = 2 * tp / (2 * tp + fp + (len(d) - tp)) if tp else 0.0
        if f1 >= best_f1:
            best, best_f1 = float(cut), f1
    below = scores[scores < best]
    return (float(below.max()) + best) / 2 if len(below) else best


def _prepare(job: tuple[int, int]) -> list[tuple[int, str, Fingerprint]]:
    """The original's and the five copies' fingerprints of clip ``index`` (its own seeded rng)."""
    index, seed = job
    folder = Path(tempfile.mkdtemp(prefix="bench-dups-"))
    try:
        clip = make_clip(folder, index, seed)
        rng = random.Random(seed * 100_003 + index)
        out = [(index, "original", fp_of(clip))]
        out += [(index, kind, alter(clip, kind, rng, folder)) for kind in ALTERATIONS]
        return out
    finally:
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()


def compare(
    copies: list[tuple[int, str, Fingerprint]], originals: dict[int, Fingerprint]
) -> tuple[list[float], list[float], dict[str, list[float]]]:
    ids = sorted(originals)
    table = [originals[i] for i in ids]
    dup: list[float] = []
    other: list[float] = []
    by_kind: dict[str, list[float]] = {k: [] for k in ALTERATIONS}
    for i, kind, fp in copies:
        for j, s in zip(ids, similarities(fp, table).tolist(), strict=True):
            if i == j:
                dup.append(s)
                by_kind[kind].append(s)
            else:
                other.append(s)
    return dup, other, by_kind


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--calibrate", type=int, default=100, help="clips of the calibration set (the rest held out)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not 0 < args.calibrate < args.clips:
        parser.error("--calibrate must be between 1 and --clips - 1")
    result: dict[str, Any] = {"clips": args.clips, "alterations": ALTERATIONS}
    result["calibration_clips"], result["held_out_clips"] = args.calibrate, args.clips - args.calibrate
    started = time.perf_counter()
    jobs = [(i, args.seed) for i in range(args.clips)]
    if args.workers > 1:
        from multiprocessing import Pool

        with Pool(args.workers) as pool:
            prints = [p for part in pool.imap(_prepare, jobs, chunksize=4) for p in part]
    else:
        prints = [p for job in jobs for p in _prepare(job)]
    result["prepare_seconds"] = round(time.perf_counter() - started, 1)
    result["workers"] = args.workers
    started = time.perf_counter()
    sets: dict[str, Any] = {}
    for name, keep in (("calibration", range(args.calibrate)), ("held_out", range(args.calibrate, args.clips))):
        chosen = set(keep)
        originals = {i: fp for i, kind, fp in prints if kind == "original" and i in chosen}
        copies = [(i, kind, fp) for i, kind, fp in prints if kind != "original" and i in chosen]
        sets[name] = compare(copies, originals)
    result["compare_seconds"] = round(time.perf_counter() - started, 1)
    cal_dup, cal_other, _ = sets["calibration"]
    cut = calibrate(cal_dup, cal_other)
    for name, (dup, other, by_kind) in sets.items():
        result[name] = {
            "pairs": {"duplicate": len(dup), "other": len(other)},
            "lowest_duplicate": round(min(dup), 4),
            "highest_other": round(max(other), 4),
            "lowest_duplicate_by_alteration": {k: round(min(v), 4) for k, v in by_kind.items()},
            "at_calibrated_threshold": scores_at(cut, dup, other),
            "at_shipped_threshold": scores_at(DUPLICATE_THRESHOLD, dup, other),
        }
    result["calibrated_threshold"] = round(cut, 4)
    result["shipped_threshold"] = DUPLICATE_THRESHOLD
    held = result["held_out"]["at_calibrated_threshold"]
    shipped = result["held_out"]["at_shipped_threshold"]
    result["target_met_held_out"] = held["precision"] >= 0.95 and held["recall"] >= 0.95
    result["target_met_held_out_shipped"] = shipped["precision"] >= 0.95 and shipped["recall"] >= 0.95
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
