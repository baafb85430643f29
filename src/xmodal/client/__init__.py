"""A Python client for the REST API of ``xmodal serve``, with the engine's methods, results and errors.

>>> import xmodal
>>> engine = xmodal.Engine.open("my-index")                 # doctest: +SKIP
>>> engine = xmodal.Client("http://127.0.0.1:8080")         # the same calls, over REST  # doctest: +SKIP
>>> engine.search("red shoe", k=5).items[0].id              # doctest: +SKIP

:class:`Client` blocks, :class:`AsyncClient` is awaited; both run the same operations
(:mod:`~xmodal.client.plans`), which build the requests (:mod:`~xmodal.client.wire`) and read the answers
back into :class:`~xmodal.Item`, :class:`~xmodal.SearchResult`, :class:`~xmodal.AddReport` and the
engine's errors (:mod:`~xmodal.client.decode`). Needs ``httpx``: ``pip install 'xmodal[client]'``.
"""

from __future__ import annotations

from ..errors import MissingDependency

try:
    import httpx  # noqa: F401 - checked here, before the modules that use it
except ImportError as exc:  # the client extra is not installed
    raise MissingDependency("httpx", "client") from exc

from .aio import AsyncClient
from .sync import Client
from .transport import ENV_KEY, ENV_URL

__all__ = ["ENV_KEY", "ENV_URL", "AsyncClient", "Client"]
