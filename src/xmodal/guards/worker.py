"""The document guard's scan of a large add in a worker process, on another core while the engine encodes and
stores the same items.

The scan (the rules and the injection classifier, :meth:`.check.Guard.document_findings_many`, and the
toxicity model) is pure Python for the most part, so a thread would hold the interpreter's lock the encoder and
the store need: only another process runs it beside them. The engine announces each chunk of an add before it
encodes it (:meth:`.extension.GuardsExtension.ahead`); the scan is sent here then, and its results are taken
where the scan ran before — in the guards' ``on_put``, after the store's commit and before the write returns —
for exactly the texts scanned (a text that differs, or an item the worker did not scan, is scanned in the
process as before). An item is screened as it was before this module, by the same models (the worker loads
them from the same policy and says so; a different status and the worker is not used), with the same results
bit for bit (each text's findings and probabilities do not depend on the batch it is in).

The worker is a fork of this process when it runs one thread (:data:`FORK`: the policy's models are already
loaded, so it takes the first chunk within milliseconds — a new interpreter takes ~0.5 s to import and load them,
during which ~18 chunks of a 20k add were scanned in the writer), else a child interpreter (``sys.executable``:
forking a process whose other threads may hold locks is not safe). It is started for the first add of at least
:data:`START_AT` items — small adds and tiny engines never pay for it — and
kept for the next ones until the extension closes, or :data:`IDLE_S` seconds pass without a scan. When a
chunk's scan is not done when ``on_put`` needs it (:data:`BEHIND_S`: the machine is busy), the chunk is scanned
in the process, as it is while the worker starts; a worker that cannot start, dies or answers with an error is
given up, and the scan runs in the process for the rest of the engine's life. (One that hangs takes no more
chunks: the next is sent only when it has answered.)

Frames on the pipes are a 4-byte length and a pickle (of this module's own tuples: both ends are this code).
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import IO, TYPE_CHECKING, Any, NoReturn

from .policy import Policy
from .rules import Finding

if TYPE_CHECKING:
    from .check import Guard
    from .results import ResultGuard

log = logging.getLogger(__name__)

#: An add of at least this many items starts the worker (the child's start, ~0.5 s of the other core's time,
#: is then a small part of the scan it takes over: ~0.05 ms of scan per item).
START_AT = 4096
#: Seconds without a scan after which the worker is closed (the next large add starts one again).
IDLE_S = 60.0
#: Seconds ``on_put`` waits for a chunk's scan still running in the worker before it scans the chunk itself
#: (0: not at all — on a busy machine each wait costs a wake-up's wait for a core, more than the chunk's scan).
BEHIND_S = 0.0

#: The child's niceness over the parent's: an idle core runs it all the same, a busy machine runs the writer first
#: (its chunks the worker has not finished by then are scanned in the writer, as before).
NICE = 10

#: Start the worker by forking this process when it runs no other thread (the models it already loaded are the
#: worker's: the same objects, so the same results); else, or False, a child interpreter loads them.
FORK = True
#: Seconds the add's first chunk waits for a forked worker to say it is up (it loads nothing: a few ms; a busy
#: machine that runs it later leaves that chunk to the writer, as before).
FORK_READY_S = 0.01

_HEADER = struct.Struct("<I")
#: The child's program: ``xmodal``'s own ``__init__`` (the engine, every backend: half a second) is not run, only
#: the guards' modules and what they import are loaded.
_BOOT = """
import importlib.util, sys, types
spec = importlib.util.find_spec("xmodal")
package = types.ModuleType("xmodal")
package.__path__, package.__spec__ = list(spec.submodule_search_locations), spec
sys.modules["xmodal"] = package
from xmodal.guards.worker import serve
sys.exit(serve())
"""
_PIPE_BYTES = 1 << 20  # a chunk's request or answer never waits for the other end to read (Linux)

#: what a scan returns: each text's findings as (category, rule, evidence), and each toxicity text's probability
Scanned = tuple[list[list[tuple[str, str, str]]], list[float] | None]


def _write(stream: IO[bytes], obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read(stream: IO[bytes]) -> Any:
    """The next frame's object; EOFError when the other end has gone."""
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError
    size = _HEADER.unpack(head)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)  # noqa: S301 - our own child's frames, on our own pipe


class Scan:
    """One chunk's scan, sent to the worker: its results by (item id, text) once it answered."""

    def __init__(self, docs: dict[tuple[str, str], int], tox: dict[str, int], future: Future[Scanned]) -> None:
        self.docs = docs  # (item id, document text) -> position in the request
        self.tox = tox  # toxicity text -> position
        self.future = future

    def result(self) -> Scanned | None:
        """The worker's answer if it comes within :data:`BEHIND_S` seconds, else None (the caller scans in its
        process: never waits on a worker held back by a busy machine; the late answer is dropped)."""
        try:
            return self.future.result(timeout=BEHIND_S)
        except FutureTimeout:
            return None
        except Exception as exc:  # noqa: BLE001 - the worker failed (:meth:`failed`): the caller scans
            log.warning("guards: the scan worker failed (%s); scanning in the process", exc)
            return None

    def failed(self) -> bool:
        """The worker could not answer (gone, or an error in it)."""
        return self.future.done() and self.future.exception() is not None


class ScanWorker:
    """A child process with the policy's document models loaded, scanning one chunk at a time."""

    def __init__(
        self, policy: Policy, expect: tuple[str, str], models: tuple[Guard, ResultGuard] | None = None
    ) -> None:
        """Start the child (returns at once; it loads while the caller goes on). ``expect``: this process's
        (classifier status, toxicity status); a child that loaded otherwise is not used. ``models``: this
        process's guards of ``policy``, which a forked child (:data:`FORK`) scans with."""
        self.forked = models is not None and FORK and hasattr(os, "fork") and threading.active_count() == 1
        self._proc: subprocess.Popen[bytes] | _Forked
        if self.forked and models is not None:
            self._proc = _Forked(models)
            self._to, self._from = self._proc.stdin, self._proc.stdout
        else:
            env = dict(os.environ)
            env.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
            env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # where this process found xmodal
            popen = subprocess.Popen(  # noqa: S603 - this interpreter, our own module
                [sys.executable, "-c", _BOOT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
            )
            assert popen.stdin is not None and popen.stdout is not None
            self._proc, self._to, self._from = popen, popen.stdin, popen.stdout
        for pipe in (self._to, self._from):
            try:
                import fcntl

                fcntl.fcntl(pipe.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), _PIPE_BYTES)
            except (ImportError, OSError):
                pass  # not Linux, or over the system's limit: the default size
        self._lock = threading.Lock()
        self._ready: Future[bool] = Future()
        self._pending: list[Future[Scanned]] = []  # sent, not yet answered (in order)
        self.failed = False  # it failed (did not start, died, answered otherwise): the engine scans in process
        self.closed = False  # closed (idle, or the extension closed): a later large add may start another
        self._expect = expect
        try:
            if not self.forked:  # a forked child has the policy's models already
                _write(self._to, (policy, NICE))
        except OSError:
            self.failed = True
        self._idle: threading.Timer | None = None  # one timer, armed again until IDLE_S pass without a scan
        self._last = time.monotonic()  # the last scan sent or answered
        self._reader = threading.Thread(target=self._read_answers, name="guards-scan-reader", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def ready(self) -> bool:
        """The child has loaded its models (the same as this process's) and takes scans."""
        return self._ready.done() and not (self.failed or self.closed) and self._ready.result()

    def wait_ready(self, timeout: float) -> bool:
        """:meth:`ready`, waiting up to ``timeout`` seconds for the child to load."""
        try:
            self._ready.result(timeout)
        except FutureTimeout:
            return False
        return self.ready()

    def busy(self) -> bool:
        with self._lock:
            return bool(self._pending)

    def submit(self, docs: Sequence[tuple[str, str]], tox: Sequence[str]) -> Scan | None:
        """Send a chunk's (item id, document text) pairs and toxicity texts; None when the worker cannot take
        it now (not ready yet, gone, or another scan outstanding: the caller scans in the process)."""
        with self._lock:
            if not self.ready() or self._pending:
                return None
            future: Future[Scanned] = Future()
            texts = list(dict.fromkeys(t for _, t in docs))
            positions = {t: i for i, t in enumerate(texts)}
            tox_texts = list(dict.fromkeys(tox))
            try:
                _write(self._to, ("scan", texts, tox_texts))
            except OSError as exc:
                self.failed = True
                log.warning("guards: the scan worker is gone (%s); scanning in the process", exc)
                return None
            self._pending.append(future)
            self._last = time.monotonic()
        return Scan({d: positions[d[1]] for d in docs}, {t: i for i, t in enumerate(tox_texts)}, future)

    def _read_answers(self) -> None:
        try:
            status = _read(self._from)
            same = tuple(status) == self._expect
            if not same:
                log.warning("guards: the scan worker loaded %s, this process %s; not used", status, self._expect)
                self.failed = True
            self._ready.set_result(same)
            self._arm(IDLE_S)
            while True:
                answer = _read(self._from)
                with self._lock:
                    future = self._pending.pop(0)
                    self._last = time.monotonic()
                if answer[0] == "error":
                    future.set_exception(RuntimeError(answer[1]))
                else:
                    future.set_result((answer[1], answer[2]))
        except Exception as exc:  # noqa: BLE001 - EOF (closed, died) or a broken frame: no more scans
            with self._lock:
                if not self.closed:
                    self.failed = True
                pending, self._pending = self._pending, []
            if not self._ready.done():
                self._ready.set_result(False)
            for future in pending:
                future.set_exception(RuntimeError(f"the scan worker is gone ({type(exc).__name__})"))

    def _arm(self, seconds: float) -> None:
        with self._lock:
            if self.closed:
                return
            self._idle = threading.Timer(seconds, self._when_idle)
            self._idle.daemon = True
            self._idle.start()

    def _when_idle(self) -> None:
        """Close the worker once :data:`IDLE_S` seconds passed without a scan; else look again then."""
        with self._lock:
            left = IDLE_S - (time.monotonic() - self._last)
            idle = left <= 0 and not self._pending
        if idle:
            self.close()
        else:
            self._arm(max(left, 0.01) if left > 0 else IDLE_S)

    def close(self, timeout: float = 5.0) -> None:
        """End the child (its input closed: it exits; killed if it has not after ``timeout`` s) and wait for it."""
        with self._lock:
            self.closed = True
        try:
            self._to.close()
        except OSError:
            pass
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        idle = self._idle
        if idle is not None and idle is not threading.current_thread():
            idle.cancel()
        if self._reader is not threading.current_thread():
            self._reader.join(timeout)
        self._from.close()


def to_findings(found: list[tuple[str, str, str]]) -> list[Finding]:
    return [Finding(*f) for f in found]


class _Forked:
    """A forked worker: ``Popen``'s few parts :class:`ScanWorker` uses (pid, the two pipes, wait, kill)."""

    def __init__(self, models: tuple[Guard, ResultGuard]) -> None:
        requests_in, requests_out = os.pipe()
        answers_in, answers_out = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(requests_out)
            os.close(answers_in)
            _forked_child(models, requests_in, answers_out)
        os.close(requests_in)
        os.close(answers_out)
        self.pid = pid
        self.returncode: int | None = None
        self.stdin: IO[bytes] = os.fdopen(requests_out, "wb")
        self.stdout: IO[bytes] = os.fdopen(answers_in, "rb")

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere
                self.returncode = -1
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired("scan worker", timeout or 0.0)
            time.sleep(0.005)
        return code

    def kill(self) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _forked_child(models: tuple[Guard, ResultGuard], requests_fd: int, answers_fd: int) -> NoReturn:
    """The forked child's life: only its two pipes and stderr kept (a copy of another pipe's writing end would
    keep that pipe's reader waiting for its end), then :func:`_scan_loop` until its input closes; it never
    returns into the parent's code (``os._exit``: no atexit handler, no buffer of the parent's flushed)."""
    code = 1
    try:
        gc.freeze()  # the parent's objects: never collected here (nor their pages copied for it)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1):
            os.dup2(devnull, fd)
        keep = sorted({0, 1, 2, requests_fd, answers_fd})
        low = 3
        for fd in keep:
            if fd >= low:
                os.closerange(low, fd)
                low = fd + 1
        os.closerange(low, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # as the child interpreter: Ctrl-C is the parent's
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler: a SIGTERM ends the worker
        if NICE and hasattr(os, "nice"):
            os.nice(NICE)
        guard, results = models
        guard.document_findings_many(["warm"])  # what loads at the first scan loads before the worker says it is up
        requests, answers = os.fdopen(requests_fd, "rb"), os.fdopen(answers_fd, "wb")
        code = _scan_loop(requests, answers, guard, results)
    except BaseException:  # noqa: BLE001 - the parent sees the pipe end and scans in its process
        code = 1
    finally:
        os._exit(code)


def serve() -> int:
    """The child interpreter: load the models of the policy read first, say what loaded, then scan each request
    until its input closes."""
    from .check import Guard
    from .results import ResultGuard

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the parent's to handle; it closes us
    requests, answers = sys.stdin.buffer, os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print goes to stderr, not into the frames
    try:
        policy, nice = _read(requests)
    except EOFError:
        return 0
    if nice and hasattr(os, "nice"):  # below the write it helps: a busy machine runs the writer first
        os.nice(nice)
    return _scan_loop(requests, answers, Guard(policy), ResultGuard(policy))


def _scan_loop(requests: IO[bytes], answers: IO[bytes], guard: Guard, results: ResultGuard) -> int:
    """Say which models are loaded, then answer each scan request until the input closes."""
    tox = results._tox  # noqa: SLF001 - the model ResultGuard.on_put uses
    _write(answers, (guard.classifier_status, results.status["toxicity"]))
    while True:
        try:
            request = _read(requests)
        except EOFError:
            return 0
        try:
            _, texts, tox_texts = request
            found = [[(f.category, f.rule, f.evidence) for f in fs] for fs in guard.document_findings_many(texts)]
            probs = tox.judged(tox_texts).tolist() if tox is not None and tox_texts else None
            _write(answers, ("ok", found, probs))
        except Exception as exc:  # noqa: BLE001 - said to the parent, which scans in its own process
            _write(answers, ("error", f"{type(exc).__name__}: {exc}"))
