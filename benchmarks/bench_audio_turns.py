"""Speaker turns (``xmodal.av.turns``) on dialogues of two espeak-ng voices taking turns.

Run:  python benchmarks/bench_audio_turns.py [--dialogues 6] [--turns 8] [--seed 0]

Data: ``--dialogues`` recordings, each of ``--turns`` real sentences (WordNet noun glosses of a seeded order,
Debian ``wordnet-base``, as ``bench_speech``) said in turn by a male and a female espeak-ng voice (the pair
changes per dialogue: en-us/en-us+f3, en-gb/en-gb+f3, en-us+m3/en-us+f4...), concatenated with no added pause
(espeak-ng's own leading and trailing silence only). A true change is where the next sentence's file starts.

Figures: recall (true changes with a found change within 0.5 s), precision (found changes within 0.5 s of a
true one), the mean error of matched changes, speaker labels (turns whose speaker number matches the voice,
up to the numbering), and the real-time factor (seconds of sound per second of turn finding). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from xmodal.av.decode import RATE, decode_audio
from xmodal.av.probe import probe
from xmodal.av.turns import speaker_turns

sys.path.insert(0, str(Path(__file__).parent))
from bench_speech import glosses  # noqa: E402

PAIRS = [("en-us", "en-us+f3"), ("en-gb", "en-gb+f3"), ("en-us+m3", "en-us+f4"), ("en-gb-x-rp", "en-us+f2")]
TOLERANCE = 0.5


def dialogue(folder: Path, n: int, turns: int, pool: list[tuple[str, str]]) -> tuple[np.ndarray, list[float]]:
    voices = PAIRS[n % len(PAIRS)]
    parts = []
    for t in range(turns):
        path = folder / f"d{n}-{t}.wav"
        text = pool[n * turns + t][1]
        subprocess.run(["espeak-ng", "-v", voices[t % 2], "-w", str(path), text], check=True, timeout=120)
        parts.append(decode_audio(probe(path)))
    return np.concatenate(parts), [float(x) for x in np.cumsum([len(p) / RATE for p in parts])[:-1]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dialogues", type=int, default=6)
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-turns-"))
    pool = glosses(args.seed)
    true_n = found_n = matched_true = matched_found = labels_ok = labels_n = 0
    errors: list[float] = []
    by_pair: dict[str, list[int]] = {}
    seconds = spent = 0.0
    for n in range(args.dialogues):
        samples, truth = dialogue(folder, n, args.turns, pool)
        start = time.perf_counter()
        turns = speaker_turns(samples)
        spent += time.perf_counter() - start
        seconds += len(samples) / RATE
        found = [t.start for t in turns[1:]]
        true_n, found_n = true_n + len(truth), found_n + len(found)
        pair = by_pair.setdefault("/".join(PAIRS[n % len(PAIRS)]), [0, 0])
        for t in truth:
            near = [abs(f - t) for f in found if abs(f - t) <= TOLERANCE]
            matched_true += bool(near)
            pair[0] += bool(near)
            pair[1] += 1
            errors += [min(near)] if near else []
        matched_found += sum(any(abs(f - t) <= TOLERANCE for t in truth) for f in found)
        edges = [0.0, *truth, len(samples) / RATE]
        for turn in turns:  # the voice said most of the turn: the true sentence its middle falls in
            middle = (turn.start + turn.end) / 2
            which = next(i for i in range(len(edges) - 1) if edges[i] <= middle <= edges[i + 1])
            labels_n += 1
            labels_ok += turn.speaker == which % 2
    out: dict[str, Any] = {
        "dialogues": args.dialogues,
        "true_changes": true_n,
        "found_changes": found_n,
        "recall_within_0_5s": round(matched_true / max(true_n, 1), 4),
        "precision_within_0_5s": round(matched_found / max(found_n, 1), 4),
        "mean_error_s": round(float(np.mean(errors)), 3) if errors else None,
        "recall_by_voice_pair": {k: round(a / b, 3) for k, (a, b) in by_pair.items()},
        "speaker_labels_correct": round(labels_ok / max(labels_n, 1), 4),
        "audio_seconds": round(seconds, 1),
        "real_time_factor": round(seconds / spent, 2),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
