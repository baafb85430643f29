"""Distributed add on Ray: the catalog is read here, its items decoded and encoded by Ray workers (one actor
per CPU, or per GPU when the cluster has GPUs, each with the index's encoder loaded once), and the encoded
batches written through the store here, in catalog order, one transaction per batch.

Guarantees, as :func:`xmodal.ingest.catalog.add_catalogs` gives them: a bad item is rejected alone with its
catalog line; a batch is committed whole or not at all. On top of them:

- **Resumable.** Each committed batch is recorded (:mod:`xmodal.ingest.journal`); the same add run again
  after a failure skips the batches recorded and goes on. The record goes when the add completes.
- **A worker that dies mid-batch** (killed, out of memory, its node lost) is restarted by Ray and its batch
  given to a worker again, up to ``max_attempts`` times; after that the batch's items are rejected with
  the reason, its record is left out (running the add again retries just those batches), and every other
  batch goes on. Nothing a worker held was acknowledged, so nothing acknowledged is lost.
- **Progress**: ``progress(n)`` after each batch committed (or skipped as done before).

Workers read media from the catalog's folder, which must be at the same path on every node (a shared
folder); the media bytes come back with the vectors and are filed in the index's media store here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, StorageError
from ..splitters import SplitOptions
from .catalog import CHUNK, SortedChunk, base_dir_of, read_catalog, replace_documents, sort_chunk
from .journal import DoneBatch, Journal, batch_digest, job_key
from .prepare import AddReport, Rejection, chunks
from .ray_cluster import connected
from .ray_worker import BatchEncoder, EncodedBatch

if TYPE_CHECKING:
    from ..engine import Engine

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
RESTART_SECONDS = 120  # how long a dead worker may take to come back (its model loads again)
BATCH = CHUNK // 4  # items per worker call: small enough to keep every worker busy, big enough to batch the model


@dataclass(slots=True)
class WorkerFigures:
    """What one worker encoded: items and the seconds it spent decoding and encoding them."""

    items: int = 0
    seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0


@dataclass(slots=True)
class RayAddReport:
    """The outcome of a distributed add: the items' report, and how the run went."""

    report: AddReport = field(default_factory=AddReport)
    batches: int = 0  # committed in this run
    resumed: int = 0  # skipped: committed by an earlier run of the same add
    retries: int = 0  # batch attempts lost to a worker that died
    workers: int = 0
    gpus_per_worker: float = 0.0
    startup_seconds: float = 0.0  # starting the workers and loading their models
    seconds: float = 0.0  # from then to the last commit
    per_worker: dict[str, WorkerFigures] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        added = len(self.report.added)
        return {
            **self.report.to_dict(),
            "batches": self.batches,
            "resumed": self.resumed,
            "retries": self.retries,
            "workers": self.workers,
            "gpus_per_worker": self.gpus_per_worker,
            "startup_seconds": round(self.startup_seconds, 3),
            "seconds": round(self.seconds, 3),
            "items_per_second": round(added / self.seconds, 1) if self.seconds else 0.0,
            "per_worker": {
                name: {"items": f.items, "seconds": round(f.seconds, 3), "items_per_second": round(f.per_second, 1)}
                for name, f in sorted(self.per_worker.items())
            },
        }


@dataclass(slots=True)
class _Batch:
    number: int
    base: Path
    chunk: SortedChunk
    digest: str
    attempts: int = 0


_Outcome = EncodedBatch | DoneBatch | Rejection  # encoded; committed before; or given up on (the reason)


def ray_add(
    engine: Engine,
    paths: Iterable[str | Path],
    *,
    cluster: str | None = None,
    workers: int | None = None,
    batch_size: int = BATCH,
    max_attempts: int = MAX_ATTEMPTS,
    resume: bool = True,
    worker_options: Mapping[str, Any] | None = None,
    progress: Callable[[int], object] | None = None,
    allow_outside: bool = False,
    name_as_text: bool = False,
    follow_symlinks: bool = False,
    split_options: SplitOptions | None = None,
) -> RayAddReport:
    """Add the catalogs at ``paths`` (JSON Lines, CSV, Parquet, folders, documents) to ``engine``, decoding
    and encoding on the Ray cluster at ``cluster`` (see :func:`xmodal.ingest.ray_cluster.connected`: an
    address, ``local`` for a one-node cluster on 127.0.0.1, or the connection the caller made). ``workers``
    defaults to one per GPU of the cluster, else one per CPU; ``worker_options`` are encoder options for
    the workers only (``{"device": "cuda"}``). ``resume=False`` ignores the progress of an earlier run."""
    if batch_size < 1 or max_attempts < 1 or (workers is not None and workers < 1):
        raise ConfigError("batch_size, max_attempts and workers must be at least 1")
    catalogs = [Path(p) for p in paths]
    options = {"batch": batch_size, "outside": allow_outside, "names": name_as_text, "links": follow_symlinks}
    journal = Journal(engine.path, job_key(catalogs, options))
    if not resume:
        journal.forget()
    with connected(cluster) as ray:
        run = _Run(ray, engine, journal, max_attempts, progress)
        run.start_workers(workers, dict(worker_options or {}))
        reader = _batches(catalogs, batch_size, allow_outside, name_as_text, follow_symlinks, split_options)
        run.run(reader)
    if not run.failed:
        journal.forget()
    return run.result


def _batches(
    paths: list[Path],
    size: int,
    allow_outside: bool,
    name_as_text: bool,
    follow_symlinks: bool,
    split_options: SplitOptions | None,
) -> Iterator[_Batch]:
    """The catalogs' records in numbered batches (ids repeated across them refused, as in a one-process add);
    a file that cannot be read to its end gives a batch of that one rejection."""
    seen: set[str] = set()
    number = 0
    for path in paths:
        base = base_dir_of(path)
        records = read_catalog(
            path,
            allow_outside=allow_outside,
            name_as_text=name_as_text,
            follow_symlinks=follow_symlinks,
            split_options=split_options,
        )
        try:
            for chunk in chunks(records, size):
                sorted_chunk = sort_chunk(chunk, seen)
                names = [item.id for item in sorted_chunk.items] + [r.where for _, r in sorted_chunk.rejected]
                yield _Batch(number, base, sorted_chunk, batch_digest(names))
                number += 1
        except OSError as exc:
            failed = Rejection(str(path), f"cannot read the rest of this file: {exc}")
            yield _Batch(number, base, SortedChunk([], {}, {}, [(0, failed)], 1), batch_digest([failed.where]))
            number += 1


class _Run:
    """One distributed add: the workers, the batches in flight, and the commits in catalog order."""

    def __init__(
        self,
        ray: Any,
        engine: Engine,
        journal: Journal,
        max_attempts: int,
        progress: Callable[[int], object] | None,
    ) -> None:
        self.ray, self.engine, self.journal = ray, engine, journal
        self.max_attempts, self.progress = max_attempts, progress
        self.done = journal.done()
        self.result = RayAddReport()
        self.actors: list[Any] = []
        self.busy: list[int] = []
        self.in_flight: dict[Any, tuple[_Batch, int]] = {}
        self.ready: dict[int, tuple[_Batch, _Outcome]] = {}
        self.next_commit = 0
        self.failed = False
        self.started = time.perf_counter()

    # -- workers ----------------------------------------------------------------------------------
    def start_workers(self, count: int | None, options: dict[str, Any]) -> None:
        """Start the encoder actors (restarted by Ray when one dies) and wait until each has its model."""
        resources = self.ray.cluster_resources()
        gpus = float(resources.get("GPU", 0.0))
        count = count or max(1, int(gpus or resources.get("CPU", 1.0)))
        per_gpu = min(1.0, gpus / count) if gpus else 0.0
        remote = self.ray.remote(BatchEncoder).options(num_cpus=1 if not gpus else 0, num_gpus=per_gpu, max_restarts=-1)
        config = self.engine.encoder_config
        self.actors = [remote.remote(config, options, self.engine.dim) for _ in range(count)]
        self.busy = [0] * count
        try:
            self.ray.get([actor.pid.remote() for actor in self.actors])
        except self.ray.exceptions.RayError as exc:
            raise ConfigError(f"the Ray workers could not load this index's encoder: {_cause(exc)}") from exc
        self.result.workers, self.result.gpus_per_worker = count, per_gpu
        now = time.perf_counter()
        self.result.startup_seconds, self.started = now - self.started, now

    def _submit(self, batch: _Batch) -> None:
        worker = min(range(len(self.actors)), key=self.busy.__getitem__)
        chunk = batch.chunk
        ref = self.actors[worker].encode.remote(chunk.items, str(batch.base), chunk.vectors)
        self.in_flight[ref] = (batch, worker)
        self.busy[worker] += 1

    # -- the run ----------------------------------------------------------------------------------
    def run(self, batches: Iterator[_Batch]) -> None:
        """Feed the batches to the workers, one batch per worker at a time (so a worker's death is its batch's
        alone), committing each finished one in catalog order while the workers encode the next."""
        for batch in batches:
            before = self.done.get(batch.number)
            if before is not None and before.digest == batch.digest:
                self.ready[batch.number] = (batch, before)
            elif not batch.chunk.items:
                self.ready[batch.number] = (batch, EncodedBatch([], {}, AddReport(), "", 0.0))
            else:
                self._submit(batch)
            self._drain()
            while len(self.in_flight) >= len(self.actors):
                self._wait()
        while self.in_flight:
            self._wait()
        self._drain()
        self.result.seconds = time.perf_counter() - self.started

    def _wait(self) -> None:
        """Take the next batch a worker finished (or died on: retried, or given up on)."""
        finished, _ = self.ray.wait(list(self.in_flight), num_returns=1)
        batch, worker = self.in_flight.pop(finished[0])
        self.busy[worker] -= 1
        try:
            encoded = self.ray.get(finished[0])
        except (self.ray.exceptions.RayActorError, self.ray.exceptions.WorkerCrashedError) as exc:
            self._died(batch, worker, exc)
            return
        except self.ray.exceptions.RayTaskError as exc:  # the encoder's own error (a model that cannot serve)
            raise _cause(exc) from None
        self.ready[batch.number] = (batch, encoded)

    def _died(self, batch: _Batch, worker: int, exc: Exception) -> None:
        """The worker died on ``batch``: once Ray has restarted it, the batch runs again, up to the bound."""
        batch.attempts += 1
        self.result.retries += 1
        self._revive(worker)
        if batch.attempts < self.max_attempts:
            log.warning("a Ray worker died on batch %d (%s); running it again", batch.number, type(exc).__name__)
            self._submit(batch)
            return
        reason = (
            f"the Ray worker encoding this item's batch died {batch.attempts} times ({type(exc).__name__}); the "
            "batch was not added: run the same add again to retry it (the batches added are skipped)"
        )
        self.ready[batch.number] = (batch, Rejection("", reason))

    def _revive(self, worker: int) -> None:
        """Wait until Ray has restarted the worker (a call made while it restarts fails too)."""
        deadline = time.monotonic() + RESTART_SECONDS
        while True:
            try:
                self.ray.get(self.actors[worker].pid.remote(), timeout=RESTART_SECONDS)
                return
            except (self.ray.exceptions.RayActorError, self.ray.exceptions.GetTimeoutError) as exc:
                if time.monotonic() > deadline:
                    raise StorageError(
                        f"a Ray worker did not come back within {RESTART_SECONDS} s of dying ({exc}); the batches "
                        "committed are kept: check the cluster (`ray status`), then run the same add again"
                    ) from exc
                time.sleep(0.1)

    def _drain(self) -> None:
        """Commit the finished batches that are next in catalog order."""
        while self.next_commit in self.ready:
            self._commit(*self.ready.pop(self.next_commit))
            self.next_commit += 1

    def _commit(self, batch: _Batch, outcome: _Outcome) -> None:
        """Write one batch through the store (after the batches before it), record it, report it."""
        report = AddReport()
        if isinstance(outcome, DoneBatch):
            report.added, report.rejected = list(outcome.added), list(outcome.rejected)
            self.result.resumed += 1
        elif isinstance(outcome, Rejection):
            given_up = AddReport(rejected=[Rejection(item.id, outcome.reason) for item in batch.chunk.items])
            batch.chunk.finish(given_up, report)
            self.failed = True
        else:
            batch.chunk.finish(self._write(batch, outcome), report)
            self.journal.record(batch.number, batch.digest, report)
            self.result.batches += 1
            if outcome.worker:
                figures = self.result.per_worker.setdefault(outcome.worker, WorkerFigures())
                figures.items += outcome.items
                figures.seconds += outcome.seconds
        self.result.report.merge(report)
        if self.progress is not None:
            self.progress(batch.chunk.size)

    def _write(self, batch: _Batch, encoded: EncodedBatch) -> AddReport:
        replace_documents(self.engine, batch.chunk.items)
        for ref, data in encoded.media.items():
            if self.engine.media.put(data, PurePath(ref).suffix) != ref:
                raise StorageError(f"the media file {ref} was filed under another name: the worker's xmodal differs")
        return AddReport(added=self.engine.add_encoded(encoded.entries), rejected=list(encoded.report.rejected))


def _cause(exc: Exception) -> Exception:
    """The error a Ray task or actor raised, out of Ray's wrapper."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, Exception) else exc
