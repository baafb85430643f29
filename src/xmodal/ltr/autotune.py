"""Self-tuning in the background of ``add``: the default mode's fusion refitted as the catalog grows.

:class:`AutoTuner` is told of every write. Once the change log holds :data:`MIN_ITEMS` changes and has grown
by ``GROWTH - 1`` times the items of the last fit since it (or there was none; a fit that found too little text to
tune on counts as one: :class:`~.tuned.Untunable`), and the bandit has not yet taken over from real feedback
(:meth:`AutoTuner.due`, :func:`grown_enough`), it fits :func:`.selftune.tune` on a background thread: searches
and writes go on meanwhile, and the new model is used from the moment it is ready. A write that comes while a
fit runs does not start another. A due fit waits for the writes to pause (:data:`SETTLE`
seconds without one) unless the catalog has grown :data:`BUSY_GROWTH` times meanwhile, so that a load that goes
on (a REST ingest of many batches) is fitted each time it has grown fourfold (four fits on its way to 100k
items), and once more when it ends if it has grown by half since, rather than at every growth by half (a fit
of up to a minute as soon as the last one ends, on the cores the load needs). A bulk load holds the tuner
(:meth:`AutoTuner.held`: the CLI's ``add``, the demo) so that one fit starts when it ends, on the whole
catalog, rather than on its first thousand items. ``close`` stops a fit between two queries or two strategies'
batched runs (the CLI's ``add`` waits for it instead: :meth:`AutoTuner.wait`).

It is on by default; ``<index>/ltr/autotune.json`` (``xmodal ltr autotune on|off``) turns it off for an index,
the environment variable ``XMODAL_AUTOTUNE=off`` (or ``on``) for a process, and ``LTRConfig.autotune`` for a
pipeline, each over the one before.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ..errors import ConfigError, StorageError
from ..store.files import write_json
from .selftune import tune
from .tuned import HANDOVER, NO_MODEL, Untunable

if TYPE_CHECKING:
    from .pipeline import Pipeline

log = logging.getLogger(__name__)

MIN_ITEMS = 1_000  # below this a catalog is tuned only on request (`xmodal ltr tune`)
GROWTH = 1.5  # refit once the catalog is this many times the size the model was fitted on (writes paused)
BUSY_GROWTH = 4.0  # ... or this many times, while writes go on (a first fit: this many times MIN_ITEMS)
SETTLE = 2.0  # seconds without a write for the writes to count as paused
FILE = "autotune.json"  # an index's own setting, in its ltr folder: {"format_version": 1, "enabled": false}
FORMAT = 1
ENV = "XMODAL_AUTOTUNE"  # "off" or "on": this process's setting, over every index's own


def configured(folder: Path) -> bool:
    """Whether the index whose ltr folder is ``folder`` tunes in the background: ``XMODAL_AUTOTUNE`` when it is
    set, else the index's saved setting, else on."""
    given = os.environ.get(ENV, "").strip().lower()
    if given:
        if given not in ("on", "off"):
            raise ConfigError(f"{ENV}={given!r}: use on or off")
        return given == "on"
    try:
        data = json.loads((folder / FILE).read_text())
    except FileNotFoundError:
        return True
    except (OSError, ValueError) as exc:
        raise StorageError(f"{folder / FILE}: unreadable ({exc}); run `xmodal ltr autotune on` or `off`") from exc
    if not isinstance(data, dict) or data.get("format_version") != FORMAT or not isinstance(data.get("enabled"), bool):
        raise StorageError(f"{folder / FILE}: not an autotune setting; run `xmodal ltr autotune on` or `off`")
    return bool(data["enabled"])


def save(folder: Path, enabled: bool) -> None:
    write_json(folder / FILE, {"format_version": FORMAT, "enabled": enabled})


class Growth(NamedTuple):
    """The change log's position, and at the last fit its position and the items it was fitted on (0: none)."""

    seq: int
    at: int
    fitted: int


def grown_enough(growth: Growth, *, busy: bool = False) -> bool:
    """At least :data:`MIN_ITEMS` changes for a first fit, then changes since the last fit worth ``GROWTH - 1``
    times the items it was fitted on (an update or a delete counts as a change too); ``busy`` (while writes go
    on): :data:`BUSY_GROWTH` in place of ``GROWTH``, and for a first fit that many times :data:`MIN_ITEMS`."""
    if not growth.fitted:
        return growth.seq >= MIN_ITEMS * (BUSY_GROWTH if busy else 1.0)
    return growth.seq - growth.at >= ((BUSY_GROWTH if busy else GROWTH) - 1.0) * growth.fitted


class AutoTuner:
    """Starts one background fit at a time for a pipeline, when the catalog warrants one."""

    def __init__(self, pipeline: Pipeline, *, enabled: bool = True) -> None:
        self.pipeline = pipeline
        self.enabled = enabled
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._held = 0  # bulk loads in progress (:meth:`held`)
        self._written = -float("inf")  # time.monotonic() of the last write (:meth:`written`)
        self._timer: threading.Timer | None = None  # a look again once the writes may have paused
        self.last_error: str | None = None

    def due(self, *, busy: bool = False) -> bool:
        """Whether the catalog should be (re)fitted now (:func:`grown_enough`); ``busy``: while writes go on."""
        growth = self._growth()
        return growth is not None and grown_enough(growth, busy=busy)

    def _growth(self) -> Growth | None:
        """The catalog's growth since the last fit, judged by the change log alone (reading the catalog's size
        would sync the engine, which a write in progress, or an engine still opening, cannot do); None when no
        fit may start (the tuner is off, or the bandit has taken over from real feedback)."""
        pipe = self.pipeline
        if not self.enabled or float(pipe.policy.counts_.sum()) >= HANDOVER:
            return None
        seq = pipe.engine.last_seq()
        report = {} if pipe.tuned is None else pipe.tuned.report
        fitted, at = int(report.get("items", 0)), int(report.get("seq", 0))
        if not fitted and pipe.untunable is not None:  # not again after every write: once the catalog has grown
            fitted = at = pipe.untunable.seq
        return Growth(seq, at, fitted)

    def written(self) -> bool:
        """Called after every write: it restarts the pause a due fit waits for (:data:`SETTLE`), then
        :meth:`consider`."""
        self._written = time.monotonic()
        return self.consider()

    def consider(self) -> bool:
        """Start a background fit if one is due and none is running; whether one started (called after every
        write: cheap when the tuner is off or a fit runs). While the writes have not paused, a fit due only by
        ``GROWTH`` waits: a timer looks again once they may have."""
        with self._lock:
            if not self.enabled or self._held or self.running or self._stop.is_set():
                return False
            growth = self._growth()  # once: on a database store, a query to its server
            if growth is None or not grown_enough(growth):
                return False
            quiet = time.monotonic() - self._written
            if quiet < SETTLE and not grown_enough(growth, busy=True):
                self._say(f"no self-tuned fusion yet: one is fitted once the writes pause ({SETTLE:g} s)")
                self._look_again(SETTLE - quiet)
                return False
            self._say("no self-tuned fusion yet: one is being fitted on the catalog")
            self._thread = threading.Thread(target=self._fit, name="xmodal-selftune", daemon=True)
            self._thread.start()
            return True

    def _say(self, status: str) -> None:
        """``explain.tuning.status`` while no model is in use (a model's, or an untunable catalog's, stands)."""
        pipe = self.pipeline
        if pipe.tuned is None and pipe.untunable is None:
            pipe.tuned_status = status

    def _look_again(self, after: float) -> None:
        """:meth:`consider` again in ``after`` seconds (one timer at a time: a later one finds the writes'
        new pause itself)."""
        timer = self._timer
        if timer is not None and timer.is_alive() and timer is not threading.current_thread():
            return
        self._timer = threading.Timer(after, self.consider)
        self._timer.name, self._timer.daemon = "xmodal-selftune-wait", True
        self._timer.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _fit(self) -> None:
        try:
            model = tune(self.pipeline, stop=self._stop)
        except Untunable as found:  # explain says why; the untuned fusion stays
            self.pipeline.set_untunable(found)
            return
        except Exception as exc:  # a failed fit never breaks writes or searches: the bandit's plan stays
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("self-tuning failed (%s): the default mode keeps its previous fusion", self.last_error)
            self._say(f"{NO_MODEL} (self-tuning failed: {self.last_error})")
            return
        if model is not None and not self._stop.is_set():
            self.pipeline.set_tuned(model)
        else:
            self._say(NO_MODEL)  # stopped

    @contextmanager
    def held(self) -> Iterator[None]:
        """No fit starts from the writes within (a bulk load); one starts at the end if one is due then (the
        load's writes are over: no pause is waited for)."""
        with self._lock:
            self._held += 1
        try:
            yield
        finally:
            with self._lock:
                self._held -= 1
                if not self._held:
                    self._written = -float("inf")
            self.consider()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running fit (if any), and the one waiting for the writes to pause, are done."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            timer, thread = self._timer, self._thread
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if timer is not None and timer.is_alive():
                timer.join(left)
            elif thread is not None and thread.is_alive():
                thread.join(left)
            else:
                return
            if deadline is not None and time.monotonic() >= deadline:
                return

    def close(self) -> None:
        """Stop a running fit (between two queries or two strategies' batched runs) and wait for its thread."""
        self._stop.set()
        with self._lock:  # a look again under way ends before the engine closes
            timer = self._timer
        if timer is not None:
            timer.cancel()
        self.wait()
