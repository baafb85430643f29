"""``xmodal classify``, ``xmodal cluster`` and ``xmodal dedup``: the ML-task purposes (:mod:`xmodal.tasks`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..records import Query
from .common import UsageError, add_filter_options, engine_of, filters_of, print_json, shorten

KIND_HELP = "the vectors to compare: primary (each item's own, default), text, image, combined, ..."


def register(subparsers: Any) -> None:
    """Add ``classify``, ``cluster`` and ``dedup`` to the ``xmodal`` parser."""
    _classify_parser(subparsers)
    _cluster_parser(subparsers)
    _dedup_parser(subparsers)


def _classify_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "classify",
        help="label items by the kNN vote of labelled items (--eval: cross-validated macro-F1)",
        description="Every item with a value for the attribute LABEL is a labelled example. Classify text "
        "queries (--query), images (--image), stored items (--id), or by default every item without a LABEL, "
        "by the weighted vote of the k most similar labelled items; --eval measures the vote by stratified "
        "cross-validation instead.",
    )
    parser.add_argument("label", metavar="LABEL", help="the attribute that holds the labels (e.g. category)")
    parser.add_argument("--query", action="append", default=[], metavar="TEXT", help="a text to classify (repeat)")
    parser.add_argument("--image", action="append", default=[], metavar="PATH", help="an image to classify (repeat)")
    parser.add_argument("--id", action="append", default=[], dest="ids", metavar="ID", help="a stored item (repeat)")
    parser.add_argument("--k", type=int, default=10, metavar="N", help="neighbours that vote (default: 10)")
    parser.add_argument(
        "--weighting", choices=["uniform", "distance"], default="distance", help="vote weight (default: distance)"
    )
    parser.add_argument("--kind", default="primary", metavar="KIND", help=KIND_HELP)
    parser.add_argument("--top", type=int, default=3, metavar="N", help="labels shown per prediction (default: 3)")
    parser.add_argument("--eval", action="store_true", help="cross-validate on the labelled items: macro-F1")
    parser.add_argument("--folds", type=int, default=5, metavar="N", help="--eval folds (default: 5)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="--eval fold seed (default: 0)")
    add_filter_options(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run_classify)


def _cluster_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cluster",
        help="group the items into topics (k-means or HDBSCAN), named by central items and top terms",
        description="Cluster the stored vectors: k-means with --clusters N (or N chosen by silhouette), or "
        "HDBSCAN (--method hdbscan), which finds the number itself and leaves outliers as noise.",
    )
    parser.add_argument("--method", choices=["kmeans", "hdbscan"], default="kmeans", help="(default: kmeans)")
    parser.add_argument("--clusters", type=int, default=None, metavar="N", help="k-means clusters (default: chosen)")
    parser.add_argument("--min-cluster-size", type=int, default=5, metavar="N", help="HDBSCAN (default: 5)")
    parser.add_argument("--kind", default="primary", metavar="KIND", help=KIND_HELP)
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="k-means seed (default: 0)")
    parser.add_argument("--members", action="store_true", help="list every cluster's members (JSON)")
    add_filter_options(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run_cluster)


def _dedup_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dedup",
        help="find near-duplicate groups (images: perceptual hash + vectors; text: MinHash; audio, video: Chromaprint)",
        description="Groups of near-duplicate items within and across modalities. Thresholds are calibrated on "
        "copies of the collection's own items unless given with --threshold (audio and video: a default set on "
        "held-out benchmark clips); the result states each one.",
    )
    parser.add_argument(
        "--signals", default="image,text", metavar="LIST", help="image, text or both (default: image,text)"
    )
    parser.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="fix a threshold: correlation, thumbnail, phash, cosine (images), jaccard (text), audio, video (repeat)",
    )
    parser.add_argument("--calibration-sample", type=int, default=64, metavar="N", help="items copied (default: 64)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="calibration seed (default: 0)")
    add_filter_options(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run_dedup)


def run_classify(args: argparse.Namespace) -> int:
    from ..tasks import classify, evaluate

    filters = filters_of(args) or None
    queries = [Query(text=text) for text in args.query] + [Query(image=_image(path)) for path in args.image]
    if args.eval and (queries or args.ids):
        raise UsageError("--eval cross-validates on the labelled items: leave out --query, --image and --id")
    if queries and args.ids:
        raise UsageError("give --query/--image or --id, not both")
    with engine_of(args) as engine:
        if args.eval:
            report = evaluate(
                engine, args.label, k=args.k, weighting=args.weighting, folds=args.folds, seed=args.seed,
                kind=args.kind, filters=filters,
            )  # fmt: skip
            return _print_eval(report.to_dict(), args.json)
        result = classify(
            engine, args.label, ids=args.ids or None, queries=queries or None, k=args.k, weighting=args.weighting,
            kind=args.kind, filters=filters, top=args.top,
        )  # fmt: skip
    if args.json:
        print_json(result.to_dict())
        return 0
    for p in result.predictions:
        others = ", ".join(f"{label} {score:.2f}" for label, score in p.scores.items())
        print(f"{p.target}\t{p.label}\t{p.confidence:.2f}\t({others})")
    return 0


def _image(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"--image {path}: cannot read it ({exc.strerror}); give an existing image file") from None


def _print_eval(report: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print_json(report)
        return 0
    print(
        f"macro-F1 {report['macro_f1']:.4f}  accuracy {report['accuracy']:.4f}  ({report['items']} items, "
        f"{report['labels']} labels, {report['folds']}-fold, k={report['k']}, {report['weighting']})"
    )
    for label, score in report["f1"].items():
        print(f"  {label}\t{score:.4f}")
    if report["dropped"]:
        print(f"left out (fewer items than folds): {report['dropped']}")
    return 0


def run_cluster(args: argparse.Namespace) -> int:
    from ..tasks import cluster

    filters = filters_of(args) or None
    with engine_of(args) as engine:
        result = cluster(
            engine, method=args.method, n_clusters=args.clusters, min_cluster_size=args.min_cluster_size,
            kind=args.kind, filters=filters, seed=args.seed,
        )  # fmt: skip
    if args.json:
        print_json(result.to_dict(members=args.members))
        return 0
    print(
        f"{len(result.clusters)} clusters of {result.items} items ({result.method}, {result.params.get('chosen_by')})"
    )
    for c in result.clusters:
        central = ", ".join(shorten(title or item_id, 30) for item_id, title, _ in c.central)
        print(f"{c.id}\t{len(c.members)}\t{c.name}\t[{central}]")
    if result.noise:
        print(f"noise\t{len(result.noise)}")
    return 0


def run_dedup(args: argparse.Namespace) -> int:
    from ..tasks import dedup

    filters = filters_of(args) or None
    signals = tuple(s.strip() for s in args.signals.split(",") if s.strip())
    with engine_of(args) as engine:
        result = dedup(
            engine, filters=filters, signals=signals, thresholds=_thresholds(args.threshold),
            calibration_sample=args.calibration_sample, seed=args.seed,
        )  # fmt: skip
    if args.json:
        print_json(result.to_dict())
        return 0
    for cut in result.thresholds:
        print(f"threshold {cut.signal} {'>=' if cut.higher else '<='} {cut.value:.4g} ({cut.source})")
    print(f"{len(result.groups)} duplicate groups")
    for group in result.groups:
        print("\t".join(group.ids))
    for medium, why in result.unchecked.items():
        print(f"{medium} not checked: {why}")
    return 0


def _thresholds(given: list[str]) -> dict[str, float]:
    out = {}
    for entry in given:
        name, sep, value = entry.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise UsageError(f"--threshold {entry!r}: write NAME=VALUE, e.g. --threshold jaccard=0.8")
    return out
