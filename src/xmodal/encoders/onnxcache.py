"""onnxruntime sessions and the on-disk cache of models exported once to ONNX.

The cache folder is ``$XMODAL_CACHE`` or ``~/.cache/xmodal``; file names carry the xmodal version
and an export format tag, so an upgrade never loads a stale export. Exports are written to a
temporary file and renamed into place (readers never see a partial file), under an advisory
inter-process lock (``filelock``; two processes that race export once).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ..errors import MissingDependency
from ..store.files import write_atomic
from .preparing import Stage, preparing

T = TypeVar("T")
R = TypeVar("R")


def require(module: str) -> Any:
    """Import an optional dependency of the offline encoder, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(module, "models") from exc


def default_threads() -> int:
    """Threads for one inference call: the usable cores (affinity-aware), at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def _options(ort: Any, threads: int, level: Any) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = level
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def ort_session(path: str | Path, threads: int = 1, cache: Path | None = None) -> Any:
    """An onnxruntime CPU session; one intra-op thread by default (see :func:`parallel_map`).

    It loads the pre-optimised copy of :func:`optimized_copy` when it can (MiniLM int8: ~15 ms
    instead of ~90 ms, the same outputs), else ``path`` itself. Spinning is off: idle worker threads
    would otherwise burn the cores that the store, the image decoder and other processes need.
    """
    ort = require("onnxruntime")
    level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        fast = optimized_copy(path, cache)
        return ort.InferenceSession(str(fast), _options(ort, threads, level), providers=["CPUExecutionProvider"])
    except Exception:  # a read-only cache, a damaged copy, a runtime that cannot save one: the source
        return ort.InferenceSession(str(path), _options(ort, threads, level), providers=["CPUExecutionProvider"])


def optimized_copy(path: str | Path, cache: Path | None = None) -> Path:
    """``path`` with onnxruntime's graph optimisations applied, weights in a memory-mapped side file; made once.

    The copy is optimised at the portable ``EXTENDED`` level (fusions, no layout for this CPU) and
    its name carries the source's path, size and mtime and the runtime version, so an updated model
    or runtime makes a new copy. Loading it skips the graph optimisation and the copy of the weights
    into the protobuf, most of a session's start-up.
    """
    ort = require("onnxruntime")
    source = Path(path)
    stat = source.stat()
    key = hashlib.sha256(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    target = (cache if cache is not None else cache_dir()) / f"{source.stem}-{key}-ort{ort.__version__}.opt.onnx"
    data_name = target.name.removesuffix(".onnx") + ".data"  # beside the model, written before it is renamed in

    def save(tmp: str, stage: Stage) -> None:
        options = _options(ort, 1, ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
        options.optimized_model_filepath = tmp
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name", data_name)
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])

    ensure_exported(target, save)
    return target


def cache_dir() -> Path:
    """Where exported models and label embeddings are kept: ``$XMODAL_CACHE`` or ``~/.cache/xmodal``."""
    env = os.environ.get("XMODAL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "xmodal"


def versioned(cache: Path | None, stem: str, suffix: str) -> Path:
    """``<cache>/<stem>-xmodal<version><suffix>``."""
    from .._version import __version__

    return (cache if cache is not None else cache_dir()) / f"{stem}-xmodal{__version__}{suffix}"


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """An inter-process lock on the file ``path`` (``filelock``: ``flock`` on POSIX, ``msvcrt`` on Windows)."""
    filelock = require("filelock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(path)):
        yield


def ensure_exported(
    path: Path, export: Callable[[str, Stage], None], *, what: str | None = None, stages: Sequence[str] = ()
) -> bool:
    """Make sure ``path`` exists, calling ``export(tmp_path, stage)`` if not; True when this call exported.
    With ``what``, the export is announced as a one-time preparation of ``stages`` (:func:`.preparing.preparing`;
    ``stage(name)`` starts each), other libraries' output silenced meanwhile."""
    if path.is_file():
        return False
    with exclusive(path.with_name(path.name + ".lock")):
        if path.is_file():  # another process finished while we waited for the lock
            return False
        if what is None:
            write_atomic(path, lambda tmp: export(tmp, _no_stage))
        else:
            with preparing(what, stages) as stage:
                write_atomic(path, lambda tmp: export(tmp, stage))
        return True


def _no_stage(name: str) -> None:
    """A stage callback that shows nothing (an export nobody needs to hear about)."""


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=default_threads(), thread_name_prefix="xmodal-encode")
        return _POOL


def chunk_rows(order: Sequence[int], batch_size: int, workers: int) -> list[list[int]]:
    """Split rows into batches of at most ``batch_size``, small enough that every worker gets one."""
    n = len(order)
    if n == 0:
        return []
    size = max(1, min(batch_size, -(-n // max(1, workers))))
    return [list(order[i : i + size]) for i in range(0, n, size)]


def parallel_map(run: Callable[[T], R], chunks: Sequence[T], workers: int) -> list[R]:
    """``[run(c) for c in chunks]``, on up to ``workers`` threads.

    Data parallelism over batches with single-threaded onnxruntime sessions uses the cores better
    than one session's intra-op threads on small batches (no per-operator synchronisation), and
    preprocessing runs in parallel too. One chunk runs inline in the caller's thread.
    """
    if workers <= 1 or len(chunks) <= 1:
        return [run(c) for c in chunks]
    return list(_pool().map(run, chunks))
