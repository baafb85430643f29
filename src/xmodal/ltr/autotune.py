"""Self-tuning in the background of ``add``: the default mode's fusion refitted as the catalog grows.

:class:`AutoTuner` watches the catalog's size (the pipeline tells it of every write). Once the catalog has
:data:`MIN_ITEMS` items and has grown by :data:`GROWTH` since the last fit (or was never fitted), and the
bandit has not yet taken over from real feedback, it fits :func:`.selftune.tune` on a background thread:
searches and writes go on meanwhile, and the new model is used from the moment it is ready. A write that
comes while a fit runs does not start another; the next write after it does, if the catalog grew enough.
``close`` stops a fit between batches (the CLI's ``add`` waits for it instead: :meth:`wait`).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from .selftune import tune
from .tuned import HANDOVER

if TYPE_CHECKING:
    from .pipeline import Pipeline

log = logging.getLogger(__name__)

MIN_ITEMS = 1_000  # below this a catalog is tuned only on request (`xmodal ltr tune`)
GROWTH = 1.5  # refit once the catalog is this many times the size the model was fitted on


class AutoTuner:
    """Starts one background fit at a time for a pipeline, when the catalog warrants one."""

    def __init__(self, pipeline: Pipeline, *, enabled: bool = True) -> None:
        self.pipeline = pipeline
        self.enabled = enabled
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    def due(self, items: int) -> bool:
        """Whether a catalog of ``items`` items should be (re)fitted now."""
        pipe = self.pipeline
        if not self.enabled or items < MIN_ITEMS or float(pipe.policy.counts_.sum()) >= HANDOVER:
            return False
        fitted = 0 if pipe.tuned is None else int(pipe.tuned.report.get("items", 0))
        return items >= GROWTH * fitted if fitted else True

    def consider(self, items: int) -> bool:
        """Start a background fit if one is due and none is running; whether one started."""
        with self._lock:
            if self.running or self._stop.is_set() or not self.due(items):
                return False
            self._thread = threading.Thread(target=self._fit, name="xmodal-selftune", daemon=True)
            self._thread.start()
            return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _fit(self) -> None:
        try:
            model = tune(self.pipeline, stop=self._stop)
        except Exception as exc:  # a failed fit never breaks writes or searches: the bandit's plan stays
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("self-tuning failed (%s): the default mode keeps its previous fusion", self.last_error)
            return
        if model is not None and not self._stop.is_set():
            self.pipeline.set_tuned(model)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running fit (if any) is done."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def close(self) -> None:
        """Stop a running fit (between batches) and wait for its thread."""
        self._stop.set()
        self.wait()
