"""``POST /admin/reindex``: move the served index to another encoder while it keeps serving (an admin call).

The body's ``action``:

- ``start``: begin a reindex to ``encoder`` with ``encoder_options`` (or, without ``encoder``, resume the one
  under way) and build the new vectors on a background thread of the server (:class:`~xmodal.migration.Reindex`:
  beside the old ones, resumable, replaying the writes made meanwhile); searches keep using the old vectors;
- ``status``: the progress (``state`` ``building``, ``ready`` or ``blocked``; items done of the total;
  ``running`` while the thread builds; ``error`` when the last build stopped on one);
- ``switch``: once ``ready``, swap the vectors and the encoder in one transaction, then serve the index
  reopened with the new encoder: the reopened engine replaces the old one in the index's
  :class:`~xmodal.serve.deps.ServerState`, the one place every consumer asks for the current engine (REST
  routes, MCP over HTTP, the ``/metrics`` gauges), so all of them follow the switch at once;
- ``abort``: stop the build and drop the new vectors; the index keeps its encoder.

Options given in ``encoder_options`` that an encoder never records (a key) are kept in the server's memory
for the build and the reopen, never written or echoed. A ``postgres://`` index keeps the new vectors in its
schema (:mod:`xmodal.migration.pg_space`); after its switch the served engine reopens itself on the new encoder
(:meth:`~xmodal.Engine.follow_switch`), as every other server of the store does on the switch's notice.
"""

from __future__ import annotations

import atexit
import threading
import time
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..engine import Engine
from ..errors import ConfigError
from ..location import PostgresLocation
from ..migration import Reindex
from .auth import Principal
from .deps import ServerState, require, server
from .errors import ApiError, responses

router = APIRouter(tags=["service"])
AdminKey = Annotated[Principal, Depends(require("admin"))]


class ReindexRequest(BaseModel):
    """What to do with the reindex of the served index."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["start", "status", "switch", "abort"]
    encoder: str | None = Field(None, description="start: the new encoder's name (leave out to resume)")
    encoder_options: dict[str, Any] = Field(default_factory=dict, description="start: the new encoder's options")
    batch: int = Field(256, ge=1, le=10_000, description="start: items encoded per committed batch")
    share: float = Field(
        0.25,
        gt=0.0,
        le=1.0,
        description="start: the share of the time the build may take (it pauses after each batch for the rest), "
        "so searches keep their latency on the server's CPU; 1 for full speed",
    )


class Runner:
    """The background build of one index's reindex (one at a time): a folder, or a ``postgres://`` store."""

    def __init__(self, folder: Path | PostgresLocation) -> None:
        self.folder = folder
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.stop = threading.Event()
        self.error: str | None = None
        self.options: dict[str, Any] = {}

    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self, encoder: str | None, options: dict[str, Any], batch: int, share: float = 1.0) -> dict[str, Any]:
        with self.lock:
            if self.running():
                raise ConfigError("a reindex build is already running here: ask for its status, or abort it")
            merged = {**self.options, **options}
            job = Reindex(self.folder, merged)
            try:
                status = job.start(encoder, options) if encoder is not None else job.status()
                if status["state"] == "none":
                    raise ConfigError("no reindex is under way: start one with an encoder")
                job.encoder()  # the new encoder is made here: a bad option is this request's error
            except (TypeError, ValueError, ImportError, AttributeError) as exc:  # a name or an option it cannot take
                job.close()
                raise ConfigError(f"encoder {encoder!r} with options {sorted(options)}: {exc}") from None
            except BaseException:
                job.close()
                raise
            self.options = merged
            self.stop.clear()
            self.error = None
            self.thread = threading.Thread(
                target=self._build, args=(job, batch, share), name="xmodal-reindex", daemon=True
            )
            self.thread.start()
        return self.status()

    def _build(self, job: Reindex, batch: int, share: float) -> None:
        last = [time.perf_counter()]

        def pace(_: int) -> None:  # after each committed batch: pause so the build takes ``share`` of the time
            worked = time.perf_counter() - last[0]
            if share < 1.0:
                self.stop.wait(worked * (1.0 - share) / share)
            last[0] = time.perf_counter()

        try:
            job.run(progress=pace, stop=self.stop.is_set, batch=batch)
        except Exception as exc:  # noqa: BLE001 - the build's error is reported by status, the server goes on
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            job.close()

    def status(self) -> dict[str, Any]:
        with self.lock, Reindex(self.folder, self.options) as job:
            return {**job.status(), "running": self.running(), "error": self.error}

    def halt(self) -> None:
        self.stop.set()
        thread = self.thread
        if thread is not None:
            thread.join()

    def abort(self) -> dict[str, Any]:
        self.halt()
        with self.lock, Reindex(self.folder, self.options) as job:
            dropped = job.abort()
        self.error = None
        return {"aborted": dropped}

    def switch(self) -> dict[str, Any]:
        with self.lock:
            if self.running():
                raise ConfigError("the new vectors are still being built: wait until status says ready, then switch")
            with Reindex(self.folder, self.options) as job:
                return job.switch()


_RUNNERS: dict[str, Runner] = {}
_RUNNERS_LOCK = threading.Lock()


def runner_for(engine: Engine) -> Runner:
    """The runner of ``engine``'s index (its folder, or its store's database and schema)."""
    where = engine.location
    key = f"{where.dsn}#{where.schema}" if where is not None else str(Path(engine.path).resolve())
    with _RUNNERS_LOCK:
        return _RUNNERS.setdefault(key, Runner(where if where is not None else Path(key)))


def _reopen(state: ServerState, options: dict[str, Any], epoch: str) -> None:
    """Serve the switched index with its new encoder: a new engine in ``state``, which every REST route, MCP
    tool and metrics gauge reads at the time of each call. The old engine stays open for the requests under way
    (they answer from the old vectors; a write through it is refused) and is closed by whoever opened it; the
    new one is closed when the process exits. A ``postgres://`` index's engine reopens itself in place (it may
    have done so already, on the switch's notice)."""
    if state.engine.location is not None:
        state.engine.follow_switch()
        if state.engine.epoch != epoch:
            raise ConfigError(f"the served engine did not follow the switch to vector epoch {epoch}")
        return
    new = Engine.open(state.engine.path, encoder_options=options)
    state.engine = new
    atexit.register(new.close)


@router.post("/admin/reindex", responses=responses(400, 401, 403, 422, 429))
async def reindex(request: Request, body: ReindexRequest, _: AdminKey) -> dict[str, Any]:
    """Start, follow, switch or abort the re-embedding of the index with another encoder, while it serves
    (see the module notes). Needs the admin scope."""
    state = server(request)
    try:
        job = runner_for(state.engine)
        if body.action == "start":
            return await run_in_threadpool(job.start, body.encoder, body.encoder_options, body.batch, body.share)
        if body.action == "status":
            return await run_in_threadpool(job.status)
        if body.action == "abort":
            return await run_in_threadpool(job.abort)
        started = time.perf_counter()
        summary = await run_in_threadpool(job.switch)
        try:
            await state.write(
                lambda: _reopen(state, job.options, summary["epoch"])
            )  # on the writer thread: no write straddles it
        except Exception as exc:  # noqa: BLE001 - the switch is committed; only this server's reopen failed
            return {**summary, "reopened": False, "error": f"{type(exc).__name__}: {exc}",
                    "fix": "restart the server: it opens the index with its new encoder"}  # fmt: skip
        return {**summary, "reopened": True, "seconds": round(time.perf_counter() - started, 3)}
    except ConfigError as exc:
        raise ApiError(400, str(exc), "action", "see the error; `status` tells where the reindex stands") from None
