"""Video shot boundaries: videos assembled with ffmpeg from real photos and clip-art, cut where the picture
changes; ``xmodal.av.shots.detect_shots`` (PySceneDetect's ContentDetector) must find each cut within 0.5 s.

Run:  python benchmarks/bench_shots.py [--videos 12] [--shots 10] [--seed 0]

Data: photos from ``skimage.data`` (astronaut, coffee, chelsea, rocket, …) and a seeded sample of Debian
``openclipart-png`` clip-art (flattened on white), each shown for 1.5 to 6 s (seeded), 320×240 at 25 fps,
H.264 in MP4, with a slow zoom on every shot so that no shot is a still frame. A shot never follows one of
the same picture. A true cut is found when a detected boundary lies within ``--tolerance`` seconds (0.5);
precision counts detected boundaries that match no cut. Target: ≥ 95% of the cuts found. Prints one JSON object.
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
from PIL import Image

from xmodal.av.probe import probe
from xmodal.av.shots import detect_shots

CLIPART = Path("/usr/share/openclipart/png")
PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "camera", "cat", "hubble_deep_field", "immunohistochemistry"]


def pictures(folder: Path, clipart: int, seed: int) -> list[Path]:
    import skimage.data

    out = []
    for name in PHOTOS:
        try:
            array = getattr(skimage.data, name)()
        except Exception:  # a photo that needs a download: left out
            continue
        image = Image.fromarray(np.asarray(array)).convert("RGB")
        out.append(folder / f"{name}.png")
        image.save(out[-1])
    arts = sorted(CLIPART.rglob("*.png"))
    for i, path in enumerate(random.Random(seed).sample(arts, min(clipart, len(arts)))):
        with Image.open(path) as art:
            rgba = art.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.split()[3])
        out.append(folder / f"art{i}.png")
        flat.save(out[-1])
    return out


def assemble(folder: Path, name: str, shots: list[tuple[Path, float]]) -> Path:
    cmd = ["ffmpeg", "-v", "error", "-y"]
    graph = ""
    for i, (path, seconds) in enumerate(shots):
        cmd += ["-loop", "1", "-t", f"{seconds:.2f}", "-i", str(path)]
        frames = int(round(seconds * 25))
        graph += (
            f"[{i}]scale=640:480:force_original_aspect_ratio=decrease,pad=640:480:(ow-iw)/2:(oh-ih)/2:white,"
            f"zoompan=z='1+0.0015*on':d={frames}:s=320x240:fps=25,setsar=1[v{i}];"
        )
    graph += "".join(f"[v{i}]" for i in range(len(shots))) + f"concat=n={len(shots)}:v=1:a=0[v]"
    out = folder / f"{name}.mp4"
    cmd += ["-filter_complex", graph, "-map", "[v]", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out)]
    subprocess.run(cmd, check=True, timeout=600)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--clipart", type=int, default=60)
    parser.add_argument("--tolerance", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    found = cuts = detected = false = 0
    errors: list[float] = []
    video_seconds = detect_seconds = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pool = pictures(folder, args.clipart, args.seed)
        for v in range(args.videos):
            plan: list[tuple[Path, float]] = []
            while len(plan) < args.shots:
                pick = rng.choice(pool)
                if not plan or plan[-1][0] != pick:
                    plan.append((pick, round(rng.uniform(1.5, 6.0), 2)))
            video = assemble(folder, f"v{v}", plan)
            truth = list(np.cumsum([s for _, s in plan])[:-1])
            info = probe(video, need="video")
            started = time.perf_counter()
            spans = detect_shots(info, max_shot=1e9)
            detect_seconds += time.perf_counter() - started
            video_seconds += info.duration
            bounds = [a for a, _ in spans[1:]]
            cuts += len(truth)
            detected += len(bounds)
            for cut in truth:
                near = min((abs(b - cut) for b in bounds), default=float("inf"))
                if near <= args.tolerance:
                    found += 1
                    errors.append(near)
            false += sum(1 for b in bounds if min(abs(b - c) for c in truth) > args.tolerance)
    result: dict[str, Any] = {
        "videos": args.videos,
        "cuts": cuts,
        "pictures": len(pool),
        "found_within_tolerance": found,
        "recall": round(found / cuts, 4),
        "false_boundaries": false,
        "precision": round((detected - false) / detected, 4) if detected else 1.0,
        "mean_offset_s": round(float(np.mean(errors)), 3) if errors else None,
        "video_seconds": round(video_seconds, 1),
        "x_real_time": round(video_seconds / detect_seconds, 1),
    }
    result["target_met"] = result["recall"] >= 0.95
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
