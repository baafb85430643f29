"""Generative retrieval as a candidate generator for the learning-to-rank-and-retrieve pipeline.

:data:`GENERATIVE` is the strategy source registered as ``generative``: it yields one strategy whose arm
is available only while the index has a trained GENIUS model (``xmodal genret train``), so the bandit
can choose it as soon as one is trained and never before.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from ..errors import ConfigError
from ..ltr.strategies.registry import Built, FunctionFactory, Probe, StrategyContext, StrategySpec
from ..records import Hits, Query
from .extension import MANIFEST

if TYPE_CHECKING:
    from .extension import GenretExtension

EXTENSION = "genret"  # the extension (and its folder under the index) that holds the trained model


class GenerativeStrategy:
    """``retrieve(query, depth)`` by GENIUS (or GENIUS-R with ``rerank``); provenance ``generative``.

    Raises the same clear errors as the search modes when no model is trained, so a caller (the
    bandit) can skip the strategy until ``xmodal genret train`` has run.
    """

    name = "generative"

    def __init__(self, extension: GenretExtension, *, rerank: bool = True) -> None:
        self.extension = extension
        self.rerank = rerank

    def retrieve(self, query: Query, depth: int, *, vector: np.ndarray | None = None) -> Hits:
        deep = dataclasses.replace(query, k=max(1, depth))
        return self.extension.search(deep, vector, rerank=self.rerank).hits


@runtime_checkable
class _Host(Protocol):
    def extension(self, name: str) -> Any: ...


class LazyGenerativeStrategy:
    """The pipeline's ``generative`` arm: finds the engine's opened ``genret`` extension when first run
    (extensions open in turn, so it may open after the learned pipeline)."""

    name = "generative"

    def __init__(self, host: object, *, rerank: bool = True) -> None:
        self.host = host
        self.rerank = rerank
        self._strategy: GenerativeStrategy | None = None

    def retrieve(self, query: Query, depth: int, *, vector: np.ndarray | None = None) -> Hits:
        if self._strategy is None:
            if not isinstance(self.host, _Host):
                raise ConfigError("the generative strategy needs an engine that opens the 'genret' extension")
            self._strategy = GenerativeStrategy(self.host.extension(EXTENSION), rerank=self.rerank)
        return self._strategy.retrieve(query, depth, vector=vector)


def model_folder(context: StrategyContext) -> Path:
    return context.engine.path / EXTENSION


def _generative(context: StrategyContext) -> Iterator[Built]:
    manifest = str(model_folder(context) / MANIFEST)

    def trained(probe: Probe) -> bool:  # one look per query: a model trained meanwhile becomes available
        return os.access(manifest, os.F_OK)  # os.path.exists's answer without building a stat result

    yield Built(StrategySpec("generative", "generative", when=trained), LazyGenerativeStrategy(context.engine))


GENERATIVE = FunctionFactory(_generative)
