"""Issue 17: a bundled transformer injection detector (PyPI ``metatronnanoguard`` 0.1.0, package ``nanoguard``, a
16.8M-parameter 4-layer bidirectional transformer) beside the shipped rules + n-gram classifier.

Needs the ``nanoguard`` package importable (``pip install --no-deps metatronnanoguard``, or its wheel unpacked on
``PYTHONPATH``), torch, tiktoken, onnx and onnxruntime; it is not a dependency of xmodal (see docs/benchmarks.md).

Run (from ``benchmarks/``):
    nice -n 10 python bench_guards_nanoguard.py score [--mode full|dynamic]   # NanoGuard scores, cached
    python bench_guards_nanoguard.py evaluate                                   # the folds, from the cache
    python bench_guards_nanoguard.py cost                                       # ms per text

Same leave-one-source-out folds as ``bench_guards.py --skip-cost`` (via ``bench_guards_embed``: the same held-out
attacks after near-copy removal, the same benign splits). NanoGuard is a fixed model (we do not train it), so each
fold only needs its scores on the held-out attacks and on the benign validation (thresholds) and test texts. Its
scores cost ~150-250 ms per text on this shared 2-core VM (it pads every text to 512 tokens), so the benign texts are a seeded
part of the splits: every contrast text, and the first ``--val`` / ``--test`` texts of the WordNet, Debian and docs
validation / test parts (already shuffled by ``train.split``).

Scores: ``full`` = the package's own reading (``NanoGuard.scan``: BOS + tokens, padded to 512 with the pad token;
its attention is not masked, so the padding changes the output); ``dynamic`` = the same model on the unpadded
tokens (cheaper, different outputs). Both run on an ONNX export of the model with onnxruntime (:func:`onnx_session`:
~2x faster than torch on this VM, same scores: ``cost`` prints the largest difference from ``NanoGuard.scan``),
one text at a time, cached by the text's SHA-1 in ``out/guard_nanoguard_<mode>.json``.

Readers per fold (stopped = rules or the reader):
- ``ngram``: the shipped recipe (``train.fit_sources``), its own threshold (as ``bench_guards``);
- ``nanoguard``: NanoGuard alone (beside the rules), threshold ``t`` chosen on the benign validation texts
  (``nanoguard_at_0.5``: at the package's own threshold, 0.5);
- ``or``: ngram (its own threshold) or NanoGuard >= ``t``;
- ``cascade``: ngram, or NanoGuard >= ``t`` on texts whose n-gram probability is >= the gate ``g`` (only those
  are scored: ``cost share`` = the share of benign test texts that reach it).
``t`` is the lowest keeping the reader's false refusals (rules included) at most ``--max-fpr`` of each benign
source's validation texts; never chosen on the test texts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_guards import CACHE, wheels
from bench_guards_embed import ngram_logits

from xmodal.guards import corpora, train

OUT = Path(__file__).resolve().parent / "out"
GATES = (0.01, 0.02, 0.05, 0.1)


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def sets(n_val: int, n_test: int, sources: list[str] | None = None) -> dict[str, Any]:
    """The fold inputs: attacks per source, held-out attacks per fold, benign validation and test parts (sampled)."""
    attacks = corpora.attack_sources(wheels(CACHE), sources)
    benign = train.benign_splits()
    held = {t: corpora.drop_overlap(attacks[t], [x for k, v in attacks.items() if k != t for x in v]) for t in attacks}
    val = {k: (s.val if k == "contrast" else s.val[:n_val]) for k, s in benign.items()}
    test = {k: (s.test if k == "contrast" else s.test[:n_test]) for k, s in benign.items()}
    return {"attacks": attacks, "benign": benign, "held": held, "val": val, "test": test}


class Scores:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.path = OUT / f"guard_nanoguard_{mode}.json"
        self.rows: dict[str, float] = json.loads(self.path.read_text()) if self.path.exists() else {}

    def save(self) -> None:
        OUT.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.rows))
        tmp.replace(self.path)

    def __call__(self, texts: list[str]) -> np.ndarray:
        return np.array([self.rows[_key(t)] for t in texts])


def model() -> Any:
    import torch
    from nanoguard import NanoGuard

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    return NanoGuard(device="cpu")


def onnx_session(ng: Any, path: Path = OUT / "nanoguard.onnx") -> Any:
    """The model exported to ONNX (once) and an onnxruntime session on it (threads = usable cores, no spinning:
    the machine is shared). For the export only, ``F.rms_norm`` (no ONNX op at opset 18) is written out, and the
    rotary tables are cast from bfloat16 to float32 (exact: torch already promotes them to float32 in the
    product); :func:`check` compares the outputs with the package's."""
    import onnxruntime as ort
    import torch

    if not path.exists():
        import nanoguard.model as nm

        def norm(x: torch.Tensor) -> torch.Tensor:
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + torch.finfo(x.dtype).eps)

        class Probability(torch.nn.Module):
            def __init__(self, inner: torch.nn.Module) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
                return torch.softmax(self.inner(ids, mask).float(), -1)[:, 1]

        saved, nm.norm = nm.norm, norm
        inner = ng.model
        cos, sin = inner.cos, inner.sin
        try:
            inner.cos, inner.sin = cos.float(), sin.float()
            ids = torch.tensor([ng.tokenizer.encode("hello world")])
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.onnx.export(
                Probability(inner).eval(),
                (ids, torch.ones_like(ids, dtype=torch.bool)),
                str(path),
                input_names=["ids", "mask"],
                output_names=["p"],
                dynamic_axes={"ids": {0: "batch", 1: "tokens"}, "mask": {0: "batch", 1: "tokens"}},
                opset_version=18,
                dynamo=False,
            )
        finally:
            nm.norm = saved
            inner.cos, inner.sin = cos, sin
    options = ort.SessionOptions()
    options.intra_op_num_threads = len(os.sched_getaffinity(0))
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def tokens(ng: Any, text: str, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """BOS + the text's tokens (truncated to 512), padded to 512 (``full``, as ``NanoGuard.scan``) or not."""
    length = ng.config.sequence_len
    ids = ng.tokenizer.encode(text, max_length=length)
    n = length if mode == "full" else len(ids)
    x = np.full((1, n), ng.tokenizer.pad_token_id, dtype=np.int64)
    mask = np.zeros((1, n), dtype=bool)
    x[0, : len(ids)] = ids
    mask[0, : len(ids)] = True
    return x, mask


def score_texts(ng: Any, session: Any, texts: list[str], mode: str) -> list[float]:
    """NanoGuard's injection probability of each text, one at a time, on the ONNX session."""
    out = []
    for text in texts:
        x, mask = tokens(ng, text, mode)
        out.append(float(session.run(None, {"ids": x, "mask": mask})[0][0]))
    return out


def package_scores(ng: Any, texts: list[str]) -> list[float]:
    """The package's own reading (``NanoGuard.scan``), for the equality check."""
    return [float(ng.scan(t).injection_score) for t in texts]


def interleave(lists: list[list[str]]) -> list[str]:
    """Round-robin over ``lists`` (a run cut short still has a share of each)."""
    return [x[i] for i in range(max(map(len, lists), default=0)) for x in lists if i < len(x)]


def score(args: argparse.Namespace) -> None:
    s = sets(args.val, args.test, args.sources)
    order: list[str] = []
    for group in (list(s["held"].values()), list(s["val"].values()), list(s["test"].values())):
        order += interleave(group)
    scores = Scores(args.mode)
    todo = list(dict.fromkeys(t for t in order if _key(t) not in scores.rows))
    print(json.dumps({"texts": len(set(order)), "todo": len(todo), "load": os.getloadavg()}), file=sys.stderr)
    ng = model()
    session = onnx_session(ng)
    started = time.perf_counter()
    for at in range(0, len(todo), 100):
        chunk = todo[at : at + 100]
        scores.rows.update(zip((_key(t) for t in chunk), score_texts(ng, session, chunk, args.mode), strict=True))
        scores.save()
        done = at + len(chunk)
        rate = (time.perf_counter() - started) / done
        print(f"{done}/{len(todo)} {1000 * rate:.0f} ms/text load {os.getloadavg()[0]:.1f}", file=sys.stderr)


def ngram_cache(s: dict[str, Any]) -> dict[str, Any]:
    """Per fold: the shipped recipe's threshold and n-gram probability (highest over the text and its readings) of
    every text the folds read, and the rules' verdicts; fitted once, cached in ``out/guard_nanoguard_ngram.json``."""
    path = OUT / "guard_nanoguard_ngram.json"
    cached: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    texts = list(
        dict.fromkeys(
            [
                *(t for v in s["held"].values() for t in v),
                *(t for v in [*s["val"].values(), *s["test"].values()] for t in v),
            ]
        )
    )
    keys = [_key(t) for t in texts]
    if "rules" not in cached or any(k not in cached["rules"] for k in keys):
        cached["rules"] = {k: r for k, (r, _) in zip(keys, train.stopped_many(None, texts), strict=True)}
    for target in s["attacks"]:
        if target in cached and all(k in cached[target]["p"] for k in keys):
            continue
        others = {k: v for k, v in s["attacks"].items() if k != target}
        started = time.perf_counter()
        model = train.fit_sources(others, s["benign"])
        probs = 1 / (1 + np.exp(-ngram_logits(model, texts)))
        cached[target] = {"threshold": model.threshold, "p": dict(zip(keys, map(float, probs), strict=True))}
        print(json.dumps({target: round(time.perf_counter() - started, 1)}), file=sys.stderr, flush=True)
        OUT.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cached))
    return cached


def lowest(base: dict[str, np.ndarray], scores: dict[str, np.ndarray], max_fpr: float) -> float:
    """The lowest NanoGuard threshold keeping ``base`` or ``score >= t`` at most ``max_fpr`` of each benign
    source's validation texts (``inf``: none does, NanoGuard adds nothing)."""
    cut = 0.0
    for name, flags in base.items():
        if not len(flags):
            continue
        allowed = int(np.floor(max_fpr * len(flags))) - int(flags.sum())
        if allowed < 0:
            return float("inf")
        free = np.sort(scores[name][~flags])[::-1]
        if allowed < len(free):
            cut = max(cut, float(free[allowed]) + 1e-6)
    return cut


def evaluate_fold(
    fold: dict[str, Any],
    rules: dict[str, bool],
    ng: Scores,
    held: list[str],
    val: dict[str, list[str]],
    scored: dict[str, list[str]],
    max_fpr: float,
) -> dict[str, Any]:
    """One fold's readers: detection on ``held`` and false refusals per benign test source (``scored``), the
    NanoGuard thresholds chosen on ``val``."""

    def arrays(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keys = [_key(t) for t in texts]
        r = np.array([rules[k] for k in keys], dtype=bool)
        p = np.array([fold["p"][k] for k in keys])
        return r, p, ng(texts) if texts else np.zeros(0)

    thr = fold["threshold"]
    a_r, a_p, a_s = arrays(held)
    v = {name: arrays(texts) for name, texts in val.items()}
    b = {name: arrays(texts) for name, texts in scored.items()}
    row: dict[str, Any] = {"held_out": len(held), "ngram_threshold": round(thr, 4)}

    def record(name: str, cut: float, gate: float | None, use_ngram: bool) -> None:
        def flags(r: np.ndarray, p: np.ndarray, sc: np.ndarray) -> np.ndarray:
            reach = p >= gate if gate is not None else np.ones(len(p), dtype=bool)
            return r | ((p >= thr) if use_ngram else False) | (reach & (sc >= cut))

        fr = {name_: int(flags(*b[name_]).sum()) for name_ in b}
        total = sum(len(x[0]) for x in b.values())
        entry: dict[str, Any] = {
            "t": None if not np.isfinite(cut) else round(cut, 5),
            "detected": round(float(flags(a_r, a_p, a_s).mean()), 4) if held else None,
            "false_refusals": fr,
            "false_refusal_rate": round(sum(fr.values()) / max(total, 1), 5),
        }
        if gate is not None:
            entry["gate"] = gate
            entry["cost_share"] = round(float(np.concatenate([x[1] >= gate for x in b.values()]).mean()), 4)
        row[name] = entry

    record("ngram", float("inf"), None, True)
    record("nanoguard_at_0.5", 0.5, None, False)  # the package's own threshold, not chosen on our texts
    base = {name: r for name, (r, p, sc) in v.items()}
    record("nanoguard", lowest(base, {n: x[2] for n, x in v.items()}, max_fpr), None, False)
    base_or = {name: r | (p >= thr) for name, (r, p, sc) in v.items()}
    record("or", lowest(base_or, {n: x[2] for n, x in v.items()}, max_fpr), None, True)
    for gate in GATES:
        gated = {n: np.where(x[1] >= gate, x[2], -1.0) for n, x in v.items()}
        record(f"cascade_{gate}", lowest(base_or, gated, max_fpr), gate, True)
    return row


def evaluate(args: argparse.Namespace) -> None:
    s = sets(args.val, args.test, args.sources)
    ng = Scores(args.mode)
    scored = {name: [t for t in texts if _key(t) in ng.rows] for name, texts in s["test"].items()}
    val = {name: [t for t in texts if _key(t) in ng.rows] for name, texts in s["val"].items()}
    cache = ngram_cache(s)
    rules = cache["rules"]
    out: dict[str, Any] = {
        "mode": args.mode,
        "max_fpr": args.max_fpr,
        "load_avg": os.getloadavg(),
        "benign_val": {k: len(v) for k, v in val.items()},
        "benign_test": {k: len(v) for k, v in scored.items()},
        "folds": {},
    }

    for target, held in s["held"].items():
        row = evaluate_fold(
            cache[target], rules, ng, [t for t in held if _key(t) in ng.rows], val, scored, args.max_fpr
        )
        out["folds"][target] = row
        print(json.dumps({target: row}), file=sys.stderr, flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"guards_nanoguard_{args.mode}_{args.max_fpr}.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


def cost(args: argparse.Namespace) -> None:
    """ms per text (p50 and mean, one text at a time, wall and CPU) of each way of running the model, on a seeded
    sample of short texts (the contrast set and WordNet glosses, query-sized) and of catalog texts (Debian
    descriptions and docs), with each way's largest difference from the package's own scores."""
    import random

    import torch

    s = sets(args.val, args.test, args.sources)
    rng = random.Random(7)
    samples = {
        "short": rng.sample(s["test"]["contrast"] + s["test"]["wordnet"][:200], args.cost_texts),
        "catalog": rng.sample(s["test"]["debian"][:200] + s["test"]["docs"][:200], args.cost_texts),
    }
    ng = model()
    session = onnx_session(ng)

    def torch_way(mode: str) -> Any:
        def run(text: str) -> float:
            x, mask = tokens(ng, text, mode)
            with torch.inference_mode():
                return float(torch.softmax(ng.model(torch.from_numpy(x), torch.from_numpy(mask)).float(), -1)[0, 1])

        return run

    ways = {
        "package_scan": lambda t: float(ng.scan(t).injection_score),
        "torch_full": torch_way("full"),
        "onnx_full": lambda t: score_texts(ng, session, [t], "full")[0],
        "torch_dynamic": torch_way("dynamic"),
        "onnx_dynamic": lambda t: score_texts(ng, session, [t], "dynamic")[0],
    }
    out: dict[str, Any] = {"load_avg_start": os.getloadavg(), "threads": torch.get_num_threads(), "ways": {}}
    for kind, texts in samples.items():
        lengths = [len(ng.tokenizer.encode(t)) for t in texts]
        out[kind] = {
            "texts": len(texts),
            "tokens_p50": statistics.median(lengths),
            "chars_mean": statistics.mean(map(len, texts)),
        }
        reference = None
        for name, way in ways.items():
            way(texts[0])  # warm-up
            wall, cpu, scores = [], [], []
            for text in texts:
                c, w = time.process_time(), time.perf_counter()
                scores.append(way(text))
                wall.append(1000 * (time.perf_counter() - w))
                cpu.append(1000 * (time.process_time() - c))
            if reference is None:
                reference = scores
            diff = max(abs(a - b) for a, b in zip(scores, reference, strict=True))
            flips = sum((a >= 0.5) != (b >= 0.5) for a, b in zip(scores, reference, strict=True))
            out["ways"][f"{kind}/{name}"] = {
                "wall_ms_p50": round(statistics.median(wall), 2),
                "wall_ms_mean": round(statistics.mean(wall), 2),
                "cpu_ms_p50": round(statistics.median(cpu), 2),
                "max_abs_diff_vs_package": float(f"{diff:.3g}"),
                "decisions_at_0.5_changed": flips,
            }
            print(json.dumps({f"{kind}/{name}": out["ways"][f"{kind}/{name}"]}), file=sys.stderr, flush=True)
    out["load_avg_end"] = os.getloadavg()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "guards_nanoguard_cost.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["score", "evaluate", "cost"])
    parser.add_argument("--mode", choices=["full", "dynamic"], default="full")
    parser.add_argument("--val", type=int, default=700)
    parser.add_argument("--test", type=int, default=1700)
    parser.add_argument("--max-fpr", type=float, default=0.01)
    parser.add_argument("--cost-texts", type=int, default=40)
    parser.add_argument("--sources", nargs="+", choices=list(corpora.LOADERS))
    args = parser.parse_args()
    {"score": score, "evaluate": evaluate, "cost": cost}[args.what](args)


if __name__ == "__main__":
    main()
