"""The asyncio client: :class:`AsyncClient`, the engine's methods over REST, awaited."""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np

from ..collection import Fetched, Page
from ..export import ExportReport, write_export
from ..ingest.prepare import AddReport
from ..records import Item, Query, Target
from ..results import SearchResult
from . import plans
from .transport import DEFAULT_TIMEOUT, RETRIES, Settings, again, answer, failure, request_args
from .wire import Call

T = TypeVar("T")


class AsyncClient:
    """:class:`~xmodal.client.Client` for asyncio: the same methods, arguments, results and errors, each
    awaited (``await client.search("red shoe")``); ``item in engine`` is ``await client.contains(item)`` and
    ``len(engine)`` is ``await client.count()``. Close it with ``await client.close()`` (or ``async with``).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        index: str | None = None,
        api_key: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        retries: int = RETRIES,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        batch_size: int = plans.BATCH,
        max_body_bytes: int = plans.MAX_BODY,
    ) -> None:
        self.settings = Settings.of(url, index, api_key, timeout, retries, headers)
        self.batch_size, self.max_body_bytes = batch_size, max_body_bytes
        #: the ``httpx.AsyncClient`` under it (one connection pool)
        transport = transport or httpx.AsyncHTTPTransport(retries=retries)
        self.http = httpx.AsyncClient(transport=transport, **self.settings.options())

    @property
    def url(self) -> str:
        """The server's URL (``index``'s routes are under ``/indexes/NAME`` there)."""
        return self.settings.url

    @property
    def index(self) -> str | None:
        """The name of the server's index this client uses (None: the one at the root routes)."""
        return self.settings.index

    async def _send(self, request: Call) -> Any:
        tries = 0
        while True:
            tries += 1
            try:
                target = self.settings.target(request)
                response = await self.http.request(request.method, target, **request_args(request))
            except httpx.TransportError as exc:
                if again(exc, request, tries):
                    continue
                raise failure(exc, self.settings) from exc
            return answer(response, request)

    async def _run(self, plan: plans.Plan[T]) -> T:
        return await plans.drive_async(plan, self._send)

    # -- lifecycle ------------------------------------------------------------------------------
    async def close(self) -> None:
        """Close the connections; a second close does nothing."""
        await self.http.aclose()

    aclose = close  # for contextlib.aclosing

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- writes ---------------------------------------------------------------------------------
    async def add(
        self,
        items: Iterable[Item],
        *,
        base_dir: str | Path | None = None,
        progress: Any = None,
        vectors: Mapping[str, Any] | None = None,
    ) -> AddReport:
        """:meth:`Engine.add <xmodal.Engine.add>`: media are read here (paths relative to ``base_dir``) and sent."""
        return await self._run(
            plans.add(
                items,
                base_dir=base_dir,
                progress=progress,
                vectors=vectors,
                batch=self.batch_size,
                max_body=self.max_body_bytes,
            )
        )

    async def delete(self, ids: Sequence[str], *, purge_feedback: bool = False) -> int:
        """:meth:`Engine.delete <xmodal.Engine.delete>`: how many of ``ids`` existed."""
        return await self._run(plans.delete(ids, purge_feedback=purge_feedback))

    async def delete_where(
        self, filters: Mapping[str, Any], *, strict: bool = False, purge_feedback: bool = False
    ) -> int:
        """:meth:`Engine.delete_where <xmodal.Engine.delete_where>`."""
        return await self._run(plans.delete_where(filters, strict=strict, purge_feedback=purge_feedback))

    async def clear(self, *, purge_feedback: bool = False) -> int:
        """:meth:`Engine.clear <xmodal.Engine.clear>`: every item deleted; how many there were."""
        return await self._run(plans.clear(purge_feedback=purge_feedback))

    async def update_attributes(self, item_id: str, attributes: Mapping[str, Any], *, merge: bool = True) -> Item:
        """:meth:`Engine.update_attributes <xmodal.Engine.update_attributes>`."""
        return await self._run(plans.update_attributes(item_id, attributes, merge=merge))

    async def feedback(
        self,
        query_id: str,
        item_id: str,
        event: str = "click",
        *,
        position: int | None = None,
        value: float | None = None,
    ) -> None:
        """:meth:`Engine.feedback <xmodal.Engine.feedback>` (``query_id`` from ``search(..., log=True)``)."""
        await self._run(plans.feedback(query_id, item_id, event, position=position, value=value))

    # -- reads ----------------------------------------------------------------------------------
    async def get(self, item_id: str, *, screen: bool = False, safe: str | None = None) -> Item:
        """:meth:`Engine.get <xmodal.Engine.get>`; the server always screens it (``screen`` is implied: an item
        the key's guards policy withholds is a :class:`~xmodal.errors.GuardBlocked` naming the category)."""
        return await self._run(plans.get(item_id, safe))

    async def get_many(
        self, ids: Sequence[str], *, with_vectors: bool = False, screen: bool = False, safe: str | None = None
    ) -> Fetched:
        """:meth:`Engine.get_many <xmodal.Engine.get_many>` (``POST /items/get``, ``batch_size`` ids a request);
        the server always screens them (``screen`` is implied)."""
        return await self._run(plans.get_many(ids, with_vectors=with_vectors, batch=self.batch_size, safe=safe))

    async def vectors(self, item_id: str) -> dict[str, np.ndarray]:
        """:meth:`Engine.vectors <xmodal.Engine.vectors>`: the item's stored vectors by kind."""
        return await self._run(plans.vectors(item_id))

    async def scroll(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        limit: int = 100,
        cursor: str | None = None,
        with_vectors: bool = False,
        strict: bool = False,
        safe: str | None = None,
    ) -> Page:
        """:meth:`Engine.scroll <xmodal.Engine.scroll>` (``POST /scroll``)."""
        return await self._run(
            plans.scroll(filters, limit=limit, cursor=cursor, with_vectors=with_vectors, strict=strict, safe=safe)
        )

    async def export(
        self,
        path: str | Path,
        *,
        format: str | None = None,
        filters: Mapping[str, Any] | None = None,
        strict: bool = False,
        with_vectors: bool = False,
        force: bool = False,
        safe: str | None = None,
    ) -> ExportReport:
        """:meth:`Engine.export <xmodal.Engine.export>` to a file here, page by page through ``POST /scroll`` (an
        item added during the export may be in it: the pages follow the server's cursor); the file is written
        on a worker thread while the pages are fetched on this event loop."""
        kinds, dim = plans.export_columns(await self.info() if with_vectors else None)
        loop = asyncio.get_running_loop()

        def fetch(cursor: str | None) -> Page:  # on the writing thread: each page fetched on this event loop
            page = self.scroll(
                filters, limit=plans.EXPORT_PAGE, cursor=cursor, with_vectors=with_vectors, strict=strict, safe=safe
            )
            return asyncio.run_coroutine_threadsafe(page, loop).result()

        withheld: Counter[str] = Counter()  # what the guards left out of the pages, by category
        batches = functools.partial(plans.export_batches, fetch, withheld)
        report = await asyncio.to_thread(
            write_export, path, batches, format=format, with_vectors=with_vectors, force=force, kinds=kinds, dim=dim
        )
        return plans.with_withheld(report, withheld)

    async def contains(self, item_id: object) -> bool:
        """``item_id in engine``: whether the index holds the item."""
        return await self._run(plans.contains(item_id))

    async def count(self, filters: Mapping[str, Any] | None = None, *, strict: bool = False) -> int:
        """:meth:`Engine.count <xmodal.Engine.count>`."""
        return await self._run(plans.count(filters, strict=strict))

    async def search(
        self,
        query: Query | str,
        *,
        base_dir: Path | None = None,
        log: bool = False,
        explain: bool = False,
        with_vectors: bool = False,
        cursor: str | None = None,
        **options: Any,
    ) -> SearchResult:
        """:meth:`Engine.search <xmodal.Engine.search>` (a query image is read here and sent)."""
        plan = plans.search(
            query, base_dir=base_dir, log=log, explain=explain, with_vectors=with_vectors, cursor=cursor, **options
        )
        return await self._run(plan)

    async def search_many(
        self,
        queries: Sequence[Query | str],
        *,
        base_dir: Path | None = None,
        log: bool = False,
        explain: bool = False,
        with_vectors: bool = False,
        **options: Any,
    ) -> list[SearchResult]:
        """:meth:`Engine.search_many <xmodal.Engine.search_many>` (``POST /search/batch``, ``batch_size`` queries
        a request)."""
        return await self._run(
            plans.search_many(
                queries,
                base_dir=base_dir,
                log=log,
                explain=explain,
                with_vectors=with_vectors,
                batch=self.batch_size,
                **options,
            )
        )

    async def search_by_vector(
        self,
        vector: Any,
        *,
        k: int = 10,
        offset: int = 0,
        target: str = Target.ANY,
        filters: Mapping[str, Any] | None = None,
        strict: bool = False,
        with_vectors: bool = False,
        cursor: str | None = None,
    ) -> SearchResult:
        """:meth:`Engine.search_by_vector <xmodal.Engine.search_by_vector>`."""
        return await self._run(
            plans.search_by_vector(
                vector,
                k=k,
                offset=offset,
                target=target,
                filters=filters,
                strict=strict,
                with_vectors=with_vectors,
                cursor=cursor,
            )
        )

    async def search_by_vectors(
        self,
        vectors: Any,
        *,
        k: int = 10,
        offset: int = 0,
        target: str = Target.ANY,
        filters: Mapping[str, Any] | None = None,
        strict: bool = False,
        with_vectors: bool = False,
    ) -> list[SearchResult]:
        """:meth:`Engine.search_by_vectors <xmodal.Engine.search_by_vectors>`."""
        return await self._run(
            plans.search_by_vectors(
                vectors,
                k=k,
                offset=offset,
                target=target,
                filters=filters,
                strict=strict,
                with_vectors=with_vectors,
                batch=self.batch_size,
            )
        )

    async def similar(
        self, item_id: str, *, k: int = 10, target: str = Target.ANY, safe: str | None = None
    ) -> SearchResult:
        """:meth:`Engine.similar <xmodal.Engine.similar>`."""
        return await self._run(plans.similar(item_id, k=k, target=target, safe=safe))

    async def info(self) -> dict[str, Any]:
        """:meth:`Engine.info <xmodal.Engine.info>` without ``path`` (the server's folder is not sent)."""
        return await self._run(plans.info())

    async def modes(self) -> list[str]:
        """:meth:`Engine.modes <xmodal.Engine.modes>`: the search modes the server's index provides."""
        return await self._run(plans.modes())

    async def facets(self) -> dict[str, list[tuple[Any, int]]]:
        """Each attribute path and its most common values with their counts (``GET /facets``)."""
        return await self._run(plans.facets())

    async def health(self) -> dict[str, Any]:
        """The server's status, item count, write queue depth and version (``GET /health``)."""
        return await self._run(plans.health())

    async def indexes(self) -> list[dict[str, Any]]:
        """The server's indexes (``GET /indexes``): ``name`` (None for the one at the root routes), ``url``,
        ``items``."""
        return await self._run(plans.indexes())

    async def backup(self, destination: str) -> dict[str, Any]:
        """:meth:`Engine.backup <xmodal.Engine.backup>` on the server: ``destination`` names a new folder in the
        server's ``backup_dir`` (an admin key); the manifest's summary (``path``, ``items``, ``store_seq``...)."""
        return await self._run(plans.backup(destination))

    async def media(self, item_id: str, medium: str = "image") -> bytes:
        """The stored file of an item's medium (its image by default), as it was added."""
        return await self._run(plans.media(item_id, medium))

    async def thumbnail(self, item_id: str, size: int = 256) -> bytes:
        """A JPEG of an item's image, at most ``size`` pixels on its long side."""
        return await self._run(plans.thumbnail(item_id, size))
