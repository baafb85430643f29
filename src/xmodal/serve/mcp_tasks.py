"""MCP tools for the ML-task purposes: ``classify`` (a read), ``cluster`` and ``dedup`` (whole-index
analyses: over HTTP they need an API key with the ``write`` scope, as their REST routes do).

Results carry catalog content (ids, titles, labels, terms), so they come back under ``data`` with the
notice that it is untrusted content, never instructions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..engine import Engine
from ..errors import ValidationError
from ..records import Query
from .auth import has_scope
from .policy import Limits, current_caller

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

MAX_TEXTS = 100


def add_task_tools(
    server: MCPServer,
    current: Callable[[], Engine],
    limits: Limits,
    notice: str,
    clear_errors: Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]],
) -> None:
    """Register ``classify``, ``cluster`` and ``dedup`` on ``server``, calling :mod:`xmodal.tasks` on
    ``current()`` (the engine the server holds at the time of each call)."""
    from ..tasks import classify as run_classify
    from ..tasks import cluster as run_cluster
    from ..tasks import dedup as run_dedup

    def work(fn: Callable[[], Any]) -> dict[str, Any]:
        result = limits.work(current_caller.get(), fn, image=False)
        return {"notice": notice, "data": result}

    @server.tool()
    @clear_errors
    def classify(
        label: str, texts: list[str] | None = None, ids: list[str] | None = None, k: int = 10, top: int = 3
    ) -> dict[str, Any]:
        """Classify ``texts`` or the stored items ``ids`` (or, neither given, every item without a ``label``
        value) by the weighted vote of the ``k`` most similar items labelled by the attribute ``label``; each
        prediction has a confidence per label (its share of the votes)."""
        if texts is not None and len(texts) > MAX_TEXTS:
            raise ValidationError("texts", f"at most {MAX_TEXTS} texts per call", "split the list")
        queries = [Query(text=text) for text in texts] if texts is not None else None
        return work(lambda: run_classify(current(), label, ids=ids, queries=queries, k=k, top=top).to_dict())

    @server.tool()
    @clear_errors
    def cluster(
        method: str = "kmeans", n_clusters: int | None = None, filters: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Group the catalog into topics: k-means (``n_clusters``, or chosen by silhouette) or HDBSCAN; each
        cluster named by its most central items and its top terms. Reads the whole index: needs the write
        scope over HTTP."""
        _check_scope()
        return work(
            lambda: run_cluster(current(), method=method, n_clusters=n_clusters, filters=filters).to_dict(False)
        )

    @server.tool()
    @clear_errors
    def dedup(signals: list[str] | None = None, filters: dict[str, Any] | None = None) -> dict[str, Any]:
        """Near-duplicate groups within and across modalities (``signals``: image, text), with each threshold
        used (calibrated on the catalog) and its source. Reads the whole index: needs the write scope over HTTP."""
        _check_scope()
        chosen = tuple(signals) if signals else ("image", "text")
        return work(lambda: run_dedup(current(), signals=chosen, filters=filters).to_dict())


def _check_scope() -> None:
    """Refuse a whole-index analysis to an HTTP caller without the ``write`` scope (stdio has no caller)."""
    caller = current_caller.get()
    if caller is not None and (caller.key is None or not has_scope(caller.key, "write")):
        raise ValidationError(
            "Authorization",
            "this tool reads the whole index (seconds to minutes of work): it needs an API key with the 'write' scope",
            "connect with a key that has the write scope",
        )
