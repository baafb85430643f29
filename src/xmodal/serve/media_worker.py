"""Anonymous callers' query images, decoded in a worker process at the lowest CPU priority.

Decoding a large query image is the costliest part of an anonymous search (a 25 MP PNG: ~0.35 s of one
core, done by the guards' image-text check and again by the encoder). In the server's own process it
competes with the keyed clients' searches for the two cores and the interpreter lock, and a lower priority for
one of its threads made their tail longer (a thread the OS puts aside while it holds the interpreter lock
holds up every other). So an anonymous caller's query image is decoded here instead, in one process of its
own that asks the OS for the lowest priority it has (``SCHED_IDLE``; ``nice 19`` where that is refused): the
kernel, not the interpreter lock, decides, and it runs when the keyed clients leave a core free.

What the worker returns is the image :func:`~xmodal.imaging.decode_image` makes of the upload (RGB, its
shorter side reduced towards :data:`~xmodal.imaging.DECODE_SIDE`) as an uncompressed BMP: decoding that in
the server costs about a copy, gives the very same pixels (so the same vectors and hits as in the server's own
process), and is reduced no further. A BMP over :data:`~xmodal.imaging.MAX_BYTES` (a thin image with a short
side under twice ``DECODE_SIDE``) is sent as PNG; one still larger is left to the server (the upload unchanged).

Bounds: one worker, one image at a time; a caller waits up to ``wait_s`` for it (then :class:`RateLimited`,
a 429, as when anonymous searches are at their bound); an image that takes longer than ``timeout_s`` gets a
429 too and the worker is stopped; a worker that died (or was stopped) is started again with the next image
(one found dead while it sends is replaced at once and asked again; one that dies twice on an image refuses it).
An image the worker refuses gets the :class:`~xmodal.errors.ImageError` the server's own decode would give.
Each reply carries the CPU seconds the worker spent on the image (its own and its children's), which the
caller's CPU account is charged (:mod:`.admission`). The worker holds no model: Pillow and :mod:`xmodal.imaging`
only (about 40 MB, plus the image being decoded: 75 MB for 25 MP).

Protocol (over the worker's stdin and stdout, no pickle): each message is a JSON header and a payload, each
framed by its length as 4 bytes big-endian. ``python -m xmodal.serve.media_worker`` runs the worker.
"""

from __future__ import annotations

import io
import json
import os
import resource
import select
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Any

from ..errors import ImageError
from .limits import RateLimited

#: how long a caller waits for the worker to be free, and how long one image may take
WAIT_S = 2.0
TIMEOUT_S = 20.0
_LENGTH = 4


class MediaWorker:
    """One worker process for anonymous callers' query images, started when first needed (thread-safe)."""

    def __init__(self, *, wait_s: float = WAIT_S, timeout_s: float = TIMEOUT_S) -> None:
        self.wait_s, self.timeout_s = wait_s, timeout_s
        self.starts = 0  # worker processes started so far
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The running worker's process id (None: none running)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def reduce_image(self, data: bytes, *, item: str | None = "query") -> tuple[bytes, float]:
        """The image ``data`` decoded at reduced size (see the module doc) and the worker's CPU seconds for it.
        :class:`RateLimited` when the worker stays busy past ``wait_s`` or the image takes past ``timeout_s``;
        :class:`ImageError` for an image it cannot decode, or that stopped it."""
        if not self._lock.acquire(timeout=self.wait_s):
            raise RateLimited(1, "anonymous clients together (their image worker is busy)")
        try:
            deadline = time.monotonic() + self.timeout_s
            for attempt in range(2):  # a worker found dead (killed while idle) is replaced and asked again
                proc = self._running()
                try:
                    assert proc.stdin is not None and proc.stdout is not None
                    _send(proc.stdin, {"op": "reduce_image", "item": item}, data)
                    reply, payload = _receive(proc.stdout, deadline)
                    break
                except TimeoutError:
                    self._stop()
                    raise RateLimited(
                        1, f"anonymous clients together (an image took over {self.timeout_s:g} s)"
                    ) from None
                except (OSError, EOFError, ValueError):
                    self._stop()
                    if attempt:
                        raise ImageError(
                            "image",
                            "decoding it stopped the image worker",
                            "give a JPEG, PNG, WebP, GIF, BMP or TIFF file",
                        ) from None
        finally:
            self._lock.release()
        cpu = float(reply.get("cpu", 0.0))
        error = reply.get("error")
        if error is not None:
            raise _CpuSpent(cpu, ImageError(error["field"], error["problem"], error["fix"], item=error.get("item")))
        return (payload if reply.get("reduced") else data), cpu

    def _running(self) -> subprocess.Popen[bytes]:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            proc = self._proc = subprocess.Popen(
                [sys.executable, "-m", "xmodal.serve.media_worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
            )
            self.starts += 1
        return proc

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()

    def close(self) -> None:
        """Stop the worker (a later image starts another)."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is None:
                return
            try:
                if proc.stdin is not None:
                    proc.stdin.close()  # end of input: the worker exits
                proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


class _CpuSpent(Exception):
    """An error raised after the worker spent ``cpu`` seconds (the caller charges them, then raises ``error``)."""

    def __init__(self, cpu: float, error: Exception) -> None:
        super().__init__(str(error))
        self.cpu, self.error = cpu, error


def reduce_charged(worker: MediaWorker, data: bytes, charge: Any) -> bytes:
    """:meth:`MediaWorker.reduce_image`, its CPU passed to ``charge`` (a refused image's too)."""
    try:
        reduced, cpu = worker.reduce_image(data)
    except _CpuSpent as spent:
        charge(spent.cpu)
        raise spent.error from None
    charge(cpu)
    return reduced


# -- framing -----------------------------------------------------------------------------------------------
def _send(pipe: IO[bytes], header: dict[str, Any], payload: bytes) -> None:
    head = json.dumps(header).encode()
    pipe.write(len(head).to_bytes(_LENGTH, "big") + head + len(payload).to_bytes(_LENGTH, "big"))
    pipe.write(payload)
    pipe.flush()


def _receive(pipe: IO[bytes], deadline: float | None = None) -> tuple[dict[str, Any], bytes]:
    head = _read(pipe, int.from_bytes(_read(pipe, _LENGTH, deadline), "big"), deadline)
    payload = _read(pipe, int.from_bytes(_read(pipe, _LENGTH, deadline), "big"), deadline)
    header = json.loads(head)
    if not isinstance(header, dict):
        raise ValueError("a message header is not a JSON object")
    return header, payload


def _read(pipe: IO[bytes], size: int, deadline: float | None) -> bytes:
    """Exactly ``size`` bytes (EOFError when the pipe ends first; TimeoutError past ``deadline``)."""
    fd, parts, left = pipe.fileno(), [], size
    while left > 0:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


# -- the worker process --------------------------------------------------------------------------------------
def lower_priority() -> str:
    """Ask for the lowest CPU priority: ``SCHED_IDLE`` (Linux), else ``nice 19``; what was granted."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return "idle"
    except (AttributeError, OSError):
        os.nice(19 - os.nice(0))
        return "nice 19"


def cpu_now() -> float:
    """CPU seconds this process and its waited-for children have spent."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def reduce_image(data: bytes, item: str | None) -> tuple[bytes | None, dict[str, Any] | None]:
    """The reduced image as BMP (PNG when that is too large; None when even that is), or the error's fields."""
    from ..imaging import DECODE_SIDE, MAX_BYTES, decode_image

    try:
        image = decode_image(data, item=item, min_side=DECODE_SIDE)
    except ImageError as exc:
        return None, {"field": exc.field, "problem": exc.problem, "fix": exc.fix, "item": exc.item}
    for fmt, options in (("BMP", {}), ("PNG", {"compress_level": 1})):
        out = io.BytesIO()
        image.save(out, fmt, **options)
        if out.tell() <= MAX_BYTES:
            return out.getvalue(), None
    return None, None


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """Answer requests from ``stdin`` on ``stdout`` until ``stdin`` ends."""
    while True:
        try:
            header, payload = _receive(stdin)
        except EOFError:
            return
        start = cpu_now()
        if header.get("op") != "reduce_image":
            raise ValueError(f"unknown request {header.get('op')!r}")
        reduced, error = reduce_image(payload, header.get("item"))
        reply = {"reduced": reduced is not None, "error": error, "cpu": round(cpu_now() - start, 6)}
        _send(stdout, reply, reduced or b"")


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the whole group: the server stops its worker
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print goes to the log, never into the replies
    lower_priority()
    serve(sys.stdin.buffer, channel)


if __name__ == "__main__":
    main()
