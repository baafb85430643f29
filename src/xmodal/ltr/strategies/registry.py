"""The strategy registry: which candidate generators the learned pipeline draws from, and what each is.

An entry of the registry (group ``xmodal.strategies``: built-in names, installed entry points, or a
dotted path ``"package.module:Name"``) is a *strategy source*, one of

- a :class:`StrategyFactory`: an object (or a class, instantiated with no arguments) whose
  ``build(context)`` yields zero or more :class:`Built` strategies (the built-in ``dense`` yields one per
  vector kind the index has), or
- a :class:`~xmodal.ltr.strategies.base.Strategy` class: built as ``cls(context)``, one strategy named
  ``cls.name`` (how a third party adds one: ``xmodal ltr strategies add package.module:MyStrategy``).

Every built strategy comes with a :class:`StrategySpec` (its name, family, the vector kind it searches,
whether it explores, when it can answer a query), so the pipeline reasons on the spec and never parses a
strategy's name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ...errors import ConfigError
from ...records import Query, Target, VectorKind
from ...registry import Registry
from .base import Strategy
from .dense import DenseStrategy
from .structured import StructuredStrategy

if TYPE_CHECKING:
    from ...extension import EngineView
    from ...feedback.base import FeedbackStore
    from .explore import ExploreStrategy
    from .lexical import LexicalStrategy
    from .memory import MemoryStrategy
    from .structured import QueryUnderstanding

#: What the learned pipeline uses unless the index's ``ltr/strategies.json`` (or its config) says otherwise.
DEFAULT_STRATEGIES: tuple[str, ...] = ("lexical", "structured", "dense", "memory", "explore", "generative")


@dataclass(frozen=True, slots=True)
class Probe:
    """What availability is judged on for one query: the query, its understood slots, memory evidence."""

    query: Query
    slots: int = 0
    memory_hits: int = 0


def _always(probe: Probe) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """What the pipeline knows of one built strategy.

    ``name`` is the arm the policy learns and the name in provenance; ``family`` groups strategies of one
    kind (``dense`` for every vector kind's); ``kind`` is the vector kind a dense strategy searches (a query
    with another target leaves it out); ``explores`` marks the exploring arm (the policy's floor); ``when``
    says whether it can return anything for a query (e.g. lexical needs text)."""

    name: str
    family: str
    kind: str | None = None
    explores: bool = False
    when: Callable[[Probe], bool] = field(default=_always, compare=False)

    def available(self, probe: Probe, target: str | None = None) -> bool:
        """Whether this strategy can answer the probed query (its target included; ``target``: the query's
        target as a string, for a caller that asks every spec about the same query)."""
        target = str(probe.query.target) if target is None else target
        if self.kind is not None and target != Target.ANY and target != self.kind:
            return False  # the query asks for another kind of vector
        return self.when(probe)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "family": self.family, "kind": self.kind, "explores": self.explores}


@dataclass(frozen=True, slots=True)
class Built:
    """One strategy ready to run, with its spec and the registry entry it came from."""

    spec: StrategySpec
    strategy: Strategy
    source: str = ""


@dataclass
class StrategyContext:
    """What a factory builds strategies from: the engine view and the pipeline's shared parts (the
    lexical index, query understanding and the memory index also feed the query context, so the pipeline
    owns them whether or not they are arms)."""

    engine: EngineView
    lexical: LexicalStrategy
    understanding: QueryUnderstanding
    memory: MemoryStrategy
    explore: ExploreStrategy
    feedback: FeedbackStore | None = None
    folder: Path | None = None
    seed: int = 0
    _has: dict[str, int] = field(default_factory=dict, repr=False, compare=False)  # kind -> applied_seq seen

    def vector_count(self, kind: str) -> int:
        """How many vectors of ``kind`` the index holds (0 for a kind it has never seen)."""
        count: Callable[[Any], int] = self.engine.vector_count
        try:
            return int(count(kind))
        except (KeyError, ValueError):
            return 0

    def has_vectors(self, kind: str) -> bool:
        """Whether the index holds vectors of ``kind`` (a dense strategy's availability, asked per query). A
        yes is kept until the engine applies another change (its ``applied_seq`` moves with every write it
        applies, its own or another process's), so most searches take no engine lock for it; a no is asked
        again each time (a kind whose first vectors are being applied is never missed)."""
        applied = getattr(self.engine, "applied_seq", None)
        seq = applied() if callable(applied) else None
        if seq is not None and self._has.get(kind) == seq:
            return True
        found = self.vector_count(kind) > 0
        if found and isinstance(seq, int):
            self._has[kind] = seq
        return found

    def candidate_kinds(self) -> list[str]:
        """Vector kinds to look for: the built-in ones, then any other the engine lists (when it can)."""
        kinds = [str(k) for k in VectorKind]
        listing = getattr(self.engine, "vector_kinds", None)
        if callable(listing):
            kinds += [str(k) for k in listing() if str(k) not in kinds]
        return kinds

    def vector_kinds(self) -> list[str]:
        """The vector kinds the index has vectors of, in :meth:`candidate_kinds` order."""
        return [k for k in self.candidate_kinds() if self.vector_count(k) > 0]


class StrategyFactory(Protocol):
    """A registry entry that builds strategies for one pipeline."""

    def build(self, context: StrategyContext) -> Iterable[Built]: ...


@dataclass(frozen=True, slots=True)
class FunctionFactory:
    """A :class:`StrategyFactory` from a function of the context."""

    function: Callable[[StrategyContext], Iterable[Built]]

    def build(self, context: StrategyContext) -> Iterable[Built]:
        return self.function(context)


@dataclass(frozen=True, slots=True)
class ClassFactory:
    """A :class:`StrategyFactory` for a :class:`Strategy` class: one strategy, ``cls(context)``."""

    cls: type[Any]

    def build(self, context: StrategyContext) -> Iterable[Built]:
        strategy = self.cls(context)
        family = getattr(self.cls, "family", None) or strategy.name
        yield Built(
            StrategySpec(strategy.name, str(family), explores=bool(getattr(self.cls, "explores", False))), strategy
        )


def _is_strategy_class(obj: object) -> bool:
    return (
        isinstance(obj, type)
        and callable(getattr(obj, "retrieve", None))
        and isinstance(getattr(obj, "name", None), str)
    )


def _is_source(obj: object) -> bool:
    return callable(getattr(obj, "build", None)) or _is_strategy_class(obj)


#: Strategy sources by name: built-ins, ``xmodal.strategies`` entry points, or ``"package.module:Name"``.
STRATEGIES: Registry[Any] = Registry("strategies", "strategy", _is_source)


def factory_of(name: str, *, configured: bool = True) -> StrategyFactory:
    """The factory registered (or installed, or importable) as ``name``; a :class:`ConfigError` naming it
    (and, for a ``configured`` one, how to remove it from the index) when it does not resolve."""
    try:
        source = STRATEGIES.resolve(name)
    except ConfigError as exc:
        fix = f"; install it, or remove it with `xmodal ltr strategies remove {name}`" if configured else ""
        raise ConfigError(f"the learned pipeline's strategy {name!r} cannot be loaded: {exc}{fix}") from exc
    if _is_strategy_class(source):
        return ClassFactory(source)
    if isinstance(source, type):  # a factory class: one instance, made with no arguments
        source = source()
    built: StrategyFactory = source
    return built


def build_strategies(names: Sequence[str], context: StrategyContext) -> list[Built]:
    """Every strategy the named sources yield, in the order named; names must come out distinct."""
    out: list[Built] = []
    seen: set[str] = set()
    for name in dict.fromkeys(names):
        for built in factory_of(name).build(context):
            strategy = built.strategy
            if not isinstance(strategy, Strategy) or not callable(getattr(strategy, "retrieve", None)):
                raise ConfigError(
                    f"strategy source {name!r} built {strategy!r}, which does not implement the Strategy protocol "
                    "(a `name` and `retrieve(query, depth, *, vector=None) -> Hits`)"
                )
            if built.spec.name in seen:
                raise ConfigError(f"two strategies are called {built.spec.name!r} (the second from {name!r})")
            seen.add(built.spec.name)
            out.append(Built(built.spec, strategy, name))
    return out


def check_names(names: Sequence[str]) -> None:
    """Resolve each name now, before it is saved (a :class:`ConfigError` naming the first that does not)."""
    for name in names:
        factory_of(name, configured=False)


# -- the built-in sources ------------------------------------------------------------------------------
def _lexical(ctx: StrategyContext) -> Iterator[Built]:
    yield Built(StrategySpec("lexical", "lexical", when=lambda p: bool(p.query.text)), ctx.lexical)


def _structured(ctx: StrategyContext) -> Iterator[Built]:
    strategy = StructuredStrategy(ctx.engine, ctx.understanding, ctx.lexical)
    yield Built(StrategySpec(strategy.name, "structured", when=lambda p: p.slots > 0), strategy)


def _dense(ctx: StrategyContext) -> Iterator[Built]:
    for kind in ctx.vector_kinds():
        strategy = DenseStrategy(ctx.engine, kind)

        def has_vectors(probe: Probe, kind: str = kind) -> bool:
            return ctx.has_vectors(kind)

        yield Built(StrategySpec(strategy.name, "dense", kind=kind, when=has_vectors), strategy)


def _memory(ctx: StrategyContext) -> Iterator[Built]:
    yield Built(StrategySpec("memory", "memory", when=lambda p: p.memory_hits > 0), ctx.memory)


def _explore(ctx: StrategyContext) -> Iterator[Built]:
    yield Built(StrategySpec("explore", "explore", explores=True), ctx.explore)


LEXICAL = FunctionFactory(_lexical)
STRUCTURED = FunctionFactory(_structured)
DENSE = FunctionFactory(_dense)
MEMORY = FunctionFactory(_memory)
EXPLORE = FunctionFactory(_explore)

for _name in ("lexical", "structured", "dense", "memory", "explore"):
    STRATEGIES.register(_name, f"xmodal.ltr.strategies.registry:{_name.upper()}")
STRATEGIES.register("generative", "xmodal.genret.strategy:GENERATIVE")
