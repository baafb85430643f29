"""The one limits layer every adapter (REST routes, MCP tools) passes a request through.

It decides who may call and how often (a token bucket per key or client address, charged by what a
request costs, failed key checks included), how large a query may be (text length, image bytes and
pixels, ``k``), and how many image queries decode at once: they run on a few threads of their own, so
waiting ones hold no worker thread and the memory a large decode leaves to the allocator stays with
those few threads. REST turns its errors into 422/429
answers, MCP into tool errors with the same messages.

A request costs one token on arrival; a search costs more by what it makes the server do::

    cost = 1 + 4 per megapixel of the query image + 1 per 1,024 characters of text + 1 per 100 of k
           + 2 per second of a query sound (probed; up to the 300 s the audio encoder embeds)

A sound's part is charged on the work thread, just before the search, since knowing its length takes an
``ffprobe``; an anonymous caller's CPU account is charged too for what ``ffprobe`` and ``ffmpeg`` take in
processes of their own, out of sight of the thread's CPU clock (an estimate from measurement, below).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import TypeVar

from ..batch import renumbered
from ..errors import ImageError, ValidationError
from ..imaging import DECODE_SIDE, decode_image, image_size
from .admission import Admission
from .auth import AuthError, KeyRing, Principal
from .config import ServeConfig
from .limits import RateLimited, RateLimiter
from .media_worker import MediaWorker, reduce_charged

MAX_QUERY_TEXT = 4096  # characters of query text (REST and MCP)
MAX_K = 1000  # hits one search or similar-items request may ask for
TOKENS_PER_MEGAPIXEL = 4.0
TOKENS_PER_KCHAR = 1.0  # per 1,024 characters of query text
TOKENS_PER_100_K = 1.0

REQUEST_CPU = 0.002  # CPU-seconds charged to an anonymous caller per request, besides what its searches measure
# A sound query took ~7.5 ms of CPU per second of sound (probe, ffmpeg decode, embedding; 120 s WAV and MP3,
# resemblyzer, on the 2-core VM): 2 tokens per second, like 4 per megapixel for ~4 ms. Of that, its two
# ffprobe runs (~0.07 s each) and the ffmpeg decode (~1.3 ms per second) run in child processes.
TOKENS_PER_SOUND_SECOND = 2.0
SOUND_SECONDS = 300.0  # the most of a sound the audio encoder embeds (xmodal.encoders.audio.MAX_SECONDS)
SOUND_PROBE_CPU = 0.15
SOUND_DECODE_CPU_PER_SECOND = 0.0015

T = TypeVar("T")

#: Who is calling, where the adapter cannot hand it down itself (the MCP tools run inside the SDK).
current_caller: ContextVar[Principal | None] = ContextVar("xmodal_caller", default=None)

__all__ = ["MAX_K", "MAX_QUERY_TEXT", "Limits", "RateLimited", "current_caller", "default_decodes", "search_cost"]


def default_decodes() -> int:
    """Image queries decoded at once by default: one per CPU, at most 4 (each may hold ~100 MB while decoding)."""
    return max(1, min(os.cpu_count() or 1, 4))


def search_cost(text: str | None, pixels: int, k: int) -> float:
    """Tokens a search takes: 1, plus its image's megapixels, text length and k, weighted (see the module doc)."""
    return (
        1.0
        + TOKENS_PER_MEGAPIXEL * pixels / 1e6
        + TOKENS_PER_KCHAR * len(text or "") / 1024
        + TOKENS_PER_100_K * k / 100
    )


def check_text(text: str | None, field: str = "text") -> None:
    """Refuse query text longer than :data:`MAX_QUERY_TEXT` characters."""
    if text is not None and len(text) > MAX_QUERY_TEXT:
        raise ValidationError(
            field, f"is {len(text):,} characters; at most {MAX_QUERY_TEXT:,} are accepted", "send a shorter query"
        )


def check_k(k: int, field: str = "k") -> None:
    """Refuse a ``k`` outside 1 … :data:`MAX_K`."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ValidationError(field, f"must be an integer from 1 to {MAX_K}, got {k!r}", "pass e.g. k=10")


class Limits:
    """The server's limits, from its :class:`~.config.ServeConfig`; one instance per app, shared by its adapters."""

    def __init__(self, config: ServeConfig, keys: KeyRing | None = None) -> None:
        self.config = config
        self.keys = keys if keys is not None else KeyRing(config)
        self.rates = RateLimiter(config.rate, config.burst)
        self.admission = Admission(config)
        self.decodes = config.image_decodes or default_decodes()
        self._decoder = ThreadPoolExecutor(self.decodes, thread_name_prefix="xmodal-decode")
        self._anonymous = _anonymous_pool(config)
        self.media_worker = MediaWorker()

    def admit(self, presented: str | None, scope: str, client: str) -> Principal:
        """:meth:`authorize`, then :meth:`arrive`."""
        principal = self.authorize(presented, scope, client)
        self.arrive(principal)
        return principal

    def arrive(self, principal: Principal) -> None:
        """A request's arrival: one token, and for an anonymous caller :data:`REQUEST_CPU` charged to its CPU
        account (the work every request makes outside the metered threads: HTTP, routing, logs, the answer)."""
        self.charge(principal, 1.0)
        if principal.key is None:
            self.admission.charge(principal.client, REQUEST_CPU)

    def authorize(self, presented: str | None, scope: str, client: str) -> Principal:
        """The caller if its key (or none, for open reads) holds ``scope``. A failed key check spends a token
        of the client address, so keys cannot be guessed at full speed: :class:`AuthError`, or
        :class:`RateLimited` once that address is out of tokens."""
        try:
            return self.keys.authorize(presented, scope, client)
        except AuthError:
            self.rates.spend(f"anon:{client}", 1.0)
            raise

    def charge(self, principal: Principal | None, cost: float) -> None:
        """Take ``cost`` tokens from the caller's bucket (none known, as over stdio: nothing to charge); an
        anonymous caller whose CPU account is in debt is refused first (:mod:`.admission`)."""
        if principal is None or cost <= 0:
            return
        if principal.key is None:
            self.admission.check(principal.client)
        key = principal.key
        self.rates.spend(principal.label, cost, key.rate if key else None, key.burst if key else None)

    def metered(self, principal: Principal | None, fn: Callable[[], T]) -> Callable[[], T]:
        """``fn`` run within an anonymous caller's searches in flight, the CPU its thread spends charged to
        the caller's account (:mod:`.admission`); as it is for a keyed or unknown caller."""
        if principal is None or principal.key is not None:
            return fn
        client, admission = principal.client, self.admission
        return lambda: admission.run(client, fn)

    async def wait_turn(self, principal: Principal | None) -> None:
        """For an anonymous caller, wait briefly while its searches (or all anonymous ones) are at their bound."""
        if principal is not None and principal.key is None:
            await self.admission.wait_turn(principal.client)

    def search(self, principal: Principal | None, *, text: str | None, image: bytes | None, k: int) -> None:
        """Check a search's text, image (bytes and pixels, from its header) and ``k``, then charge what it
        costs beyond the token taken on arrival."""
        check_text(text)
        check_k(k)
        pixels = self.query_image(image) if image is not None else 0
        self.charge(principal, search_cost(text, pixels, k) - 1.0)

    def search_sound(self, principal: Principal | None, sound: bytes | None) -> None:
        """Charge a query sound by its length (probed; up to :data:`SOUND_SECONDS`), on the thread that runs the
        search: tokens, and for an anonymous caller the CPU of its child processes (see the module doc). A sound
        that cannot be probed is refused here, with the error the search would give."""
        if sound is None or principal is None:
            return
        from ..media_loaders import media_loader

        recording = media_loader("audio").load(sound, item="query").content
        seconds = min(float(recording.info.duration), SOUND_SECONDS)
        self.charge(principal, TOKENS_PER_SOUND_SECOND * seconds)
        if principal.key is None:
            self.admission.charge(principal.client, SOUND_PROBE_CPU + SOUND_DECODE_CPU_PER_SECOND * seconds)

    def similar(self, principal: Principal | None, k: int) -> None:
        """Check a similar-items request's ``k`` and charge what it costs beyond the token taken on arrival."""
        check_k(k)
        self.charge(principal, TOKENS_PER_100_K * k / 100)

    def query_image(self, data: bytes, field: str = "image") -> int:
        """The pixel count of a query image, refusing an empty or oversized file, a refused format or more
        pixels than ``max_pixels``; read from the header only (the engine decodes it, at reduced size)."""
        self._check_bytes(data, field)
        width, height = image_size(data, item="query", max_pixels=self.config.max_pixels)
        return width * height

    def item_image(self, data: bytes, item: str) -> None:
        """Check an item's image fully (it is decoded, at reduced size, so corrupt data is caught)."""
        self._check_bytes(data, "image", item)
        max_pixels = self.config.max_pixels
        self.decode(lambda: decode_image(data, item=item, max_pixels=max_pixels, min_side=DECODE_SIDE))

    def _check_bytes(self, data: bytes, field: str, item: str | None = "query") -> None:
        if not data:
            raise ImageError(field, "the upload is empty", "attach a JPEG, PNG, WebP, GIF, BMP or TIFF file", item=item)
        limit = self.config.max_image_bytes
        if len(data) > limit:
            raise ImageError(
                field,
                f"is {len(data):,} bytes; at most {limit:,} are accepted",
                "downscale or recompress it",
                item=item,
            )

    def search_image(self, principal: Principal | None, image: bytes | None) -> bytes | None:
        """The query image a search reads: an anonymous caller's decoded at reduced size in the media worker
        process, at the lowest CPU priority, the worker's CPU charged to the caller (:mod:`.media_worker`; call
        it within :meth:`work`, so it counts among the caller's searches in flight); anyone else's as given."""
        if image is None or principal is None or principal.key is not None:
            return image
        client, admission = principal.client, self.admission
        return reduce_charged(self.media_worker, image, lambda cpu: admission.charge(client, cpu))

    def search_images(self, principal: Principal | None, images: Sequence[bytes | None]) -> list[bytes | None]:
        """:meth:`search_image` for each query of a batch (an error names its query: ``queries[3].image``)."""
        out = []
        for i, image in enumerate(images):
            with renumbered([i]):
                out.append(self.search_image(principal, image))
        return out

    def work(self, principal: Principal | None, fn: Callable[[], T], *, image: bool) -> T:
        """``fn()``, a search's work, where it belongs: an anonymous caller's metered on the anonymous threads
        (as many as may run at once), a keyed image search on the decode threads, anything else here. A keyed
        caller's work (REST or MCP, one search or a batch) is foreground: anonymous searches step aside for it
        between their stages (:meth:`.admission.Admission.foreground`)."""
        if principal is not None and principal.key is None:
            return self._anonymous.submit(self.metered(principal, fn)).result()
        with self.admission.foreground(principal is not None):
            return self.decode(fn, needed=image)

    async def work_async(self, principal: Principal | None, fn: Callable[[], T], *, image: bool) -> T:
        """:meth:`work` for async code: no thread waits (other than work itself on a worker thread)."""
        if principal is not None and principal.key is None:
            return await asyncio.wrap_future(self._anonymous.submit(self.metered(principal, fn)))
        with self.admission.foreground(principal is not None):
            if image:
                return await self.decode_async(fn)
            from starlette.concurrency import run_in_threadpool  # the server extra's (MCP over stdio runs without)

            return await run_in_threadpool(fn)

    def decode(self, fn: Callable[[], T], needed: bool = True) -> T:
        """``fn()`` (work that decodes an image) on one of the ``image_decodes`` decode threads, waiting for a
        free one; run here when not ``needed``."""
        return self._decoder.submit(fn).result() if needed else fn()

    async def decode_async(self, fn: Callable[[], T], needed: bool = True) -> T:
        """:meth:`decode` for async code: the wait holds no thread."""
        return await asyncio.wrap_future(self._decoder.submit(fn)) if needed else fn()

    def close(self) -> None:
        """Stop the decode threads after the work given to them, and the media worker (an app started again gets
        new ones)."""
        done, self._decoder = self._decoder, ThreadPoolExecutor(self.decodes, thread_name_prefix="xmodal-decode")
        done.shutdown()
        done, self._anonymous = self._anonymous, _anonymous_pool(self.config)
        done.shutdown()
        self.media_worker.close()


def _anonymous_pool(config: ServeConfig) -> ThreadPoolExecutor:
    """The threads anonymous searches run on: ``anonymous_total_inflight`` of them. (Their CPU priority is the
    process's: a lower one was measured to lengthen normal clients' tail, since a thread the OS puts aside
    while it holds the interpreter lock holds up every other.)"""
    return ThreadPoolExecutor(config.anonymous_total_inflight, thread_name_prefix="xmodal-anonymous")
