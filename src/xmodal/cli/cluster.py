"""``xmodal add --cluster ADDRESS``: the add's decoding and encoding on a Ray cluster
(:mod:`xmodal.ingest.ray_ingest`)."""

from __future__ import annotations

import argparse
from typing import Any

from ..ingest.prepare import AddReport
from ..splitters import SplitOptions
from .common import UsageError, encoder_options


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``xmodal add`` that run it on a Ray cluster."""
    group = parser.add_argument_group("on a Ray cluster (pip install 'xmodal[ray]')")
    group.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="decode and encode on the Ray cluster at ray://HOST:PORT (or auto; local: a one-node cluster on "
        "127.0.0.1); an interrupted add run again goes on from the batches it committed",
    )
    group.add_argument("--workers", type=int, metavar="N", help="encoder workers (default: one per GPU, else CPU)")
    group.add_argument("--batch-size", type=int, default=256, metavar="N", help="items per worker call (256)")
    group.add_argument(
        "--restart", action="store_true", help="ignore the progress of an interrupted run of the same add"
    )
    group.add_argument(
        "--worker-option",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="an encoder option for the workers only (device=cuda; repeat for several)",
    )


def run_cluster_add(args: argparse.Namespace, engine: Any, options: SplitOptions, bar: Any) -> AddReport:
    """Run the add on the cluster; the JSON report gains the run's figures (batches, workers, per worker)."""
    from ..ingest.ray_ingest import ray_add

    if args.batch_size < 1 or (args.workers is not None and args.workers < 1):
        raise UsageError("--batch-size and --workers must be at least 1")
    result = ray_add(
        engine,
        args.paths,
        cluster=args.cluster,
        workers=args.workers,
        batch_size=args.batch_size,
        resume=not args.restart,
        worker_options=encoder_options(args.worker_option),
        progress=bar.update,
        allow_outside=args.allow_outside_images,
        name_as_text=args.name_as_text,
        follow_symlinks=args.follow_symlinks,
        split_options=options,
    )
    args.cluster_figures = {k: v for k, v in result.to_dict().items() if k not in ("added", "rejected")}
    return result.report
