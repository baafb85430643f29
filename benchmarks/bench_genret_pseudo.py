"""Generative retrieval trained on the catalog's pseudo-queries, against exact dense search, per query kind.

    PYTHONPATH=src python benchmarks/bench_genret_pseudo.py [--set wordnet] [--items 10000] [--variants self,pseudo]

Builds a judged set (:mod:`xmodal.eval.judged`), indexes its catalog with the defaults, then for each
variant trains the generative index with ``genret train``'s defaults (``self``: the items' own views and
noisy self pairs; ``pseudo``: those plus the pseudo-queries of :mod:`xmodal.ltr.pseudo`) and reports
R@10 of GENIUS and GENIUS-R per query kind as a ratio to dense R@10 on the same embeddings (issue 19,
part 2: targets 0.8× and 0.95× on the held-out kinds). Prints one JSON object.

Decoding settings of GENIUS-R without retraining (``--decode BEAM:DEPTH,…``, with ``--reuse`` to keep
the model already trained in the index): for each setting, the trained model decodes ``BEAM`` prefixes of
``DEPTH`` tokens (the modality then ``DEPTH − 1`` codes; the full ID is ``levels + 1`` tokens) and every
item under them, up to the re-rank pool, is re-ranked by cosine with the stored vectors (held in memory
here). Reports R@10 against exact dense on the same vectors, the mean candidates and the time per query
(one query at a time, decoding and re-ranking) on the kinds of ``--decode-split`` only::

    PYTHONPATH=src python benchmarks/bench_genret_pseudo.py --variants self --reuse \
        --decode 64:4,16:2,32:2 --decode-split tuning

Training variants (issue 19, part 2): a variant ``NAME+FIELD=VALUE+…`` trains with those ``TrainConfig``
fields changed (a NAME starting with ``pseudo`` adds the pseudo-queries); each trained model is kept under
``out/genret_pseudo/models/NAME`` and ``--model NAME`` puts a kept one back instead of training (so the
held-out kinds can be run once, later, with the variant chosen on the tuning kinds); ``--split`` limits the
engine comparison to the tuning or the held-out kinds::

    PYTHONPATH=src python benchmarks/bench_genret_pseudo.py --split tuning \
        --variants self,noise+self_noise_min=0.2+self_noise_max=1.0
    PYTHONPATH=src python benchmarks/bench_genret_pseudo.py --split held_out --variants noise --model noise
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from xmodal import Engine
from xmodal.eval.compare import compare, parse_modes
from xmodal.eval.judged import build_set
from xmodal.eval.runner import EvalQuery, read_queries
from xmodal.eval.sets import SetInfo, set_info_for
from xmodal.genret.build import train_engine
from xmodal.genret.config import TrainConfig
from xmodal.genret.extension import live_genret
from xmodal.genret.model import RERANK_POOL
from xmodal.genret.search import bucket_candidates, rerank
from xmodal.ingest.catalog import add_catalogs
from xmodal.records import Query

OUT = Path(__file__).resolve().parent / "out" / "genret_pseudo"
MODES = "dense,generative,generative-rerank"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="wordnet")
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--per-kind", type=int, default=300)
    parser.add_argument("--variants", default="self,pseudo")
    parser.add_argument("--reuse", action="store_true", help="keep the index's trained model (no training)")
    parser.add_argument("--decode", default="", help="GENIUS-R decoding settings BEAM:DEPTH[:POOL],… to compare")
    parser.add_argument("--decode-split", default="tuning", choices=["tuning", "held_out", "all"])
    parser.add_argument("--latency", type=int, default=0, help="time N queries of the split through the modes")
    parser.add_argument("--torch-threads", type=int, default=0, help="torch's thread count (0: torch's default)")
    parser.add_argument("--no-compare", action="store_true", help="skip the modes' comparison through the engine")
    parser.add_argument("--split", default="all", choices=["tuning", "held_out", "all"], help="kinds compared")
    parser.add_argument(
        "--fast", action="store_true", help="compare in memory (exact dense, batched decoding) instead of the engine"
    )
    parser.add_argument("--model", default="", help="put back the model kept for this variant (no training)")
    args = parser.parse_args()
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    built = build_set(args.set, OUT / args.set, items=args.items, per_kind=args.per_kind, seed=0)
    index = OUT / f"{args.set}-{args.items}-index"
    if not index.exists():
        with Engine.open(index) as engine:
            add_catalogs(engine, [built.catalog])
    info = set_info_for(built.query_file)
    entries = list(read_queries(built.query_file, info.kinds if info else None))
    report: dict[str, Any] = {"set": args.set, "items": args.items, "variants": {}}
    if args.model:
        shutil.rmtree(index / "genret", ignore_errors=True)
        shutil.copytree(OUT / "models" / args.model, index / "genret")
        args.reuse = True
    for spec in args.variants.split(","):
        variant, config = variant_config(spec)
        with Engine.open(index) as engine:
            start = time.perf_counter()
            summary: dict[str, Any] = {}
            if not (args.reuse and (index / "genret" / "manifest.json").exists()):
                pseudo = variant.startswith("pseudo")
                summary = train_engine(engine, config=config, progress=False, feedback=False, pseudo=pseudo)
                shutil.rmtree(OUT / "models" / variant, ignore_errors=True)
                shutil.copytree(index / "genret", OUT / "models" / variant)
            seconds = time.perf_counter() - start
            if args.decode:
                report.setdefault("decode", {})[variant] = decode_settings(engine, entries, info, args)
            if args.latency:
                report.setdefault("latency", {})[variant] = mode_latency(engine, entries, info, args)
            if args.no_compare:
                continue
            modes, _ = parse_modes(MODES, engine.modes())
            chosen = split_queries(entries, info, args.split)
            if args.fast:
                result = fast_compare(engine, chosen, info)
            else:
                result = compare(engine, chosen, modes, set_info=info, resamples=100, seed=0).to_dict()
        kinds = {}
        for group in result["kinds"]:
            r10 = {mode: group["modes"][mode]["recall@10"]["mean"] for mode in modes}
            dense = max(r10["dense"], 1e-9)
            kinds[group["kind"]] = {
                "split": group["split"],
                "recall@10": {m: round(v, 3) for m, v in r10.items()},
                "genius_vs_dense": round(r10["generative"] / dense, 3),
                "genius_r_vs_dense": round(r10["generative-rerank"] / dense, 3),
            }
        report["variants"][variant] = {
            "train_s": round(seconds, 1),
            "config": {k: v for k, v in config.to_dict().items() if v != getattr(TrainConfig(), k)},
            "sources": summary.get("sources"),
            "epochs": summary.get("epochs"),
            "fit": summary.get("last_evaluation"),
            "kinds": kinds,
        }
        print(json.dumps({variant: report["variants"][variant]}), file=sys.stderr, flush=True)
    print(json.dumps(report, indent=1))


def in_memory(
    engine: Engine,
) -> tuple[np.ndarray, np.ndarray, dict[int, int], list[str | None], Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """The index held in memory: its rows (sorted), their vectors as one matrix, each row's position in it, their
    ids, and GENIUS-R's ``similarity`` (cosines of candidate rows to a query) over that matrix."""
    rows = np.asarray(sorted(engine.all_rows().tolist()), np.int64)
    found = engine.items_of(rows.tolist(), with_vectors=True)
    matrix = np.stack([next(iter(found[int(r)].vectors.values())) for r in rows]).astype(np.float32)
    position = {int(r): i for i, r in enumerate(rows.tolist())}
    ids = [engine.find_id(int(r)) for r in rows]

    def similarity(cands: np.ndarray, q: np.ndarray) -> np.ndarray:
        out: np.ndarray = matrix[[position[int(r)] for r in cands.tolist()]] @ q
        return out

    return rows, matrix, position, ids, similarity


def fast_compare(engine: Engine, queries: list[EvalQuery], info: SetInfo | None) -> dict[str, Any]:
    """R@10 per kind of exact dense search, GENIUS and GENIUS-R (the modes' settings: beam, pool, depth) with
    the item vectors held in memory and the queries decoded in batches: the engine comparison's figures
    for unfiltered text queries (dense exact rather than through the vector index), in a fraction of its time."""
    from xmodal.genret.mode import BEAM, RERANK_BEAM, rerank_depth

    rows, matrix, position, ids, similarity = in_memory(engine)
    vectors = engine.encode_queries([Query(text=e.text) for e in queries])

    def recall(found_rows: Any, relevant: frozenset[str]) -> float:
        return len(relevant & {ids[position[int(r)]] for r in list(found_rows)[:10]}) / len(relevant)

    got: dict[str, list[float]] = {"dense": [], "generative": [], "generative-rerank": []}
    with live_genret(engine).reading() as model:
        for start in range(0, len(queries), 128):
            part, vecs = queries[start : start + 128], vectors[start : start + 128]
            genius = model.search(vecs, 10, beam=BEAM)
            genius_r = model.search(
                vecs,
                RERANK_POOL,
                beam=RERANK_BEAM,
                similarity=similarity,
                pool=RERANK_POOL,
                depth=rerank_depth(model),
            )
            for i, e in enumerate(part):
                got["dense"].append(recall(rows[np.argsort(-(matrix @ vecs[i]), kind="stable")[:10]], e.relevant))
                got["generative"].append(recall(genius[i][0], e.relevant))
                got["generative-rerank"].append(recall(genius_r[i][0], e.relevant))
    kinds = []
    for kind in sorted({e.kind or "" for e in queries}):
        pick = [i for i, e in enumerate(queries) if (e.kind or "") == kind]
        kinds.append(
            {
                "kind": kind,
                "split": info.split(kind) if info else "",
                "modes": {m: {"recall@10": {"mean": float(np.mean([v[i] for i in pick]))}} for m, v in got.items()},
            }
        )
    return {"kinds": kinds}


def variant_config(spec: str) -> tuple[str, TrainConfig]:
    """``NAME+FIELD=VALUE+…`` → (NAME, TrainConfig with those fields, each parsed as its default's type)."""
    name, *changes = spec.split("+")
    fields: dict[str, Any] = {}
    defaults = TrainConfig()
    for change in changes:
        key, value = change.split("=", 1)
        kind = type(getattr(defaults, key))
        fields[key] = value.lower() in ("1", "true") if kind is bool else kind(value)
    return name, dataclasses.replace(defaults, **fields)


def split_queries(entries: list[Any], info: SetInfo | None, split: str) -> list[EvalQuery]:
    queries = [e for e in entries if isinstance(e, EvalQuery) and e.text]
    if info is not None and split != "all":
        queries = [e for e in queries if info.split(e.kind) == split]
    return queries


def mode_latency(engine: Engine, entries: list[Any], info: SetInfo | None, args: argparse.Namespace) -> dict[str, Any]:
    """Per-query wall time of ``engine.search`` in each mode (text encoded once, the modes alternating)."""
    queries = split_queries(entries, info, args.decode_split)
    queries = [queries[i] for i in np.linspace(0, len(queries) - 1, min(args.latency, len(queries))).astype(int)]
    times: dict[str, list[float]] = {m: [] for m in MODES.split(",")}
    for e in queries:
        for mode in times:
            start = time.perf_counter()
            engine.search(Query(text=e.text, mode=mode, k=10))
            times[mode].append(time.perf_counter() - start)
    return {
        m: {"ms_p50": round(1000 * float(np.median(t)), 2), "ms_p95": round(1000 * float(np.percentile(t, 95)), 2)}
        for m, t in times.items()
    }


def decode_settings(
    engine: Engine, entries: list[Any], info: SetInfo | None, args: argparse.Namespace
) -> dict[str, Any]:
    """R@10 of GENIUS-R per kind for each ``BEAM:DEPTH[:POOL]`` of ``args.decode``, against exact dense."""
    queries = split_queries(entries, info, args.decode_split)
    _, matrix, position, ids, similarity = in_memory(engine)
    vectors = engine.encode_queries([Query(text=e.text) for e in queries])

    def recall(ranked: list[str | None], relevant: frozenset[str]) -> float:
        return len(relevant & set(ranked[:10])) / len(relevant)

    dense = [
        recall([ids[j] for j in np.argsort(-(matrix @ v), kind="stable")[:10]], e.relevant)
        for e, v in zip(queries, vectors, strict=True)
    ]
    out: dict[str, Any] = {"queries": len(queries), "settings": {}}
    with live_genret(engine).reading() as model:
        for setting in args.decode.split(","):
            beam, depth, *rest = (int(x) for x in setting.split(":"))
            pool = rest[0] if rest else RERANK_POOL
            got, sizes, times = [], [], []
            for e, v in zip(queries, vectors, strict=True):
                start = time.perf_counter()
                keys, scores = model.generate(v[None, :], beam, depth)
                cands, _ = bucket_candidates(model.trie, keys[0], scores[0], pool, depth)
                ranked, _ = rerank(cands, v, similarity, 10)
                times.append(time.perf_counter() - start)
                sizes.append(len(cands))
                got.append(recall([ids[position[int(r)]] for r in ranked], e.relevant))
            by_kind: dict[str, Any] = {}
            for kind in sorted({e.kind or "" for e in queries}):
                pick = [i for i, e in enumerate(queries) if (e.kind or "") == kind]
                d, g = float(np.mean([dense[i] for i in pick])), float(np.mean([got[i] for i in pick]))
                by_kind[kind] = {"dense": round(d, 3), "genius_r": round(g, 3), "vs_dense": round(g / max(d, 1e-9), 3)}
            out["settings"][setting] = {
                "kinds": by_kind,
                "candidates_mean": round(float(np.mean(sizes)), 1),
                "candidates_max": int(np.max(sizes)),
                "ms_p50": round(1000 * float(np.median(times)), 2),
                "ms_p95": round(1000 * float(np.percentile(times, 95)), 2),
            }
            print(json.dumps({setting: out["settings"][setting]}), file=sys.stderr, flush=True)
    return out


if __name__ == "__main__":
    main()
